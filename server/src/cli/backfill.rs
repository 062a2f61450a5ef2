//! `dashboard-server backfill`: links members to Stripe customers by verified email in bulk,
//! for members who signed in before `DASHBOARD_AUTO_LINK=verified-email` (or while Stripe had
//! no customer with their email). Dry-run by default: it prints what it would link and every
//! ambiguity; `--apply` links (the admin link's path, so the claim table decides, and an audit
//! record per link) and reconciles each new link.
//!
//! Which members: no customer, not being erased, and a stored email a token verified: the
//! profile's `verifiedEmail` (written when a token with `email_verified: true` created the
//! profile or claimed the first link by email) equals its `email` (a member's own edit of the
//! email makes it unverified). One Stripe request per member (`GET /v1/customers?email=`, exact
//! and case-sensitive), one after another, within the Stripe client's budget. Progress as
//! `reconcile --all`: a bar on a terminal, else one JSON line per member and a summary. Ctrl-C
//! stops after the member in hand; `--resume` goes on after the last member done (kept in
//! `--state-file`, default `<data dir>/backfill.json`, removed when the run completes).

use clap::Args;
use dashboard_server::config::ServerArgs;
use dashboard_server::error::DomainError;
use dashboard_server::profiles::{self, auto_link_outcome as outcome};
use dashboard_server::storage::profiles::AutoLinkRecord;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    dashboard-server backfill                   # dry run: what it would link, every ambiguity\n  \
    dashboard-server backfill --apply           # link; Ctrl-C stops after the member in hand\n  \
    dashboard-server backfill --apply --resume  # goes on from where it stopped")]
pub struct BackfillArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Link (and reconcile each new link); without it nothing is written.
    #[arg(long)]
    apply: bool,
    /// Go on after the last member an interrupted run finished (its state file).
    #[arg(long)]
    resume: bool,
    /// Where the resume point is kept (default: `backfill.json` in the data dir).
    #[arg(long)]
    state_file: Option<PathBuf>,
}

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

pub async fn run(mut args: BackfillArgs) -> ExitCode {
    let state_file =
        args.state_file.take().unwrap_or_else(|| args.server.data_dir.join("backfill.json"));
    let terminal = !indicatif::ProgressDrawTarget::stderr().is_hidden();
    if terminal && args.server.log_level == "info" {
        args.server.log_level = "warn".into();
    }
    args.server.bind_addr = ([127, 0, 0, 1], 0).into();
    let (_, log, running) = match crate::boot(args.server).await {
        Ok(booted) => booted,
        Err(code) => return code,
    };
    let after = if args.resume { load(&state_file) } else { None };
    let code = match running.store().unlinked_verified_members().await {
        Ok(mut members) => {
            if let Some(after) = &after {
                members.retain(|(user, _)| user > after);
            }
            let run = Run { running: &running, log: &log, apply: args.apply, terminal };
            run.all(&members, &state_file).await
        }
        Err(error) => {
            eprintln!("dashboard-server: listing the members failed: {error}");
            ExitCode::FAILURE
        }
    };
    let _ = running.stop().await;
    code
}

struct Run<'a> {
    running: &'a dashboard_server::RunningServer,
    log: &'a slog::Logger,
    apply: bool,
    terminal: bool,
}

