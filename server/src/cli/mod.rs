//! The operator's subcommands of `dashboard-server` besides serving: `admin` (one member),
//! `reconcile --all` with progress and resume, and `doctor`. Each runs the same domain code as
//! the API (inside a server bound to a throwaway port, as `reconcile` always has), so the
//! audit records and the stored state are the same as an admin endpoint's.

pub mod admin;
pub mod backfill;
pub mod doctor;
pub mod reconcile;

/// Who runs the command, as audit records name an admin: `cli:<unix user>`.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Writes the audit record of an admin action, with the keys and values the admin endpoints
/// write (`server/src/http.rs`), so both read alike in the log.
pub fn audit(
    log: &slog::Logger,
    action: &str,
    target_user_id: Option<&str>,
    stripe_customer_id: Option<&str>,
    ok: bool,
) {
    slog::info!(log, "admin action";
        "record_type" => "audit", "user_id" => actor(), "action" => action.to_string(),
        "target_user_id" => target_user_id.map(str::to_owned),
        "stripe_customer_id" => stripe_customer_id.map(str::to_owned),
        "outcome" => if ok { "ok" } else { "failed" });
}
