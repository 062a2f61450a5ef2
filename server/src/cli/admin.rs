//! `dashboard-server admin link|unlink|show-member|export|erase`: one member, through the
//! domain calls the API makes, each leaving the admin API's audit record (`user_id` =
//! `cli:<unix user>`); `export` and `erase` are the member's own `GET /dashboard/export` and
//! `DELETE /dashboard/profile`, so they also leave the records those write.

use clap::{Args, Subcommand};
use dashboard_server::auth::{Identity, TokenClient};
use dashboard_server::config::ServerArgs;
use dashboard_server::error::DomainError;
use dashboard_server::storage::profiles::LinkError;
use dashboard_server::{profiles, rights, validate, RunningServer};
use serde_json::json;
use std::process::ExitCode;

#[derive(Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Link a member to a Stripe customer, as `PUT /internal/members/{userId}/stripe-customer`
    /// does (one member per customer; a relink drops the old customer's cached orders), and
    /// print the profile as JSON.
    #[command(after_help = "Example:\n  \
        dashboard-server admin link --user-id member-1 --customer cus_NffrFeUfNV2Hib")]
    Link(Box<LinkArgs>),
    /// Unlink a member from its Stripe customer: removes the link and the customer's claim,
    /// and deletes the member's cached orders (Stripe's records are untouched). Running it
    /// again is harmless; it also finishes an unlink interrupted before the orders went.
    #[command(after_help = "Example:\n  dashboard-server admin unlink --user-id member-1")]
    Unlink(Box<MemberArgs>),
    /// Print a member's summary as JSON: profile, linked customer, order count, sync status.
    #[command(after_help = "Example:\n  dashboard-server admin show-member --user-id member-1")]
    ShowMember(Box<MemberArgs>),
    /// Print everything the dashboard keeps about a member as one JSON document, as the member's
    /// own `GET /dashboard/export` gives it (profile, sync status, the note on the audit
    /// history, every cached order with its timeline), with all its pages' orders together.
    #[command(after_help = "Example:\n  \
        dashboard-server admin export --user-id member-1 > member-1-export.json")]
    Export(Box<MemberArgs>),
    /// Erase a member's dashboard data, as the member's own `DELETE /dashboard/profile` does
    /// (profile, cached orders, the Stripe customer link and its claim; Stripe's records are
    /// untouched), and print what was removed as JSON. Without `--yes` it erases nothing: it
    /// prints the member's summary (what would go) and exits with status 2. Running it again
    /// completes an erasure that was interrupted.
    #[command(after_help = "Example:\n  \
        dashboard-server admin erase --user-id member-1          # what would go; nothing erased\n  \
        dashboard-server admin erase --user-id member-1 --yes")]
    Erase(Box<EraseArgs>),
}

#[derive(Args)]
struct MemberArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The member's user id (the token's `sub`).
    #[arg(long)]
    user_id: String,
}

#[derive(Args)]
struct EraseArgs {
    #[command(flatten)]
    member: MemberArgs,
    /// Erase. Without it nothing is erased: the command prints what would go.
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
struct LinkArgs {
    #[command(flatten)]
    member: MemberArgs,
    /// The Stripe customer (`cus_…`).
    #[arg(long)]
    customer: String,
}

/// What to do, once the command line is read.
enum Action {
    Link(String),
    Unlink,
    Show,
    Export,
    Erase,
    /// `erase` without `--yes`: the summary, and nothing erased.
    EraseUnconfirmed,
}

pub async fn run(args: AdminArgs) -> ExitCode {
    let (mut member, action) = match args.command {
        AdminCommand::Link(link) => (link.member, Action::Link(link.customer)),
        AdminCommand::Unlink(member) => (*member, Action::Unlink),
        AdminCommand::ShowMember(member) => (*member, Action::Show),
        AdminCommand::Export(member) => (*member, Action::Export),
        AdminCommand::Erase(erase) if erase.yes => (erase.member, Action::Erase),
        AdminCommand::Erase(erase) => (erase.member, Action::EraseUnconfirmed),
    };
    // Refuse a bad id before anything starts (the API answers 400 for it).
    let customer = match &action {
        Action::Link(customer) => Some(customer.as_str()),
        _ => None,
    };
    let valid = validate::user_id("userId", &member.user_id)
        .and_then(|()| customer.map_or(Ok(()), validate::stripe_customer_id));
    if let Err(error) = valid {
        eprintln!("dashboard-server: {error}");
        return ExitCode::from(2);
    }
    // The domain runs inside a server bound to a throwaway port; nothing is served to anyone.
    member.server.bind_addr = ([127, 0, 0, 1], 0).into();
    let (_, log, running) = match crate::boot(member.server).await {
        Ok(booted) => booted,
        Err(code) => return code,
    };
    let user_id = member.user_id;
    let result = match action {
        Action::Link(customer) => {
            let result = profiles::link(running.store(), &user_id, &customer).await;
            super::audit(
                &log,
                "put_member_stripe_customer",
                Some(&user_id),
                Some(&customer),
                result.is_ok(),
            );
            result.map(|profile| json!(profiles::to_api(profile)))
        }
        Action::Unlink => {
            let result = unlink(&running, &user_id).await;
            let customer = result.as_ref().ok().and_then(|(c, _)| c.clone());
            super::audit(
                &log,
                "unlink_member_stripe_customer",
                Some(&user_id),
                customer.as_deref(),
                result.is_ok(),
            );
            result.map(|(customer, deleted)| {
                json!({ "userId": user_id, "unlinkedCustomer": customer, "ordersDeleted": deleted })
            })
        }
        Action::Show => {
            let result = show(&running, &user_id).await;
            super::audit(&log, "show_member", Some(&user_id), None, result.is_ok());
            result
        }
        Action::Export => {
            let result = export(&running, &user_id).await;
            super::audit(&log, "export_member", Some(&user_id), None, result.is_ok());
            result
        }
        Action::Erase => {
            let result = erase(&running, &log, &user_id).await;
            super::audit(&log, "erase_member", Some(&user_id), None, result.is_ok());
            result.map(|report| json!(report))
        }
        Action::EraseUnconfirmed => {
            let result = show(&running, &user_id).await;
            if result.is_ok() {
                eprintln!(
                    "dashboard-server: nothing erased; this would erase the member below \
                     (profile, cached orders, Stripe customer link): add --yes to erase"
                );
                if let Ok(summary) = &result {
                    println!("{summary}");
                }
                let _ = running.stop().await;
                return ExitCode::from(2);
            }
            result
        }
    };
    let code = match result {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dashboard-server: {error}");
            ExitCode::FAILURE
        }
    };
    let _ = running.stop().await;
    code
}

