//! Order domain: Stripe PaymentIntents become cached order snapshots, kept fresh by webhooks,
//! reconcile runs (manual, stale-triggered, scheduled) and a live fallback for missing orders.
//!
//! Correctness rule: a snapshot is always computed from Stripe's current state (the object is
//! re-fetched, never taken from an event payload), merged with what the cache already knows,
//! and written with a condition on the stored version. Events that arrive late, twice or out of
//! order therefore cannot move a snapshot backwards, and equal content is never rewritten.

use crate::auth::Identity;
use crate::cursor::CursorKey;
use crate::error::DomainError;
use crate::storage::orders::{OrderQuery, OrderRecord, OrderSummaryRecord};
use crate::storage::profiles::SyncMeta;
use crate::storage::{Store, StoreError};
use crate::stripe::{timestamp, Intent, StripeApi, StripeFailure};
use chrono::{DateTime, Utc};
use dashboard_api::{
    Order, OrderCharge, OrderDispute, OrderFilters, OrderItem, OrderRefund, OrderStatus,
    OrderSummary, OrdersPage, OrdersPageSelector, SyncError, SyncReport, SyncStatus, WebhookAck,
    WebhookApplied,
};
use dropshot::{PaginationParams, WhichPage};
use serde_json::Value;
use slog::{info, warn, Logger};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Order settings, resolved.
#[derive(Clone, Debug)]
pub struct OrdersConfig {
    /// A member's orders older than this are refreshed in the background on listing.
    pub stale_after: Duration,
    /// HMAC key for page tokens.
    pub cursor_key: Vec<u8>,
    /// Scope or group that admin endpoints require.
    pub admin_scope: String,
    /// How many members the scheduled reconcile works on at once.
    pub schedule_concurrency: usize,
    /// Where stale refreshes go when they cannot run in this process (Lambda).
    pub refresh_queue_url: Option<String>,
}

pub struct OrderService {
    store: Store,
    /// Set with `refresh_queue_url`: refreshes are queued, not run here.
    queue: Option<aws_sdk_sqs::Client>,
    stripe: StripeApi,
    cursor: CursorKey,
    config: OrdersConfig,
    refreshing: Mutex<HashSet<String>>,
    log: Logger,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Fresh Stripe data that a PaymentIntent read alone does not carry.
#[derive(Default)]
struct Extras {
    /// Every charge of the intent (otherwise only the latest is known).
    charges: Option<Vec<OrderCharge>>,
    disputes: Option<Vec<OrderDispute>>,
    /// Checkout Session line items.
    items: Option<Vec<OrderItem>>,
}

const LIMIT_DEFAULT: u32 = 20;
const LIMIT_MAX: u32 = dashboard_api::ORDERS_LIMIT_MAX;
/// Conditional-write retries when another writer got there first.
const WRITE_ATTEMPTS: usize = 4;

impl From<StripeFailure> for DomainError {
    fn from(failure: StripeFailure) -> Self {
        DomainError::Upstream(failure.to_string())
    }
}

impl OrderService {
    pub fn new(
        store: Store,
        stripe: StripeApi,
        config: OrdersConfig,
        queue: Option<aws_sdk_sqs::Client>,
        log: Logger,
    ) -> Self {
        OrderService {
            store,
            queue,
            stripe,
            cursor: CursorKey::new(&config.cursor_key),
            config,
            refreshing: Mutex::new(HashSet::new()),
            log,
        }
    }

    pub fn stripe(&self) -> &StripeApi {
        &self.stripe
    }

    pub fn require_admin(&self, identity: &Identity) -> Result<(), DomainError> {
        if identity.scopes.iter().any(|s| s == &self.config.admin_scope) {
            Ok(())
        } else {
            Err(DomainError::Forbidden)
        }
    }

    // ----- reads -------------------------------------------------------------------------

