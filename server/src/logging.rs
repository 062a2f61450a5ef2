//! slog loggers: JSON lines for production (CloudWatch), terminal output for local runs.
//!
//! Both formats write on the caller's thread, one record at a time under a lock (see [`build`]),
//! and a record must never take the request that logs it down, nor poison the lock for every
//! later record. So every record goes through two guards before it reaches the format:
//!
//! - [`Nested`] hands each nested value (`slog::Serde`, used by the metrics and audit records)
//!   to the format in a form it can write. slog-term has no serde support in its default build,
//!   so on a terminal a nested value is printed as compact JSON text; the JSON format writes it
//!   as JSON, as before. A value that cannot be serialised at all (an error, or a panic in its
//!   `Serialize`) is written as `<unloggable: reason>` text in its place, and the rest of the
//!   record is kept. Logger context values (`o!`) go through the same path.
//! - [`Guard`] catches whatever the format still fails on (an I/O error, a panic in the drain
//!   itself): the record is written again as its message with a `log_error` field saying what
//!   went wrong, or dropped if even that fails. Never a panic, never a poisoned lock.
//!
//! Metrics (CloudWatch Embedded Metric Format, see [`crate::metrics`]) are records for
//! CloudWatch, not for people: in the JSON format they are written as they are. On a terminal
//! one comes with every request, right after Dropshot's own "request completed" line that
//! already says the operation, status and latency, and its `_aws` member is a CloudWatch
//! directive. So the pretty format treats records with an `_aws` member as debug output: hidden
//! at the default level, written in full (with `_aws` as JSON text) with
//! `DASHBOARD_LOG_LEVEL=debug` for whoever works on the metrics themselves. Audit records are
//! events worth seeing and stay at their level.
//!
//! slog-term does have a `nested-values` feature (compact JSON too), but it fails the whole
//! record on a value that does not serialise, and the JSON format needs the same degradation
//! anyway; the adapter below covers both.

use crate::metrics::EMF_KEY;
use slog::{o, Drain, Key, Level, Logger, OwnedKVList, Record, RecordStatic, SerdeValue, KV};
use std::fmt;
use std::io::{LineWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

/// How records are written (`DASHBOARD_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (production, CloudWatch).
    Json,
    /// Human-readable lines (local runs).
    Pretty,
}

/// The process logger, on stderr. Unknown levels fall back to `info`.
pub fn logger(format: LogFormat, level: &str) -> Logger {
    match format {
        // Colours when stderr is a terminal; otherwise the same output as `logger_to`.
        LogFormat::Pretty => {
            let level = parse_level(level);
            build(pretty_drain(slog_term::TermDecorator::new().stderr().build(), level), level)
        }
        LogFormat::Json => logger_to(format, level, std::io::stderr()),
    }
}

/// The process logger writing to any writer: the same pipeline as [`logger`] (lock, guards,
/// format), with an uncoloured terminal format for `pretty`.
pub fn logger_to<W: Write + Send + 'static>(format: LogFormat, level: &str, writer: W) -> Logger {
    let level = parse_level(level);
    // One write per record: stderr itself is unbuffered, and both formats write each field
    // separately (a dozen syscalls a record, seen in perf). No record holds a raw newline.
    let writer = LineWriter::new(writer);
    match format {
        LogFormat::Json => build(json_drain(writer), level),
        LogFormat::Pretty => {
            build(pretty_drain(slog_term::PlainDecorator::new(writer), level), level)
        }
    }
}

/// JSON records with the usual keys (`msg`, `level`, `ts`) to any writer.
pub fn json_drain<W: Write + Send + 'static>(writer: W) -> impl Drain<Ok = (), Err = slog::Never> {
    let json = slog_json::Json::new(writer).add_default_keys().build();
    Guard::new(Nested::new(json, Render::Json))
}

/// Terminal lines (slog-term's full format) on any decorator; metrics records only at `debug`.
fn pretty_drain<D: slog_term::Decorator + Send + 'static>(
    decorator: D,
    level: Level,
) -> impl Drain<Ok = (), Err = slog::Never> {
    let show_metrics = level.as_usize() >= Level::Debug.as_usize();
    let format = Nested::new(slog_term::FullFormat::new(decorator).build(), Render::Text);
    let show = move |record: &Record| show_metrics || !has_key(record, EMF_KEY);
    Guard::new(slog::Filter::new(format, show))
}

fn parse_level(level: &str) -> Level {
    level.parse::<Level>().unwrap_or(Level::Info)
}

