//! `cargo xtask bench`: load `GET /dashboard/profile` and `GET /dashboard/orders?limit=20`
//! (RS256 tokens) on the release server, with its store in another process, in memory and then
//! persisted to SQLite, and a bare Dropshot endpoint in the same run; print figures.
//!
//! Figures: req/s, p50/p99 latency (wrk), server and store CPU microseconds per request and the
//! server's peak RSS (from /proc, each load on a fresh server process), read units per listing
//! (DynamoDB's `ConsumedCapacity`), exec-to-ready (plain, and with the Lambda configuration);
//! then webhook ingestion, reconcile cost by history size, and the daily catch-up from Stripe's
//! Events list next to the per-member sweep on a shop of `BENCH_SHOP_MEMBERS` (default 50,000)
//! members. Every figure also goes to `target/bench/latest.json`; with `BENCH_COMPARE=OLD.json`
//! (`cargo xtask bench --compare OLD.json`) each is printed beside the earlier one. Not a test:
//! it asserts nothing and prints targets next to the measurements.

use dashboard_tests::jwks::SigningKey;
use dashboard_tests::{claims, ADMIN_GROUP, CLIENT_ID, ISSUER};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stripe_sim::{ItemSpec, StripeSim};

const MEMBERS: usize = 64;
/// Orders per member behind the listing's figures.
const ORDERS_PER_MEMBER: i64 = 50;

struct Figures {
    name: String,
    ready: Duration,
    requests: u64,
    rps: f64,
    p50: String,
    p99: String,
    cpu_us_per_req: f64,
    /// The store process's CPU per request over the same load (`None`: no store process).
    store_cpu_us_per_req: Option<f64>,
    peak_rss_kib: u64,
}

/// The figures of one run, by name, for `target/bench/latest.json` and `--compare`.
#[derive(Default)]
struct Record(std::collections::BTreeMap<String, f64>);

impl Record {
    fn set(&mut self, name: impl Into<String>, value: f64) {
        self.0.insert(name.into(), value);
    }

    fn load(&mut self, prefix: &str, f: &Figures) {
        self.set(format!("{prefix}.req_per_s"), f.rps);
        self.set(format!("{prefix}.server_cpu_us_per_req"), f.cpu_us_per_req);
        if let Some(store) = f.store_cpu_us_per_req {
            self.set(format!("{prefix}.store_cpu_us_per_req"), store);
        }
        self.set(format!("{prefix}.peak_rss_mib"), f.peak_rss_kib as f64 / 1024.0);
        self.set(format!("{prefix}.ready_ms"), f.ready.as_secs_f64() * 1000.0);
    }
}

/// The embedded store in a process of its own (in memory, or persisted to SQLite under
/// `data_dir`), as DynamoDB would be.
struct StoreProcess {
    process: KillOnDrop,
    endpoint: String,
}

