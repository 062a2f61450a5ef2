//! A small, stateful Stripe simulator over real HTTP on 127.0.0.1.
//!
//! It speaks the read-only subset of Stripe's API this project uses (customers, payment
//! intents, charges, refunds, disputes, checkout sessions with line items, events), builds every
//! object from Stripe's own fixtures (`fixtures3.json`, embedded at build time) so clients parse
//! them as they parse real Stripe, lists newest first with `limit`/`starting_after`, supports
//! `expand[]` for the paths the server asks for, and signs webhooks as Stripe does. Tests drive
//! it in-process: create objects, move them through their lifecycles (each step records the
//! events Stripe would send), deliver events in any order and any number of times, and inject
//! 429s, 500s and latency.

mod api;
mod index;
mod objects;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use objects::ItemSpec;

/// Faults to inject into the next API requests.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer this many of the next requests with 429 (and `Retry-After`).
    pub rate_limited: u32,
    /// Answer this many of the next requests (after the 429s) with 500.
    pub server_errors: u32,
    /// Delay every request by this much.
    pub latency: Duration,
}

/// The endpoint's answer to one webhook delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub status: u16,
    pub body: Value,
}

impl Delivery {
    /// The `outcome` the server reported, if any.
    pub fn outcome(&self) -> &str {
        self.body["outcome"].as_str().unwrap_or_default()
    }
}

/// A Stripe object collection, newest last in insertion order.
#[derive(Default)]
pub(crate) struct Collection {
    pub(crate) order: Vec<String>,
    pub(crate) objects: HashMap<String, Value>,
}

impl Collection {
    pub(crate) fn insert(&mut self, object: Value) {
        let id = object["id"].as_str().expect("objects have ids").to_string();
        if self.objects.insert(id.clone(), object).is_none() {
            self.order.push(id);
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Value> {
        self.objects.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.objects.get_mut(id)
    }

    /// Newest first: by `created` descending, later inserts first on ties (as Stripe does).
    pub(crate) fn newest_first(&self) -> Vec<&Value> {
        let mut all: Vec<(usize, &Value)> =
            self.order.iter().enumerate().map(|(i, id)| (i, &self.objects[id])).collect();
        all.sort_by(|(ia, a), (ib, b)| {
            b["created"].as_i64().cmp(&a["created"].as_i64()).then(ib.cmp(ia))
        });
        all.into_iter().map(|(_, v)| v).collect()
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) seq: u64,
    /// Simulated clock (Unix seconds); `created` of new objects and events.
    pub(crate) now: i64,
    pub(crate) customers: Collection,
    pub(crate) payment_intents: Collection,
    pub(crate) charges: Collection,
    pub(crate) refunds: Collection,
    pub(crate) disputes: Collection,
    pub(crate) sessions: Collection,
    /// Line items by checkout session id.
    pub(crate) line_items: HashMap<String, Vec<Value>>,
    pub(crate) events: Collection,
    /// Lookups by id field and the events' order, so lists need not scan (`index.rs`).
    pub(crate) indexes: index::Indexes,
    pub(crate) faults: Faults,
    /// API requests served (admin calls excluded), by path pattern.
    pub(crate) requests: HashMap<String, u64>,
    /// API requests served, by the wall-clock Unix second they arrived in (rate checks).
    pub(crate) per_second: std::collections::BTreeMap<i64, u64>,
}

impl State {
    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_sim{:014}", self.seq)
    }
}

/// The simulator; dropping it stops the server.
pub struct StripeSim {
    pub(crate) state: Arc<Mutex<State>>,
    url: String,
    secret_key: String,
    webhook: Mutex<Option<(String, String)>>,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

/// The API key the simulator accepts unless told otherwise.
pub const TEST_SECRET_KEY: &str = "sk_test_simulator";

impl StripeSim {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        Self::start_with_key(TEST_SECRET_KEY).await
    }

    pub async fn start_with_key(secret_key: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            now: chrono::Utc::now().timestamp() - 86_400,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let router = api::router(state.clone(), secret_key.to_string());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        StripeSim {
            state,
            url,
            secret_key: secret_key.to_string(),
            webhook: Mutex::new(None),
            http: reqwest::Client::new(),
            task,
        }
    }

    /// Base URL to give the client (`STRIPE_API_BASE`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Where to deliver webhooks, and the endpoint secret to sign them with.
    pub fn set_webhook_endpoint(&self, url: &str, secret: &str) {
        *self.webhook.lock().unwrap() = Some((url.to_string(), secret.to_string()));
    }

    pub fn inject(&self, faults: Faults) {
        self.state.lock().unwrap().faults = faults;
    }

    /// API requests served so far (admin and webhook traffic excluded).
    pub fn request_count(&self) -> u64 {
        self.state.lock().unwrap().requests.values().sum()
    }

    pub fn requests_by_path(&self) -> HashMap<String, u64> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many events the simulator has emitted.
    pub fn event_count(&self) -> usize {
        self.state.lock().unwrap().events.order.len()
    }

    /// API requests served in each wall-clock Unix second that saw any, oldest first.
    pub fn requests_per_second(&self) -> Vec<(i64, u64)> {
        self.state.lock().unwrap().per_second.iter().map(|(s, n)| (*s, *n)).collect()
    }

    pub fn reset_request_count(&self) {
        let mut state = self.state.lock().unwrap();
        state.per_second.clear();
        state.requests.clear();
    }

    /// Sets the simulated clock (Unix seconds).
    pub fn set_clock(&self, now: i64) {
        self.state.lock().unwrap().now = now;
    }

    /// Moves the simulated clock (new objects and events get later `created` values).
    pub fn advance(&self, seconds: i64) {
        self.state.lock().unwrap().now += seconds;
    }

    /// Every event recorded so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state.events.order.iter().map(|id| state.events.objects[id].clone()).collect()
    }

    /// One object by id, as the API would return it (unexpanded).
    pub fn object(&self, id: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        let found = [
            &state.customers,
            &state.payment_intents,
            &state.charges,
            &state.refunds,
            &state.disputes,
            &state.sessions,
            &state.events,
        ]
        .into_iter()
        .find_map(|c| c.get(id).cloned());
        found
    }

    /// Signs and POSTs one event to the webhook endpoint.
    pub async fn deliver(&self, event_id: &str) -> Delivery {
        let event = self.object(event_id).expect("known event");
        let body = serde_json::to_string(&event).expect("event serialises");
        self.post_webhook(body, chrono::Utc::now().timestamp()).await
    }

    /// POSTs a raw body signed at `timestamp` (tests of stale and tampered signatures).
    pub async fn post_webhook(&self, body: String, timestamp: i64) -> Delivery {
        let (url, secret) = self.webhook.lock().unwrap().clone().expect("webhook endpoint set");
        let header = signature_header(&secret, timestamp, &body);
        self.post_raw(&url, body, Some(header)).await
    }

    /// The webhook endpoint and its secret, once set.
    pub fn webhook_endpoint(&self) -> Option<(String, String)> {
        self.webhook.lock().unwrap().clone()
    }

    /// POSTs a body with any `Stripe-Signature` header (or none).
    pub async fn post_raw(&self, url: &str, body: String, signature: Option<String>) -> Delivery {
        let mut request =
            self.http.post(url).header("content-type", "application/json; charset=utf-8");
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Delivery { status, body: serde_json::from_str(&body).unwrap_or(Value::Null) }
            }
            Err(_) => Delivery { status: 0, body: Value::Null },
        }
    }
}

impl Drop for StripeSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `Stripe-Signature` as Stripe sends it: `t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`.
pub fn signature_header(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}
