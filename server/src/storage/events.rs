//! The processed-event ledger (`StripeEvents`): an event id is recorded once its effect is
//! stored, and kept past Stripe's 3-day retry window.

use super::{Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;

/// How long a processed event id is remembered.
const KEEP_SECS: i64 = 30 * 24 * 3600;

impl Store {
    pub async fn event_seen(&self, event_id: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.stripe_events)
            .key("eventId", AttributeValue::S(event_id.to_string()))
            .consistent_read(true)
            .send()
            .await?;
        let now = chrono::Utc::now().timestamp();
        Ok(output.item.is_some_and(|item| {
            let expires = item.get("expiresAt").and_then(|v| v.as_n().ok()?.parse::<i64>().ok());
            expires.is_none_or(|at| at > now)
        }))
    }

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
            .item("outcome", AttributeValue::S(outcome.to_string()))
            .item("processedAt", AttributeValue::N(now.to_string()))
            .item("expiresAt", AttributeValue::N((now + KEEP_SECS).to_string()))
            .send()
            .await?;
        Ok(())
    }
}
