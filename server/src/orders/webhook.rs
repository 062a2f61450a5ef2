//! Stripe webhooks: the signature (before anything else), the processed-event ledger, and
//! applying an event: its own object merged into the cached snapshot (`snapshot::plan`), or,
//! when that object cannot be ordered against the cache or does not say enough, the
//! PaymentIntent re-fetched from Stripe.

use super::snapshot::{build, plan, Plan};
use super::{Extras, OrderService, Outcome, WRITE_ATTEMPTS};
use crate::error::DomainError;
use crate::storage::events::{AppliedWriteError, OrderChange, Received};
use crate::storage::profiles::SyncMeta;
use crate::storage::StoreError;
use crate::stripe::{current_patience, with_patience, Patience, Payload, SparseObject};
use chrono::Utc;
use dashboard_api::{WebhookAck, WebhookApplied};
use serde_json::Value;
use slog::info;
use std::borrow::Cow;
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
        verify_signature(payload, signature, secret, Utc::now().timestamp())
            .map_err(DomainError::InvalidWebhookSignature)?;
        // The signature was checked over these exact bytes, so the JSON is Stripe's.
        let event: Event = serde_json::from_str(payload)
            .map_err(|_| DomainError::InvalidWebhookSignature("unparseable event"))?;
        let (event_id, event_type) = (event.id.into_owned(), event.event_type.into_owned());
        let object = &event.data.object.0;
        let ack =
            |outcome: &str| WebhookAck { event_id: event_id.clone(), outcome: outcome.into() };
        let Some(intent_id) = intent_of(&event_type, object) else {
            return Ok(ack("ignored"));
        };
        if self.done.contains(&event_id) {
            return Ok(ack("duplicate"));
        }
        // No ledger read first: the write that applies the event also records it, on
        // condition that the ledger does not have it already (redeliveries are rare).
        // Boxed: the future is several kilobytes (it holds the SDK call's), and the wrappers
        // below would otherwise copy it whole (memmove was 6% of a webhook's CPU in perf).
        let work = Box::pin(self.apply(&event_id, &event_type, object, &intent_id));
        match with_patience(self.webhook_patience(), work).await {
            // Its effect and its ledger record are stored before the answer.
            Ok(outcome) => {
                self.done.insert(&event_id);
                Ok(ack(outcome))
            }
            // Stored with its object (the members `payload` reads) before the answer, then
            // applied later.
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
    /// order, dropped when the ledger has it, else applied and recorded in the ledger.
    pub(super) async fn apply_event(
        &self,
        event_id: &str,
        event_type: &str,
        object: &Value,
    ) -> Result<&'static str, DomainError> {
        let Some(intent_id) = intent_of(event_type, object) else {
            return Ok("ignored");
        };
        if self.done.contains(event_id) || self.store.event_seen(event_id).await? {
            return Ok("duplicate");
        }
        // Most events the catch-up reads were applied by their webhook: a read says so
        // more cheaply than a write refused by the ledger's condition.
        let outcome = self.apply(event_id, event_type, object, &intent_id).await?;
        self.done.insert(event_id);
        Ok(outcome)
    }

    /// Applies the event's own object to the cached snapshot (see [`plan`]); asks Stripe only
    /// when the object cannot be ordered against the cache or does not say enough. Records the
    /// event in the ledger, with its effect when it has one (`Store::write_applied_event`), and
    /// answers `duplicate` when the ledger had it applied already.
    pub(super) async fn apply(
        &self,
        event_id: &str,
        event_type: &str,
        object: &Value,
        intent_id: &str,
    ) -> Result<&'static str, DomainError> {
        // A webhook waits for its turn no longer than a Stripe call could take it.
        let patience = match current_patience() {
            Patience::Wait => None,
            Patience::Once | Patience::Never => Some(TURN_PATIENCE),
        };
        let mut turn = self.turns.take(intent_id, patience).await;
        let payload = crate::stripe::payload(object);
        // A PaymentIntent, charge or session that names no customer (a guest's) belongs to no
        // member.
        if let Some(
            p @ (Payload::Intent { .. } | Payload::Charge { .. } | Payload::Session { .. }),
        ) = &payload
        {
            if p.customer().is_none() {
                return self.settle(event_id, event_type, "unlinked").await;
            }
        }
        let customer = payload.as_ref().and_then(|p| match p.customer() {
            Some(customer) => Some(customer.to_string()),
            None => self.intent_customers.get(intent_id),
        });
        let (Some(payload), Some(customer)) = (payload, customer) else {
            return self.apply_refetched(event_id, event_type, intent_id).await;
        };
        self.remember_customer(intent_id, &customer);
        // The snapshot this process wrote or read last stands in for a read: if another
        // writer has moved it since, or the member no longer holds the customer, the write's
        // conditions say so and it is read again.
        let (user_id, mut cached) = match self.recent.get(intent_id, &customer) {
            Some(record) => (record.user_id.clone(), Some(record)),
            None => {
                let user_id = match self.members.get(&customer) {
                    Some(user_id) => user_id,
                    // An event about someone who is not a member costs no Stripe request.
                    None => match self.store.member_for_customer(&customer).await? {
                        Some(user_id) => {
                            self.members.insert(customer.clone(), user_id.clone());
                            user_id
                        }
                        None => return self.settle(event_id, event_type, "unlinked").await,
                    },
                };
                // An order's first event (`payment_intent.created`, with its items in the
                // metadata) plans a whole snapshot: written on condition that no order
                // exists, it needs no read; if one does, the write says so and it is read.
                let whole = matches!(plan(&payload, None, Utc::now()), Plan::Build(..));
                let cached = match whole {
                    true => None,
                    false => self.store.get_order(&user_id, intent_id).await?,
                };
                (user_id, cached)
            }
        };
        let mut yielded = false;
        for _ in 0..WRITE_ATTEMPTS {
            let now = Utc::now();
            let fresh = match plan(&payload, cached.as_ref(), now) {
                Plan::Nothing => None,
                Plan::Refetch => {
                    // No order to apply this event to: if other events of the intent wait,
                    // its first may be among them (Stripe sends them together, and they can
                    // overtake each other on the way in); let them go first, once, and plan
                    // against what they wrote before asking Stripe.
                    if cached.is_none() && !yielded && turn.let_waiting_go_first().await {
                        yielded = true;
                        cached = self.recent.get(intent_id, &customer);
                        if cached.is_some() {
                            continue;
                        }
                    }
                    return self.apply_refetched(event_id, event_type, intent_id).await;
                }
                Plan::FetchItems(session, intent) => {
                    if self.store.event_seen(event_id).await? {
                        return Ok("duplicate");
                    }
                    let items = self.stripe.session_items(&session).await?;
                    let extras = Extras { items: Some(items), ..Extras::default() };
                    Some(build(&user_id, &customer, &intent, &extras, cached.as_ref(), now))
                }
                Plan::Build(intent, extras) => {
                    Some(build(&user_id, &customer, &intent, &extras, cached.as_ref(), now))
                }
            };
            // Equal content is never rewritten, and an event that changes nothing is only
            // recorded in the ledger: one PutItem instead of a transaction of three items
            // (a transactional write costs twice the capacity of a plain one:
            // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).
            // Nothing guards the member's link then, as nothing of theirs is written.
            let fresh = fresh.filter(|f| cached.as_ref().is_none_or(|old| !old.same_content(f)));
            let Some(fresh) = fresh else {
                let outcome = self.settle(event_id, event_type, "applied").await?;
                if let Some(cached) = cached {
                    self.recent.put(intent_id, cached);
                }
                if outcome == "applied" {
                    let unchanged = Outcome::Unchanged;
                    self.log_applied(event_id, event_type, &user_id, intent_id, unchanged);
                }
                return Ok(outcome);
            };
            let change = OrderChange {
                record: &fresh,
                expected_version: cached.as_ref().map(|old| old.version),
            };
            let outcome = match &cached {
                Some(_) => Outcome::Updated,
                None => Outcome::Created,
            };
            let applied = WebhookApplied {
                event_id: event_id.to_string(),
                event_type: event_type.to_string(),
                applied_at: now,
            };
            let write = self.store.write_applied_event(change, &user_id, &customer, &applied);
            match write.await {
                Ok(()) => {
                    self.recent.put(intent_id, fresh);
                    self.log_applied(event_id, event_type, &user_id, intent_id, outcome);
                    return Ok("applied");
                }
                Err(AppliedWriteError::Duplicate) => return Ok("duplicate"),
                // Another writer got there first: plan again against what it wrote.
                Err(AppliedWriteError::OrderChanged) => {
                    self.recent.forget(intent_id);
                    cached = self.store.get_order(&user_id, intent_id).await?;
                    if cached.is_none() {
                        // Deleted meanwhile (a relink's clean-up, an erasure).
                        return self.apply_refetched(event_id, event_type, intent_id).await;
                    }
                }
                // Relinked, unlinked or erased since the member was looked up: whose order
                // this is now is Stripe's and the current links' to say.
                Err(AppliedWriteError::NotLinked) => {
                    self.recent.forget(intent_id);
                    self.members.remove(&customer);
                    return self.apply_refetched(event_id, event_type, intent_id).await;
                }
                Err(AppliedWriteError::Store(error)) => {
                    self.recent.forget(intent_id);
                    return Err(error.into());
                }
            }
        }
        Err(DomainError::Store(StoreError::Unavailable("write contention".into())))
    }

    /// Records an event whose effect, if any, is stored (its outcome says what it did) in
    /// the ledger; `duplicate` when the ledger had it done already.
    async fn settle(
        &self,
        event_id: &str,
        event_type: &str,
        outcome: &'static str,
    ) -> Result<&'static str, DomainError> {
        match self.store.record_event(event_id, event_type, outcome).await? {
            true => Ok(outcome),
            false => Ok("duplicate"),
        }
    }

    fn log_applied(
        &self,
        event_id: &str,
        event_type: &str,
        user_id: &str,
        order_id: &str,
        outcome: Outcome,
    ) {
        info!(self.log, "webhook applied"; "event_id" => event_id, "event_type" => event_type,
            "user_id" => user_id, "order_id" => order_id, "outcome" => format!("{outcome:?}"));
    }

    fn remember_customer(&self, intent_id: &str, customer: &str) {
        // Bounded: forgetting costs one re-fetch per intent, never a wrong answer.
        self.intent_customers.insert(intent_id.to_string(), customer.to_string());
    }

    /// Applies the event from Stripe's current state: the PaymentIntent re-fetched with its
    /// charges (and disputes and Checkout items when needed), unless the ledger has the event
    /// applied already (a redelivery costs no Stripe request). Records the event in the ledger.
    pub(super) async fn apply_refetched(
        &self,
        event_id: &str,
        event_type: &str,
        intent_id: &str,
    ) -> Result<&'static str, DomainError> {
        if self.store.event_seen(event_id).await? {
            return Ok("duplicate");
        }
        let Some(intent) = self.stripe.intent(intent_id).await? else {
            return self.settle(event_id, event_type, "ignored").await;
        };
        let Some(customer) = intent.customer.clone() else {
            return self.settle(event_id, event_type, "unlinked").await;
        };
        self.remember_customer(intent_id, &customer);
        let Some(user_id) = self.store.member_for_customer(&customer).await? else {
            self.members.remove(&customer);
            return self.settle(event_id, event_type, "unlinked").await;
        };
        self.members.insert(customer.clone(), user_id.clone());
        let cached = self.store.get_order(&user_id, &intent.id).await?;
        let extras = self.extras_for(&intent, cached.as_ref()).await?;
        let (outcome, stored) = self.write(&user_id, &customer, &intent, extras, cached).await?;
        self.recent.put(&intent.id, stored);
        if !matches!(outcome, Outcome::Unchanged) {
            let applied = WebhookApplied {
                event_id: event_id.to_string(),
                event_type: event_type.to_string(),
                applied_at: Utc::now(),
            };
            self.store.record_sync(&user_id, SyncMeta::Webhook(&applied)).await?;
        }
        self.log_applied(event_id, event_type, &user_id, &intent.id, outcome);
        self.settle(event_id, event_type, "applied").await
    }
}

