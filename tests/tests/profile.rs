//! Profile endpoints through the generated client.

use dashboard_client::types::{DashboardSettings, ProfileUpdate, ShippingAddress, Theme};
use dashboard_client::ClientInfo;
use dashboard_tests::{expect_error, TestServer};
use serde_json::json;

const WALLET: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

fn full_update() -> ProfileUpdate {
    ProfileUpdate {
        email: Some("ada@example.com".into()),
        display_name: Some("Ada Lovelace".into()),
        shipping_address: Some(ShippingAddress {
            line1: "12 Analytical Row".into(),
            line2: Some("Flat 3".into()),
            city: "London".into(),
            region: Some("Greater London".into()),
            postal_code: "SW1A 1AA".into(),
            country: "GB".into(),
        }),
        preferred_wallet: Some(WALLET.into()),
        avatar_url: Some("https://cdn.example.com/ada.png".into()),
        dashboard_settings: Some(DashboardSettings {
            theme: Theme::Dark,
            email_notifications: false,
            orders_page_size: 50,
            locale: "en-GB".into(),
        }),
    }
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
    let put = client.put_profile(Some(&etag), &update).await.unwrap();
    let new_etag = put.headers().get("etag").unwrap().to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let read = client.get_profile().await.unwrap();
    assert_eq!(read.headers().get("etag").unwrap().to_str().unwrap(), new_etag);
    let profile = read.into_inner();
    assert_eq!(profile, put.into_inner());
    assert_eq!(profile.email, update.email);
    assert_eq!(profile.display_name, update.display_name);
    assert_eq!(profile.shipping_address, update.shipping_address);
    assert_eq!(profile.preferred_wallet, update.preferred_wallet);
    assert_eq!(profile.avatar_url, update.avatar_url);
    assert_eq!(Some(profile.dashboard_settings.clone()), update.dashboard_settings);
    assert!(profile.updated_at > profile.created_at);

    // PUT replaces: fields left out are cleared, settings fall back to defaults.
    let cleared = client.put_profile(Some(&new_etag), &ProfileUpdate::default()).await.unwrap();
    let profile = cleared.into_inner();
    assert_eq!(profile.email, None);
    assert_eq!(profile.shipping_address, None);
    assert_eq!(profile.dashboard_settings.orders_page_size, 20);
    assert_eq!(profile.dashboard_settings.theme, Theme::System);
    server.stop().await;
}

#[tokio::test]
async fn each_audit_record_masks_email_and_wallet() {
    let server = TestServer::start().await;
    let client = server.member("audited");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    client.put_profile(Some(&etag), &full_update()).await.unwrap();
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
    let _ = client.put_profile(Some("\"1\""), &full_update()).await;
    assert_eq!(server.audit_records().len(), 1);
    server.stop().await;
}

