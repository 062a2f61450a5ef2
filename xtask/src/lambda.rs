//! The Lambda artifact and what the Lambda-mode end-to-end test runs it with.
//!
//! `sam build` (through `infra/Makefile`: `cargo lambda build --release --arm64
//! --no-default-features`) makes the arm64 `bootstrap` that a deploy uploads. The test runs that
//! very file, under qemu's user-mode emulation on an x86_64 machine, behind the real Lambda Web
//! Adapter built from crates.io.

use crate::test::{apt_install, step, venv};
use anyhow::{bail, Context};
use camino::{Utf8Path, Utf8PathBuf};
use std::process::Command;

/// The adapter release the template's layer (`LambdaAdapterLayerArm64:26`) corresponds to.
const ADAPTER_VERSION: &str = "=1.0.0-rc1";
const TARGET: &str = "aarch64-unknown-linux-gnu";
/// Where Debian's `libc6-arm64-cross` puts the aarch64 C library.
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// What the Lambda-mode test needs, as the environment variables it reads.
pub struct LambdaBinaries {
    pub bootstrap: Utf8PathBuf,
    pub adapter: Utf8PathBuf,
}

impl LambdaBinaries {
    pub fn env(&self) -> [(&'static str, &Utf8Path); 2] {
        [
            ("DASHBOARD_LAMBDA_BOOTSTRAP", self.bootstrap.as_path()),
            ("DASHBOARD_LAMBDA_ADAPTER", self.adapter.as_path()),
        ]
    }
}

/// Builds the deploy artifact with `sam build` and the adapter, and returns how to run them.
pub fn prepare(root: &Utf8Path) -> anyhow::Result<LambdaBinaries> {
    let artifact = sam_build(root)?;
    let adapter = adapter(root)?;
    let bootstrap =
        if std::env::consts::ARCH == "aarch64" { artifact } else { emulated(root, &artifact)? };
    Ok(LambdaBinaries { bootstrap, adapter })
}

/// `sam build` from `infra/`, as the deploy docs say; returns the API function's `bootstrap`.
fn sam_build(root: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output()?;
    if !String::from_utf8_lossy(&installed.stdout).lines().any(|t| t == TARGET) {
        step("rustup target add", Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    // SAM's makefile build method runs GNU make.
    if Command::new("make").arg("--version").output().is_err() {
        apt_install(&["make"])?;
    }
    let bin = venv(root)?.join("bin");
    // cargo-lambda and its zig come from the venv.
    let path = std::env::join_paths(
        std::iter::once(bin.clone().into_std_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    step(
        "sam build (cargo lambda build --release --arm64 --no-default-features)",
        Command::new(bin.join("sam"))
            .arg("build")
            .env("PATH", path)
            .env("SAM_CLI_TELEMETRY", "0")
            .current_dir(root.join("infra")),
    )?;
    let artifact = root.join("infra/.aws-sam/build/ApiFunction/bootstrap");
    let size = std::fs::metadata(&artifact).with_context(|| format!("{artifact} missing"))?.len();
    eprintln!("Lambda artifact: {artifact} ({:.1} MiB, arm64)", size as f64 / 1048576.0);
    Ok(artifact)
}

/// The Lambda Web Adapter from crates.io, installed under `target/tools` (once per version).
fn adapter(root: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let tools = root.join("target/tools");
    step(
        "cargo install lambda_web_adapter",
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "--locked", "--quiet", "lambda_web_adapter"])
            .args(["--version", ADAPTER_VERSION, "--bin", "lambda-adapter"])
            .args(["--root", tools.as_str(), "--target-dir"])
            .arg(root.join("target/tools-build"))
            .current_dir(root),
    )?;
    Ok(tools.join("bin/lambda-adapter"))
}

/// A `bootstrap` that runs the arm64 artifact under qemu-user (installed from Debian if missing).
fn emulated(root: &Utf8Path, artifact: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let qemu = "/usr/bin/qemu-aarch64";
    if !Utf8Path::new(qemu).exists() || !Utf8Path::new(ARM64_SYSROOT).join("lib").exists() {
        apt_install(&["qemu-user", "libc6-arm64-cross"])?;
    }
    let dir = root.join("target/lambda-e2e");
    std::fs::create_dir_all(&dir)?;
    let wrapper = dir.join("bootstrap");
    let script = format!("#!/bin/sh\nexec {qemu} -L {ARM64_SYSROOT} {artifact} \"$@\"\n");
    std::fs::write(&wrapper, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    let check = Command::new(&wrapper).arg("--version").output()?;
    if !check.status.success() {
        bail!(
            "the arm64 artifact does not run under qemu: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    Ok(wrapper)
}
