//! Stripe through `async-stripe`: the few reads the order pipeline needs, with retries, and the
//! conversion of Stripe's objects into the order model at the edge.
//!
//! Retries are ours, not the crate's: async-stripe drops response headers, so `Retry-After`
//! cannot be read; we retry 409, 429, 5xx, timeouts and connection failures with exponential
//! backoff and full jitter. Every attempt is counted (reconcile reports its Stripe cost).

use chrono::{DateTime, TimeZone, Utc};
use dashboard_api::{OrderCharge, OrderDispute, OrderItem, OrderRefund, OrderShipping};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use stripe::{ApiErrorsCode, Client, ClientBuilder, StripeError};
use stripe_checkout::checkout_session::{ListCheckoutSession, ListLineItemsCheckoutSession};
use stripe_core::charge::ListCharge;
use stripe_core::dispute::ListDispute;
use stripe_core::payment_intent::{ListPaymentIntent, RetrievePaymentIntent};

/// Stripe settings, resolved.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    pub secret_key: String,
    pub webhook_secret: String,
    /// Base URL, e.g. `https://api.stripe.com/` or a simulator's.
    pub api_base: String,
    /// First retry delay; doubles per attempt, with full jitter.
    pub retry_base: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
}

/// Why a Stripe read failed after retries.
#[derive(Debug, thiserror::Error)]
pub enum StripeFailure {
    #[error("no such Stripe object")]
    Missing,
    #[error("Stripe unavailable: {0}")]
    Unavailable(String),
    #[error("Stripe error: {0}")]
    Other(String),
}

/// A PaymentIntent with its latest charge (and that charge's refunds) expanded.
#[derive(Clone, Debug)]
pub struct Intent {
    pub id: String,
    pub customer: Option<String>,
    /// Stripe's status string (`succeeded`, `requires_payment_method`, …).
    pub status: String,
    pub amount: i64,
    pub amount_received: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub created: i64,
    pub has_payment_error: bool,
    pub metadata: HashMap<String, String>,
    pub shipping: Option<OrderShipping>,
    pub latest_charge: Option<ChargeWithRefunds>,
}

#[derive(Clone, Debug)]
pub struct ChargeWithRefunds {
    pub charge: OrderCharge,
    pub refunds: Vec<OrderRefund>,
}

pub struct StripeApi {
    /// Built on first use: it parses the TLS root store, which cold start can skip.
    client: std::sync::OnceLock<Result<Client, String>>,
    config: StripeConfig,
    requests: AtomicU64,
}

