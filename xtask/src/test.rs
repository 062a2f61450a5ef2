//! `cargo xtask test`: the one command that runs every check, in the order that fails fastest.
//! It installs what it needs (through `tools`) so it also works on a new machine.
//!
//! This file owns the order (`run`, first) and the stages only this command has, each below it
//! in the order `run` calls them: the SAM template checks, the integration suite on moto's
//! server, the schemathesis contract run and the browser tests. Those stages stay here rather
//! than in files of their own: each is one private function called once from `run`, and
//! together they are short enough that reading this one file tells what the command does, top
//! to bottom. What they share with other tasks is below them: the Lambda artifact (`lambda`),
//! installs (`tools`), processes and the dev server (`process`).
//!
//! Imports `lambda`, `tools` and `process`.

use crate::process::{cargo, free_port, npm, step, wait_ready, DevServer, KillOnDrop};
use crate::repo_root;
use crate::tools::{chromium, has_nextest, venv};
use anyhow::{bail, Context};
use camino::{Utf8Path, Utf8PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip fmt and clippy (for a quick local loop; CI never passes this).
    #[arg(long)]
    quick: bool,
    /// Skip the schemathesis contract run.
    #[arg(long)]
    no_contract: bool,
    /// Skip the Playwright browser tests.
    #[arg(long)]
    no_browser: bool,
    /// Skip the arm64 Lambda build and the Lambda-mode end-to-end test.
    #[arg(long)]
    no_lambda: bool,
    /// Skip the second run of the integration suite on moto's DynamoDB server.
    #[arg(long)]
    no_moto: bool,
}

/// The harness's store selection (`tests/src/store.rs`).
const STORE_VARIABLES: [&str; 3] = [
    "DASHBOARD_TEST_DYNAMODB_ENDPOINT",
    "DASHBOARD_TEST_DYNAMODB_IMPL",
    "DASHBOARD_TEST_AWS_REGION",
];

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let root = repo_root();
    if !args.quick {
        step("cargo fmt --check", &mut cargo(&root, &["fmt", "--all", "--", "--check"]))?;
        step(
            "cargo clippy",
            &mut cargo(&root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        )?;
        // The Lambda build leaves the embedded store out: lint that variant too.
        step(
            "cargo clippy (Lambda build: --no-default-features)",
            &mut cargo(
                &root,
                &[
                    "clippy",
                    "-p",
                    "dashboard-server",
                    "--no-default-features",
                    "--lib",
                    "--bins",
                    "--",
                    "-D",
                    "warnings",
                ],
            ),
        )?;
    }
    step("openapi check", &mut cargo(&root, &["xtask", "openapi", "check"]))?;
    // No change that breaks a deployed client unless the API version says so.
    step("openapi compat check", &mut cargo(&root, &["xtask", "compat", "check"]))?;
    // The TypeScript client: generated types in step with the spec, strict type check, lint.
    let ts = root.join("client/typescript");
    step(
        "npm ci (client/typescript)",
        &mut npm(&ts, &["ci", "--no-audit", "--no-fund", "--loglevel=error"]),
    )?;
    step("TypeScript client up to date", &mut npm(&ts, &["run", "--silent", "check"]))?;
    step("tsc --strict", &mut npm(&ts, &["run", "--silent", "typecheck"]))?;
    step("redocly lint", &mut npm(&ts, &["run", "--silent", "lint:spec"]))?;
    infra_checks(&root)?;
    // One build of every target; the test runner and the contract run reuse it.
    step("cargo build", &mut cargo(&root, &["build", "--workspace", "--all-targets"]))?;
    // Stripe's Node library, for the signature cross-check test.
    step(
        "npm ci (tools/stripe-signature)",
        &mut npm(
            &root.join("tools/stripe-signature"),
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        ),
    )?;
    // The deploy artifact and the adapter for the Lambda-mode test, which is #[ignore]d
    // unless they are built.
    let lambda = if args.no_lambda { None } else { Some(crate::lambda::prepare(&root)?) };
    let (mut tests, include_ignored) = if has_nextest() {
        let tests = cargo(&root, &["nextest", "run", "--workspace", "--no-fail-fast"]);
        (tests, ["--run-ignored", "all"])
    } else {
        (cargo(&root, &["test", "--workspace", "--no-fail-fast"]), ["--", "--include-ignored"])
    };
    if lambda.is_some() {
        tests.args(include_ignored);
    }
    for (name, value) in lambda.iter().flat_map(|l| l.env()) {
        tests.env(name, value);
    }
    // The first run is on the embedded dynoxide whatever the caller's environment says.
    for name in STORE_VARIABLES {
        tests.env_remove(name);
    }
    let on_dynoxide = step("unit and integration tests, on dynoxide (in process)", &mut tests);
    // The integration suite again, on an independent DynamoDB implementation that validates
    // requests as AWS documents (the Lambda-mode test stays on dynoxide).
    let on_moto = if args.no_moto { None } else { Some(moto_tests(&root)) };
    eprintln!("==> integration results per DynamoDB implementation");
    eprintln!("    dynoxide (in process): {}", outcome(&on_dynoxide));
    if let Some(result) = &on_moto {
        eprintln!("    moto server:           {}", outcome(result));
    }
    on_dynoxide?;
    on_moto.transpose()?;
    if !args.no_contract {
        contract_tests(&root)?;
    }
    if !args.no_browser {
        browser_tests(&root)?;
    }
    eprintln!("xtask test: all checks passed");
    Ok(ExitCode::SUCCESS)
}

