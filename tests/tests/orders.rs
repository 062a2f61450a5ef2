//! Order history through the generated client, with the Stripe simulator behind the server.

use dashboard_client::types::{LinkStripeCustomer, OrderStatus, SyncRequest};
use dashboard_client::{Client, ClientInfo};
use dashboard_tests::{expect_error, TestServer};
use std::collections::HashSet;
use stripe_sim::{Faults, ItemSpec};

fn nz(n: u32) -> Option<std::num::NonZeroU32> {
    std::num::NonZeroU32::new(n)
}

fn items() -> Vec<ItemSpec> {
    vec![ItemSpec::new("Babes Club Tee", 2, 2500), ItemSpec::new("Sticker", 1, 500)]
}

async fn sync(server: &TestServer, user: &str) -> dashboard_client::types::SyncReport {
    let body = SyncRequest { user_id: user.parse().unwrap() };
    server.admin().post_sync_member(&body).await.unwrap().into_inner()
}

/// Every order id of the member, paging with `limit`.
async fn all_pages(client: &Client, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = match &token {
            None => client.list_orders(None, None, nz(limit), None, None).await,
            Some(t) => client.list_orders(None, None, None, Some(t), None).await,
        }
        .unwrap()
        .into_inner();
        assert!(page.items.len() <= limit as usize);
        ids.extend(page.items.iter().map(|o| o.order_id.clone()));
        match page.next_page {
            Some(next) => token = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn a_member_without_a_stripe_customer_has_an_empty_history() {
    let server = TestServer::start().await;
    let client = server.member("no-customer");
    let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert!(page.items.is_empty());
    assert!(page.next_page.is_none());
    assert!(!page.stale);
    let report = sync(&server, "no-customer").await;
    assert_eq!((report.seen, report.created), (0, 0));
    server.stop().await;
}

#[tokio::test]
async fn listing_pages_through_250_orders_without_gaps_while_new_ones_arrive() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("big-spender").await;
    for i in 0..250 {
        // Several orders share a second: ties must page correctly too.
        if i % 3 == 0 {
            server.stripe.advance(1);
        }
        let pi = server.stripe.create_payment_intent(&customer, 1000 + i, "usd", &items());
        server.stripe.succeed(&pi);
    }
    let report = sync(&server, "big-spender").await;
    assert_eq!((report.seen, report.created, report.updated), (250, 250, 0));
    // ceil(250/100) pages of PaymentIntents and as many of charges, nothing per order.
    assert_eq!(report.stripe_requests, 3 + 3, "list calls only, nothing per order");

    // Page through while new orders keep arriving after the first pages.
    let mut seen = Vec::new();
    let first = client.list_orders(None, None, nz(20), None, None).await.unwrap().into_inner();
    seen.extend(first.items.iter().map(|o| (o.order_id.clone(), o.created_at)));
    let mut token = first.next_page;
    let mut pages = 1;
    while let Some(t) = token {
        if pages == 3 {
            for _ in 0..5 {
                server.stripe.advance(1);
                let pi = server.stripe.create_payment_intent(&customer, 999, "usd", &items());
                server.stripe.succeed(&pi);
            }
            sync(&server, "big-spender").await;
        }
        let page = client.list_orders(None, None, None, Some(&t), None).await.unwrap().into_inner();
        assert!(page.items.len() <= 20);
        seen.extend(page.items.iter().map(|o| (o.order_id.clone(), o.created_at)));
        token = page.next_page;
        pages += 1;
    }
    assert_eq!(pages, 13);
    let unique: HashSet<_> = seen.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(unique.len(), 250, "no duplicates and no gaps");
    assert_eq!(seen.len(), 250);
    assert!(seen.windows(2).all(|w| w[0].1 >= w[1].1), "newest first");
    // A fresh listing sees the new ones too.
    assert_eq!(all_pages(&client, 100).await.len(), 255);
    let profile = client.get_profile().await.unwrap().into_inner();
    assert_eq!(profile.total_orders, 255);
    server.stop().await;
}

#[tokio::test]
async fn filters_by_status_and_creation_time() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("filterer").await;
    let start = chrono::Utc::now().timestamp() - 10 * 86_400;
    server.stripe.set_clock(start);
    let mut refunded = Vec::new();
    for i in 0..12 {
        server.stripe.advance(86_400 / 2);
        let pi = server.stripe.create_payment_intent(&customer, 5000, "usd", &items());
        server.stripe.succeed(&pi);
        if i % 4 == 0 {
            server.stripe.refund(&pi, 5000);
            refunded.push(pi);
        }
    }
    sync(&server, "filterer").await;
    let page = client
        .list_orders(None, None, None, None, Some(OrderStatus::Refunded))
        .await
        .unwrap()
        .into_inner();
    let ids: HashSet<String> = page.items.iter().map(|o| o.order_id.clone()).collect();
    assert_eq!(ids, refunded.iter().cloned().collect());
    assert!(page.items.iter().all(|o| o.status == OrderStatus::Refunded));

    // The filter survives paging: one order per page, three pages, all refunded.
    let mut token: Option<String> = None;
    let mut paged = Vec::new();
    loop {
        let page = match &token {
            None => client.list_orders(None, None, nz(1), None, Some(OrderStatus::Refunded)).await,
            Some(t) => client.list_orders(None, None, None, Some(t), None).await,
        }
        .unwrap()
        .into_inner();
        paged.extend(page.items.into_iter().map(|o| o.order_id));
        token = page.next_page;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged.len(), 3);

    let after = chrono::DateTime::from_timestamp(start + 2 * 86_400, 0).unwrap();
    let before = chrono::DateTime::from_timestamp(start + 4 * 86_400, 0).unwrap();
    let window = client
        .list_orders(Some(&after), Some(&before), None, None, None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(window.items.len(), 4, "orders at +2.0, +2.5, +3.0, +3.5 days");
    assert!(window.items.iter().all(|o| o.created_at >= after && o.created_at < before));

    let (status, error) =
        expect_error(client.list_orders(Some(&before), Some(&after), None, None, None).await);
    assert_eq!((status, error.error_code.as_str()), (400, "invalid_date_range"));
    let (status, error) = expect_error(client.list_orders(None, None, nz(101), None, None).await);
    assert_eq!((status, error.error_code.as_str()), (400, "invalid_limit"));
    server.stop().await;
}

#[tokio::test]
async fn forged_truncated_and_foreign_page_tokens_are_rejected() {
    let server = TestServer::start().await;
    let (alice, customer) = server.linked_member("alice").await;
    let (bob, bob_customer) = server.linked_member("bob").await;
    for _ in 0..5 {
        let pi = server.stripe.create_payment_intent(&customer, 100, "usd", &items());
        server.stripe.succeed(&pi);
        let pi = server.stripe.create_payment_intent(&bob_customer, 100, "usd", &items());
        server.stripe.succeed(&pi);
    }
    sync(&server, "alice").await;
    sync(&server, "bob").await;
    let page = alice.list_orders(None, None, nz(2), None, None).await.unwrap().into_inner();
    let token = page.next_page.unwrap();
    let filtered = alice
        .list_orders(None, None, nz(1), None, Some(OrderStatus::Succeeded))
        .await
        .unwrap()
        .into_inner()
        .next_page
        .unwrap();

    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE;
    let decode = |t: &str| -> serde_json::Value {
        serde_json::from_slice(&engine.decode(t).unwrap()).unwrap()
    };
    let encode = |v: &serde_json::Value| engine.encode(serde_json::to_vec(v).unwrap());
    // Forged: the position moved, signature kept.
    let mut forged = decode(&token);
    forged["page_start"]["k"] = serde_json::json!("999999999999#pi_x");
    // Filters removed from a filtered token, signature kept.
    let mut unfiltered = decode(&filtered);
    unfiltered["page_start"]["s"] = serde_json::Value::Null;
    let cases = [
        ("forged position", encode(&forged)),
        ("filter stripped", encode(&unfiltered)),
        ("truncated", token[..token.len() / 2].to_string()),
        ("garbage", "not-a-token".to_string()),
        ("empty signature", {
            let mut v = decode(&token);
            v["page_start"]["sig"] = serde_json::json!("");
            encode(&v)
        }),
    ];
    for (name, bad) in &cases {
        let (status, error) =
            expect_error(alice.list_orders(None, None, None, Some(bad), None).await);
        assert_eq!((status, error.error_code.as_str()), (400, "invalid_page_token"), "{name}");
    }
    // Alice's token is worthless to Bob.
    let (status, error) = expect_error(bob.list_orders(None, None, None, Some(&token), None).await);
    assert_eq!((status, error.error_code.as_str()), (400, "invalid_page_token"));
    // And the genuine token still works for Alice.
    alice.list_orders(None, None, None, Some(&token), None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn members_never_see_each_others_orders() {
    let server = TestServer::start().await;
    let (alice, alice_customer) = server.linked_member("alice").await;
    let (bob, _) = server.linked_member("bob").await;
    let pi = server.stripe.create_payment_intent(&alice_customer, 4200, "usd", &items());
    server.stripe.succeed(&pi);
    // Uncached and cached alike: Bob gets 404, never 403.
    let (status, error) = expect_error(bob.get_order(&pi).await);
    assert_eq!((status, error.error_code.as_str()), (404, "order_not_found"));
    sync(&server, "alice").await;
    alice.get_order(&pi).await.unwrap();
    let (status, _) = expect_error(bob.get_order(&pi).await);
    assert_eq!(status, 404);
    assert!(all_pages(&bob, 100).await.is_empty());
    let succeeded = bob
        .list_orders(None, None, None, None, Some(OrderStatus::Succeeded))
        .await
        .unwrap()
        .into_inner();
    assert!(succeeded.items.is_empty());
    for unknown in ["pi_doesnotexist", "not-an-order", "pi_../../x"] {
        let (status, _) = expect_error(alice.get_order(unknown).await);
        assert_eq!(status, 404, "{unknown}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_missing_snapshot_is_fetched_live_then_served_from_cache() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("live").await;
    let (_, pi) = server.stripe.checkout(&customer, "usd", &items());
    server.stripe.refund(&pi, 500);
    let before = server.stripe.request_count();
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert!(server.stripe.request_count() > before, "fetched from Stripe");
    assert_eq!(order.status, OrderStatus::PartiallyRefunded);
    assert_eq!(order.amount, 5500);
    assert_eq!(order.amount_refunded, 500);
    assert_eq!(order.items.len(), 2, "line items from the Checkout Session");
    assert_eq!(order.items[0].description, "Babes Club Tee");
    assert_eq!(order.refunds.len(), 1);
    assert_eq!(order.charges.len(), 1);
    assert!(order.receipt_url.is_some());
    let cached = server.stripe.request_count();
    let again = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!(server.stripe.request_count(), cached, "served from the cache");
    assert_eq!(again, order);
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 1);
    server.stop().await;
}

#[tokio::test]
async fn reconcile_repairs_missing_and_changed_orders_and_a_rerun_writes_nothing() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("reconciled").await;
    let mut intents = Vec::new();
    for _ in 0..10 {
        let pi = server.stripe.create_payment_intent(&customer, 3000, "usd", &items());
        server.stripe.succeed(&pi);
        intents.push(pi);
    }
    let first = sync(&server, "reconciled").await;
    assert_eq!((first.seen, first.created, first.updated, first.unchanged), (10, 10, 0, 0));

    // Stripe moves on without webhooks: two refunds, a dispute, three new orders.
    server.stripe.refund(&intents[0], 3000);
    server.stripe.refund(&intents[1], 1000);
    server.stripe.dispute(&intents[2]);
    for _ in 0..3 {
        let pi = server.stripe.create_payment_intent(&customer, 100, "usd", &items());
        server.stripe.fail(&pi);
    }
    let second = sync(&server, "reconciled").await;
    assert_eq!((second.seen, second.created, second.updated, second.unchanged), (13, 3, 3, 7));
    let disputed = client.get_order(&intents[2]).await.unwrap().into_inner();
    assert_eq!(disputed.status, OrderStatus::Disputed);
    assert_eq!(disputed.disputes.len(), 1);
    assert_eq!(
        client.get_order(&intents[0]).await.unwrap().into_inner().status,
        OrderStatus::Refunded
    );

    let third = sync(&server, "reconciled").await;
    assert_eq!((third.created, third.updated, third.unchanged), (0, 0, 13));
    // A page of PaymentIntents, a page of charges, and the open dispute's listing.
    assert_eq!(third.stripe_requests, 3, "two list calls and one per open dispute");
    let status = client.get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.last_reconcile.unwrap().unchanged, 13);
    assert!(status.last_error.is_none());
    server.stop().await;
}

/// A first reconcile caches new orders a transaction per 99 (with their count on the
/// profile), not one each: 150 orders in two Stripe pages cost 3 inserting transactions (99
/// and 1 of the first page, 50 of the second) and the sync's own.
#[tokio::test]
async fn a_first_reconcile_caches_new_orders_99_to_a_transaction() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("hoarder").await;
    for n in 0..150 {
        let pi = server.stripe.create_payment_intent(&customer, 1000 + n, "usd", &items());
        server.stripe.succeed(&pi);
    }
    let before = server.store_calls("TransactWriteItems");
    let report = sync(&server, "hoarder").await;
    assert_eq!((report.seen, report.created, report.unchanged), (150, 150, 0));
    assert_eq!(server.store_calls("TransactWriteItems") - before, 4);
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 150);
    assert_eq!(all_pages(&client, 100).await.len(), 150);
    let again = sync(&server, "hoarder").await;
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 150));
    server.stop().await;
}

