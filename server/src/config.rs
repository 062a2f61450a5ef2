//! Configuration from environment variables (and the same names as flags), resolved once at
//! start into the settings each module needs. Every mistake is reported as one clear line.

use crate::auth::{AuthConfig, JwksSource};
#[cfg(feature = "embedded")]
use crate::dev::{auth_config as dev_auth, secret_file as dev_secret_file};
use crate::logging::LogFormat;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server reads from its environment. Field docs are the `--help` text.
/// `Debug` prints no secret: every key is a [`SecretString`].
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address the HTTP server binds to.
    #[arg(long, env = "DASHBOARD_BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,

    /// Expected `iss` claim of member tokens (for Cognito:
    /// https://cognito-idp.<region>.amazonaws.com/<pool id>).
    #[arg(long, env = "DASHBOARD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Expected `client_id` claim (access tokens) or `aud` (ID tokens, when accepted).
    #[arg(long, env = "DASHBOARD_JWT_CLIENT_ID")]
    pub jwt_client_id: Option<String>,

    /// URL of the issuer's JWKS (RS256 tokens).
    #[arg(long, env = "DASHBOARD_JWKS_URL", conflicts_with = "jwks_file")]
    pub jwks_url: Option<String>,

    /// File holding the issuer's JWKS (RS256 tokens).
    #[arg(long, env = "DASHBOARD_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,

    /// Shared secret for HS256 tokens from the shop's existing auth.
    #[arg(long, env = "DASHBOARD_JWT_HS256_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_hs256_secret: Option<SecretString>,

    /// Also accept ID tokens (`token_use` = `id`) whose `aud` is the client id.
    #[arg(long, env = "DASHBOARD_JWT_ACCEPT_ID_TOKENS", default_value_t = false)]
    pub jwt_accept_id_tokens: bool,

    /// Least number of seconds between two JWKS refreshes caused by an unknown `kid` (at least
    /// 1; a failed fetch is retried sooner, after 1 s, doubling up to this).
    #[arg(long, env = "DASHBOARD_JWKS_MIN_REFRESH_SECS", default_value_t = 30)]
    pub jwks_min_refresh_secs: u64,

    /// DynamoDB endpoint URL. Unset, and with no AWS region, the embedded store is used.
    #[arg(long, env = "DASHBOARD_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,

    /// Longest time (milliseconds) one attempt of a DynamoDB request may take before the SDK
    /// retries it; a request with its retries stops at 2.5 times this. DynamoDB answers in
    /// milliseconds; a slow emulator (moto's server under a parallel test run) needs more.
    #[arg(long, env = "DASHBOARD_DYNAMODB_ATTEMPT_TIMEOUT_MS", default_value_t = 2_000)]
    pub dynamodb_attempt_timeout_ms: u64,

    /// AWS region (standard AWS variable). Set without an endpoint, the server uses AWS.
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,

    /// Prefix for every table name (for example `prod-`).
    #[arg(long, env = "DASHBOARD_TABLE_PREFIX", default_value = "")]
    pub table_prefix: String,

    /// Folder of the embedded store (SQLite file) and the development token secret.
    #[arg(long, env = "DASHBOARD_DATA_DIR", default_value = ".dashboard")]
    pub data_dir: PathBuf,

    /// Log format.
    #[arg(long, env = "DASHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log level (trace, debug, info, warn, error).
    #[arg(long, env = "DASHBOARD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Stripe secret key. Unset on the development default: an in-process Stripe simulator
    /// with demo data is used instead.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true, value_parser = secret)]
    pub stripe_secret_key: Option<SecretString>,

    /// Signing secret of the Stripe webhook endpoint (`whsec_…`).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret)]
    pub stripe_webhook_secret: Option<SecretString>,

    /// Stripe API base URL (a simulator's for tests).
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com/")]
    pub stripe_api_base: String,

    /// Longest time (milliseconds) one request, webhook or background reconcile may spend on
    /// Stripe, retries included; retries stop before it and the request answers 503
    /// `stripe_unavailable`. Under Lambda the invocation's own deadline (less 1 s) wins when
    /// sooner. The default leaves room under the API function's 29 s timeout.
    #[arg(long, env = "DASHBOARD_STRIPE_DEADLINE_MS", default_value_t = 25_000)]
    pub stripe_deadline_ms: u64,

    /// Stripe requests per second this server may send, across every instance (a counter per
    /// second in DynamoDB). Stripe's own limit is per account and shared with the shop's
    /// checkout; work that finds the second spent waits for the next, webhooks defer instead.
    #[arg(long, env = "DASHBOARD_STRIPE_MAX_RPS", default_value_t = 20)]
    pub stripe_max_rps: u32,

    /// Seconds after which a member's cached orders count as stale.
    #[arg(long, env = "DASHBOARD_ORDERS_STALE_AFTER", default_value_t = 900)]
    pub orders_stale_after_secs: u64,

    /// Key (at least 32 bytes) that signs order page tokens.
    #[arg(long, env = "DASHBOARD_CURSOR_KEY", hide_env_values = true, value_parser = secret)]
    pub cursor_key: Option<SecretString>,

    /// Cognito group whose members may call the `/internal/*` endpoints.
    #[arg(long, env = "DASHBOARD_ADMIN_GROUP", default_value = "dashboard-admins")]
    pub admin_group: String,

    /// Operator app client (Cognito client-credentials flow) whose access tokens are accepted
    /// besides the members' client's; they are admin with `DASHBOARD_ADMIN_SCOPE`. Unset: no
    /// operator client.
    #[arg(long, env = "DASHBOARD_ADMIN_CLIENT_ID")]
    pub admin_client_id: Option<String>,

    /// Scope an operator client's token needs for the `/internal/*` endpoints (on a member's
    /// token it grants nothing).
    #[arg(long, env = "DASHBOARD_ADMIN_SCOPE", default_value = "dashboard/admin")]
    pub admin_scope: String,

    /// ARN of a Secrets Manager secret (JSON: stripeSecretKey, stripeWebhookSecret, cursorKey)
    /// read once at start instead of the three variables above.
    #[arg(long, env = "DASHBOARD_SECRETS_ARN")]
    pub secrets_arn: Option<String>,

    /// SQS queue for stale-order refreshes (on Lambda, where work after the response freezes).
    /// Unset: refreshes run in the server process.
    #[arg(long, env = "DASHBOARD_REFRESH_QUEUE_URL")]
    pub refresh_queue_url: Option<String>,

    /// Live Stripe look-ups per member per minute for orders missing from the cache
    /// (`GET /dashboard/orders/{orderId}`); past it, 429 `rate_limited` until the next minute.
    /// At least 1.
    #[arg(long, env = "DASHBOARD_ORDER_LOOKUPS_PER_MINUTE", default_value_t = 5)]
    pub order_lookups_per_minute: u32,

    /// Seconds an order id that Stripe does not know, or that is another customer's, is
    /// answered 404 for that member without asking Stripe again. At least 1.
    #[arg(long, env = "DASHBOARD_UNKNOWN_ORDER_TTL_SECS", default_value_t = 600)]
    pub unknown_order_ttl_secs: u64,

    /// Profile writes (`PUT` and `PATCH`) per member per minute; past it, 429 `rate_limited`
    /// until the next minute. At least 1.
    #[arg(long, env = "DASHBOARD_PROFILE_WRITES_PER_MINUTE", default_value_t = 10)]
    pub profile_writes_per_minute: u32,

    /// `verified-email`: on a member's profile read, while the member has no customer and was
    /// never tried, a token with `email_verified: true` links the one Stripe customer with
    /// exactly that email if no member holds it (one Stripe look-up per member, ever; the
    /// outcome is in the sync status). `off` (default): customers are linked by an admin only.
    #[arg(long, env = "DASHBOARD_AUTO_LINK", value_enum, default_value_t = AutoLink::Off)]
    pub auto_link: AutoLink,

    /// Members reconciled at once by the scheduled sync (PaymentIntents, when it catches up
    /// from Stripe's Events list).
    #[arg(long, env = "DASHBOARD_SYNC_CONCURRENCY", default_value_t = 4)]
    pub sync_concurrency: usize,

    /// Serve `POST /events`, the Lambda Web Adapter's pass-through path for SQS batches and
    /// the schedule (`true` or `false`; the template sets it on each function). Unset: on
    /// exactly when `AWS_LAMBDA_RUNTIME_API` is set. Off elsewhere: on a container or VM
    /// nothing but the adapter may run the sync.
    #[arg(long, env = "DASHBOARD_LAMBDA_EVENTS", action = clap::ArgAction::Set)]
    pub lambda_events: Option<bool>,

    /// Set by Lambda in every function's environment: the process runs under Lambda.
    /// https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
    #[arg(long, env = "AWS_LAMBDA_RUNTIME_API", hide = true)]
    pub lambda_runtime_api: Option<String>,
}

