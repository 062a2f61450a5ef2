//! Issue 12, targets 1, 4 and 6: webhooks apply the event's own object (a Stripe request only
//! when it cannot be ordered or says too little), reconcile sees every charge and dispute as
//! the webhooks do, and every Stripe call keeps to its request's deadline.

use dashboard_client::types::{OrderStatus, SyncRequest};
use dashboard_tests::{expect_error, Options, TestServer};
use std::time::{Duration, Instant};
use stripe_sim::{Faults, ItemSpec};

async fn sync(server: &TestServer, user: &str) -> dashboard_client::types::SyncReport {
    let body = SyncRequest { user_id: user.parse().unwrap() };
    server.admin().post_sync_member(&body).await.unwrap().into_inner()
}

/// The ids one [`history`] created.
struct History {
    intent: String,
    charges: Vec<String>,
    dispute: String,
}

/// A card declined, then a second attempt that succeeds; the payment is disputed and the
/// dispute moves to `under_review`. Starts at simulated time `t0`, so two runs line up.
fn history(server: &TestServer, customer: &str, t0: i64) -> History {
    let sim = &server.stripe;
    sim.set_clock(t0);
    let intent = sim.create_payment_intent(customer, 4200, "usd", &[ItemSpec::new("Tee", 1, 4200)]);
    sim.advance(60);
    let failed = sim.fail(&intent);
    sim.advance(60);
    let succeeded = sim.succeed(&intent);
    sim.advance(3600);
    let dispute = sim.dispute(&intent);
    sim.advance(3600);
    sim.update_dispute(&dispute, "under_review");
    History { intent, charges: vec![failed, succeeded], dispute }
}

#[tokio::test]
async fn reconcile_alone_shows_every_charge_and_the_latest_dispute_status() {
    let server = TestServer::start().await;
    let (member, customer) = server.linked_member("dana").await;
    let t0 = chrono::Utc::now().timestamp() - 86_400;
    let h = history(&server, &customer, t0);
    // No webhook is delivered: reconcile alone must see the whole history.
    sync(&server, "dana").await;
    let order = member.get_order(&h.intent).await.unwrap().into_inner();
    let charges: Vec<(&str, &str)> =
        order.charges.iter().map(|c| (c.charge_id.as_str(), c.status.as_str())).collect();
    assert_eq!(
        charges,
        [(h.charges[0].as_str(), "failed"), (h.charges[1].as_str(), "succeeded")],
        "the declined attempt is in the timeline, before the one that went through"
    );
    assert_eq!(order.charges[0].failure_message.as_deref(), Some("Your card was declined."));
    assert_eq!(order.status, OrderStatus::Disputed);
    assert_eq!(order.disputes.len(), 1);
    assert_eq!(order.disputes[0].dispute_id, h.dispute);
    assert_eq!(order.disputes[0].status, "under_review");

    // The dispute closes later: the next reconcile (the order is cached) sees it too.
    server.stripe.update_dispute(&h.dispute, "won");
    let report = sync(&server, "dana").await;
    assert_eq!(report.updated, 1);
    let order = member.get_order(&h.intent).await.unwrap().into_inner();
    assert_eq!(order.disputes[0].status, "won");

    // A closed dispute costs no further request: intents, charges, and nothing per order.
    let report = sync(&server, "dana").await;
    assert_eq!((report.unchanged, report.stripe_requests), (1, 2));
    server.stop().await;
}

/// The order as the member sees it, with the ids of one run replaced by placeholders and the
/// bookkeeping times (when it was written) left out.
fn normalized(order: &dashboard_client::types::Order, h: &History) -> serde_json::Value {
    let mut text = serde_json::to_string(order).unwrap();
    let tail: String = h.intent[h.intent.len() - 8..].to_ascii_uppercase();
    text = text.replace(&h.intent, "PI").replace(&tail, "TAIL").replace(&h.dispute, "DP");
    for (n, charge) in h.charges.iter().enumerate() {
        text = text.replace(charge, &format!("CH{n}"));
    }
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in ["updatedAt", "syncedAt"] {
        value.as_object_mut().unwrap().remove(field);
    }
    value
}

#[tokio::test]
async fn webhooks_and_reconcile_give_the_same_order_for_the_same_history() {
    let server = TestServer::start().await;
    let (by_webhook, customer_w) = server.linked_member("wendy").await;
    let (by_reconcile, customer_r) = server.linked_member("rita").await;
    let t0 = chrono::Utc::now().timestamp() - 86_400;

    let before = server.stripe.events().len();
    let hw = history(&server, &customer_w, t0);
    let events: Vec<String> = server.stripe.events()[before..]
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    for event in &events {
        let delivery = server.stripe.deliver(event).await;
        assert_eq!(delivery.status, 200, "{event}: {:?}", delivery.body);
    }

    let hr = history(&server, &customer_r, t0);
    sync(&server, "rita").await;

    let webhook_order = by_webhook.get_order(&hw.intent).await.unwrap().into_inner();
    let reconcile_order = by_reconcile.get_order(&hr.intent).await.unwrap().into_inner();
    assert_eq!(webhook_order.charges.len(), 2);
    assert_eq!(normalized(&webhook_order, &hw), normalized(&reconcile_order, &hr));
    server.stop().await;
}

