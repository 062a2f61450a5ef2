//! Order domain: Stripe PaymentIntents become cached order snapshots, kept fresh by webhooks,
//! reconcile runs (manual, stale-triggered, scheduled) and a live fallback for missing orders.
//!
//! Correctness rule: a snapshot is computed from Stripe's current state (reconcile, the live
//! fallback, a webhook that cannot be ordered), or from an event's own object kept only where it
//! is newer by the monotone parts of the state (`snapshot::plan`); either is merged with what
//! the cache already knows and written with a condition on the stored version. Events that
//! arrive late, twice or out of order therefore cannot move a snapshot backwards, and equal
//! content is never rewritten.
//!
//! This file: the service, its settings, and the one write path every trigger shares. The rest,
//! one concern a file: [`read`] (listing, detail, sync status), [`snapshot`] (pure: Stripe state
//! to a snapshot), [`reconcile`] (one member, all, refreshes), [`webhook`] (verify, ledger,
//! apply).

pub mod catchup;
mod ledger;
mod read;
mod reconcile;
pub mod snapshot;
mod turns;
mod webhook;

pub(crate) use read::order;

use crate::cursor::CursorKey;
use crate::error::DomainError;
use crate::storage::orders::OrderRecord;
use crate::storage::{Store, StoreError};
use crate::stripe::{Intent, StripeApi};
use chrono::Utc;
use dashboard_api::{OrderCharge, OrderDispute, OrderItem, OrderRefund};
use slog::Logger;
use snapshot::{build, metadata_items};
use std::sync::Arc;
use std::time::Duration;

/// Order settings, resolved. `Debug` prints no key.
#[derive(Clone, Debug)]
pub struct OrdersConfig {
    /// A member's orders older than this are refreshed in the background on listing.
    pub stale_after: Duration,
    /// HMAC key for page tokens.
    pub cursor_key: secrecy::SecretSlice<u8>,
    /// How many members the sweep, or PaymentIntents the catch-up, works on at once.
    pub schedule_concurrency: usize,
    /// Where stale refreshes go when they cannot run in this process (Lambda).
    pub refresh_queue_url: Option<String>,
    /// Per-member limits (live look-ups here; profile writes are read from here too).
    pub limits: crate::storage::limits::LimitsConfig,
}

pub struct OrderService {
    store: Store,
    /// Set with `refresh_queue_url`: refreshes are queued, not run here.
    queue: Option<aws_sdk_sqs::Client>,
    stripe: StripeApi,
    cursor: CursorKey,
    config: OrdersConfig,
    /// The customer of each PaymentIntent seen lately: refund and dispute objects do not name
    /// it, and without it the member's cached order cannot be found without asking Stripe.
    /// A PaymentIntent's customer does not change once set; a miss costs a re-fetch.
    intent_customers: quick_cache::sync::Cache<String, String>,
    /// One event of an intent at a time in this process (`turns`).
    turns: turns::Turns,
    /// The snapshot of each PaymentIntent this process wrote or read last (`webhook`).
    recent: RecentOrders,
    /// The member holding each Stripe customer, as this process last read it (`webhook`). A
    /// webhook's write is conditioned on the member still holding the customer, so an entry a
    /// relink or an unlink made wrong costs a read then (and is dropped), never a wrong write.
    members: quick_cache::sync::Cache<String, String>,
    /// Events this process stored as done (`webhook`).
    done: webhook::DoneEvents,
    /// Webhook events waiting for the Stripe budget in this process (`ledger`).
    deferred: ledger::Deferred,
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
#[derive(Debug, Default)]
struct Extras {
    /// Every charge of the intent (otherwise only the latest is known).
    charges: Option<Vec<OrderCharge>>,
    disputes: Option<Vec<OrderDispute>>,
    /// Refunds besides the latest charge's (from refund events).
    refunds: Option<Vec<OrderRefund>>,
    /// Checkout Session line items.
    items: Option<Vec<OrderItem>>,
}

/// The snapshots of the PaymentIntents whose events this process applied lately, so that the
/// next event of the same order needs no read: a webhook's write is conditional on the version
/// it planned against and on the member still holding the customer, so a snapshot moved on by
/// another writer (another instance, a reconcile) costs a read then, never a wrong write.
struct RecentOrders(quick_cache::sync::Cache<String, OrderRecord>);

impl Default for RecentOrders {
    fn default() -> Self {
        RecentOrders(quick_cache::sync::Cache::new(MAX_RECENT_ORDERS))
    }
}

/// Snapshots kept by [`RecentOrders`] (an order is a few KB at most: a few MB in all).
const MAX_RECENT_ORDERS: usize = 2_048;

impl RecentOrders {
    /// The intent's snapshot, if kept, of `customer`'s and not expired.
    fn get(&self, intent_id: &str, customer: &str) -> Option<OrderRecord> {
        let now = Utc::now().timestamp();
        let record = self.0.get(intent_id)?;
        let usable = record.stripe_customer_id.as_deref() == Some(customer) && !record.expired(now);
        usable.then_some(record)
    }

