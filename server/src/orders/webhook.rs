//! Stripe webhooks: the signature (before anything else), the processed-event ledger, and
//! applying an event by re-fetching its PaymentIntent.

use super::OrderService;
use crate::error::DomainError;
use crate::storage::profiles::SyncMeta;
use chrono::Utc;
use dashboard_api::{WebhookAck, WebhookApplied};
use serde_json::Value;
use slog::info;

impl OrderService {
    /// Verifies, de-duplicates and applies one Stripe event. Nothing is acknowledged that was
    /// not stored: any failure is an error, which the handler turns into a 5xx.
    pub async fn webhook(
        &self,
        payload: &[u8],
        signature: Option<&str>,
    ) -> Result<WebhookAck, DomainError> {
        let signature = signature.ok_or(DomainError::InvalidWebhookSignature("missing"))?;
        let payload = std::str::from_utf8(payload)
            .map_err(|_| DomainError::InvalidWebhookSignature("not UTF-8"))?;
        let secret = secrecy::ExposeSecret::expose_secret(&self.stripe.config().webhook_secret);
        let (event_id, event_type) =
            match stripe_webhook::Webhook::construct_event(payload, signature, secret) {
                Ok(event) => (event.id.as_str().to_string(), event.type_.as_str().to_string()),
                // Signed correctly but an object the crate cannot parse: the raw JSON still
                // names the object, which is re-fetched anyway.
                Err(stripe_webhook::WebhookError::BadParse(_)) => {
                    let raw: Value = serde_json::from_str(payload)
                        .map_err(|_| DomainError::InvalidWebhookSignature("unparseable event"))?;
                    (
                        raw["id"].as_str().unwrap_or_default().to_string(),
                        raw["type"].as_str().unwrap_or_default().to_string(),
                    )
                }
                Err(_) => return Err(DomainError::InvalidWebhookSignature("bad signature")),
            };
        // The signature was checked over these exact bytes, so the JSON is Stripe's.
        let raw: Value = serde_json::from_str(payload)
            .map_err(|_| DomainError::InvalidWebhookSignature("unparseable event"))?;
        let outcome = self.apply_event(&event_id, &event_type, &raw["data"]["object"]).await?;
        Ok(WebhookAck { event_id, outcome: outcome.into() })
    }

    /// Applies one event Stripe vouches for (a webhook whose signature was verified, or an
    /// event the catch-up read from Stripe's Events list): ignored unless it is about an
    /// order, dropped when the ledger has it, else applied and then recorded in the ledger.
    pub(super) async fn apply_event(
        &self,
        event_id: &str,
        event_type: &str,
        object: &Value,
    ) -> Result<&'static str, DomainError> {
        let Some(intent_id) = intent_of(event_type, object) else {
            return Ok("ignored");
        };
        if self.store.event_seen(event_id).await? {
            return Ok("duplicate");
        }
        let outcome = self.apply(event_id, event_type, &intent_id).await?;
        self.store.record_event(event_id, event_type, outcome).await?;
        Ok(outcome)
    }

    async fn apply(
        &self,
        event_id: &str,
        event_type: &str,
        intent_id: &str,
    ) -> Result<&'static str, DomainError> {
        let Some(intent) = self.stripe.intent(intent_id).await? else {
            return Ok("ignored");
        };
        let Some(customer) = intent.customer.clone() else { return Ok("unlinked") };
        let Some(user_id) = self.store.member_for_customer(&customer).await? else {
            return Ok("unlinked");
        };
        let cached = self.store.get_order(&user_id, &intent.id).await?;
        let extras = self.extras_for(&intent, cached.as_ref()).await?;
        let (outcome, _) = self.write(&user_id, &customer, &intent, extras, cached).await?;
        let applied = WebhookApplied {
            event_id: event_id.to_string(),
            event_type: event_type.to_string(),
            applied_at: Utc::now(),
        };
        self.store.record_sync(&user_id, SyncMeta::Webhook(&applied)).await?;
        info!(self.log, "webhook applied"; "event_id" => event_id, "event_type" => event_type,
            "user_id" => &user_id, "order_id" => &intent.id, "outcome" => format!("{outcome:?}"));
        Ok("applied")
    }
}

/// The PaymentIntent an event is about, for the event types that change orders.
pub(super) fn intent_of(event_type: &str, object: &Value) -> Option<String> {
    let field = match event_type {
        t if t.starts_with("payment_intent.") => "id",
        "charge.succeeded"
        | "charge.failed"
        | "charge.updated"
        | "charge.refunded"
        | "charge.captured"
        | "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.refund.updated"
        | "refund.created"
        | "refund.updated"
        | "checkout.session.completed" => "payment_intent",
        _ => return None,
    };
    let value = &object[field];
    // Expanded objects carry the id inside.
    value.as_str().or_else(|| value["id"].as_str()).map(str::to_string)
}