pub fn timestamp(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

/// The expansions every PaymentIntent read asks for.
const INTENT_EXPANSIONS: [&str; 2] = ["latest_charge", "latest_charge.refunds"];

impl StripeApi {
    pub fn new(config: StripeConfig) -> Self {
        StripeApi { client: std::sync::OnceLock::new(), config, requests: AtomicU64::new(0) }
    }

    fn client(&self) -> Result<&Client, StripeFailure> {
        self.client
            .get_or_init(|| {
                ClientBuilder::new(self.config.secret_key.clone())
                    .url(self.config.api_base.clone())
                    .timeout(Duration::from_secs(20))
                    .build()
                    .map_err(|e| format!("building the Stripe client: {e}"))
            })
            .as_ref()
            .map_err(|e| StripeFailure::Other(e.clone()))
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// Requests sent so far (every attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn call<T, F, Fut>(&self, mut send: F) -> Result<T, StripeFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StripeError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let error = match send().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if let StripeError::Stripe(api, 404) = &error {
                if api.code == Some(ApiErrorsCode::ResourceMissing) {
                    return Err(StripeFailure::Missing);
                }
            }
            let retryable = match &error {
                StripeError::Stripe(_, status) => {
                    *status == 409 || *status == 429 || *status >= 500
                }
                StripeError::Timeout | StripeError::ClientError(_) => true,
                _ => false,
            };
            if !retryable {
                return Err(StripeFailure::Other(error.to_string()));
            }
            if attempt >= self.config.max_attempts {
                return Err(StripeFailure::Unavailable(error.to_string()));
            }
            let ceiling = self.config.retry_base.saturating_mul(1 << (attempt - 1).min(6));
            let delay = ceiling.mul_f64(rand::random::<f64>()).min(Duration::from_secs(10));
            tokio::time::sleep(delay).await;
        }
    }

    /// One page of a customer's PaymentIntents, newest first.
    pub async fn intents_page(
        &self,
        customer: &str,
        starting_after: Option<&str>,
    ) -> Result<(Vec<Intent>, bool), StripeFailure> {
        let expand: Vec<String> = INTENT_EXPANSIONS.iter().map(|p| format!("data.{p}")).collect();
        let client = self.client()?;
        let page = self
            .call(|| {
                let mut request =
                    ListPaymentIntent::new().customer(customer).limit(100).expand(expand.clone());
                if let Some(after) = starting_after {
                    request = request.starting_after(after);
                }
                async move { request.send(client).await }
            })
            .await?;
        Ok((page.data.into_iter().map(intent).collect(), page.has_more))
    }

    /// One PaymentIntent, or `None` when Stripe has no such object.
    pub async fn intent(&self, id: &str) -> Result<Option<Intent>, StripeFailure> {
        let expand: Vec<String> = INTENT_EXPANSIONS.iter().map(|p| p.to_string()).collect();
        let client = self.client()?;
        let result = self
            .call(|| {
                let request = RetrievePaymentIntent::new(id).expand(expand.clone());
                async move { request.send(client).await }
            })
            .await;
        match result {
            Ok(pi) => Ok(Some(intent(pi))),
            Err(StripeFailure::Missing) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Every charge of a PaymentIntent (failed attempts included), oldest first.
    pub async fn charges(&self, payment_intent: &str) -> Result<Vec<OrderCharge>, StripeFailure> {
        let client = self.client()?;
        let charges: Vec<stripe_core::Charge> = self
            .call(|| {
                ListCharge::new()
                    .payment_intent(payment_intent)
                    .limit(100)
                    .paginate()
                    .stream(client)
                    .try_collect()
            })
            .await?;
        let mut charges: Vec<OrderCharge> = charges.iter().map(charge).collect();
        charges.reverse();
        Ok(charges)
    }

    /// Disputes of a PaymentIntent, oldest first.
    pub async fn disputes(&self, payment_intent: &str) -> Result<Vec<OrderDispute>, StripeFailure> {
        let client = self.client()?;
        let disputes: Vec<stripe_core::Dispute> = self
            .call(|| {
                ListDispute::new()
                    .payment_intent(payment_intent)
                    .limit(100)
                    .paginate()
                    .stream(client)
                    .try_collect()
            })
            .await?;
        let mut disputes: Vec<OrderDispute> = disputes
            .iter()
            .map(|d| OrderDispute {
                dispute_id: d.id.as_str().to_string(),
                charge_id: d.charge.id().as_str().to_string(),
                amount: d.amount,
                status: d.status.as_str().to_string(),
                reason: d.reason.clone(),
                created_at: timestamp(d.created),
            })
            .collect();
        disputes.reverse();
        Ok(disputes)
    }

    /// Line items of the Checkout Session that created a PaymentIntent (empty if none).
    pub async fn checkout_items(
        &self,
        payment_intent: &str,
    ) -> Result<Vec<OrderItem>, StripeFailure> {
        let client = self.client()?;
        let sessions = self
            .call(|| {
                let request = ListCheckoutSession::new().payment_intent(payment_intent);
                async move { request.send(client).await }
            })
            .await?;
        let Some(session) = sessions.data.first() else { return Ok(Vec::new()) };
        self.session_items(session.id.as_str()).await
    }

    /// Line items of every Checkout Session of a customer, by PaymentIntent id.
    pub async fn checkout_items_by_intent(
        &self,
        customer: &str,
    ) -> Result<HashMap<String, Vec<OrderItem>>, StripeFailure> {
        let client = self.client()?;
        let sessions: Vec<stripe_shared_session::CheckoutSession> = self
            .call(|| {
                ListCheckoutSession::new()
                    .customer(customer)
                    .limit(100)
                    .expand(vec!["data.line_items".to_string()])
                    .paginate()
                    .stream(client)
                    .try_collect()
            })
            .await?;
        let mut by_intent = HashMap::new();
        for session in sessions {
            let Some(pi) = session.payment_intent.as_ref().map(|p| p.id().as_str().to_string())
            else {
                continue;
            };
            let items = match &session.line_items {
                Some(list) if !list.has_more => list.data.iter().map(line_item).collect(),
                _ => self.session_items(session.id.as_str()).await?,
            };
            by_intent.insert(pi, items);
        }
        Ok(by_intent)
    }

    async fn session_items(&self, session: &str) -> Result<Vec<OrderItem>, StripeFailure> {
        let client = self.client()?;
        let lines: Vec<stripe_shared_session::CheckoutSessionItem> = self
            .call(|| {
                ListLineItemsCheckoutSession::new(session)
                    .limit(100)
                    .paginate()
                    .stream(client)
                    .try_collect()
            })
            .await?;
        Ok(lines.iter().map(line_item).collect())
    }
}

/// Types the facade crates use without re-exporting them.
mod stripe_shared_session {
    pub use stripe_shared::{CheckoutSession, CheckoutSessionItem};
}

fn intent(pi: stripe_core::PaymentIntent) -> Intent {
    let latest_charge = pi.latest_charge.as_ref().and_then(|c| c.as_object()).map(|c| {
        let refunds = c
            .refunds
            .as_ref()
            .map(|list| {
                let mut refunds: Vec<OrderRefund> = list.data.iter().map(refund).collect();
                refunds.reverse();
                refunds
            })
            .unwrap_or_default();
        ChargeWithRefunds { charge: charge(c), refunds }
    });
    Intent {
        id: pi.id.as_str().to_string(),
        customer: pi.customer.as_ref().map(|c| c.id().as_str().to_string()),
        status: pi.status.as_str().to_string(),
        amount: pi.amount,
        amount_received: pi.amount_received,
        currency: pi.currency.to_string().to_ascii_uppercase(),
        created: pi.created,
        has_payment_error: pi.last_payment_error.is_some(),
        metadata: pi.metadata.clone(),
        shipping: pi.shipping.as_ref().map(|s| OrderShipping {
            name: s.name.clone(),
            line1: s.address.as_ref().and_then(|a| a.line1.clone()),
            line2: s.address.as_ref().and_then(|a| a.line2.clone()),
            city: s.address.as_ref().and_then(|a| a.city.clone()),
            region: s.address.as_ref().and_then(|a| a.state.clone()),
            postal_code: s.address.as_ref().and_then(|a| a.postal_code.clone()),
            country: s.address.as_ref().and_then(|a| a.country.clone()),
        }),
        latest_charge,
    }
}

fn charge(c: &stripe_core::Charge) -> OrderCharge {
    OrderCharge {
        charge_id: c.id.as_str().to_string(),
        status: c.status.as_str().to_string(),
        amount: c.amount,
        amount_refunded: c.amount_refunded,
        disputed: c.disputed,
        failure_message: c.failure_message.clone(),
        receipt_url: c.receipt_url.clone(),
        created_at: timestamp(c.created),
    }
}

fn refund(r: &stripe_core::Refund) -> OrderRefund {
    OrderRefund {
        refund_id: r.id.as_str().to_string(),
        charge_id: r.charge.as_ref().map(|c| c.id().as_str().to_string()),
        amount: r.amount,
        status: r.status.clone().unwrap_or_else(|| "pending".to_string()),
        reason: r.reason.as_ref().map(|reason| reason.as_str().to_string()),
        created_at: timestamp(r.created),
    }
}

/// Longest line-item description kept. Metadata values are at most 500 characters on Stripe;
/// capping Checkout's too keeps an order with 100 lines (Checkout's own maximum) far below
/// DynamoDB's 400 KB item limit.
pub const MAX_ITEM_DESCRIPTION_CHARS: usize = 500;

fn line_item(line: &stripe_shared_session::CheckoutSessionItem) -> OrderItem {
    let description = line.description.as_deref().unwrap_or("Item");
    OrderItem {
        description: description.chars().take(MAX_ITEM_DESCRIPTION_CHARS).collect(),
        quantity: line.quantity.unwrap_or(1),
        unit_amount: line.price.as_ref().and_then(|p| p.unit_amount),
        amount_total: line.amount_total,
    }
}
