//! `dashboard-server backfill`, run as the real binary against a real server's tables and the
//! Stripe simulator (the harness of `tests/tests/cli.rs`, trimmed): a dry run prints what it
//! would link and every ambiguity and writes nothing; `--apply` links the one unambiguous
//! member, with its audit record, and reconciles it.

use dashboard_client::types::LinkStripeCustomer;
use dashboard_client::Client;
use dashboard_server::config::StoreConfig;
use dashboard_server::storage::embedded::EmbeddedStore;
use dashboard_server::RunningServer;
use dashboard_tests::{Implementation, TestConfig, TestStore, CLIENT_ID, ISSUER, WEBHOOK_SECRET};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use stripe_sim::StripeSim;
use tokio::process::Command;

/// What one CLI run printed, and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> Vec<Value> {
        self.stdout.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// The audit records the binary logged (JSON logs on stderr).
    fn audit(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["record_type"] == "audit")
            .collect()
    }
}

/// A server, its tables behind an endpoint, the simulator, and the binary's environment.
struct Setup {
    running: Option<RunningServer>,
    base_url: String,
    stripe: StripeSim,
    secret: Vec<u8>,
    endpoint: String,
    prefix: String,
    dir: tempfile::TempDir,
    _store: Option<EmbeddedStore>,
    _tables: Option<TestStore>,
}

impl Setup {
    /// `None` on AWS, where the binary would need the suite's credentials: skipped there.
    async fn start() -> Option<Setup> {
        if Implementation::current() == Implementation::Aws {
            eprintln!("skipped on AWS: the CLI tests need a DynamoDB-API endpoint");
            return None;
        }
        let tables = TestStore::fresh().await;
        let prefix = tables.prefix().to_string();
        let (endpoint, store, tables) = match tables.endpoint() {
            Some(url) => (url.to_string(), None, Some(tables)),
            None => {
                let store = EmbeddedStore::start(None).await.expect("embedded store starts");
                (store.endpoint.clone(), Some(store), None)
            }
        };
        let stripe = StripeSim::start().await;
        let secret: [u8; 32] = rand::random();
        let store_config =
            StoreConfig::Endpoint { url: endpoint.clone(), region: "us-east-1".into() };
        let config = TestConfig::new(store_config, &prefix, stripe.url(), stripe.secret_key())
            .hs256(&secret)
            .build();
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let running = dashboard_server::start(&config, &log).await.expect("server starts");
        let base_url = format!("http://{}", running.local_addr());
        Some(Setup {
            running: Some(running),
            base_url,
            stripe,
            secret: secret.to_vec(),
            endpoint,
            prefix,
            dir: tempfile::tempdir().unwrap(),
            _store: store,
            _tables: tables,
        })
    }

    fn client(&self, claims: Value) -> Client {
        let token = dashboard_tests::hs256(&self.secret, dashboard_tests::claims(claims));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        let http = reqwest::Client::builder().default_headers(headers).build().unwrap();
        Client::new_with_client(&self.base_url, http)
    }

    fn member(&self, user: &str) -> Client {
        self.client(json!({ "sub": user }))
    }

    fn admin(&self) -> Client {
        self.client(json!({ "sub": "admin-1", "cognito:groups": [dashboard_tests::ADMIN_GROUP] }))
    }

    /// The binary's environment: this setup's tables, simulator and a data dir of its own;
    /// nothing inherited but `PATH`.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command.args(args).env_clear().envs([
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("USER", "tester".into()),
            ("DASHBOARD_DYNAMODB_ENDPOINT", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("DASHBOARD_TABLE_PREFIX", self.prefix.clone()),
            ("DASHBOARD_DATA_DIR", self.dir.path().display().to_string()),
            ("DASHBOARD_LOG_FORMAT", "json".into()),
            ("DASHBOARD_JWT_ISSUER", ISSUER.into()),
            ("DASHBOARD_JWT_CLIENT_ID", CLIENT_ID.into()),
            ("DASHBOARD_JWT_HS256_SECRET", "cli-test-hs256-secret-0123456789abcdef".into()),
            ("DASHBOARD_CURSOR_KEY", "cli-test-cursor-key-0123456789abcdef".into()),
            ("STRIPE_SECRET_KEY", self.stripe.secret_key().into()),
            ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            ("STRIPE_API_BASE", self.stripe.url().into()),
        ]);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_command(self.command(args)).await
    }

    async fn run_command(&self, mut command: Command) -> Run {
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("the CLI finishes within two minutes")
            .expect("the CLI starts");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }
}

