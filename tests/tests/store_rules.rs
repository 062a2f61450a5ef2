//! What real DynamoDB enforces, proven through the API on whichever store this run uses (the
//! test command runs the suite on dynoxide and on moto). Debug builds also check every store
//! request against the rules in `server/src/storage/rules.rs`, so each test here fails if the
//! server sends a request AWS would refuse.

use chrono::{TimeZone, Utc};
use dashboard_client::types::OrderStatus;
use dashboard_client::types::SyncRequest;
use dashboard_tests::raw::Table;
use dashboard_tests::TestServer;
use stripe_sim::ItemSpec;

fn nz(n: u32) -> Option<std::num::NonZeroU32> {
    std::num::NonZeroU32::new(n)
}

async fn sync(server: &TestServer, user: &str) -> dashboard_client::types::SyncReport {
    let body = SyncRequest { user_id: user.parse().unwrap() };
    server.admin().post_sync_member(&body).await.unwrap().into_inner()
}

/// Every shape of the listing's key condition: no bound (the dashboard's first request, which
/// once sent an empty key value that real DynamoDB rejects), a lower bound, an upper bound (a
/// page token), and both.
#[tokio::test]
async fn every_listing_shape_is_a_valid_dynamodb_query() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("shapes").await;
    for i in 0..5 {
        server.stripe.set_clock(1_700_000_000 + i * 100);
        let pi = server.stripe.create_payment_intent(&customer, 1000, "usd", &[]);
        server.stripe.succeed(&pi);
    }
    sync(&server, "shapes").await;
    let all = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert_eq!(all.items.len(), 5);
    let after = Utc.timestamp_opt(1_700_000_150, 0).unwrap();
    let before = Utc.timestamp_opt(1_700_000_350, 0).unwrap();
    let newer = client.list_orders(Some(&after), None, None, None, None).await.unwrap();
    assert_eq!(newer.into_inner().items.len(), 3);
    let older = client.list_orders(None, Some(&before), None, None, None).await.unwrap();
    assert_eq!(older.into_inner().items.len(), 4);
    let between = client.list_orders(Some(&after), Some(&before), nz(1), None, None).await;
    let first = between.unwrap().into_inner();
    assert_eq!(first.items.len(), 1);
    let token = first.next_page.expect("a second page");
    let rest = client.list_orders(None, None, None, Some(&token), None).await.unwrap();
    assert_eq!(rest.into_inner().items.len(), 1, "two orders lie between the bounds");
    // A page token without date filters: an upper bound alone.
    let first = client.list_orders(None, None, nz(2), None, None).await.unwrap().into_inner();
    let token = first.next_page.expect("more pages");
    let rest = client.list_orders(None, None, nz(10), Some(&token), None).await.unwrap();
    assert_eq!(rest.into_inner().items.len(), 3);
    server.stop().await;
}

/// The largest order the simulator can make (Checkout's maximum of 100 lines, each with a
/// description over the kept 500 characters, 20 refunds and a dispute) is stored as one item,
/// which the rules check holds under 400 KB, and reads back whole.
#[tokio::test]
async fn the_largest_order_fits_in_one_item() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("largest").await;
    let long = "Babes Club limited edition ".repeat(30);
    let items: Vec<ItemSpec> =
        (0..100).map(|i| ItemSpec::new(&format!("{i:03} {long}"), 3, 100_000)).collect();
    let (_, pi) = server.stripe.checkout(&customer, "usd", &items);
    for _ in 0..20 {
        server.stripe.refund(&pi, 1_000);
    }
    server.stripe.dispute(&pi);
    let report = sync(&server, "largest").await;
    assert_eq!(report.created, 1);
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!(order.items.len(), 100);
    assert!(order.items.iter().all(|i| i.description.chars().count() == 500));
    assert_eq!(order.refunds.len(), 20);
    assert_eq!(order.disputes.len(), 1);
    assert_eq!(order.amount_refunded, 20_000);
    server.stop().await;
}

/// Reconcile reads every cached order through `LastEvaluatedKey`: with more than 1 MB of
/// orders (DynamoDB's most per Query page) a silently truncated read would take cached orders
/// for new ones and spend Stripe requests on their line items again.
#[tokio::test]
async fn reconcile_reads_past_a_one_megabyte_query_page() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("megabyte").await;
    let long = "x".repeat(480);
    let items: Vec<ItemSpec> =
        (0..100).map(|i| ItemSpec::new(&format!("{i:03} {long}"), 1, 100)).collect();
    // About 55 KB each: 24 of them are over 1.3 MB.
    for _ in 0..24 {
        server.stripe.checkout(&customer, "usd", &items);
    }
    let first = sync(&server, "megabyte").await;
    assert_eq!((first.seen, first.created), (24, 24));
    let second = sync(&server, "megabyte").await;
    assert_eq!((second.seen, second.created, second.updated, second.unchanged), (24, 0, 0, 24));
    assert_eq!(second.stripe_requests, 2, "one page of PaymentIntents and one of charges");
    let mut listed = 0;
    let mut token: Option<String> = None;
    loop {
        let page = client.list_orders(None, None, nz(100), token.as_deref(), None).await.unwrap();
        let page = page.into_inner();
        listed += page.items.len();
        match page.next_page {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, 24);
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 24);
    server.stop().await;
}

/// A profile and an order as an earlier version stored them (attributes this version does not
/// know, some it expects missing, a status the API no longer has) load on this store and read
/// through the API.
#[tokio::test]
async fn stored_records_from_earlier_versions_load() {
    let server = TestServer::start().await;
    let fixture = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    let profile = include_str!("../../server/src/storage/fixtures/profile-legacy.json");
    let order = include_str!("../../server/src/storage/fixtures/order-legacy.json");
    server.put_stored_item(Table::UserProfiles, &fixture(profile)).await;
    server.put_stored_item(Table::OrderSnapshots, &fixture(order)).await;
    let read = server.member("fixture-member").get_profile().await.unwrap();
    assert_eq!(read.headers()["etag"].to_str().unwrap(), "\"7\"");
    let profile = read.into_inner();
    assert_eq!(profile.display_name.as_deref(), Some("Fixture Member"));
    assert_eq!(profile.shipping_address.unwrap().city.as_str(), "Leeds");
    assert_eq!(profile.dashboard_settings.orders_page_size.get(), 50);
    assert_eq!(profile.total_orders, 3);
    let client = server.member("fixture-member");
    let listed = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].status, OrderStatus::Processing);
    let order = client.get_order("pi_fixture0001").await.unwrap().into_inner();
    assert_eq!((order.items.len(), order.refunds.len()), (2, 1));
    server.stop().await;
}

/// An order id no order can have (2,000 bytes, over DynamoDB's 1,024-byte sort key) is 404
/// `order_not_found` before the store is asked, not a store error and a 500.
#[tokio::test]
async fn an_oversized_order_id_is_not_found_without_a_store_error() {
    let server = TestServer::start().await;
    let (client, _) = server.linked_member("long-ids").await;
    let before = server.stripe.request_count();
    for id in [format!("pi_{}", "a".repeat(2_000)), "x".repeat(2_000)] {
        let (status, error) = dashboard_tests::expect_error(client.get_order(&id).await);
        assert_eq!((status, error.error_code.as_str()), (404, "order_not_found"));
    }
    assert_eq!(server.stripe.request_count(), before, "no Stripe request either");
    server.stop().await;
}
