//! Keeping members' order history in step with Stripe: the sync status a member reads
//! (`GET /dashboard/sync-status`), and the admin endpoints under `/internal` that link a member
//! to a Stripe customer and reconcile one or every member, with their reports.

use crate::error::ErrorCode;
use crate::patterns::USER_ID_PATTERN;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a member's order history is kept fresh.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The linked Stripe customer, if any.
    pub stripe_customer_id: Option<String>,
    /// The last webhook event that changed this member's orders (one that changed nothing
    /// is not shown here).
    pub last_webhook: Option<WebhookApplied>,
    /// The last completed reconcile.
    pub last_reconcile: Option<SyncReport>,
    /// The last sync failure, if it is more recent than the last success.
    pub last_error: Option<SyncError>,
    /// The first link by verified email (`DASHBOARD_AUTO_LINK=verified-email`), once tried:
    /// absent when the server does not link by email or has not tried for this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_link: Option<AutoLink>,
}

/// What the first link by verified email did. It is tried at most once per member.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoLink {
    /// When it was tried.
    pub at: DateTime<Utc>,
    /// `linked` (exactly one Stripe customer has the member's verified email and nobody held
    /// it), `none` (no customer has it), `several` (more than one has it), `taken` (another
    /// member holds the one that has it), `failed` (Stripe or the store could not answer),
    /// `already_linked` (support linked the member while it was tried; that link stands),
    /// `pending` (being tried now). New outcomes may be added; treat one you do not know as
    /// not linked.
    pub outcome: String,
    /// A sentence for people saying why, chosen by `outcome`.
    pub reason: String,
}

/// A webhook event that changed a member's orders.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookApplied {
    /// Stripe event id.
    pub event_id: String,
    /// Stripe event type.
    pub event_type: String,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
}

/// A sync failure, as a member may see it: a stable code and a generic sentence. What exactly
/// failed (Stripe's or AWS's own error) is only in the server's log.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncError {
    /// When it happened.
    pub at: DateTime<Utc>,
    // Documented by `sync_code_schema` (the list of codes) rather than a doc comment.
    #[schemars(schema_with = "sync_code_schema")]
    pub code: String,
    /// A generic sentence for people, chosen by `code`.
    pub message: String,
}

/// The schema of `SyncError.code`: a plain string (so that a new code breaks no client),
/// described by the list of sync codes.
fn sync_code_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    let mut text = String::from(
        "Stable, machine-readable reason the sync failed: clients match on it. New codes may be \
         added; treat a code you do not know as `sync_failed`. The codes:\n",
    );
    for code in ErrorCode::SYNC {
        let doc = code.doc().split_whitespace().collect::<Vec<_>>().join(" ");
        text.push_str(&format!("\n- `{}`: {doc}", code.as_str()));
    }
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::String.into()),
        metadata: Some(Box::new(schemars::schema::Metadata {
            description: Some(text),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

/// The outcome of reconciling one member with Stripe.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The member.
    pub user_id: String,
    /// Orders seen at Stripe.
    pub seen: u64,
    /// Orders cached for the first time.
    pub created: u64,
    /// Cached orders that changed.
    pub updated: u64,
    /// Cached orders already up to date (not written).
    pub unchanged: u64,
    /// Stripe API requests made (retries included).
    pub stripe_requests: u64,
    /// When the reconcile finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The outcome of reconciling every linked member.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledSyncReport {
    /// Members reconciled.
    pub members: u64,
    /// Members whose reconcile failed (see their sync status).
    pub failed: u64,
    /// Sum of the members' counts.
    pub totals: SyncReport,
}

/// Body of `POST /internal/sync/stripe`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// The member to reconcile: 1 to 128 characters, no control characters (else 400
    /// `invalid_user_id`).
    #[schemars(length(min = 1, max = 128), regex = "USER_ID_PATTERN")]
    pub user_id: String,
}

/// Path of the member admin endpoints.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct MemberPath {
    /// The member's user id: 1 to 128 characters, no control characters (else 400
    /// `invalid_user_id`).
    #[serde(rename = "userId")]
    #[schemars(length(min = 1, max = 128), regex = "USER_ID_PATTERN")]
    pub user_id: String,
}

/// Body of `PUT /internal/members/{userId}/stripe-customer`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkStripeCustomer {
    /// A Stripe customer id: `cus_` and 1 to 64 letters or digits (else 400
    /// `invalid_stripe_customer_id`).
    #[schemars(regex(pattern = r"^cus_[A-Za-z0-9]{1,64}$"))]
    pub stripe_customer_id: String,
}