/// How a member without a customer may be linked besides by an admin (`DASHBOARD_AUTO_LINK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoLink {
    Off,
    VerifiedEmail,
}

/// Where Stripe is.
#[derive(Clone, Debug)]
pub enum StripeSetting {
    Live(crate::stripe::StripeConfig),
    /// The in-process simulator with demo data (development default only).
    Simulated,
}

/// Where the tables live.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// A DynamoDB-API endpoint (a standalone emulator or a VPC endpoint).
    Endpoint { url: String, region: String },
    /// AWS itself, with the default credential chain.
    Aws { region: String },
    /// The in-process emulator, persisted under this folder (`None`: in memory).
    Embedded { data_dir: Option<PathBuf> },
}

/// The whole server configuration, resolved and checked. `Debug` prints no secret.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind_addr: SocketAddr,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    /// One DynamoDB request attempt's time limit (`DASHBOARD_DYNAMODB_ATTEMPT_TIMEOUT_MS`).
    pub store_attempt_timeout: Duration,
    pub table_prefix: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub stripe: StripeSetting,
    pub orders: crate::orders::OrdersConfig,
    /// Whether `POST /events` exists (under Lambda only; see [`ServerArgs::lambda_events`]).
    pub lambda_events: bool,
}

/// A Secrets Manager read under way ([`ServerArgs::read_secrets`]).
pub type PendingSecrets = tokio::task::JoinHandle<Result<crate::secrets::Secrets, String>>;

