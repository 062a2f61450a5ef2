//! Non-HTTP work through the Lambda Web Adapter's pass-through path (`POST /events`): SQS
//! refresh batches (failed records reported, not dropped) and the daily schedule; and that the
//! path exists only under Lambda, and there only for the adapter's events. The path is outside
//! the API contract, so it is driven through the generated client's HTTP stack.

use dashboard_client::ClientInfo;
use dashboard_tests::aws::AwsStandIn;
use dashboard_tests::{Options, TestServer};
use serde_json::{json, Value};
use stripe_sim::ItemSpec;

/// A server as under Lambda (`DASHBOARD_LAMBDA_EVENTS=true`): `/events` is registered.
async fn lambda_server() -> TestServer {
    TestServer::start_with(Options { lambda_events: true, ..Default::default() }).await
}

async fn post(server: &TestServer, body: &Value, request_context: Option<&str>) -> (u16, Value) {
    post_to(server, "/events", body, request_context).await
}

async fn post_to(
    server: &TestServer,
    path: &str,
    body: &Value,
    request_context: Option<&str>,
) -> (u16, Value) {
    let client = server.client_with_headers(Default::default());
    let mut request = client.client().post(format!("{}{path}", client.baseurl())).json(body);
    if let Some(context) = request_context {
        request = request.header("x-amzn-request-context", context);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_sqs_batch_reports_only_its_failed_records() {
    let server = lambda_server().await;
    let (client, customer) = server.linked_member("queued").await;
    let pi =
        server.stripe.create_payment_intent(&customer, 900, "usd", &[ItemSpec::new("Pin", 1, 900)]);
    server.stripe.succeed(&pi);
    let batch = json!({ "Records": [
        { "messageId": "m-1", "eventSource": "aws:sqs", "body": "{\"userId\":\"queued\"}" },
        { "messageId": "m-2", "eventSource": "aws:sqs", "body": "not json" },
        { "messageId": "m-3", "eventSource": "aws:sqs", "body": "{\"userId\":\"\"}" },
    ]});
    // The adapter marks non-HTTP events with a null request context.
    let (status, body) = post(&server, &batch, Some("null")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "batchItemFailures": [{ "itemIdentifier": "m-2" }, { "itemIdentifier": "m-3" }] })
    );
    let orders = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert_eq!(orders.items.len(), 1, "the good record refreshed the member");
    server.stop().await;
}

#[tokio::test]
async fn the_schedule_reconciles_every_linked_member() {
    let server = lambda_server().await;
    for user in ["s1", "s2"] {
        let (_, customer) = server.linked_member(user).await;
        let pi = server.stripe.create_payment_intent(
            &customer,
            900,
            "usd",
            &[ItemSpec::new("Pin", 1, 900)],
        );
        server.stripe.succeed(&pi);
    }
    let event =
        json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {} });
    let (status, report) = post(&server, &event, Some("null")).await;
    assert_eq!(status, 200);
    assert_eq!(report["members"], 2);
    assert_eq!(report["totals"]["created"], 2);
    server.stop().await;
}

/// The 404 of a path the server does not have, for comparison: the events path must be
/// indistinguishable from it wherever it is refused.
async fn unknown_path(server: &TestServer, body: &Value) -> (u16, Value) {
    post_to(server, "/no-such-path", body, None).await
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().map(|o| o.remove("request_id"));
    body
}

/// Under Lambda only the adapter's events pass: the header present and exactly `null`.
/// Anything else (no header, an API Gateway request context, any other value) is the same 404
/// as an unknown path, so the route cannot be found from outside.
#[tokio::test]
async fn under_lambda_only_the_adapters_null_request_context_reaches_the_events_path() {
    let server = lambda_server().await;
    let event = json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event" });
    let (_, not_found) = unknown_path(&server, &event).await;
    let api_gateway = r#"{"requestId":"abc","http":{"method":"POST"}}"#;
    for context in [None, Some(api_gateway), Some(""), Some("NULL"), Some("\"null\""), Some("{}")] {
        let (status, body) = post(&server, &event, context).await;
        assert_eq!(status, 404, "request context {context:?}");
        assert_eq!(without_request_id(body), without_request_id(not_found.clone()), "{context:?}");
    }
    let (status, body) = post(&server, &json!({ "hello": "world" }), Some("null")).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("unknown_event")));
    server.stop().await;
}

/// Outside Lambda (a container, a VM, the local default) there is no events path at all: with
/// or without the adapter's header, a schedule event is an unknown path and runs nothing.
#[tokio::test]
async fn outside_lambda_the_events_path_does_not_exist() {
    let server = TestServer::start().await;
    let (_, customer) = server.linked_member("not-synced").await;
    let pi =
        server.stripe.create_payment_intent(&customer, 900, "usd", &[ItemSpec::new("Pin", 1, 900)]);
    server.stripe.succeed(&pi);
    server.stripe.reset_request_count();
    let event = json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event" });
    let (_, not_found) = unknown_path(&server, &event).await;
    assert_eq!(not_found["error_code"], Value::Null, "Dropshot's own unknown-path body");
    for context in [None, Some("null")] {
        let (status, body) = post(&server, &event, context).await;
        assert_eq!(status, 404, "request context {context:?}");
        assert_eq!(without_request_id(body), without_request_id(not_found.clone()), "{context:?}");
    }
    let batch = json!({ "Records": [
        { "messageId": "m-1", "eventSource": "aws:sqs", "body": "{\"userId\":\"not-synced\"}" },
    ]});
    let (status, _) = post(&server, &batch, Some("null")).await;
    assert_eq!(status, 404);
    assert_eq!(server.stripe.request_count(), 0, "nothing reached Stripe");
    server.stop().await;
}