    pub async fn list(
        self: &Arc<Self>,
        user_id: &str,
        params: &PaginationParams<OrderFilters, OrdersPageSelector>,
        limit: Option<u32>,
    ) -> Result<OrdersPage, DomainError> {
        let limit = limit.unwrap_or(LIMIT_DEFAULT);
        if limit > LIMIT_MAX {
            return Err(DomainError::invalid("invalid_limit", "limit", "must be from 1 to 100"));
        }
        let (status, after, before, below) = match &params.page {
            WhichPage::First(filters) => {
                if let (Some(a), Some(b)) = (filters.created_after, filters.created_before) {
                    if a >= b {
                        return Err(DomainError::invalid(
                            "invalid_date_range",
                            "createdBefore",
                            "must be later than createdAfter",
                        ));
                    }
                }
                let after = filters.created_after.map(|t| t.timestamp().max(0));
                let before = filters.created_before.map(|t| t.timestamp().max(0));
                (filters.status, after, before, None)
            }
            WhichPage::Next(selector) => {
                if !self.cursor.verify(user_id, selector) {
                    return Err(DomainError::InvalidPageToken);
                }
                (selector.s, selector.a, selector.b, Some(selector.k.clone()))
            }
        };
        let query = OrderQuery {
            user_id,
            status,
            from_key: after.map(|a| format!("{a:012}#")),
            below_key: below.or_else(|| before.map(|b| format!("{b:012}#"))),
            limit: limit as usize,
        };
        let (page, profile) =
            tokio::join!(self.store.list_orders(&query), self.store.get_profile(user_id));
        let (page, profile) = (page?, profile?);
        let synced_at = profile.as_ref().and_then(|p| p.orders_synced_at);
        let linked = profile.as_ref().is_some_and(|p| p.stripe_customer_id.is_some());
        let stale = linked && synced_at.is_none_or(|at| self.is_stale(at));
        let mut queued = false;
        if stale {
            queued = self.request_refresh(user_id).await;
        }
        let next_page = match (page.more, page.orders.last()) {
            (true, Some(last)) => {
                let selector = self.cursor.sign(user_id, &last.created_key, status, after, before);
                let results = dropshot::ResultsPage::new(vec![()], &(), |_, _| selector.clone())
                    .map_err(|e| DomainError::Store(StoreError::Internal(e.internal_message)))?;
                results.next_page
            }
            _ => None,
        };
        Ok(OrdersPage {
            items: page.orders.iter().map(summary).collect(),
            next_page,
            synced_at,
            stale,
            refreshing: queued || self.refreshing.lock().unwrap().contains(user_id),
        })
    }

    fn is_stale(&self, at: DateTime<Utc>) -> bool {
        let age = Utc::now().signed_duration_since(at);
        age.to_std().unwrap_or_default() > self.config.stale_after
    }

    /// One order; a missing snapshot is fetched from Stripe, checked and cached.
    pub async fn detail(&self, user_id: &str, order_id: &str) -> Result<Order, DomainError> {
        if let Some(record) = self.store.get_order(user_id, order_id).await? {
            return Ok(order(record));
        }
        let well_formed = order_id.starts_with("pi_")
            && order_id.len() <= 255
            && order_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return Err(DomainError::NotFound);
        }
        let profile = self.store.get_profile(user_id).await?;
        let Some(customer) = profile.and_then(|p| p.stripe_customer_id) else {
            return Err(DomainError::NotFound);
        };
        let Some(intent) = self.stripe.intent(order_id).await? else {
            return Err(DomainError::NotFound);
        };
        // Another customer's payment is not this member's business: same answer as missing.
        if intent.customer.as_deref() != Some(customer.as_str()) {
            return Err(DomainError::NotFound);
        }
        let extras = self.extras_for(&intent, None).await?;
        let (_, record) = self.write(user_id, &customer, &intent, extras, None).await?;
        Ok(order(record))
    }

    pub async fn sync_status(&self, user_id: &str) -> Result<SyncStatus, DomainError> {
        let Some(profile) = self.store.get_profile(user_id).await? else {
            return Ok(SyncStatus::default());
        };
        Ok(SyncStatus {
            stripe_customer_id: profile.stripe_customer_id,
            last_webhook: profile.last_webhook,
            last_reconcile: profile.last_reconcile,
            last_error: profile.last_sync_error,
        })
    }

    // ----- writes ------------------------------------------------------------------------

