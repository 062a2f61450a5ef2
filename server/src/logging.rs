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
