//! The development default, in one place (only in builds with the `embedded` feature): the
//! demo member and its simulated orders, development tokens and the secrets they are signed
//! with (random, kept in the data folder, never in the repository), the `/dev/token` endpoint
//! the example dashboard signs in with, and the banner `cargo run` prints.

use crate::auth::AuthConfig;
use crate::http::ServerContext;
use crate::orders::OrderService;
use crate::storage::embedded::EmbeddedStore;
use crate::storage::profiles::ProfileRecord;
use crate::storage::Store;
use crate::stripe::StripeConfig;
use dropshot::{HttpResponseOk, RequestContext};
use secrecy::{ExposeSecret, SecretSlice};
use slog::{info, warn, Logger};
use std::path::Path;
use std::time::Duration;
use stripe_sim::StripeSim;

/// Issuer and audience used by the development HS256 tokens of the embedded default.
pub const DEV_ISSUER: &str = "babes-club-dev";
pub const DEV_CLIENT_ID: &str = "dashboard-dev";
/// The demo member of the development default.
pub const DEMO_USER: &str = "demo-member";
pub const DEMO_EMAIL: &str = "demo@babes.club";

/// Starts the in-process store (persisted under `data_dir`, or in memory) and creates the
/// tables.
pub async fn embedded_store(
    data_dir: Option<&Path>,
    prefix: &str,
    log: &Logger,
) -> anyhow::Result<(Store, EmbeddedStore)> {
    use anyhow::Context as _;
    let running = EmbeddedStore::start(data_dir).await.context("starting the embedded store")?;
    let store = Store::connect("local", Some(&running.endpoint), prefix).await;
    store.ensure_tables(prefix).await.context("creating tables")?;
    info!(log, "embedded store ready"; "endpoint" => &running.endpoint,
        "persisted" => data_dir.map(|d| d.display().to_string()));
    Ok((store, running))
}

/// The in-process Stripe simulator, and settings that point the Stripe client at it.
pub async fn stripe_simulator() -> (StripeConfig, StripeSim) {
    let sim = StripeSim::start().await;
    let stripe = StripeConfig {
        secret_key: sim.secret_key().into(),
        webhook_secret: format!("whsec_dev_{}", hex::encode(rand::random::<[u8; 16]>())).into(),
        api_base: sim.url().to_string(),
        retry_base: Duration::from_millis(100),
        max_attempts: 5,
        deadline: Duration::from_secs(25),
        // The simulator has no account to share; the budget's cost is not wanted here.
        max_rps: None,
    };
    (stripe, sim)
}

/// Lifetime of the token printed and served on the development default.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Token checks of the development default: HS256 with the data folder's secret; admin is the
/// default group (`DASHBOARD_ADMIN_GROUP`), with no operator client until the caller sets one.
pub fn auth_config(
    data_dir: &Path,
    jwks_min_refresh: Duration,
    admin_scope: String,
) -> Result<AuthConfig, String> {
    Ok(AuthConfig {
        issuer: DEV_ISSUER.into(),
        client_id: DEV_CLIENT_ID.into(),
        accept_id_tokens: false,
        hs256_secret: Some(hs256_secret(data_dir)?),
        jwks: None,
        jwks_min_refresh,
        leeway_secs: 5,
        dev_mode: true,
        admin_group: "dashboard-admins".into(),
        admin_client_id: None,
        admin_scope,
    })
}

/// The development HS256 secret: random, kept in the data folder so dev tokens survive
/// restarts, and never in the repository.
pub fn hs256_secret(data_dir: &std::path::Path) -> Result<SecretSlice<u8>, String> {
    secret_file(data_dir, "dev-hs256-secret")
}

