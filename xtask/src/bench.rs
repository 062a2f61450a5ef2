//! `cargo xtask bench`: the release build of the server and the bench driver, then the driver
//! itself (`tests/src/bin/bench.rs`), which starts the processes, runs wrk and prints the
//! figures.
//!
//! Imports `process` and `tools`.

use crate::process::{cargo, step};
use crate::repo_root;
use crate::tools::ensure_wrk;
use anyhow::Context;
use camino::Utf8Path;
use std::process::{Command, ExitCode};

/// Release build, then the bench driver with wrk's `duration` and `connections`; it writes
/// `target/bench/latest.json` and compares with `compare` when given.
pub fn run(
    duration: &str,
    connections: u32,
    compare: Option<&Utf8Path>,
) -> anyhow::Result<ExitCode> {
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
    let mut bench = Command::new(root.join("target/release/bench"));
    bench.args([duration, &connections.to_string()]);
    if let Some(old) = compare {
        // Read before the run overwrites it, when it is latest.json itself.
        std::fs::create_dir_all(root.join("target/bench"))?;
        let kept = root.join("target/bench/compare-with.json");
        std::fs::copy(old, &kept).with_context(|| format!("reading {old}"))?;
        bench.env("BENCH_COMPARE", kept);
    }
    step("bench", &mut bench)?;
    Ok(ExitCode::SUCCESS)
}