#[tokio::test]
async fn reconcile_rides_out_rate_limits_and_server_errors() {
    let server = TestServer::start().await;
    let (_, customer) = server.linked_member("bursty").await;
    for _ in 0..150 {
        let pi = server.stripe.create_payment_intent(&customer, 700, "usd", &items());
        server.stripe.succeed(&pi);
    }
    server.stripe.inject(Faults { rate_limited: 3, server_errors: 2, ..Default::default() });
    let report = sync(&server, "bursty").await;
    assert_eq!((report.seen, report.created), (150, 150));
    assert_eq!(report.stripe_requests, 2 + 2 + 5, "two pages of intents and charges, 5 retries");
    server.stop().await;
}

/// The generic sentence a member sees for each sync code (as `sync-status` documents them).
const STRIPE_UNAVAILABLE_SENTENCE: &str =
    "Stripe could not be reached; your orders will be refreshed again shortly.";
const SYNC_FAILED_SENTENCE: &str =
    "Your orders could not be refreshed; they will be refreshed again shortly.";

/// A failed reconcile shows the member a stable code and a generic sentence; Stripe's own
/// answer (its error text, status, type) goes to the log only, with the member's id.
#[tokio::test]
async fn a_failed_sync_shows_the_member_a_code_and_a_sentence_never_stripes_text() {
    let server = TestServer::start().await;
    let (client, _) = server.linked_member("unlucky").await;
    // Every attempt of the harness's 8 answers 500 with Stripe's `api_error` text.
    server.stripe.inject(Faults { server_errors: 8, ..Default::default() });
    let body = SyncRequest { user_id: "unlucky".parse().unwrap() };
    let error = server.admin().post_sync_member(&body).await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));

    let status = client.get_sync_status().await.unwrap().into_inner();
    let last_error = status.last_error.expect("the failure is recorded");
    assert_eq!(last_error.code, "stripe_unavailable");
    assert_eq!(last_error.message, STRIPE_UNAVAILABLE_SENTENCE);
    let mut shown = serde_json::to_value(&last_error).unwrap();
    // The timestamp is ours, and its digits may hold "500".
    shown.as_object_mut().unwrap().remove("at");
    let shown = shown.to_string();
    for raw in ["An unknown error occurred", "api_error", "500", "Stripe unavailable:"] {
        assert!(!shown.contains(raw), "{raw:?} reached the member: {shown}");
    }
    // The detail is in the log, on the record that names the member and the code.
    let log = server.log_text();
    let record = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|r| r["msg"] == "reconcile failed")
        .expect("a reconcile failed record");
    assert_eq!(
        (record["user_id"].as_str(), record["code"].as_str()),
        (Some("unlucky"), Some("stripe_unavailable"))
    );
    assert!(
        record["error"].as_str().is_some_and(|e| e.contains("An unknown error occurred")),
        "{record}"
    );
    assert!(!log.contains(server.stripe.secret_key()), "the Stripe key never reaches the log");

    // The next good sync clears it.
    sync(&server, "unlucky").await;
    assert!(client.get_sync_status().await.unwrap().into_inner().last_error.is_none());
    server.stop().await;
}