fn start_store(server_bin: &Path, data_dir: Option<&Path>) -> anyhow::Result<StoreProcess> {
    let mut command = Command::new(server_bin);
    command.arg("store");
    if let Some(dir) = data_dir {
        command.arg("--data-dir").arg(dir);
    }
    let mut child =
        lambda_settings(&mut command).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut endpoint = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut endpoint)?;
    Ok(StoreProcess { process: KillOnDrop(child), endpoint: endpoint.trim().to_string() })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let duration = args.get(1).cloned().unwrap_or_else(|| "10s".into());
    let connections = args.get(2).cloned().unwrap_or_else(|| "16".into());
    let compare = std::env::var_os("BENCH_COMPARE").map(PathBuf::from);
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let release = target.join("release");
    let server_bin = release.join("dashboard-server");
    let bare_bin = release.join("examples/bare_dropshot");
    which("wrk").ok_or_else(|| anyhow::anyhow!("wrk is needed: apt-get install -y wrk"))?;
    let mut record = Record::default();

    let work = tempfile::tempdir()?;
    // Stripe is the simulator, in this (the load generator's) process, not the server's.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let sim = runtime.block_on(StripeSim::start());

    let key = SigningKey::generate("bench-key");
    let jwks = work.path().join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [key.jwk] }).to_string())?;
    let exp = chrono::Utc::now().timestamp() + 3600;
    let tokens: Vec<String> = (0..MEMBERS)
        .map(|i| key.sign(Some("bench-key"), &claims(json!({"sub": member(i), "exp": exp}))))
        .collect();
    let admin = key.sign(
        Some("bench-key"),
        &claims(json!({"sub": "bench-admin", "exp": exp, "cognito:groups": [ADMIN_GROUP]})),
    );
    let script = work.path().join("tokens.lua");
    std::fs::write(&script, lua_rotating_tokens(&tokens))?;
    let script = script.to_str().unwrap();
    let http = reqwest::Client::new();
    let server_command = |endpoint: &str, port: u16| {
        let mut command = Command::new(&server_bin);
        command
            .args(["serve"])
            .env("DASHBOARD_BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DASHBOARD_DYNAMODB_ENDPOINT", endpoint)
            .env("DASHBOARD_JWT_ISSUER", ISSUER)
            .env("DASHBOARD_JWT_CLIENT_ID", CLIENT_ID)
            .env("DASHBOARD_JWKS_FILE", &jwks)
            .env("DASHBOARD_TABLE_PREFIX", "bench-")
            .env("DASHBOARD_LOG_FORMAT", "json")
            .env("DASHBOARD_CURSOR_KEY", "bench-cursor-key-bench-cursor-key-0123")
            .env("STRIPE_SECRET_KEY", sim.secret_key())
            .env("STRIPE_WEBHOOK_SECRET", BENCH_WEBHOOK_SECRET)
            .env("STRIPE_API_BASE", sim.url())
            // The 10,000-intent reconcile below takes longer than a request's default Stripe
            // budget (25 s); the bench measures its cost, not the deadline.
            .env("DASHBOARD_STRIPE_DEADLINE_MS", "600000")
            // The bench measures costs, not the account-wide rate limiter (default 20/s).
            .env("DASHBOARD_STRIPE_MAX_RPS", "1000000");
        command
    };
    let start_server = |endpoint: &str| -> anyhow::Result<(KillOnDrop, Duration, String)> {
        let port = free_port()?;
        let (server, ready) = start_timed(&mut server_command(endpoint, port), port)?;
        Ok((server, ready, format!("http://127.0.0.1:{port}")))
    };

    // `BENCH_ONLY=webhooks`: webhook ingestion alone, on the in-memory store, for quick
    // comparisons while working on that path.
    // Every member's profile, linked to a customer with `orders` orders cached by a reconcile,
    // written by a server of its own.
    let seed = |endpoint: &str, orders: i64| -> anyhow::Result<()> {
        let (_seeder, _, base) = start_server(endpoint)?;
        for (i, token) in tokens.iter().enumerate() {
            runtime.block_on(
                http.get(format!("{base}/dashboard/profile")).bearer_auth(token).send(),
            )?;
            let customer = sim.create_customer(&format!("{}@example.com", member(i)));
            for n in 0..orders {
                sim.advance(7);
                let item = ItemSpec::new("Tee", 1, 1000 + n);
                let pi = sim.create_payment_intent(&customer, 1000 + n, "usd", &[item]);
                sim.succeed(&pi);
            }
            runtime.block_on(link_and_sync(&http, &base, &admin, &member(i), &customer))?;
        }
        Ok(())
    };
    // Reconcile cost as a customer's history grows: a new member's link and first sync, then
    // a second sync, for each size.
    let reconcile_costs = |base: &str| -> anyhow::Result<Vec<Reconciled>> {
        let mut reconciles = Vec::new();
        for (n, size) in [100usize, 1_000, 10_000].into_iter().enumerate() {
            let user = format!("bench-reconcile-{n}");
            let token = key.sign(Some("bench-key"), &claims(json!({"sub": user, "exp": exp})));
            runtime.block_on(
                http.get(format!("{base}/dashboard/profile")).bearer_auth(&token).send(),
            )?;
            let customer = sim.create_customer(&format!("{user}@example.com"));
            for i in 0..size {
                if i % 5 == 0 {
                    sim.advance(1);
                }
                let pi = sim.create_payment_intent(
                    &customer,
                    500,
                    "usd",
                    &[ItemSpec::new("Pin", 1, 500)],
                );
                sim.succeed(&pi);
            }
            let first = runtime.block_on(link_and_sync(&http, base, &admin, &user, &customer))?;
            let again = runtime.block_on(sync(&http, base, &admin, &user))?;
            reconciles.push((size, first, again));
        }
        Ok(reconciles)
    };
    // `BENCH_ONLY=reconcile`: the reconcile costs alone, on the in-memory store.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("reconcile") {
        let store = start_store(&server_bin, None)?;
        let (_server, _, base) = start_server(&store.endpoint)?;
        let reconciles = reconcile_costs(&base)?;
        print_reconciles(&reconciles, &mut record);
        return save_and_compare(&target.join("bench"), &record, compare.as_deref());
    }
    // `BENCH_ONLY=catchup`: the daily catch-up next to the sweep alone (the issue's shop of
    // 100,000 members is `BENCH_SHOP_MEMBERS=100000`).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("catchup") {
        shop_catch_up(&runtime, &server_bin, &mut record)?;
        return save_and_compare(&target.join("bench"), &record, compare.as_deref());
    }
    // Webhook ingestion on an in-memory store of its own, every member linked: dynoxide keeps
    // each transaction's idempotency token for ten minutes and scans them all on every
    // transaction (see the README), so on a store that other loads just wrote to, the webhook
    // figures would depend on what ran before them.
    let ingest_webhooks = || -> anyhow::Result<(Vec<Ingest>, StoreProcess, KillOnDrop, String)> {
        let store = start_store(&server_bin, None)?;
        seed(&store.endpoint, 0)?;
        let (server, _, base) = start_server(&store.endpoint)?;
        let ingest = webhook_ingest(&runtime, &http, &sim, &server, &store, &base, &tokens)?;
        Ok((ingest, store, server, base))
    };
    if std::env::var("BENCH_ONLY").as_deref() == Ok("webhooks") {
        let (ingest, _store, _server, _) = ingest_webhooks()?;
        Ingest::report(&ingest, &mut record, None);
        return save_and_compare(&target.join("bench"), &record, compare.as_deref());
    }

    // The read path on each store: seeded by one server (every member's profile, and 50 orders
    // each cached by a reconcile), then each load on a server of its own, so that its peak RSS
    // is the load's, not the seeding's.
    let persisted_dir = work.path().join("store");
    std::fs::create_dir_all(&persisted_dir)?;
    let mut read_rows = Vec::new();
    let mut stores = Vec::new();
    // `BENCH_ONLY=reads`: the read path on both stores and the Lambda cold path only.
    let reads_only = std::env::var("BENCH_ONLY").as_deref() == Ok("reads");
    let store_kinds = [("in-memory", None), ("persisted", Some(persisted_dir.as_path()))];
    for (label, data_dir) in store_kinds {
        let store = start_store(&server_bin, data_dir)?;
        seed(&store.endpoint, ORDERS_PER_MEMBER)?;
        let (server, ready, base) = start_server(&store.endpoint)?;
        let profile = measure(
            &format!("profile ({label})"),
            &server,
            Some(&store),
            ready,
            &["--latency", "-s", script],
            &format!("{base}/dashboard/profile"),
            &duration,
            &connections,
        )?;
        drop(server);
        let (server, ready, base) = start_server(&store.endpoint)?;
        let orders = measure(
            &format!("orders ({label})"),
            &server,
            Some(&store),
            ready,
            &["--latency", "-s", script],
            &format!("{base}/dashboard/orders?limit=20"),
            &duration,
            &connections,
        )?;
        drop(server);
        let units = runtime.block_on(listing_read_units(&store.endpoint, &member(0)))?;
        record.load(&format!("profile.{label}"), &profile);
        record.load(&format!("orders.{label}"), &orders);
        record.set(format!("orders.{label}.read_units_per_listing"), units.0);
        record.set(format!("orders.{label}.read_units_whole_items"), units.1);
        read_rows.push((label, profile, orders, units));
        stores.push(store);
    }
    let store = &stores[0];
    if reads_only {
        for (label, profile, orders, (units, _)) in &read_rows {
            let ratio = orders.cpu_us_per_req / profile.cpu_us_per_req;
            record.set(format!("orders.{label}.server_cpu_vs_profile"), ratio);
            println!(
                "{label}: profile {:.1} us, listing {:.1} us of server CPU ({ratio:.2}x, target \
                 <= 2x); store {:?} / {:?} us; peak RSS {:.1} / {:.1} MiB (targets < 20 / < 25); \
                 read units per listing {units:.1}",
                profile.cpu_us_per_req,
                orders.cpu_us_per_req,
                profile.store_cpu_us_per_req,
                orders.store_cpu_us_per_req,
                profile.peak_rss_kib as f64 / 1024.0,
                orders.peak_rss_kib as f64 / 1024.0,
            );
        }
        let ready = lambda_cold_path(&runtime, &server_bin, &store.endpoint, &jwks, &sim)?;
        record.set("lambda.exec_to_ready_ms", ready.as_secs_f64() * 1000.0);
        println!("Lambda exec-to-ready, median of 5: {:.1} ms", ready.as_secs_f64() * 1000.0);
        return save_and_compare(&target.join("bench"), &record, compare.as_deref());
    }

    // Webhook ingestion: signed events, verified and applied, with 20% duplicates; then the
    // reconcile costs on the same server.
    let (ingest, hooks_store, server, base) = ingest_webhooks()?;
    let reconciles = reconcile_costs(&base)?;
    drop(server);
    drop(hooks_store);

    let port = free_port()?;
    let mut bare_cmd = Command::new(&bare_bin);
    bare_cmd
        .env("DASHBOARD_BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DASHBOARD_DYNAMODB_ENDPOINT", &store.endpoint)
        .env("DASHBOARD_TABLE_PREFIX", "bench-");
    let (bare, ready) = start_timed(&mut bare_cmd, port)?;
    let baseline = measure(
        "bare Dropshot endpoint",
        &bare,
        None,
        ready,
        &["--latency"],
        &format!("http://127.0.0.1:{port}/healthz"),
        &duration,
        &connections,
    )?;
    // The floor of any per-request store read: the bare endpoint plus one GetItem.
    let floor = measure(
        "bare + one GetItem",
        &bare,
        Some(store),
        ready,
        &["--latency"],
        &format!("http://127.0.0.1:{port}/store-read"),
        &duration,
        &connections,
    )?;
    drop(bare);
    record.load("bare", &baseline);
    record.load("floor", &floor);

    println!();
    println!(
        "wrk: 1 thread, {connections} connections, {duration}; {MEMBERS} members, RS256 tokens, \
         {ORDERS_PER_MEMBER} orders each; each load on a fresh server process"
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11} {:>10} {:>9}",
        "", "requests", "req/s", "p50", "p99", "server us", "store us", "peak RSS", "ready"
    );
    let rows = read_rows.iter().flat_map(|(_, p, o, _)| [p, o]).chain([&baseline, &floor]);
    for f in rows {
        println!(
            "{:<26} {:>9} {:>9.0} {:>9} {:>9} {:>11.1} {:>11} {:>6} MiB {:>7.1}ms",
            f.name,
            f.requests,
            f.rps,
            f.p50,
            f.p99,
            f.cpu_us_per_req,
            f.store_cpu_us_per_req.map_or("-".into(), |us| format!("{us:.1}")),
            f.peak_rss_kib / 1024,
            f.ready.as_secs_f64() * 1000.0
        );
    }
    println!(
        "(server us, store us: CPU microseconds per request of the server and store processes)"
    );
    println!();
    for (label, profile, orders, (units, whole)) in &read_rows {
        let ratio = orders.cpu_us_per_req / profile.cpu_us_per_req;
        record.set(format!("orders.{label}.server_cpu_vs_profile"), ratio);
        println!(
            "{label}: listing of 20 vs profile read, server CPU {ratio:.2}x (target <= 2x); \
             read units per listing {units:.1} (20 whole orders from the table: {whole:.1}); \
             peak RSS listing {:.1} MiB (target < 25), profile {:.1} MiB (target < 20)",
            orders.peak_rss_kib as f64 / 1024.0,
            profile.peak_rss_kib as f64 / 1024.0,
        );
    }
    let profile = &read_rows[0].1;
    println!(
        "floor: the bare endpoint plus one consistent GetItem through the server's SDK client \
         costs {:.2}x the bare endpoint; the profile endpoint costs {:.2}x that floor \
         (target <= 1.2x)",
        floor.cpu_us_per_req / baseline.cpu_us_per_req,
        profile.cpu_us_per_req / floor.cpu_us_per_req
    );
    println!(
        "exec-to-ready without the embedded store (the local configuration; issue 14's target, \
         < 15 ms, is the Lambda configuration's, below): {:.1} ms",
        profile.ready.as_secs_f64() * 1000.0
    );
    println!();
    Ingest::report(&ingest, &mut record, Some(profile.cpu_us_per_req));
    println!();
    print_reconciles(&reconciles, &mut record);
    let lambda_ready = lambda_cold_path(&runtime, &server_bin, &store.endpoint, &jwks, &sim)?;
    record.set("lambda.exec_to_ready_ms", lambda_ready.as_secs_f64() * 1000.0);
    println!();
    println!(
        "Lambda cold path: exec-to-ready with the Lambda configuration (secrets from a local \
         Secrets Manager stand-in, DynamoDB through AWS_ENDPOINT_URL_DYNAMODB, no embedded \
         store), median of 5: {:.1} ms (target < 15 ms)",
        lambda_ready.as_secs_f64() * 1000.0
    );
    drop(stores);
    drop(sim);
    shop_catch_up(&runtime, &server_bin, &mut record)?;
    save_and_compare(&target.join("bench"), &record, compare.as_deref())
}

