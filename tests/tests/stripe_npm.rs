//! The webhook signature scheme, cross-checked once against Stripe's official Node library
//! (`tools/stripe-signature`, installed by `cargo xtask test` with `npm ci`).

use dashboard_tests::{TestServer, WEBHOOK_SECRET};
use std::path::PathBuf;
use std::process::Command;
use stripe_sim::ItemSpec;

fn tool_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/stripe-signature")
}

fn node(args: &[&str]) -> std::process::Output {
    let dir = tool_dir();
    assert!(
        dir.join("node_modules/stripe").exists(),
        "Stripe's Node library is missing: run `npm ci` in tools/stripe-signature \
         (`cargo xtask test` does)"
    );
    Command::new("node").arg(dir.join("check.js")).args(args).output().expect("node runs")
}

#[tokio::test]
async fn signatures_agree_with_stripes_node_library() {
    let server = TestServer::start().await;
    let (_, customer) = server.linked_member("npm").await;
    let pi = server.stripe.create_payment_intent(
        &customer,
        1200,
        "usd",
        &[ItemSpec::new("Pin", 1, 1200)],
    );
    server.stripe.succeed(&pi);
    let event = server
        .stripe
        .events()
        .into_iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .unwrap();
    let payload = serde_json::to_string(&event).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &payload).unwrap();
    let path = file.path().to_str().unwrap();

    // Stripe's library signs; the server accepts.
    let signed = node(&["sign", WEBHOOK_SECRET, path]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let header = String::from_utf8(signed.stdout).unwrap();
    let (url, _) = server.stripe.webhook_endpoint().unwrap();
    let delivery = server.stripe.post_raw(&url, payload.clone(), Some(header.clone())).await;
    assert_eq!((delivery.status, delivery.outcome()), (200, "applied"), "{:?}", delivery.body);

    // The simulator signs; Stripe's library verifies, and rejects a wrong secret.
    let ours =
        stripe_sim::signature_header(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &payload);
    let verified = node(&["verify", WEBHOOK_SECRET, path, &ours]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let rejected = node(&["verify", "whsec_other", path, &ours]);
    assert!(!rejected.status.success());
    server.stop().await;
}
