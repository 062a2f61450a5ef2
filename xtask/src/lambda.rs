//! The Lambda artifact and what the Lambda-mode end-to-end test runs it with.
//!
//! `sam build` (through `infra/Makefile`: `cargo lambda build --release --arm64
//! --no-default-features`) makes the arm64 `bootstrap` that a deploy uploads. The test runs that
//! very file, under qemu's user-mode emulation on an x86_64 machine, behind the real Lambda Web
//! Adapter built from crates.io. The installs this needs (the Rust target, make, the venv with
//! cargo-lambda and SAM, the adapter, qemu) are `tools`' job; this owns the build and the
//! emulation wrapper.
//!
//! Imports `process` and `tools`.

use crate::process::step;
use crate::tools::{
    ensure_make, ensure_qemu_aarch64, ensure_rust_target, lambda_adapter, venv, ARM64_SYSROOT,
    QEMU_AARCH64,
};
use anyhow::{bail, Context};
use camino::{Utf8Path, Utf8PathBuf};
use std::process::Command;

/// The Lambda's architecture, as a Rust target.
const TARGET: &str = "aarch64-unknown-linux-gnu";

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
    let adapter = lambda_adapter(root)?;
    let bootstrap =
        if std::env::consts::ARCH == "aarch64" { artifact } else { emulated(root, &artifact)? };
    Ok(LambdaBinaries { bootstrap, adapter })
}

/// `sam build` from `infra/`, as the deploy docs say; returns the API function's `bootstrap`.
fn sam_build(root: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    ensure_rust_target(TARGET)?;
    // SAM's makefile build method runs GNU make.
    ensure_make()?;
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

/// A `bootstrap` that runs the arm64 artifact under qemu-user (installed from Debian if missing).
fn emulated(root: &Utf8Path, artifact: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    ensure_qemu_aarch64()?;
    let dir = root.join("target/lambda-e2e");
    std::fs::create_dir_all(&dir)?;
    let wrapper = dir.join("bootstrap");
    let script = format!("#!/bin/sh\nexec {QEMU_AARCH64} -L {ARM64_SYSROOT} {artifact} \"$@\"\n");
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
