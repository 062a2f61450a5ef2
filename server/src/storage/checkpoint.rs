//! The daily catch-up's checkpoint: one item in `StripeEvents` (the webhook ledger) holding the
//! `created` time of the newest Stripe event the catch-up has applied. Its id cannot collide
//! with an event's (Stripe's are `evt_…`), and it has no `expiresAt`, so TTL never removes it.

use super::{Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;

/// The checkpoint item's `eventId`.
pub const CATCH_UP_CHECKPOINT_ID: &str = "checkpoint#catch-up";

impl Store {
    /// The stored checkpoint (Unix seconds), or `None` before the first run.
    pub async fn catch_up_checkpoint(&self) -> Result<Option<i64>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.stripe_events)
            .key("eventId", AttributeValue::S(CATCH_UP_CHECKPOINT_ID.to_string()))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = output.item else { return Ok(None) };
        let value = item.get("checkpoint").and_then(|v| v.as_n().ok()?.parse::<i64>().ok());
        value.map(Some).ok_or_else(|| {
            StoreError::Internal("the catch-up checkpoint has no numeric `checkpoint`".into())
        })
    }

    /// Moves the checkpoint forward to `checkpoint`. Conditional, so two runs at once can never
    /// move it backwards: returns false (and writes nothing) when the stored one is already as
    /// new or newer.
    pub async fn advance_catch_up_checkpoint(&self, checkpoint: i64) -> Result<bool, StoreError> {
        let now = chrono::Utc::now().timestamp();
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.stripe_events)
            .item("eventId", AttributeValue::S(CATCH_UP_CHECKPOINT_ID.to_string()))
            .item("checkpoint", AttributeValue::N(checkpoint.to_string()))
            .item("updatedAt", AttributeValue::N(now.to_string()))
            .condition_expression("attribute_not_exists(eventId) OR checkpoint < :c")
            .expression_attribute_values(":c", AttributeValue::N(checkpoint.to_string()))
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;

    /// A run that read older events, or lost a race, cannot move the checkpoint backwards;
    /// of two concurrent runs the newer checkpoint stays, whichever writes last.
    #[tokio::test]
    async fn the_checkpoint_only_moves_forward() {
        let running = EmbeddedStore::start(None).await.unwrap();
        let store = Store::connect("local", Some(&running.endpoint), "cp-").await;
        store.ensure_tables("cp-").await.unwrap();
        assert_eq!(store.catch_up_checkpoint().await.unwrap(), None);
        assert!(store.advance_catch_up_checkpoint(1_000).await.unwrap());
        assert!(!store.advance_catch_up_checkpoint(900).await.unwrap());
        assert!(!store.advance_catch_up_checkpoint(1_000).await.unwrap());
        assert_eq!(store.catch_up_checkpoint().await.unwrap(), Some(1_000));
        let (newer, older) = tokio::join!(
            store.advance_catch_up_checkpoint(3_000),
            store.advance_catch_up_checkpoint(2_000)
        );
        assert!(newer.unwrap(), "the newer checkpoint always lands");
        let _ = older.unwrap();
        assert_eq!(store.catch_up_checkpoint().await.unwrap(), Some(3_000));
        running.shutdown().await;
    }
}
