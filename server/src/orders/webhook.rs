//! Stripe webhooks: the signature (before anything else), the processed-event ledger, and
//! applying an event: its own object merged into the cached snapshot (`snapshot::plan`), or,
//! when that object cannot be ordered against the cache or does not say enough, the
//! PaymentIntent re-fetched from Stripe.

use super::snapshot::{build, plan, Plan};
use super::{Extras, OrderService, Outcome, WRITE_ATTEMPTS};
use crate::error::DomainError;
use crate::storage::events::Received;
use crate::storage::profiles::SyncMeta;
use crate::storage::StoreError;
use crate::stripe::{with_patience, Payload};
use chrono::Utc;
use dashboard_api::{WebhookAck, WebhookApplied};
use serde_json::Value;
use slog::info;
use std::sync::Arc;

impl OrderService {
    /// Verifies and applies one Stripe event, or stores it and defers it when applying it now
    /// would need a Stripe read that the budget or Stripe refuses (see `ledger`). Nothing is
    /// acknowledged that was not stored (its effect and its ledger record, or the event itself
    /// as pending): a failure to store is an error, which the handler turns into a 5xx.
    pub async fn webhook(
        self: &Arc<Self>,
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
        let object = &raw["data"]["object"];
        let ack =
            |outcome: &str| WebhookAck { event_id: event_id.clone(), outcome: outcome.into() };
        let Some(intent_id) = intent_of(&event_type, object) else {
            return Ok(ack("ignored"));
        };
        if self.store.event_seen(&event_id).await? {
            return Ok(ack("duplicate"));
        }
        let work = self.apply(&event_id, &event_type, object, &intent_id);
        match with_patience(self.webhook_patience(), work).await {
            // Its effect is stored: the ledger says so before the answer.
            Ok(outcome) => {
                self.store.record_event(&event_id, &event_type, outcome).await?;
                Ok(ack(outcome))
            }
            // Stored with its object before the answer, then applied later.
            Err(error) if Self::deferrable(&error) => {
                let stored = object.to_string();
                match self.store.receive_event(&event_id, &event_type, &intent_id, &stored).await? {
                    Received::Done => return Ok(ack("duplicate")),
                    Received::New | Received::Pending => {}
                }
                self.defer(&event_id).await?;
                info!(self.log, "webhook deferred"; "event_id" => &event_id,
                    "event_type" => &event_type, "reason" => error.to_string());
                Ok(ack("queued"))
            }
            Err(other) => Err(other),
        }
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
        let outcome = self.apply(event_id, event_type, object, &intent_id).await?;
        self.store.record_event(event_id, event_type, outcome).await?;
        Ok(outcome)
    }

