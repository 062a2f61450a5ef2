//! Bearer-token authentication. The token's `sub` is the only source of identity.
//!
//! RS256 tokens are checked against the issuer's JWKS by `kid`; HS256 tokens against the shared
//! secret. Each algorithm only ever uses its own kind of key, so HS/RS confusion is impossible.
//! A verified token is cached (by its hash) until it expires, so a token's signature is checked
//! once, not on every request.

use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha3::{Digest, Sha3_256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Who is calling: taken from a verified token.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user_id: String,
    pub email: Option<String>,
    /// Space-separated OAuth scopes and group names, for admin checks.
    pub scopes: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub expires_at: i64,
}

/// Why a request was not authenticated. Only logged: clients always see one uniform 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token rejected: {0}")]
    Rejected(String),
    /// The keys needed to check the token could not be loaded; not the caller's fault.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default, rename = "cognito:groups")]
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// Where RS256 keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

/// Token checks, resolved.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub issuer: String,
    pub client_id: String,
    pub accept_id_tokens: bool,
    pub hs256_secret: Option<Vec<u8>>,
    pub jwks: Option<JwksSource>,
    pub jwks_min_refresh: Duration,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// True when this is the development default (a generated HS256 secret).
    pub dev_mode: bool,
    /// Scope or Cognito group that the admin endpoints require.
    pub admin_scope: String,
}

pub struct Authenticator {
    config: AuthConfig,
    hs256: Option<DecodingKey>,
    jwks: Option<JwksStore>,
    verified: quick_cache::sync::Cache<[u8; 32], Identity>,
}

impl Authenticator {
    /// The admin rule: `/internal/*` needs the admin scope (or group) on a valid token.
    pub fn is_admin(&self, identity: &Identity) -> bool {
        identity.scopes.iter().any(|s| s == &self.config.admin_scope)
    }

    pub fn new(config: AuthConfig) -> Self {
        let hs256 = config.hs256_secret.as_deref().map(DecodingKey::from_secret);
        let jwks =
            config.jwks.clone().map(|source| JwksStore::new(source, config.jwks_min_refresh));
        Authenticator { config, hs256, jwks, verified: quick_cache::sync::Cache::new(4096) }
    }

    /// Checks the `Authorization` header and returns the caller. Does no storage access.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Identity, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::Missing)?;
        let cache_key: [u8; 32] = Sha3_256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Some(identity) = self.verified.get(&cache_key) {
            if identity.expires_at + self.leeway() > now {
                return Ok(identity);
            }
            self.verified.remove(&cache_key);
            return Err(AuthError::Rejected("expired".into()));
        }
        let identity = self.verify(token).await?;
        self.verified.insert(cache_key, identity.clone());
        Ok(identity)
    }

    fn leeway(&self) -> i64 {
        self.config.leeway_secs as i64
    }

    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let reject = |why: &str| AuthError::Rejected(why.to_string());
        let header = decode_header(token).map_err(|e| reject(&format!("bad header: {e}")))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or_else(|| reject("HS256 not accepted"))?,
            Algorithm::RS256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| reject("RS256 not accepted"))?;
                let kid = header.kid.as_deref().ok_or_else(|| reject("RS256 token without kid"))?;
                jwks.key(kid).await?.ok_or_else(|| reject("unknown kid"))?
            }
            other => return Err(reject(&format!("algorithm {other:?} not accepted"))),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below: Cognito access tokens carry client_id
        validation.leeway = self.config.leeway_secs;
        let claims =
            decode::<Claims>(token, &key, &validation).map_err(|e| reject(&format!("{e}")))?.claims;
        self.check_audience(&claims)?;
        if claims.sub.is_empty() || claims.sub.len() > 128 {
            return Err(reject("bad sub"));
        }
        let mut scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        scopes.extend(claims.groups.unwrap_or_default());
        Ok(Identity { user_id: claims.sub, email: claims.email, scopes, expires_at: claims.exp })
    }

    fn check_audience(&self, claims: &Claims) -> Result<(), AuthError> {
        let wanted = self.config.client_id.as_str();
        let ok = match claims.token_use.as_deref() {
            Some("access") => claims.client_id.as_deref() == Some(wanted),
            Some("id") if self.config.accept_id_tokens => {
                claims.aud.as_ref().is_some_and(|aud| aud.contains(wanted))
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::Rejected("wrong token_use or audience".into()))
        }
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The issuer's RS256 keys by `kid`, loaded lazily (no network work at cold start) and
/// refreshed when an unknown `kid` shows up, at most once per `min_refresh`.
struct JwksStore {
    source: JwksSource,
    min_refresh: Duration,
    keys: RwLock<Arc<HashMap<String, DecodingKey>>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Built on first use: creating it loads root certificates, which cold start can skip.
    http: std::sync::OnceLock<reqwest::Client>,
}

impl JwksStore {
    fn new(source: JwksSource, min_refresh: Duration) -> Self {
        JwksStore {
            source,
            min_refresh,
            keys: RwLock::new(Arc::new(HashMap::new())),
            last_refresh: tokio::sync::Mutex::new(None),
            http: std::sync::OnceLock::new(),
        }
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().expect("JWKS lock poisoned").get(kid).cloned()
    }

    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, AuthError> {
        if let Some(key) = self.cached(kid) {
            return Ok(Some(key));
        }
        let mut last = self.last_refresh.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if let Some(key) = self.cached(kid) {
            return Ok(Some(key));
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        let set = self.fetch().await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(id) = jwk.common.key_id.clone() else { continue };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(id, key);
            }
        }
        *self.keys.write().expect("JWKS lock poisoned") = Arc::new(keys);
        Ok(self.cached(kid))
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let unavailable = |e: String| AuthError::KeysUnavailable(e);
        match &self.source {
            JwksSource::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
                serde_json::from_str(&text).map_err(|e| unavailable(format!("bad JWKS: {e}")))
            }
            JwksSource::Url(url) => {
                let http = self.http.get_or_init(|| {
                    reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .expect("building the JWKS HTTP client")
                });
                let response = http
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| unavailable(e.to_string()))?;
                response.json().await.map_err(|e| unavailable(format!("bad JWKS: {e}")))
            }
        }
    }
}
