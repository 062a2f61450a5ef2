//! Stripe through `async-stripe`: the few reads the order pipeline needs, with retries, and the
//! conversion of Stripe's objects into the order model at the edge.
//!
//! Retries are ours, not the crate's: async-stripe drops response headers, so `Retry-After`
//! cannot be read; we retry 409, 429, 5xx, timeouts and connection failures with exponential
//! backoff and full jitter. Every attempt is counted (reconcile reports its Stripe cost).
//!
//! Every call also carries a deadline (see [`with_deadline`]): the time left of the HTTP request
//! or of the Lambda invocation. No attempt runs past it, each attempt's timeout is cut to what
//! is left, and no retry starts that could not finish; running out of time is
//! [`StripeFailure::Unavailable`], as an outage is.

use chrono::{DateTime, TimeZone, Utc};
use dashboard_api::{OrderCharge, OrderDispute, OrderItem, OrderRefund, OrderShipping};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stripe::{ApiErrorsCode, Client, ClientBuilder, StripeError};
use stripe_checkout::checkout_session::{ListCheckoutSession, ListLineItemsCheckoutSession};
use stripe_core::charge::ListCharge;
use stripe_core::dispute::ListDispute;
use stripe_core::payment_intent::{ListPaymentIntent, RetrievePaymentIntent};

/// The account-wide request rate every call keeps to.
pub mod budget;
/// The Events list, for the daily catch-up.
pub mod events;

pub use budget::{current_patience, with_patience, Patience};

/// Stripe settings, resolved. `Debug` prints neither key.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    pub secret_key: secrecy::SecretString,
    pub webhook_secret: secrecy::SecretString,
    /// Base URL, e.g. `https://api.stripe.com/` or a simulator's.
    pub api_base: String,
    /// First retry delay; doubles per attempt, with full jitter.
    pub retry_base: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Longest time one request may spend on Stripe, retries included, counted from the start
    /// of its handling (or of a background reconcile). Under Lambda an invocation deadline that
    /// comes sooner wins (see [`request_deadline`]).
    pub deadline: Duration,
    /// Requests per second across every instance (`DASHBOARD_STRIPE_MAX_RPS`); `None` sends
    /// without a budget (tests that are not about it).
    pub max_rps: Option<u32>,
}

tokio::task_local! {
    /// When the work in hand (an HTTP request, a Lambda invocation, a background reconcile)
    /// must be done: every Stripe call inside it stops there.
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the limit of every Stripe call made inside it.
pub async fn with_deadline<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The deadline set by the innermost [`with_deadline`] around the caller, if any.
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Room left after Stripe gives up inside a Lambda invocation: writing the failure and
/// answering must finish before Lambda stops the function.
const LAMBDA_MARGIN: Duration = Duration::from_secs(1);

/// An attempt with less time than this left is not started (it could only time out).
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// The per-attempt ceiling (async-stripe's own timeout, set on the client).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// The Lambda invocation's deadline, less [`LAMBDA_MARGIN`], from the `x-amzn-lambda-context`
/// header: the Lambda Web Adapter forwards the invocation context there as JSON, and its
/// `deadline` is the Unix time in milliseconds at which Lambda stops the function
/// (https://awslabs.github.io/aws-lambda-web-adapter/features/request-context.html; the adapter
/// serializes lambda_runtime's `Context`, whose `deadline` field is
/// https://docs.rs/lambda_runtime/latest/lambda_runtime/struct.Context.html). `None` outside
/// Lambda or for anything unreadable.
pub fn invocation_deadline(lambda_context: Option<&[u8]>) -> Option<Instant> {
    let context: serde_json::Value = serde_json::from_slice(lambda_context?).ok()?;
    let deadline_ms = context["deadline"].as_u64().or_else(|| context["deadline_ms"].as_u64())?;
    let now_ms = u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis(),
    )
    .ok()?;
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Some(Instant::now() + left.saturating_sub(LAMBDA_MARGIN))
}

/// The deadline of an HTTP request that began at `started`: the configured budget from then,
/// or the invocation's when it comes sooner. A client cannot stretch it by sending the header
/// itself: the sooner of the two wins.
pub fn request_deadline(started: Instant, budget: Duration, lambda: Option<&[u8]>) -> Instant {
    let own = started + budget;
    invocation_deadline(lambda).map_or(own, |invocation| invocation.min(own))
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
    budget: Option<budget::RequestBudget>,
}