/// Exec-to-ready of the server configured as the template configures the Lambda function:
/// secrets read from Secrets Manager (a local stand-in) at start, the store reached as AWS is
/// (a region and the SDK's endpoint variable, no tables created). The median of five starts.
fn lambda_cold_path(
    runtime: &tokio::runtime::Runtime,
    server_bin: &Path,
    store_endpoint: &str,
    jwks: &Path,
    sim: &StripeSim,
) -> anyhow::Result<Duration> {
    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench";
    let secrets = runtime.block_on(dashboard_tests::aws::AwsStandIn::secrets_manager(
        ARN,
        json!({
            "stripeSecretKey": sim.secret_key(),
            "stripeWebhookSecret": BENCH_WEBHOOK_SECRET,
            "cursorKey": "bench-cursor-key-bench-cursor-key-0123",
        }),
    ));
    let mut times = Vec::new();
    for _ in 0..5 {
        let port = free_port()?;
        let mut command = Command::new(server_bin);
        command
            .args(["serve"])
            .env("DASHBOARD_BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "ASIABENCH")
            .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
            .env("AWS_SESSION_TOKEN", "bench-session")
            .env("AWS_ENDPOINT_URL_DYNAMODB", store_endpoint)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &secrets.url)
            .env("DASHBOARD_SECRETS_ARN", ARN)
            .env("DASHBOARD_JWT_ISSUER", ISSUER)
            .env("DASHBOARD_JWT_CLIENT_ID", CLIENT_ID)
            .env("DASHBOARD_JWKS_FILE", jwks)
            .env("DASHBOARD_TABLE_PREFIX", "bench-")
            .env("DASHBOARD_LOG_FORMAT", "json")
            .env("STRIPE_API_BASE", sim.url());
        let (server, ready) = start_timed(&mut command, port)?;
        drop(server);
        times.push(ready);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Writes `latest.json` (the figures, the date and the machine) and, given an earlier file,
/// prints each figure beside its earlier value and their ratio.
fn save_and_compare(dir: &Path, record: &Record, compare: Option<&Path>) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?.to_string();
            Some(line.split(':').nth(1)?.trim().to_string())
        })
        .unwrap_or_default();
    let document = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "machine": { "cpus": cpus, "model": model },
        "figures": record.0,
    });
    std::fs::create_dir_all(dir)?;
    let path = dir.join("latest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document)?)?;
    println!();
    println!("figures written to {}", path.display());
    let Some(old_path) = compare else { return Ok(()) };
    let old: Value = serde_json::from_str(&std::fs::read_to_string(old_path)?)
        .map_err(|e| anyhow::anyhow!("{}: not a bench file: {e}", old_path.display()))?;
    println!(
        "compared with {} ({}, {}); the machine is shared and noisy: read ratios within one \
         run before ratios across runs",
        old_path.display(),
        old["date"].as_str().unwrap_or("?"),
        old["machine"]["model"].as_str().unwrap_or("?"),
    );
    println!("{:<52} {:>12} {:>12} {:>8}", "figure", "before", "now", "now/before");
    for (name, now) in &record.0 {
        match old["figures"][name].as_f64() {
            Some(before) => println!(
                "{name:<52} {before:>12.2} {now:>12.2} {:>8.2}",
                if before == 0.0 { f64::NAN } else { now / before }
            ),
            None => println!("{name:<52} {:>12} {now:>12.2} {:>8}", "-", "-"),
        }
    }
    Ok(())
}