/// A failure stored by an earlier version (its raw error text, no code) is shown as
/// `sync_failed` with the generic sentence, never its stored text.
#[tokio::test]
async fn a_sync_failure_stored_before_codes_is_shown_generically() {
    use dashboard_tests::raw::Table;
    let server = TestServer::start().await;
    let raw = "store error: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/\
               dashboard-api/fn is not authorized to perform: dynamodb:Query on resource: \
               arn:aws:dynamodb:eu-west-1:123456789012:table/prod-OrderSnapshots";
    let profile = serde_json::json!({
        "userId": { "S": "legacy-sync" },
        "dashboardSettings": { "M": {} },
        "stripeCustomerId": { "S": "cus_legacy1" },
        "orderCount": { "N": "0" },
        "lastSyncError": { "M": {
            "at": { "S": "2026-11-20T10:00:00Z" },
            "message": { "S": raw },
        }},
        "createdAt": { "S": "2026-11-01T10:00:00Z" },
        "updatedAt": { "S": "2026-11-20T10:00:00Z" },
        "version": { "N": "3" },
    });
    server.put_stored_item(Table::UserProfiles, &profile).await;
    let status = server.member("legacy-sync").get_sync_status().await.unwrap().into_inner();
    let shown = serde_json::to_string(&status).unwrap();
    let last_error = status.last_error.expect("the stored failure is shown");
    assert_eq!(last_error.code, "sync_failed");
    assert_eq!(last_error.message, SYNC_FAILED_SENTENCE);
    assert_eq!(last_error.at.to_rfc3339(), "2026-11-20T10:00:00+00:00");
    for part in ["arn:aws", "123456789012", "OrderSnapshots", "AccessDenied"] {
        assert!(!shown.contains(part), "{part:?} reached the member: {shown}");
    }
    server.stop().await;
}

