//! The binary reads its Stripe and page-token secrets from Secrets Manager when
//! `DASHBOARD_SECRETS_ARN` is set: checked against the suite's Secrets Manager stand-in
//! (`dashboard_tests::aws`, a dev-dependency: integration tests of this crate link the same
//! `dashboard_server` as the harness, and keep `CARGO_BIN_EXE_dashboard-server`).

use dashboard_server::storage::embedded::EmbeddedStore;
use dashboard_tests::aws::AwsStandIn;
use serde_json::json;
use std::process::Command;

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dashboard-AbCdEf";

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
    let secrets = AwsStandIn::secrets_manager(ARN, secret).await;
    let (url, endpoint) = (secrets.url.clone(), store.endpoint.clone());
    let output = tokio::task::spawn_blocking(move || reconcile(&url, &endpoint)).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["userId"], "nobody");
    let seen = secrets.calls();
    assert_eq!(seen.len(), 1, "the secret is read once: {seen:?}");
    assert_eq!(seen[0].target, "secretsmanager.GetSecretValue");
    assert_eq!(seen[0].request["SecretId"], ARN);
    assert!(!stderr.contains("sk_test_from_secrets_manager"), "secrets never reach the log");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incomplete_secret_stops_the_start_with_one_line() {
    let store = EmbeddedStore::start(None).await.unwrap();
    let secrets = AwsStandIn::secrets_manager(ARN, json!({ "stripeSecretKey": "sk_test_x" })).await;
    let (url, endpoint) = (secrets.url.clone(), store.endpoint.clone());
    let output = tokio::task::spawn_blocking(move || reconcile(&url, &endpoint)).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("stripeWebhookSecret"), "{stderr}");
    assert!(!stderr.contains("sk_test_x"), "the secret's values are never printed");
    store.shutdown().await;
}