fn build<D: Drain<Ok = (), Err = slog::Never> + Send + 'static>(drain: D, level: Level) -> Logger {
    // Written where it is logged, not handed to a logging thread (slog-async): one write of a
    // short line costs less than the hand-over, which copied every field into owned values and
    // woke the other thread once a record (a third of a webhook's logging CPU, and most of its
    // context switches, in perf). On Lambda one request runs at a time, so nothing waits for
    // the lock; a record is never lost to a full channel or to an exit before the thread drained.
    Logger::root(Locked(Mutex::new(drain)).filter_level(level).fuse(), o!("service" => "dashboard"))
}

/// A drain shared by every thread, one record at a time. [`Guard`] inside it never panics, so
/// the lock is never poisoned; were it, the drain behind it is still whole and keeps writing.
/// The lock is held while a record's values are written: a value whose `Serialize` or
/// `Display` logged, or a panic hook that logged, would wait for it forever. None does.
struct Locked<D>(Mutex<D>);

impl<D: Drain<Ok = (), Err = slog::Never>> Drain for Locked<D> {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).log(record, values)
    }
}

/// Whether the record itself (not its logger's context) has a field with this key.
fn has_key(record: &Record, wanted: &str) -> bool {
    struct Find<'a>(&'a str, bool);
    impl slog::Serializer for Find<'_> {
        fn emit_arguments(&mut self, key: Key, _: &fmt::Arguments) -> slog::Result {
            self.1 |= key == self.0;
            Ok(())
        }
        fn emit_serde(&mut self, key: Key, _: &dyn SerdeValue) -> slog::Result {
            self.1 |= key == self.0;
            Ok(())
        }
    }
    let mut find = Find(wanted, false);
    let _ = record.kv().serialize(record, &mut find);
    find.1
}

/// How [`Nested`] hands nested values to the format.
#[derive(Clone, Copy)]
enum Render {
    /// As serde values (the format writes JSON); checked first so that one that cannot be
    /// serialised becomes text rather than half a record.
    Json,
    /// As compact JSON text (the format has no serde support).
    Text,
}

/// Passes records on with nested values made writable (see the module documentation). The
/// logger's context is folded into the record, in the place the format would have written it,
/// so that it goes through the same path.
struct Nested<D> {
    inner: D,
    render: Render,
    empty: OwnedKVList,
}

impl<D> Nested<D> {
    fn new(inner: D, render: Render) -> Self {
        Nested { inner, render, empty: o!().into() }
    }
}

impl<D: Drain> Drain for Nested<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<D::Ok, D::Err> {
        let fields = Fields { record_kv: record.kv(), values, render: self.render };
        let statics =
            RecordStatic { location: record.location(), tag: record.tag(), level: record.level() };
        self.inner.log(&Record::new(&statics, record.msg(), slog::BorrowedKV(&fields)), &self.empty)
    }
}

/// A record's fields and its logger's context, in the order the format writes them: slog-json
/// writes the context first, slog-term after the record's fields.
struct Fields<'a> {
    record_kv: slog::BorrowedKV<'a>,
    values: &'a OwnedKVList,
    render: Render,
}

impl KV for Fields<'_> {
    fn serialize(&self, record: &Record, serializer: &mut dyn slog::Serializer) -> slog::Result {
        let mut serializer = Writable { inner: serializer, render: self.render };
        match self.render {
            Render::Json => {
                self.values.serialize(record, &mut serializer)?;
                self.record_kv.serialize(record, &mut serializer)
            }
            Render::Text => {
                self.record_kv.serialize(record, &mut serializer)?;
                self.values.serialize(record, &mut serializer)
            }
        }
    }
}

/// A serializer that forwards everything but nested values, which it renders (see [`Render`]).
struct Writable<'a> {
    inner: &'a mut dyn slog::Serializer,
    render: Render,
}

macro_rules! forward {
    ($($method:ident($type:ty)),* $(,)?) => {
        $(fn $method(&mut self, key: Key, value: $type) -> slog::Result {
            self.inner.$method(key, value)
        })*
    };
}

impl slog::Serializer for Writable<'_> {
    forward!(
        emit_usize(usize),
        emit_isize(isize),
        emit_bool(bool),
        emit_char(char),
        emit_u8(u8),
        emit_i8(i8),
        emit_u16(u16),
        emit_i16(i16),
        emit_u32(u32),
        emit_i32(i32),
        emit_f32(f32),
        emit_u64(u64),
        emit_i64(i64),
        emit_f64(f64),
        emit_u128(u128),
        emit_i128(i128),
        emit_str(&str),
        emit_arguments(&fmt::Arguments),
        emit_error(&(dyn std::error::Error + 'static)),
    );

    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.inner.emit_unit(key)
    }

    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.inner.emit_none(key)
    }

    fn emit_bytes(&mut self, key: Key, bytes: &[u8], kind: slog::BytesKind) -> slog::Result {
        self.inner.emit_bytes(key, bytes, kind)
    }

    fn emit_serde(&mut self, key: Key, value: &dyn SerdeValue) -> slog::Result {
        let result = match self.render {
            Render::Json => serialize(value, std::io::sink()).map(|()| None),
            Render::Text => {
                let mut text = Vec::new();
                serialize(value, &mut text).map(|()| Some(text))
            }
        };
        match result {
            Ok(None) => self.inner.emit_serde(key, value),
            // serde_json writes UTF-8 only.
            Ok(Some(text)) => self.inner.emit_str(key, &String::from_utf8_lossy(&text)),
            Err(reason) => self.inner.emit_arguments(key, &format_args!("<unloggable: {reason}>")),
        }
    }
}

