//! `cargo xtask bench`: load `GET /dashboard/profile` (RS256 tokens) on the release server, with
//! its store in another process, and a bare Dropshot endpoint in the same run; print figures.
//!
//! Figures: req/s, p50/p99 latency (wrk), server CPU microseconds per request and peak RSS
//! (from /proc), and exec-to-ready time. Not a test: it asserts nothing and prints targets next
//! to the measurements.

use dashboard_tests::jwks::SigningKey;
use dashboard_tests::{claims, CLIENT_ID, ISSUER};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MEMBERS: usize = 64;

struct Figures {
    name: &'static str,
    ready: Duration,
    requests: u64,
    rps: f64,
    p50: String,
    p99: String,
    cpu_us_per_req: f64,
    peak_rss_kib: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let duration = args.get(1).cloned().unwrap_or_else(|| "10s".into());
    let connections = args.get(2).cloned().unwrap_or_else(|| "16".into());
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    let server_bin = release.join("dashboard-server");
    let bare_bin = release.join("examples/bare_dropshot");
    which("wrk").ok_or_else(|| anyhow::anyhow!("wrk is needed: apt-get install -y wrk"))?;

    let work = tempfile::tempdir()?;
    // The store runs in its own process, as DynamoDB would.
    let mut store = Command::new(&server_bin)
        .args(["store"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut endpoint = String::new();
    BufReader::new(store.stdout.take().unwrap()).read_line(&mut endpoint)?;
    let store = KillOnDrop(store);
    let endpoint = endpoint.trim().to_string();

    let key = SigningKey::generate("bench-key");
    let jwks = work.path().join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [key.jwk] }).to_string())?;
    let tokens: Vec<String> = (0..MEMBERS)
        .map(|i| {
            key.sign(
                Some("bench-key"),
                &claims(json!({"sub": format!("bench-member-{i:02}"), "exp": chrono::Utc::now().timestamp() + 3600})),
            )
        })
        .collect();
    let script = work.path().join("tokens.lua");
    std::fs::write(&script, lua_rotating_tokens(&tokens))?;

    let port = free_port()?;
    let mut server_cmd = Command::new(&server_bin);
    server_cmd
        .args(["serve"])
        .env("DASHBOARD_BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DASHBOARD_DYNAMODB_ENDPOINT", &endpoint)
        .env("DASHBOARD_JWT_ISSUER", ISSUER)
        .env("DASHBOARD_JWT_CLIENT_ID", CLIENT_ID)
        .env("DASHBOARD_JWKS_FILE", &jwks)
        .env("DASHBOARD_TABLE_PREFIX", "bench-")
        .env("DASHBOARD_LOG_FORMAT", "json");
    let (server, ready) = start_timed(&mut server_cmd, port)?;
    // First reads create the members' profiles; the load then measures steady-state reads.
    for token in &tokens {
        http_get(port, "/dashboard/profile", Some(token))?;
    }
    let profile = measure(
        "GET /dashboard/profile",
        &server,
        ready,
        &["--latency", "-s", script.to_str().unwrap()],
        &format!("http://127.0.0.1:{port}/dashboard/profile"),
        &duration,
        &connections,
    )?;
    drop(server);

    let port = free_port()?;
    let mut bare_cmd = Command::new(&bare_bin);
    bare_cmd.env("DASHBOARD_BIND_ADDR", format!("127.0.0.1:{port}"));
    let (bare, ready) = start_timed(&mut bare_cmd, port)?;
    let baseline = measure(
        "bare Dropshot endpoint",
        &bare,
        ready,
        &["--latency"],
        &format!("http://127.0.0.1:{port}/healthz"),
        &duration,
        &connections,
    )?;
    drop(bare);
    drop(store);

    println!();
    println!(
        "wrk: 1 thread, {connections} connections, {duration}; {MEMBERS} members, RS256 tokens"
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "", "requests", "req/s", "p50", "p99", "CPU us/req", "peak RSS", "ready"
    );
    for f in [&profile, &baseline] {
        println!(
            "{:<26} {:>10} {:>10.0} {:>10} {:>10} {:>12.1} {:>9} MiB {:>8.1}ms",
            f.name,
            f.requests,
            f.rps,
            f.p50,
            f.p99,
            f.cpu_us_per_req,
            f.peak_rss_kib / 1024,
            f.ready.as_secs_f64() * 1000.0
        );
    }
    println!();
    let ratio = profile.cpu_us_per_req / baseline.cpu_us_per_req;
    println!("CPU per request vs bare: {ratio:.2}x (target <= 2x)");
    println!("peak RSS: {:.1} MiB (target < 30 MiB)", profile.peak_rss_kib as f64 / 1024.0);
    println!(
        "exec-to-ready without the embedded store: {:.1} ms (target < 10 ms)",
        profile.ready.as_secs_f64() * 1000.0
    );
    Ok(())
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

fn measure(
    name: &'static str,
    process: &KillOnDrop,
    ready: Duration,
    wrk_args: &[&str],
    url: &str,
    duration: &str,
    connections: &str,
) -> anyhow::Result<Figures> {
    let pid = process.0.id();
    let cpu_before = cpu_ticks(pid)?;
    let output = Command::new("wrk")
        .args(["-t1", "-c", connections, "-d", duration])
        .args(wrk_args)
        .arg(url)
        .output()?;
    let cpu_after = cpu_ticks(pid)?;
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
    Ok(Figures {
        name,
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

/// Spawns the process and times exec to the first 200 from `GET /healthz`.
fn start_timed(cmd: &mut Command, port: u16) -> anyhow::Result<(KillOnDrop, Duration)> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
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