    /// Applies the event's own object to the cached snapshot (see [`plan`]); asks Stripe only
    /// when the object cannot be ordered against the cache or does not say enough.
    pub(super) async fn apply(
        &self,
        event_id: &str,
        event_type: &str,
        object: &Value,
        intent_id: &str,
    ) -> Result<&'static str, DomainError> {
        let payload = crate::stripe::payload(object);
        // A PaymentIntent, charge or session that names no customer (a guest's) belongs to no
        // member.
        if let Some(
            p @ (Payload::Intent { .. } | Payload::Charge { .. } | Payload::Session { .. }),
        ) = &payload
        {
            if p.customer().is_none() {
                return Ok("unlinked");
            }
        }
        let customer = payload.as_ref().and_then(|p| match p.customer() {
            Some(customer) => Some(customer.to_string()),
            None => self.intent_customers.lock().unwrap().get(intent_id).cloned(),
        });
        let (Some(payload), Some(customer)) = (payload, customer) else {
            return self.apply_refetched(event_id, event_type, intent_id).await;
        };
        self.remember_customer(intent_id, &customer);
        // An event about someone who is not a member costs no Stripe request.
        let Some(user_id) = self.store.member_for_customer(&customer).await? else {
            return Ok("unlinked");
        };
        let mut cached = self.store.get_order(&user_id, intent_id).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let now = Utc::now();
            let (intent, extras) = match plan(&payload, cached.as_ref(), now) {
                Plan::Nothing => {
                    return self.applied(event_id, event_type, &user_id, intent_id, None).await
                }
                Plan::Refetch => {
                    return self.apply_refetched(event_id, event_type, intent_id).await;
                }
                Plan::FetchItems(session, intent) => {
                    let items = self.stripe.session_items(&session).await?;
                    (intent, Extras { items: Some(items), ..Extras::default() })
                }
                Plan::Build(intent, extras) => (intent, extras),
            };
            let fresh = build(&user_id, &customer, &intent, &extras, cached.as_ref(), now);
            let result = match &cached {
                Some(old) if old.same_content(&fresh) => {
                    return self.applied(event_id, event_type, &user_id, intent_id, None).await
                }
                Some(old) => {
                    self.store.replace_order(&fresh, old.version).await.map(|()| Outcome::Updated)
                }
                None => self.store.insert_order(&fresh).await.map(|()| Outcome::Created),
            };
            match result {
                Ok(outcome) => {
                    let outcome = Some(outcome);
                    return self.applied(event_id, event_type, &user_id, intent_id, outcome).await;
                }
                // Another writer got there first: plan again against what it wrote.
                Err(StoreError::ConditionFailed) => {
                    cached = self.store.get_order(&user_id, intent_id).await?;
                    if cached.is_none() {
                        // The insert failed on the profile condition (see `write`).
                        return self.apply_refetched(event_id, event_type, intent_id).await;
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(DomainError::Store(StoreError::Unavailable("write contention".into())))
    }

    fn remember_customer(&self, intent_id: &str, customer: &str) {
        let mut known = self.intent_customers.lock().unwrap();
        // Bounded: forgetting costs one re-fetch per intent, never a wrong answer.
        if known.len() >= MAX_KNOWN_INTENTS {
            known.clear();
        }
        known.insert(intent_id.to_string(), customer.to_string());
    }

    /// Records that the member's order took the event into account.
    async fn applied(
        &self,
        event_id: &str,
        event_type: &str,
        user_id: &str,
        intent_id: &str,
        outcome: Option<Outcome>,
    ) -> Result<&'static str, DomainError> {
        let applied = WebhookApplied {
            event_id: event_id.to_string(),
            event_type: event_type.to_string(),
            applied_at: Utc::now(),
        };
        self.store.record_sync(user_id, SyncMeta::Webhook(&applied)).await?;
        let outcome = outcome.unwrap_or(Outcome::Unchanged);
        info!(self.log, "webhook applied"; "event_id" => event_id, "event_type" => event_type,
            "user_id" => user_id, "order_id" => intent_id, "outcome" => format!("{outcome:?}"));
        Ok("applied")
    }

    /// Applies the event from Stripe's current state: the PaymentIntent re-fetched with its
    /// charges (and disputes and Checkout items when needed).
    pub(super) async fn apply_refetched(
        &self,
        event_id: &str,
        event_type: &str,
        intent_id: &str,
    ) -> Result<&'static str, DomainError> {
        let Some(intent) = self.stripe.intent(intent_id).await? else {
            return Ok("ignored");
        };
        let Some(customer) = intent.customer.clone() else { return Ok("unlinked") };
        self.remember_customer(intent_id, &customer);
        let Some(user_id) = self.store.member_for_customer(&customer).await? else {
            return Ok("unlinked");
        };
        let cached = self.store.get_order(&user_id, &intent.id).await?;
        let extras = self.extras_for(&intent, cached.as_ref()).await?;
        let (outcome, _) = self.write(&user_id, &customer, &intent, extras, cached).await?;
        self.applied(event_id, event_type, &user_id, &intent.id, Some(outcome)).await
    }
}

/// PaymentIntents whose customer is remembered (a few MB at most).
const MAX_KNOWN_INTENTS: usize = 100_000;

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
