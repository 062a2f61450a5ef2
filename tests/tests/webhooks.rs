//! Stripe webhooks: signatures, duplicates, disorder, ties and failures, with the simulator
//! sending events exactly as Stripe signs them.

use dashboard_client::types::OrderStatus;
use dashboard_tests::{expect_error, Options, TestServer, TestStore, WEBHOOK_SECRET};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use stripe_sim::{Faults, ItemSpec};

fn items() -> Vec<ItemSpec> {
    vec![ItemSpec::new("Babes Club Tee", 1, 3000)]
}

fn event_ids(server: &TestServer) -> Vec<String> {
    server.stripe.events().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn bad_signatures_are_400_and_write_nothing() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("signed").await;
    let pi = server.stripe.create_payment_intent(&customer, 3000, "usd", &items());
    server.stripe.succeed(&pi);
    let event = server
        .stripe
        .events()
        .into_iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .unwrap();
    let body = serde_json::to_string(&event).unwrap();
    let (url, _) = server.stripe.webhook_endpoint().unwrap();
    let now = chrono::Utc::now().timestamp();
    let tampered = body.replace("\"amount\":3000", "\"amount\":1");
    assert_ne!(tampered, body);
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("missing header", body.clone(), None),
        ("empty header", body.clone(), Some(String::new())),
        ("garbage header", body.clone(), Some("nonsense".into())),
        (
            "wrong secret",
            body.clone(),
            Some(stripe_sim::signature_header("whsec_wrong", now, &body)),
        ),
        (
            "stale: 301 s old",
            body.clone(),
            Some(stripe_sim::signature_header(WEBHOOK_SECRET, now - 301, &body)),
        ),
        (
            "future: 301 s ahead",
            body.clone(),
            Some(stripe_sim::signature_header(WEBHOOK_SECRET, now + 301, &body)),
        ),
        (
            "tampered body",
            tampered.clone(),
            Some(stripe_sim::signature_header(WEBHOOK_SECRET, now, &body)),
        ),
        (
            "signature of another body",
            body.clone(),
            Some(stripe_sim::signature_header(WEBHOOK_SECRET, now, &tampered)),
        ),
    ];
    for (name, payload, signature) in cases {
        let delivery = server.stripe.post_raw(&url, payload, signature).await;
        assert_eq!(delivery.status, 400, "{name}: {:?}", delivery.body);
        assert_eq!(delivery.body["error_code"], "invalid_signature", "{name}");
    }
    let (status, _) = expect_error(client.get_order(&format!("{pi}x")).await);
    assert_eq!(status, 404);
    let status = client.get_sync_status().await.unwrap().into_inner();
    assert!(status.last_webhook.is_none(), "nothing was applied");
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 0);

    // Within tolerance, the same event is accepted.
    let ok = server.stripe.post_webhook(body, now - 299).await;
    assert_eq!((ok.status, ok.outcome()), (200, "applied"));
    server.stop().await;
}

#[tokio::test]
async fn each_event_delivered_ten_times_has_one_effect() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("dup").await;
    let pi = server.stripe.create_payment_intent(&customer, 3000, "usd", &items());
    server.stripe.succeed(&pi);
    server.stripe.refund(&pi, 1000);
    let ids = event_ids(&server);
    let mut outcomes = Vec::new();
    for id in &ids {
        for _ in 0..10 {
            let delivery = server.stripe.deliver(id).await;
            assert_eq!(delivery.status, 200);
            outcomes.push((id.clone(), delivery.outcome().to_string()));
        }
    }
    for id in &ids {
        let mine: Vec<&str> =
            outcomes.iter().filter(|(e, _)| e == id).map(|(_, o)| o.as_str()).collect();
        if mine.iter().all(|o| *o == "ignored") {
            continue; // a type that changes no order (customer.created)
        }
        assert_eq!(mine[0], "applied", "{id}: {mine:?}");
        assert!(mine[1..].iter().all(|o| *o == "duplicate"), "{id}: {mine:?}");
    }
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!(order.status, OrderStatus::PartiallyRefunded);
    assert_eq!(order.refunds.len(), 1);
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 1);
    let status = client.get_sync_status().await.unwrap().into_inner();
    assert!(status.last_webhook.is_some());
    server.stop().await;
}