impl Run<'_> {
    async fn all(&self, members: &[(String, String)], state_file: &Path) -> ExitCode {
        let bar = self.terminal.then(|| progress_bar(members.len() as u64));
        let stripe = self.running.orders().stripe();
        let before = stripe.requests();
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut done = 0usize;
        // Ctrl-C is taken between members, never inside one (a link and its reconcile finish).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let watcher = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        for (user, email) in members {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let line = self.one(user, email).await;
            *counts.entry(line.0).or_default() += 1;
            done += 1;
            save(state_file, user);
            let text = line.1.to_string();
            match &bar {
                Some(bar) => {
                    bar.inc(1);
                    // Every link and ambiguity stays on screen above the bar.
                    if line.0 != "skipped" {
                        bar.println(&text);
                    }
                    bar.set_message(format!("{} Stripe requests", stripe.requests() - before));
                }
                None => println!("{text}"),
            }
        }
        watcher.abort();
        if let Some(bar) = &bar {
            bar.finish();
        }
        let interrupted = done < members.len();
        if !interrupted {
            let _ = std::fs::remove_file(state_file);
        }
        let summary = json!({
            "type": "summary", "apply": self.apply, "members": done, "interrupted": interrupted,
            "outcomes": counts, "stripeRequests": stripe.requests() - before,
        });
        println!("{summary}");
        if interrupted {
            ExitCode::from(INTERRUPTED)
        } else {
            ExitCode::SUCCESS
        }
    }

    /// One member: its outcome and JSON line (`linked`/`would_link`, `none`, `several`,
    /// `taken`, `failed`). The email is not printed: the user id names the member.
    async fn one(&self, user: &str, email: &str) -> (&'static str, Value) {
        let store = self.running.store();
        let orders = self.running.orders();
        let line = |result: &'static str, customer: Option<&str>, detail: Option<String>| {
            let mut line = json!({ "type": "member", "userId": user, "outcome": result });
            if let Some(customer) = customer {
                line["stripeCustomerId"] = json!(customer);
            }
            if let Some(detail) = detail {
                line["detail"] = json!(detail);
            }
            (result, line)
        };
        let ids = match orders.stripe().customers_by_email(email, 2).await {
            Ok(ids) => ids,
            Err(error) => return line(outcome::FAILED, None, Some(error.to_string())),
        };
        let customer = match ids.as_slice() {
            [] => return line(outcome::NONE, None, None),
            [one] => one.as_str(),
            _ => return line(outcome::SEVERAL, None, Some(ids.join(","))),
        };
        match store.member_for_customer(customer).await {
            Ok(Some(holder)) if holder != user => {
                return line(outcome::TAKEN, Some(customer), None);
            }
            Ok(_) => {}
            Err(error) => return line(outcome::FAILED, Some(customer), Some(error.to_string())),
        }
        if !self.apply {
            return line("would_link", Some(customer), None);
        }
        let result = profiles::link_unlinked(store, user, customer).await;
        super::audit(
            self.log,
            "put_member_stripe_customer",
            Some(user),
            Some(customer),
            result.is_ok(),
        );
        match result {
            // An operator linked the member since the scan: theirs stands.
            Ok(None) => line(outcome::ALREADY_LINKED, Some(customer), None),
            Ok(Some(_)) => {
                let record = AutoLinkRecord {
                    at: chrono::Utc::now(),
                    outcome: outcome::LINKED.into(),
                    customer: Some(customer.into()),
                };
                let _ = store.record_auto_link(user, &record).await;
                // The new link's orders come in now (a failure shows in the sync status).
                let reconciled = orders.reconcile(user).await.err().map(|e| e.to_string());
                line(outcome::LINKED, Some(customer), reconciled)
            }
            Err(DomainError::CustomerAlreadyLinked) => line(outcome::TAKEN, Some(customer), None),
            Err(error) => line(outcome::FAILED, Some(customer), Some(error.to_string())),
        }
    }
}

/// The last member an earlier run finished, if its state file is readable.
fn load(state_file: &Path) -> Option<String> {
    let bytes = std::fs::read(state_file).ok()?;
    let state: Value = serde_json::from_slice(&bytes).ok()?;
    state["after"].as_str().map(str::to_owned)
}

/// Writes the resume point beside its final name and renames it over (never half a file).
fn save(state_file: &Path, after: &str) {
    let temporary = state_file.with_extension("json.tmp");
    let written = state_file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&temporary, json!({ "after": after }).to_string()))
        .and_then(|()| std::fs::rename(&temporary, state_file));
    if let Err(error) = written {
        eprintln!("dashboard-server: saving {}: {error}", state_file.display());
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