/// Drops the link and the claim (one transaction), then every cached order of the member.
/// The orders go after the transaction: a crash in between leaves them, out of sight (reads
/// show only orders of the customer the profile holds, and it holds none), and running the
/// command again deletes them.
async fn unlink(
    running: &RunningServer,
    user_id: &str,
) -> Result<(Option<String>, usize), DomainError> {
    let store = running.store();
    let customer = match store.unlink_customer(user_id).await {
        Ok(customer) => customer,
        Err(LinkError::NoMember) => return Err(DomainError::MemberNotFound),
        Err(LinkError::CustomerTaken | LinkError::MemberLinked) => {
            return Err(DomainError::CustomerAlreadyLinked)
        }
        Err(LinkError::Store(error)) => return Err(error.into()),
    };
    let deleted = store.delete_orders_except(user_id, None).await?;
    Ok((customer, deleted))
}

/// The member's summary: what an operator needs to answer a support request.
async fn show(running: &RunningServer, user_id: &str) -> Result<serde_json::Value, DomainError> {
    let profile = running.store().get_profile(user_id).await?.ok_or(DomainError::MemberNotFound)?;
    let sync = running.orders().sync_status(user_id).await?;
    Ok(json!({
        "userId": profile.user_id,
        "email": profile.email,
        "displayName": profile.display_name,
        "createdAt": profile.created_at,
        "updatedAt": profile.updated_at,
        "version": profile.version,
        "stripeCustomerId": profile.stripe_customer_id,
        "orderCount": profile.order_count,
        "ordersSyncedAt": profile.orders_synced_at,
        "syncStatus": sync,
    }))
}

/// The member's whole export: the first page's profile, sync status and audit note, and the
/// orders of every page (the pages keep API responses small; a terminal has no such limit).
async fn export(running: &RunningServer, user_id: &str) -> Result<serde_json::Value, DomainError> {
    let (store, orders) = (running.store(), running.orders());
    let first = rights::export(store, orders, user_id, None).await?;
    let mut all = first.orders;
    let mut token = first.next_page_token;
    while let Some(page_token) = token {
        let page = rights::export(store, orders, user_id, Some(&page_token)).await?;
        all.extend(page.orders);
        token = page.next_page_token;
    }
    Ok(json!({
        "exportedAt": first.exported_at,
        "profile": first.profile,
        "syncStatus": first.sync_status,
        "auditHistory": first.audit_history,
        "orders": all,
    }))
}

/// Erases as the member would: an identity for the member (the CLI's actor is named by the
/// admin action record `run` writes), and the current version as `If-Match`, since the
/// operator asked for whatever the member holds now. On a profile already being erased no
/// `If-Match` is needed: this completes that erasure.
async fn erase(
    running: &RunningServer,
    log: &slog::Logger,
    user_id: &str,
) -> Result<dashboard_api::ErasureReport, DomainError> {
    let store = running.store();
    let current = store.get_profile_any(user_id).await?.ok_or(DomainError::MemberNotFound)?;
    let if_match = current.erasing_since.is_none().then(|| format!("\"{}\"", current.version));
    let identity = Identity {
        user_id: user_id.to_string(),
        email: None,
        email_verified: false,
        client: TokenClient::Member,
        scopes: Vec::new(),
        groups: Vec::new(),
        // No token: nothing checks an expiry on this path.
        expires_at: 0,
    };
    let per_minute = running.orders().limits().profile_writes_per_minute;
    rights::erase(store, log, &identity, if_match.as_deref(), per_minute).await
}
