//! The member dashboard API server: Dropshot handlers over DynamoDB.
//!
//! [`start`] is the whole server: the binary, the integration tests and the Lambda build all go
//! through it, in four named steps (connect the store, build the Stripe client, describe the
//! API, serve).
//!
//! Modules, each importing only from those above it (this file, the root, assembles them):
//! 1. `storage` (DynamoDB: tables, records, the rules check), `metrics`, `logging`;
//! 2. `auth` (tokens, the admin rule, its settings), `stripe` (the Stripe client), `cursor`;
//! 3. `error` (domain failures to HTTP errors), `validate`;
//! 4. `profiles`, `orders` (the domains);
//! 5. `events` (Lambda pass-through work), `http` (handlers and their shared context);
//! 6. `dev` (the development default: demo data, dev tokens and secrets, `/dev/token`);
//! 7. `secrets`, `config` (reads flags and environment, assembles each module's settings).

pub mod auth;
pub mod aws;
pub mod config;
pub mod cursor;
#[cfg(feature = "embedded")]
pub mod dev;
pub mod error;
pub mod events;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod orders;
pub mod profiles;
pub mod rights;
pub mod secrets;
pub mod storage;
pub mod stripe;
pub mod validate;

use anyhow::Context as _;
use config::{Config, StoreConfig};
use slog::Logger;
use std::net::SocketAddr;
use storage::Store;

/// Default cap on request bodies. Dropshot's own default (1 KiB) is too small for real
/// payloads; endpoints that need less set their own limit.
pub const DEFAULT_BODY_MAX_BYTES: usize = 256 * 1024;

pub use http::ServerContext;

/// The embedded store of the development default (nothing in a Lambda build).
#[cfg(feature = "embedded")]
pub type Embedded = Option<storage::embedded::EmbeddedStore>;
#[cfg(not(feature = "embedded"))]
pub type Embedded = ();

/// The Stripe simulator of the development default (nothing in a Lambda build).
#[cfg(feature = "embedded")]
pub type Simulator = Option<stripe_sim::StripeSim>;
#[cfg(not(feature = "embedded"))]
pub type Simulator = ();

/// A started server and what runs in process beside it.
pub struct RunningServer {
    pub server: dropshot::HttpServer<ServerContext>,
    pub embedded: Embedded,
    pub stripe_sim: Simulator,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn store(&self) -> &Store {
        &self.server.app_private().store
    }

    pub fn orders(&self) -> &std::sync::Arc<orders::OrderService> {
        &self.server.app_private().orders
    }

    pub fn dev_token(&self) -> Option<&str> {
        self.server.app_private().dev_token.as_deref()
    }

    /// Stops the HTTP server, then the embedded store (flushing it to disk).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.close().await.map_err(|e| anyhow::anyhow!(e))?;
        #[cfg(feature = "embedded")]
        if let Some(embedded) = self.embedded {
            embedded.shutdown().await;
        }
        Ok(())
    }
}

/// Starts the server: connects the store, builds the Stripe client, describes the API and
/// serves it.
pub async fn start(config: &Config, log: &Logger) -> anyhow::Result<RunningServer> {
    let prepared = prepare(config, log).await?;
    start_prepared(config, log, prepared).await
}

/// What start-up builds before it needs the Stripe and page-token secrets.
pub struct Prepared {
    store: Store,
    embedded: Embedded,
    api: dropshot::ApiDescription<ServerContext>,
    auth: auth::Authenticator,
    dev_token: Option<String>,
}

/// The start-up that uses no secret: the store's client (and tables where the server creates
/// them), the API's description and the authenticator.
pub async fn prepare(config: &Config, log: &Logger) -> anyhow::Result<Prepared> {
    let (store, embedded) = connect_store(config, log).await?;
    #[cfg(feature = "embedded")]
    let dev_token = dev::demo_token(&config.auth);
    #[cfg(not(feature = "embedded"))]
    let dev_token = None;
    let api = describe_api(dev_token.is_some(), config.lambda_events)?;
    let auth = auth::Authenticator::new(config.auth.clone());
    Ok(Prepared { store, embedded, api, auth, dev_token })
}