    /// Bounded: the least used are evicted first, and forgetting costs a read, never a wrong
    /// answer.
    fn put(&self, intent_id: &str, record: OrderRecord) {
        self.0.insert(intent_id.to_string(), record);
    }

    fn forget(&self, intent_id: &str) {
        self.0.remove(intent_id);
    }
}

/// PaymentIntents whose customer [`OrderService`] keeps (a few MB at most; a miss costs one
/// re-fetch).
const MAX_KNOWN_INTENTS: usize = 100_000;

/// Customers whose member [`OrderService`] keeps (a miss costs one read).
const MAX_KNOWN_MEMBERS: usize = 16_384;

/// Conditional-write retries when another writer got there first.
const WRITE_ATTEMPTS: usize = 4;

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
            cursor: CursorKey::new(secrecy::ExposeSecret::expose_secret(&config.cursor_key)),
            config,
            intent_customers: quick_cache::sync::Cache::new(MAX_KNOWN_INTENTS),
            turns: turns::Turns::default(),
            recent: RecentOrders::default(),
            members: quick_cache::sync::Cache::new(MAX_KNOWN_MEMBERS),
            done: webhook::DoneEvents::default(),
            deferred: ledger::Deferred::default(),
            log,
        }
    }

    /// The per-member limits' settings.
    pub fn limits(&self) -> &crate::storage::limits::LimitsConfig {
        &self.config.limits
    }

    /// The Stripe client (the first link by verified email looks customers up through it).
    pub fn stripe(&self) -> &StripeApi {
        &self.stripe
    }

    /// Asks for a refresh of the member's stale orders, at most once per freshness window
    /// across every instance (a conditional write on the profile, see
    /// [`Store::claim_refresh`]): an SQS message when a queue is configured, else a background
    /// task in this process. True when a refresh is under way: requested now, or by another
    /// listing of this window. A failure to queue is logged and withdrawn, so the next listing
    /// asks again; the listing is answered from the cache either way.
    pub(crate) async fn request_refresh(self: &Arc<Self>, user_id: &str) -> bool {
        let now = Utc::now().timestamp_millis();
        let window = i64::try_from(self.config.stale_after.as_millis()).unwrap_or(i64::MAX);
        match self.store.claim_refresh(user_id, now, now.saturating_sub(window)).await {
            Ok(true) => {}
            Ok(false) => return true,
            Err(error) => {
                slog::warn!(self.log, "could not request a refresh"; "user_id" => user_id,
                    "error" => error.to_string());
                return false;
            }
        }
        let (Some(queue), Some(url)) = (&self.queue, &self.config.refresh_queue_url) else {
            let service = Arc::clone(self);
            let user_id = user_id.to_string();
            tokio::spawn(async move {
                let _ = service.reconcile(&user_id).await;
            });
            return true;
        };
        let body = serde_json::json!({ "userId": user_id }).to_string();
        match queue.send_message().queue_url(url).message_body(body).send().await {
            Ok(_) => true,
            Err(error) => {
                slog::warn!(self.log, "could not queue a refresh"; "user_id" => user_id,
                    "error" => aws_sdk_sqs::error::DisplayErrorContext(error).to_string());
                let _ = self.store.release_refresh(user_id, now).await;
                false
            }
        }
    }

    /// The deadline of every Stripe call made for an HTTP request that began at `started`:
    /// the configured Stripe budget from then, or the Lambda invocation's (the adapter's
    /// `x-amzn-lambda-context` header, `lambda_context`) when sooner.
    pub fn request_deadline(
        &self,
        started: std::time::Instant,
        lambda_context: Option<&[u8]>,
    ) -> std::time::Instant {
        crate::stripe::request_deadline(started, self.stripe.config().deadline, lambda_context)
    }

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
        Ok(Extras { charges: Some(charges), disputes, refunds: None, items })
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
                        // The insert failed on the profile condition: the member has no
                        // profile, or was relinked to another customer since it was read.
                        return Err(DomainError::Store(StoreError::Internal(format!(
                            "cannot cache order {} for {user_id}: no profile linked to {customer}",
                            intent.id
                        ))));
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(DomainError::Store(StoreError::Unavailable("write contention".into())))
    }
}