/// Applying an order's events costs one store call each (the transaction that writes the
/// order with its ledger record), plus one read for the first event of a customer this
/// process has not seen (the member it belongs to); the order's first event is written on
/// condition that no order exists, without reading it first. A redelivery to the process
/// that applied the event costs no store call.
#[tokio::test]
async fn an_orders_events_cost_one_store_call_each_and_a_redelivery_none() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("frugal").await;
    let before = server.stripe.events().len();
    let pi = server.stripe.create_payment_intent(&customer, 2500, "usd", &items());
    server.stripe.succeed(&pi);
    let events: Vec<Value> = server.stripe.events()[before..].to_vec();
    // Requests that carried a `ClientRequestToken` are counted too: none should (the
    // transaction is idempotent by its ledger condition).
    let operations =
        ["GetItem", "Query", "TransactWriteItems", "PutItem", "UpdateItem", "ClientRequestToken"];
    let calls = || operations.map(|operation| server.store_calls(operation));
    let counted = |was: [u64; 6]| -> Vec<(&str, u64)> {
        let now = calls();
        operations.iter().zip(0..).map(|(o, i)| (*o, now[i] - was[i])).filter(|c| c.1 > 0).collect()
    };
    for (n, event) in events.iter().enumerate() {
        let was = calls();
        let delivery = server.stripe.deliver(event["id"].as_str().unwrap()).await;
        assert_eq!((delivery.status, delivery.outcome()), (200, "applied"), "{}", event["type"]);
        let expected = match n {
            0 => vec![("GetItem", 1), ("TransactWriteItems", 1)],
            _ => vec![("TransactWriteItems", 1)],
        };
        assert_eq!(counted(was), expected, "{}", event["type"]);
    }
    let was = calls();
    for event in &events {
        let delivery = server.stripe.deliver(event["id"].as_str().unwrap()).await;
        assert_eq!((delivery.status, delivery.outcome()), (200, "duplicate"));
    }
    assert_eq!(counted(was), vec![]);
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!((order.status, order.amount), (OrderStatus::Succeeded, 2500));
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 1);
    server.stop().await;
}

/// A linked member's order, paid, then cached by a reconcile; the events Stripe sent about it.
async fn an_order_a_reconcile_cached(
    server: &TestServer,
    user: &str,
    amount: i64,
) -> (dashboard_client::Client, String, Vec<Value>) {
    let (client, customer) = server.linked_member(user).await;
    let before = server.stripe.events().len();
    let pi = server.stripe.create_payment_intent(&customer, amount, "usd", &items());
    server.stripe.succeed(&pi);
    let body = dashboard_client::types::SyncRequest { user_id: user.parse().unwrap() };
    let report = server.admin().post_sync_member(&body).await.unwrap().into_inner();
    assert_eq!(report.created, 1);
    (client, pi, server.stripe.events()[before..].to_vec())
}

/// Delivers the first event of `event_type` among `events`, expecting it applied; returns
/// the GetItem, TransactWriteItems and PutItem calls it made, and its id.
async fn deliver_counting(
    server: &TestServer,
    events: &[Value],
    event_type: &str,
) -> ([u64; 3], String) {
    let event = events.iter().find(|e| e["type"] == event_type).unwrap();
    let calls = || ["GetItem", "TransactWriteItems", "PutItem"].map(|o| server.store_calls(o));
    let was = calls();
    let delivery = server.stripe.deliver(event["id"].as_str().unwrap()).await;
    assert_eq!((delivery.status, delivery.outcome()), (200, "applied"), "{event_type}");
    let now = calls();
    ([0, 1, 2].map(|i| now[i] - was[i]), event["id"].as_str().unwrap().to_string())
}

