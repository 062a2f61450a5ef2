//! The first link by verified email (`DASHBOARD_AUTO_LINK=verified-email`): a member whose token
//! says `email_verified: true` is linked on a profile read to the one Stripe customer with that
//! email, unless none, several or a taken one match (then the sync status says why); at most one
//! Stripe look-up per member, ever.

use dashboard_client::types::{LinkStripeCustomer, SyncStatus};
use dashboard_client::Client;
use dashboard_server::storage::limits::LimitsConfig;
use dashboard_tests::{Options, TestServer};
use serde_json::json;
use std::time::Duration;

const LOOKUP: &str = "/v1/customers";

/// A server with the first link by verified email on (the harness's generous limits otherwise).
async fn server_with_auto_link() -> TestServer {
    let limits = LimitsConfig {
        order_lookups_per_minute: 1000,
        profile_writes_per_minute: 1000,
        auto_link_verified_email: true,
        ..LimitsConfig::default()
    };
    TestServer::start_with(Options { limits: Some(limits), ..Default::default() }).await
}

/// A member whose token carries `email` with `email_verified` as given.
fn member(server: &TestServer, user: &str, email: &str, verified: bool) -> Client {
    server.client(&server.token(json!({ "sub": user, "email": email, "email_verified": verified })))
}

/// Customer look-ups by email the server has sent the simulator.
fn lookups(server: &TestServer) -> u64 {
    server.stripe.requests_by_path().get(LOOKUP).copied().unwrap_or(0)
}

async fn status(client: &Client) -> SyncStatus {
    client.get_sync_status().await.unwrap().into_inner()
}

#[tokio::test]
async fn one_match_links_and_reconciles() {
    let server = server_with_auto_link().await;
    let customer = server.stripe.create_customer("ada@example.com");
    for _ in 0..3 {
        let pi = server.stripe.create_payment_intent(&customer, 1500, "usd", &[]);
        server.stripe.succeed(&pi);
    }
    let ada = member(&server, "ada", "ada@example.com", true);
    let profile = ada.get_profile().await.unwrap().into_inner();
    assert_eq!(profile.stripe_customer_id.as_deref(), Some(customer.as_str()));
    // The reconcile runs in the background (the refresh path): wait for its report.
    let mut synced = status(&ada).await;
    for _ in 0..100 {
        if synced.last_reconcile.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        synced = status(&ada).await;
    }
    let report = synced.last_reconcile.clone().expect("a reconcile ran after the link");
    assert_eq!(report.seen, 3);
    let auto = synced.auto_link.expect("the outcome is in the sync status");
    assert_eq!(auto.outcome, "linked");
    assert_eq!(synced.stripe_customer_id.as_deref(), Some(customer.as_str()));
    let orders = ada.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert_eq!(orders.items.len(), 3);
    assert_eq!(lookups(&server), 1);
}

#[tokio::test]
async fn none_several_or_taken_link_nothing_and_say_why() {
    let server = server_with_auto_link().await;
    // Taken: the one customer with the email is another member's.
    let taken = server.stripe.create_customer("bo@example.com");
    server.member("holder").get_profile().await.unwrap();
    let body = LinkStripeCustomer { stripe_customer_id: taken.parse().unwrap() };
    server.admin().put_member_stripe_customer(&"holder".parse().unwrap(), &body).await.unwrap();
    // Several: two customers share the email.
    server.stripe.create_customer("cy@example.com");
    server.stripe.create_customer("cy@example.com");
    // None; also the case of a differing case: Stripe's `email` filter is case-sensitive.
    server.stripe.create_customer("di@example.com");
    let cases = [
        ("bo", "bo@example.com", "taken"),
        ("cy", "cy@example.com", "several"),
        ("nobody", "nobody@example.com", "none"),
        ("di", "Di@example.com", "none"),
    ];
    for (user, email, outcome) in cases {
        let client = member(&server, user, email, true);
        let profile = client.get_profile().await.unwrap().into_inner();
        assert_eq!(profile.stripe_customer_id, None, "{user}");
        let synced = status(&client).await;
        assert_eq!(synced.stripe_customer_id, None, "{user}");
        let auto = synced.auto_link.unwrap_or_else(|| panic!("{user}: no outcome"));
        assert_eq!(auto.outcome, outcome, "{user}");
        assert!(!auto.reason.is_empty(), "{user}");
    }
    assert_eq!(lookups(&server), 4);
    // The taken customer stays with its holder.
    let holder = status(&server.member("holder")).await;
    assert_eq!(holder.stripe_customer_id.as_deref(), Some(taken.as_str()));
}

#[tokio::test]
async fn an_unverified_email_does_nothing() {
    let server = server_with_auto_link().await;
    server.stripe.create_customer("ed@example.com");
    for client in [
        member(&server, "ed", "ed@example.com", false),
        // No `email_verified` claim at all.
        server.client(&server.token(json!({ "sub": "ed", "email": "ed@example.com" }))),
    ] {
        let profile = client.get_profile().await.unwrap().into_inner();
        assert_eq!(profile.stripe_customer_id, None);
        assert_eq!(status(&client).await.auto_link, None);
    }
    assert_eq!(lookups(&server), 0);
}

#[tokio::test]
async fn off_by_default() {
    let server = TestServer::start().await;
    server.stripe.create_customer("fay@example.com");
    let fay = member(&server, "fay", "fay@example.com", true);
    assert_eq!(fay.get_profile().await.unwrap().into_inner().stripe_customer_id, None);
    assert_eq!(status(&fay).await.auto_link, None);
    assert_eq!(lookups(&server), 0);
}

/// A hostile member re-reading the profile, one after another and many at once, costs one
/// Stripe look-up in all.
#[tokio::test]
async fn one_lookup_per_member_ever() {
    let server = server_with_auto_link().await;
    let gus = member(&server, "gus", "gus@example.com", true);
    let concurrent = (0..20).map(|_| gus.get_profile());
    for result in futures::future::join_all(concurrent).await {
        result.unwrap();
    }
    // A customer with the email appearing later does not earn a second try, and a re-read
    // costs the one GetItem it always did: no write, no Stripe request.
    server.stripe.create_customer("gus@example.com");
    let (gets, updates) = (server.store_calls("GetItem"), server.store_calls("UpdateItem"));
    for _ in 0..20 {
        assert_eq!(gus.get_profile().await.unwrap().into_inner().stripe_customer_id, None);
    }
    assert_eq!(server.store_calls("GetItem") - gets, 20);
    assert_eq!(server.store_calls("UpdateItem"), updates);
    assert_eq!(lookups(&server), 1);
    assert_eq!(status(&gus).await.auto_link.unwrap().outcome, "none");
}
