//! Bearer-token authentication. The token's `sub` is the only source of identity.
//!
//! RS256 tokens are checked against the issuer's JWKS by `kid`; HS256 tokens against the shared
//! secret. Each algorithm only ever uses its own kind of key, so HS/RS confusion is impossible.
//! A verified token is cached (by its hash) until it expires, so a token's signature is checked
//! once, not on every request.
//!
//! Admin is never a scope a member can ask for: Cognito grants custom scopes per app client, so
//! every user of the members' client could request an admin scope allowed on it
//! (<https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-define-resource-servers.html>).
//! A member is admin by group (`cognito:groups`, set per user:
//! <https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-user-groups.html>);
//! the admin scope counts only on tokens of a separate operator client (client-credentials flow).

use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Deserialize;
use sha3::{Digest, Sha3_256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Who is calling: taken from a verified token.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The token's `sub`: a member id, or the operator client's id for an operator token.
    pub user_id: String,
    pub email: Option<String>,
    /// The token's `email_verified`: the identity provider checked that the member controls
    /// `email` (false when absent).
    pub email_verified: bool,
    /// Which app client the token was issued to.
    pub client: TokenClient,
    /// The OAuth scopes of the `scope` claim.
    pub scopes: Vec<String>,
    /// The Cognito groups of the `cognito:groups` claim (members only).
    pub groups: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub expires_at: i64,
}

impl Identity {
    /// True for a member's token (the member client's), false for the operator client's.
    pub fn is_member(&self) -> bool {
        self.client == TokenClient::Member
    }
}

/// The app client a token was issued to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenClient {
    /// The members' client (`DASHBOARD_JWT_CLIENT_ID`): `sub` is a member.
    Member,
    /// The operator client (`DASHBOARD_ADMIN_CLIENT_ID`, client-credentials flow): no member.
    Operator,
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
    /// A JSON boolean in Cognito's ID tokens; some providers send the string `"true"`.
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
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

/// Token checks, resolved. `Debug` prints no secret.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub issuer: String,
    pub client_id: String,
    pub accept_id_tokens: bool,
    pub hs256_secret: Option<SecretSlice<u8>>,
    pub jwks: Option<JwksSource>,
    pub jwks_min_refresh: Duration,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// True when this is the development default (a generated HS256 secret).
    pub dev_mode: bool,
    /// Cognito group whose members may call the admin endpoints.
    pub admin_group: String,
    /// The operator app client (client-credentials flow), if any: its access tokens are
    /// accepted besides the members' client's.
    pub admin_client_id: Option<String>,
    /// Scope an operator token needs for the admin endpoints (never enough on a member token).
    pub admin_scope: String,
}

/// A verified token in the cache, with the `kid` of the key it was verified with (RS256), so
/// a token signed by a key the issuer withdrew stops verifying with the key.
#[derive(Clone)]
struct Verified {
    identity: Identity,
    kid: Option<String>,
}

pub struct Authenticator {
    config: AuthConfig,
    hs256: Option<DecodingKey>,
    jwks: Option<JwksStore>,
    verified: quick_cache::sync::Cache<[u8; 32], Verified>,
}

impl Authenticator {
    /// The admin rule: a member in the admin group, or the operator client with the admin
    /// scope. A member's scopes never make it admin.
    pub fn is_admin(&self, identity: &Identity) -> bool {
        match identity.client {
            TokenClient::Member => identity.groups.iter().any(|g| g == &self.config.admin_group),
            TokenClient::Operator => identity.scopes.iter().any(|s| s == &self.config.admin_scope),
        }
    }

    pub fn new(config: AuthConfig) -> Self {
        let hs256 =
            config.hs256_secret.as_ref().map(|s| DecodingKey::from_secret(s.expose_secret()));
        let jwks =
            config.jwks.clone().map(|source| JwksStore::new(source, config.jwks_min_refresh));
        Authenticator { config, hs256, jwks, verified: quick_cache::sync::Cache::new(4096) }
    }