pub fn timestamp(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

/// The expansions every PaymentIntent read asks for.
const INTENT_EXPANSIONS: [&str; 2] = ["latest_charge", "latest_charge.refunds"];

impl StripeApi {
    /// The client; with `config.max_rps`, every request first takes a unit of the budget kept
    /// in `store`.
    pub fn new(config: StripeConfig, store: &crate::storage::Store) -> Self {
        let budget = config.max_rps.map(|rps| budget::RequestBudget::new(rps, store.clone()));
        StripeApi {
            client: std::sync::OnceLock::new(),
            config,
            requests: AtomicU64::new(0),
            budget,
        }
    }

    fn client(&self) -> Result<&Client, StripeFailure> {
        self.client
            .get_or_init(|| {
                ClientBuilder::new(secrecy::ExposeSecret::expose_secret(&self.config.secret_key))
                    .url(self.config.api_base.clone())
                    .timeout(ATTEMPT_TIMEOUT)
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

    /// Runs `work` under the deadline already in force, or else under this client's own
    /// budget from now (a background reconcile has no request around it).
    pub async fn bounded<F: Future>(&self, work: F) -> F::Output {
        match current_deadline() {
            Some(_) => work.await,
            None => with_deadline(Instant::now() + self.config.deadline, work).await,
        }
    }

    async fn call<T, F, Fut>(&self, mut send: F) -> Result<T, StripeFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StripeError>>,
    {
        let deadline = current_deadline().unwrap_or_else(|| Instant::now() + self.config.deadline);
        let out_of_time = |last: Option<&StripeError>| {
            let last = last.map(|e| format!(" (last attempt: {e})")).unwrap_or_default();
            StripeFailure::Unavailable(format!("no time left before the deadline{last}"))
        };
        let patience = budget::current_patience();
        if patience == Patience::Never {
            return Err(StripeFailure::Unavailable("no Stripe request may be sent now".into()));
        }
        let mut attempt = 0;
        loop {
            if let Some(budget) = &self.budget {
                // Boxed: the store call's future is large, and every Stripe call's future
                // (nested deep in reconcile's) would carry its size otherwise.
                Box::pin(budget.take(deadline)).await?;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left < MIN_ATTEMPT {
                return Err(out_of_time(None));
            }
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            // The attempt gets what is left, never more than the client's own timeout.
            let error = match tokio::time::timeout(left.min(ATTEMPT_TIMEOUT), send()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                Err(_) if left <= ATTEMPT_TIMEOUT => return Err(out_of_time(None)),
                Err(_) => StripeError::Timeout,
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
            if attempt >= self.config.max_attempts || patience == Patience::Once {
                return Err(StripeFailure::Unavailable(error.to_string()));
            }
            let ceiling = self.config.retry_base.saturating_mul(1 << (attempt - 1).min(6));
            let delay = ceiling.mul_f64(rand::random::<f64>()).min(Duration::from_secs(10));
            // A retry that could not start with some time to run is not worth the wait.
            if Instant::now() + delay + MIN_ATTEMPT > deadline {
                return Err(out_of_time(Some(&error)));
            }
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

    /// Up to `limit` ids of customers whose email is exactly `email`, newest first
    /// (https://docs.stripe.com/api/customers/list, `email`: an exact match, case-sensitive on
    /// Stripe's side, so `Ada@x.io` does not find `ada@x.io`). One request.
    pub async fn customers_by_email(
        &self,
        email: &str,
        limit: u8,
    ) -> Result<Vec<String>, StripeFailure> {
        let client = self.client()?;
        let page = self
            .call(|| {
                let request = stripe_core::customer::ListCustomer::new()
                    .email(email)
                    .limit(i64::from(limit.clamp(1, 100)));
                async move { request.send(client).await }
            })
            .await?;
        Ok(page.data.into_iter().map(|c| c.id.to_string()).collect())
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

    /// One page of a customer's charges across all their PaymentIntents (failed attempts
    /// included), newest first, each with its PaymentIntent's id: one request per 100 charges
    /// (https://docs.stripe.com/api/charges/list, filter `customer`).
    pub async fn customer_charges_page(
        &self,
        customer: &str,
        starting_after: Option<&str>,
    ) -> Result<(Vec<(Option<String>, OrderCharge)>, bool), StripeFailure> {
        let client = self.client()?;
        let page = self
            .call(|| {
                let mut request = ListCharge::new().customer(customer).limit(100);
                if let Some(after) = starting_after {
                    request = request.starting_after(after);
                }
                async move { request.send(client).await }
            })
            .await?;
        let charges = page
            .data
            .iter()
            .map(|c| (c.payment_intent.as_ref().map(|p| p.id().as_str().to_string()), charge(c)))
            .collect();
        Ok((charges, page.has_more))
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

    /// Line items of one Checkout Session.
    pub async fn session_items(&self, session: &str) -> Result<Vec<OrderItem>, StripeFailure> {
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

/// What an event's own object (`data.object`, the object as it was when the event occurred:
/// https://docs.stripe.com/api/events/object#event_object-data-object) says about an order.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A PaymentIntent (its `latest_charge` is an id in events: only its id is kept).
    Intent {
        intent: Box<Intent>,
        latest_charge: Option<String>,
    },
    Charge {
        intent: String,
        customer: Option<String>,
        charge: OrderCharge,
    },
    /// Refunds and disputes do not name the customer.
    Refund {
        intent: String,
        refund: OrderRefund,
    },
    Dispute {
        intent: String,
        dispute: OrderDispute,
    },
    /// A completed Checkout Session: only its line items matter, and they are not in it.
    Session {
        intent: String,
        customer: Option<String>,
        session: String,
    },
}

impl Payload {
    /// The Stripe customer the object names, when it names one.
    pub fn customer(&self) -> Option<&str> {
        match self {
            Payload::Intent { intent, .. } => intent.customer.as_deref(),
            Payload::Charge { customer, .. } | Payload::Session { customer, .. } => {
                customer.as_deref()
            }
            Payload::Refund { .. } | Payload::Dispute { .. } => None,
        }
    }
}

/// An id field, or the id of an expanded object.
fn id_of(value: &serde_json::Value) -> Option<String> {
    value.as_str().or_else(|| value["id"].as_str()).map(str::to_string)
}

/// An optional string field that must be present (null or a string).
fn nullable(object: &serde_json::Value, field: &str) -> Option<Option<String>> {
    match object.get(field)? {
        serde_json::Value::Null => Some(None),
        value => Some(Some(value.as_str()?.to_string())),
    }
}

/// The order model's view of an event's object, or `None` when the object lacks a field the
/// snapshot needs (then the caller re-fetches from Stripe). Field names are Stripe's
/// (https://docs.stripe.com/api/payment_intents/object, /api/charges/object,
/// /api/refunds/object, /api/disputes/object, /api/checkout/sessions/object).
pub fn payload(object: &serde_json::Value) -> Option<Payload> {
    let o = object;
    match o["object"].as_str()? {
        "payment_intent" => {
            let metadata = o["metadata"]
                .as_object()?
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            let shipping = match o.get("shipping")? {
                serde_json::Value::Null => None,
                s => {
                    let a = &s["address"];
                    let field = |name: &str| a[name].as_str().map(str::to_string);
                    Some(OrderShipping {
                        name: s["name"].as_str().map(str::to_string),
                        line1: field("line1"),
                        line2: field("line2"),
                        city: field("city"),
                        region: field("state"),
                        postal_code: field("postal_code"),
                        country: field("country"),
                    })
                }
            };
            let intent = Intent {
                id: o["id"].as_str()?.to_string(),
                customer: match o.get("customer")? {
                    serde_json::Value::Null => None,
                    c => Some(id_of(c)?),
                },
                status: o["status"].as_str()?.to_string(),
                amount: o["amount"].as_i64()?,
                amount_received: o["amount_received"].as_i64()?,
                currency: o["currency"].as_str()?.to_ascii_uppercase(),
                created: o["created"].as_i64()?,
                has_payment_error: !o.get("last_payment_error")?.is_null(),
                metadata,
                shipping,
                latest_charge: None,
            };
            Some(Payload::Intent {
                intent: Box::new(intent),
                latest_charge: id_of(&o["latest_charge"]),
            })
        }
        "charge" => Some(Payload::Charge {
            intent: id_of(&o["payment_intent"])?,
            customer: id_of(&o["customer"]),
            charge: OrderCharge {
                charge_id: o["id"].as_str()?.to_string(),
                status: o["status"].as_str()?.to_string(),
                amount: o["amount"].as_i64()?,
                amount_refunded: o["amount_refunded"].as_i64()?,
                disputed: o["disputed"].as_bool()?,
                failure_message: nullable(o, "failure_message")?,
                receipt_url: nullable(o, "receipt_url")?,
                created_at: timestamp(o["created"].as_i64()?),
            },
        }),
        "refund" => Some(Payload::Refund {
            intent: id_of(&o["payment_intent"])?,
            refund: OrderRefund {
                refund_id: o["id"].as_str()?.to_string(),
                charge_id: id_of(&o["charge"]),
                amount: o["amount"].as_i64()?,
                status: o["status"].as_str().unwrap_or("pending").to_string(),
                reason: o["reason"].as_str().map(str::to_string),
                created_at: timestamp(o["created"].as_i64()?),
            },
        }),
        "dispute" => Some(Payload::Dispute {
            intent: id_of(&o["payment_intent"])?,
            dispute: OrderDispute {
                dispute_id: o["id"].as_str()?.to_string(),
                charge_id: id_of(&o["charge"])?,
                amount: o["amount"].as_i64()?,
                status: o["status"].as_str()?.to_string(),
                reason: o["reason"].as_str()?.to_string(),
                created_at: timestamp(o["created"].as_i64()?),
            },
        }),
        "checkout.session" => Some(Payload::Session {
            intent: id_of(&o["payment_intent"])?,
            customer: id_of(&o["customer"]),
            session: o["id"].as_str()?.to_string(),
        }),
        _ => None,
    }
}

/// The members of an event's object that [`payload`] and the webhook's routing
/// (`orders::webhook::intent_of`) read. A member added to either must be added here, or
/// [`SparseObject`] drops it and every such event is re-fetched. The tests compare the two
/// readings on Stripe's fixture objects and variants of them, and the routing on a list of
/// event types: they catch a missing member only where those objects give it a value.
const READ_MEMBERS: &[&str] = &[
    "object",
    "id",
    "metadata",
    "shipping",
    "customer",
    "status",
    "amount",
    "amount_received",
    "currency",
    "created",
    "last_payment_error",
    "latest_charge",
    "payment_intent",
    "amount_refunded",
    "disputed",
    "failure_message",
    "receipt_url",
    "charge",
    "reason",
];

/// An event's object with only the members in [`READ_MEMBERS`] (`Null` for a null object; any
/// other non-object is an error, which Stripe never sends), deserialized as it is read. The rest (most of a charge: payment method details,
/// outcome, billing details) is skipped unparsed: building it into a `Value` and dropping it
/// again was most of a webhook's own CPU outside the store call.
#[derive(Default)]
pub struct SparseObject(pub serde_json::Value);

impl<'de> serde::Deserialize<'de> for SparseObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, Visitor};
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = SparseObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Stripe object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SparseObject, A::Error> {
                let mut kept = serde_json::Map::new();
                while let Some(Member(name)) = map.next_key()? {
                    match name {
                        Some(name) => {
                            kept.insert(name.to_string(), map.next_value()?);
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(SparseObject(serde_json::Value::Object(kept)))
            }
            fn visit_unit<E>(self) -> Result<SparseObject, E> {
                Ok(SparseObject(serde_json::Value::Null))
            }
        }
        deserializer.deserialize_any(Members)
    }
}

/// A member name: the [`READ_MEMBERS`] entry it is, or `None` for one to skip.
struct Member(Option<&'static str>);

impl<'de> serde::Deserialize<'de> for Member {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Member;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, name: &str) -> Result<Member, E> {
                Ok(Member(READ_MEMBERS.iter().copied().find(|m| *m == name)))
            }
        }
        deserializer.deserialize_str(Name)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `payload` makes of an object, read whole and read sparsely, must be the same: for
    /// Stripe's own example of each object a webhook applies, and for the variants that take
    /// other branches (expanded ids, a payment error, shipping, null fields).
    #[test]
    fn a_sparse_object_says_what_the_whole_object_says() {
        let fixtures: serde_json::Value =
            serde_json::from_str(include_str!("../../stripe-sim/fixtures/fixtures3.json")).unwrap();
        let mut objects = Vec::new();
        for kind in ["payment_intent", "charge", "refund", "dispute", "checkout.session"] {
            let object = fixtures["resources"][kind].clone();
            assert_eq!(object["object"], kind);
            let mut variant = object.clone();
            variant["customer"] = serde_json::json!({ "id": "cus_expanded", "object": "customer" });
            variant["payment_intent"] = serde_json::json!({ "id": "pi_expanded" });
            variant["latest_charge"] = serde_json::json!({ "id": "ch_expanded", "amount": 1 });
            variant["last_payment_error"] = serde_json::json!({ "code": "card_declined" });
            variant["shipping"] = serde_json::json!({ "name": "Ada",
                "address": { "line1": "1 Main St", "city": "Oslo", "country": "NO" } });
            variant["metadata"] = serde_json::json!({ "items": "[]", "n": 3 });
            variant["failure_message"] = serde_json::Value::Null;
            // The fixture charge, refund and dispute name no PaymentIntent, which `payload`
            // needs: these two name one, as a webhook's do.
            let mut customerless = object.clone();
            customerless["customer"] = serde_json::Value::Null;
            customerless["payment_intent"] = serde_json::json!("pi_plain");
            let applies_as_is = !object["payment_intent"].is_null() || kind == "payment_intent";
            objects.extend([(object, applies_as_is), (variant, true), (customerless, true)]);
        }
        for (object, applies) in objects {
            let text = object.to_string();
            let sparse: SparseObject = serde_json::from_str(&text).unwrap();
            let pretty: SparseObject =
                serde_json::from_str(&serde_json::to_string_pretty(&object).unwrap()).unwrap();
            assert_eq!(sparse.0, pretty.0);
            let (whole, read) = (payload(&object), payload(&sparse.0));
            assert!(whole.is_some() || !applies, "{text}");
            // Debug text of a HashMap (the metadata) has no fixed order: sort it first.
            let text_of = |payload: Option<Payload>| {
                let mut payload = payload;
                let metadata = match &mut payload {
                    Some(Payload::Intent { intent, .. }) => std::mem::take(&mut intent.metadata),
                    _ => HashMap::new(),
                };
                let sorted: std::collections::BTreeMap<_, _> = metadata.into_iter().collect();
                format!("{payload:?} {sorted:?}")
            };
            assert_eq!(text_of(whole), text_of(read), "{text}");
            assert!(sparse.0.to_string().len() <= text.len());
        }
        for empty in ["null", "{}"] {
            let sparse: SparseObject = serde_json::from_str(empty).unwrap();
            assert!(payload(&sparse.0).is_none(), "{empty}");
        }
        for other in ["3", "\"x\"", "[1, {}]"] {
            assert!(serde_json::from_str::<SparseObject>(other).is_err(), "{other}");
        }
    }

    fn context(deadline_in: Duration) -> Vec<u8> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let deadline = (now + deadline_in).as_millis();
        format!(r#"{{"request_id":"r-1","deadline":{deadline},"invoked_function_arn":"arn"}}"#)
            .into_bytes()
    }

    /// The adapter's `x-amzn-lambda-context` gives the invocation's deadline, less the margin
    /// to answer; the sooner of it and the configured budget bounds a request, so a client
    /// that sends the header itself can only shorten its own request.
    #[test]
    fn a_request_keeps_to_the_sooner_of_its_budget_and_the_invocation() {
        let started = Instant::now();
        let budget = Duration::from_secs(25);
        let soon = context(Duration::from_secs(10));
        let invocation = invocation_deadline(Some(&soon)).unwrap();
        let left = invocation.saturating_duration_since(started);
        let nine = Duration::from_secs(9);
        let close = left.max(nine) - left.min(nine) < Duration::from_millis(100);
        assert!(close, "{left:?} left, not 10 s less the 1 s margin");
        // Each reading takes `Instant::now()` again: equal to within a few milliseconds.
        let again = request_deadline(started, budget, Some(&soon));
        assert!(again.max(invocation) - again.min(invocation) < Duration::from_millis(50));
        let late = context(Duration::from_secs(900));
        assert_eq!(request_deadline(started, budget, Some(&late)), started + budget);
        for junk in [&b"null"[..], b"{}", b"not json", br#"{"deadline":"soon"}"#] {
            assert_eq!(invocation_deadline(Some(junk)), None);
            assert_eq!(request_deadline(started, budget, Some(junk)), started + budget);
        }
        assert_eq!(request_deadline(started, budget, None), started + budget);
    }
}