/// Serialises a nested value as compact JSON, turning errors and panics into their text.
fn serialize(value: &dyn SerdeValue, writer: impl Write) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| serde_json::to_writer(writer, value.as_serde()))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(format!("panicked: {}", panic_text(&*panic))),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Never fails and never panics: a record the inner drain cannot write (it errs or panics) is
/// written again as its message and a `log_error` field saying why, first with its logger's
/// context and then without; if even that fails it is dropped.
struct Guard<D> {
    inner: D,
    empty: OwnedKVList,
}

impl<D> Guard<D> {
    fn new(inner: D) -> Self {
        Guard { inner, empty: o!().into() }
    }

    fn attempt(&self, record: &Record, values: &OwnedKVList) -> Result<(), String>
    where
        D: Drain,
        D::Err: fmt::Display,
    {
        match catch_unwind(AssertUnwindSafe(|| self.inner.log(record, values))) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(panic) => Err(format!("the log drain panicked: {}", panic_text(&*panic))),
        }
    }
}

impl<D: Drain> Drain for Guard<D>
where
    D::Err: fmt::Display,
{
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let Err(error) = self.attempt(record, values) else { return Ok(()) };
        let statics =
            RecordStatic { location: record.location(), tag: record.tag(), level: record.level() };
        let fields = slog::b!("log_error" => error.as_str());
        let substitute = Record::new(&statics, record.msg(), fields);
        if self.attempt(&substitute, values).is_err() {
            let _ = self.attempt(&substitute, &self.empty);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn new() -> Self {
            Buffer(Arc::new(Mutex::new(Vec::new())))
        }
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The production pipeline (JSON) must carry nested values such as the audit record's
    /// `changes` as JSON, not as text.
    #[test]
    fn audit_records_with_nested_values_survive_the_pipeline() {
        let buffer = Buffer::new();
        let log = logger_to(LogFormat::Json, "info", buffer.clone());
        let changes = serde_json::json!({ "email": { "old": null, "new": "a***@example.com" } });
        slog::info!(log, "profile updated"; "record_type" => "audit", "changes" => slog::Serde(changes));
        let record: serde_json::Value = serde_json::from_str(buffer.text().trim()).unwrap();
        assert_eq!(record["changes"]["email"]["new"], "a***@example.com");
    }

    /// A drain that fails (or panics on) records whose message says so, unless they are the
    /// guard's substitutes ("fail always" fails those too), and writes the others.
    struct Flaky(Mutex<Buffer>);

    impl Drain for Flaky {
        type Ok = ();
        type Err = std::io::Error;
        fn log(&self, record: &Record, _: &OwnedKVList) -> std::io::Result<()> {
            let message = record.msg().to_string();
            let substitute = has_key(record, "log_error");
            match message.as_str() {
                "panic" if !substitute => panic!("flaky drain"),
                "fail" if !substitute => Err(std::io::Error::other("disk full")),
                "fail always" => Err(std::io::Error::other("gone")),
                _ => {
                    struct Collect(String);
                    impl slog::Serializer for Collect {
                        fn emit_arguments(
                            &mut self,
                            key: Key,
                            value: &fmt::Arguments,
                        ) -> slog::Result {
                            self.0.push_str(&format!(" {key}={value}"));
                            Ok(())
                        }
                    }
                    let mut fields = Collect(String::new());
                    let _ = record.kv().serialize(record, &mut fields);
                    writeln!(self.0.lock().unwrap(), "{message}{}", fields.0)
                }
            }
        }
    }

    #[test]
    fn the_guard_turns_failures_and_panics_into_log_error_records() {
        let buffer = Buffer::new();
        let drain = Guard::new(Flaky(Mutex::new(buffer.clone())));
        let log = Logger::root(Mutex::new(drain).fuse(), o!());
        slog::info!(log, "fail");
        slog::info!(log, "panic");
        slog::info!(log, "fail always");
        slog::info!(log, "after");
        assert_eq!(
            buffer.text(),
            "fail log_error=disk full\npanic log_error=the log drain panicked: flaky drain\nafter\n"
        );
    }
}
