//! The member's data rights: a copy of everything the dashboard keeps about them
//! (`GET /dashboard/export`, GDPR art. 15 and 20) and its erasure (`DELETE /dashboard/profile`,
//! art. 17).

use crate::orders::Order;
use crate::profile::Profile;
use crate::sync::SyncStatus;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Query of `GET /dashboard/export`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportQuery {
    /// `nextPageToken` of the previous page; absent for the first page. A token that is not
    /// one the server issued is 400 `invalid_page_token`.
    pub page_token: Option<String>,
}

/// One page of the member's data export.
///
/// The first page holds the profile, the sync status and the note on the audit history; every
/// page holds a share of the cached orders, each with its whole timeline (items, shipping,
/// charges, refunds, disputes). The pages together hold every cached order exactly once.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportPage {
    /// When this page was read.
    pub exported_at: DateTime<Utc>,
    /// The member's profile (first page only).
    pub profile: Option<Profile>,
    /// How the order history is kept in step with Stripe (first page only).
    pub sync_status: Option<SyncStatus>,
    /// Where the history of the member's own profile changes is kept (first page only). It is
    /// not in the store, so it is not part of the export: the text says where it is.
    pub audit_history: Option<String>,
    /// Cached orders, by order id.
    pub orders: Vec<Order>,
    /// Token of the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

/// What erasing the member's dashboard data removed.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErasureReport {
    /// When the erasure completed.
    pub erased_at: DateTime<Utc>,
    /// True when this request completed an erasure that an earlier one started (the counts are
    /// then what this request removed).
    pub resumed: bool,
    /// Profiles removed (1).
    pub profiles_removed: u64,
    /// Cached order snapshots removed.
    pub orders_removed: u64,
    /// Links to a Stripe customer removed (0 or 1).
    pub customer_links_removed: u64,
    /// What the erasure leaves: Stripe's own records, the masked audit log records, and the
    /// per-member rate-limit counters, which expire within minutes.
    pub retained: String,
}
