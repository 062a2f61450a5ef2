//! Test harness: starts a real server (Dropshot on 127.0.0.1, port 0) over fresh tables (the
//! embedded store, or any DynamoDB-API endpoint: see [`store`]), and hands out generated
//! clients. Tests speak to the server only through `dashboard_client`; they never call server
//! code directly.

use dashboard_client::Client;
use dashboard_server::RunningServer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stripe_sim::StripeSim;

pub mod aws;
pub mod cli;
pub mod config;
pub mod jwks;
pub mod lambda;
pub mod proxy;
pub mod raw;
pub mod store;

pub use config::TestConfig;
pub use store::{relaxed, Implementation, Limit, TestStore};

pub const ISSUER: &str = "https://issuer.test/pool";
pub const CLIENT_ID: &str = "test-client";
/// The scope that makes an operator client's token admin (and a member's nothing).
pub const ADMIN_SCOPE: &str = "dashboard/admin";
/// The Cognito group that makes a member admin.
pub const ADMIN_GROUP: &str = "dashboard-admins";
/// The operator app client (client-credentials flow) every test server accepts.
pub const ADMIN_CLIENT_ID: &str = "test-operator";
pub const WEBHOOK_SECRET: &str = "whsec_test_secret";

/// What a test server should look like.
#[derive(Clone, Default)]
pub struct Options {
    /// The tables to use (default: fresh ones for this server alone).
    pub store: Option<TestStore>,
    /// Verify RS256 tokens against this JWKS URL.
    pub jwks_url: Option<String>,
    /// Least time between JWKS refreshes.
    pub jwks_min_refresh: Duration,
    /// Reuse this HS256 secret (default: a fresh random one).
    pub hs256_secret: Option<Vec<u8>>,
    /// Orders older than this are stale (default: one hour).
    pub stale_after: Option<Duration>,
    /// Queue stale refreshes to this SQS queue instead of running them in process.
    pub refresh_queue_url: Option<String>,
    /// Serve `POST /events` as under Lambda (off by default, as outside Lambda).
    pub lambda_events: bool,
    /// Each request's Stripe deadline (default: 90 s; production's is 25 s).
    pub stripe_deadline: Option<Duration>,
    /// Stripe requests per second across instances (default: no budget; production's is 20).
    pub stripe_max_rps: Option<u32>,
    /// Per-member limits (default: production's, but 1,000 order look-ups and profile writes
    /// a minute).
    pub limits: Option<dashboard_server::storage::limits::LimitsConfig>,
}

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    running: Option<RunningServer>,
    pub base_url: String,
    /// The Stripe simulator this server talks to.
    pub stripe: StripeSim,
    pub hs256_secret: Vec<u8>,
    logs: Arc<Mutex<Vec<u8>>>,
    /// Between the server and an endpoint store, so outage tests work on any implementation.
    proxy: Option<proxy::Proxy>,
    /// Dropped after the server: deletes the tables when no other server uses them.
    _store: TestStore,
}