#[tokio::test]
async fn stale_orders_refresh_in_the_background_once() {
    let server = TestServer::start_with(dashboard_tests::Options {
        stale_after: Some(std::time::Duration::ZERO),
        ..Default::default()
    })
    .await;
    let (client, customer) = server.linked_member("stale").await;
    for _ in 0..3 {
        let pi = server.stripe.create_payment_intent(&customer, 700, "usd", &items());
        server.stripe.succeed(&pi);
    }
    // Never synced: the answer is immediate (empty) and marked stale; a refresh starts.
    let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert!(page.stale);
    assert!(page.items.is_empty());
    let mut found = 0;
    for _ in 0..250 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let status = client.get_sync_status().await.unwrap().into_inner();
        if let Some(report) = status.last_reconcile {
            found = report.created;
            break;
        }
    }
    assert_eq!(found, 3, "the background refresh cached the orders");
    let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert_eq!(page.items.len(), 3);
    assert!(page.synced_at.is_some());
    server.stop().await;
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_scope() {
    let server = TestServer::start().await;
    let member = server.member("plain");
    member.get_profile().await.unwrap();
    let (status, error) = expect_error(
        member.post_sync_member(&SyncRequest { user_id: "plain".parse().unwrap() }).await,
    );
    assert_eq!((status, error.error_code.as_str()), (403, "forbidden"));
    let body = LinkStripeCustomer { stripe_customer_id: "cus_abc".parse().unwrap() };
    let (status, _) =
        expect_error(member.put_member_stripe_customer(&"plain".parse().unwrap(), &body).await);
    assert_eq!(status, 403);
    let (status, _) = expect_error(member.post_sync_all().await);
    assert_eq!(status, 403);

    // A customer belongs to one member; unknown members cannot be linked.
    let admin = server.admin();
    admin.put_member_stripe_customer(&"plain".parse().unwrap(), &body).await.unwrap();
    server.member("other").get_profile().await.unwrap();
    let (status, error) =
        expect_error(admin.put_member_stripe_customer(&"other".parse().unwrap(), &body).await);
    assert_eq!((status, error.error_code.as_str()), (409, "customer_already_linked"));
    let other = LinkStripeCustomer { stripe_customer_id: "cus_other".parse().unwrap() };
    let (status, error) =
        expect_error(admin.put_member_stripe_customer(&"nobody".parse().unwrap(), &other).await);
    assert_eq!((status, error.error_code.as_str()), (404, "member_not_found"));
    let profile = member.get_profile().await.unwrap().into_inner();
    assert_eq!(profile.stripe_customer_id.as_deref(), Some("cus_abc"));

    // Bad input is a 400 with its field, never a 500 (found by schemathesis).
    let url = format!("{}/internal/members/plain/stripe-customer", admin.baseurl());
    for bad in ["", "cus_", "acct_123", "cus_a/b"] {
        let response = admin
            .client()
            .put(&url)
            .json(&serde_json::json!({ "stripeCustomerId": bad }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{bad:?}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error_code"], "invalid_stripe_customer_id");
        assert_eq!(error["field"], "stripeCustomerId");
    }
    // The generated client refuses an empty user id (the schema's minLength); the server too.
    assert!("".parse::<dashboard_client::types::SyncRequestUserId>().is_err());
    let response = admin
        .client()
        .post(format!("{}/internal/sync/stripe", admin.baseurl()))
        .json(&serde_json::json!({ "userId": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error_code"], "invalid_user_id");
    server.stop().await;
}

#[tokio::test]
async fn the_scheduled_sync_reconciles_every_linked_member() {
    let server = TestServer::start().await;
    for user in ["m1", "m2", "m3"] {
        let (_, customer) = server.linked_member(user).await;
        for _ in 0..4 {
            let pi = server.stripe.create_payment_intent(&customer, 700, "usd", &items());
            server.stripe.succeed(&pi);
        }
    }
    server.member("unlinked").get_profile().await.unwrap();
    let report = server.admin().post_sync_all().await.unwrap().into_inner();
    assert_eq!((report.members, report.failed), (3, 0));
    assert_eq!((report.totals.seen, report.totals.created), (12, 12));
    let again = server.admin().post_sync_all().await.unwrap().into_inner();
    assert_eq!((again.totals.created, again.totals.updated, again.totals.unchanged), (0, 0, 12));
    server.stop().await;
}

/// A status filter is applied after DynamoDB reads, so `?limit=1&status=disputed` on a member
/// whose only disputed order is the oldest of 260 once read page after page in one request.
/// Each request now reads at most 5 Query pages: the first answers with no order and a token,
/// and following the tokens reaches the disputed order.
#[tokio::test]
async fn a_status_filtered_listing_reads_a_bounded_number_of_pages_per_request() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("needle").await;
    server.stripe.set_clock(1_700_000_000);
    let disputed = server.stripe.create_payment_intent(&customer, 900, "usd", &[]);
    server.stripe.succeed(&disputed);
    server.stripe.dispute(&disputed);
    for _ in 0..259 {
        server.stripe.advance(60);
        let pi = server.stripe.create_payment_intent(&customer, 900, "usd", &[]);
        server.stripe.succeed(&pi);
    }
    let report = sync(&server, "needle").await;
    assert_eq!(report.created, 260);
    let mut found = Vec::new();
    let mut requests = 0;
    let mut first_page = None;
    let mut token: Option<String> = None;
    loop {
        let before = server.store_calls("Query");
        let page = match &token {
            None => client.list_orders(None, None, nz(1), None, Some(OrderStatus::Disputed)).await,
            Some(t) => client.list_orders(None, None, None, Some(t), None).await,
        }
        .unwrap()
        .into_inner();
        let queries = server.store_calls("Query") - before;
        assert!(queries <= 5, "request {requests} read {queries} Query pages");
        requests += 1;
        assert!(page.items.len() <= 1);
        first_page.get_or_insert((page.items.len(), page.next_page.is_some()));
        found.extend(page.items.into_iter().map(|o| (o.order_id, o.status)));
        match page.next_page {
            Some(next) => token = Some(next),
            None => break,
        }
        assert!(requests < 20, "the scan makes progress");
    }
    assert_eq!(first_page, Some((0, true)), "the first page: nothing found yet, and a token");
    assert_eq!(found, vec![(disputed, OrderStatus::Disputed)]);
    assert!(requests >= 2);
    server.stop().await;
}

/// A first listing page reads what it needs of the profile (freshness, customer) in its own
/// Query, from the member's listing state: one store call. A later page reads the profile
/// beside its Query. Both answer alike.
#[tokio::test]
async fn a_first_listing_page_is_one_store_call() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("one-call").await;
    for _ in 0..3 {
        let pi = server.stripe.create_payment_intent(&customer, 700, "usd", &items());
        server.stripe.succeed(&pi);
    }
    sync(&server, "one-call").await;
    let calls = || ["Query", "GetItem"].map(|operation| server.store_calls(operation));
    let before = calls();
    let first = client.list_orders(None, None, nz(2), None, None).await.unwrap().into_inner();
    let after = calls();
    assert_eq!([after[0] - before[0], after[1] - before[1]], [1, 0], "Query, GetItem");
    assert_eq!(first.items.len(), 2);
    assert!(!first.stale && first.synced_at.is_some());
    let token = first.next_page.clone().expect("a third order");
    let before = calls();
    let next = client.list_orders(None, None, None, Some(&token), None).await.unwrap().into_inner();
    let after = calls();
    assert_eq!([after[0] - before[0], after[1] - before[1]], [1, 1], "Query, GetItem");
    assert_eq!(next.items.len(), 1);
    assert_eq!((next.synced_at, next.stale), (first.synced_at, first.stale));
    server.stop().await;
}
