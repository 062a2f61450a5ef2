//! A minimal Lambda Runtime API on 127.0.0.1 (the parts the Lambda Web Adapter uses): the
//! extension registration, `invocation/next` long-polls fed from [`LambdaRuntime::invoke`], and
//! the `response` / `error` posts that answer them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How the function answered one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Posted to `/invocation/{id}/response`.
    Response(Value),
    /// Posted to `/invocation/{id}/error` (Lambda would retry the event or send it to a DLQ).
    Error(Value),
}

struct Pending {
    id: String,
    trace_id: String,
    event: Value,
}

#[derive(Clone)]
struct Shared {
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    answers: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    extensions: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    init_errors: Arc<Mutex<Vec<Value>>>,
}

/// The runtime API; [`LambdaRuntime::address`] goes in `AWS_LAMBDA_RUNTIME_API`.
pub struct LambdaRuntime {
    pub address: String,
    sender: mpsc::UnboundedSender<Pending>,
    shared: Shared,
    next_id: AtomicUsize,
    task: tokio::task::JoinHandle<()>,
}

pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:dashboard-test";

impl LambdaRuntime {
    pub async fn start() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Shared {
            queue: Arc::new(tokio::sync::Mutex::new(receiver)),
            answers: Default::default(),
            extensions: Default::default(),
            polls: Default::default(),
            init_errors: Default::default(),
        };
        let app = axum::Router::new()
            .route("/2020-01-01/extension/register", post(register))
            .route("/2020-01-01/extension/event/next", get(extension_next))
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        LambdaRuntime { address, sender, shared, next_id: AtomicUsize::new(1), task }
    }

    /// Extensions registered so far (the adapter registers itself as one).
    pub fn extensions(&self) -> usize {
        self.shared.extensions.load(Ordering::SeqCst)
    }

    /// `invocation/next` calls so far: the adapter polls only once its app is ready.
    pub fn polls(&self) -> usize {
        self.shared.polls.load(Ordering::SeqCst)
    }

    pub fn init_errors(&self) -> Vec<Value> {
        self.shared.init_errors.lock().unwrap().clone()
    }

    /// Delivers `event` to the function with this X-Ray trace id and waits for its answer.
    pub async fn invoke_traced(&self, event: Value, trace_id: &str) -> Outcome {
        let id = format!("req-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = oneshot::channel();
        self.shared.answers.lock().unwrap().insert(id.clone(), tx);
        let pending = Pending { id, trace_id: trace_id.to_string(), event };
        assert!(self.sender.send(pending).is_ok(), "runtime API running");
        tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("the function answers within 60 s")
            .expect("answer delivered")
    }

    pub async fn invoke(&self, event: Value) -> Outcome {
        self.invoke_traced(event, &trace_id()).await
    }
}

/// A fresh X-Ray trace header: `Root=1-<epoch seconds>-<96 random bits>`.
pub fn trace_id() -> String {
    let epoch = chrono::Utc::now().timestamp();
    format!("Root=1-{epoch:08x}-{:024x};Sampled=1", rand::random::<u128>() >> 32)
}

impl Drop for LambdaRuntime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn register(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let name = headers.get("lambda-extension-name").and_then(|v| v.to_str().ok()).unwrap_or("");
    if name.is_empty() {
        return (StatusCode::BAD_REQUEST, "Lambda-Extension-Name is required").into_response();
    }
    let n = shared.extensions.fetch_add(1, Ordering::SeqCst) + 1;
    let body = serde_json::json!({
        "functionName": "dashboard-test",
        "functionVersion": "$LATEST",
        "handler": "bootstrap",
    });
    ([("lambda-extension-identifier", format!("ext-{n}"))], axum::Json(body)).into_response()
}

/// Extensions block here until the environment shuts down, which in a test is never.
async fn extension_next() -> Response {
    std::future::pending::<()>().await;
    StatusCode::OK.into_response()
}

async fn next(State(shared): State<Shared>) -> Response {
    shared.polls.fetch_add(1, Ordering::SeqCst);
    let Some(pending) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let headers = [
        ("lambda-runtime-aws-request-id", pending.id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", FUNCTION_ARN.to_string()),
        ("lambda-runtime-trace-id", pending.trace_id),
    ];
    (headers, axum::Json(pending.event)).into_response()
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    match shared.answers.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "status": "OK" })))
                .into_response()
        }
        None => (StatusCode::BAD_REQUEST, "unknown or already answered request id").into_response(),
    }
}

async fn respond(State(shared): State<Shared>, Path(id): Path<String>, body: String) -> Response {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    answer(&shared, &id, Outcome::Response(value))
}

async fn fail(State(shared): State<Shared>, Path(id): Path<String>, body: String) -> Response {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    answer(&shared, &id, Outcome::Error(value))
}

async fn init_error(State(shared): State<Shared>, body: String) -> Response {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    shared.init_errors.lock().unwrap().push(value);
    (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "status": "OK" }))).into_response()
}
