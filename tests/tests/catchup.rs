//! The daily schedule's catch-up (issue 12, target 3): Stripe's Events list read from a
//! checkpoint in DynamoDB and applied as webhooks, with the per-member sweep as the fallback
//! when there is no checkpoint or it is older than Stripe keeps events. The schedule arrives
//! on `POST /events` (outside the contract), driven through the generated client's HTTP
//! stack; orders are read through the generated client; the checkpoint is written straight
//! into the store where a test needs one from the past.

use chrono::Utc;
use dashboard_client::types::OrderStatus;
use dashboard_client::{Client, ClientInfo};
use dashboard_server::storage::checkpoint::CATCH_UP_CHECKPOINT_ID;
use dashboard_tests::raw::Table;
use dashboard_tests::{Options, TestServer};
use serde_json::{json, Value};
use std::num::NonZeroU32;
use stripe_sim::{Faults, ItemSpec};

const DAY: i64 = 86_400;
const EVENTS_LIST: &str = "/v1/events";

async fn lambda_server() -> TestServer {
    TestServer::start_with(Options { lambda_events: true, ..Default::default() }).await
}

/// A linked member of `server` with the catch-up's checkpoint an hour ago and Stripe's clock
/// half an hour ago, so what the test does at Stripe next lies between the checkpoint and now.
/// Returns the member's client, its customer and now.
async fn member_behind_checkpoint(server: &TestServer, user: &str) -> (Client, String, i64) {
    let (client, customer) = server.linked_member(user).await;
    let now = Utc::now().timestamp();
    put_checkpoint(server, now - 3_600).await;
    server.stripe.set_clock(now - 1_800);
    (client, customer, now)
}

/// One run of the daily schedule, as EventBridge Scheduler sends it through the adapter.
async fn run_schedule(server: &TestServer) -> Value {
    let (status, body) = schedule(server).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn schedule(server: &TestServer) -> (u16, Value) {
    let client = server.client_with_headers(Default::default());
    let event =
        json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {} });
    let response = client
        .client()
        .post(format!("{}/events", client.baseurl()))
        .header("x-amzn-request-context", "null")
        .json(&event)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn put_checkpoint(server: &TestServer, at: i64) {
    let item = json!({
        "eventId": { "S": CATCH_UP_CHECKPOINT_ID },
        "checkpoint": { "N": at.to_string() },
    });
    server.put_stored_item(Table::StripeEvents, &item).await;
}

/// Paid orders made in the simulator at its current clock, their webhooks never delivered;
/// returns how many events Stripe recorded for them.
fn undelivered_orders(server: &TestServer, customer: &str, count: usize) -> usize {
    let before = server.stripe.events().len();
    for n in 0..count {
        let amount = 1_000 + n as i64;
        let pi = server.stripe.create_payment_intent(
            customer,
            amount,
            "usd",
            &[ItemSpec::new("Tote", 1, amount)],
        );
        server.stripe.succeed(&pi);
    }
    server.stripe.events().len() - before
}

/// Log records with this message.
fn records(server: &TestServer, msg: &str) -> Vec<Value> {
    server
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["msg"] == msg)
        .collect()
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a count: {value}"))
}

/// Changes made at Stripe whose webhooks never arrived show up after one scheduled run, which
/// read them with one Events-list request per 100 events and applied them as webhooks do.
#[tokio::test]
async fn undelivered_changes_show_up_after_one_run_with_one_list_request_per_hundred_events() {
    let server = lambda_server().await;
    let (client, customer, now) = member_behind_checkpoint(&server, "catch-up").await;
    let events = undelivered_orders(&server, &customer, 40);
    assert!(events > 100, "more than one page of events ({events})");
    let pages = events.div_ceil(100) as u64;
    server.stripe.reset_request_count();

    let report = run_schedule(&server).await;

    assert_eq!(report["mode"], "catch_up", "{report}");
    assert_eq!(report["fallback"], Value::Null);
    assert_eq!(count(&report["events"]), events as u64);
    assert_eq!(count(&report["applied"]), events as u64);
    assert_eq!(count(&report["listRequests"]), pages);
    let by_path = server.stripe.requests_by_path();
    assert_eq!(by_path.get(EVENTS_LIST).copied(), Some(pages), "{by_path:?}");
    // Every Stripe request is counted: the list pages plus the webhook path's re-fetches.
    assert_eq!(count(&report["stripeRequests"]), server.stripe.request_count());
    assert_eq!(
        count(&report["stripeRequests"]),
        count(&report["listRequests"]) + count(&report["refetchRequests"])
    );
    assert_eq!(report["previousCheckpoint"], now - 3_600);
    assert_eq!(report["checkpoint"], now - 1_800, "the newest applied event's `created`");

    let limit = NonZeroU32::new(100);
    let page = client.list_orders(None, None, limit, None, None).await.unwrap().into_inner();
    assert_eq!(page.items.len(), 40);
    assert!(page.items.iter().all(|o| o.status == OrderStatus::Succeeded));
    server.stop().await;
}

