//! Stand-ins for the AWS JSON-protocol services the server calls besides DynamoDB (SQS and
//! Secrets Manager) on 127.0.0.1. Each records the requests it saw; the SDK reaches them
//! through the standard `AWS_ENDPOINT_URL_<SERVICE>` variables.

use axum::http::HeaderMap;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// One request an AWS stand-in received: its `X-Amz-Target` and JSON body.
#[derive(Debug, Clone)]
pub struct AwsCall {
    pub target: String,
    pub request: Value,
}

/// A running stand-in: its URL and what it was asked.
pub struct AwsStandIn {
    pub url: String,
    calls: Arc<Mutex<Vec<AwsCall>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AwsStandIn {
    /// Serves `answer(call)` with `content_type` for every POST on `/`.
    async fn start(
        content_type: &'static str,
        answer: impl Fn(&AwsCall) -> Value + Clone + Send + Sync + 'static,
    ) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let target =
                        headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
                    let call = AwsCall {
                        target: target.to_string(),
                        request: serde_json::from_str(&body).unwrap_or(Value::Null),
                    };
                    let response = answer(&call);
                    log.lock().unwrap().push(call);
                    ([("content-type", content_type)], response.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        AwsStandIn { url, calls, task }
    }

    /// SQS (AWS JSON 1.0): accepts every SendMessage, answering the body's MD5 as SQS does
    /// (the SDK checks it).
    pub async fn sqs() -> Self {
        Self::start("application/x-amz-json-1.0", |call| {
            let body = call.request["MessageBody"].as_str().unwrap_or_default();
            let digest = format!("{:x}", md5::compute(body.as_bytes()));
            json!({ "MessageId": uuid::Uuid::new_v4().to_string(), "MD5OfMessageBody": digest })
        })
        .await
    }

    /// Secrets Manager (AWS JSON 1.1): GetSecretValue answers `secret` under `arn`.
    pub async fn secrets_manager(arn: &str, secret: Value) -> Self {
        let (arn, secret) = (arn.to_string(), secret.to_string());
        Self::start(
            "application/x-amz-json-1.1",
            move |_| json!({ "ARN": arn, "Name": "dashboard", "SecretString": secret }),
        )
        .await
    }

    pub fn calls(&self) -> Vec<AwsCall> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for AwsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
