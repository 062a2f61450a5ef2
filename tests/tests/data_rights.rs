//! The member's data rights through the generated client: the paged export
//! (`GET /dashboard/export`) and the erasure (`DELETE /dashboard/profile`).

use dashboard_client::types::{LinkStripeCustomer, SyncRequest};
use dashboard_client::Client;
use dashboard_tests::{expect_error, relaxed, Limit, Options, TestServer, TestStore};
use std::collections::HashSet;
use stripe_sim::ItemSpec;

fn nz(n: u32) -> Option<std::num::NonZeroU32> {
    std::num::NonZeroU32::new(n)
}

/// A linked member with `count` succeeded orders cached (through the admin reconcile).
async fn member_with_orders(server: &TestServer, user: &str, count: i64) -> (Client, String) {
    let (client, customer) = server.linked_member(user).await;
    let items = vec![ItemSpec::new("Babes Club Tee", 2, 2500), ItemSpec::new("Sticker", 1, 500)];
    for i in 0..count {
        let pi = server.stripe.create_payment_intent(&customer, 1000 + i, "usd", &items);
        server.stripe.succeed(&pi);
    }
    let body = SyncRequest { user_id: user.parse().unwrap() };
    let report = server.admin().post_sync_member(&body).await.unwrap().into_inner();
    assert_eq!(report.created, count as u64);
    (client, customer)
}

async fn etag(client: &Client) -> String {
    client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string()
}

/// Every page of the member's export, checked to be bounded.
async fn export_pages(client: &Client) -> Vec<dashboard_client::types::ExportPage> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client.get_export(token.as_deref()).await.unwrap().into_inner();
        assert!(page.orders.len() <= 100, "at most 100 orders a page");
        let bytes = serde_json::to_vec(&page).unwrap().len();
        assert!(bytes < 3 * 1024 * 1024, "a page stays far below 6 MB: {bytes} bytes");
        eprintln!("export page: {} orders, {bytes} bytes", page.orders.len());
        assert_eq!(page.profile.is_some(), pages.is_empty(), "the profile on the first page only");
        token = page.next_page_token.clone();
        pages.push(page);
        if token.is_none() {
            return pages;
        }
    }
}

