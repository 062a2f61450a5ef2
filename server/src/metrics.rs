//! Metrics as CloudWatch Embedded Metric Format records: ordinary JSON log lines with an `_aws`
//! member, which CloudWatch turns into metrics with no agent and no API calls.

use serde::Serialize;
use slog::{info, Logger};

pub const NAMESPACE: &str = "BabesClub/Dashboard";

/// The member that makes a record a metrics record (the pretty log format keys on it).
pub const EMF_KEY: &str = "_aws";

/// The `_aws` member of a record: when, and which of its fields are metrics (a directive that
/// never changes per record kind, so it is a constant, not a JSON tree built per record).
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Emf {
    timestamp: i64,
    cloud_watch_metrics: [&'static Directive; 1],
}

/// Which fields of a record are metrics, in which namespace, with which dimensions.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive {
    namespace: &'static str,
    dimensions: [&'static [&'static str]; 1],
    metrics: &'static [Metric],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    name: &'static str,
    unit: &'static str,
}

const fn metric(name: &'static str, unit: &'static str) -> Metric {
    Metric { name, unit }
}

const fn directive(dimensions: &'static [&'static str], metrics: &'static [Metric]) -> Directive {
    Directive { namespace: NAMESPACE, dimensions: [dimensions], metrics }
}

/// The `_aws` member for a record written now.
fn emf(directive: &'static Directive) -> Emf {
    Emf { timestamp: chrono::Utc::now().timestamp_millis(), cloud_watch_metrics: [directive] }
}

static REQUEST: Directive = directive(
    &["Operation"],
    &[
        metric("Requests", "Count"),
        metric("Latency", "Milliseconds"),
        metric("Errors", "Count"),
        metric("AuthFailures", "Count"),
    ],
);
static WEBHOOK: Directive = directive(&["Outcome"], &[metric("WebhookEvents", "Count")]);
static RECONCILE: Directive = directive(
    &[],
    &[
        metric("OrdersCreated", "Count"),
        metric("OrdersUpdated", "Count"),
        metric("OrdersUnchanged", "Count"),
        metric("ReconcileErrors", "Count"),
    ],
);
static CATCH_UP: Directive = directive(
    &[],
    &[
        metric("CatchUpFallbacks", "Count"),
        metric("CatchUpEvents", "Count"),
        metric("CatchUpApplied", "Count"),
        metric("CatchUpStripeRequests", "Count"),
    ],
);

/// One request: count, latency and whether it failed, per operation.
pub fn request(log: &Logger, operation: &str, latency_ms: f64, status: u16) {
    info!(log, "metrics";
        EMF_KEY => slog::Serde(emf(&REQUEST)),
        "Operation" => operation,
        "Requests" => 1,
        "Latency" => latency_ms,
        "Errors" => u8::from(status >= 500),
        "AuthFailures" => u8::from(status == 401),
    );
}

/// One webhook delivery, by outcome (applied, duplicate, ignored, unlinked, rejected, failed).
pub fn webhook(log: &Logger, outcome: &str) {
    info!(log, "metrics";
        EMF_KEY => slog::Serde(emf(&WEBHOOK)),
        "Outcome" => outcome,
        "WebhookEvents" => 1,
    );
}

/// One reconcile run's counts.
pub fn reconcile(log: &Logger, report: Option<&dashboard_api::SyncReport>) {
    info!(log, "metrics";
        EMF_KEY => slog::Serde(emf(&RECONCILE)),
        "OrdersCreated" => report.map_or(0, |r| r.created),
        "OrdersUpdated" => report.map_or(0, |r| r.updated),
        "OrdersUnchanged" => report.map_or(0, |r| r.unchanged),
        "ReconcileErrors" => u8::from(report.is_none()),
    );
}

/// One scheduled sync: whether it fell back to the per-member sweep (no checkpoint, or one
/// older than Stripe keeps events), the events it read and the Stripe requests it made.
pub fn catch_up(log: &Logger, fell_back: bool, events: u64, applied: u64, stripe_requests: u64) {
    info!(log, "metrics";
        EMF_KEY => slog::Serde(emf(&CATCH_UP)),
        "CatchUpFallbacks" => u8::from(fell_back),
        "CatchUpEvents" => events,
        "CatchUpApplied" => applied,
        "CatchUpStripeRequests" => stripe_requests,
    );
}
