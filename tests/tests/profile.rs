//! Profile endpoints through the generated client.

use dashboard_client::types::{ProfileUpdate, Theme};
use dashboard_client::{Client, ClientInfo};
use dashboard_tests::{expect_error, relaxed, Limit, TestServer};
use serde_json::{json, Value};

const WALLET: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// Every editable field set, as JSON (invalid variants are made from it).
fn full_update_json() -> Value {
    json!({
        "email": "ada@example.com",
        "displayName": "Ada Lovelace",
        "shippingAddress": {
            "line1": "12 Analytical Row",
            "line2": "Flat 3",
            "city": "London",
            "region": "Greater London",
            "postalCode": "SW1A 1AA",
            "country": "GB"
        },
        "preferredWallet": WALLET,
        "avatarUrl": "https://cdn.example.com/ada.png",
        "dashboardSettings": {
            "theme": "dark",
            "emailNotifications": false,
            "ordersPageSize": 50,
            "locale": "en-GB"
        }
    })
}

/// The same update as a generated-client value: the client checks the documented constraints
/// when the value is built.
fn full_update() -> ProfileUpdate {
    serde_json::from_value(full_update_json()).unwrap()
}

/// PUT a JSON body the typed client would refuse to build, through the client's own HTTP
/// stack (same base URL and auth headers).
async fn put_json(client: &Client, etag: &str, body: &Value) -> (u16, Value) {
    let response = client
        .client()
        .put(format!("{}/dashboard/profile", client.baseurl()))
        .header("if-match", etag)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn first_read_creates_the_profile_from_token_claims() {
    let server = TestServer::start().await;
    let token = server.token(json!({"sub": "new-member", "email": "new@example.com"}));
    let client = server.client(&token);
    let response = client.get_profile().await.unwrap();
    let etag = response.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let profile = response.into_inner();
    assert_eq!(profile.user_id, "new-member");
    assert_eq!(profile.email.as_deref(), Some("new@example.com"));
    assert_eq!(profile.total_orders, 0);
    assert_eq!(profile.display_name, None);
    assert_eq!(profile.stripe_customer_id, None);
    // Reading again returns the same stored profile, not a new one.
    let again = client.get_profile().await.unwrap();
    assert_eq!(again.headers().get("etag").unwrap().to_str().unwrap(), etag);
    assert_eq!(again.into_inner().created_at, profile.created_at);
    server.stop().await;
}

#[tokio::test]
async fn every_field_round_trips() {
    let server = TestServer::start().await;
    let client = server.member("round-trip");
    let first = client.get_profile().await.unwrap();
    let etag = first.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let update = full_update();
    let put = client.put_profile(&etag, &update).await.unwrap();
    let new_etag = put.headers().get("etag").unwrap().to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let read = client.get_profile().await.unwrap();
    assert_eq!(read.headers().get("etag").unwrap().to_str().unwrap(), new_etag);
    let profile = read.into_inner();
    assert_eq!(profile, put.into_inner());
    // Every field reads back exactly as sent.
    let sent = full_update_json();
    let read = serde_json::to_value(&profile).unwrap();
    for field in sent.as_object().unwrap().keys() {
        assert_eq!(read[field], sent[field], "{field}");
    }
    assert!(profile.updated_at > profile.created_at);

    // PUT replaces: fields left out are cleared, settings fall back to defaults.
    let cleared = client.put_profile(&new_etag, &ProfileUpdate::default()).await.unwrap();
    let profile = cleared.into_inner();
    assert_eq!(profile.email, None);
    assert_eq!(profile.shipping_address, None);
    assert_eq!(profile.dashboard_settings.orders_page_size.get(), 20);
    assert_eq!(profile.dashboard_settings.theme, Theme::System);
    server.stop().await;
}

#[tokio::test]
async fn each_audit_record_masks_email_and_wallet() {
    let server = TestServer::start().await;
    let client = server.member("audited");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    client.put_profile(&etag, &full_update()).await.unwrap();
    let records = server.audit_records();
    assert_eq!(records.len(), 1, "one audit record per successful PUT: {records:?}");
    let record = &records[0];
    assert_eq!(record["user_id"], "audited");
    assert_eq!(record["action"], "profile.update");
    assert!(record["at"].as_str().unwrap().ends_with("Z"));
    let changes = &record["changes"];
    assert_eq!(changes["email"]["new"], "a***@example.com");
    assert_eq!(changes["preferredWallet"]["new"], "0x5aAe…eAed");
    assert_eq!(changes["displayName"]["new"], "Ada Lovelace");
    let fields = record["changed_fields"].as_str().unwrap();
    for field in ["email", "displayName", "shippingAddress", "preferredWallet", "avatarUrl"] {
        assert!(fields.contains(field), "{field} missing from {fields}");
    }
    let text = server.log_text();
    assert!(!text.contains("ada@example.com"), "the full email must never be logged");
    assert!(!text.contains(WALLET), "the full wallet must never be logged");
    // A failed PUT leaves no audit record.
    let _ = client.put_profile("\"1\"", &full_update()).await;
    assert_eq!(server.audit_records().len(), 1);
    server.stop().await;
}

/// (description, JSON pointer to change, new value, expected error_code, expected field)
fn invalid_updates() -> Vec<(&'static str, &'static str, Value, &'static str, &'static str)> {
    let long = |n: usize| Value::String("x".repeat(n));
    let wallet_no_prefix = format!("{}00", &WALLET[2..]);
    vec![
        ("email without @", "/email", json!("not-an-email"), "invalid_email", "email"),
        ("email without domain", "/email", json!("a@"), "invalid_email", "email"),
        (
            "email too long",
            "/email",
            json!(format!("{}@example.com", "x".repeat(250))),
            "invalid_email",
            "email",
        ),
        ("empty display name", "/displayName", json!(""), "invalid_display_name", "displayName"),
        ("blank display name", "/displayName", json!("   "), "invalid_display_name", "displayName"),
        ("display name too long", "/displayName", long(65), "invalid_display_name", "displayName"),
        (
            "control character in name",
            "/displayName",
            json!("bad\u{7}name"),
            "invalid_display_name",
            "displayName",
        ),
        (
            "empty line1",
            "/shippingAddress/line1",
            json!(""),
            "invalid_address_line",
            "shippingAddress.line1",
        ),
        (
            "line2 too long",
            "/shippingAddress/line2",
            long(101),
            "invalid_address_line",
            "shippingAddress.line2",
        ),
        ("blank city", "/shippingAddress/city", json!(" "), "invalid_city", "shippingAddress.city"),
        (
            "region too long",
            "/shippingAddress/region",
            long(65),
            "invalid_region",
            "shippingAddress.region",
        ),
        (
            "empty postal code",
            "/shippingAddress/postalCode",
            json!(""),
            "invalid_postal_code",
            "shippingAddress.postalCode",
        ),
        (
            "postal code symbol",
            "/shippingAddress/postalCode",
            json!("12#45"),
            "invalid_postal_code",
            "shippingAddress.postalCode",
        ),
        (
            "postal code too long",
            "/shippingAddress/postalCode",
            json!("1".repeat(17)),
            "invalid_postal_code",
            "shippingAddress.postalCode",
        ),
        (
            "lower-case country",
            "/shippingAddress/country",
            json!("gb"),
            "invalid_country",
            "shippingAddress.country",
        ),
        (
            "unassigned country",
            "/shippingAddress/country",
            json!("XX"),
            "invalid_country",
            "shippingAddress.country",
        ),
        (
            "alpha-3 country",
            "/shippingAddress/country",
            json!("GBR"),
            "invalid_country",
            "shippingAddress.country",
        ),
        (
            "short wallet",
            "/preferredWallet",
            json!("0x1234"),
            "invalid_wallet_address",
            "preferredWallet",
        ),
        (
            "wallet without 0x",
            "/preferredWallet",
            json!(wallet_no_prefix),
            "invalid_wallet_address",
            "preferredWallet",
        ),
        (
            "wallet non-hex",
            "/preferredWallet",
            json!(format!("0x{}", "g".repeat(40))),
            "invalid_wallet_address",
            "preferredWallet",
        ),
        (
            "wallet bad checksum",
            "/preferredWallet",
            json!("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            "wallet_checksum_mismatch",
            "preferredWallet",
        ),
        (
            "http avatar",
            "/avatarUrl",
            json!("http://cdn.example.com/a.png"),
            "invalid_avatar_url",
            "avatarUrl",
        ),
        ("avatar not a URL", "/avatarUrl", json!("not a url"), "invalid_avatar_url", "avatarUrl"),
        (
            "avatar with credentials",
            "/avatarUrl",
            json!("https://u:p@cdn.example.com/a.png"),
            "invalid_avatar_url",
            "avatarUrl",
        ),
        (
            "avatar too long",
            "/avatarUrl",
            json!(format!("https://cdn.example.com/{}", "x".repeat(2100))),
            "invalid_avatar_url",
            "avatarUrl",
        ),
        (
            "page size 0",
            "/dashboardSettings/ordersPageSize",
            json!(0),
            "invalid_page_size",
            "dashboardSettings.ordersPageSize",
        ),
        (
            "page size 101",
            "/dashboardSettings/ordersPageSize",
            json!(101),
            "invalid_page_size",
            "dashboardSettings.ordersPageSize",
        ),
        (
            "underscore locale",
            "/dashboardSettings/locale",
            json!("en_US"),
            "invalid_locale",
            "dashboardSettings.locale",
        ),
    ]
}

#[tokio::test]
async fn each_validation_rule_has_its_code_and_field() {
    let server = TestServer::start().await;
    let client = server.member("validator");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let cases = invalid_updates();
    assert!(cases.len() >= 20);
    for (name, pointer, value, code, field) in cases {
        let mut body = full_update_json();
        *body.pointer_mut(pointer).unwrap() = value;
        let (status, error) = put_json(&client, &etag, &body).await;
        assert_eq!(status, 400, "{name}: {error}");
        assert_eq!(error["error_code"], code, "{name}: {error}");
        assert_eq!(error["field"], field, "{name}");
        assert!(
            error["message"].as_str().unwrap().starts_with(field),
            "{name}: message names the field"
        );
    }
    // Nothing was written: the ETag is unchanged.
    let after = client.get_profile().await.unwrap();
    assert_eq!(after.headers()["etag"].to_str().unwrap(), etag);
    server.stop().await;
}

/// Bodies the generated client cannot produce: sent raw through its own HTTP client.
#[tokio::test]
async fn malformed_bodies_are_rejected_with_codes() {
    let server = TestServer::start().await;
    let client = server.member("raw-bodies");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let cases = [
        (
            json!({"displayName": "x", "userId": "someone-else"}),
            400,
            "unknown_field",
            Some("userId"),
        ),
        (json!({"stripeCustomerId": "cus_123"}), 400, "unknown_field", Some("stripeCustomerId")),
        (json!({"nickname": "x"}), 400, "unknown_field", Some("nickname")),
        (
            json!({"shippingAddress": {"line1": "a", "city": "b", "postalCode": "1", "country": "US", "floor": 3}}),
            400,
            "unknown_field",
            Some("floor"),
        ),
        (
            json!({"shippingAddress": {"line1": "a", "postalCode": "1", "country": "US"}}),
            400,
            "missing_field",
            Some("city"),
        ),
        (json!({"displayName": 42}), 400, "invalid_body", None),
        (json!({"dashboardSettings": {"theme": "neon"}}), 400, "invalid_body", None),
        (json!(["not", "an", "object"]), 400, "invalid_body", None),
    ];
    for (body, status, code, field) in cases {
        let (got, error) = put_json(&client, &etag, &body).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(error["error_code"], code, "{body}: {error}");
        assert_eq!(error["field"].as_str(), field, "{body}");
    }
    let after = client.get_profile().await.unwrap().into_inner();
    assert_eq!(after.user_id, "raw-bodies");
    assert_eq!(after.stripe_customer_id, None);
    server.stop().await;
}

#[test]
fn the_generated_client_refuses_values_outside_the_contract() {
    use dashboard_client::types::{ProfileUpdateDisplayName, ShippingAddressCountry};
    assert!(ProfileUpdateDisplayName::try_from("x".repeat(65)).is_err());
    assert!(ShippingAddressCountry::try_from("gb").is_err());
    assert!(ShippingAddressCountry::try_from("GB").is_ok());
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = TestServer::start().await;
    let client = server.member("big");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let mut body = full_update_json();
    body["displayName"] = json!("x".repeat(20_000));
    let (status, error) = put_json(&client, &etag, &body).await;
    assert_eq!(status, 413);
    assert_eq!(error["error_code"], "payload_too_large");
    server.stop().await;
}

#[tokio::test]
async fn if_match_missing_stale_and_fresh() {
    let server = TestServer::start().await;
    let client = server.member("conditional");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let update = full_update();

    let (status, error) = expect_error(client.put_profile("", &update).await);
    assert_eq!((status, error.error_code.as_str()), (428, "precondition_required"));
    let (status, error) = expect_error(client.put_profile("*", &update).await);
    assert_eq!((status, error.error_code.as_str()), (428, "precondition_required"));
    for stale in ["\"999\"", "W/\"1\"", "garbage"] {
        let (status, error) = expect_error(client.put_profile(stale, &update).await);
        assert_eq!((status, error.error_code.as_str()), (412, "precondition_failed"), "{stale}");
    }

    let fresh = client.put_profile(&etag, &update).await.unwrap();
    let next = fresh.headers()["etag"].to_str().unwrap().to_string();
    // The old ETag is now stale.
    let (status, _) = expect_error(client.put_profile(&etag, &update).await);
    assert_eq!(status, 412);
    client.put_profile(&next, &update).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn concurrent_writers_never_lose_an_update() {
    let server = TestServer::start().await;
    let client = server.member("racer");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let attempts = (0..20).map(|i| {
        let client = client.clone();
        let etag = etag.clone();
        async move {
            let name = format!("writer {i}").try_into().unwrap();
            let update = ProfileUpdate { display_name: Some(name), ..Default::default() };
            (i, client.put_profile(&etag, &update).await)
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).map(|(i, _)| *i).collect();
    if relaxed(Limit::ConcurrentConditionalWrites) {
        assert!(!winners.is_empty(), "at least one writer wins");
    } else {
        assert_eq!(winners.len(), 1, "exactly one writer wins");
    }
    for (_, result) in results.into_iter().filter(|(_, r)| r.is_err()) {
        let (status, error) = expect_error(result);
        assert_eq!((status, error.error_code.as_str()), (412, "precondition_failed"));
    }
    let profile = client.get_profile().await.unwrap().into_inner();
    let names: Vec<String> = winners.iter().map(|i| format!("writer {i}")).collect();
    assert!(names.contains(profile.display_name.as_ref().unwrap()), "a winner's write is kept");
    assert_eq!(server.audit_records().len(), winners.len(), "one audit record per write");
    server.stop().await;
}

#[tokio::test]
async fn members_only_see_their_own_profile() {
    let server = TestServer::start().await;
    let alice = server.member("alice");
    let bob = server.member("bob");
    let etag = alice.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    alice.put_profile(&etag, &full_update()).await.unwrap();
    let bobs = bob.get_profile().await.unwrap().into_inner();
    assert_eq!(bobs.user_id, "bob");
    assert_eq!(bobs.display_name, None);
    server.stop().await;
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let server = TestServer::start().await;
    let anonymous = server.client_with_headers(Default::default());
    let health = anonymous.get_healthz().await.unwrap().into_inner();
    assert_eq!(health.status, "ok");
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_logged_in_embedded_metric_format() {
    let server = TestServer::start().await;
    let client = server.member("measured");
    client.get_profile().await.unwrap();
    let _ = server.client_with_headers(Default::default()).get_profile().await;
    let records: Vec<Value> = server
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|r| r["_aws"].is_object() && r["Operation"] == "get_profile")
        .collect();
    assert_eq!(records.len(), 2, "one metrics record per request");
    let metrics = &records[0]["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(metrics["Namespace"], "BabesClub/Dashboard");
    assert_eq!(metrics["Dimensions"], json!([["Operation"]]));
    assert_eq!(records[0]["Requests"], 1);
    assert!(records[0]["Latency"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        (records[0]["AuthFailures"].as_u64(), records[1]["AuthFailures"].as_u64()),
        (Some(0), Some(1))
    );
    server.stop().await;
}

#[tokio::test]
async fn every_record_of_a_request_carries_its_trace_id() {
    let server = TestServer::start().await;
    let token = server.token(json!({ "sub": "traced" }));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    headers.insert("x-amzn-trace-id", trace.parse().unwrap());
    let client = server.client_with_headers(headers);
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let update =
        ProfileUpdate { display_name: Some("Traced".try_into().unwrap()), ..Default::default() };
    client.put_profile(&etag, &update).await.unwrap();
    let records: Vec<Value> = server
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|r| r["req_id"].is_string())
        .collect();
    assert!(records.len() >= 4, "request records: {records:?}");
    for record in &records {
        assert_eq!(record["hdr_x_amzn_trace_id"], trace, "{record}");
    }
    let audit = server.audit_records();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["hdr_x_amzn_trace_id"], trace);
    assert!(audit[0]["req_id"].is_string());
    server.stop().await;
}