/// On Lambda a stale listing queues its refresh; the worker then runs it from the SQS batch.
#[tokio::test]
async fn stale_listings_queue_their_refresh_and_the_worker_runs_it() {
    let sqs = AwsStandIn::sqs().await;
    let sqs_url = sqs.url.clone();
    // nextest runs each test in its own process, so these settings touch no other test.
    std::env::set_var("AWS_ENDPOINT_URL_SQS", &sqs_url);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let queue_url = format!("{sqs_url}/123456789012/dashboard-refresh");
    let server = TestServer::start_with(dashboard_tests::Options {
        stale_after: Some(std::time::Duration::ZERO),
        refresh_queue_url: Some(queue_url.clone()),
        lambda_events: true,
        ..Default::default()
    })
    .await;
    let (client, customer) = server.linked_member("lambda-member").await;
    let pi =
        server.stripe.create_payment_intent(&customer, 900, "usd", &[ItemSpec::new("Pin", 1, 900)]);
    server.stripe.succeed(&pi);

    let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert!(page.stale && page.refreshing && page.items.is_empty());
    let sent = sqs.calls();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].target, "AmazonSQS.SendMessage");
    assert_eq!(sent[0].request["QueueUrl"], queue_url.as_str());
    let body = sent[0].request["MessageBody"].as_str().unwrap().to_string();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({ "userId": "lambda-member" }));
    // Nothing ran in process.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(client.get_sync_status().await.unwrap().into_inner().last_reconcile.is_none());

    // The worker receives the message as an SQS batch on the pass-through path.
    let batch =
        json!({ "Records": [{ "messageId": "m-1", "eventSource": "aws:sqs", "body": body }] });
    let (status, answer) = post(&server, &batch, Some("null")).await;
    assert_eq!((status, answer), (200, json!({ "batchItemFailures": [] })));
    let page = client.list_orders(None, None, None, None, None).await.unwrap().into_inner();
    assert_eq!(page.items.len(), 1);
    server.stop().await;
}

/// On Lambda a webhook that cannot be applied now (Stripe is down) is stored, acknowledged as
/// `queued` and sent to the worker, which applies it from the ledger once Stripe answers.
#[tokio::test]
async fn a_deferred_webhook_event_reaches_the_worker_through_the_queue() {
    let sqs = AwsStandIn::sqs().await;
    // nextest runs each test in its own process, so these settings touch no other test.
    std::env::set_var("AWS_ENDPOINT_URL_SQS", &sqs.url);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let queue_url = format!("{}/123456789012/dashboard-refresh", sqs.url);
    let server = TestServer::start_with(Options {
        refresh_queue_url: Some(queue_url.clone()),
        lambda_events: true,
        ..Default::default()
    })
    .await;
    let (client, customer) = server.linked_member("deferred").await;
    let pi =
        server.stripe.create_payment_intent(&customer, 900, "usd", &[ItemSpec::new("Pin", 1, 900)]);
    server.stripe.succeed(&pi);
    // A charge as the first sighting of its order needs Stripe, which is down.
    let event = server.stripe.events().into_iter().find(|e| e["type"] == "charge.succeeded");
    let event_id = event.unwrap()["id"].as_str().unwrap().to_string();
    server.stripe.inject(stripe_sim::Faults { server_errors: u32::MAX, ..Default::default() });
    let delivery = server.stripe.deliver(&event_id).await;
    assert_eq!((delivery.status, delivery.outcome()), (200, "queued"), "{delivery:?}");
    let sent = sqs.calls();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].request["QueueUrl"], queue_url.as_str());
    let body = sent[0].request["MessageBody"].as_str().unwrap().to_string();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({ "eventId": event_id }));
    // Nothing was applied in process.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(client.get_sync_status().await.unwrap().into_inner().last_webhook.is_none());

    // The worker's batch while Stripe is still down: the record fails and SQS keeps it.
    let batch =
        json!({ "Records": [{ "messageId": "m-1", "eventSource": "aws:sqs", "body": body }] });
    let (status, answer) = post(&server, &batch, Some("null")).await;
    assert_eq!(
        (status, answer),
        (200, json!({ "batchItemFailures": [{ "itemIdentifier": "m-1" }] }))
    );
    // Stripe is back: the redelivered record applies the event, once.
    server.stripe.inject(stripe_sim::Faults::default());
    let (status, answer) = post(&server, &batch, Some("null")).await;
    assert_eq!((status, answer), (200, json!({ "batchItemFailures": [] })));
    let order = client.get_order(&pi).await.unwrap().into_inner();
    assert_eq!(order.status, dashboard_client::types::OrderStatus::Succeeded);
    let again = server.stripe.deliver(&event_id).await;
    assert_eq!((again.status, again.outcome()), (200, "duplicate"));
    server.stop().await;
}
