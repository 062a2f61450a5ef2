//! Running steps and processes: `step` (one named command, announced with `==>`, failing the
//! task if the command fails), the `cargo` and `npm` command builders, `free_port`,
//! `wait_ready` (poll `GET /healthz`), `KillOnDrop` for background processes, and `DevServer`
//! (the server binary on a free port, as the contract and browser runs use it).
//!
//! The lowest module of the crate: it imports nothing from the others.

use anyhow::{bail, Context};
use camino::{Utf8Path, Utf8PathBuf};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion as the step `name`; an error if it cannot start or does not succeed.
pub fn step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {name}");
    let status = cmd.status().with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// `cargo <args>` in `root`, with the cargo that runs this task (`$CARGO`) if there is one.
pub fn cargo(root: &Utf8Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(root);
    cmd
}

/// `npm <args>` in `dir`.
pub fn npm(dir: &Utf8Path, args: &[&str]) -> Command {
    let mut command = Command::new("npm");
    command.args(args).current_dir(dir);
    command
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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

/// A background process, killed (and reaped) when this goes out of scope.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server binary on its development default, in a fresh data folder, on a free port.
pub struct DevServer {
    pub data_dir: Utf8PathBuf,
    pub port: u16,
    _process: KillOnDrop,
    _data: tempfile::TempDir,
}

impl DevServer {
    /// Starts `target/debug/dashboard-server serve <args>` and waits until it answers `/healthz`.
    pub fn start(root: &Utf8Path, args: &[&str]) -> anyhow::Result<Self> {
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

    pub fn print_log_tail(&self) {
        let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("server log (last lines):");
        for line in tail.into_iter().rev() {
            eprintln!("  {line}");
        }
    }
}