/// What a request may take beyond its configured Stripe deadline: the store writes and the
/// answer after Stripe gives up.
const MARGIN: Duration = Duration::from_millis(1000);
const DEADLINE: Duration = Duration::from_secs(2);

async fn server_with_deadline() -> TestServer {
    TestServer::start_with(Options { stripe_deadline: Some(DEADLINE), ..Default::default() }).await
}

#[tokio::test]
async fn a_sync_whose_stripe_calls_keep_failing_answers_within_its_deadline() {
    let server = server_with_deadline().await;
    let (member, customer) = server.linked_member("rhea").await;
    server.stripe.create_payment_intent(&customer, 1000, "usd", &[]);
    // Stripe is slow and answers every request with a 429: the harness allows 8 attempts.
    server.stripe.reset_request_count();
    server.stripe.inject(Faults {
        rate_limited: 1000,
        latency: Duration::from_millis(700),
        ..Default::default()
    });
    let started = Instant::now();
    let body = SyncRequest { user_id: "rhea".parse().unwrap() };
    let (status, error) = expect_error(server.admin().post_sync_member(&body).await);
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{error:?}");
    assert!(elapsed < DEADLINE + MARGIN, "answered after {elapsed:?}");
    let attempts = server.stripe.request_count();
    assert!((2..=3).contains(&attempts), "{attempts} attempts in a 2 s deadline at 0.7 s each");
    server.stripe.inject(Faults::default());
    let status = member.get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.last_error.map(|e| e.code).as_deref(), Some("stripe_unavailable"));
    server.stop().await;
}

#[tokio::test]
async fn a_slow_stripe_answer_is_cut_at_the_deadline() {
    let server = server_with_deadline().await;
    let (member, _customer) = server.linked_member("sven").await;
    // One answer takes longer than the whole deadline: the attempt itself is cut short.
    server.stripe.reset_request_count();
    server.stripe.inject(Faults { latency: Duration::from_secs(4), ..Default::default() });
    let started = Instant::now();
    let (status, error) = expect_error(member.get_order("pi_sim00000000000999").await);
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{error:?}");
    assert!(elapsed < DEADLINE + MARGIN, "answered after {elapsed:?}");
    assert_eq!(server.stripe.request_count(), 1, "no retry after the deadline");
    server.stop().await;
}

/// Delivers every event recorded since `before`, in Stripe's order; returns how many.
async fn deliver_since(server: &TestServer, before: usize, outcomes: &[&str]) -> usize {
    let events: Vec<serde_json::Value> = server.stripe.events()[before..].to_vec();
    for event in &events {
        let delivery = server.stripe.deliver(event["id"].as_str().unwrap()).await;
        assert_eq!(delivery.status, 200, "{}: {:?}", event["type"], delivery.body);
        assert!(outcomes.contains(&delivery.outcome()), "{}: {:?}", event["type"], delivery.body);
    }
    events.len()
}

/// Over a shop's ordinary traffic (intents created and paid, charges succeeded, failed and
/// updated, refunds, disputes), the webhooks apply each event's own object: at most 0.2 Stripe
/// requests per event (the simulator counts them), and the result is what Stripe says (a
/// reconcile afterwards changes nothing). Events about a customer who is not a member cost no
/// request at all.
#[tokio::test]
async fn webhooks_of_a_shops_traffic_cost_at_most_a_fifth_of_a_stripe_request_per_event() {
    let server = TestServer::start().await;
    let (member, customer) = server.linked_member("shopper").await;
    let stranger = server.stripe.create_customer("stranger@example.com");

    let before = server.stripe.events().len();
    let intents = server.stripe.shop_orders(&customer, 40);
    server.stripe.reset_request_count();
    let events = deliver_since(&server, before, &["applied"]).await;
    let requests = server.stripe.request_count();
    assert!(events >= 200, "{events} events");
    assert!(
        requests as f64 <= 0.2 * events as f64,
        "{requests} Stripe requests for {events} events: {:?}",
        server.stripe.requests_by_path()
    );
    let report = sync(&server, "shopper").await;
    assert_eq!((report.created, report.updated, report.unchanged), (0, 0, 40), "{report:?}");
    let disputed = member.get_order(&intents[0]).await.unwrap().into_inner();
    assert_eq!(disputed.status, OrderStatus::Disputed);
    assert_eq!((disputed.refunds.len(), disputed.disputes.len()), (1, 1));

    let before = server.stripe.events().len();
    server.stripe.shop_orders(&stranger, 10);
    server.stripe.reset_request_count();
    deliver_since(&server, before, &["unlinked"]).await;
    assert_eq!(server.stripe.request_count(), 0, "{:?}", server.stripe.requests_by_path());
    server.stop().await;
}
