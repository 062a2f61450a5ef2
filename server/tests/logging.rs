//! The process logger, driven through the same function the binary uses, in both formats: every
//! kind of record the server writes must come out, and no record may stop the ones after it.

use dashboard_server::logging::logger_to;
use dashboard_server::logging::LogFormat;
use serde_json::{json, Value};
use slog::{info, Logger};
use std::collections::BTreeMap;

use dashboard_tests::SharedBuf as Buffer;

/// A value serde_json refuses (map keys must be strings).
fn unserialisable() -> BTreeMap<(u8, u8), u8> {
    BTreeMap::from([((1, 2), 3)])
}

/// A value whose `Serialize` panics.
#[derive(Clone)]
struct Explodes;

impl serde::Serialize for Explodes {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("explodes on purpose")
    }
}

/// Writes what the server writes, plus values no format can write, then a last plain record;
/// returns the output (each record is written before its `info!` returns).
fn write_records(format: LogFormat, level: &str) -> String {
    let buffer = Buffer::default();
    let log: Logger = logger_to(format, level, buffer.clone());
    // A metrics record (the EMF `_aws` member is nested), as every request writes.
    dashboard_server::metrics::request(&log, "get_profile", 1.5, 200);
    // An audit record as `profiles::audit` writes it, inside a logger with context.
    let request_log = log.new(slog::o!("req_id" => "r-1"));
    let changes = json!({ "displayName": { "old": "Demo Member", "new": "Ada" } });
    info!(request_log, "profile updated"; "record_type" => "audit", "action" => "profile.update",
        "changes" => slog::Serde(changes));
    // Context that is nested itself.
    let nested_context = log.new(slog::o!("context" => slog::Serde(json!({ "k": [1, 2] }))));
    info!(nested_context, "with nested context");
    info!(log, "plain record"; "n" => 7);
    info!(log, "unserialisable value"; "bad" => slog::Serde(unserialisable()), "kept" => "yes");
    info!(log, "panicking value"; "bad" => slog::Serde(Explodes), "kept" => "yes");
    info!(log, "last record");
    drop((log, request_log, nested_context));
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn json_format_writes_every_record_and_survives_bad_values() {
    let output = write_records(LogFormat::Json, "info");
    let records: Vec<Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let by_msg = |msg: &str| {
        records.iter().find(|r| r["msg"] == msg).unwrap_or_else(|| panic!("no {msg}: {output}"))
    };
    let metrics = by_msg("metrics");
    assert_eq!(metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"], "BabesClub/Dashboard");
    assert_eq!(metrics["Operation"], "get_profile");
    let audit = by_msg("profile updated");
    assert_eq!(audit["changes"]["displayName"]["new"], "Ada");
    assert_eq!(audit["req_id"], "r-1");
    assert_eq!(by_msg("with nested context")["context"], json!({ "k": [1, 2] }));
    assert_eq!(by_msg("plain record")["n"], 7);
    for msg in ["unserialisable value", "panicking value"] {
        let record = by_msg(msg);
        assert!(record["bad"].as_str().unwrap().starts_with("<unloggable: "), "{record}");
        assert_eq!(record["kept"], "yes");
    }
    assert!(by_msg("panicking value")["bad"].as_str().unwrap().contains("explodes on purpose"));
    assert_eq!(records.last().unwrap()["msg"], "last record", "{output}");
    assert_eq!(records.len(), 7, "{output}");
}

#[test]
fn pretty_format_writes_every_record_and_survives_bad_values() {
    let output = write_records(LogFormat::Pretty, "debug");
    let line = |msg: &str| {
        output
            .lines()
            .find(|l| l.contains(&format!(" INFO {msg}")))
            .unwrap_or_else(|| panic!("no {msg}: {output}"))
    };
    let metrics = line("metrics");
    assert!(metrics.contains("Operation: get_profile"), "{metrics}");
    assert!(metrics.contains(r#"_aws: {"Timestamp":"#), "{metrics}");
    let directive =
        r#""CloudWatchMetrics":[{"Namespace":"BabesClub/Dashboard","Dimensions":[["Operation"]]"#;
    assert!(metrics.contains(directive), "{metrics}");
    let audit = line("profile updated");
    assert!(
        audit.contains(r#"changes: {"displayName":{"new":"Ada","old":"Demo Member"}}"#),
        "{audit}"
    );
    assert!(audit.contains("record_type: audit") && audit.contains("req_id: r-1"), "{audit}");
    assert!(line("with nested context").contains(r#"context: {"k":[1,2]}"#), "{output}");
    assert!(line("plain record").contains("n: 7"), "{output}");
    let bad = line("unserialisable value");
    assert!(bad.contains("bad: <unloggable: key must be a string>"), "{bad}");
    assert!(bad.contains("kept: yes"), "{bad}");
    let panicked = line("panicking value");
    assert!(panicked.contains("bad: <unloggable: panicked: explodes on purpose>"), "{panicked}");
    assert!(output.lines().last().unwrap().contains(" INFO last record"), "{output}");
    assert_eq!(output.lines().count(), 7, "{output}");
}

/// At the default level the pretty format leaves metrics out (they are for CloudWatch, and
/// Dropshot's "request completed" line already says the same); the rest is written.
#[test]
fn pretty_format_leaves_metrics_out_at_info() {
    let output = write_records(LogFormat::Pretty, "info");
    assert!(!output.contains(" metrics") && !output.contains("_aws"), "{output}");
    assert!(output.contains(r#"changes: {"displayName""#), "{output}");
    assert!(output.lines().last().unwrap().contains(" INFO last record"), "{output}");
    assert_eq!(output.lines().count(), 6, "{output}");
}