    /// Checks the `Authorization` header and returns the caller. Does no storage access.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Identity, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::Missing)?;
        let cache_key: [u8; 32] = Sha3_256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Some(hit) = self.verified.get(&cache_key) {
            if hit.identity.expires_at + self.leeway() <= now {
                self.verified.remove(&cache_key);
                return Err(AuthError::Rejected("expired".into()));
            }
            // A key the issuer withdrew (gone from the refreshed set) no longer vouches for the
            // tokens it signed: verify again, which refuses them.
            let withdrawn = match (&hit.kid, &self.jwks) {
                (Some(kid), Some(jwks)) => !jwks.holds(kid),
                _ => false,
            };
            if !withdrawn {
                return Ok(hit.identity);
            }
            self.verified.remove(&cache_key);
        }
        let verified = self.verify(token).await?;
        self.verified.insert(cache_key, verified.clone());
        Ok(verified.identity)
    }

    fn leeway(&self) -> i64 {
        self.config.leeway_secs as i64
    }

    async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let reject = |why: &str| AuthError::Rejected(why.to_string());
        let header = decode_header(token).map_err(|e| reject(&format!("bad header: {e}")))?;
        let kid = (header.alg == Algorithm::RS256).then(|| header.kid.clone()).flatten();
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
        let client = self.client_of(&claims)?;
        if claims.sub.is_empty() || claims.sub.len() > 128 {
            return Err(reject("bad sub"));
        }
        let scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        // Groups name users; an operator token has none, and any it carried would mean nothing.
        let groups = match client {
            TokenClient::Member => claims.groups.unwrap_or_default(),
            TokenClient::Operator => Vec::new(),
        };
        let identity = Identity {
            user_id: claims.sub,
            email: claims.email,
            email_verified: match &claims.email_verified {
                Some(serde_json::Value::Bool(verified)) => *verified,
                Some(serde_json::Value::String(text)) => text == "true",
                _ => false,
            },
            client,
            scopes,
            groups,
            expires_at: claims.exp,
        };
        Ok(Verified { identity, kid })
    }

    /// Which of our app clients the token was issued to, or a rejection. Cognito access tokens
    /// carry `client_id` (the app client) and `token_use` = `access`; ID tokens carry the client
    /// in `aud`; a client-credentials token's `sub` is the app client's id
    /// (<https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html>).
    fn client_of(&self, claims: &Claims) -> Result<TokenClient, AuthError> {
        let wrong = || AuthError::Rejected("wrong token_use or audience".into());
        let member = self.config.client_id.as_str();
        match claims.token_use.as_deref() {
            Some("access") => {
                let client = claims.client_id.as_deref().ok_or_else(wrong)?;
                if client == member {
                    return Ok(TokenClient::Member);
                }
                match self.config.admin_client_id.as_deref() {
                    // Only a client-credentials token: one issued to a user of that client
                    // (sub = the user) is not the operator.
                    Some(operator) if client == operator && claims.sub == operator => {
                        Ok(TokenClient::Operator)
                    }
                    _ => Err(wrong()),
                }
            }
            Some("id") if self.config.accept_id_tokens => {
                let aud = claims.aud.as_ref().ok_or_else(wrong)?;
                if aud.contains(member) {
                    Ok(TokenClient::Member)
                } else {
                    Err(wrong())
                }
            }
            _ => Err(wrong()),
        }
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// First wait after a failed JWKS fetch; it doubles per failure, up to `min_refresh`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Age after which the key set is fetched again before it verifies a new token, so keys the
/// issuer withdrew stop verifying even when no unknown `kid` shows up. Cognito publishes its
/// current keys at `<issuer>/.well-known/jwks.json` and a verifier matches tokens to them by
/// `kid` (<https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html>).
const MAX_KEY_SET_AGE: Duration = Duration::from_secs(3600);

/// One fetched JWKS: the issuer's keys by `kid`, as a whole (a refresh replaces it).
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Instant,
}

/// When the next fetch may happen.
#[derive(Default)]
struct Refresh {
    /// The last successful fetch: unknown kids refresh at most once per `min_refresh` after it.
    last_success: Option<Instant>,
    /// Failed fetches in a row, and when the next attempt may be made.
    failures: u32,
    retry_at: Option<Instant>,
}

/// The issuer's RS256 keys by `kid`, loaded lazily (no network work at cold start) and
/// refreshed when an unknown `kid` shows up (at most once per `min_refresh` after a success) or
/// when the set is older than [`MAX_KEY_SET_AGE`]. A failed fetch arms only its own short
/// backoff, so a cold instance whose first fetch fails recovers within seconds.
struct JwksStore {
    source: JwksSource,
    min_refresh: Duration,
    /// `None` until a fetch succeeds.
    keys: RwLock<Option<Arc<KeySet>>>,
    refresh: tokio::sync::Mutex<Refresh>,
    /// Built on first use: creating it loads root certificates, which cold start can skip.
    http: std::sync::OnceLock<reqwest::Client>,
}

