//! Issue 12, target 5: per-member limits that hold across instances. Every limit is state in
//! the store (conditional counters, remembered ids, the profile's refresh request), so the
//! tests count what reaches Stripe (the simulator's request log) and the refresh queue.

use chrono::Timelike;
use dashboard_client::types::ProfileUpdate;
use dashboard_server::storage::limits::LimitsConfig;
use dashboard_tests::aws::AwsStandIn;
use dashboard_tests::{expect_error, Options, TestServer, TestStore};
use std::time::Duration;
use stripe_sim::Faults;

/// Waits until the current minute has at least 15 seconds left, so that a test's burst stays
/// in one counter window (a new minute would rightly grant a new budget).
async fn early_in_a_minute() {
    while chrono::Utc::now().second() >= 45 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A server's options with the production limits (the harness's are generous).
fn production_limits() -> Options {
    Options { limits: Some(LimitsConfig::default()), ..Default::default() }
}

fn random_intent_id() -> String {
    format!("pi_{}", uuid::Uuid::new_v4().simple())
}

/// Stripe requests the live fallback made: retrievals of single PaymentIntents.
fn retrievals(server: &TestServer) -> u64 {
    server.stripe.requests_by_path().get("/v1/payment_intents/{id}").copied().unwrap_or(0)
}