/// Orders whose first card was declined and whose second attempt succeeded within the same
/// second cost the catch-up no re-fetch: the failed attempt's intent state is superseded by
/// the terminal one listed after it, and the declined charge still shows in the order. One
/// such order's events straddle the first two chunks of 100.
#[tokio::test]
async fn a_declined_then_paid_order_costs_the_catch_up_no_refetch() {
    let server = lambda_server().await;
    let (client, customer, _) = member_behind_checkpoint(&server, "catch-up-retried").await;
    // Six events first, then five per declined order: the 19th's `payment_failed` is the
    // 99th event and its `succeeded` the 101st, in the next chunk.
    assert_eq!(undelivered_orders(&server, &customer, 2), 6);
    let intents: Vec<String> = (0..30)
        .map(|n| {
            let amount = 2_000 + n;
            let pi = server.stripe.create_payment_intent(
                &customer,
                amount,
                "usd",
                &[ItemSpec::new("Tote", 1, amount)],
            );
            server.stripe.fail(&pi);
            server.stripe.succeed(&pi);
            pi
        })
        .collect();
    server.stripe.reset_request_count();

    let report = run_schedule(&server).await;

    assert_eq!(report["mode"], "catch_up", "{report}");
    assert_eq!(count(&report["refetchRequests"]), 0, "{report}");
    assert_eq!(count(&report["stripeRequests"]), count(&report["listRequests"]), "{report}");
    assert_eq!(count(&report["events"]), 6 + 5 * intents.len() as u64, "{report}");
    assert_eq!(count(&report["superseded"]), intents.len() as u64, "{report}");
    assert_eq!(
        count(&report["applied"]) + count(&report["superseded"]),
        count(&report["events"]),
        "{report}"
    );
    for pi in &intents {
        let order = client.get_order(pi).await.unwrap().into_inner();
        let (status, refunded) = dashboard_tests::stripe_order_state(&server.stripe, pi);
        assert_eq!((order.status, order.amount_refunded), (status, refunded), "{pi}");
        assert_eq!(order.status, OrderStatus::Succeeded);
        let mut charges: Vec<&str> = order.charges.iter().map(|c| c.status.as_str()).collect();
        charges.sort_unstable();
        assert_eq!(charges, ["failed", "succeeded"], "{pi}: both attempts");
    }
    server.stop().await;
}

/// A second run re-reads the overlap before the checkpoint, and the ledger drops all of it:
/// nothing is applied again and nothing but the list reaches Stripe.
#[tokio::test]
async fn a_second_run_applies_nothing_new() {
    let server = lambda_server().await;
    let (_, customer) = server.linked_member("twice").await;
    let now = Utc::now().timestamp();
    put_checkpoint(&server, now - 3_600).await;
    server.stripe.set_clock(now - 60);
    let events = undelivered_orders(&server, &customer, 3);
    let first = run_schedule(&server).await;
    assert_eq!(count(&first["applied"]), events as u64, "{first}");
    server.stripe.reset_request_count();

    let second = run_schedule(&server).await;

    assert_eq!(second["mode"], "catch_up", "{second}");
    assert_eq!(count(&second["applied"]), 0);
    assert_eq!(count(&second["duplicates"]), events as u64, "the overlap re-read them all");
    assert_eq!(count(&second["refetchRequests"]), 0);
    let by_path = server.stripe.requests_by_path();
    assert_eq!(by_path.into_iter().collect::<Vec<_>>(), vec![(EVENTS_LIST.to_string(), 1)]);
    assert_eq!(second["checkpoint"], first["checkpoint"]);
    server.stop().await;
}

/// A checkpoint older than the 30 days Stripe keeps events cannot be caught up from: the run
/// sweeps every member instead, says so in a log record and a metric, and restarts the
/// checkpoint at the sweep's start, so the next run catches up again.
#[tokio::test]
async fn a_checkpoint_older_than_thirty_days_falls_back_to_the_sweep_and_says_so() {
    let server = lambda_server().await;
    let (client, customer) = server.linked_member("long-ago").await;
    let pi = server.stripe.create_payment_intent(&customer, 900, "usd", &[]);
    server.stripe.succeed(&pi);
    let now = Utc::now().timestamp();
    put_checkpoint(&server, now - 31 * DAY).await;
    server.stripe.reset_request_count();

    let report = run_schedule(&server).await;

    assert_eq!(report["mode"], "sweep", "{report}");
    assert_eq!(report["fallback"], "checkpoint_expired");
    assert_eq!(report["members"], 1);
    assert_eq!(report["totals"]["created"], 1);
    assert_eq!(report["previousCheckpoint"], now - 31 * DAY);
    assert!(count(&report["checkpoint"]) as i64 >= now, "{report}");
    assert_eq!(server.stripe.requests_by_path().get(EVENTS_LIST), None, "no list was read");
    let said = records(&server, "catch-up fell back to the sweep");
    assert_eq!(said.len(), 1);
    assert_eq!(said[0]["reason"], "checkpoint_expired");
    let metrics: Vec<Value> = records(&server, "metrics")
        .into_iter()
        .filter(|r| r.get("CatchUpFallbacks").is_some())
        .collect();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["CatchUpFallbacks"], 1);
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!(order.status, OrderStatus::Succeeded);

    let next = run_schedule(&server).await;
    assert_eq!(next["mode"], "catch_up", "{next}");
    assert_eq!(next["previousCheckpoint"], report["checkpoint"]);
    server.stop().await;
}