/// Read units of one listing page as the server asks for it (the listing state and 20 + 1
/// summaries through `byCreated`, read consistently), and of the same orders read whole from
/// the table (what the index cost when it projected every attribute), from DynamoDB's
/// `ConsumedCapacity`.
async fn listing_read_units(endpoint: &str, user: &str) -> anyhow::Result<(f64, f64)> {
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
    use dashboard_server::storage::schema::{BY_CREATED, LISTING_ENTRY};
    let store = dashboard_server::storage::Store::connect("local", Some(endpoint), "bench-").await;
    let names = std::collections::HashMap::from([
        ("#u".to_string(), "userId".to_string()),
        ("#l".to_string(), LISTING_ENTRY.to_string()),
    ]);
    let summaries = store
        .client
        .query()
        .table_name(&store.tables.order_snapshots)
        .index_name(BY_CREATED)
        .key_condition_expression("#u = :u")
        .projection_expression("#l, orderId")
        .set_expression_attribute_names(Some(names))
        .expression_attribute_values(":u", AttributeValue::S(user.into()))
        .scan_index_forward(false)
        .consistent_read(true)
        .limit(22)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await?;
    let whole = store
        .client
        .query()
        .table_name(&store.tables.order_snapshots)
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S(user.into()))
        .consistent_read(true)
        .limit(22)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await?;
    let units = |c: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>| {
        c.and_then(|c| c.capacity_units()).unwrap_or(f64::NAN)
    };
    Ok((units(summaries.consumed_capacity()), units(whole.consumed_capacity())))
}

/// Members of the catch-up shop (`BENCH_SHOP_MEMBERS`) and its orders changed between two daily
/// runs (`BENCH_SHOP_CHANGED`, default 2,000). The issue's shop has 100,000 members; creating
/// and linking them through the API takes about 8 minutes on the 2-core machine (the store
/// emulator's rate), and the sweep 3.5 more, so the default is the largest shop that keeps the
/// section near 6 minutes.
fn shop_size() -> anyhow::Result<(usize, usize)> {
    let read = |name: &str, default: usize| -> anyhow::Result<usize> {
        match std::env::var(name) {
            Ok(value) => value.parse().map_err(|_| anyhow::anyhow!("{name}={value}: not a count")),
            Err(_) => Ok(default),
        }
    };
    Ok((read("BENCH_SHOP_MEMBERS", 50_000)?, read("BENCH_SHOP_CHANGED", 2_000)?))
}