#[tokio::test]
async fn fifty_random_order_ids_cost_at_most_the_budget_then_429() {
    let server = TestServer::start_with(production_limits()).await;
    let (client, _) = server.linked_member("hostile").await;
    let budget = LimitsConfig::default().order_lookups_per_minute;
    early_in_a_minute().await;
    server.stripe.reset_request_count();
    let mut limited = 0;
    for n in 0..50 {
        let (status, error) = expect_error(client.get_order(&random_intent_id()).await);
        if n < budget {
            assert_eq!((status, error.error_code.as_str()), (404, "order_not_found"), "{n}");
        } else {
            assert_eq!((status, error.error_code.as_str()), (429, "rate_limited"), "{n}");
            let wait = error.retry_after_seconds.expect("a retry time");
            assert!((1..=60).contains(&wait), "{wait}");
            limited += 1;
        }
    }
    assert_eq!(limited, 50 - budget);
    assert_eq!(server.stripe.request_count(), u64::from(budget), "only the budget reached Stripe");
    // Another member's budget is their own.
    let (other, _) = server.linked_member("honest").await;
    let (status, _) = expect_error(other.get_order(&random_intent_id()).await);
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn the_same_unknown_or_foreign_id_twice_costs_one_stripe_request() {
    let server = TestServer::start().await;
    let (client, _) = server.linked_member("curious").await;
    let (_, someone_else) = server.linked_member("owner").await;
    let foreign = server.stripe.create_payment_intent(&someone_else, 500, "usd", &[]);
    let unknown = random_intent_id();
    server.stripe.reset_request_count();
    for id in [&unknown, &unknown, &foreign, &foreign] {
        let (status, error) = expect_error(client.get_order(id).await);
        assert_eq!((status, error.error_code.as_str()), (404, "order_not_found"), "{id}");
    }
    assert_eq!(
        retrievals(&server),
        2,
        "one retrieval per id: {:?}",
        server.stripe.requests_by_path()
    );
    server.stop().await;
}

#[tokio::test]
async fn two_servers_on_one_store_share_the_budget() {
    let store = TestStore::persistent().await;
    let options =
        Options { store: Some(store), hs256_secret: Some(vec![9; 32]), ..production_limits() };
    let first = TestServer::start_with(options.clone()).await;
    let second = TestServer::start_with(options).await;
    let (on_first, _) = first.linked_member("roaming").await;
    let on_second = second.member("roaming");
    let budget = u64::from(LimitsConfig::default().order_lookups_per_minute);
    early_in_a_minute().await;
    first.stripe.reset_request_count();
    second.stripe.reset_request_count();
    let mut statuses = Vec::new();
    for n in 0..12 {
        let client = if n % 2 == 0 { &on_first } else { &on_second };
        statuses.push(expect_error(client.get_order(&random_intent_id()).await).0);
    }
    let spent = first.stripe.request_count() + second.stripe.request_count();
    assert_eq!(spent, budget, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count() as u64, 12 - budget);
    second.stop().await;
    first.stop().await;
}

/// In process: a member whose refresh keeps failing (Stripe answers 500 to everything) stays
/// stale, and twenty listings start one reconcile, not one each.
#[tokio::test]
async fn twenty_stale_listings_start_one_refresh_even_when_it_keeps_failing() {
    let server = TestServer::start_with(Options {
        stale_after: Some(Duration::from_secs(3600)),
        ..Default::default()
    })
    .await;
    let (client, _) = server.linked_member("failing").await;
    server.stripe.inject(Faults { server_errors: 100_000, ..Default::default() });
    for _ in 0..20 {
        let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
        assert!(page.stale);
        // Time for a refresh to fail in between, so a listing could start another.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..100 {
        if client.get_sync_status().await.unwrap().into_inner().last_error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = server.log_text().lines().filter(|l| l.contains("\"reconcile failed\"")).count();
    assert_eq!(runs, 1, "one refresh per freshness window");
    server.stop().await;
}

/// Queue mode (Lambda): twenty listings of a stale member send one SQS message.
#[tokio::test]
async fn twenty_stale_listings_queue_one_refresh() {
    let sqs = AwsStandIn::sqs().await;
    // nextest runs each test in its own process, so these settings touch no other test.
    std::env::set_var("AWS_ENDPOINT_URL_SQS", &sqs.url);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let server = TestServer::start_with(Options {
        stale_after: Some(Duration::from_secs(3600)),
        refresh_queue_url: Some(format!("{}/123456789012/dashboard-refresh", sqs.url)),
        ..Default::default()
    })
    .await;
    let (client, _) = server.linked_member("queued").await;
    for _ in 0..20 {
        let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
        assert!(page.stale && page.refreshing);
    }
    let sent: Vec<_> =
        sqs.calls().into_iter().filter(|c| c.target == "AmazonSQS.SendMessage").collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    server.stop().await;
}

fn rename(name: &str) -> ProfileUpdate {
    ProfileUpdate {
        display_name: Some(name.try_into().unwrap()),
        email: None,
        shipping_address: None,
        preferred_wallet: None,
        avatar_url: None,
        dashboard_settings: None,
    }
}

#[tokio::test]
async fn the_eleventh_profile_write_in_a_minute_is_429_and_others_are_unaffected() {
    let server = TestServer::start_with(Options {
        limits: Some(LimitsConfig::default()),
        ..Default::default()
    })
    .await;
    let per_minute = LimitsConfig::default().profile_writes_per_minute;
    let client = server.member("busy");
    let mut etag =
        client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    early_in_a_minute().await;
    for n in 0..per_minute {
        let written = client.put_profile(&etag, &rename(&format!("Name {n}"))).await.unwrap();
        etag = written.headers()["etag"].to_str().unwrap().to_string();
    }
    let (status, error) = expect_error(client.put_profile(&etag, &rename("One too many")).await);
    assert_eq!((status, error.error_code.as_str()), (429, "rate_limited"));
    let wait = error.retry_after_seconds.expect("a retry time");
    assert!((1..=60).contains(&wait), "{wait}");
    let patch = dashboard_client::types::ProfilePatch {
        display_name: Some("Patched".try_into().unwrap()),
        ..Default::default()
    };
    let (status, error) = expect_error(client.patch_profile(&etag, &patch).await);
    assert_eq!((status, error.error_code.as_str()), (429, "rate_limited"));
    let profile = client.get_profile().await.unwrap().into_inner();
    assert_eq!(profile.display_name.as_deref(), Some(format!("Name {}", per_minute - 1).as_str()));

    let other = server.member("calm");
    let etag = other.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    other.put_profile(&etag, &rename("Unaffected")).await.unwrap();
    server.stop().await;
}
