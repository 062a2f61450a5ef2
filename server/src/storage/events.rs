//! The event ledger (`StripeEvents`): a verified webhook event is stored here, with its object,
//! before it is acknowledged (`pending`); once its effect is stored it is marked done (its
//! object dropped). Ids are kept past Stripe's 3-day retry window, so a redelivery is known.

use super::orders::OrderRecord;
use super::{Store, StoreError};
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsInput,
};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use dashboard_api::WebhookApplied;
use std::collections::HashMap;

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

    /// Marks the event done (dropping its stored object), with its outcome, on condition that
    /// the ledger does not have it done already: `false` when it had (nothing was written).
    pub async fn record_event(
        &self,
        event_id: &str,
        event_type: &str,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        let now = chrono::Utc::now().timestamp();
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.stripe_events)
            .set_item(Some(done_item(event_id, event_type, outcome, now)))
            .condition_expression(NOT_DONE)
            .set_expression_attribute_names(Some(not_done_names()))
            .set_expression_attribute_values(Some(not_done_values(now)));
        match put.send().await.map_err(StoreError::from) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

/// The condition of every write of a done record: the ledger does not have the event done.
/// A pending record (a deferred event) or one past its time may be overwritten.
const NOT_DONE: &str = "attribute_not_exists(eventId) OR #state = :pending OR expiresAt <= :now";

fn not_done_names() -> HashMap<String, String> {
    HashMap::from([("#state".to_string(), "state".to_string())])
}

fn not_done_values(now: i64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":pending".to_string(), AttributeValue::S(PENDING.into())),
        (":now".to_string(), AttributeValue::N(now.to_string())),
    ])
}

/// The ledger's record of an event done with.
fn done_item(
    event_id: &str,
    event_type: &str,
    outcome: &str,
    now: i64,
) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("eventId".to_string(), AttributeValue::S(event_id.to_string())),
        ("type".to_string(), AttributeValue::S(event_type.to_string())),
        ("state".to_string(), AttributeValue::S("done".into())),
        ("outcome".to_string(), AttributeValue::S(outcome.to_string())),
        ("processedAt".to_string(), AttributeValue::N(now.to_string())),
        ("expiresAt".to_string(), AttributeValue::N((now + KEEP_SECS).to_string())),
    ])
}

/// A change to a member's cached order, written with the event that caused it.
pub struct OrderChange<'a> {
    pub record: &'a OrderRecord,
    /// The version the change was planned against; `None`: a new order.
    pub expected_version: Option<u64>,
}

/// Why a webhook's write was refused.
#[derive(Debug)]
pub enum AppliedWriteError {
    /// The ledger has the event as applied already: nothing was written.
    Duplicate,
    /// The order changed (or went) since it was read: read it again and plan again.
    OrderChanged,
    /// The member no longer holds the customer (relinked, unlinked or erased).
    NotLinked,
    Store(StoreError),
}

impl From<StoreError> for AppliedWriteError {
    fn from(error: StoreError) -> Self {
        AppliedWriteError::Store(error)
    }
}

impl Store {
    /// Stores a webhook event's effect in one `TransactWriteItems`: the order's new snapshot,
    /// the member's `lastWebhook` (on condition that the member still holds `customer`, and
    /// counting a new order), and the event's ledger record as applied (on condition that the
    /// ledger does not have it applied already). One request instead of three, and a
    /// redelivery racing its first delivery cannot apply twice. DynamoDB names the failed
    /// condition of each item in `CancellationReasons`
    /// (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).
    /// An event that changes no order is recorded with [`Store::record_event`] alone.
    pub async fn write_applied_event(
        &self,
        change: OrderChange<'_>,
        user_id: &str,
        customer: &str,
        applied: &WebhookApplied,
    ) -> Result<(), AppliedWriteError> {
        let internal = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Internal(e.to_string());
        let (put, _) = self.order_put(change.record, change.expected_version)?;
        let inserts = change.expected_version.is_none();
        let mut items = Vec::with_capacity(3);
        items.push(TransactWriteItem::builder().put(put).build());
        let expression = if inserts {
            "SET lastWebhook = :w ADD orderCount :one"
        } else {
            "SET lastWebhook = :w"
        };
        let mut profile = Update::builder()
            .table_name(&self.tables.user_profiles)
            .key("userId", AttributeValue::S(user_id.to_string()))
            .update_expression(expression)
            .condition_expression("stripeCustomerId = :c")
            .expression_attribute_values(":c", AttributeValue::S(customer.to_string()))
            .expression_attribute_values(
                ":w",
                serde_dynamo::to_attribute_value(applied).map_err(StoreError::from)?,
            );
        if inserts {
            profile = profile.expression_attribute_values(":one", AttributeValue::N("1".into()));
        }
        items.push(TransactWriteItem::builder().update(profile.build().map_err(internal)?).build());
        let now = chrono::Utc::now().timestamp();
        let ledger = Put::builder()
            .table_name(&self.tables.stripe_events)
            .set_item(Some(done_item(&applied.event_id, &applied.event_type, "applied", now)))
            .condition_expression(NOT_DONE)
            .set_expression_attribute_names(Some(not_done_names()))
            .set_expression_attribute_values(Some(not_done_values(now)))
            .build()
            .map_err(internal)?;
        items.push(TransactWriteItem::builder().put(ledger).build());
        let (order_at, profile_at, ledger_at) = (0, 1, 2);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .customize()
            .interceptor(WithoutRequestToken)
            .send()
            .await;
        let Err(error) = result else { return Ok(()) };
        let reasons = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons().to_vec()
            }
            _ => Vec::new(),
        };
        let failed =
            |at: usize| reasons.get(at).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if failed(ledger_at) {
            Err(AppliedWriteError::Duplicate)
        } else if failed(profile_at) {
            Err(AppliedWriteError::NotLinked)
        } else if failed(order_at) {
            Err(AppliedWriteError::OrderChanged)
        } else {
            Err(AppliedWriteError::Store(StoreError::from(error)))
        }
    }
}

/// Sends a `TransactWriteItems` without the `ClientRequestToken` the SDK adds to every one
/// (`API_TransactWriteItems.html`: the token is optional; it makes a repeated call within ten
/// minutes a no-op). A webhook's transaction needs none: it is all or nothing, and its ledger
/// `Put` is conditioned on the event not being done, so a retry of a call that did succeed is
/// refused whole and answers `Duplicate`. Real DynamoDB charges nothing for the token either
/// way; the emulators keep every token of the last ten minutes, and dynoxide scans them all on
/// each tokened transaction (a third of its CPU per webhook under load).
#[derive(Debug)]
struct WithoutRequestToken;

impl Intercept for WithoutRequestToken {
    fn name(&self) -> &'static str {
        "WithoutRequestToken"
    }

    // Operation interceptors run after the SDK's own (its token interceptor included); the
    // tests count tokened transactions (`rules::TOKENED`) to hold that.
    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Some(input) = context.input_mut().downcast_mut::<TransactWriteItemsInput>() {
            input.client_request_token = None;
        }
        Ok(())
    }
}