/// Every tenth member of the shop has an order from before the first run.
const SHOP_HISTORY_EVERY: usize = 10;

/// One scheduled run: its wall time, the Stripe requests the simulator served, the server's
/// and the store's CPU time, and the run's report.
struct Run {
    wall: Duration,
    stripe: u64,
    /// The Stripe requests by path pattern.
    by_path: Vec<(String, u64)>,
    server_cpu: Duration,
    store_cpu: Duration,
    report: Value,
}

/// Issue 12, target 3: the daily catch-up from Stripe's Events list next to today's
/// per-member sweep, on one shop (its own store, simulator and server, so nothing above mixes
/// in). Its members are created and linked through the API, and those with earlier orders
/// reconciled once (as an earlier day's run left them). Then `changed` orders change at Stripe
/// (the simulator's ordinary mix, on as many members) and the first scheduled run, which has
/// no checkpoint, sweeps every member and sets the checkpoint; then as many orders change
/// again and the next scheduled run catches up from the Events list. Both runs meet the same
/// shop with the same amount of change.
fn shop_catch_up(
    runtime: &tokio::runtime::Runtime,
    server_bin: &Path,
    record: &mut Record,
) -> anyhow::Result<()> {
    let (members, changed) = shop_size()?;
    if members == 0 || changed == 0 {
        anyhow::bail!("BENCH_SHOP_MEMBERS and BENCH_SHOP_CHANGED must be at least 1");
    }
    let store = start_store(server_bin, None)?;
    let endpoint = store.endpoint.clone();
    let sim = runtime.block_on(StripeSim::start());
    let secret = b"bench-shop-hs256-secret-0123456789abcdef";
    let port = free_port()?;
    let mut server_cmd = Command::new(server_bin);
    server_cmd
        .args(["serve"])
        .env("DASHBOARD_BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DASHBOARD_DYNAMODB_ENDPOINT", endpoint.trim())
        .env("DASHBOARD_JWT_ISSUER", ISSUER)
        .env("DASHBOARD_JWT_CLIENT_ID", CLIENT_ID)
        // HS256 (the shop's own auth): signing 100,000 RS256 tokens would dominate seeding.
        .env("DASHBOARD_JWT_HS256_SECRET", std::str::from_utf8(secret)?)
        .env("DASHBOARD_TABLE_PREFIX", "shop-")
        .env("DASHBOARD_LOG_FORMAT", "json")
        .env("DASHBOARD_CURSOR_KEY", "bench-cursor-key-bench-cursor-key-0123")
        .env("STRIPE_SECRET_KEY", sim.secret_key())
        .env("STRIPE_WEBHOOK_SECRET", BENCH_WEBHOOK_SECRET)
        .env("STRIPE_API_BASE", sim.url())
        // `POST /events`: the schedule, as the Lambda Web Adapter passes it through.
        .env("DASHBOARD_LAMBDA_EVENTS", "true")
        .env("DASHBOARD_STRIPE_MAX_RPS", "1000000");
    let (server, _) = start_timed(&mut server_cmd, port)?;
    let pids = (server.0.id(), store.process.0.id());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let exp = chrono::Utc::now().timestamp() + 4 * 3600;
    let admin = dashboard_tests::hs256(
        secret,
        claims(json!({"sub": "bench-admin", "exp": exp, "cognito:groups": [ADMIN_GROUP]})),
    );

    // The shop as an earlier day left it: every member a linked Stripe customer, every tenth
    // with an order in the cache. A week ago, so nothing of it is near the checkpoint.
    let seeding = Instant::now();
    sim.set_clock(chrono::Utc::now().timestamp() - 7 * 86_400);
    let customers: Vec<String> = (0..members)
        .map(|i| sim.create_customer(&format!("{}@example.com", shop_member(i))))
        .collect();
    for (n, customer) in customers.iter().step_by(SHOP_HISTORY_EVERY).enumerate() {
        sim.advance(1);
        sim.shop_order(customer, n);
    }
    let with_history: Vec<String> =
        (0..members).step_by(SHOP_HISTORY_EVERY).map(shop_member).collect();
    let failed = runtime.block_on(seed_members(&http, &base, secret, &admin, &customers, exp))
        + runtime.block_on(sync_members(&http, &base, &admin, &with_history));
    let seeded = seeding.elapsed();
    if failed > 0 {
        anyhow::bail!("{failed} of {members} shop members could not be created, linked or synced");
    }

    // A day's changes at Stripe, spread evenly over the members (`offset` picks other ones).
    let change = |offset: usize| {
        for k in 0..changed {
            sim.advance(1);
            sim.shop_order(&customers[(k * members / changed + offset) % members], k);
        }
    };
    change(0);
    let sweep = runtime.block_on(timed(&sim, pids, schedule(&http, &base)))?;
    let checkpoint = sweep.report["checkpoint"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("the first run set no checkpoint: {}", sweep.report))?;
    sim.set_clock(checkpoint);
    change((members / changed / 2).max(1));
    let catch_up = runtime.block_on(timed(&sim, pids, schedule(&http, &base)))?;
    drop(server);
    drop(store);
    drop(sim);

    let count = |run: &Run, field: &str| run.report[field].as_u64().unwrap_or(0);
    println!();
    println!(
        "daily catch-up vs sweep: {members} linked members ({} with earlier orders), created, \
         linked and synced through the API in {:.0} s; {changed} orders changed since the last \
         run (the simulator's ordinary mix: payments, declines, refunds, disputes)",
        with_history.len(),
        seeded.as_secs_f64(),
    );
    println!(
        "{:<34} {:>16} {:>8} {:>9} {:>9} {:>12} {:>11}",
        "", "Stripe requests", "target", "events", "wall", "server CPU", "store CPU"
    );
    for (name, run, target) in [
        (
            format!("sweep ({} fallback)", sweep.report["fallback"].as_str().unwrap_or("no")),
            &sweep,
            "-",
        ),
        (
            format!("catch-up ({})", catch_up.report["mode"].as_str().unwrap_or("?")),
            &catch_up,
            "< 100",
        ),
    ] {
        println!(
            "{:<34} {:>16} {:>8} {:>9} {:>8.1}s {:>11.1}s {:>10.1}s",
            name,
            run.stripe,
            target,
            run.report["events"]
                .as_u64()
                .filter(|_| run.report["mode"] == "catch_up")
                .map_or("-".into(), |n| n.to_string()),
            run.wall.as_secs_f64(),
            run.server_cpu.as_secs_f64(),
            run.store_cpu.as_secs_f64(),
        );
    }
    println!(
        "sweep: {} members, {} failed, {} orders written; catch-up: {} list + {} re-fetch \
         requests, {} applied, {} duplicates, {} ignored",
        count(&sweep, "members"),
        count(&sweep, "failed"),
        sweep.report["totals"]["created"].as_u64().unwrap_or(0)
            + sweep.report["totals"]["updated"].as_u64().unwrap_or(0),
        count(&catch_up, "listRequests"),
        count(&catch_up, "refetchRequests"),
        count(&catch_up, "applied"),
        count(&catch_up, "duplicates"),
        count(&catch_up, "ignored"),
    );
    println!(
        "catch-up vs sweep: {:.2}% of the Stripe requests, {:.1}% of the wall time",
        catch_up.stripe as f64 * 100.0 / sweep.stripe.max(1) as f64,
        catch_up.wall.as_secs_f64() * 100.0 / sweep.wall.as_secs_f64(),
    );
    let paths: Vec<String> = catch_up.by_path.iter().map(|(p, n)| format!("{p} {n}")).collect();
    println!("catch-up Stripe requests by path: {}", paths.join(", "));
    for (name, run) in [("sweep", &sweep), ("catch_up", &catch_up)] {
        record.set(format!("shop.{name}.stripe_requests"), run.stripe as f64);
        record.set(format!("shop.{name}.wall_s"), run.wall.as_secs_f64());
    }
    Ok(())
}