/// Stands in for each secret until Secrets Manager answers: long enough to pass the checks of
/// `resolve`, and never used (the server starts serving only after `apply_secrets`).
const SECRET_PENDING: &str = "pending: read from Secrets Manager at start";

/// The secrets of a read started by [`ServerArgs::read_secrets`], or its one-line error.
pub async fn await_secrets(pending: PendingSecrets) -> Result<crate::secrets::Secrets, String> {
    pending.await.map_err(|e| format!("reading the secrets: {e}"))?
}

impl Config {
    /// Puts the secrets read from Secrets Manager in place of the placeholders
    /// [`ServerArgs::read_secrets`] resolved with.
    pub fn apply_secrets(&mut self, secrets: crate::secrets::Secrets) -> Result<(), String> {
        let StripeSetting::Live(stripe) = &mut self.stripe else {
            return Err("secrets from Secrets Manager need a configured Stripe account".into());
        };
        self.orders.cursor_key = page_token_key(&secrets.cursor_key, "the secret's cursorKey")?;
        stripe.secret_key = secrets.stripe_secret_key;
        stripe.webhook_secret = secrets.stripe_webhook_secret;
        Ok(())
    }
}

/// The page-token signing key, at least 32 bytes (`name` says where it came from).
fn page_token_key(key: &SecretString, name: &str) -> Result<secrecy::SecretSlice<u8>, String> {
    let bytes = key.expose_secret().as_bytes();
    if bytes.len() < 32 {
        return Err(format!("{name} must be at least 32 bytes"));
    }
    Ok(secrecy::SecretSlice::from(bytes.to_vec()))
}