/// A random development secret kept in the data folder (created on first use), readable by
/// its owner only: the file is created with mode 0600, never with the umask's default and a
/// chmod after (which would leave a window where others can read it).
pub fn secret_file(data_dir: &std::path::Path, name: &str) -> Result<SecretSlice<u8>, String> {
    use std::io::Write as _;
    let path = data_dir.join(name);
    let read = |path: &Path| -> Result<Option<SecretSlice<u8>>, String> {
        match std::fs::read_to_string(path) {
            Ok(existing) => hex::decode(existing.trim())
                .map(|bytes| Some(SecretSlice::from(bytes)))
                .map_err(|e| format!("{} is corrupt ({e}); delete it", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    if let Some(secret) = read(&path)? {
        // A file left by an older version (created with the umask's mode): owner only now.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let loose = std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
            if loose {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
            }
        }
        return Ok(secret);
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data folder {}: {e}", data_dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let secret: [u8; 32] = rand::random();
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(hex::encode(secret).as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(SecretSlice::from(secret.to_vec()))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| format!("{} vanished; retry", path.display()))
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Who a development token is for, and what it grants.
pub struct DevSubject<'a> {
    pub user_id: &'a str,
    pub email: Option<&'a str>,
    /// The `scope` claim (a member's scopes never make it admin).
    pub scopes: &'a [String],
    /// The `cognito:groups` claim (the admin group makes a member admin).
    pub groups: &'a [String],
}

/// Mints a development HS256 token (the `mint-token` command and the local default).
pub fn mint_token(
    secret: &[u8],
    issuer: &str,
    client_id: &str,
    subject: &DevSubject<'_>,
    ttl: Duration,
) -> String {
    let DevSubject { user_id, email, scopes, groups } = *subject;
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({
        "sub": user_id,
        "iss": issuer,
        "client_id": client_id,
        "token_use": "access",
        "iat": now,
        "exp": now + ttl.as_secs() as i64,
    });
    if let Some(email) = email {
        claims["email"] = email.into();
    }
    if !scopes.is_empty() {
        claims["scope"] = scopes.join(" ").into();
    }
    if !groups.is_empty() {
        claims["cognito:groups"] = groups.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("HS256 encoding cannot fail")
}

/// The demo member's token, when the server runs the development default.
pub fn demo_token(auth: &AuthConfig) -> Option<String> {
    match (&auth.hs256_secret, auth.dev_mode) {
        (Some(secret), true) => Some(mint_token(
            secret.expose_secret(),
            &auth.issuer,
            &auth.client_id,
            &DevSubject { user_id: DEMO_USER, email: Some(DEMO_EMAIL), scopes: &[], groups: &[] },
            DEV_TOKEN_TTL,
        )),
        _ => None,
    }
}

/// A development token for the demo member.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevToken {
    pub token: String,
    pub user_id: String,
}

/// Development default only, and not part of the API: lets the example dashboard sign in with
/// one click. Registered only when the server runs its development default.
#[dropshot::endpoint { method = GET, path = "/dev/token", unpublished = true }]
pub async fn dev_token(
    rqctx: RequestContext<ServerContext>,
) -> Result<HttpResponseOk<DevToken>, dropshot::HttpError> {
    let token = rqctx.context().dev_token.clone().ok_or_else(|| {
        dropshot::HttpError::for_not_found(None, "no development token".to_string())
    })?;
    Ok(HttpResponseOk(DevToken { token, user_id: DEMO_USER.to_string() }))
}

/// Creates the demo member and its simulated orders (failures are logged: the server still
/// serves).
pub async fn seed(store: &Store, orders: &OrderService, sim: Option<&StripeSim>, log: &Logger) {
    let seeded = ProfileRecord {
        display_name: Some("Demo Member".into()),
        ..ProfileRecord::new(DEMO_USER, Some(DEMO_EMAIL.into()), chrono::Utc::now())
    };
    if let Err(error) = store.create_profile(&seeded).await {
        warn!(log, "could not seed the demo member"; "error" => error.to_string());
    }
    let Some(sim) = sim else { return };
    if let Err(error) = seed_orders(store, orders, sim).await {
        warn!(log, "could not seed the demo orders"; "error" => error);
    }
}

/// Gives the demo member a Stripe customer with a few dozen payments in different states in
/// the simulator, then pulls them in through the real reconcile path.
async fn seed_orders(store: &Store, orders: &OrderService, sim: &StripeSim) -> Result<(), String> {
    use stripe_sim::ItemSpec;
    let customer = sim.create_customer(DEMO_EMAIL);
    let products = [
        ("Babes Club Tee", 3500),
        ("Logo Hoodie", 7200),
        ("Sticker Pack", 800),
        ("Tote Bag", 2400),
        ("Enamel Pin", 1200),
    ];
    sim.set_clock(chrono::Utc::now().timestamp() - 45 * 86_400);
    for i in 0..32usize {
        sim.advance(31 * 3600 + (i as i64 * 977) % 7200);
        let (name, price) = products[i % products.len()];
        let quantity = 1 + (i % 3) as u64;
        let items = [ItemSpec::new(name, quantity, price), ItemSpec::new("Sticker Pack", 1, 800)];
        let amount = price * quantity as i64 + 800;
        if i % 11 == 4 {
            sim.checkout(&customer, "usd", &items);
            continue;
        }
        let pi = sim.create_payment_intent(&customer, amount, "usd", &items);
        match i % 8 {
            0..=2 => {
                sim.succeed(&pi);
            }
            3 => {
                sim.succeed(&pi);
                sim.refund(&pi, 800);
            }
            4 => {
                sim.succeed(&pi);
                sim.refund(&pi, amount);
            }
            5 => {
                sim.fail(&pi);
            }
            6 => sim.cancel(&pi),
            _ => sim.process(&pi),
        }
    }
    crate::profiles::link(store, DEMO_USER, &customer).await.map_err(|e| e.to_string())?;
    orders.reconcile(DEMO_USER).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// What `cargo run` prints: where the server is, and a token with a line to try it.
pub fn banner(addr: std::net::SocketAddr, data_dir: &Path, token: &str) -> String {
    format!(
        "\nBabes Club dashboard API on http://{addr}\n\
         Embedded store in {dir}\n\n\
         DEVELOPMENT ONLY token for {DEMO_USER} (HS256, dev secret, valid 12 h):\n{token}\n\n\
         Try it:\n  curl -s -H 'Authorization: Bearer {token}' http://{addr}/dashboard/profile\n",
        dir = data_dir.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn development_secret_files_are_created_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dashboard-dev-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let created = hs256_secret(&dir).unwrap();
        let mode = std::fs::metadata(dir.join("dev-hs256-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "dev-hs256-secret mode {:o}", mode & 0o777);
        secret_file(&dir, "dev-cursor-key").unwrap();
        let mode = std::fs::metadata(dir.join("dev-cursor-key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "dev-cursor-key mode {:o}", mode & 0o777);
        // Read back, not regenerated.
        assert_eq!(hs256_secret(&dir).unwrap().expose_secret(), created.expose_secret());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
