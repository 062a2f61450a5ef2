//! The DynamoDB the integration suite runs on, and what each implementation is known not to do.
//!
//! The test command runs the suite twice: on dynoxide, in process (nothing set), and on moto's
//! server (`DASHBOARD_TEST_DYNAMODB_ENDPOINT` and `DASHBOARD_TEST_DYNAMODB_IMPL=moto`). Real AWS
//! is opt-in: `DASHBOARD_TEST_AWS_REGION` (default credential chain; it creates and deletes
//! tables named `dashtest-<random>-*`, and is never set by the test command).
//!
//! Each test gets its own table prefix; its tables are deleted when the last server using them
//! is dropped.

use dashboard_server::config::StoreConfig;
use dashboard_server::storage::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const ENDPOINT_VAR: &str = "DASHBOARD_TEST_DYNAMODB_ENDPOINT";
pub const IMPL_VAR: &str = "DASHBOARD_TEST_DYNAMODB_IMPL";
pub const AWS_REGION_VAR: &str = "DASHBOARD_TEST_AWS_REGION";

/// A DynamoDB-API implementation the suite can run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// The embedded default (in process, in memory).
    Dynoxide,
    /// moto's server: validates requests as AWS documents, but is no concurrency reference.
    Moto,
    /// DynamoDB itself.
    Aws,
    /// Another endpoint, named by `DASHBOARD_TEST_DYNAMODB_IMPL`.
    Other(String),
}

/// Something an implementation does not do as DynamoDB does, so that an assertion about it
/// cannot be read from a run there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Concurrent conditional writes on one item are not serialized: two writers that both
    /// read version N can both succeed with `version = N` (moto applies the condition and
    /// the write without a lock per item; seen with 20 concurrent `If-Match` writers).
    ConcurrentConditionalWrites,
    /// The suite cannot take the store away under a running server (outage tests). Endpoints
    /// are reached through a local proxy the harness can stop; AWS is not.
    CannotStopStore,
    /// Each `TransactWriteItems` copies the server's whole state first (moto's rollback), so
    /// writes get slower as a run's tables fill: late in a run, a reconcile creating 600 orders
    /// (one transaction each) took over the client's 30 s, and single writes past the server's
    /// 2 s attempt limit. Tests seeding that many seed fewer; servers allow 10 s an attempt.
    SlowTransactions,
}

impl Implementation {
    /// The implementation this run uses.
    pub fn current() -> Implementation {
        if std::env::var_os(AWS_REGION_VAR).is_some() {
            return Implementation::Aws;
        }
        if std::env::var_os(ENDPOINT_VAR).is_none() {
            return Implementation::Dynoxide;
        }
        match std::env::var(IMPL_VAR).unwrap_or_default().as_str() {
            "moto" => Implementation::Moto,
            other => Implementation::Other(other.to_string()),
        }
    }

    /// Every known limit, in one place, with the implementations it applies to.
    pub fn has(&self, limit: Limit) -> bool {
        match limit {
            Limit::ConcurrentConditionalWrites => *self == Implementation::Moto,
            Limit::CannotStopStore => *self == Implementation::Aws,
            Limit::SlowTransactions => *self == Implementation::Moto,
        }
    }
}

/// True (and says so on stderr) when this run's store has `limit`: the caller then relaxes
/// the assertion that depends on it. Never true on dynoxide or AWS for a limit they lack.
pub fn relaxed(limit: Limit) -> bool {
    let current = Implementation::current();
    let relaxed = current.has(limit);
    if relaxed {
        eprintln!("relaxed on {current:?}: {limit:?} (see tests/src/store.rs)");
    }
    relaxed
}

/// The tables one test uses: in process, or under a prefix of their own on an endpoint or AWS.
/// Clones share the tables; they are deleted when the last clone is dropped.
#[derive(Clone)]
pub struct TestStore(Arc<Inner>);

struct Inner {
    prefix: String,
    target: Target,
    /// Keeps the embedded store's folder alive.
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone)]
enum Target {
    Embedded { data_dir: Option<PathBuf> },
    Endpoint { url: String, region: String },
    Aws { region: String },
}

impl TestStore {
    /// Fresh, empty tables (in memory on the embedded default).
    pub async fn fresh() -> TestStore {
        Self::new(false).await
    }

    /// Tables that outlive one server, for restart tests (a folder on the embedded default).
    pub async fn persistent() -> TestStore {
        Self::new(true).await
    }

    async fn new(persistent: bool) -> TestStore {
        let prefix = format!("dashtest-{}-", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (target, dir) = match Implementation::current() {
            Implementation::Dynoxide => {
                let dir = persistent.then(|| tempfile::tempdir().unwrap());
                let data_dir = dir.as_ref().map(|d| d.path().to_owned());
                (Target::Embedded { data_dir }, dir)
            }
            Implementation::Aws => {
                (Target::Aws { region: std::env::var(AWS_REGION_VAR).unwrap() }, None)
            }
            Implementation::Moto | Implementation::Other(_) => {
                let url = std::env::var(ENDPOINT_VAR).unwrap();
                // moto keeps tables per region; the SDK needs one anyway.
                (Target::Endpoint { url, region: "us-east-1".into() }, None)
            }
        };
        let store = TestStore(Arc::new(Inner { prefix, target, _dir: dir }));
        // The server creates tables on an endpoint itself, but not on AWS.
        if let Target::Aws { region } = &store.0.target {
            let client = Store::connect(region, None, &store.0.prefix).await;
            client.ensure_tables(&store.0.prefix).await.expect("creating the test tables");
        }
        store
    }

    pub fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// The embedded store's folder, when it has one.
    pub fn data_dir(&self) -> Option<&Path> {
        match &self.0.target {
            Target::Embedded { data_dir } => data_dir.as_deref(),
            _ => None,
        }
    }

    /// The endpoint the server should use (`None`: the embedded store or AWS).
    pub fn endpoint(&self) -> Option<&str> {
        match &self.0.target {
            Target::Endpoint { url, .. } => Some(url),
            _ => None,
        }
    }

    /// The server's store setting, with `endpoint` in place of the real one (a proxy).
    pub fn config(&self, endpoint: Option<&str>) -> StoreConfig {
        match &self.0.target {
            Target::Embedded { data_dir } => StoreConfig::Embedded { data_dir: data_dir.clone() },
            Target::Endpoint { url, region } => StoreConfig::Endpoint {
                url: endpoint.unwrap_or(url).to_string(),
                region: region.clone(),
            },
            Target::Aws { region } => StoreConfig::Aws { region: region.clone() },
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let (region, endpoint) = match &self.target {
            Target::Embedded { .. } => return,
            Target::Endpoint { url, region } => (region.clone(), Some(url.clone())),
            Target::Aws { region } => (region.clone(), None),
        };
        let prefix = self.prefix.clone();
        // Drop cannot await, and the test's runtime may be shutting down: clean up on a
        // thread with a runtime of its own, and wait for it.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let store = Store::connect(&region, endpoint.as_deref(), &prefix).await;
                store.delete_tables(&prefix).await
            })?;
            anyhow::Ok(())
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not delete the test tables {}*: {error}", self.prefix);
        }
    }
}