/// Clap's parser for a secret value: kept wrapped from the moment it is read.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// The admin rule's settings, as given.
struct AdminSettings {
    group: String,
    client_id: Option<String>,
    scope: String,
}

impl ServerArgs {
    /// Fills the Stripe and page-token secrets from Secrets Manager when an ARN is configured.
    /// Setting them both ways is a mistake, reported rather than resolved silently.
    pub async fn load_secrets(mut self) -> Result<Self, String> {
        let Some(pending) = self.read_secrets()? else { return Ok(self) };
        let secrets = await_secrets(pending).await?;
        self.stripe_secret_key = Some(secrets.stripe_secret_key);
        self.stripe_webhook_secret = Some(secrets.stripe_webhook_secret);
        self.cursor_key = Some(secrets.cursor_key);
        Ok(self)
    }

    /// Starts reading the secrets from Secrets Manager, when an ARN is configured, on a task of
    /// its own, so that start-up goes on meanwhile (the read is the SDK's first request: its
    /// TLS roots, a connection, a round trip). Until [`Config::apply_secrets`] puts the secrets
    /// in, the configuration resolves with placeholders in their place.
    pub fn read_secrets(&mut self) -> Result<Option<PendingSecrets>, String> {
        let Some(arn) = self.secrets_arn.take() else { return Ok(None) };
        if self.stripe_secret_key.is_some()
            || self.stripe_webhook_secret.is_some()
            || self.cursor_key.is_some()
        {
            return Err("DASHBOARD_SECRETS_ARN is set: do not also set STRIPE_SECRET_KEY, \
                        STRIPE_WEBHOOK_SECRET or DASHBOARD_CURSOR_KEY"
                .into());
        }
        let placeholder = || Some(SecretString::from(SECRET_PENDING));
        self.stripe_secret_key = placeholder();
        self.stripe_webhook_secret = placeholder();
        self.cursor_key = placeholder();
        Ok(Some(tokio::spawn(async move { crate::secrets::load(&arn).await })))
    }

