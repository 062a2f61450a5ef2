//! `dashboard-server backfill`, run as the real binary against a real server's tables and the
//! Stripe simulator (the harness of `dashboard_tests::cli`): a dry run prints what it
//! would link and every ambiguity and writes nothing; `--apply` links the one unambiguous
//! member, with its audit record, and reconciles it.

use dashboard_client::types::LinkStripeCustomer;
use dashboard_client::Client;
use dashboard_tests::cli::{Run, Setup};
use serde_json::json;
use std::collections::HashMap;

/// A member whose token carries `email`, verified or not.
fn member(setup: &Setup, user: &str, email: &str, verified: bool) -> Client {
    setup.client(json!({ "sub": user, "email": email, "email_verified": verified }))
}

/// The outcome of each member line, by user id.
fn outcomes(run: &Run) -> HashMap<String, String> {
    run.lines()
        .into_iter()
        .filter(|line| line["type"] == "member")
        .map(|line| {
            let user = line["userId"].as_str().unwrap_or_default().to_string();
            (user, line["outcome"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_dry_runs_then_links_the_one_unambiguous_member() {
    let Some(setup) = Setup::start().await else { return };
    // One match, with two payments.
    let one = setup.stripe.create_customer("one@example.com");
    for _ in 0..2 {
        let pi = setup.stripe.create_payment_intent(&one, 1500, "usd", &[]);
        setup.stripe.succeed(&pi);
    }
    // Several matches; a customer another member holds; none; an unverified email.
    setup.stripe.create_customer("several@example.com");
    setup.stripe.create_customer("several@example.com");
    let taken = setup.stripe.create_customer("taken@example.com");
    setup.member("holder").get_profile().await.unwrap();
    let body = LinkStripeCustomer { stripe_customer_id: taken.parse().unwrap() };
    setup.admin().put_member_stripe_customer(&"holder".parse().unwrap(), &body).await.unwrap();
    setup.stripe.create_customer("unverified@example.com");
    for (user, verified) in
        [("one", true), ("several", true), ("taken", true), ("none", true), ("unverified", false)]
    {
        let client = member(&setup, user, &format!("{user}@example.com"), verified);
        client.get_profile().await.unwrap();
    }
    let expected = |one: &str| {
        HashMap::from([
            ("one".to_string(), one.to_string()),
            ("several".to_string(), "several".to_string()),
            ("taken".to_string(), "taken".to_string()),
            ("none".to_string(), "none".to_string()),
        ])
    };

    let dry = setup.run(&["backfill"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(outcomes(&dry), expected("would_link"), "{}", dry.stdout);
    let summary = dry.lines().into_iter().find(|l| l["type"] == "summary").unwrap();
    assert_eq!(summary["members"], 4);
    assert_eq!(summary["stripeRequests"], 4);
    assert!(dry.audit().is_empty());
    let status = setup.member("one").get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.stripe_customer_id, None, "a dry run links nothing");

    let apply = setup.run(&["backfill", "--apply"]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(outcomes(&apply), expected("linked"), "{}", apply.stdout);
    let audit = apply.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["target_user_id"], "one");
    assert_eq!(audit[0]["stripe_customer_id"], one.as_str());
    let status = setup.member("one").get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.stripe_customer_id.as_deref(), Some(one.as_str()));
    assert_eq!(status.last_reconcile.map(|r| r.seen), Some(2));
    assert_eq!(status.auto_link.map(|a| a.outcome).as_deref(), Some("linked"));
    let orders = setup.member("one").list_orders(None, None, None, None, None).await.unwrap();
    assert_eq!(orders.into_inner().items.len(), 2);
    let holder = setup.member("holder").get_sync_status().await.unwrap().into_inner();
    assert_eq!(holder.stripe_customer_id.as_deref(), Some(taken.as_str()));

    // The linked member is not a candidate any more.
    let again = setup.run(&["backfill"]).await;
    assert!(!outcomes(&again).contains_key("one"), "{}", again.stdout);
    setup.stop().await;
}