/// (description, update, expected error_code, expected field)
fn invalid_updates() -> Vec<(&'static str, ProfileUpdate, &'static str, &'static str)> {
    let base = full_update();
    let with = |f: &dyn Fn(&mut ProfileUpdate)| {
        let mut update = base.clone();
        f(&mut update);
        update
    };
    let address = |f: &dyn Fn(&mut ShippingAddress)| {
        with(&|u| f(u.shipping_address.as_mut().unwrap()))
    };
    let settings = |f: &dyn Fn(&mut DashboardSettings)| {
        with(&|u| f(u.dashboard_settings.as_mut().unwrap()))
    };
    let long = |n: usize| "x".repeat(n);
    vec![
        ("email without @", with(&|u| u.email = Some("not-an-email".into())), "invalid_email", "email"),
        ("email without domain", with(&|u| u.email = Some("a@".into())), "invalid_email", "email"),
        ("email too long", with(&|u| u.email = Some(format!("{}@example.com", long(250)))), "invalid_email", "email"),
        ("empty display name", with(&|u| u.display_name = Some("".into())), "invalid_display_name", "displayName"),
        ("blank display name", with(&|u| u.display_name = Some("   ".into())), "invalid_display_name", "displayName"),
        ("display name too long", with(&|u| u.display_name = Some(long(65))), "invalid_display_name", "displayName"),
        ("control character in name", with(&|u| u.display_name = Some("bad\u{7}name".into())), "invalid_display_name", "displayName"),
        ("empty line1", address(&|a| a.line1 = "".into()), "invalid_address_line", "shippingAddress.line1"),
        ("line2 too long", address(&|a| a.line2 = Some(long(101))), "invalid_address_line", "shippingAddress.line2"),
        ("empty city", address(&|a| a.city = " ".into()), "invalid_city", "shippingAddress.city"),
        ("region too long", address(&|a| a.region = Some(long(65))), "invalid_region", "shippingAddress.region"),
        ("empty postal code", address(&|a| a.postal_code = "".into()), "invalid_postal_code", "shippingAddress.postalCode"),
        ("postal code symbol", address(&|a| a.postal_code = "12#45".into()), "invalid_postal_code", "shippingAddress.postalCode"),
        ("postal code too long", address(&|a| a.postal_code = "1".repeat(17)), "invalid_postal_code", "shippingAddress.postalCode"),
        ("lower-case country", address(&|a| a.country = "gb".into()), "invalid_country", "shippingAddress.country"),
        ("unassigned country", address(&|a| a.country = "XX".into()), "invalid_country", "shippingAddress.country"),
        ("alpha-3 country", address(&|a| a.country = "GBR".into()), "invalid_country", "shippingAddress.country"),
        ("short wallet", with(&|u| u.preferred_wallet = Some("0x1234".into())), "invalid_wallet_address", "preferredWallet"),
        ("wallet without 0x", with(&|u| u.preferred_wallet = Some(WALLET[2..].to_string() + "00")), "invalid_wallet_address", "preferredWallet"),
        ("wallet non-hex", with(&|u| u.preferred_wallet = Some(format!("0x{}", "g".repeat(40)))), "invalid_wallet_address", "preferredWallet"),
        (
            "wallet bad checksum",
            with(&|u| u.preferred_wallet = Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD".into())),
            "wallet_checksum_mismatch",
            "preferredWallet",
        ),
        ("http avatar", with(&|u| u.avatar_url = Some("http://cdn.example.com/a.png".into())), "invalid_avatar_url", "avatarUrl"),
        ("avatar not a URL", with(&|u| u.avatar_url = Some("not a url".into())), "invalid_avatar_url", "avatarUrl"),
        ("avatar with credentials", with(&|u| u.avatar_url = Some("https://u:p@cdn.example.com/a.png".into())), "invalid_avatar_url", "avatarUrl"),
        ("avatar too long", with(&|u| u.avatar_url = Some(format!("https://cdn.example.com/{}", long(2100)))), "invalid_avatar_url", "avatarUrl"),
        ("page size 0", settings(&|s| s.orders_page_size = 0), "invalid_page_size", "dashboardSettings.ordersPageSize"),
        ("page size 101", settings(&|s| s.orders_page_size = 101), "invalid_page_size", "dashboardSettings.ordersPageSize"),
        ("underscore locale", settings(&|s| s.locale = "en_US".into()), "invalid_locale", "dashboardSettings.locale"),
    ]
}

#[tokio::test]
async fn each_validation_rule_has_its_code_and_field() {
    let server = TestServer::start().await;
    let client = server.member("validator");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let cases = invalid_updates();
    assert!(cases.len() >= 20);
    for (name, update, code, field) in cases {
        let (status, error) = expect_error(client.put_profile(Some(&etag), &update).await);
        assert_eq!(status, 400, "{name}");
        assert_eq!(error.error_code, code, "{name}: {}", error.message);
        assert_eq!(error.field.as_deref(), Some(field), "{name}");
        assert!(error.message.starts_with(field), "{name}: message names the field");
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
    let url = format!("{}/dashboard/profile", client.baseurl());
    let cases = [
        (json!({"displayName": "x", "userId": "someone-else"}), 400, "unknown_field", Some("userId")),
        (json!({"stripeCustomerId": "cus_123"}), 400, "unknown_field", Some("stripeCustomerId")),
        (json!({"nickname": "x"}), 400, "unknown_field", Some("nickname")),
        (
            json!({"shippingAddress": {"line1": "a", "city": "b", "postalCode": "1", "country": "US", "floor": 3}}),
            400,
            "unknown_field",
            Some("floor"),
        ),
        (json!({"shippingAddress": {"line1": "a", "postalCode": "1", "country": "US"}}), 400, "missing_field", Some("city")),
        (json!({"displayName": 42}), 400, "invalid_body", None),
        (json!({"dashboardSettings": {"theme": "neon"}}), 400, "invalid_body", None),
        (json!(["not", "an", "object"]), 400, "invalid_body", None),
    ];
    for (body, status, code, field) in cases {
        let response = client
            .client()
            .put(&url)
            .header("if-match", &etag)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error_code"], code, "{body}: {error}");
        assert_eq!(error["field"].as_str(), field, "{body}");
    }
    let after = client.get_profile().await.unwrap().into_inner();
    assert_eq!(after.user_id, "raw-bodies");
    assert_eq!(after.stripe_customer_id, None);
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = TestServer::start().await;
    let client = server.member("big");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let update = ProfileUpdate { display_name: Some("x".repeat(20_000)), ..Default::default() };
    let (status, error) = expect_error(client.put_profile(Some(&etag), &update).await);
    assert_eq!(status, 413);
    assert_eq!(error.error_code, "payload_too_large");
    server.stop().await;
}

#[tokio::test]
async fn if_match_missing_stale_and_fresh() {
    let server = TestServer::start().await;
    let client = server.member("conditional");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let update = full_update();

    let (status, error) = expect_error(client.put_profile(None, &update).await);
    assert_eq!((status, error.error_code.as_str()), (428, "precondition_required"));
    let (status, error) = expect_error(client.put_profile(Some("*"), &update).await);
    assert_eq!((status, error.error_code.as_str()), (428, "precondition_required"));
    for stale in ["\"999\"", "W/\"1\"", "garbage"] {
        let (status, error) = expect_error(client.put_profile(Some(stale), &update).await);
        assert_eq!((status, error.error_code.as_str()), (412, "precondition_failed"), "{stale}");
    }

    let fresh = client.put_profile(Some(&etag), &update).await.unwrap();
    let next = fresh.headers()["etag"].to_str().unwrap().to_string();
    // The old ETag is now stale.
    let (status, _) = expect_error(client.put_profile(Some(&etag), &update).await);
    assert_eq!(status, 412);
    client.put_profile(Some(&next), &update).await.unwrap();
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
            let update = ProfileUpdate { display_name: Some(format!("writer {i}")), ..Default::default() };
            (i, client.put_profile(Some(&etag), &update).await)
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).map(|(i, _)| *i).collect();
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    for (_, result) in results.into_iter().filter(|(_, r)| r.is_err()) {
        let (status, error) = expect_error(result);
        assert_eq!((status, error.error_code.as_str()), (412, "precondition_failed"));
    }
    let profile = client.get_profile().await.unwrap().into_inner();
    assert_eq!(profile.display_name, Some(format!("writer {}", winners[0])));
    assert_eq!(server.audit_records().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn members_only_see_their_own_profile() {
    let server = TestServer::start().await;
    let alice = server.member("alice");
    let bob = server.member("bob");
    let etag = alice.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    alice.put_profile(Some(&etag), &full_update()).await.unwrap();
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