    /// Checks the settings and resolves them. The error is one line, fit to print and exit.
    pub fn resolve(self) -> Result<Config, String> {
        let store = match (self.dynamodb_endpoint, self.aws_region) {
            (Some(url), region) => {
                url::Url::parse(&url)
                    .map_err(|e| format!("DASHBOARD_DYNAMODB_ENDPOINT is not a URL: {e}"))?;
                StoreConfig::Endpoint { url, region: region.unwrap_or_else(|| "local".into()) }
            }
            (None, Some(region)) => StoreConfig::Aws { region },
            (None, None) => {
                if !cfg!(feature = "embedded") {
                    return Err("no store configured: set DASHBOARD_DYNAMODB_ENDPOINT or \
                                AWS_REGION (this build has no embedded store)"
                        .into());
                }
                StoreConfig::Embedded { data_dir: Some(self.data_dir.clone()) }
            }
        };
        let jwks = match (self.jwks_url, self.jwks_file) {
            (Some(url), _) => {
                url::Url::parse(&url)
                    .map_err(|e| format!("DASHBOARD_JWKS_URL is not a URL: {e}"))?;
                Some(JwksSource::Url(url))
            }
            (None, Some(file)) => Some(JwksSource::File(file)),
            (None, None) => None,
        };
        let hs256_secret = self.jwt_hs256_secret.map(|s| s.expose_secret().as_bytes().to_vec());
        if let Some(secret) = &hs256_secret {
            if secret.len() < 32 {
                return Err("DASHBOARD_JWT_HS256_SECRET must be at least 32 bytes".into());
            }
        }
        let hs256_secret = hs256_secret.map(secrecy::SecretSlice::from);
        if self.jwks_min_refresh_secs == 0 {
            // Zero would let every unknown `kid` fetch the JWKS: anyone could make us hammer
            // the issuer.
            return Err("DASHBOARD_JWKS_MIN_REFRESH_SECS must be at least 1".into());
        }
        // Zero would refuse every request of its kind: a typo, not a setting.
        for (name, value) in [
            ("DASHBOARD_ORDER_LOOKUPS_PER_MINUTE", u64::from(self.order_lookups_per_minute)),
            ("DASHBOARD_UNKNOWN_ORDER_TTL_SECS", self.unknown_order_ttl_secs),
            ("DASHBOARD_PROFILE_WRITES_PER_MINUTE", u64::from(self.profile_writes_per_minute)),
            ("DASHBOARD_STRIPE_MAX_RPS", u64::from(self.stripe_max_rps)),
            ("DASHBOARD_DYNAMODB_ATTEMPT_TIMEOUT_MS", self.dynamodb_attempt_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.admin_group.trim().is_empty() {
            return Err("DASHBOARD_ADMIN_GROUP must not be empty".into());
        }
        if self.admin_client_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err("DASHBOARD_ADMIN_CLIENT_ID must not be empty when set".into());
        }
        let admin = AdminSettings {
            group: self.admin_group,
            client_id: self.admin_client_id,
            scope: self.admin_scope,
        };
        let any_auth = jwks.is_some()
            || hs256_secret.is_some()
            || self.jwt_issuer.is_some()
            || self.jwt_client_id.is_some();
        let embedded = matches!(store, StoreConfig::Embedded { .. });
        let auth = if !any_auth && embedded {
            let min_refresh = Duration::from_secs(self.jwks_min_refresh_secs);
            let mut auth = dev_auth(&self.data_dir, min_refresh, admin.scope)?;
            auth.admin_group = admin.group;
            auth.admin_client_id = admin.client_id;
            auth
        } else {
            if jwks.is_none() && hs256_secret.is_none() {
                return Err("no token verification configured: set DASHBOARD_JWKS_URL, \
                            DASHBOARD_JWKS_FILE or DASHBOARD_JWT_HS256_SECRET"
                    .into());
            }
            let issuer = self
                .jwt_issuer
                .ok_or("DASHBOARD_JWT_ISSUER is required when token verification is configured")?;
            let client_id = self.jwt_client_id.ok_or(
                "DASHBOARD_JWT_CLIENT_ID is required when token verification is configured",
            )?;
            if admin.client_id.as_deref() == Some(client_id.as_str()) {
                return Err("DASHBOARD_ADMIN_CLIENT_ID must be a separate operator client, not \
                            DASHBOARD_JWT_CLIENT_ID (the members' client)"
                    .into());
            }
            AuthConfig {
                issuer,
                client_id,
                accept_id_tokens: self.jwt_accept_id_tokens,
                hs256_secret,
                jwks,
                jwks_min_refresh: Duration::from_secs(self.jwks_min_refresh_secs),
                leeway_secs: 5,
                dev_mode: false,
                admin_group: admin.group,
                admin_client_id: admin.client_id,
                admin_scope: admin.scope,
            }
        };
        let dev = auth.dev_mode;
        let stripe = match (self.stripe_secret_key, self.stripe_webhook_secret) {
            (Some(secret_key), Some(webhook_secret)) => {
                url::Url::parse(&self.stripe_api_base)
                    .map_err(|e| format!("STRIPE_API_BASE is not a URL: {e}"))?;
                StripeSetting::Live(crate::stripe::StripeConfig {
                    secret_key,
                    webhook_secret,
                    api_base: self.stripe_api_base,
                    retry_base: Duration::from_millis(500),
                    max_attempts: 5,
                    deadline: Duration::from_millis(self.stripe_deadline_ms),
                    max_rps: Some(self.stripe_max_rps),
                })
            }
            (Some(_), None) => {
                return Err("STRIPE_WEBHOOK_SECRET is required with STRIPE_SECRET_KEY".into())
            }
            (None, _) if dev && cfg!(feature = "embedded") => StripeSetting::Simulated,
            (None, _) => {
                return Err("STRIPE_SECRET_KEY is required outside the development default".into())
            }
        };
        let cursor_key = match self.cursor_key {
            Some(key) => page_token_key(&key, "DASHBOARD_CURSOR_KEY")?,
            None if dev => dev_secret_file(&self.data_dir, "dev-cursor-key")?,
            None => {
                return Err(
                    "DASHBOARD_CURSOR_KEY is required outside the development default".into()
                )
            }
        };
        let limits = crate::storage::limits::LimitsConfig {
            order_lookups_per_minute: self.order_lookups_per_minute,
            unknown_order_ttl: Duration::from_secs(self.unknown_order_ttl_secs),
            profile_writes_per_minute: self.profile_writes_per_minute,
            auto_link_verified_email: self.auto_link == AutoLink::VerifiedEmail,
        };
        Ok(Config {
            bind_addr: self.bind_addr,
            auth,
            store,
            table_prefix: self.table_prefix,
            log_format: self.log_format,
            log_level: self.log_level,
            stripe,
            orders: crate::orders::OrdersConfig {
                stale_after: Duration::from_secs(self.orders_stale_after_secs),
                cursor_key,
                schedule_concurrency: self.sync_concurrency.max(1),
                refresh_queue_url: self.refresh_queue_url,
                limits,
            },
            store_attempt_timeout: Duration::from_millis(self.dynamodb_attempt_timeout_ms),
            lambda_events: self.lambda_events.unwrap_or(self.lambda_runtime_api.is_some()),
        })
    }
}

// A build without the development default never resolves to the embedded store.
#[cfg(not(feature = "embedded"))]
fn dev_auth(_: &std::path::Path, _: Duration, _: String) -> Result<AuthConfig, String> {
    Err("this build has no development default".into())
}

#[cfg(not(feature = "embedded"))]
fn dev_secret_file(_: &std::path::Path, _: &str) -> Result<secrecy::SecretSlice<u8>, String> {
    Err("this build has no development default".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn resolve(flags: &[&str]) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("dashboard-config-{}", std::process::id()));
        let data_dir = format!("--data-dir={}", dir.display());
        let argv = ["dashboard-server", data_dir.as_str()].into_iter().chain(flags.iter().copied());
        Cli::try_parse_from(argv).map_err(|e| e.to_string())?.args.resolve()
    }

