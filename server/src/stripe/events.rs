//! Stripe's Events list (`GET /v1/events`), read by the daily catch-up
//! (`orders::catchup`): one request per page of up to 100 events.

use super::{StripeApi, StripeFailure};
use serde_json::Value;
use stripe_core::event::ListEvent;
use stripe_types::RangeQueryTs;

/// One listed event: what the webhook path needs of it.
#[derive(Clone, Debug)]
pub struct ListedEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    /// `data.object`, as a webhook payload carries it.
    pub object: Value,
}

impl StripeApi {
    /// One page (up to 100) of the events of `types` created at or after `created_gte`,
    /// newest first as Stripe lists them, older than `starting_after` when given; and whether
    /// older ones remain (https://docs.stripe.com/api/events/list).
    pub async fn events_page(
        &self,
        types: &[&str],
        created_gte: i64,
        starting_after: Option<&str>,
    ) -> Result<(Vec<ListedEvent>, bool), StripeFailure> {
        let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        let client = self.client()?;
        let page = self
            .call(|| {
                let mut request = ListEvent::new()
                    .types(types.clone())
                    .created(RangeQueryTs::gte(created_gte))
                    .limit(100);
                if let Some(after) = starting_after {
                    request = request.starting_after(after);
                }
                async move { request.send(client).await }
            })
            .await?;
        let mut events = Vec::with_capacity(page.data.len());
        for event in page.data {
            let object = stripe_types::with_serde_json::serialize(
                &event.data.object,
                serde_json::value::Serializer,
            )
            .map_err(|e| StripeFailure::Other(format!("event {}: {e}", event.id.as_str())))?;
            events.push(ListedEvent {
                id: event.id.as_str().to_string(),
                event_type: event.type_.as_str().to_string(),
                created: event.created,
                object,
            });
        }
        Ok((events, page.has_more))
    }
}
