//! Work that arrives as Lambda events rather than HTTP requests (through the Web Adapter's
//! pass-through path): SQS batches of stale-order refreshes and deferred webhook events
//! (`orders::ledger`), and the daily schedule (the
//! catch-up from Stripe's Events list, see `orders::catchup`).

use crate::orders::OrderService;
use dashboard_api::ErrorCode;
use dropshot::HttpError;
use serde_json::{json, Value};
use slog::{info, warn, Logger};

/// Handles one event. SQS batches answer `batchItemFailures` so that only failed records are
/// retried (and end in the dead-letter queue); a failed schedule is a 5xx so it is retried.
pub async fn handle(
    orders: &OrderService,
    log: &Logger,
    event: &Value,
) -> Result<Value, HttpError> {
    if let Some(records) = event["Records"].as_array() {
        let mut failures = Vec::new();
        for record in records {
            let id = record["messageId"].as_str().unwrap_or_default().to_string();
            let body = serde_json::from_str::<Value>(record["body"].as_str().unwrap_or_default())
                .unwrap_or_default();
            // A stale member's refresh, or a webhook event deferred by the API function.
            let outcome = match (body["userId"].as_str(), body["eventId"].as_str()) {
                (Some(user), _) => {
                    orders.reconcile(user).await.map(|_| ()).map_err(|e| e.to_string())
                }
                (None, Some(event)) => {
                    // Boxed: its future is large, and this one would carry its size on the
                    // stack of every event (a stack overflow in debug builds).
                    Box::pin(orders.apply_deferred(event))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                (None, None) => Err("record body has neither userId nor eventId".to_string()),
            };
            if let Err(error) = outcome {
                warn!(log, "refresh failed"; "message_id" => &id, "error" => error);
                failures.push(json!({ "itemIdentifier": id }));
            }
        }
        info!(log, "refresh batch"; "records" => records.len(), "failed" => failures.len());
        return Ok(json!({ "batchItemFailures": failures }));
    }
    let scheduled = event["detail-type"].as_str() == Some("Scheduled Event")
        || event["source"].as_str().is_some_and(|s| s == "aws.scheduler" || s == "aws.events");
    if scheduled {
        // The Events list from the checkpoint, or the per-member sweep when there is none
        // (see `orders::catchup`).
        let report = orders
            .catch_up()
            .await
            .map_err(|e| HttpError::for_unavail(code(ErrorCode::ReconcileFailed), e.to_string()))?;
        let sweep = report.sweep.clone().unwrap_or_default();
        info!(log, "scheduled sync"; "record_type" => "audit", "action" => "sync.scheduled",
            "mode" => report.mode, "fallback" => report.fallback.map(|f| f.as_str()),
            "events" => report.events, "applied" => report.applied,
            "duplicates" => report.duplicates, "list_requests" => report.list_requests,
            "refetch_requests" => report.refetch_requests,
            "stripe_requests" => report.stripe_requests, "checkpoint" => report.checkpoint,
            "members" => sweep.members, "failed" => sweep.failed);
        return report.to_json().map_err(|e| HttpError {
            error_code: code(ErrorCode::InternalError),
            ..HttpError::for_internal_error(e.to_string())
        });
    }
    Err(HttpError::for_bad_request(
        code(ErrorCode::UnknownEvent),
        "not an SQS batch or a schedule".into(),
    ))
}

/// The `error_code` of a Dropshot error this path sends: always one of the list.
fn code(code: ErrorCode) -> Option<String> {
    Some(code.as_str().to_string())
}