    /// Fetches what an intent read lacks: every charge, disputes when disputed, and Checkout
    /// line items when the intent's metadata has none and the cache has none either.
    async fn extras_for(
        &self,
        intent: &Intent,
        cached: Option<&OrderRecord>,
    ) -> Result<Extras, DomainError> {
        let disputed = intent.latest_charge.as_ref().is_some_and(|c| c.charge.disputed);
        let needs_items = metadata_items(&intent.metadata).is_empty()
            && cached.is_none_or(|c| c.items.is_empty());
        let charges = self.stripe.charges(&intent.id).await?;
        let disputes = if disputed { Some(self.stripe.disputes(&intent.id).await?) } else { None };
        let items =
            if needs_items { Some(self.stripe.checkout_items(&intent.id).await?) } else { None };
        Ok(Extras { charges: Some(charges), disputes, items })
    }

    /// Builds the snapshot from Stripe's state and the cache (`cached`, as the caller last
    /// read it), writes it if it changed, and returns what is stored now.
    async fn write(
        &self,
        user_id: &str,
        customer: &str,
        intent: &Intent,
        extras: Extras,
        mut cached: Option<OrderRecord>,
    ) -> Result<(Outcome, OrderRecord), DomainError> {
        for _ in 0..WRITE_ATTEMPTS {
            let now = Utc::now();
            let fresh = build(user_id, customer, intent, &extras, cached.as_ref(), now);
            let result = match cached {
                Some(old) if old.same_content(&fresh) => return Ok((Outcome::Unchanged, old)),
                Some(ref old) => {
                    self.store.replace_order(&fresh, old.version).await.map(|()| Outcome::Updated)
                }
                None => self.store.insert_order(&fresh).await.map(|()| Outcome::Created),
            };
            match result {
                Ok(outcome) => return Ok((outcome, fresh)),
                // Someone else wrote first: merge with what they wrote and try again.
                Err(StoreError::ConditionFailed) => {
                    cached = self.store.get_order(user_id, &intent.id).await?;
                    if cached.is_none() {
                        // The insert failed on the profile condition: nowhere to count it.
                        return Err(DomainError::Store(StoreError::Internal(format!(
                            "cannot cache order {} for {user_id}: no profile",
                            intent.id
                        ))));
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(DomainError::Store(StoreError::Unavailable("write contention".into())))
    }

    /// Reconciles one member: pages through the customer's PaymentIntents newest first and
    /// writes only the snapshots that changed.
    pub async fn reconcile(&self, user_id: &str) -> Result<SyncReport, DomainError> {
        crate::validate::user_id("userId", user_id)?;
        let started_requests = self.stripe.requests();
        let result = self.reconcile_inner(user_id, started_requests).await;
        crate::metrics::reconcile(&self.log, result.as_ref().ok());
        match &result {
            Ok(report) => {
                self.store.record_sync(user_id, SyncMeta::Reconciled(report)).await?;
                info!(self.log, "reconcile finished";
                    "user_id" => user_id, "seen" => report.seen, "created" => report.created,
                    "updated" => report.updated, "unchanged" => report.unchanged,
                    "stripe_requests" => report.stripe_requests);
            }
            Err(error) => {
                warn!(self.log, "reconcile failed"; "user_id" => user_id, "error" => error.to_string());
                let failure = SyncError { at: Utc::now(), message: error.to_string() };
                let _ = self.store.record_sync(user_id, SyncMeta::Failed(&failure)).await;
            }
        }
        result
    }

    async fn reconcile_inner(
        &self,
        user_id: &str,
        started_requests: u64,
    ) -> Result<SyncReport, DomainError> {
        let mut report = SyncReport { user_id: user_id.to_string(), ..Default::default() };
        let profile = self.store.get_profile(user_id).await?;
        let Some(customer) = profile.and_then(|p| p.stripe_customer_id) else {
            report.finished_at = Some(Utc::now());
            return Ok(report);
        };
        let cached = self.store.all_orders(user_id).await?;
        let mut checkout_items: Option<HashMap<String, Vec<OrderItem>>> = None;
        let mut after: Option<String> = None;
        loop {
            let (intents, more) = self.stripe.intents_page(&customer, after.as_deref()).await?;
            after = intents.last().map(|i| i.id.clone());
            for intent in &intents {
                report.seen += 1;
                let old = cached.get(&intent.id);
                let mut extras = Extras::default();
                let disputed = intent.latest_charge.as_ref().is_some_and(|c| c.charge.disputed);
                if disputed && old.is_none_or(|o| o.disputes.is_empty()) {
                    extras.disputes = Some(self.stripe.disputes(&intent.id).await?);
                }
                let needs_items = metadata_items(&intent.metadata).is_empty()
                    && old.is_none_or(|o| o.items.is_empty());
                if needs_items {
                    if checkout_items.is_none() {
                        // One paged listing of the customer's sessions serves every order.
                        checkout_items =
                            Some(self.stripe.checkout_items_by_intent(&customer).await?);
                    }
                    extras.items = checkout_items.as_ref().and_then(|m| m.get(&intent.id).cloned());
                }
                // Unchanged orders cost no store read: compare with the cached copy first.
                if let Some(old) = old {
                    let fresh = build(user_id, &customer, intent, &extras, Some(old), Utc::now());
                    if old.same_content(&fresh) {
                        report.unchanged += 1;
                        continue;
                    }
                }
                match self.write(user_id, &customer, intent, extras, old.cloned()).await?.0 {
                    Outcome::Created => report.created += 1,
                    Outcome::Updated => report.updated += 1,
                    Outcome::Unchanged => report.unchanged += 1,
                }
            }
            if !more || after.is_none() {
                break;
            }
        }
        report.stripe_requests = self.stripe.requests() - started_requests;
        report.finished_at = Some(Utc::now());
        Ok(report)
    }

    /// Asks for a refresh of the member's orders: an SQS message when a queue is configured
    /// (returns true once it is sent), else a background task in this process. A failure to
    /// queue is logged; the listing is answered from the cache either way.
    async fn request_refresh(self: &Arc<Self>, user_id: &str) -> bool {
        let (Some(queue), Some(url)) = (&self.queue, &self.config.refresh_queue_url) else {
            self.refresh_in_background(user_id);
            return false;
        };
        let body = serde_json::json!({ "userId": user_id }).to_string();
        match queue.send_message().queue_url(url).message_body(body).send().await {
            Ok(_) => true,
            Err(error) => {
                warn!(self.log, "could not queue a refresh"; "user_id" => user_id,
                    "error" => aws_sdk_sqs::error::DisplayErrorContext(error).to_string());
                false
            }
        }
    }

    /// Starts a reconcile for the member unless one is already running.
    pub fn refresh_in_background(self: &Arc<Self>, user_id: &str) {
        if !self.refreshing.lock().unwrap().insert(user_id.to_string()) {
            return;
        }
        let service = Arc::clone(self);
        let user_id = user_id.to_string();
        tokio::spawn(async move {
            let _ = service.reconcile(&user_id).await;
            service.refreshing.lock().unwrap().remove(&user_id);
        });
    }

    /// Reconciles every linked member, a few at a time.
    pub async fn reconcile_all(&self) -> Result<dashboard_api::ScheduledSyncReport, DomainError> {
        use futures::StreamExt;
        let members = self.store.linked_members().await?;
        let results: Vec<_> = futures::stream::iter(members)
            .map(|(user_id, _)| async move { self.reconcile(&user_id).await })
            .buffer_unordered(self.config.schedule_concurrency.max(1))
            .collect()
            .await;
        let mut report = dashboard_api::ScheduledSyncReport::default();
        for result in results {
            report.members += 1;
            match result {
                Ok(r) => {
                    report.totals.seen += r.seen;
                    report.totals.created += r.created;
                    report.totals.updated += r.updated;
                    report.totals.unchanged += r.unchanged;
                    report.totals.stripe_requests += r.stripe_requests;
                }
                Err(_) => report.failed += 1,
            }
        }
        report.totals.finished_at = Some(Utc::now());
        Ok(report)
    }

    pub async fn link(
        &self,
        user_id: &str,
        customer: &str,
    ) -> Result<crate::storage::profiles::ProfileItem, DomainError> {
        crate::validate::user_id("userId", user_id)?;
        crate::validate::stripe_customer_id(customer)?;
        if let Some(owner) = self.store.member_for_customer(customer).await? {
            if owner != user_id {
                return Err(DomainError::Conflict("customer_already_linked"));
            }
        }
        match self.store.link_customer(user_id, customer).await {
            Ok(profile) => Ok(profile),
            Err(StoreError::ConditionFailed) => Err(DomainError::MemberNotFound),
            Err(other) => Err(other.into()),
        }
    }

    // ----- webhooks ----------------------------------------------------------------------

    /// Verifies, de-duplicates and applies one Stripe event. Nothing is acknowledged that was
    /// not stored: any failure is an error, which the handler turns into a 5xx.
    pub async fn webhook(
        &self,
        payload: &[u8],
        signature: Option<&str>,
    ) -> Result<WebhookAck, DomainError> {
        let signature = signature.ok_or(DomainError::InvalidSignature("missing"))?;
        let payload =
            std::str::from_utf8(payload).map_err(|_| DomainError::InvalidSignature("not UTF-8"))?;
        let secret = &self.stripe.config().webhook_secret;
        let (event_id, event_type) =
            match stripe_webhook::Webhook::construct_event(payload, signature, secret) {
                Ok(event) => (event.id.as_str().to_string(), event.type_.as_str().to_string()),
                // Signed correctly but an object the crate cannot parse: the raw JSON still
                // names the object, which is re-fetched anyway.
                Err(stripe_webhook::WebhookError::BadParse(_)) => {
                    let raw: Value = serde_json::from_str(payload)
                        .map_err(|_| DomainError::InvalidSignature("unparseable event"))?;
                    (
                        raw["id"].as_str().unwrap_or_default().to_string(),
                        raw["type"].as_str().unwrap_or_default().to_string(),
                    )
                }
                Err(_) => return Err(DomainError::InvalidSignature("bad signature")),
            };
        // The signature was checked over these exact bytes, so the JSON is Stripe's.
        let raw: Value = serde_json::from_str(payload)
            .map_err(|_| DomainError::InvalidSignature("unparseable event"))?;
        let ack =
            |outcome: &str| WebhookAck { event_id: event_id.clone(), outcome: outcome.into() };
        let Some(intent_id) = intent_of(&event_type, &raw["data"]["object"]) else {
            return Ok(ack("ignored"));
        };
        if self.store.event_seen(&event_id).await? {
            return Ok(ack("duplicate"));
        }
        let outcome = self.apply(&event_id, &event_type, &intent_id).await?;
        self.store.record_event(&event_id, &event_type, outcome).await?;
        Ok(ack(outcome))
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
fn intent_of(event_type: &str, object: &Value) -> Option<String> {
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

/// Items from PaymentIntent metadata: `item_<n>` = `<quantity>|<unit amount>|<description>`.
pub fn metadata_items(metadata: &HashMap<String, String>) -> Vec<OrderItem> {
    let mut keyed: Vec<(u32, OrderItem)> = metadata
        .iter()
        .filter_map(|(key, value)| {
            let n: u32 = key.strip_prefix("item_")?.parse().ok()?;
            let mut parts = value.splitn(3, '|');
            let quantity: u64 = parts.next()?.trim().parse().ok()?;
            let unit_amount: i64 = parts.next()?.trim().parse().ok()?;
            let description = parts.next()?.trim().to_string();
            (quantity > 0 && !description.is_empty()).then(|| {
                (
                    n,
                    OrderItem {
                        description,
                        quantity,
                        unit_amount: Some(unit_amount),
                        amount_total: unit_amount.saturating_mul(quantity as i64),
                    },
                )
            })
        })
        .collect();
    keyed.sort_by_key(|(n, _)| *n);
    keyed.into_iter().map(|(_, item)| item).collect()
}

/// The order status for a PaymentIntent and its latest charge.
pub fn status_of(intent: &Intent) -> OrderStatus {
    let charge = intent.latest_charge.as_ref().map(|c| &c.charge);
    match intent.status.as_str() {
        "succeeded" => {
            let refunded = charge.map_or(0, |c| c.amount_refunded);
            let received = intent.amount_received.max(charge.map_or(0, |c| c.amount));
            if charge.is_some_and(|c| c.disputed) {
                OrderStatus::Disputed
            } else if refunded > 0 && refunded >= received {
                OrderStatus::Refunded
            } else if refunded > 0 {
                OrderStatus::PartiallyRefunded
            } else {
                OrderStatus::Succeeded
            }
        }
        "canceled" => OrderStatus::Canceled,
        "requires_payment_method" if intent.has_payment_error => OrderStatus::Failed,
        // requires_payment_method (no attempt yet), requires_confirmation, requires_action,
        // processing, requires_capture, and anything Stripe adds later.
        _ => OrderStatus::Processing,
    }
}

/// Merges `fresh` into `old` by id; fresh entries win; sorted by time, then id.
fn merge<T: Clone>(
    old: &[T],
    fresh: &[T],
    id: impl Fn(&T) -> &str,
    at: impl Fn(&T) -> DateTime<Utc>,
) -> Vec<T> {
    let mut by_id: HashMap<String, T> = HashMap::new();
    for entry in old.iter().chain(fresh) {
        by_id.insert(id(entry).to_string(), entry.clone());
    }
    let mut all: Vec<T> = by_id.into_values().collect();
    all.sort_by(|a, b| at(a).cmp(&at(b)).then_with(|| id(a).cmp(id(b))));
    all
}

fn build(
    user_id: &str,
    customer: &str,
    intent: &Intent,
    extras: &Extras,
    old: Option<&OrderRecord>,
    now: DateTime<Utc>,
) -> OrderRecord {
    let empty = OrderRecord::default_for(user_id, &intent.id);
    let old_or_empty = old.unwrap_or(&empty);
    let mut fresh_charges: Vec<OrderCharge> = extras.charges.clone().unwrap_or_default();
    let mut fresh_refunds: Vec<OrderRefund> = Vec::new();
    if let Some(latest) = &intent.latest_charge {
        fresh_charges.retain(|c| c.charge_id != latest.charge.charge_id);
        fresh_charges.push(latest.charge.clone());
        fresh_refunds.extend(latest.refunds.iter().cloned());
    }
    let charges = merge(&old_or_empty.charges, &fresh_charges, |c| &c.charge_id, |c| c.created_at);
    let refunds = merge(&old_or_empty.refunds, &fresh_refunds, |r| &r.refund_id, |r| r.created_at);
    let disputes = merge(
        &old_or_empty.disputes,
        extras.disputes.as_deref().unwrap_or_default(),
        |d| &d.dispute_id,
        |d| d.created_at,
    );
    let mut items = metadata_items(&intent.metadata);
    if items.is_empty() {
        items = extras
            .items
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| old_or_empty.items.clone());
    }
    let receipt_url =
        charges.iter().rev().find(|c| c.status == "succeeded").and_then(|c| c.receipt_url.clone());
    let order_number = intent.metadata.get("order_number").cloned().unwrap_or_else(|| {
        let tail: String =
            intent.id.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        format!("BC-{}", tail.to_ascii_uppercase())
    });
    let record = OrderRecord {
        user_id: user_id.to_string(),
        order_id: intent.id.clone(),
        created_key: OrderRecord::created_key(intent.created, &intent.id),
        stripe_customer_id: Some(customer.to_string()),
        order_number,
        stripe_payment_intent_id: intent.id.clone(),
        status: status_of(intent),
        amount: intent.amount,
        amount_refunded: charges.iter().map(|c| c.amount_refunded).sum(),
        currency: intent.currency.clone(),
        item_count: items.len() as u32,
        items,
        receipt_url,
        shipping: intent.shipping.clone(),
        charges,
        refunds,
        disputes,
        created_at: timestamp(intent.created),
        updated_at: now,
        synced_at: now,
        version: old.map_or(1, |o| o.version + 1),
        expires_at: old.and_then(|o| o.expires_at),
    };
    record
}

impl OrderRecord {
    fn default_for(user_id: &str, order_id: &str) -> Self {
        OrderRecord {
            user_id: user_id.to_string(),
            order_id: order_id.to_string(),
            created_key: String::new(),
            stripe_customer_id: None,
            order_number: String::new(),
            stripe_payment_intent_id: order_id.to_string(),
            status: OrderStatus::Processing,
            amount: 0,
            amount_refunded: 0,
            currency: String::new(),
            items: Vec::new(),
            item_count: 0,
            receipt_url: None,
            shipping: None,
            charges: Vec::new(),
            refunds: Vec::new(),
            disputes: Vec::new(),
            created_at: DateTime::<Utc>::MIN_UTC,
            updated_at: DateTime::<Utc>::MIN_UTC,
            synced_at: DateTime::<Utc>::MIN_UTC,
            version: 0,
            expires_at: None,
        }
    }
}

fn summary(record: &OrderSummaryRecord) -> OrderSummary {
    OrderSummary {
        order_id: record.order_id.clone(),
        order_number: record.order_number.clone(),
        status: record.status,
        amount: record.amount,
        amount_refunded: record.amount_refunded,
        currency: record.currency.clone(),
        item_count: record.item_count,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

fn order(record: OrderRecord) -> Order {
    Order {
        order_id: record.order_id,
        order_number: record.order_number,
        stripe_payment_intent_id: record.stripe_payment_intent_id,
        status: record.status,
        amount: record.amount,
        amount_refunded: record.amount_refunded,
        currency: record.currency,
        items: record.items,
        receipt_url: record.receipt_url,
        shipping: record.shipping,
        charges: record.charges,
        refunds: record.refunds,
        disputes: record.disputes,
        created_at: record.created_at,
        updated_at: record.updated_at,
        synced_at: record.synced_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::ChargeWithRefunds;

    fn intent(status: &str, refunded: i64, disputed: bool, error: bool) -> Intent {
        Intent {
            id: "pi_1".into(),
            customer: Some("cus_1".into()),
            status: status.into(),
            amount: 1000,
            amount_received: if status == "succeeded" { 1000 } else { 0 },
            currency: "USD".into(),
            created: 1_700_000_000,
            has_payment_error: error,
            metadata: HashMap::new(),
            shipping: None,
            latest_charge: Some(ChargeWithRefunds {
                charge: OrderCharge {
                    charge_id: "ch_1".into(),
                    status: "succeeded".into(),
                    amount: 1000,
                    amount_refunded: refunded,
                    disputed,
                    failure_message: None,
                    receipt_url: None,
                    created_at: timestamp(1_700_000_000),
                },
                refunds: vec![],
            }),
        }
    }

    #[test]
    fn every_stripe_state_maps_to_an_order_status() {
        use OrderStatus::*;
        let cases = [
            (intent("succeeded", 0, false, false), Succeeded),
            (intent("succeeded", 400, false, false), PartiallyRefunded),
            (intent("succeeded", 1000, false, false), Refunded),
            (intent("succeeded", 1000, true, false), Disputed),
            (intent("canceled", 0, false, false), Canceled),
            (intent("requires_payment_method", 0, false, true), Failed),
            (intent("requires_payment_method", 0, false, false), Processing),
            (intent("requires_confirmation", 0, false, false), Processing),
            (intent("requires_action", 0, false, false), Processing),
            (intent("processing", 0, false, false), Processing),
            (intent("requires_capture", 0, false, false), Processing),
            (intent("some_future_state", 0, false, false), Processing),
        ];
        for (intent, expected) in cases {
            assert_eq!(status_of(&intent), expected, "{}", intent.status);
        }
    }

    #[test]
    fn metadata_items_follow_the_convention() {
        let metadata = HashMap::from([
            ("item_2".to_string(), "1|500|Sticker".to_string()),
            ("item_1".to_string(), "2|2500|Babes Club Tee | black".to_string()),
            ("item_x".to_string(), "1|1|ignored".to_string()),
            ("item_3".to_string(), "zero|1|bad".to_string()),
            ("note".to_string(), "not an item".to_string()),
        ]);
        let items = metadata_items(&metadata);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].description, "Babes Club Tee | black");
        assert_eq!(items[0].amount_total, 5000);
        assert_eq!(items[1].description, "Sticker");
    }
}