    #[test]
    fn the_first_link_by_email_is_off_unless_asked_for() {
        assert!(!resolve(&[]).unwrap().orders.limits.auto_link_verified_email);
        let on = resolve(&["--auto-link=verified-email"]).unwrap();
        assert!(on.orders.limits.auto_link_verified_email);
        assert!(resolve(&["--auto-link=any-email"]).is_err());
    }

    #[test]
    fn the_bare_default_is_embedded_development_mode() {
        let config = resolve(&[]).unwrap();
        assert!(config.auth.dev_mode);
        assert!(matches!(config.store, StoreConfig::Embedded { .. }));
        assert_eq!(config.bind_addr.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn the_events_path_exists_only_under_lambda_or_with_the_flag() {
        assert!(!resolve(&[]).unwrap().lambda_events, "off outside Lambda");
        assert!(resolve(&["--lambda-events=true"]).unwrap().lambda_events);
        assert!(resolve(&["--lambda-runtime-api=127.0.0.1:9001"]).unwrap().lambda_events);
        // The API function runs under Lambda too; the template turns the path off there.
        let api_function = ["--lambda-runtime-api=127.0.0.1:9001", "--lambda-events=false"];
        assert!(!resolve(&api_function).unwrap().lambda_events);
    }

    #[test]
    fn misconfiguration_is_one_clear_line() {
        let cases: &[(&[&str], &str)] = &[
            (&["--jwt-issuer=https://i"], "DASHBOARD_JWKS_URL"),
            (&["--jwks-url=https://i/jwks", "--jwt-client-id=c"], "DASHBOARD_JWT_ISSUER"),
            (&["--jwks-url=https://i/jwks", "--jwt-issuer=https://i"], "DASHBOARD_JWT_CLIENT_ID"),
            (&["--jwt-hs256-secret=short", "--jwt-issuer=i", "--jwt-client-id=c"], "32 bytes"),
            (&["--jwks-url=not a url", "--jwt-issuer=i", "--jwt-client-id=c"], "not a URL"),
            (&["--dynamodb-endpoint=nope"], "not a URL"),
            (&["--aws-region=eu-west-1"], "no token verification"),
            (
                &[
                    "--aws-region=r",
                    "--jwt-hs256-secret=0123456789abcdef0123456789abcdef",
                    "--jwt-issuer=i",
                    "--jwt-client-id=c",
                ],
                "STRIPE_SECRET_KEY",
            ),
            (&["--stripe-secret-key=sk_test_x"], "STRIPE_WEBHOOK_SECRET"),
            (&["--jwks-min-refresh-secs=0"], "DASHBOARD_JWKS_MIN_REFRESH_SECS must be at least 1"),
            (
                &[
                    "--jwks-url=https://i/jwks",
                    "--jwt-issuer=i",
                    "--jwt-client-id=members",
                    "--admin-client-id=members",
                ],
                "separate operator client",
            ),
            (&["--admin-client-id="], "DASHBOARD_ADMIN_CLIENT_ID must not be empty"),
            (&["--admin-group= "], "DASHBOARD_ADMIN_GROUP must not be empty"),
            (
                &["--order-lookups-per-minute=0"],
                "DASHBOARD_ORDER_LOOKUPS_PER_MINUTE must be at least 1",
            ),
            (
                &["--unknown-order-ttl-secs=0"],
                "DASHBOARD_UNKNOWN_ORDER_TTL_SECS must be at least 1",
            ),
            (
                &["--profile-writes-per-minute=0"],
                "DASHBOARD_PROFILE_WRITES_PER_MINUTE must be at least 1",
            ),
        ];
        for (flags, expected) in cases {
            let error = resolve(flags).unwrap_err();
            assert!(error.contains(expected), "{flags:?}: {error}");
            assert!(!error.contains('\n'), "{flags:?}: one line: {error}");
        }
    }

    #[test]
    fn no_secret_can_print_from_the_arguments_or_the_resolved_config() {
        let secrets = [
            "sk_live_SECRET0123456789",
            "whsec_SECRET0123456789",
            "cursor-SECRET-0123456789abcdef0123456789",
            "hs256-SECRET-0123456789abcdef0123456789",
        ];
        let argv = [
            "dashboard-server".to_string(),
            "--aws-region=eu-west-1".into(),
            format!("--stripe-secret-key={}", secrets[0]),
            format!("--stripe-webhook-secret={}", secrets[1]),
            format!("--cursor-key={}", secrets[2]),
            format!("--jwt-hs256-secret={}", secrets[3]),
            "--jwt-issuer=https://issuer".into(),
            "--jwt-client-id=abc".into(),
        ];
        let args = Cli::try_parse_from(argv).unwrap().args;
        let printed_args = format!("{args:?} {args:#?}");
        let config = args.resolve().unwrap();
        let printed_config = format!("{config:?} {config:#?}");
        for secret in secrets {
            // Any 8-byte piece would be a leak, not only the whole value.
            let piece = &secret[secret.len() - 12..];
            assert!(!printed_args.contains(piece), "ServerArgs printed {secret}");
            assert!(!printed_config.contains(piece), "Config printed {secret}");
        }
        assert!(printed_config.contains("REDACTED"), "{printed_config}");
        // The values are all there, for the code that needs them.
        let crate::config::StripeSetting::Live(stripe) = &config.stripe else { panic!() };
        assert_eq!(stripe.secret_key.expose_secret(), secrets[0]);
        assert_eq!(config.orders.cursor_key.expose_secret(), secrets[2].as_bytes());
    }

    /// With an ARN, the configuration resolves while the read is under way, and the secrets
    /// replace every placeholder; a short page-token key is refused as from the flags.
    #[tokio::test]
    async fn secrets_read_at_start_replace_the_placeholders() {
        let argv = [
            "dashboard-server",
            "--aws-region=eu-west-1",
            "--secrets-arn=arn:aws:secretsmanager:eu-west-1:1:secret:s",
            "--jwt-issuer=https://issuer",
            "--jwt-client-id=abc",
            "--jwks-url=https://issuer/jwks",
        ];
        let mut args = Cli::try_parse_from(argv).unwrap().args;
        let pending = args.read_secrets().unwrap().expect("a read under way");
        pending.abort();
        let mut config = args.resolve().unwrap();
        let secrets = |cursor_key: &str| {
            serde_json::from_value::<crate::secrets::Secrets>(serde_json::json!({
                "stripeSecretKey": "sk_test_from_the_secret",
                "stripeWebhookSecret": "whsec_from_the_secret",
                "cursorKey": cursor_key,
            }))
            .unwrap()
        };
        let short = config.clone().apply_secrets(secrets("too short")).unwrap_err();
        assert!(short.contains("cursorKey must be at least 32 bytes"), "{short}");
        config.apply_secrets(secrets("0123456789abcdef0123456789abcdef")).unwrap();
        let StripeSetting::Live(stripe) = &config.stripe else { panic!("{config:?}") };
        assert_eq!(stripe.secret_key.expose_secret(), "sk_test_from_the_secret");
        assert_eq!(stripe.webhook_secret.expose_secret(), "whsec_from_the_secret");
        assert_eq!(config.orders.cursor_key.expose_secret(), b"0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn admin_settings_resolve_with_their_defaults() {
        let config = resolve(&[
            "--jwks-url=https://i/jwks",
            "--jwt-issuer=i",
            "--jwt-client-id=members",
            "--aws-region=r",
            "--stripe-secret-key=sk_test_x",
            "--stripe-webhook-secret=whsec_x",
            "--cursor-key=0123456789abcdef0123456789abcdef",
        ])
        .unwrap();
        assert_eq!(config.auth.admin_group, "dashboard-admins");
        assert_eq!(config.auth.admin_client_id, None);
        assert_eq!(config.auth.admin_scope, "dashboard/admin");
        let config = resolve(&[
            "--jwks-url=https://i/jwks",
            "--jwt-issuer=i",
            "--jwt-client-id=members",
            "--admin-client-id=operator",
            "--aws-region=r",
            "--stripe-secret-key=sk_test_x",
            "--stripe-webhook-secret=whsec_x",
            "--cursor-key=0123456789abcdef0123456789abcdef",
        ])
        .unwrap();
        assert_eq!(config.auth.admin_client_id.as_deref(), Some("operator"));
        assert_eq!(config.auth.jwks_min_refresh, Duration::from_secs(30));
    }

    #[test]
    fn production_settings_resolve() {
        let config = resolve(&[
            "--aws-region=eu-west-1",
            "--stripe-secret-key=sk_live_x",
            "--stripe-webhook-secret=whsec_x",
            "--cursor-key=0123456789abcdef0123456789abcdef",
            "--jwks-url=https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
            "--jwt-issuer=https://cognito-idp.eu-west-1.amazonaws.com/pool",
            "--jwt-client-id=abc",
            "--table-prefix=prod-",
        ])
        .unwrap();
        assert!(!config.auth.dev_mode);
        assert!(config.auth.hs256_secret.is_none());
        assert!(matches!(config.store, StoreConfig::Aws { ref region } if region == "eu-west-1"));
    }
}
