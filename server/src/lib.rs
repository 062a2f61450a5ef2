//! The member dashboard API server: Dropshot handlers over DynamoDB.
//!
//! [`start`] is the whole server: the binary, the integration tests and (later) the Lambda
//! build all go through it.

pub mod auth;
pub mod config;
pub mod cursor;
pub mod error;
pub mod events;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod orders;
pub mod profiles;
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

/// Shared state of every request.
pub struct ServerContext {
    pub store: Store,
    pub auth: auth::Authenticator,
    pub orders: std::sync::Arc<orders::OrderService>,
    /// Development default only: a token for the demo member (served on `/dev/token`).
    pub dev_token: Option<String>,
}

/// A started server and, when used, the embedded store it talks to.
pub struct RunningServer {
    pub server: dropshot::HttpServer<ServerContext>,
    #[cfg(feature = "embedded")]
    pub embedded: Option<storage::embedded::EmbeddedStore>,
    /// The in-process Stripe simulator of the development default.
    #[cfg(feature = "embedded")]
    pub stripe_sim: Option<stripe_sim::StripeSim>,
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

/// Connects the store (starting the embedded one if configured), creates local tables, and
/// starts serving.
pub async fn start(config: &Config, log: &Logger) -> anyhow::Result<RunningServer> {
    #[cfg(feature = "embedded")]
    let mut embedded = None;
    let store = match &config.store {
        StoreConfig::Aws { region } => Store::connect(region, None, &config.table_prefix).await,
        StoreConfig::Endpoint { url, region } => {
            let store = Store::connect(region, Some(url), &config.table_prefix).await;
            store.ensure_tables(&config.table_prefix).await.context("creating tables")?;
            store
        }
        #[cfg(feature = "embedded")]
        StoreConfig::Embedded { data_dir } => {
            let running = storage::embedded::EmbeddedStore::start(data_dir.as_deref())
                .await
                .context("starting the embedded store")?;
            let store =
                Store::connect("local", Some(&running.endpoint), &config.table_prefix).await;
            store.ensure_tables(&config.table_prefix).await.context("creating tables")?;
            slog::info!(log, "embedded store ready"; "endpoint" => &running.endpoint,
                "persisted" => data_dir.as_ref().map(|d| d.display().to_string()));
            embedded = Some(running);
            store
        }
        #[cfg(not(feature = "embedded"))]
        StoreConfig::Embedded { .. } => anyhow::bail!("this build has no embedded store"),
    };
    #[cfg(feature = "embedded")]
    let mut stripe_sim = None;
    let stripe_config = match &config.stripe {
        config::StripeSetting::Live(stripe) => stripe.clone(),
        #[cfg(feature = "embedded")]
        config::StripeSetting::Simulated => {
            let sim = stripe_sim::StripeSim::start().await;
            let webhook_secret = format!("whsec_dev_{}", hex::encode(rand::random::<[u8; 16]>()));
            let stripe = stripe::StripeConfig {
                secret_key: sim.secret_key().to_string(),
                webhook_secret,
                api_base: sim.url().to_string(),
                retry_base: std::time::Duration::from_millis(100),
                max_attempts: 5,
            };
            stripe_sim = Some(sim);
            stripe
        }
        #[cfg(not(feature = "embedded"))]
        config::StripeSetting::Simulated => anyhow::bail!("this build has no Stripe simulator"),
    };
    let webhook_secret = stripe_config.webhook_secret.clone();
    let stripe_api = stripe::StripeApi::new(stripe_config);
    // Built without network work: credentials and endpoints resolve on first send.
    let queue = match &config.orders.refresh_queue_url {
        Some(_) => {
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            Some(aws_sdk_sqs::Client::new(&shared))
        }
        None => None,
    };
    let orders = std::sync::Arc::new(orders::OrderService::new(
        store.clone(),
        stripe_api,
        config.orders.clone(),
        queue,
        log.new(slog::o!("component" => "orders")),
    ));
    let dev_token = match (&config.auth.hs256_secret, config.auth.dev_mode) {
        (Some(secret), true) => Some(auth::mint_dev_token(
            secret,
            &config.auth.issuer,
            &config.auth.client_id,
            config::DEMO_USER,
            Some(config::DEMO_EMAIL),
            &[],
            std::time::Duration::from_secs(12 * 3600),
        )),
        _ => None,
    };
    let mut api = dashboard_api::dashboard_api_mod::api_description::<http::DashboardImpl>()
        .map_err(|e| anyhow::anyhow!("building the API description: {e}"))?;
    api.register(http::lambda_events).map_err(|e| anyhow::anyhow!("registering /events: {e}"))?;
    if dev_token.is_some() {
        api.register(http::dev_token)
            .map_err(|e| anyhow::anyhow!("registering /dev/token: {e}"))?;
    }
    let context = ServerContext {
        store,
        auth: auth::Authenticator::new(config.auth.clone()),
        orders,
        dev_token,
    };
    let dropshot_config = dropshot::ConfigDropshot {
        bind_address: config.bind_addr,
        default_request_body_max_bytes: DEFAULT_BODY_MAX_BYTES,
        // The X-Ray trace id (set by API Gateway / the Lambda Web Adapter) on every record a
        // request logs, next to Dropshot's request id.
        log_headers: vec!["x-amzn-trace-id".to_string()],
        ..Default::default()
    };
    let server = dropshot::ServerBuilder::new(api, context, log.clone())
        .config(dropshot_config)
        .start()
        .map_err(|e| anyhow::anyhow!("starting the HTTP server on {}: {e}", config.bind_addr))?;
    #[cfg(feature = "embedded")]
    if let Some(sim) = &stripe_sim {
        let url = format!("http://{}/webhooks/stripe", server.local_addr());
        sim.set_webhook_endpoint(&url, &webhook_secret);
    }
    let _ = webhook_secret;
    Ok(RunningServer {
        server,
        #[cfg(feature = "embedded")]
        embedded,
        #[cfg(feature = "embedded")]
        stripe_sim,
    })
}
