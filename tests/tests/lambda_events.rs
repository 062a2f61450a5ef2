//! Non-HTTP work through the Lambda Web Adapter's pass-through path (`POST /events`): SQS
//! refresh batches (failed records reported, not dropped) and the daily schedule. The path is
//! outside the API contract, so it is driven through the generated client's HTTP stack.

use dashboard_client::ClientInfo;
use dashboard_tests::aws::AwsStandIn;
use dashboard_tests::TestServer;
use serde_json::{json, Value};
use stripe_sim::ItemSpec;

async fn post(server: &TestServer, body: &Value, request_context: Option<&str>) -> (u16, Value) {
    let client = server.client_with_headers(Default::default());
    let mut request = client.client().post(format!("{}/events", client.baseurl())).json(body);
    if let Some(context) = request_context {
        request = request.header("x-amzn-request-context", context);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_sqs_batch_reports_only_its_failed_records() {
    let server = TestServer::start().await;
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
    let server = TestServer::start().await;
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
    let (status, report) = post(&server, &event, None).await;
    assert_eq!(status, 200);
    assert_eq!(report["members"], 2);
    assert_eq!(report["totals"]["created"], 2);
    server.stop().await;
}

#[tokio::test]
async fn http_requests_cannot_reach_the_events_path() {
    let server = TestServer::start().await;
    let event = json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event" });
    let context = r#"{"requestId":"abc","http":{"method":"POST"}}"#;
    let (status, _) = post(&server, &event, Some(context)).await;
    assert_eq!(status, 404, "a request from API Gateway carries a request context");
    let (status, body) = post(&server, &json!({ "hello": "world" }), None).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("unknown_event")));
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