/// Events this process stored as done (applied, or settled as `unlinked` or `ignored`), so
/// that a redelivery answers `duplicate` without a store call. The ledger keeps them for 30
/// days; an entry here is trusted for one, and a miss costs what it did before (the write the
/// ledger's condition refuses, or the catch-up's read).
pub(super) struct DoneEvents(quick_cache::sync::Cache<String, i64>);

/// How long [`DoneEvents`] trusts an entry (well inside the ledger's 30 days).
const DONE_TRUSTED_SECS: i64 = 24 * 3600;

impl Default for DoneEvents {
    fn default() -> Self {
        DoneEvents(quick_cache::sync::Cache::new(65_536))
    }
}

impl DoneEvents {
    fn contains(&self, event_id: &str) -> bool {
        self.0.get(event_id).is_some_and(|until| until > Utc::now().timestamp())
    }

    fn insert(&self, event_id: &str) {
        self.0.insert(event_id.to_string(), Utc::now().timestamp() + DONE_TRUSTED_SECS);
    }
}

/// Stripe's signature scheme, as "Verify signatures manually" describes it
/// (https://docs.stripe.com/webhooks#verify-manually): the header's `t` and its `v1` entries
/// (others, `v0` among them, are ignored); the HMAC-SHA256 of `{t}.{payload}` under the
/// endpoint's secret must equal one `v1` (compared in constant time), and `t` must be within
/// five minutes of `now`. `stripe_webhook::Webhook::construct_event` checks the same and then
/// parses the whole event into async-stripe's types, which this path does not read: that parse
/// was a tenth of a webhook's CPU. The crate's own header generator checks this in the tests.
fn verify_signature(
    payload: &str,
    header: &str,
    secret: &str,
    now: i64,
) -> Result<(), &'static str> {
    use hmac::{Hmac, Mac};
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for pair in header.split(',') {
        match pair.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("no timestamp in the signature header")?;
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "unusable secret")?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    let matches = candidates
        .iter()
        .filter_map(|candidate| hex::decode(candidate).ok())
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if !matches {
        return Err("bad signature");
    }
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err("signature too old");
    }
    Ok(())
}

