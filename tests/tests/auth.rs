//! Authentication through the generated client: the hostile-token catalogue and RS256 via a
//! JWKS served on 127.0.0.1, with key rotation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dashboard_client::Client;
use dashboard_tests::jwks::{JwksServer, SigningKey};
use dashboard_tests::{
    claims, expect_error, hs256, operator_claims, Options, TestServer, ADMIN_CLIENT_ID,
    ADMIN_GROUP, ADMIN_SCOPE, CLIENT_ID,
};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// RSA keys are slow to make; every test in this binary shares them.
fn keys() -> &'static (SigningKey, SigningKey, SigningKey) {
    static KEYS: OnceLock<(SigningKey, SigningKey, SigningKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            SigningKey::generate("key-a"),
            SigningKey::generate("key-b"),
            SigningKey::generate("attacker"),
        )
    })
}

fn raw_header(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    headers
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Asserts the uniform 401 for a client.
async fn assert_rejected(name: &str, client: &Client) {
    let (status, error) = expect_error(client.get_profile().await);
    assert_eq!(status, 401, "{name}");
    assert_eq!(error.error_code, "unauthorized", "{name}");
    assert_eq!(error.message, "missing or invalid bearer token", "{name}");
    assert_eq!(error.field, None, "{name}");
}

#[tokio::test]
async fn hostile_tokens_get_one_uniform_401_before_any_storage_access() {
    let (key_a, _, attacker) = keys();
    let jwks = JwksServer::start(&[key_a]).await;
    let mut server =
        TestServer::start_with(Options { jwks_url: Some(jwks.url.clone()), ..Default::default() })
            .await;
    let secret = server.hs256_secret.clone();
    let now = chrono::Utc::now().timestamp();
    let valid = claims(json!({}));

    // The valid baseline works with both algorithms.
    server.client(&server.token(json!({}))).get_profile().await.unwrap();
    server.client(&key_a.sign(Some("key-a"), &valid)).get_profile().await.unwrap();

    // With the store gone, anything that reached storage would be a 503, not a 401.
    server.stop_store().await;

    let tampered = {
        let token = server.token(json!({}));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&claims(json!({"sub": "someone-else"})));
        format!("{}.{}.{}", parts[0], forged, parts[2])
    };
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&valid));
    let unsigned_no_dot = format!("{}.{}", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&valid));
    // HS/RS confusion: an HS256 token whose HMAC key is the issuer's public RSA key.
    let confused = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("key-a".into());
        jsonwebtoken::encode(
            &header,
            &valid,
            &jsonwebtoken::EncodingKey::from_secret(key_a.public_pem.as_bytes()),
        )
        .unwrap()
    };
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &valid,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();

    let catalogue: Vec<(&str, HeaderMap)> = vec![
        ("no Authorization header", HeaderMap::new()),
        ("Basic scheme", raw_header("Basic dXNlcjpwYXNz")),
        ("empty bearer", raw_header("Bearer ")),
        ("token without scheme", raw_header(&server.token(json!({})))),
        ("malformed: two parts", raw_header("Bearer abc.def")),
        ("malformed: garbage", raw_header("Bearer !!!.@@@.###")),
        ("malformed: not base64 JSON", raw_header("Bearer aGVsbG8.d29ybGQ.c2ln")),
        ("alg none", raw_header(&format!("Bearer {unsigned}"))),
        ("alg none without signature part", raw_header(&format!("Bearer {unsigned_no_dot}"))),
        (
            "HS256 with a wrong secret",
            raw_header(&format!(
                "Bearer {}",
                hs256(b"wrong-secret-wrong-secret-wrong!", valid.clone())
            )),
        ),
        ("tampered payload", raw_header(&format!("Bearer {tampered}"))),
        ("HS/RS confusion", raw_header(&format!("Bearer {confused}"))),
        ("HS512", raw_header(&format!("Bearer {hs512}"))),
        ("expired", raw_header(&format!("Bearer {}", server.token(json!({"exp": now - 60}))))),
        (
            "not yet valid",
            raw_header(&format!("Bearer {}", server.token(json!({"nbf": now + 300})))),
        ),
        ("no exp", raw_header(&format!("Bearer {}", server.token(json!({"exp": null}))))),
        (
            "wrong issuer",
            raw_header(&format!("Bearer {}", server.token(json!({"iss": "https://evil.test"})))),
        ),
        ("no issuer", raw_header(&format!("Bearer {}", server.token(json!({"iss": null}))))),
        (
            "wrong client_id",
            raw_header(&format!("Bearer {}", server.token(json!({"client_id": "other-app"})))),
        ),
        (
            "ID token not accepted",
            raw_header(&format!(
                "Bearer {}",
                server.token(json!({"token_use": "id", "aud": CLIENT_ID}))
            )),
        ),
        (
            "no token_use",
            raw_header(&format!("Bearer {}", server.token(json!({"token_use": null})))),
        ),
        ("no sub", raw_header(&format!("Bearer {}", server.token(json!({"sub": null}))))),
        ("empty sub", raw_header(&format!("Bearer {}", server.token(json!({"sub": ""}))))),
        ("RS256 unknown kid", raw_header(&format!("Bearer {}", key_a.sign(Some("nope"), &valid)))),
        ("RS256 without kid", raw_header(&format!("Bearer {}", key_a.sign(None, &valid)))),
        (
            "RS256 by another key under a known kid",
            raw_header(&format!("Bearer {}", attacker.sign(Some("key-a"), &valid))),
        ),
        (
            "RS256 expired",
            raw_header(&format!(
                "Bearer {}",
                key_a.sign(Some("key-a"), &claims(json!({"exp": now - 60})))
            )),
        ),
        (
            "RS256 wrong audience",
            raw_header(&format!(
                "Bearer {}",
                key_a.sign(Some("key-a"), &claims(json!({"client_id": "x"})))
            )),
        ),
    ];
    for (name, headers) in catalogue {
        assert_rejected(name, &server.client_with_headers(headers)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_jwks_and_follow_key_rotation() {
    let (key_a, key_b, _) = keys();
    let jwks = JwksServer::start(&[key_a]).await;
    let server = TestServer::start_with(Options {
        jwks_url: Some(jwks.url.clone()),
        jwks_min_refresh: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    assert_eq!(jwks.hits(), 0, "no network work before the first token");

    let token_a = key_a.sign(Some("key-a"), &claims(json!({"sub": "rs-member"})));
    let profile = server.client(&token_a).get_profile().await.unwrap().into_inner();
    assert_eq!(profile.user_id, "rs-member");
    assert_eq!(jwks.hits(), 1);

    // A burst of unknown kids causes at most one refresh.
    let unknown: Vec<_> = (0..10)
        .map(|i| {
            let client =
                server.client(&key_a.sign(Some(&format!("unknown-{i}")), &claims(json!({}))));
            async move { client.get_profile().await }
        })
        .collect();
    for result in futures::future::join_all(unknown).await {
        assert_eq!(expect_error(result).0, 401);
    }
    assert!(jwks.hits() <= 2, "refreshes are rate limited, saw {}", jwks.hits());

    // The issuer rotates to a new key; once the refresh window has passed, the new kid works.
    jwks.rotate_to(&[key_b]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let hits_before = jwks.hits();
    let token_b = key_b.sign(Some("key-b"), &claims(json!({"sub": "rs-member"})));
    let profile = server.client(&token_b).get_profile().await.unwrap().into_inner();
    assert_eq!(profile.user_id, "rs-member");
    assert_eq!(jwks.hits(), hits_before + 1, "one refresh for the new kid");

    // A new token under the retired key no longer verifies.
    let retired = key_a.sign(Some("key-a"), &claims(json!({"sub": "rs-member", "jti": "new"})));
    assert_rejected("retired key", &server.client(&retired)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_verified_token_is_not_verified_again() {
    let (key_a, _, _) = keys();
    let jwks = JwksServer::start(&[key_a]).await;
    let server = TestServer::start_with(Options {
        jwks_url: Some(jwks.url.clone()),
        jwks_min_refresh: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let client = server.client(&key_a.sign(Some("key-a"), &claims(json!({}))));
    for _ in 0..5 {
        client.get_profile().await.unwrap();
    }
    assert_eq!(jwks.hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn tokens_never_reach_the_log() {
    let server = TestServer::start().await;
    let token = server.token(json!({"sub": "quiet"}));
    server.client(&token).get_profile().await.unwrap();
    let _ = server.client(&format!("{token}x")).get_profile().await;
    let log = server.log_text();
    assert!(!log.is_empty());
    assert!(!log.contains(&token[..40]), "a token appeared in the log");
    server.stop().await;
}

/// Asserts a 403 `forbidden` on the admin-only scheduled sync.
async fn assert_not_admin(name: &str, client: &Client) {
    let (status, error) = expect_error(client.post_sync_all().await);
    assert_eq!((status, error.error_code.as_str()), (403, "forbidden"), "{name}");
}

#[tokio::test]
async fn admin_is_a_group_and_an_admin_scope_on_a_members_token_grants_nothing() {
    let server = TestServer::start().await;
    // Cognito lets any user of the members' client request any scope that client allows: a
    // member token with the admin scope is a plain member.
    let scoped = server.client(&server.token(json!({"sub": "m-scope", "scope": ADMIN_SCOPE})));
    scoped.get_profile().await.unwrap();
    assert_not_admin("member token with the admin scope", &scoped).await;
    let body = dashboard_client::types::LinkStripeCustomer {
        stripe_customer_id: "cus_selfservice".parse().unwrap(),
    };
    let (status, _) =
        expect_error(scoped.put_member_stripe_customer(&"m-scope".parse().unwrap(), &body).await);
    assert_eq!(status, 403, "a member cannot link itself to a customer");
    // Groups and scopes are not one list: a group named like the scope is not the admin group.
    let misnamed =
        server.client(&server.token(json!({"sub": "m-misnamed", "cognito:groups": [ADMIN_SCOPE]})));
    assert_not_admin("group named like the admin scope", &misnamed).await;
    let other = server.client(&server.token(json!({"sub": "m-other", "cognito:groups": ["vip"]})));
    assert_not_admin("another group", &other).await;

    // The admin group makes a member admin, among other groups.
    let admin = server
        .client(&server.token(json!({"sub": "m-admin", "cognito:groups": ["vip", ADMIN_GROUP]})));
    admin.post_sync_all().await.unwrap();
    // An admin is still a member: its own profile works.
    admin.get_profile().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn the_operator_client_is_admin_by_its_scope_and_is_no_member() {
    let server = TestServer::start().await;
    server.operator().post_sync_all().await.unwrap();

    // The operator client without the admin scope: 403; groups on its token mean nothing.
    let unscoped = server.client(&server.token(operator_claims("dashboard/read")));
    assert_not_admin("operator without the admin scope", &unscoped).await;
    let mut grouped_claims = operator_claims("");
    grouped_claims["cognito:groups"] = json!([ADMIN_GROUP]);
    assert_not_admin("operator with a group", &server.client(&server.token(grouped_claims))).await;

    // A token of the operator client that names a user is not a client-credentials token.
    let user_token = server.token(json!({
        "sub": "someone", "client_id": ADMIN_CLIENT_ID, "scope": ADMIN_SCOPE,
    }));
    let (status, error) = expect_error(server.client(&user_token).post_sync_all().await);
    assert_eq!((status, error.error_code.as_str()), (401, "unauthorized"));

    // The operator is not a member: 403 on every member endpoint, and no profile is made for it.
    let operator = server.operator();
    let (status, error) = expect_error(operator.get_profile().await);
    assert_eq!((status, error.error_code.as_str()), (403, "forbidden"));
    let (status, _) = expect_error(operator.list_orders(None, None, None, None, None).await);
    assert_eq!(status, 403);
    let (status, _) = expect_error(operator.get_sync_status().await);
    assert_eq!(status, 403);
    let (status, error) = expect_error(
        server
            .admin()
            .put_member_stripe_customer(&ADMIN_CLIENT_ID.parse().unwrap(), &{
                dashboard_client::types::LinkStripeCustomer {
                    stripe_customer_id: "cus_operator".parse().unwrap(),
                }
            })
            .await,
    );
    assert_eq!((status, error.error_code.as_str()), (404, "member_not_found"));
    server.stop().await;
}

#[tokio::test]
async fn a_failed_first_jwks_fetch_answers_503_and_recovers_after_a_short_backoff() {
    let (key_a, _, _) = keys();
    let jwks = JwksServer::start(&[key_a]).await;
    jwks.fail_next(1);
    // The production default: 30 s between refreshes for unknown kids.
    let server = TestServer::start_with(Options {
        jwks_url: Some(jwks.url.clone()),
        jwks_min_refresh: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let client = server.client(&key_a.sign(Some("key-a"), &claims(json!({"sub": "cold"}))));
    let started = Instant::now();

    // No key set was ever loaded: the issuer's fault, not the caller's.
    let (status, error) = expect_error(client.get_profile().await);
    assert_eq!((status, error.error_code.as_str()), (503, "service_unavailable"));
    assert_eq!(jwks.hits(), 1);
    // During the backoff: still 503, not 401, and the issuer is not asked again.
    let (status, error) = expect_error(client.get_profile().await);
    assert_eq!((status, error.error_code.as_str()), (503, "service_unavailable"));
    assert_eq!(jwks.hits(), 1);

    // After the backoff (1 s), the valid token is accepted: seconds, not 30.
    let profile = loop {
        let result = client.get_profile().await;
        if let Ok(profile) = result {
            break profile.into_inner();
        }
        let (status, _) = expect_error(result);
        assert_eq!(status, 503, "never a 401 for a valid token");
        assert!(started.elapsed() < Duration::from_secs(5), "no recovery within 5 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(profile.user_id, "cold");
    assert!(started.elapsed() >= Duration::from_millis(900), "the backoff was respected");
    assert_eq!(jwks.hits(), 2, "one failed fetch, one retry");
    server.stop().await;
}

#[tokio::test]
async fn a_withdrawn_key_stops_verifying_even_the_tokens_already_verified() {
    let (key_a, key_b, _) = keys();
    let jwks = JwksServer::start(&[key_a, key_b]).await;
    let server = TestServer::start_with(Options {
        jwks_url: Some(jwks.url.clone()),
        jwks_min_refresh: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let under_a = server.client(&key_a.sign(Some("key-a"), &claims(json!({"sub": "wa"}))));
    let under_b = server.client(&key_b.sign(Some("key-b"), &claims(json!({"sub": "wb"}))));
    under_a.get_profile().await.unwrap();
    under_b.get_profile().await.unwrap();
    assert_eq!(jwks.hits(), 1);

    // The issuer withdraws key-a; an unknown kid makes the server refresh its set.
    jwks.rotate_to(&[key_b]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unknown = server.client(&key_b.sign(Some("key-new"), &claims(json!({}))));
    assert_rejected("unknown kid", &unknown).await;
    assert_eq!(jwks.hits(), 2, "the unknown kid refreshed the key set");

    // The token verified under key-a before, and cached, is refused now; key-b still works.
    assert_rejected("cached token under a withdrawn key", &under_a).await;
    under_b.get_profile().await.unwrap();
    server.stop().await;
}
