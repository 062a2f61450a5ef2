//! The server configuration of a test server, built in one place: every default the harness
//! uses (the test issuer and client, JSON logs, quick Stripe retries, a random page-token key)
//! is here, and a test names only what it changes.

use crate::{relaxed, Limit};
use crate::{ADMIN_CLIENT_ID, ADMIN_GROUP, ADMIN_SCOPE, CLIENT_ID, ISSUER, WEBHOOK_SECRET};
use dashboard_server::auth::{AuthConfig, JwksSource};
use dashboard_server::config::{Config, StoreConfig, StripeSetting};
use dashboard_server::logging::LogFormat;
use dashboard_server::orders::OrdersConfig;
use dashboard_server::storage::limits::LimitsConfig;
use dashboard_server::storage::DEFAULT_ATTEMPT_TIMEOUT;
use dashboard_server::stripe::StripeConfig;
use std::time::Duration;

/// A [`Config`] for a server on 127.0.0.1 (a free port) that accepts the harness's tokens and
/// talks to one Stripe simulator.
#[derive(Clone, Debug)]
pub struct TestConfig {
    store: StoreConfig,
    store_attempt_timeout: Duration,
    table_prefix: String,
    stripe_url: String,
    stripe_key: String,
    hs256_secret: Option<Vec<u8>>,
    jwks_url: Option<String>,
    jwks_min_refresh: Duration,
    admin_client_id: Option<String>,
    stale_after: Duration,
    refresh_queue_url: Option<String>,
    lambda_events: bool,
    stripe_deadline: Duration,
    stripe_max_rps: Option<u32>,
    limits: LimitsConfig,
}

impl TestConfig {
    /// The tables (`store` with names under `table_prefix`) and the Stripe API (`stripe_url`,
    /// `stripe_key`): what every test server needs. No token key until [`Self::hs256`] or
    /// [`Self::jwks`]; orders are stale after an hour; refreshes run in process.
    pub fn new(store: StoreConfig, table_prefix: &str, stripe_url: &str, stripe_key: &str) -> Self {
        TestConfig {
            store,
            // An attempt moto answers late is retried while the first still runs, and the
            // retry finds its own write (see `Limit::SlowTransactions`).
            store_attempt_timeout: if relaxed(Limit::SlowTransactions) {
                Duration::from_secs(10)
            } else {
                DEFAULT_ATTEMPT_TIMEOUT
            },
            table_prefix: table_prefix.into(),
            stripe_url: stripe_url.into(),
            stripe_key: stripe_key.into(),
            hs256_secret: None,
            jwks_url: None,
            jwks_min_refresh: Duration::ZERO,
            admin_client_id: Some(ADMIN_CLIENT_ID.into()),
            stale_after: Duration::from_secs(3600),
            refresh_queue_url: None,
            lambda_events: false,
            // Production's is 25 s (API Gateway stops at 29 s). Here a 250-order sync on a
            // loaded 2-core machine against moto's server can take longer than that; the tests
            // of the deadline itself set a short one.
            stripe_deadline: Duration::from_secs(90),
            // No account-wide Stripe budget (production's is 20 a second): its counter would
            // add a store write to every Stripe request of every test. The tests of the budget
            // set one.
            stripe_max_rps: None,
            // Generous budgets: tests write one member's profile many times a minute (twenty
            // writers at once, for one) and read dozens of uncached orders; `tests/tests/limits.rs`
            // sets the production figures where they are the subject. Unknown order ids are
            // remembered as in production.
            limits: LimitsConfig {
                order_lookups_per_minute: 1000,
                profile_writes_per_minute: 1000,
                ..LimitsConfig::default()
            },
        }
    }

    /// Accept HS256 tokens signed with `secret`.
    pub fn hs256(mut self, secret: &[u8]) -> Self {
        self.hs256_secret = Some(secret.to_vec());
        self
    }

    /// Accept RS256 tokens verified against the JWKS at `url`, refreshed at most once per
    /// `min_refresh` when an unknown `kid` appears.
    pub fn jwks(mut self, url: &str, min_refresh: Duration) -> Self {
        self.jwks_url = Some(url.into());
        self.jwks_min_refresh = min_refresh;
        self
    }

    /// Accept no operator client (the default accepts [`ADMIN_CLIENT_ID`]'s tokens).
    pub fn without_admin_client(mut self) -> Self {
        self.admin_client_id = None;
        self
    }

    /// A member's cached orders are stale after `after`.
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    /// Queue stale refreshes to this SQS queue instead of running them in process.
    pub fn refresh_queue(mut self, url: &str) -> Self {
        self.refresh_queue_url = Some(url.into());
        self
    }

    /// Serve `POST /events` as under Lambda (`DASHBOARD_LAMBDA_EVENTS=true`); off by default,
    /// as on any server not under Lambda.
    pub fn lambda_events(mut self) -> Self {
        self.lambda_events = true;
        self
    }

    /// Each request may spend at most `deadline` on Stripe (`DASHBOARD_STRIPE_DEADLINE_MS`).
    pub fn stripe_deadline(mut self, deadline: Duration) -> Self {
        self.stripe_deadline = deadline;
        self
    }

    /// Stripe requests per second across instances (`DASHBOARD_STRIPE_MAX_RPS`).
    pub fn stripe_max_rps(mut self, per_second: u32) -> Self {
        self.stripe_max_rps = Some(per_second);
        self
    }

    /// Per-member limits (`DASHBOARD_ORDER_LOOKUPS_PER_MINUTE` and the rest).
    pub fn limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = limits;
        self
    }

    pub fn build(self) -> Config {
        Config {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            auth: AuthConfig {
                issuer: ISSUER.into(),
                client_id: CLIENT_ID.into(),
                accept_id_tokens: false,
                hs256_secret: self.hs256_secret.map(Into::into),
                jwks: self.jwks_url.map(JwksSource::Url),
                jwks_min_refresh: self.jwks_min_refresh,
                leeway_secs: 5,
                dev_mode: false,
                admin_group: ADMIN_GROUP.into(),
                admin_client_id: self.admin_client_id,
                admin_scope: ADMIN_SCOPE.into(),
            },
            store: self.store,
            store_attempt_timeout: self.store_attempt_timeout,
            table_prefix: self.table_prefix,
            log_format: LogFormat::Json,
            log_level: "info".into(),
            stripe: StripeSetting::Live(StripeConfig {
                secret_key: self.stripe_key.into(),
                webhook_secret: WEBHOOK_SECRET.into(),
                api_base: self.stripe_url,
                // Quick retries: the simulator's injected failures should not slow the suite.
                retry_base: Duration::from_millis(5),
                max_attempts: 8,
                deadline: self.stripe_deadline,
                max_rps: self.stripe_max_rps,
            }),
            orders: OrdersConfig {
                stale_after: self.stale_after,
                cursor_key: rand::random::<[u8; 32]>().to_vec().into(),
                schedule_concurrency: 4,
                refresh_queue_url: self.refresh_queue_url,
                limits: self.limits,
            },
            lambda_events: self.lambda_events,
        }
    }
}
