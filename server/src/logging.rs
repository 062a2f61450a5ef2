//! slog loggers: JSON lines for production (CloudWatch), terminal output for local runs.

use crate::config::LogFormat;
use slog::{o, Drain, Level, Logger};

/// The process logger. Unknown levels fall back to `info`.
pub fn logger(format: LogFormat, level: &str) -> Logger {
    let level = level.parse::<Level>().unwrap_or(Level::Info);
    match format {
        // One write per record: stderr itself is unbuffered, and the JSON serialiser writes each
        // field separately (a dozen syscalls a record, seen in perf).
        LogFormat::Json => build(json_drain(std::io::LineWriter::new(std::io::stderr())), level),
        LogFormat::Pretty => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            build(slog_term::FullFormat::new(decorator).build().fuse(), level)
        }
    }
}

/// JSON records with the usual keys (`msg`, `level`, `ts`) to any writer.
pub fn json_drain<W: std::io::Write + Send + 'static>(
    writer: W,
) -> impl Drain<Ok = (), Err = slog::Never> {
    slog_json::Json::new(writer).add_default_keys().build().fuse()
}

fn build<D: Drain<Ok = (), Err = slog::Never> + Send + 'static>(drain: D, level: Level) -> Logger {
    let drain = slog_async::Async::new(drain).chan_size(4096).build().fuse();
    Logger::root(drain.filter_level(level).fuse(), o!("service" => "dashboard"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The production pipeline (async drain, JSON) must carry nested values such as the audit
    /// record's `changes`: without slog-async's `nested-values` feature it panics instead.
    #[test]
    fn audit_records_with_nested_values_survive_the_async_drain() {
        let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
        let (drain, guard) = slog_async::Async::new(json_drain(buffer.clone())).build_with_guard();
        let log = Logger::root(drain.fuse(), o!());
        let changes = serde_json::json!({ "email": { "old": null, "new": "a***@example.com" } });
        slog::info!(log, "profile updated"; "record_type" => "audit", "changes" => slog::Serde(changes));
        drop(log);
        drop(guard);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let record: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(record["changes"]["email"]["new"], "a***@example.com");
    }
}