fn shop_member(i: usize) -> String {
    format!("bench-shop-{i}")
}

/// Creates each member's profile (its first read) and links it to its customer, 32 at a
/// time; returns how many failed.
async fn seed_members(
    http: &reqwest::Client,
    base: &str,
    secret: &[u8],
    admin: &str,
    customers: &[String],
    exp: i64,
) -> usize {
    use futures::StreamExt;
    futures::stream::iter(customers.iter().enumerate())
        .map(|(i, customer)| async move {
            let user = shop_member(i);
            let token = dashboard_tests::hs256(secret, claims(json!({"sub": user, "exp": exp})));
            let created = http
                .get(format!("{base}/dashboard/profile"))
                .bearer_auth(token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let linked = created
                && http
                    .put(format!("{base}/internal/members/{user}/stripe-customer"))
                    .bearer_auth(admin)
                    .json(&json!({ "stripeCustomerId": customer }))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            usize::from(!linked)
        })
        .buffer_unordered(32)
        .fold(0, |failed, f| async move { failed + f })
        .await
}

/// Runs one request, counting the Stripe requests the simulator served and the CPU time the
/// server and the store (`pids`) spent meanwhile.
async fn timed(
    sim: &StripeSim,
    (server, store): (u32, u32),
    run: impl std::future::Future<Output = anyhow::Result<Value>>,
) -> anyhow::Result<Run> {
    let before = (sim.request_count(), cpu_ticks(server)?, cpu_ticks(store)?);
    let paths_before = sim.requests_by_path();
    let started = Instant::now();
    let report = run.await?;
    let wall = started.elapsed();
    // Clock ticks (USER_HZ, 100 a second on Linux) to time.
    let cpu = |pid: u32, from: u64| -> anyhow::Result<Duration> {
        Ok(Duration::from_millis((cpu_ticks(pid)? - from) * 10))
    };
    let mut by_path: Vec<(String, u64)> = sim
        .requests_by_path()
        .into_iter()
        .map(|(path, n)| {
            let earlier = paths_before.get(&path).copied().unwrap_or(0);
            (path, n - earlier)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    by_path.sort();
    Ok(Run {
        wall,
        stripe: sim.request_count() - before.0,
        by_path,
        server_cpu: cpu(server, before.1)?,
        store_cpu: cpu(store, before.2)?,
        report,
    })
}

/// The daily schedule as EventBridge sends it through the Lambda Web Adapter's pass-through
/// path (`x-amzn-request-context: null` marks a non-HTTP event).
async fn schedule(http: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    let event =
        json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {} });
    Ok(http
        .post(format!("{base}/events"))
        .header("x-amzn-request-context", "null")
        .json(&event)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Reconciles each member once through the admin trigger, 8 at a time; returns how many
/// failed.
async fn sync_members(http: &reqwest::Client, base: &str, admin: &str, users: &[String]) -> usize {
    use futures::StreamExt;
    futures::stream::iter(users)
        .map(|user| async move { usize::from(sync(http, base, admin, user).await.is_err()) })
        .buffer_unordered(8)
        .fold(0, |failed, f| async move { failed + f })
        .await
}

const BENCH_WEBHOOK_SECRET: &str = "whsec_bench_secret";

fn member(i: usize) -> String {
    format!("bench-member-{i:02}")
}

/// A size, its link and first sync, and its second sync (wall time and report each).
type Reconciled = (usize, (Duration, Value), (Duration, Value));

fn print_reconciles(reconciles: &[Reconciled], record: &mut Record) {
    println!(
        "{:>16} {:>16} {:>12} {:>12} {:>12} {:>16}",
        "PaymentIntents", "Stripe requests", "target", "writes", "wall", "re-run writes"
    );
    for (size, first, again) in reconciles {
        record.set(format!("reconcile.{size}.wall_s"), first.0.as_secs_f64());
        record.set(
            format!("reconcile.{size}.stripe_requests"),
            first.1["stripeRequests"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "{:>16} {:>16} {:>12} {:>12} {:>11.2}s {:>10} in {:.2}s",
            size,
            first.1["stripeRequests"],
            // ceil(N/100) for the PaymentIntents + ceil(C/100) for the charges; here every
            // PaymentIntent has one charge, so C = N.
            size.div_ceil(100) * 2,
            first.1["created"].as_u64().unwrap_or(0) + first.1["updated"].as_u64().unwrap_or(0),
            first.0.as_secs_f64(),
            again.1["created"].as_u64().unwrap_or(0) + again.1["updated"].as_u64().unwrap_or(0),
            again.0.as_secs_f64(),
        );
    }
}

/// Links the member to the customer and reconciles; returns the wall time and the report.
async fn link_and_sync(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    user: &str,
    customer: &str,
) -> anyhow::Result<(Duration, Value)> {
    http.put(format!("{base}/internal/members/{user}/stripe-customer"))
        .bearer_auth(admin)
        .json(&json!({ "stripeCustomerId": customer }))
        .send()
        .await?
        .error_for_status()?;
    sync(http, base, admin, user).await
}

async fn sync(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    user: &str,
) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let report: Value = http
        .post(format!("{base}/internal/sync/stripe"))
        .bearer_auth(admin)
        .json(&json!({ "userId": user }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((started.elapsed(), report))
}

async fn customer_of(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let profile: Value = http
        .get(format!("{base}/dashboard/profile"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    Ok(profile["stripeCustomerId"].as_str().unwrap_or_default().to_string())
}

/// What one webhook ingestion run measured.
struct Ingest {
    deliveries: usize,
    unique: usize,
    wall: Duration,
    server_cpu_us: f64,
    /// The server's CPU over the first deliveries alone (each event's first).
    first_cpu_us: f64,
    /// The store process's CPU over the same deliveries.
    store_cpu_us: f64,
    stripe_requests: u64,
    failures: usize,
}

impl Ingest {
    /// Prints and records the median of each figure over the rounds (one round is about two
    /// seconds of load on this shared machine: too short alone), with its range.
    fn report(rounds: &[Ingest], record: &mut Record, profile_cpu_us: Option<f64>) {
        let figure = |f: &dyn Fn(&Ingest) -> f64| -> (f64, f64, f64) {
            let mut values: Vec<f64> = rounds.iter().map(f).collect();
            values.sort_by(f64::total_cmp);
            (values[values.len() / 2], values[0], values[values.len() - 1])
        };
        let redeliveries = |i: &Ingest| (i.deliveries - i.unique).max(1) as f64;
        let events_per_s = figure(&|i| i.deliveries as f64 / i.wall.as_secs_f64());
        let cpu = figure(&|i| i.server_cpu_us / i.deliveries as f64);
        let store_cpu = figure(&|i| i.store_cpu_us / i.deliveries as f64);
        let first = figure(&|i| i.first_cpu_us / i.unique as f64);
        let again = figure(&|i| (i.server_cpu_us - i.first_cpu_us) / redeliveries(i));
        let unique: usize = rounds.iter().map(|i| i.unique).sum();
        let deliveries: usize = rounds.iter().map(|i| i.deliveries).sum();
        let stripe_requests: u64 = rounds.iter().map(|i| i.stripe_requests).sum();
        let failures: usize = rounds.iter().map(|i| i.failures).sum();
        let stripe_per_event = stripe_requests as f64 / unique as f64;
        record.set("webhooks.events_per_s", events_per_s.0);
        record.set("webhooks.server_cpu_us_per_delivery", cpu.0);
        record.set("webhooks.server_cpu_us_per_first_delivery", first.0);
        record.set("webhooks.server_cpu_us_per_redelivery", again.0);
        record.set("webhooks.store_cpu_us_per_delivery", store_cpu.0);
        record.set("webhooks.stripe_requests_per_event", stripe_per_event);
        let profile =
            profile_cpu_us.map_or(String::new(), |us| format!("; the profile read: {us:.1} us"));
        let range = |(_, low, high): (f64, f64, f64)| format!("{low:.0}-{high:.0}");
        println!(
            "webhooks: {} rounds of {} deliveries ({} events + {} duplicates, 16 concurrent), \
             medians (range): {:.0} ({}) events/s (target >= 2,500), {:.0} ({}) us server CPU \
             per delivery (target <= 300{profile}; the store's: {:.0} us), {stripe_per_event:.3} \
             Stripe requests per event (target <= 0.2), {failures} failed; server CPU per first \
             delivery {:.0} ({}) us, per redelivery {:.0} ({}) us; {} tokio worker thread(s)",
            rounds.len(),
            deliveries / rounds.len(),
            unique / rounds.len(),
            (deliveries - unique) / rounds.len(),
            events_per_s.0,
            range(events_per_s),
            cpu.0,
            range(cpu),
            store_cpu.0,
            first.0,
            range(first),
            again.0,
            range(again),
            worker_threads(),
        );
    }
}

/// Webhook ingestion: the simulator's ordinary shop traffic for every member (intents created
/// and paid, charges succeeded, failed and updated, refunds and disputes:
/// `StripeSim::shop_orders`), signed and delivered 16 at a time with 20% duplicates;
/// `BENCH_WEBHOOK_ROUNDS` rounds (default 5), each with new orders.
fn webhook_ingest(
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    sim: &StripeSim,
    server: &KillOnDrop,
    store: &StoreProcess,
    base: &str,
    tokens: &[String],
) -> anyhow::Result<Vec<Ingest>> {
    let rounds: usize = std::env::var("BENCH_WEBHOOK_ROUNDS")
        .map_or(Ok(5), |n| n.parse())
        .map_err(|_| anyhow::anyhow!("BENCH_WEBHOOK_ROUNDS must be a whole number"))?;
    let customers: Vec<String> = tokens
        .iter()
        .map(|token| runtime.block_on(customer_of(http, base, token)))
        .collect::<anyhow::Result<_>>()?;
    let mut results = Vec::new();
    for _ in 0..rounds.max(1) {
        let events_before = sim.events().len();
        for customer in &customers {
            sim.shop_orders(customer, 10);
        }
        let mut deliveries: Vec<Value> = sim.events().split_off(events_before);
        let unique = deliveries.len();
        let duplicates: Vec<Value> = deliveries.iter().step_by(4).cloned().collect();
        deliveries.extend(duplicates);
        let url = format!("{base}/webhooks/stripe");
        // Serialized and signed before the clock starts, as Stripe's senders are not this
        // machine's: the load generator shares the two cores with the server and the store.
        let now = chrono::Utc::now().timestamp();
        let signed: Vec<(String, String)> = deliveries
            .iter()
            .map(|event| {
                let body = event.to_string();
                (stripe_sim::signature_header(BENCH_WEBHOOK_SECRET, now, &body), body)
            })
            .collect();
        let count = signed.len();
        let cpu_before = cpu_ticks(server.0.id())?;
        let store_before = cpu_ticks(store.process.0.id())?;
        let stripe_before = sim.request_count();
        let started = Instant::now();
        // Every event once, then the redeliveries (as Stripe's retries come later), so that the
        // CPU of each is known.
        let mut signed = signed;
        let again = signed.split_off(unique);
        let mut failures = runtime.block_on(deliver_all(http, &url, signed));
        let cpu_first = cpu_ticks(server.0.id())?;
        failures += runtime.block_on(deliver_all(http, &url, again));
        let ticks_us = |ticks: u64| ticks as f64 / 100.0 * 1e6;
        results.push(Ingest {
            deliveries: count,
            unique,
            wall: started.elapsed(),
            first_cpu_us: ticks_us(cpu_first - cpu_before),
            server_cpu_us: ticks_us(cpu_ticks(server.0.id())? - cpu_before),
            store_cpu_us: ticks_us(cpu_ticks(store.process.0.id())? - store_before),
            stripe_requests: sim.request_count() - stripe_before,
            failures,
        });
    }
    Ok(results)
}

/// Delivers signed events (signature header, body), 16 at a time; returns how many were not
/// answered 200.
async fn deliver_all(http: &reqwest::Client, url: &str, events: Vec<(String, String)>) -> usize {
    use futures::StreamExt;
    futures::stream::iter(events)
        .map(|(signature, body)| async move {
            let response = http
                .post(url)
                .header("stripe-signature", signature)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            usize::from(!response.is_ok_and(|r| r.status().is_success()))
        })
        .buffer_unordered(16)
        .fold(0, |failed, f| async move { failed + f })
        .await
}

fn lua_rotating_tokens(tokens: &[String]) -> String {
    let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "tokens = {{ {} }}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  \
         local token = tokens[(counter % #tokens) + 1]\n  \
         return wrk.format(\"GET\", nil, {{ [\"Authorization\"] = \"Bearer \" .. token }})\nend\n",
        list.join(", ")
    )
}

#[allow(clippy::too_many_arguments)]
fn measure(
    name: &str,
    process: &KillOnDrop,
    store: Option<&StoreProcess>,
    ready: Duration,
    wrk_args: &[&str],
    url: &str,
    duration: &str,
    connections: &str,
) -> anyhow::Result<Figures> {
    let pid = process.0.id();
    let store_pid = store.map(|s| s.process.0.id());
    let store_before = store_pid.map(cpu_ticks).transpose()?;
    let cpu_before = cpu_ticks(pid)?;
    let output = Command::new("wrk")
        .args(["-t1", "-c", connections, "-d", duration])
        .args(wrk_args)
        .arg(url)
        .output()?;
    let cpu_after = cpu_ticks(pid)?;
    let store_after = store_pid.map(cpu_ticks).transpose()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || text.contains("Non-2xx") {
        anyhow::bail!("wrk against {name} failed or saw errors:\n{text}");
    }
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no request count in wrk output:\n{text}"))?;
    let field = |prefix: &str| -> String {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("?")
            .to_string()
    };
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_us = (cpu_after - cpu_before) as f64 / ticks_per_sec * 1e6;
    let store_cpu_us = store_before
        .zip(store_after)
        .map(|(before, after)| (after - before) as f64 / ticks_per_sec * 1e6);
    Ok(Figures {
        name: name.to_string(),
        store_cpu_us_per_req: store_cpu_us.map(|us| us / requests as f64),
        ready,
        requests,
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        cpu_us_per_req: cpu_us / requests as f64,
        peak_rss_kib: peak_rss_kib(pid)?,
    })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

/// The process settings the template gives the Lambda functions: mimalloc commits arena memory
/// as it is used, and one tokio worker thread (`BENCH_WORKER_THREADS` to compare others).
fn lambda_settings(cmd: &mut Command) -> &mut Command {
    cmd.env("MIMALLOC_ARENA_EAGER_COMMIT", "0").env("TOKIO_WORKER_THREADS", worker_threads())
}

fn worker_threads() -> String {
    std::env::var("BENCH_WORKER_THREADS").unwrap_or_else(|_| "1".into())
}

/// Spawns the process (with [`lambda_settings`]) and times exec to the first 200 from
/// `GET /healthz`.
fn start_timed(cmd: &mut Command, port: u16) -> anyhow::Result<(KillOnDrop, Duration)> {
    lambda_settings(cmd).stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let child = KillOnDrop(cmd.spawn()?);
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(200) = http_get(port, "/healthz", None) {
            return Ok((child, started.elapsed()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    anyhow::bail!("server on port {port} never became ready")
}

fn http_get(port: u16, path: &str, token: Option<&str>) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(status)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.exists())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
