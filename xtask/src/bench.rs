//! `cargo xtask bench`: the release build of the server and the bench driver, then the driver
//! itself (`tests/src/bin/bench.rs`), which starts the processes, runs wrk and prints the
//! figures.
//!
//! Imports `process` and `tools`.

use crate::process::{cargo, step};
use crate::repo_root;
use crate::tools::ensure_wrk;
use std::process::{Command, ExitCode};

/// Release build, then the bench driver with wrk's `duration` and `connections`.
pub fn run(duration: &str, connections: u32) -> anyhow::Result<ExitCode> {
    let root = repo_root();
    ensure_wrk()?;
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