fn outcome(result: &anyhow::Result<()>) -> &'static str {
    if result.is_ok() {
        "passed"
    } else {
        "FAILED"
    }
}

/// The SAM template, offline: cfn-lint and both modes of `sam validate` (each catches errors
/// the other misses).
fn infra_checks(root: &Utf8Path) -> anyhow::Result<()> {
    let bin = venv(root)?.join("bin");
    let template = root.join("infra/template.yaml");
    step("cfn-lint", Command::new(bin.join("cfn-lint")).arg(&template))?;
    for (name, lint) in [("sam validate", false), ("sam validate --lint", true)] {
        let mut sam = Command::new(bin.join("sam"));
        sam.args(["validate", "--region", "us-east-1", "-t", template.as_str()])
            .env("SAM_CLI_TELEMETRY", "0");
        if lint {
            sam.arg("--lint");
        }
        step(name, &mut sam)?;
    }
    Ok(())
}

/// The integration tests (`dashboard-tests`) against moto's server, started from the venv on a
/// free port and stopped afterwards.
fn moto_tests(root: &Utf8Path) -> anyhow::Result<()> {
    // moto's server with its requests applied one at a time, as DynamoDB isolates them (the
    // script says why).
    let python = venv(root)?.join("bin/python");
    let port = free_port()?;
    let log = root.join("target/moto_server.log");
    let process = Command::new(&python)
        .arg(root.join("tools/moto/serialized_server.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting moto_server")?;
    let _moto = KillOnDrop(process);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("moto_server did not listen on port {port} within 60 s (log: {log})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut tests = if has_nextest() {
        cargo(root, &["nextest", "run", "-p", "dashboard-tests", "--no-fail-fast"])
    } else {
        cargo(root, &["test", "-p", "dashboard-tests", "--no-fail-fast"])
    };
    tests.env("DASHBOARD_TEST_DYNAMODB_ENDPOINT", format!("http://127.0.0.1:{port}"));
    tests.env("DASHBOARD_TEST_DYNAMODB_IMPL", "moto").env_remove("DASHBOARD_TEST_AWS_REGION");
    // The 10,000-event burst of `tests/tests/ledger.rs` holds on dynoxide; here the run checks
    // the same store calls on a second implementation, which a fifth of the burst covers.
    tests.env("LEDGER_BURST_EVENTS", "2000");
    step(&format!("integration tests, on moto_server (127.0.0.1:{port})"), &mut tests)
}

/// Examples per operation and phase of the contract run: 500 is 6,536 cases in 2 to 3.5 min on
/// the 2-core development machine (1,000: about 12,000 cases in 6.5 min, over the budget; 30
/// already found every failure of the spec as it was before this run checked everything).
/// Fixed, like the seed, so that CI generates the same cases every time.
const CONTRACT_MAX_EXAMPLES: &str = "500";

/// Schemathesis against the real server binary on its embedded store, with a valid token: every
/// check, positive and negative data. The per-operation settings (expected statuses for rules
/// that depend on server state or a secret, real wallet addresses for positive data) and their
/// reasons are in `schemathesis.toml`; no check is turned off.
fn contract_tests(root: &Utf8Path) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let st = venv(root)?.join("bin/st");
    // The per-member limit of profile writes (10 a minute by default) would answer nearly every
    // write 429 after the first phase's: the contract run checks answers against the spec, and
    // `tests/tests/limits.rs` checks the limit.
    let server = DevServer::start(root, &["--no-seed", "--profile-writes-per-minute", "1000000"])?;
    let (data_dir, port) = (server.data_dir.clone(), server.port);
    let base = format!("http://127.0.0.1:{port}");
    let server_bin = root.join("target/debug/dashboard-server");
    let token = Command::new(&server_bin)
        .args(["mint-token", "--user-id", "contract-test-member", "--group", "dashboard-admins"])
        .env("DASHBOARD_DATA_DIR", &data_dir)
        .output()?;
    if !token.status.success() {
        bail!("mint-token failed: {}", String::from_utf8_lossy(&token.stderr));
    }
    let token = String::from_utf8(token.stdout)?.trim().to_owned();
    let schema = contract_schema(root)?;
    eprintln!("==> schemathesis (--checks all --mode all)");
    let started = Instant::now();
    let mut child = Command::new(&st)
        .args(["--config-file", root.join("schemathesis.toml").as_str()])
        .args(["run", schema.as_str(), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--mode", "all"])
        .args(["--max-examples", CONTRACT_MAX_EXAMPLES, "--seed", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting schemathesis")?;
    // Echo the report, keeping its count of cases ("Test cases:" then "N generated, …").
    let mut cases = None;
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        println!("{line}");
        if let Some((count, _)) = line.trim().split_once(" generated") {
            cases = count.parse::<u64>().ok().or(cases);
        }
    }
    let status = child.wait()?;
    let cases = cases.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
    eprintln!("schemathesis: {cases} cases in {:.0} s", started.elapsed().as_secs_f64());
    if !status.success() {
        server.print_log_tail();
        bail!("schemathesis failed ({status})");
    }
    Ok(())
}

/// The checked-in spec with OpenAPI links that say where a profile write's `If-Match` comes
/// from, written under `target/contract/` for the contract run (see [`with_etag_links`]); the
/// checked-in spec stays what the server emits.
fn contract_schema(root: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let spec =
        serde_json::from_str(&std::fs::read_to_string(root.join("openapi/dashboard.json"))?)?;
    let dir = root.join("target/contract");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("dashboard.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&with_etag_links(spec)?)?)?;
    Ok(path)
}

/// The profile writes (`PUT`, `PATCH`, `DELETE`) linked from every answer that carries the
/// profile's `ETag` (a read's, or a write's), as their `If-Match`. Dropshot cannot declare
/// links, and without them schemathesis never holds the profile's current version: every write
/// it generated was refused (412 or 428), so no successful write's answer was ever checked. Its
/// stateful phase follows these links.
fn with_etag_links(mut spec: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    use serde_json::{json, Map, Value};
    let links: Map<String, Value> = PROFILE_WRITES
        .iter()
        .map(|target| {
            let link = json!({
                "operationId": target,
                "parameters": { "header.If-Match": "$response.header.ETag" },
            });
            (format!("{target}_with_its_etag"), link)
        })
        .collect();
    let profile = &mut spec["paths"]["/dashboard/profile"];
    for source in ["get", "put", "patch"] {
        let ok = profile[source]["responses"]
            .get_mut("200")
            .and_then(Value::as_object_mut)
            .with_context(|| format!("{source} /dashboard/profile has no 200 answer"))?;
        if ok.get("headers").and_then(|h| h.get("ETag")).is_none() {
            bail!("{source} /dashboard/profile's 200 answer declares no ETag header");
        }
        ok.insert("links".into(), Value::Object(links.clone()));
    }
    Ok(spec)
}

/// The operations that need the profile's current version in `If-Match`.
const PROFILE_WRITES: [&str; 3] = ["put_profile", "patch_profile", "delete_profile"];

/// The example dashboard in headless Chromium (Playwright) against the real server on its
/// development default (demo member, simulator orders), served by `vite preview`.
fn browser_tests(root: &Utf8Path) -> anyhow::Result<()> {
    let chromium = chromium()?;
    let web = root.join("web");
    step("npm ci (web)", &mut npm(&web, &["ci", "--no-audit", "--no-fund", "--loglevel=error"]))?;
    step("web build (tsc --strict, vite)", &mut npm(&web, &["run", "--silent", "build"]))?;
    let server = DevServer::start(root, &[])?;
    let web_port = free_port()?;
    let preview = Command::new("npx")
        .args(["vite", "preview", "--strictPort", "--host", "127.0.0.1", "--port"])
        .arg(web_port.to_string())
        .env("DASHBOARD_API", format!("http://127.0.0.1:{}", server.port))
        .current_dir(&web)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting vite preview")?;
    let _preview = KillOnDrop(preview);
    // `/healthz` through the preview's proxy: both servers are up.
    wait_ready(&format!("127.0.0.1:{web_port}"))?;
    let result = step(
        "playwright (Chromium)",
        Command::new("npx")
            .args(["playwright", "test"])
            .env("DASHBOARD_WEB", format!("http://127.0.0.1:{web_port}"))
            .env("CHROMIUM", &chromium)
            .current_dir(&web),
    );
    if result.is_ok() {
        eprintln!("screenshots: {}", root.join("target/playwright/screenshots"));
    } else {
        server.print_log_tail();
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn the_contract_spec_links_each_etag_to_every_profile_write() {
        let text = std::fs::read_to_string(crate::repo_root().join("openapi/dashboard.json"))
            .expect("the checked-in spec");
        let spec = super::with_etag_links(serde_json::from_str(&text).unwrap()).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        let ids: Vec<&str> = paths
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        for source in ["get", "put", "patch"] {
            let links = spec["paths"]["/dashboard/profile"][source]["responses"]["200"]["links"]
                .as_object()
                .unwrap_or_else(|| panic!("{source} has no links"));
            let targets: Vec<&str> =
                links.values().map(|link| link["operationId"].as_str().unwrap()).collect();
            assert_eq!(targets.len(), super::PROFILE_WRITES.len(), "{source}");
            for link in links.values() {
                assert!(ids.contains(&link["operationId"].as_str().unwrap()), "{link}");
                assert_eq!(
                    link["parameters"]["header.If-Match"],
                    Value::from("$response.header.ETag")
                );
            }
        }
        // Each target takes `If-Match` as a header parameter, so the link fills a real slot.
        for write in ["put", "patch", "delete"] {
            let parameters = spec["paths"]["/dashboard/profile"][write]["parameters"].as_array();
            let names: Vec<&str> = parameters
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(names, ["If-Match"], "{write}");
        }
    }
}
