//! Non-HTTP work through the Lambda Web Adapter's pass-through path (`POST /events`): SQS
//! refresh batches (failed records reported, not dropped) and the daily schedule. The path is
//! outside the API contract, so it is driven through the generated client's HTTP stack.

use dashboard_client::ClientInfo;
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
