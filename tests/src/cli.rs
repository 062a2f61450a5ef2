//! The harness of the operator CLI's tests (`tests/tests/cli.rs`, `cli_backfill.rs`): the real
//! `dashboard-server` binary run against a real server's tables and the Stripe simulator.
//!
//! The binary cannot share the harness's in-process store, so the tables live behind an
//! endpoint both reach: the suite's endpoint when it has one (moto), else an embedded store
//! serving HTTP in this process. The binary is `target/debug/dashboard-server`, built here
//! when it is missing or older than the sources (a test of another crate cannot name it with
//! `CARGO_BIN_EXE_…`).

use crate::{Implementation, TestConfig, TestStore, CLIENT_ID, ISSUER, WEBHOOK_SECRET};
use dashboard_client::types::LinkStripeCustomer;
use dashboard_client::Client;
use dashboard_server::config::StoreConfig;
use dashboard_server::storage::embedded::EmbeddedStore;
use dashboard_server::RunningServer;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use stripe_sim::StripeSim;
use tokio::process::Command;

/// What one CLI run printed, and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn lines(&self) -> Vec<Value> {
        self.stdout.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// The audit records the binary logged (JSON logs on stderr).
    pub fn audit(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["record_type"] == "audit")
            .collect()
    }
}

/// A server, its tables behind an endpoint, the simulator, and the binary's environment.
pub struct Setup {
    pub running: Option<RunningServer>,
    pub base_url: String,
    pub stripe: StripeSim,
    pub secret: Vec<u8>,
    pub endpoint: String,
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub _store: Option<EmbeddedStore>,
    pub _tables: Option<TestStore>,
}

impl Setup {
    /// `None` on AWS, where the binary would need the suite's credentials: skipped there.
    pub async fn start() -> Option<Setup> {
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

    pub fn client(&self, claims: Value) -> Client {
        let token = crate::hs256(&self.secret, crate::claims(claims));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        let http = reqwest::Client::builder().default_headers(headers).build().unwrap();
        Client::new_with_client(&self.base_url, http)
    }

    pub fn member(&self, user: &str) -> Client {
        self.client(json!({ "sub": user }))
    }

    pub fn admin(&self) -> Client {
        self.client(json!({ "sub": "admin-1", "cognito:groups": [crate::ADMIN_GROUP] }))
    }

    /// A member with a profile, linked (through the API) to a new customer with `payments`
    /// succeeded payments.
    pub async fn linked_member(&self, user: &str, payments: usize) -> String {
        self.member(user).get_profile().await.unwrap();
        let customer = self.stripe.create_customer(&format!("{user}@example.com"));
        for _ in 0..payments {
            let pi = self.stripe.create_payment_intent(&customer, 1500, "usd", &[]);
            self.stripe.succeed(&pi);
        }
        let body = LinkStripeCustomer { stripe_customer_id: customer.parse().unwrap() };
        self.admin().put_member_stripe_customer(&user.parse().unwrap(), &body).await.unwrap();
        customer
    }

    /// The binary's environment: this setup's tables, simulator and a data dir of its own;
    /// nothing inherited but `PATH`.
    pub fn command(&self, args: &[&str]) -> Command {
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

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_command(self.command(args)).await
    }

    pub async fn run_command(&self, mut command: Command) -> Run {
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

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }
}

/// `target/debug/dashboard-server`, built first when missing or older than any source file
/// it is built from.
pub fn binary() -> PathBuf {
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
pub fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.flatten().filter_map(|e| newest(&e.path())).max()
}