impl JwksStore {
    fn new(source: JwksSource, min_refresh: Duration) -> Self {
        JwksStore {
            source,
            min_refresh,
            keys: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(Refresh::default()),
            http: std::sync::OnceLock::new(),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().expect("JWKS lock poisoned").clone()
    }

    /// True when the current key set has `kid` (a cached token's key is still published).
    fn holds(&self, kid: &str) -> bool {
        self.current().is_some_and(|set| set.keys.contains_key(kid))
    }

    /// The key for `kid` from a set young enough to use without asking the issuer.
    fn fresh(&self, kid: &str) -> Option<DecodingKey> {
        let set = self.current()?;
        (set.fetched_at.elapsed() < MAX_KEY_SET_AGE).then(|| set.keys.get(kid).cloned()).flatten()
    }

    /// The key for `kid`: `Ok(None)` when the issuer does not publish it, `KeysUnavailable`
    /// (503) when it cannot be known: no key set was ever loaded, or a fetch for an unknown
    /// `kid` failed.
    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, AuthError> {
        if let Some(key) = self.fresh(kid) {
            return Ok(Some(key));
        }
        let mut refresh = self.refresh.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if let Some(key) = self.fresh(kid) {
            return Ok(Some(key));
        }
        let now = Instant::now();
        let current = self.current();
        let backing_off = refresh.retry_at.is_some_and(|at| now < at);
        let limited =
            refresh.last_success.is_some_and(|at| now.duration_since(at) < self.min_refresh);
        if backing_off || limited {
            return match current {
                Some(set) => Ok(set.keys.get(kid).cloned()),
                None => Err(AuthError::KeysUnavailable(
                    "no key set loaded yet; the last fetch failed".into(),
                )),
            };
        }
        match self.fetch().await {
            Ok(set) => {
                let mut keys = HashMap::new();
                for jwk in &set.keys {
                    let Some(id) = jwk.common.key_id.clone() else { continue };
                    if let Ok(key) = DecodingKey::from_jwk(jwk) {
                        keys.insert(id, key);
                    }
                }
                let found = keys.get(kid).cloned();
                // The whole set is replaced: a key the issuer no longer publishes is gone.
                *self.keys.write().expect("JWKS lock poisoned") =
                    Some(Arc::new(KeySet { keys, fetched_at: now }));
                *refresh = Refresh { last_success: Some(now), failures: 0, retry_at: None };
                Ok(found)
            }
            Err(error) => {
                refresh.failures = refresh.failures.saturating_add(1);
                let doublings = (refresh.failures - 1).min(16);
                let wait = FIRST_RETRY.saturating_mul(1 << doublings).min(self.min_refresh);
                refresh.retry_at = Some(now + wait);
                // A known key from an aged set still verifies while the issuer is unreachable;
                // an unknown kid cannot be decided, which is not the caller's fault.
                match current.and_then(|set| set.keys.get(kid).cloned()) {
                    Some(key) => Ok(Some(key)),
                    None => Err(error),
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn config(admin_client_id: Option<&str>) -> AuthConfig {
        AuthConfig {
            issuer: "iss".into(),
            client_id: "members".into(),
            accept_id_tokens: false,
            hs256_secret: Some(SECRET.to_vec().into()),
            jwks: None,
            jwks_min_refresh: Duration::from_secs(30),
            leeway_secs: 5,
            dev_mode: false,
            admin_group: "dashboard-admins".into(),
            admin_client_id: admin_client_id.map(str::to_string),
            admin_scope: "dashboard/admin".into(),
        }
    }

    fn bearer(claims: serde_json::Value) -> http::HeaderMap {
        let mut all = json!({"iss": "iss", "token_use": "access", "exp": 4_000_000_000i64});
        for (key, value) in claims.as_object().unwrap() {
            all[key] = value.clone();
        }
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &all,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[tokio::test]
    async fn admin_is_the_members_group_or_the_operators_scope() {
        let auth = Authenticator::new(config(Some("operator")));
        let cases = [
            (json!({"sub": "m", "client_id": "members", "scope": "dashboard/admin"}), false),
            (
                json!({"sub": "m", "client_id": "members", "cognito:groups": ["dashboard/admin"]}),
                false,
            ),
            (
                json!({"sub": "m", "client_id": "members", "cognito:groups": ["dashboard-admins"]}),
                true,
            ),
            (
                json!({"sub": "operator", "client_id": "operator", "scope": "a dashboard/admin"}),
                true,
            ),
            (json!({"sub": "operator", "client_id": "operator", "scope": "dashboard/read"}), false),
            (
                json!({"sub": "operator", "client_id": "operator",
                       "cognito:groups": ["dashboard-admins"]}),
                false,
            ),
        ];
        for (claims, admin) in cases {
            let identity = auth.authenticate(&bearer(claims.clone())).await.unwrap();
            assert_eq!(auth.is_admin(&identity), admin, "{claims}");
            assert_eq!(identity.is_member(), claims["client_id"] == "members", "{claims}");
        }
    }

    #[tokio::test]
    async fn operator_tokens_are_refused_without_an_operator_client_or_with_a_user() {
        let operator =
            json!({"sub": "operator", "client_id": "operator", "scope": "dashboard/admin"});
        let without = Authenticator::new(config(None));
        assert!(matches!(
            without.authenticate(&bearer(operator.clone())).await,
            Err(AuthError::Rejected(_))
        ));
        let with = Authenticator::new(config(Some("operator")));
        assert!(with.authenticate(&bearer(operator)).await.is_ok());
        let user = json!({"sub": "a-user", "client_id": "operator", "scope": "dashboard/admin"});
        assert!(matches!(with.authenticate(&bearer(user)).await, Err(AuthError::Rejected(_))));
    }
}
