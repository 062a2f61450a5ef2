//! `dashboard-server reconcile`: one member, or every linked member (`--all`, also the default
//! without `--user-id`) with progress, Ctrl-C and `--resume`.
//!
//! The sweep takes the linked members in user-id order, `DASHBOARD_SYNC_CONCURRENCY` at a
//! time, each through `OrderService::reconcile` (the admin trigger's path; the Stripe budget
//! is the Stripe client's). Where it stopped is kept in a small JSON file (`--state-file`,
//! default `<data dir>/reconcile-all.json`), not in the store: it is one operator's run, not
//! shared state, and the tables (and their IAM grants) stay as they are. The file holds the
//! last user id below which every member is done and the totals so far; it is rewritten at
//! most once a second while running, at Ctrl-C once the members in flight are done, and
//! removed when the sweep completes. A member linked meanwhile with a smaller id than the
//! resume point is not visited by the resumed run (a new link is reconciled as it is made).

use clap::Args;
use dashboard_api::{ScheduledSyncReport, SyncReport};
use dashboard_server::config::ServerArgs;
use dashboard_server::orders::OrderService;
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    dashboard-server reconcile --user-id member-1\n  \
    dashboard-server reconcile --all            # Ctrl-C stops after the members in flight\n  \
    dashboard-server reconcile --all --resume   # goes on from where it stopped")]
pub struct ReconcileArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The member to reconcile; without it, every linked member.
    #[arg(long)]
    user_id: Option<String>,
    /// Every linked member (the default without `--user-id`): a progress bar on a terminal
    /// (stderr, with `TERM` set), else one JSON line per member and a summary line on stdout.
    #[arg(long, conflicts_with = "user_id")]
    all: bool,
    /// Go on from where an interrupted `--all` run stopped (its state file); without a state
    /// file, start from the beginning.
    #[arg(long, conflicts_with = "user_id")]
    resume: bool,
    /// Where `--all` keeps its resume point (default: `reconcile-all.json` in the data dir).
    #[arg(long, conflicts_with = "user_id")]
    state_file: Option<PathBuf>,
}

/// The resume point and the totals so far, as kept between runs.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct State {
    /// Every member up to this user id (inclusive, in byte order) is done.
    after: Option<String>,
    report: ScheduledSyncReport,
}

/// Exit code of a sweep stopped by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

pub async fn run(mut args: ReconcileArgs) -> ExitCode {
    let state_file =
        args.state_file.take().unwrap_or_else(|| args.server.data_dir.join("reconcile-all.json"));
    // indicatif's own test (a terminal, and `TERM` set and not `dumb`): where it would draw
    // nothing, JSON lines are printed instead.
    let terminal = args.user_id.is_none() && !indicatif::ProgressDrawTarget::stderr().is_hidden();
    if terminal && args.server.log_level == "info" {
        // Per-member info records would tear the bar; warnings and errors still show.
        args.server.log_level = "warn".into();
    }
    // The domain runs inside a server bound to a throwaway port; nothing is served to anyone.
    args.server.bind_addr = ([127, 0, 0, 1], 0).into();
    let (config, _, running) = match crate::boot(args.server).await {
        Ok(booted) => booted,
        Err(code) => return code,
    };
    let orders = running.orders().clone();
    let code = match &args.user_id {
        Some(user) => match orders.reconcile(user).await {
            Ok(report) => {
                println!("{}", json!(report));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("dashboard-server: reconcile failed: {error}");
                ExitCode::FAILURE
            }
        },
        None => {
            let concurrency = config.orders.schedule_concurrency.max(1);
            let store = running.store();
            let sweep =
                Sweep { orders: &orders, store, state_file: &state_file, terminal, concurrency };
            sweep.run(args.resume).await
        }
    };
    let _ = running.stop().await;
    code
}

struct Sweep<'a> {
    orders: &'a OrderService,
    store: &'a dashboard_server::storage::Store,
    state_file: &'a Path,
    terminal: bool,
    concurrency: usize,
}

