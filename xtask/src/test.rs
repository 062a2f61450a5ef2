//! `cargo xtask test`: the one command that runs every check, in the order that fails fastest.
//! It installs what it needs (a Python venv with schemathesis) so it also works on a new machine.

use crate::repo_root;
use anyhow::{bail, Context};
use camino::{Utf8Path, Utf8PathBuf};
use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Python tools, pinned so results do not move under us.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
const CFN_LINT: &str = "cfn-lint==1.58.0";
const SAM_CLI: &str = "aws-sam-cli==1.170.0";
/// Builds the arm64 Lambda artifact (brings zig as a Python package).
const CARGO_LAMBDA: &str = "cargo-lambda==1.9.2";
/// moto's DynamoDB server: the second implementation the integration suite runs on.
const MOTO: &str = "moto[server]==5.2.5";

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

fn outcome(result: &anyhow::Result<()>) -> &'static str {
    if result.is_ok() {
        "passed"
    } else {
        "FAILED"
    }
}

/// The integration tests (`dashboard-tests`) against moto's server, started from the venv on a
/// free port and stopped afterwards.
fn moto_tests(root: &Utf8Path) -> anyhow::Result<()> {
    let moto = venv(root)?.join("bin/moto_server");
    let port = free_port()?;
    let log = root.join("target/moto_server.log");
    let process = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
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
    step(&format!("integration tests, on moto_server (127.0.0.1:{port})"), &mut tests)
}

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
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(root.join("tools/stripe-signature")),
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

fn cargo(root: &Utf8Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(root);
    cmd
}

fn npm(dir: &Utf8Path, args: &[&str]) -> Command {
    let mut command = Command::new("npm");
    command.args(args).current_dir(dir);
    command
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs Debian packages the machine lacks (CI starts from a bare image).
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let list = packages.join(" ");
    step(
        &format!("apt-get install {list}"),
        Command::new("sh")
            .args(["-c", &format!("apt-get update -qq && apt-get install -y -qq {list}")]),
    )
}

pub fn step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {name}");
    let status = cmd.status().with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// `cargo xtask bench`: release build, then the bench driver (which starts the processes).
pub fn bench(duration: &str, connections: u32) -> anyhow::Result<ExitCode> {
    let root = repo_root();
    if Command::new("wrk").arg("--version").output().is_err() {
        apt_install(&["wrk"])?;
    }
    step(
        "cargo build --release",
        &mut cargo(
            &root,
            &[
                "build",
                "--release",
                "-p",
                "dashboard-server",
                "--bins",
                "--examples",
                "-p",
                "dashboard-tests",
                "--bin",
                "bench",
            ],
        ),
    )?;
    step(
        "bench",
        Command::new(root.join("target/release/bench")).args([duration, &connections.to_string()]),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The project's Python venv with the pinned tools (created on first use).
pub fn venv(root: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let venv = root.join(".venv");
    let ready = venv.join(".tools-installed");
    let tools = [SCHEMATHESIS, CFN_LINT, SAM_CLI, CARGO_LAMBDA, MOTO];
    let wanted = tools.join(" ");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(wanted.as_str()) {
        if !venv.join("bin/pip").exists() {
            step("python venv", Command::new("python3").args(["-m", "venv", venv.as_str()]))?;
        }
        step(
            "pip install (schemathesis, cfn-lint, aws-sam-cli, cargo-lambda, moto)",
            Command::new(venv.join("bin/pip")).args(["install", "-q"]).args(tools),
        )?;
        std::fs::write(&ready, &wanted)?;
    }
    Ok(venv)
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
    let server = DevServer::start(root, &["--no-seed"])?;
    let (data_dir, port) = (server.data_dir.clone(), server.port);
    let base = format!("http://127.0.0.1:{port}");
    let server_bin = root.join("target/debug/dashboard-server");
    let token = Command::new(&server_bin)
        .args(["mint-token", "--user-id", "contract-test-member", "--scope", "dashboard/admin"])
        .env("DASHBOARD_DATA_DIR", &data_dir)
        .output()?;
    if !token.status.success() {
        bail!("mint-token failed: {}", String::from_utf8_lossy(&token.stderr));
    }
    let token = String::from_utf8(token.stdout)?.trim().to_owned();
    eprintln!("==> schemathesis (--checks all --mode all)");
    let started = Instant::now();
    let mut child = Command::new(&st)
        .args(["--config-file", root.join("schemathesis.toml").as_str()])
        .args(["run", root.join("openapi/dashboard.json").as_str(), "--url", &base])
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

/// The server binary on its development default, in a fresh data folder, on a free port.
struct DevServer {
    data_dir: Utf8PathBuf,
    port: u16,
    _process: KillOnDrop,
    _data: tempfile::TempDir,
}

impl DevServer {
    fn start(root: &Utf8Path, args: &[&str]) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let data_dir = Utf8PathBuf::from_path_buf(data.path().to_owned()).expect("utf-8 temp path");
        let port = free_port()?;
        let process = Command::new(root.join("target/debug/dashboard-server"))
            .arg("serve")
            .args(args)
            .env("DASHBOARD_BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DASHBOARD_DATA_DIR", &data_dir)
            .env("DASHBOARD_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data_dir.join("server.log"))?)
            .spawn()
            .context("starting dashboard-server")?;
        let server = DevServer { data_dir, port, _process: KillOnDrop(process), _data: data };
        wait_ready(&format!("127.0.0.1:{port}"))?;
        Ok(server)
    }

    fn print_log_tail(&self) {
        let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("server log (last lines):");
        for line in tail.into_iter().rev() {
            eprintln!("  {line}");
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The example dashboard in headless Chromium (Playwright) against the real server on its
/// development default (demo member, simulator orders), served by `vite preview`.
fn browser_tests(root: &Utf8Path) -> anyhow::Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        apt_install(&["chromium"])?;
    }
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

/// Polls `GET /healthz` until it answers 200.
pub fn wait_ready(addr: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            let request =
                format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
                && response.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("server did not become ready at {addr} within 30 s")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