/// The first run ever has no checkpoint: it sweeps every member and sets the checkpoint to
/// the sweep's start; the run after it reads the Events list.
#[tokio::test]
async fn the_first_run_ever_sweeps_and_sets_the_checkpoint() {
    let server = lambda_server().await;
    for user in ["first-1", "first-2"] {
        let (_, customer) = server.linked_member(user).await;
        let pi = server.stripe.create_payment_intent(&customer, 900, "usd", &[]);
        server.stripe.succeed(&pi);
    }
    let started = Utc::now().timestamp();

    let report = run_schedule(&server).await;

    assert_eq!(report["mode"], "sweep", "{report}");
    assert_eq!(report["fallback"], "no_checkpoint");
    assert_eq!(report["previousCheckpoint"], Value::Null);
    assert_eq!(report["members"], 2);
    assert_eq!(report["totals"]["created"], 2);
    let checkpoint = count(&report["checkpoint"]) as i64;
    assert!((started..=Utc::now().timestamp()).contains(&checkpoint), "{report}");
    let said = records(&server, "catch-up fell back to the sweep");
    assert_eq!(said.len(), 1);
    assert_eq!(said[0]["reason"], "no_checkpoint");

    server.stripe.reset_request_count();
    let next = run_schedule(&server).await;
    assert_eq!(next["mode"], "catch_up", "{next}");
    assert_eq!(next["previousCheckpoint"], checkpoint);
    assert_eq!(server.stripe.requests_by_path().get(EVENTS_LIST).copied(), Some(1));
    server.stop().await;
}

/// A run Stripe fails (past the retries) answers 503 `reconcile_failed`, so the schedule
/// retries it, and leaves the checkpoint where it was: the retry, once Stripe answers again,
/// applies everything.
#[tokio::test]
async fn a_run_that_stripe_fails_is_retried_and_loses_nothing() {
    let server = lambda_server().await;
    let (client, customer) = server.linked_member("outage").await;
    let now = Utc::now().timestamp();
    put_checkpoint(&server, now - 3_600).await;
    server.stripe.set_clock(now - 600);
    let events = undelivered_orders(&server, &customer, 2);
    server.stripe.inject(Faults { server_errors: 1_000, ..Default::default() });

    let (status, body) = schedule(&server).await;

    assert_eq!((status, body["error_code"].as_str()), (503, Some("reconcile_failed")), "{body}");
    server.stripe.inject(Faults::default());
    let retry = run_schedule(&server).await;
    assert_eq!(retry["previousCheckpoint"], now - 3_600, "the failed run kept the checkpoint");
    assert_eq!(count(&retry["applied"]), events as u64);
    let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert_eq!(page.items.len(), 2);
    server.stop().await;
}

/// A webhook event deferred to the worker whose message never arrives (a lost batch, the
/// dead-letter queue) stays pending in the ledger, and the next catch-up applies it: the
/// ledger lets pending events through.
#[tokio::test]
async fn an_event_deferred_and_never_applied_is_applied_by_the_next_catch_up() {
    let sqs = dashboard_tests::aws::AwsStandIn::sqs().await;
    // nextest runs each test in its own process, so these settings touch no other test.
    std::env::set_var("AWS_ENDPOINT_URL_SQS", &sqs.url);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let server = TestServer::start_with(Options {
        refresh_queue_url: Some(format!("{}/123456789012/dashboard-refresh", sqs.url)),
        lambda_events: true,
        ..Default::default()
    })
    .await;
    let (client, customer, _) = member_behind_checkpoint(&server, "lost-message").await;
    let pi =
        server.stripe.create_payment_intent(&customer, 700, "usd", &[ItemSpec::new("Pin", 1, 700)]);
    server.stripe.succeed(&pi);
    let event = server.stripe.events().into_iter().find(|e| e["type"] == "charge.succeeded");
    let event_id = event.unwrap()["id"].as_str().unwrap().to_string();
    server.stripe.inject(Faults { server_errors: u32::MAX, ..Default::default() });
    let delivery = server.stripe.deliver(&event_id).await;
    assert_eq!((delivery.status, delivery.outcome()), (200, "queued"), "{delivery:?}");
    assert_eq!(sqs.calls().len(), 1, "sent to the worker, which never receives it");
    server.stripe.inject(Faults::default());

    let report = run_schedule(&server).await;

    assert_eq!(report["mode"], "catch_up", "{report}");
    // The pending event is applied, not dropped as already seen.
    assert_eq!(count(&report["duplicates"]), 0, "{report}");
    assert_eq!(count(&report["applied"]), count(&report["events"]), "{report}");
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!(order.status, OrderStatus::Succeeded);
    let again = server.stripe.deliver(&event_id).await;
    assert_eq!((again.status, again.outcome()), (200, "duplicate"));
    server.stop().await;
}
