//! Metrics as CloudWatch Embedded Metric Format records: ordinary JSON log lines with an `_aws`
//! member, which CloudWatch turns into metrics with no agent and no API calls.

use serde_json::{json, Value};
use slog::{info, Logger};

pub const NAMESPACE: &str = "BabesClub/Dashboard";

/// The member that makes a record a metrics record (the pretty log format keys on it).
pub const EMF_KEY: &str = "_aws";

/// The `_aws` member for metrics with one set of dimensions.
pub fn emf(dimensions: &[&str], metrics: &[(&str, &str)]) -> Value {
    json!({
        "Timestamp": chrono::Utc::now().timestamp_millis(),
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": metrics
                .iter()
                .map(|(name, unit)| json!({ "Name": name, "Unit": unit }))
                .collect::<Vec<_>>(),
        }],
    })
}

/// One request: count, latency and whether it failed, per operation.
pub fn request(log: &Logger, operation: &str, latency_ms: f64, status: u16) {
    let aws = emf(
        &["Operation"],
        &[
            ("Requests", "Count"),
            ("Latency", "Milliseconds"),
            ("Errors", "Count"),
            ("AuthFailures", "Count"),
        ],
    );
    info!(log, "metrics";
        EMF_KEY => slog::Serde(aws),
        "Operation" => operation.to_string(),
        "Requests" => 1,
        "Latency" => latency_ms,
        "Errors" => u8::from(status >= 500),
        "AuthFailures" => u8::from(status == 401),
    );
}

/// One webhook delivery, by outcome (applied, duplicate, ignored, unlinked, rejected, failed).
pub fn webhook(log: &Logger, outcome: &str) {
    info!(log, "metrics";
        EMF_KEY => slog::Serde(emf(&["Outcome"], &[("WebhookEvents", "Count")])),
        "Outcome" => outcome.to_string(),
        "WebhookEvents" => 1,
    );
}

/// One reconcile run's counts.
pub fn reconcile(log: &Logger, report: Option<&dashboard_api::SyncReport>) {
    let aws = emf(
        &[],
        &[
            ("OrdersCreated", "Count"),
            ("OrdersUpdated", "Count"),
            ("OrdersUnchanged", "Count"),
            ("ReconcileErrors", "Count"),
        ],
    );
    info!(log, "metrics";
        EMF_KEY => slog::Serde(aws),
        "OrdersCreated" => report.map_or(0, |r| r.created),
        "OrdersUpdated" => report.map_or(0, |r| r.updated),
        "OrdersUnchanged" => report.map_or(0, |r| r.unchanged),
        "ReconcileErrors" => u8::from(report.is_none()),
    );
}

/// One scheduled sync: whether it fell back to the per-member sweep (no checkpoint, or one
/// older than Stripe keeps events), the events it read and the Stripe requests it made.
pub fn catch_up(log: &Logger, fell_back: bool, events: u64, applied: u64, stripe_requests: u64) {
    let aws = emf(
        &[],
        &[
            ("CatchUpFallbacks", "Count"),
            ("CatchUpEvents", "Count"),
            ("CatchUpApplied", "Count"),
            ("CatchUpStripeRequests", "Count"),
        ],
    );
    info!(log, "metrics";
        EMF_KEY => slog::Serde(aws),
        "CatchUpFallbacks" => u8::from(fell_back),
        "CatchUpEvents" => events,
        "CatchUpApplied" => applied,
        "CatchUpStripeRequests" => stripe_requests,
    );
}
