//! The event ledger (`StripeEvents`): a verified webhook event is stored here, with its object,
//! before it is acknowledged (`pending`); once its effect is stored it is marked done (its
//! object dropped). Ids are kept past Stripe's 3-day retry window, so a redelivery is known.

use super::{Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;

/// How long an event id is remembered.
const KEEP_SECS: i64 = 30 * 24 * 3600;

/// Largest event object kept in the ledger; a larger one (far past what Stripe sends) is
/// re-fetched when applied. DynamoDB's item limit is 400 KB
/// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
const MAX_OBJECT_BYTES: usize = 300 * 1024;

const PENDING: &str = "pending";

/// What the ledger knew of an event when it was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// First delivery: stored as pending.
    New,
    /// Stored before and not applied yet (a redelivery, or a deferred event).
    Pending,
    /// Applied already.
    Done,
}

/// An event stored but not applied yet.
#[derive(Clone, Debug)]
pub struct PendingEvent {
    pub event_type: String,
    pub intent_id: String,
    /// The event's `data.object` as JSON; `None` when it was too large to keep.
    pub object: Option<String>,
}

impl Store {
    /// Stores a verified event as pending unless the ledger has it already.
    pub async fn receive_event(
        &self,
        event_id: &str,
        event_type: &str,
        intent_id: &str,
        object: &str,
    ) -> Result<Received, StoreError> {
        let now = chrono::Utc::now().timestamp();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.stripe_events)
            .item("eventId", AttributeValue::S(event_id.to_string()))
            .item("type", AttributeValue::S(event_type.to_string()))
            .item("state", AttributeValue::S(PENDING.into()))
            .item("intentId", AttributeValue::S(intent_id.to_string()))
            .item("receivedAt", AttributeValue::N(now.to_string()))
            .item("expiresAt", AttributeValue::N((now + KEEP_SECS).to_string()))
            .condition_expression("attribute_not_exists(eventId)");
        if object.len() <= MAX_OBJECT_BYTES {
            put = put.item("object", AttributeValue::S(object.to_string()));
        }
        match put.send().await.map_err(StoreError::from) {
            Ok(_) => Ok(Received::New),
            Err(StoreError::ConditionFailed) => Ok(match self.pending_event(event_id).await? {
                Some(_) => Received::Pending,
                None => Received::Done,
            }),
            Err(other) => Err(other),
        }
    }

    /// The event, if the ledger holds it as pending.
    pub async fn pending_event(&self, event_id: &str) -> Result<Option<PendingEvent>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.stripe_events)
            .key("eventId", AttributeValue::S(event_id.to_string()))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = output.item else { return Ok(None) };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        if text("state").as_deref() != Some(PENDING) {
            return Ok(None);
        }
        Ok(Some(PendingEvent {
            event_type: text("type").unwrap_or_default(),
            intent_id: text("intentId").unwrap_or_default(),
            object: text("object"),
        }))
    }

    /// Whether the event was applied already (a pending one was not).
    pub async fn event_seen(&self, event_id: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.stripe_events)
            .key("eventId", AttributeValue::S(event_id.to_string()))
            .consistent_read(true)
            .projection_expression("expiresAt, #state")
            .expression_attribute_names("#state", "state")
            .send()
            .await?;
        let now = chrono::Utc::now().timestamp();
        Ok(output.item.is_some_and(|item| {
            let expires = item.get("expiresAt").and_then(|v| v.as_n().ok()?.parse::<i64>().ok());
            let pending =
                item.get("state").and_then(|v| v.as_s().ok()).is_some_and(|s| s == PENDING);
            !pending && expires.is_none_or(|at| at > now)
        }))
    }

    /// Marks the event applied (dropping its stored object).
    pub async fn record_event(
        &self,
        event_id: &str,
        event_type: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp();
        self.client
            .put_item()
            .table_name(&self.tables.stripe_events)
            .item("eventId", AttributeValue::S(event_id.to_string()))
            .item("type", AttributeValue::S(event_type.to_string()))
            .item("state", AttributeValue::S("done".into()))
            .item("outcome", AttributeValue::S(outcome.to_string()))
            .item("processedAt", AttributeValue::N(now.to_string()))
            .item("expiresAt", AttributeValue::N((now + KEEP_SECS).to_string()))
            .send()
            .await?;
        Ok(())
    }
}