/// The rest of start-up, with the secrets in `config`: the Stripe client, the order service,
/// and serving.
pub async fn start_prepared(
    config: &Config,
    log: &Logger,
    prepared: Prepared,
) -> anyhow::Result<RunningServer> {
    let Prepared { store, embedded, api, auth, dev_token } = prepared;
    let (stripe_config, stripe_sim) = stripe_client(&config.stripe).await?;
    let webhook_secret = stripe_config.webhook_secret.clone();
    let orders = std::sync::Arc::new(orders::OrderService::new(
        store.clone(),
        stripe::StripeApi::new(stripe_config, &store),
        config.orders.clone(),
        refresh_queue(config).await,
        log.new(slog::o!("component" => "orders")),
    ));
    let server = serve(config, log, api, ServerContext { store, auth, orders, dev_token })?;
    #[cfg(feature = "embedded")]
    if let Some(sim) = &stripe_sim {
        let url = format!("http://{}/webhooks/stripe", server.local_addr());
        sim.set_webhook_endpoint(&url, secrecy::ExposeSecret::expose_secret(&webhook_secret));
    }
    let _ = webhook_secret;
    Ok(RunningServer { server, embedded, stripe_sim })
}

/// The store client; creates missing tables on an endpoint or the embedded store (production
/// tables come from `infra/`).
async fn connect_store(config: &Config, log: &Logger) -> anyhow::Result<(Store, Embedded)> {
    let prefix = &config.table_prefix;
    let attempt = config.store_attempt_timeout;
    match &config.store {
        StoreConfig::Aws { region } => Ok((
            Store::connect_with_timeout(region, None, prefix, attempt).await,
            Embedded::default(),
        )),
        StoreConfig::Endpoint { url, region } => {
            let store = Store::connect_with_timeout(region, Some(url), prefix, attempt).await;
            store.ensure_tables(prefix).await.context("creating tables")?;
            Ok((store, Embedded::default()))
        }
        #[cfg(feature = "embedded")]
        StoreConfig::Embedded { data_dir } => {
            let (store, running) = dev::embedded_store(data_dir.as_deref(), prefix, log).await?;
            Ok((store, Some(running)))
        }
        #[cfg(not(feature = "embedded"))]
        StoreConfig::Embedded { .. } => {
            let _ = log;
            anyhow::bail!("this build has no embedded store")
        }
    }
}

/// Stripe's settings: the configured account, or the development default's simulator.
async fn stripe_client(
    setting: &config::StripeSetting,
) -> anyhow::Result<(stripe::StripeConfig, Simulator)> {
    match setting {
        config::StripeSetting::Live(stripe) => Ok((stripe.clone(), Simulator::default())),
        #[cfg(feature = "embedded")]
        config::StripeSetting::Simulated => {
            let (stripe, sim) = dev::stripe_simulator().await;
            Ok((stripe, Some(sim)))
        }
        #[cfg(not(feature = "embedded"))]
        config::StripeSetting::Simulated => anyhow::bail!("this build has no Stripe simulator"),
    }
}

/// The SQS client for stale refreshes, when a queue is configured. Built without network
/// work: credentials and endpoints resolve on first send.
async fn refresh_queue(config: &Config) -> Option<aws_sdk_sqs::Client> {
    config.orders.refresh_queue_url.as_ref()?;
    Some(aws_sdk_sqs::Client::new(crate::aws::shared().await))
}

/// The API from the contract, plus the paths outside it: Lambda's pass-through `/events` (only
/// under Lambda: anywhere else it would let anyone run the sync, so there it is an unknown
/// path), and `/dev/token` on the development default.
fn describe_api(
    with_dev_token: bool,
    with_lambda_events: bool,
) -> anyhow::Result<dropshot::ApiDescription<ServerContext>> {
    let mut api = dashboard_api::dashboard_api_mod::api_description::<http::DashboardImpl>()
        .map_err(|e| anyhow::anyhow!("building the API description: {e}"))?;
    if with_lambda_events {
        api.register(http::lambda_events)
            .map_err(|e| anyhow::anyhow!("registering /events: {e}"))?;
    }
    #[cfg(feature = "embedded")]
    if with_dev_token {
        api.register(dev::dev_token).map_err(|e| anyhow::anyhow!("registering /dev/token: {e}"))?;
    }
    let _ = with_dev_token;
    Ok(api)
}

/// Binds and starts serving.
fn serve(
    config: &Config,
    log: &Logger,
    api: dropshot::ApiDescription<ServerContext>,
    context: ServerContext,
) -> anyhow::Result<dropshot::HttpServer<ServerContext>> {
    let dropshot_config = dropshot::ConfigDropshot {
        bind_address: config.bind_addr,
        default_request_body_max_bytes: DEFAULT_BODY_MAX_BYTES,
        // The X-Ray trace id (set by API Gateway / the Lambda Web Adapter) on every record a
        // request logs, next to Dropshot's request id.
        log_headers: vec!["x-amzn-trace-id".to_string()],
        ..Default::default()
    };
    dropshot::ServerBuilder::new(api, context, log.clone())
        .config(dropshot_config)
        .start()
        .map_err(|e| anyhow::anyhow!("starting the HTTP server on {}: {e}", config.bind_addr))
}
