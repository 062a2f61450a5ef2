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

/// An update that clears every field: each one said, as `null`.
fn cleared() -> ProfileUpdate {
    ProfileUpdate {
        email: None,
        display_name: None,
        shipping_address: None,
        preferred_wallet: None,
        avatar_url: None,
        dashboard_settings: None,
    }
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

    // PUT replaces: fields sent as null are cleared, null settings are the defaults.
    let cleared = client.put_profile(&new_etag, &cleared()).await.unwrap();
    let profile = cleared.into_inner();
    assert_eq!(profile.email, None);
    assert_eq!(profile.shipping_address, None);
    assert_eq!(profile.dashboard_settings.orders_page_size.get(), 20);
    assert_eq!(profile.dashboard_settings.theme, Theme::System);
    server.stop().await;
}

#[tokio::test]
async fn each_audit_record_masks_personal_values() {
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
    assert_eq!(changes["email"], json!({"old": null, "new": "a***@e***.com"}));
    assert_eq!(changes["preferredWallet"]["new"], "0x5a…ed");
    assert_eq!(changes["displayName"]["new"], "A***");
    assert_eq!(changes["avatarUrl"]["new"], "https://***");
    assert_eq!(changes["shippingAddress.city"]["new"], "L***");
    let fields = record["changed_fields"].as_str().unwrap();
    for field in ["email", "displayName", "shippingAddress.line1", "preferredWallet", "avatarUrl"] {
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
            json!({"shippingAddress": {"line1": "a", "line2": null, "region": null,
                "postalCode": "1", "country": "US"}}),
            400,
            "missing_field",
            Some("shippingAddress.city"),
        ),
        (json!({"displayName": 42}), 400, "invalid_body", None),
        (json!({"dashboardSettings": {"theme": "neon"}}), 400, "invalid_body", None),
        (json!(["not", "an", "object"]), 400, "invalid_body", None),
        (json!({"shippingAddress": "7 Secret Lane, Leeds"}), 400, "invalid_body", None),
    ];
    for (body, status, code, field) in cases {
        let (got, error) = put_json(&client, &etag, &body).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(error["error_code"], code, "{body}: {error}");
        assert_eq!(error["field"].as_str(), field, "{body}");
    }
    // serde quotes a string of the wrong type; the message is logged, so the value is not in it.
    assert!(!server.log_text().contains("Secret Lane"), "a value sent is in the log");
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
            let update = ProfileUpdate { display_name: Some(name), ..cleared() };
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
    let update = ProfileUpdate { display_name: Some("Traced".try_into().unwrap()), ..cleared() };
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

/// A raw request on `/dashboard/profile` through the client's own HTTP stack: bodies and
/// methods the typed client cannot express (a non-object body, an explicit `null` in a patch).
async fn send_json(
    client: &Client,
    method: reqwest::Method,
    etag: Option<&str>,
    content_type: &str,
    body: &Value,
) -> (u16, Value, Option<String>) {
    let mut request = client
        .client()
        .request(method, format!("{}/dashboard/profile", client.baseurl()))
        .header("content-type", content_type)
        .body(serde_json::to_vec(body).unwrap());
    if let Some(etag) = etag {
        request = request.header("if-match", etag);
    }
    let response = request.send().await.unwrap();
    let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
    (response.status().as_u16(), response.json().await.unwrap(), etag)
}

/// The profile as the server sent it (JSON) and its ETag.
async fn read_profile(client: &Client) -> (Value, String) {
    let url = format!("{}/dashboard/profile", client.baseurl());
    let response = client.client().get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    (response.json().await.unwrap(), etag)
}