#[tokio::test]
async fn export_pages_hold_the_profile_and_every_order_once() {
    let server = TestServer::start().await;
    let (client, customer) = member_with_orders(&server, "exporter", 250).await;
    let (other, _) = member_with_orders(&server, "bystander", 3).await;
    // One order with a refund: the export carries the timeline, not a summary.
    let refunded = server.stripe.create_payment_intent(&customer, 4200, "usd", &[]);
    server.stripe.succeed(&refunded);
    server.stripe.refund(&refunded, 1200);
    let body = SyncRequest { user_id: "exporter".parse().unwrap() };
    server.admin().post_sync_member(&body).await.unwrap();

    let pages = export_pages(&client).await;
    assert_eq!(pages.len(), 3, "251 orders in pages of 100");
    let first = &pages[0];
    let profile = first.profile.as_ref().unwrap();
    assert_eq!(profile.user_id, "exporter");
    assert_eq!(profile.stripe_customer_id.as_deref(), Some(customer.as_str()));
    let sync = first.sync_status.as_ref().unwrap();
    assert_eq!(sync.stripe_customer_id.as_deref(), Some(customer.as_str()));
    assert!(first.audit_history.as_deref().unwrap().contains("logs"), "says where audit is");
    assert!(pages[1..].iter().all(|p| p.sync_status.is_none() && p.audit_history.is_none()));
    let ids: Vec<&str> =
        pages.iter().flat_map(|p| &p.orders).map(|o| o.order_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!((ids.len(), unique.len()), (251, 251), "every order exactly once");
    let order = pages.iter().flat_map(|p| &p.orders).find(|o| o.order_id == refunded).unwrap();
    assert_eq!(order.refunds.len(), 1);
    assert_eq!(order.amount_refunded, 1200);
    assert!(!order.charges.is_empty());

    // Another member's export holds only their own orders.
    let theirs = export_pages(&other).await;
    let their_ids: HashSet<String> =
        theirs.iter().flat_map(|p| &p.orders).map(|o| o.order_id.clone()).collect();
    assert_eq!(their_ids.len(), 3);
    assert!(their_ids.iter().all(|id| !unique.contains(id.as_str())));

    // A token the server did not issue, and a member without a profile.
    let (status, error) = expect_error(client.get_export(Some("not a token")).await);
    assert_eq!((status, error.error_code.as_str()), (400, "invalid_page_token"));
    let (status, error) = expect_error(server.member("nobody").get_export(None).await);
    assert_eq!((status, error.error_code.as_str()), (404, "member_not_found"));
    server.stop().await;
}

#[tokio::test]
async fn erase_needs_if_match_and_removes_only_the_members_data() {
    let server = TestServer::start().await;
    let (client, customer) = member_with_orders(&server, "leaver", 30).await;
    let (other, _) = member_with_orders(&server, "stayer", 5).await;
    let other_before = other.get_profile().await.unwrap().into_inner();

    let (status, error) = expect_error(client.delete_profile("").await);
    assert_eq!((status, error.error_code.as_str()), (428, "precondition_required"));
    let (status, error) = expect_error(client.delete_profile("\"999\"").await);
    assert_eq!((status, error.error_code.as_str()), (412, "precondition_failed"));
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 30, "untouched");

    let report = client.delete_profile(&etag(&client).await).await.unwrap().into_inner();
    assert!(!report.resumed);
    assert_eq!((report.profiles_removed, report.orders_removed), (1, 30));
    assert_eq!(report.customer_links_removed, 1);
    assert!(report.retained.contains("Stripe"), "says Stripe's records are untouched");

    // Gone: nothing to erase or export until the member signs in again.
    let (status, error) = expect_error(client.delete_profile("\"1\"").await);
    assert_eq!((status, error.error_code.as_str()), (404, "member_not_found"));
    let (status, _) = expect_error(client.get_export(None).await);
    assert_eq!(status, 404);
    // The next sign-in starts a fresh profile, with no orders and no link.
    let fresh = client.get_profile().await.unwrap().into_inner();
    assert_eq!((fresh.total_orders, fresh.stripe_customer_id), (0, None));
    assert!(fresh.created_at > other_before.created_at);
    let page = client.list_orders(None, None, nz(100), None, None).await.unwrap().into_inner();
    assert!(page.items.is_empty());
    // The customer's claim went with the link: another member may now be linked to it.
    let body = LinkStripeCustomer { stripe_customer_id: customer.parse().unwrap() };
    server.member("newcomer").get_profile().await.unwrap();
    server.admin().put_member_stripe_customer(&"newcomer".parse().unwrap(), &body).await.unwrap();

    // The other member is untouched.
    assert_eq!(other.get_profile().await.unwrap().into_inner(), other_before);
    let page = other.list_orders(None, None, nz(100), None, None).await.unwrap().into_inner();
    assert_eq!(page.items.len(), 5);

    // One audit record of the erasure says who and when, without personal data.
    let audit: Vec<_> =
        server.audit_records().into_iter().filter(|r| r["action"] == "profile.erase").collect();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["user_id"], "leaver");
    assert!(audit[0]["at"].is_string());
    assert!(!audit[0].to_string().contains("@example.com"), "no email in the record");
    server.stop().await;
}