impl Sweep<'_> {
    async fn run(&self, resume: bool) -> ExitCode {
        let mut state = if resume { self.load() } else { Ok(State::default()) };
        let state = match &mut state {
            Ok(state) => state,
            Err(error) => {
                eprintln!("dashboard-server: {error}");
                return ExitCode::FAILURE;
            }
        };
        let mut members = match self.store.linked_members().await {
            Ok(links) => links.into_iter().map(|(user, _)| user).collect::<Vec<_>>(),
            Err(error) => {
                eprintln!("dashboard-server: listing the linked members failed: {error}");
                return ExitCode::FAILURE;
            }
        };
        members.sort();
        members.dedup();
        if let Some(after) = &state.after {
            members.retain(|user| user > after);
        }
        let bar = self.terminal.then(|| progress_bar(members.len() as u64));
        let started = Instant::now();
        let mut stripe_requests = 0u64;
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0usize;
        // Indices done out of order, above the contiguous prefix `members[..done]`.
        let mut finished = BTreeSet::new();
        let mut done = 0usize;
        let mut saved_at = Instant::now();
        let mut stopping = false;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            while !stopping && next < members.len() && in_flight.len() < self.concurrency {
                let index = next;
                let user = members[index].clone();
                in_flight.push(async move { (index, self.orders.reconcile(&user).await) });
                next += 1;
            }
            if in_flight.is_empty() {
                break;
            }
            tokio::select! {
                _ = &mut ctrl_c, if !stopping => {
                    stopping = true;
                    let text = format!("stopping: finishing {} in flight", in_flight.len());
                    match &bar {
                        Some(bar) => bar.set_message(text),
                        None => eprintln!("dashboard-server: {text}"),
                    }
                }
                Some((index, result)) = in_flight.next() => {
                    let user = &members[index];
                    let line = tally(&mut state.report, user, result);
                    stripe_requests += line["stripeRequests"].as_u64().unwrap_or(0);
                    finished.insert(index);
                    while finished.remove(&done) {
                        done += 1;
                    }
                    if done > 0 {
                        state.after = Some(members[done - 1].clone());
                    }
                    match &bar {
                        Some(bar) => {
                            bar.inc(1);
                            let rate = stripe_requests as f64 / started.elapsed().as_secs_f64();
                            bar.set_message(format!(
                                "{stripe_requests} Stripe requests ({rate:.1}/s), {} failed",
                                state.report.failed
                            ));
                        }
                        None => println!("{line}"),
                    }
                    if saved_at.elapsed() >= Duration::from_secs(1) {
                        self.save(state);
                        saved_at = Instant::now();
                    }
                }
            }
        }
        if let Some(bar) = &bar {
            bar.finish();
        }
        let interrupted = stopping && done < members.len();
        state.report.totals.finished_at = Some(chrono::Utc::now());
        if interrupted {
            self.save(state);
        } else {
            let _ = std::fs::remove_file(self.state_file);
        }
        let mut summary = json!({ "type": "summary", "interrupted": interrupted });
        if let (Some(object), serde_json::Value::Object(report)) =
            (summary.as_object_mut(), json!(state.report))
        {
            object.extend(report);
            if interrupted {
                object.insert("resumeAfter".into(), json!(state.after));
                object.insert("stateFile".into(), json!(self.state_file));
            }
        }
        println!("{summary}");
        if interrupted {
            ExitCode::from(INTERRUPTED)
        } else {
            ExitCode::SUCCESS
        }
    }

    fn load(&self) -> Result<State, String> {
        match std::fs::read(self.state_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!("{} is not a reconcile state: {e}", self.state_file.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "dashboard-server: no state in {}: starting from the beginning",
                    self.state_file.display()
                );
                Ok(State::default())
            }
            Err(e) => Err(format!("reading {}: {e}", self.state_file.display())),
        }
    }

    /// Writes the state beside its final name and renames it over: a crash never leaves half
    /// a file. A failure is reported and the sweep goes on (it only costs repeated work).
    fn save(&self, state: &State) {
        let temporary = self.state_file.with_extension("json.tmp");
        let written = self
            .state_file
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&temporary, json!(state).to_string()))
            .and_then(|()| std::fs::rename(&temporary, self.state_file));
        if let Err(error) = written {
            eprintln!("dashboard-server: saving {}: {error}", self.state_file.display());
        }
    }
}

/// Adds one member's outcome to the totals and returns its JSON line.
fn tally(
    report: &mut ScheduledSyncReport,
    user: &str,
    result: Result<SyncReport, dashboard_server::error::DomainError>,
) -> serde_json::Value {
    report.members += 1;
    match result {
        Ok(r) => {
            report.totals.seen += r.seen;
            report.totals.created += r.created;
            report.totals.updated += r.updated;
            report.totals.unchanged += r.unchanged;
            report.totals.stripe_requests += r.stripe_requests;
            let mut line = json!({ "type": "member", "ok": true });
            if let (Some(object), serde_json::Value::Object(fields)) =
                (line.as_object_mut(), json!(r))
            {
                object.extend(fields);
            }
            line
        }
        Err(error) => {
            report.failed += 1;
            json!({ "type": "member", "ok": false, "userId": user, "error": error.to_string() })
        }
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{bar:30} {pos}/{len} members  {msg}  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(total).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
