//! The binary reads its Stripe and page-token secrets from Secrets Manager when
//! `DASHBOARD_SECRETS_ARN` is set: checked against a local stand-in for the Secrets Manager API.

use axum::http::HeaderMap;
use dashboard_server::storage::embedded::EmbeddedStore;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::{Arc, Mutex};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dashboard-AbCdEf";

/// A Secrets Manager stand-in (AWS JSON 1.1 protocol) answering GetSecretValue with `secret`;
/// returns its URL and the requests it saw.
async fn secrets_manager(secret: String) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (log, secret) = (log.clone(), secret.clone());
            async move {
                let target =
                    headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
                let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                log.lock().unwrap().push(json!({ "target": target, "body": request }));
                let response = json!({ "ARN": ARN, "Name": "dashboard", "SecretString": secret });
                ([("content-type", "application/x-amz-json-1.1")], response.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn reconcile(secrets_url: &str, store_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dashboard-server"))
        .args(["reconcile", "--user-id", "nobody"])
        .env("DASHBOARD_SECRETS_ARN", ARN)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_url)
        .env("DASHBOARD_DYNAMODB_ENDPOINT", store_url)
        .env("DASHBOARD_JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef")
        .env("DASHBOARD_JWT_ISSUER", "https://issuer.test")
        .env("DASHBOARD_JWT_CLIENT_ID", "client")
        .env("STRIPE_API_BASE", "http://127.0.0.1:9/")
        .env("DASHBOARD_LOG_LEVEL", "error")
        .env_remove("STRIPE_SECRET_KEY")
        .env_remove("STRIPE_WEBHOOK_SECRET")
        .env_remove("DASHBOARD_CURSOR_KEY")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_come_from_secrets_manager() {
    let store = EmbeddedStore::start(None).await.unwrap();
    let secret = json!({
        "stripeSecretKey": "sk_test_from_secrets_manager",
        "stripeWebhookSecret": "whsec_from_secrets_manager",
        "cursorKey": "a-cursor-key-of-at-least-32-bytes!!",
    });
    let (url, seen) = secrets_manager(secret.to_string()).await;
    let endpoint = store.endpoint.clone();
    let output = tokio::task::spawn_blocking(move || reconcile(&url, &endpoint)).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["userId"], "nobody");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the secret is read once: {seen:?}");
    assert_eq!(seen[0]["target"], "secretsmanager.GetSecretValue");
    assert_eq!(seen[0]["body"]["SecretId"], ARN);
    assert!(!stderr.contains("sk_test_from_secrets_manager"), "secrets never reach the log");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incomplete_secret_stops_the_start_with_one_line() {
    let store = EmbeddedStore::start(None).await.unwrap();
    let (url, _) = secrets_manager(json!({ "stripeSecretKey": "sk_test_x" }).to_string()).await;
    let endpoint = store.endpoint.clone();
    let output = tokio::task::spawn_blocking(move || reconcile(&url, &endpoint)).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("stripeWebhookSecret"), "{stderr}");
    assert!(!stderr.contains("sk_test_x"), "the secret's values are never printed");
    store.shutdown().await;
}