/// The first event's insert without a read is refused when a reconcile cached the order
/// first: the order is read then and planned against, once, and counted once.
#[tokio::test]
async fn a_first_event_of_an_order_a_reconcile_cached_reads_it_after_the_refused_insert() {
    let server = TestServer::start().await;
    let (client, pi, events) = an_order_a_reconcile_cached(&server, "early-sync", 1800).await;
    // The claim and, after the refused insert, the order; the refused insert; and, as the
    // reconcile's snapshot already says all the event does, the ledger's record alone.
    let (calls, _) = deliver_counting(&server, &events, "payment_intent.created").await;
    assert_eq!(calls, [2, 1, 1]);
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!((order.status, order.amount), (OrderStatus::Succeeded, 1800));
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 1);
    server.stop().await;
}

/// An event that says nothing the cached order does not (here, after a reconcile cached it)
/// is recorded in the ledger alone: one conditional PutItem, no transaction, and the member's
/// `lastWebhook` stays as it was (it names the last event that changed an order).
#[tokio::test]
async fn an_event_that_changes_nothing_costs_one_ledger_write_and_moves_no_sync_status() {
    let server = TestServer::start().await;
    let (client, pi, events) = an_order_a_reconcile_cached(&server, "settled", 2100).await;
    // A charge event (an intent's, with items, would first try to insert the order unread):
    // the claim and the order (first sighting in this process), then the ledger's record.
    let (calls, id) = deliver_counting(&server, &events, "charge.succeeded").await;
    assert_eq!(calls, [2, 0, 1]);
    let status = client.get_sync_status().await.unwrap().into_inner();
    assert!(status.last_webhook.is_none(), "no event changed the order: {status:?}");
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!((order.status, order.amount), (OrderStatus::Succeeded, 2100));
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 1);
    // The ledger has it: a redelivery is a duplicate.
    let again = server.stripe.deliver(&id).await;
    assert_eq!((again.status, again.outcome()), (200, "duplicate"));
    server.stop().await;
}

/// The ledger answers for events settled without an effect too: an event about a customer
/// nobody holds, delivered again to another instance (whose process remembers nothing of
/// it), is a duplicate there.
#[tokio::test]
async fn an_unlinked_event_redelivered_to_another_instance_is_a_duplicate() {
    let store = TestStore::persistent().await;
    let options = Options { store: Some(store), ..Default::default() };
    let first = TestServer::start_with(options.clone()).await;
    let second = TestServer::start_with(options).await;
    let stranger = first.stripe.create_customer("nobody@example.com");
    let pi = first.stripe.create_payment_intent(&stranger, 700, "usd", &items());
    first.stripe.succeed(&pi);
    let events: Vec<Value> =
        first.stripe.events().into_iter().filter(|e| e["type"] != "customer.created").collect();
    assert!(!events.is_empty());
    for event in &events {
        let delivery = first.stripe.deliver(event["id"].as_str().unwrap()).await;
        assert_eq!((delivery.status, delivery.outcome()), (200, "unlinked"), "{}", event["type"]);
        let now = chrono::Utc::now().timestamp();
        let again = second.stripe.post_webhook(event.to_string(), now).await;
        assert_eq!((again.status, again.outcome()), (200, "duplicate"), "{}", event["type"]);
    }
    first.stop().await;
    second.stop().await;
}

/// What Stripe says an order is, from the simulator's final objects, with its charge count.
fn truth(server: &TestServer, pi: &str) -> (OrderStatus, i64, usize) {
    let (status, refunded) = dashboard_tests::stripe_order_state(&server.stripe, pi);
    let charges = server
        .stripe
        .events()
        .iter()
        .filter(|e| e["type"] == "charge.succeeded" || e["type"] == "charge.failed")
        .filter(|e| e["data"]["object"]["payment_intent"] == pi)
        .count();
    (status, refunded, charges)
}