/// How far a signature's timestamp may be from now (Stripe's libraries' default).
const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// How long a webhook waits for its intent's turn (`turns`) before it goes on without.
const TURN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a webhook reads of a Stripe event (https://docs.stripe.com/api/events/object): its id,
/// its type, and of `data.object` only what applying it needs (see [`SparseObject`]). A member
/// that is absent reads as empty, as the order routing ignores such an event.
#[derive(serde::Deserialize)]
struct Event<'a> {
    #[serde(default, borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", default, borrow)]
    event_type: Cow<'a, str>,
    #[serde(default)]
    data: EventData,
}

#[derive(Default, serde::Deserialize)]
struct EventData {
    #[serde(default)]
    object: SparseObject,
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

#[cfg(test)]
mod tests {
    use super::verify_signature;
    use stripe_webhook::Webhook;

    const SECRET: &str = "whsec_test";
    const PAYLOAD: &str = r#"{"id":"evt_1","type":"payment_intent.created"}"#;

    /// The routing reads an event's object sparsely: it must route every kind it handles as
    /// the whole object does, expanded ids included.
    #[test]
    fn routes_a_sparse_object_as_the_whole_object() {
        use super::{intent_of, Event};
        for (kind, member) in [
            ("payment_intent.succeeded", "id"),
            ("charge.refunded", "payment_intent"),
            ("charge.dispute.created", "payment_intent"),
            ("refund.updated", "payment_intent"),
            ("checkout.session.completed", "payment_intent"),
        ] {
            for id in [serde_json::json!("pi_1"), serde_json::json!({ "id": "pi_1" })] {
                let object = serde_json::json!({ member: id, "object": "x", "noise": [1, 2] });
                let body = serde_json::json!({ "id": "evt_1", "type": kind,
                    "data": { "object": object, "previous_attributes": {} } });
                let text = body.to_string();
                let event: Event = serde_json::from_str(&text).unwrap();
                assert_eq!((&*event.id, &*event.event_type), ("evt_1", kind));
                let routed = intent_of(&event.event_type, &event.data.object.0);
                assert_eq!(routed, intent_of(kind, &object));
                assert_eq!(routed.as_deref(), Some("pi_1"));
            }
        }
        let bare: Event =
            serde_json::from_str(r#"{"id":"evt_2","type":"customer.created"}"#).unwrap();
        assert_eq!(intent_of(&bare.event_type, &bare.data.object.0), None);
    }

    #[test]
    fn accepts_what_stripe_signs() {
        let header = Webhook::generate_test_header(PAYLOAD, SECRET, Some(1_700_000_000));
        assert_eq!(verify_signature(PAYLOAD, &header, SECRET, 1_700_000_100), Ok(()));
        // Another scheme's entry and a rotated secret's signature beside the good one.
        let v1 = header.split_once(",v1=").unwrap().1;
        let rotated = format!("t=1700000000,v0=abc,v1={},v1={v1}", "0".repeat(64));
        assert_eq!(verify_signature(PAYLOAD, &rotated, SECRET, 1_700_000_000), Ok(()));
    }

    #[test]
    fn refuses_a_tampered_payload_a_wrong_secret_an_old_signature_or_no_signature() {
        let header = Webhook::generate_test_header(PAYLOAD, SECRET, Some(1_700_000_000));
        let tampered = PAYLOAD.replace("created", "succeeded");
        assert_eq!(
            verify_signature(&tampered, &header, SECRET, 1_700_000_000),
            Err("bad signature")
        );
        assert_eq!(
            verify_signature(PAYLOAD, &header, "whsec_other", 1_700_000_000),
            Err("bad signature")
        );
        assert_eq!(
            verify_signature(PAYLOAD, &header, SECRET, 1_700_000_301),
            Err("signature too old")
        );
        let v0_only = header.replace("v1=", "v0=");
        assert_eq!(
            verify_signature(PAYLOAD, &v0_only, SECRET, 1_700_000_000),
            Err("bad signature")
        );
        assert!(verify_signature(PAYLOAD, "garbage", SECRET, 1_700_000_000).is_err());
        assert!(verify_signature(PAYLOAD, "v1=00", SECRET, 1_700_000_000).is_err());
    }
}