/// A member whose every editable field is set (from `full_update_json`); returns the ETag.
async fn filled_member(server: &TestServer, user_id: &str) -> (Client, String) {
    let client = server.member(user_id);
    let (_, etag) = read_profile(&client).await;
    let (status, body, etag) = send_json(
        &client,
        reqwest::Method::PUT,
        Some(&etag),
        "application/json",
        &full_update_json(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (client, etag.unwrap())
}

#[tokio::test]
async fn put_bodies_that_are_not_objects_are_invalid_body_and_change_nothing() {
    let server = TestServer::start().await;
    let (client, etag) = filled_member(&server, "not-objects").await;
    let (before, _) = read_profile(&client).await;
    for body in [json!([]), json!(["x@y.co"]), json!("x"), json!(null), json!(7)] {
        let (status, error, _) =
            send_json(&client, reqwest::Method::PUT, Some(&etag), "application/json", &body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error_code"], "invalid_body", "{body}: {error}");
    }
    assert_eq!(read_profile(&client).await, (before, etag), "the profile is unchanged");
    server.stop().await;
}

/// A PUT says every editable field, nested ones included: leaving one out is 400
/// `missing_field` naming its path, and nothing is written.
#[tokio::test]
async fn put_without_every_field_is_missing_field_naming_it() {
    let server = TestServer::start().await;
    let (client, etag) = filled_member(&server, "partial-put").await;
    let (before, _) = read_profile(&client).await;
    let full = full_update_json();
    let mut cases = vec![(json!({}), "email".to_string())];
    for field in full.as_object().unwrap().keys() {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(field);
        cases.push((body, field.clone()));
    }
    for (object, parts) in [
        ("shippingAddress", &full["shippingAddress"]),
        ("dashboardSettings", &full["dashboardSettings"]),
    ] {
        for part in parts.as_object().unwrap().keys() {
            let mut body = full.clone();
            body[object].as_object_mut().unwrap().remove(part);
            cases.push((body, format!("{object}.{part}")));
        }
    }
    assert_eq!(cases.len(), 1 + 6 + 6 + 4);
    for (body, field) in cases {
        let (status, error, _) =
            send_json(&client, reqwest::Method::PUT, Some(&etag), "application/json", &body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error_code"], "missing_field", "{body}: {error}");
        assert_eq!(error["field"], field.as_str(), "{body}: {error}");
        let last = field.rsplit('.').next().unwrap();
        assert!(error["message"].as_str().unwrap().contains(last), "{error}");
    }
    assert_eq!(read_profile(&client).await, (before, etag), "the profile is unchanged");
    server.stop().await;
}

#[tokio::test]
async fn explicit_nulls_clear_fields() {
    let server = TestServer::start().await;
    let (client, etag) = filled_member(&server, "nulls").await;
    let mut body = full_update_json();
    for field in ["email", "displayName", "preferredWallet", "avatarUrl"] {
        body[field] = Value::Null;
    }
    body["shippingAddress"]["line2"] = Value::Null;
    body["shippingAddress"]["region"] = Value::Null;
    let (status, profile, etag) =
        send_json(&client, reqwest::Method::PUT, Some(&etag), "application/json", &body).await;
    assert_eq!(status, 200, "{profile}");
    for field in ["email", "displayName", "preferredWallet", "avatarUrl"] {
        assert_eq!(profile[field], Value::Null, "{field}");
    }
    assert_eq!(profile["shippingAddress"]["line2"], Value::Null);
    assert_eq!(profile["shippingAddress"]["city"], "London", "what is sent is kept");
    body["shippingAddress"] = Value::Null;
    body["dashboardSettings"] = Value::Null;
    let (status, profile, _) =
        send_json(&client, reqwest::Method::PUT, etag.as_deref(), "application/json", &body).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["shippingAddress"], Value::Null);
    assert_eq!(profile["dashboardSettings"]["theme"], "system", "null settings are the defaults");
    assert_eq!(profile["dashboardSettings"]["ordersPageSize"], 20);
    server.stop().await;
}

/// `PATCH /dashboard/profile` is a JSON Merge Patch (RFC 7396): what it names changes, `null`
/// clears, nested objects merge, the rest stays; `If-Match` is required as for PUT.
#[tokio::test]
async fn patch_changes_only_what_it_names() {
    const MERGE: &str = "application/merge-patch+json";
    let server = TestServer::start().await;
    let (client, etag) = filled_member(&server, "patcher").await;
    let (before, _) = read_profile(&client).await;
    let patch = reqwest::Method::PATCH;

    // `{}` changes nothing but still needs a current If-Match.
    let (status, error, _) = send_json(&client, patch.clone(), None, MERGE, &json!({})).await;
    assert_eq!((status, error["error_code"].as_str()), (428, Some("precondition_required")));
    let (status, error, _) =
        send_json(&client, patch.clone(), Some("\"999\""), MERGE, &json!({})).await;
    assert_eq!((status, error["error_code"].as_str()), (412, Some("precondition_failed")));
    let (status, same, same_etag) =
        send_json(&client, patch.clone(), Some(&etag), MERGE, &json!({})).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!((same, same_etag.unwrap()), (before.clone(), etag.clone()), "nothing changed");

    // Not an object, an unknown field, a bad value: 400 and nothing written.
    for (body, code) in [
        (json!([]), "invalid_body"),
        (json!(null), "invalid_body"),
        (json!({"userId": "someone-else"}), "unknown_field"),
        (json!({"email": "not-an-email"}), "invalid_email"),
        (json!({"shippingAddress": {"country": "gb"}}), "invalid_country"),
        (json!({"dashboardSettings": {"theme": null}}), "invalid_body"),
    ] {
        let (status, error, _) = send_json(&client, patch.clone(), Some(&etag), MERGE, &body).await;
        assert_eq!((status, error["error_code"].as_str()), (400, Some(code)), "{body}: {error}");
    }
    assert_eq!(read_profile(&client).await.1, etag);

    // Named fields change, null clears, nested objects merge member by member.
    let body = json!({
        "displayName": "Countess",
        "avatarUrl": null,
        "shippingAddress": {"city": "Paris", "region": null, "country": "FR"},
        "dashboardSettings": {"theme": "light"}
    });
    let (status, after, next) =
        send_json(&client, patch.clone(), Some(&etag), "application/json", &body).await;
    assert_eq!(status, 200, "{after}");
    let mut expected = before.clone();
    expected["displayName"] = json!("Countess");
    expected["avatarUrl"] = Value::Null;
    expected["shippingAddress"]["city"] = json!("Paris");
    expected["shippingAddress"]["region"] = Value::Null;
    expected["shippingAddress"]["country"] = json!("FR");
    expected["dashboardSettings"]["theme"] = json!("light");
    expected["updatedAt"] = after["updatedAt"].clone();
    assert_eq!(after, expected);
    let next = next.unwrap();
    assert_ne!(next, etag);
    // The old ETag is stale now.
    let (status, _, _) = send_json(&client, patch.clone(), Some(&etag), MERGE, &json!({})).await;
    assert_eq!(status, 412);
    // Clearing the address, then patching part of one, is a missing part of a new address.
    let (status, after, next) =
        send_json(&client, patch.clone(), Some(&next), MERGE, &json!({"shippingAddress": null}))
            .await;
    assert_eq!((status, &after["shippingAddress"]), (200, &Value::Null));
    let next = next.unwrap();
    let (status, error, _) = send_json(
        &client,
        patch.clone(),
        Some(&next),
        MERGE,
        &json!({"shippingAddress": {"city": "Rome"}}),
    )
    .await;
    assert_eq!((status, error["error_code"].as_str()), (400, Some("missing_field")), "{error}");
    assert_eq!(error["field"], "shippingAddress.line1");
    // Every successful write left one audit record (the no-op PATCH wrote nothing).
    assert_eq!(server.audit_records().len(), 3);
    server.stop().await;
}

/// Two updates that change every field: the audit records name each changed field and carry
/// no personal value, old or new, in clear.
#[tokio::test]
async fn audit_records_carry_no_personal_value_in_clear() {
    let server = TestServer::start().await;
    let client = server.member("private");
    let (_, etag) = read_profile(&client).await;
    // Settings stay readable in the record, so no locale may spell a country sent here.
    let mut first = full_update_json();
    first["dashboardSettings"]["locale"] = json!("de-DE");
    let (status, body, etag) =
        send_json(&client, reqwest::Method::PUT, Some(&etag), "application/json", &first).await;
    assert_eq!(status, 200, "{body}");
    let etag = etag.unwrap();
    let second = json!({
        "email": "grace.hopper@navy.example.org",
        "displayName": "Grace Hopper",
        "shippingAddress": {
            "line1": "7 Compiler Lane",
            "line2": "Building Mark II",
            "city": "Arlington",
            "region": "Virginia",
            "postalCode": "22201-4321",
            "country": "NZ"
        },
        "preferredWallet": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "avatarUrl": "https://grace.example.net/portrait.jpg",
        "dashboardSettings": {
            "theme": "light",
            "emailNotifications": true,
            "ordersPageSize": 10,
            "locale": "fr-CA"
        }
    });
    let (status, body, _) =
        send_json(&client, reqwest::Method::PUT, Some(&etag), "application/json", &second).await;
    assert_eq!(status, 200, "{body}");

    let personal = |update: &Value| -> Vec<String> {
        let mut values = Vec::new();
        for field in ["email", "displayName", "preferredWallet", "avatarUrl"] {
            values.push(update[field].as_str().unwrap().to_string());
        }
        for part in update["shippingAddress"].as_object().unwrap().values() {
            values.push(part.as_str().unwrap().to_string());
        }
        values
    };
    let text = server.log_text();
    for value in personal(&first).into_iter().chain(personal(&second)) {
        assert!(!text.contains(&value), "{value:?} is in the log in clear");
    }
    // Nor the parts that would identify one: the wallet's hex body, the email's local part.
    assert!(!text.to_lowercase().contains("grace.hopper"));
    assert!(!text.contains(&WALLET[2..12]));

    let records = server.audit_records();
    assert_eq!(records.len(), 2, "{records:?}");
    let record = &records[1];
    let changed: Vec<&str> = record["changed_fields"].as_str().unwrap().split(',').collect();
    for field in [
        "email",
        "displayName",
        "shippingAddress.line1",
        "shippingAddress.line2",
        "shippingAddress.city",
        "shippingAddress.region",
        "shippingAddress.postalCode",
        "shippingAddress.country",
        "preferredWallet",
        "avatarUrl",
        "dashboardSettings.theme",
        "dashboardSettings.emailNotifications",
        "dashboardSettings.ordersPageSize",
        "dashboardSettings.locale",
    ] {
        assert!(changed.contains(&field), "{field} missing from {changed:?}");
        let change = &record["changes"][field];
        assert!(change.get("old").is_some() && change.get("new").is_some(), "{field}: {record}");
        if !field.starts_with("dashboardSettings") {
            // Personal values are masks (strings), whatever their type.
            assert!(change["old"].is_string() && change["new"].is_string(), "{field}: {record}");
        }
    }
    // Settings are not personal data: they stay readable.
    assert_eq!(record["changes"]["dashboardSettings.theme"]["new"], "light");
    assert_eq!(record["changes"]["email"]["new"], "g***@n***.org");
    server.stop().await;
}

/// An admin's audit record names whom the action was about: the member and, for a link, the
/// Stripe customer.
#[tokio::test]
async fn admin_audit_records_name_their_target() {
    use dashboard_client::types::{LinkStripeCustomer, SyncRequest};
    let server = TestServer::start().await;
    server.member("target-member").get_profile().await.unwrap();
    let customer = server.stripe.create_customer("target@example.com");
    let admin = server.admin();
    let body = LinkStripeCustomer { stripe_customer_id: customer.parse().unwrap() };
    admin.put_member_stripe_customer(&"target-member".parse().unwrap(), &body).await.unwrap();
    admin
        .post_sync_member(&SyncRequest { user_id: "target-member".parse().unwrap() })
        .await
        .unwrap();
    let records = server.audit_records();
    let link = records
        .iter()
        .find(|r| r["action"] == "put_member_stripe_customer")
        .unwrap_or_else(|| panic!("no link record in {records:?}"));
    assert_eq!(link["target_user_id"], "target-member", "{link}");
    assert_eq!(link["stripe_customer_id"], customer.as_str(), "{link}");
    assert_eq!(link["user_id"], "admin-1", "the actor");
    assert_eq!(link["outcome"], "ok", "{link}");
    let sync = records.iter().find(|r| r["action"] == "post_sync_member").unwrap();
    assert_eq!(sync["target_user_id"], "target-member", "{sync}");
    server.stop().await;
}

/// The generated client's `patch_profile`: members it sets change, members it leaves out stay.
#[tokio::test]
async fn patch_through_the_generated_client_keeps_what_it_leaves_out() {
    use dashboard_client::types::{DashboardSettingsPatch, ProfilePatch, Theme};
    let server = TestServer::start().await;
    let (client, etag) = filled_member(&server, "typed-patcher").await;
    let patch = ProfilePatch {
        display_name: Some("Countess of Lovelace".try_into().unwrap()),
        dashboard_settings: Some(DashboardSettingsPatch {
            theme: Some(Theme::Light),
            ..Default::default()
        }),
        ..Default::default()
    };
    let response = client.patch_profile(&etag, &patch).await.unwrap();
    assert_ne!(response.headers()["etag"].to_str().unwrap(), etag);
    let profile = response.into_inner();
    assert_eq!(profile.display_name.as_deref(), Some("Countess of Lovelace"));
    assert_eq!(profile.dashboard_settings.theme, Theme::Light);
    assert_eq!(profile.dashboard_settings.locale.as_str(), "en-GB", "left out: kept");
    assert_eq!(profile.email.as_deref(), Some("ada@example.com"), "left out: kept");
    assert_eq!(profile.shipping_address.unwrap().city.as_str(), "London");
    let (status, error) = expect_error(client.patch_profile("", &ProfilePatch::default()).await);
    assert_eq!((status, error.error_code.as_str()), (428, "precondition_required"));
    server.stop().await;
}