/// `target/debug/dashboard-server`, built first when missing or older than any source file
/// it is built from.
fn binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            // This test runs as target/debug/deps/cli-<hash>.
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
            let binary = dir.join("dashboard-server");
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
            let sources = ["server", "api", "stripe-sim", "Cargo.toml", "Cargo.lock"]
                .iter()
                .map(|p| newest(&root.join(p)))
                .max()
                .flatten();
            if built.is_none() || sources > built {
                let status = std::process::Command::new(env!("CARGO"))
                    .args([
                        "build",
                        "--quiet",
                        "-p",
                        "dashboard-server",
                        "--bin",
                        "dashboard-server",
                    ])
                    .current_dir(&root)
                    .status()
                    .expect("cargo runs");
                assert!(status.success(), "building dashboard-server failed");
            }
            binary
        })
        .clone()
}

/// The newest modification time of a file, or of any file under a folder.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.flatten().filter_map(|e| newest(&e.path())).max()
}

/// A member whose token carries `email`, verified or not.
fn member(setup: &Setup, user: &str, email: &str, verified: bool) -> Client {
    setup.client(json!({ "sub": user, "email": email, "email_verified": verified }))
}

/// The outcome of each member line, by user id.
fn outcomes(run: &Run) -> HashMap<String, String> {
    run.lines()
        .into_iter()
        .filter(|line| line["type"] == "member")
        .map(|line| {
            let user = line["userId"].as_str().unwrap_or_default().to_string();
            (user, line["outcome"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_dry_runs_then_links_the_one_unambiguous_member() {
    let Some(setup) = Setup::start().await else { return };
    // One match, with two payments.
    let one = setup.stripe.create_customer("one@example.com");
    for _ in 0..2 {
        let pi = setup.stripe.create_payment_intent(&one, 1500, "usd", &[]);
        setup.stripe.succeed(&pi);
    }
    // Several matches; a customer another member holds; none; an unverified email.
    setup.stripe.create_customer("several@example.com");
    setup.stripe.create_customer("several@example.com");
    let taken = setup.stripe.create_customer("taken@example.com");
    setup.member("holder").get_profile().await.unwrap();
    let body = LinkStripeCustomer { stripe_customer_id: taken.parse().unwrap() };
    setup.admin().put_member_stripe_customer(&"holder".parse().unwrap(), &body).await.unwrap();
    setup.stripe.create_customer("unverified@example.com");
    for (user, verified) in
        [("one", true), ("several", true), ("taken", true), ("none", true), ("unverified", false)]
    {
        let client = member(&setup, user, &format!("{user}@example.com"), verified);
        client.get_profile().await.unwrap();
    }
    let expected = |one: &str| {
        HashMap::from([
            ("one".to_string(), one.to_string()),
            ("several".to_string(), "several".to_string()),
            ("taken".to_string(), "taken".to_string()),
            ("none".to_string(), "none".to_string()),
        ])
    };

    let dry = setup.run(&["backfill"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(outcomes(&dry), expected("would_link"), "{}", dry.stdout);
    let summary = dry.lines().into_iter().find(|l| l["type"] == "summary").unwrap();
    assert_eq!(summary["members"], 4);
    assert_eq!(summary["stripeRequests"], 4);
    assert!(dry.audit().is_empty());
    let status = setup.member("one").get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.stripe_customer_id, None, "a dry run links nothing");

    let apply = setup.run(&["backfill", "--apply"]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(outcomes(&apply), expected("linked"), "{}", apply.stdout);
    let audit = apply.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["target_user_id"], "one");
    assert_eq!(audit[0]["stripe_customer_id"], one.as_str());
    let status = setup.member("one").get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.stripe_customer_id.as_deref(), Some(one.as_str()));
    assert_eq!(status.last_reconcile.map(|r| r.seen), Some(2));
    assert_eq!(status.auto_link.map(|a| a.outcome).as_deref(), Some("linked"));
    let orders = setup.member("one").list_orders(None, None, None, None, None).await.unwrap();
    assert_eq!(orders.into_inner().items.len(), 2);
    let holder = setup.member("holder").get_sync_status().await.unwrap().into_inner();
    assert_eq!(holder.stripe_customer_id.as_deref(), Some(taken.as_str()));

    // The linked member is not a candidate any more.
    let again = setup.run(&["backfill"]).await;
    assert!(!outcomes(&again).contains_key("one"), "{}", again.stdout);
    setup.stop().await;
}
