//! Installing and locating the tools the tasks run, so that they also work on a new machine (CI
//! starts from a bare image): the pinned versions, the Python venv (`.venv/`) with the pinned
//! Python tools, the Lambda Web Adapter (`cargo install` into `target/tools`), a rustup target,
//! and the Debian packages installed with apt when missing (wrk, chromium, make, qemu-user with
//! the arm64 C library). Every install the tasks do is here; what the tools are used for is not.
//!
//! Imports only `process`.

use crate::process::{cargo, step};
use camino::{Utf8Path, Utf8PathBuf};
use std::process::{Command, Stdio};

/// Python tools, pinned so results do not move under us.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
const CFN_LINT: &str = "cfn-lint==1.58.0";
const SAM_CLI: &str = "aws-sam-cli==1.170.0";
/// Builds the arm64 Lambda artifact (brings zig as a Python package).
const CARGO_LAMBDA: &str = "cargo-lambda==1.9.2";
/// moto's DynamoDB server: the second implementation the integration suite runs on.
const MOTO: &str = "moto[server]==5.2.5";
/// The adapter release the template's layer (`LambdaAdapterLayerArm64:26`) corresponds to.
const ADAPTER_VERSION: &str = "=1.0.0-rc1";

/// qemu's user-mode emulator for aarch64 binaries (Debian's `qemu-user`).
pub const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64";
/// Where Debian's `libc6-arm64-cross` puts the aarch64 C library.
pub const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

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

/// Whether `cargo nextest` is installed (the test command falls back to `cargo test` if not).
pub fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Lambda Web Adapter from crates.io, installed under `target/tools` (once per version).
pub fn lambda_adapter(root: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let tools = root.join("target/tools");
    step(
        "cargo install lambda_web_adapter",
        cargo(root, &["install", "--locked", "--quiet", "lambda_web_adapter"])
            .args(["--version", ADAPTER_VERSION, "--bin", "lambda-adapter"])
            .args(["--root", tools.as_str(), "--target-dir"])
            .arg(root.join("target/tools-build")),
    )?;
    Ok(tools.join("bin/lambda-adapter"))
}

/// Adds the Rust standard library for `target` with rustup if it is not installed.
pub fn ensure_rust_target(target: &str) -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output()?;
    if !String::from_utf8_lossy(&installed.stdout).lines().any(|t| t == target) {
        step("rustup target add", Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
}

/// GNU make (SAM's makefile build method runs it).
pub fn ensure_make() -> anyhow::Result<()> {
    if Command::new("make").arg("--version").output().is_err() {
        apt_install(&["make"])?;
    }
    Ok(())
}

/// qemu-user and the aarch64 C library, to run arm64 binaries on another architecture.
pub fn ensure_qemu_aarch64() -> anyhow::Result<()> {
    if !Utf8Path::new(QEMU_AARCH64).exists() || !Utf8Path::new(ARM64_SYSROOT).join("lib").exists() {
        apt_install(&["qemu-user", "libc6-arm64-cross"])?;
    }
    Ok(())
}

/// wrk, the load generator of the bench.
pub fn ensure_wrk() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        apt_install(&["wrk"])?;
    }
    Ok(())
}

/// The Chromium the browser tests drive: `$CHROMIUM`, else Debian's `/usr/bin/chromium`.
/// Debian's chromium is installed if that path does not exist.
pub fn chromium() -> anyhow::Result<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        apt_install(&["chromium"])?;
    }
    Ok(chromium)
}

/// Installs Debian packages the machine lacks (CI starts from a bare image).
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let list = packages.join(" ");
    step(
        &format!("apt-get install {list}"),
        Command::new("sh")
            .args(["-c", &format!("apt-get update -qq && apt-get install -y -qq {list}")]),
    )
}