#[tokio::test]
async fn shuffled_duplicated_events_converge_on_stripes_state() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("chaos").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut intents = Vec::new();
    let mut delivered = 0usize;
    // Ten rounds of changes at Stripe; after each, a shuffled batch of old and new events
    // (with repeats) is delivered, so events arrive late, early, twice and out of order.
    for round in 0..11 {
        if round < 10 {
            for _ in 0..5 {
                intents.push(server.stripe.create_payment_intent(&customer, 5000, "usd", &items()));
            }
        }
        for (i, pi) in intents.iter().enumerate() {
            match (round + i) % 7 {
                0 | 1 if round < 8 => {
                    let state = server.stripe.object(pi).unwrap();
                    if state["status"] == "requires_payment_method"
                        && state["last_payment_error"].is_null()
                    {
                        server.stripe.succeed(pi);
                    }
                }
                2 => {
                    let state = server.stripe.object(pi).unwrap();
                    if state["status"] == "requires_payment_method" {
                        server.stripe.fail(pi);
                    }
                }
                3 => {
                    let state = server.stripe.object(pi).unwrap();
                    let charge =
                        state["latest_charge"].as_str().and_then(|c| server.stripe.object(c));
                    if state["status"] == "succeeded"
                        && charge.is_some_and(|c| c["amount_refunded"].as_i64() < Some(5000))
                    {
                        server.stripe.refund(pi, 1000);
                    }
                }
                4 if round == 6 && server.stripe.object(pi).unwrap()["status"] == "succeeded" => {
                    server.stripe.dispute(pi);
                }
                _ => {}
            }
            // Stripe-side updates that change nothing an order shows (`charge.updated`).
            if server.stripe.object(pi).unwrap()["status"] == "succeeded" {
                server.stripe.touch_charge(pi, &format!("round {round}"));
                server.stripe.touch_charge(pi, &format!("round {round} again"));
            }
        }
        let mut batch = event_ids(&server);
        batch.shuffle(&mut rng);
        batch.truncate(batch.len() * 2 / 3);
        let repeats: Vec<String> =
            (0..batch.len() / 5).map(|_| batch[rng.gen_range(0..batch.len())].clone()).collect();
        batch.extend(repeats);
        batch.shuffle(&mut rng);
        for id in &batch {
            assert_eq!(server.stripe.deliver(id).await.status, 200);
            delivered += 1;
        }
    }
    // Finally every event at least once, in reverse order.
    let mut all = event_ids(&server);
    all.reverse();
    for id in &all {
        assert_eq!(server.stripe.deliver(id).await.status, 200);
        delivered += 1;
    }
    assert!(all.len() >= 500, "events: {}", all.len());
    assert!(delivered >= 500, "deliveries: {delivered}");
    assert_eq!(intents.len(), 50);
    for pi in &intents {
        let order = client.get_order(pi).await.unwrap().into_inner();
        let (status, refunded, charges) = truth(&server, pi);
        assert_eq!(order.status, status, "{pi}");
        assert_eq!(order.amount_refunded, refunded, "{pi}");
        assert_eq!(order.charges.len(), charges, "{pi}");
    }
    assert_eq!(client.get_profile().await.unwrap().into_inner().total_orders, 50);
    // A reconcile afterwards finds nothing to repair.
    let report = server
        .admin()
        .post_sync_member(&dashboard_client::types::SyncRequest {
            user_id: "chaos".parse().unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((report.created, report.updated, report.unchanged), (0, 0, 50));
    server.stop().await;
}

#[tokio::test]
async fn same_second_events_delivered_newest_first_keep_the_final_state() {
    let server = TestServer::start().await;
    let (client, customer) = server.linked_member("ties").await;
    // Everything in one simulated second.
    let pi = server.stripe.create_payment_intent(&customer, 3000, "usd", &items());
    server.stripe.succeed(&pi);
    server.stripe.refund(&pi, 1000);
    server.stripe.refund(&pi, 2000);
    let events = server.stripe.events();
    let created: Vec<i64> = events.iter().map(|e| e["created"].as_i64().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] == w[1]), "all events share a second");
    for id in event_ids(&server).iter().rev() {
        assert_eq!(server.stripe.deliver(id).await.status, 200);
    }
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!(order.status, OrderStatus::Refunded);
    assert_eq!(order.refunds.len(), 2);
    // A late "succeeded" event (older state) cannot move it back.
    let succeeded = events.iter().find(|e| e["type"] == "payment_intent.succeeded").unwrap();
    let late = server
        .stripe
        .post_webhook(serde_json::to_string(succeeded).unwrap(), chrono::Utc::now().timestamp())
        .await;
    assert_eq!(late.status, 200);
    assert_eq!(client.get_order(&pi).await.unwrap().into_inner().status, OrderStatus::Refunded);
    server.stop().await;
}