/// A writer that collects what is written (the server's log lines), for tests to read.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let hs256_secret = options.hs256_secret.clone().unwrap_or_else(|| {
            let secret: [u8; 32] = rand::random();
            secret.to_vec()
        });
        let stripe = StripeSim::start().await;
        let test_store = match options.store.clone() {
            Some(store) => store,
            None => TestStore::fresh().await,
        };
        let proxy = match test_store.endpoint() {
            Some(endpoint) => Some(proxy::Proxy::start(endpoint).await),
            None => None,
        };
        let mut config = TestConfig::new(
            test_store.config(proxy.as_ref().map(|p| p.url.as_str())),
            test_store.prefix(),
            stripe.url(),
            stripe.secret_key(),
        )
        .hs256(&hs256_secret);
        if let Some(url) = &options.jwks_url {
            config = config.jwks(url, options.jwks_min_refresh);
        }
        if let Some(after) = options.stale_after {
            config = config.stale_after(after);
        }
        if let Some(url) = &options.refresh_queue_url {
            config = config.refresh_queue(url);
        }
        if options.lambda_events {
            config = config.lambda_events();
        }
        if let Some(deadline) = options.stripe_deadline {
            config = config.stripe_deadline(deadline);
        }
        if let Some(per_second) = options.stripe_max_rps {
            config = config.stripe_max_rps(per_second);
        }
        if let Some(limits) = options.limits.clone() {
            config = config.limits(limits);
        }
        let config = config.build();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let drain = dashboard_server::logging::json_drain(SharedBuf(logs.clone()));
        let log = slog::Logger::root(slog::Drain::fuse(Mutex::new(drain)), slog::o!());
        let running = dashboard_server::start(&config, &log).await.expect("server starts");
        let base_url = format!("http://{}", running.local_addr());
        stripe.set_webhook_endpoint(&format!("{base_url}/webhooks/stripe"), WEBHOOK_SECRET);
        TestServer {
            running: Some(running),
            base_url,
            stripe,
            hs256_secret,
            logs,
            proxy,
            _store: test_store,
        }
    }

    /// A generated client that sends `Authorization: Bearer <token>`.
    pub fn client(&self, token: &str) -> Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {token}");
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        self.client_with_headers(headers)
    }

    /// A generated client with exactly these default headers (for hostile-token tests).
    pub fn client_with_headers(&self, headers: reqwest::header::HeaderMap) -> Client {
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Client::new_with_client(&self.base_url, http)
    }

    /// A client for a member, with a valid HS256 token.
    pub fn member(&self, user_id: &str) -> Client {
        self.client(&self.token(json!({ "sub": user_id })))
    }

    /// A client for an admin (a member in the admin group).
    pub fn admin(&self) -> Client {
        self.client(&self.token(json!({ "sub": "admin-1", "cognito:groups": [ADMIN_GROUP] })))
    }

    /// A client for the operator client (a client-credentials token with the admin scope).
    pub fn operator(&self) -> Client {
        self.client(&self.token(operator_claims(ADMIN_SCOPE)))
    }

    /// Creates the member's profile, links a new simulated Stripe customer to it (as an
    /// admin), and returns the member's client and the customer id.
    pub async fn linked_member(&self, user_id: &str) -> (Client, String) {
        let client = self.member(user_id);
        client.get_profile().await.unwrap();
        let customer = self.stripe.create_customer(&format!("{user_id}@example.com"));
        let body = dashboard_client::types::LinkStripeCustomer {
            stripe_customer_id: customer.parse().unwrap(),
        };
        self.admin().put_member_stripe_customer(&user_id.parse().unwrap(), &body).await.unwrap();
        (client, customer)
    }

    /// A valid HS256 token; `overrides` replaces or adds claims (`null` removes one).
    pub fn token(&self, overrides: Value) -> String {
        hs256(&self.hs256_secret, claims(overrides))
    }

    /// The audit records the server has logged so far.
    pub fn audit_records(&self) -> Vec<Value> {
        let logs = self.logs.lock().unwrap();
        String::from_utf8_lossy(&logs)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["record_type"] == "audit")
            .collect()
    }

    /// Requests of one operation (`Query`, `BatchWriteItem`, …) the server has sent its store
    /// so far, as the debug build's rules check counts them (`server/src/storage/rules.rs`).
    pub fn store_calls(&self, operation: &str) -> u64 {
        self.running.as_ref().expect("a running server").store().calls.get(operation)
    }

    /// Everything logged so far, as text (to check that secrets never appear).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }

    /// Takes the store away under the running server (to test outages): stops the embedded
    /// store, or the proxy in front of an endpoint. Returns false where that cannot be done
    /// (AWS: [`Limit::CannotStopStore`]); the caller then skips what depends on it.
    pub async fn stop_store(&mut self) -> bool {
        if let Some(proxy) = &self.proxy {
            proxy.stop();
            return true;
        }
        let running = self.running.as_mut().unwrap();
        if let Some(store) = running.embedded.take() {
            store.shutdown().await;
            return true;
        }
        assert!(relaxed(Limit::CannotStopStore), "no way to stop this store");
        false
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }
}

/// Claims of an operator client's client-credentials access token with these scopes: `sub`
/// and `client_id` are the app client's id, and there is no user.
pub fn operator_claims(scope: &str) -> Value {
    claims(json!({ "sub": ADMIN_CLIENT_ID, "client_id": ADMIN_CLIENT_ID, "scope": scope }))
}

/// Standard valid claims for the test issuer, with overrides applied.
pub fn claims(overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": "member-1",
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "token_use": "access",
        "iat": now,
        "exp": now + 600,
    });
    for (key, value) in overrides.as_object().cloned().unwrap_or_default() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(&key);
        } else {
            claims[key] = value;
        }
    }
    claims
}

pub fn hs256(secret: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// The error body and status of a failed call, or a panic if the call succeeded.
pub fn expect_error<T: std::fmt::Debug>(
    result: Result<T, dashboard_client::Error<dashboard_client::types::ApiError>>,
) -> (u16, dashboard_client::types::ApiError) {
    match result {
        Err(dashboard_client::Error::ErrorResponse(response)) => {
            let status = response.status().as_u16();
            (status, response.into_inner())
        }
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// The status and refunded amount Stripe's objects in the simulator say an order has (what a
/// cached snapshot must converge on).
pub fn stripe_order_state(
    sim: &StripeSim,
    pi: &str,
) -> (dashboard_client::types::OrderStatus, i64) {
    use dashboard_client::types::OrderStatus;
    let intent = sim.object(pi).expect("a known PaymentIntent");
    let charge = intent["latest_charge"].as_str().and_then(|c| sim.object(c));
    let refunded = charge.as_ref().map_or(0, |c| c["amount_refunded"].as_i64().unwrap_or(0));
    let disputed = charge.as_ref().is_some_and(|c| c["disputed"] == true);
    let status = match intent["status"].as_str().unwrap_or_default() {
        "succeeded" if disputed => OrderStatus::Disputed,
        "succeeded" if refunded >= intent["amount"].as_i64().unwrap_or(0) => OrderStatus::Refunded,
        "succeeded" if refunded > 0 => OrderStatus::PartiallyRefunded,
        "succeeded" => OrderStatus::Succeeded,
        "canceled" => OrderStatus::Canceled,
        "requires_payment_method" if !intent["last_payment_error"].is_null() => OrderStatus::Failed,
        _ => OrderStatus::Processing,
    };
    (status, refunded)
}