#[tokio::test]
async fn reads_never_see_a_member_half_erased() {
    let server = TestServer::start().await;
    let (client, _) = member_with_orders(&server, "vanishing", 300).await;
    let etag = etag(&client).await;
    let reader = {
        let client = server.member("vanishing");
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..400 {
                let profile = client.get_profile().await;
                let listing = client.list_orders(None, None, nz(100), None, None).await;
                let profile = match profile {
                    Ok(p) => Some(p.into_inner().total_orders),
                    Err(e) => {
                        let (status, error) = expect_error::<()>(Err(e));
                        assert_eq!((status, error.error_code.as_str()), (404, "member_not_found"));
                        None
                    }
                };
                seen.push((profile, listing.unwrap().into_inner().items.len()));
                if profile == Some(0) {
                    break;
                }
            }
            seen
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let report = client.delete_profile(&etag).await.unwrap().into_inner();
    assert_eq!(report.orders_removed, 300);
    let seen = reader.await.unwrap();
    let during = seen.iter().filter(|(p, _)| p.is_none()).count();
    eprintln!("reads: {} in all, {during} while erasing", seen.len());
    // The whole member, then nothing (404, an empty listing), then a fresh profile: never a
    // profile or listing with part of the orders.
    for (profile, listed) in &seen {
        assert!(matches!(profile, Some(300) | Some(0) | None), "{seen:?}");
        assert!(*listed == 100 || *listed == 0, "{seen:?}");
    }
    let phase = |p: &Option<u64>| match p {
        Some(300) => 0,
        None => 1,
        _ => 2,
    };
    assert!(seen.windows(2).all(|w| phase(&w[0].0) <= phase(&w[1].0)), "{seen:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_interrupted_erasure_is_completed_by_the_next_delete() {
    let store = TestStore::persistent().await;
    let options = Options {
        store: Some(store.clone()),
        hs256_secret: Some(vec![9; 32]),
        ..Default::default()
    };
    let mut server = TestServer::start_with(options.clone()).await;
    // Enough orders that the store can be taken away between the mark and the last batch.
    let orders = if relaxed(Limit::SlowTransactions) { 200 } else { 600 };
    let (client, _) = member_with_orders(&server, "interrupted", orders).await;
    let old_etag = etag(&client).await;
    let erase = {
        let client = server.member("interrupted");
        let old_etag = old_etag.clone();
        tokio::spawn(async move { client.delete_profile(&old_etag).await })
    };
    // The profile is marked (reads answer 404) before any order is deleted: the store goes
    // away then, halfway through.
    loop {
        if client.get_profile().await.is_err() {
            break;
        }
    }
    if !server.stop_store().await {
        return;
    }
    let (status, _) = expect_error(erase.await.unwrap());
    assert_eq!(status, 503, "the erasure was cut off");
    server.stop().await;

    let server = TestServer::start_with(options).await;
    let client = server.member("interrupted");
    let (status, _) = expect_error(client.get_profile().await);
    assert_eq!(status, 404, "still hidden while marked");
    let page = client.list_orders(None, None, nz(100), None, None).await.unwrap().into_inner();
    assert!(page.items.is_empty());
    // No edit lands on a profile being erased, even one naming the version the mark made.
    let marked: u64 = old_etag.trim_matches('"').parse::<u64>().unwrap() + 1;
    let update = dashboard_client::types::ProfileUpdate {
        display_name: None,
        email: None,
        shipping_address: None,
        preferred_wallet: None,
        avatar_url: None,
        dashboard_settings: None,
    };
    let (status, _) = expect_error(client.put_profile(&format!("\"{marked}\""), &update).await);
    assert_eq!(status, 412);
    // Resuming needs no current If-Match: the one the erasure started with is gone.
    let report = client.delete_profile(&old_etag).await.unwrap().into_inner();
    assert!(report.resumed);
    eprintln!("the resumed erasure removed {} of {orders} orders", report.orders_removed);
    assert_eq!(report.profiles_removed, 1);
    assert!(report.orders_removed <= orders as u64, "{report:?}");
    let fresh = client.get_profile().await.unwrap().into_inner();
    assert_eq!(fresh.total_orders, 0);
    assert!(export_pages(&client).await.iter().all(|p| p.orders.is_empty()));
    server.stop().await;
}