#[tokio::test]
async fn unknown_types_and_unlinked_customers_are_acknowledged() {
    let server = TestServer::start().await;
    let stranger = server.stripe.create_customer("stranger@example.com");
    let pi = server.stripe.create_payment_intent(&stranger, 100, "usd", &items());
    server.stripe.succeed(&pi);
    for event in server.stripe.events() {
        let delivery = server.stripe.deliver(event["id"].as_str().unwrap()).await;
        assert_eq!(delivery.status, 200);
        let expected = if event["type"] == "customer.created" { "ignored" } else { "unlinked" };
        assert_eq!(delivery.outcome(), expected, "{}", event["type"]);
    }
    let mut unknown: Value = server.stripe.events()[0].clone();
    unknown["type"] = "invoice.finalized".into();
    unknown["id"] = "evt_unknown_type".into();
    let delivery =
        server.stripe.post_webhook(unknown.to_string(), chrono::Utc::now().timestamp()).await;
    assert_eq!((delivery.status, delivery.outcome()), (200, "ignored"));
    server.stop().await;
}

#[tokio::test]
async fn nothing_is_acknowledged_that_was_not_stored_and_a_stripe_outage_only_defers() {
    let mut server = TestServer::start().await;
    let (client, customer) = server.linked_member("fragile").await;
    let pi = server.stripe.create_payment_intent(&customer, 3000, "usd", &items());
    server.stripe.succeed(&pi);
    // A charge event as the first sighting of its order: the charge alone cannot describe the
    // order, so the server must ask Stripe.
    let event =
        server.stripe.events().into_iter().find(|e| e["type"] == "charge.succeeded").unwrap();
    let id = event["id"].as_str().unwrap().to_string();

    // Stripe keeps failing: the event is stored, acknowledged as queued and applied once
    // Stripe answers again (issue 12, target 2; `tests/tests/ledger.rs` has the burst).
    server.stripe.inject(Faults { server_errors: u32::MAX, ..Default::default() });
    let delivery = server.stripe.deliver(&id).await;
    assert_eq!((delivery.status, delivery.outcome()), (200, "queued"), "{delivery:?}");
    server.stripe.inject(Faults::default());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let order = loop {
        match client.get_order(&pi).await {
            Ok(order) if order.status == OrderStatus::Succeeded => break order.into_inner(),
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            other => panic!("the deferred event was never applied: {other:?}"),
        }
    };
    assert_eq!(order.amount, 3000);
    // The ledger's done record follows the order's write: a redelivery in between is applied
    // again (with no effect), and after it is a duplicate.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let retry = server.stripe.deliver(&id).await;
        assert_eq!(retry.status, 200);
        if retry.outcome() == "duplicate" {
            break;
        }
        assert_eq!(retry.outcome(), "applied");
        assert!(std::time::Instant::now() < deadline, "the ledger never recorded the event");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The store is gone: 503 as well.
    server.stripe.refund(&pi, 100);
    let refund_event = event_ids(&server).pop().unwrap();
    if !server.stop_store().await {
        return;
    }
    let delivery = server.stripe.deliver(&refund_event).await;
    assert_eq!(delivery.status, 503);
    server.stop().await;
}
