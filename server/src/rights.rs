//! The member's data rights: the export (GDPR art. 15 and 20) and the erasure (art. 17) of
//! everything the dashboard keeps about them.
//!
//! Who and how often: both act only on the member the bearer token names (its `sub`; the
//! operator client's token names none and gets 403 before this module is reached), never on a
//! member named in the request. An export page reads at most [`PAGE_ORDERS`] orders, as an
//! orders listing page does, so the API's throttle bounds it like any listing. An erasure
//! spends one of the member's profile writes (the per-member limit shared with `PUT` and
//! `PATCH`, 429 `rate_limited` when spent).

use crate::auth::Identity;
use crate::error::DomainError;
use crate::orders::OrderService;
use crate::profiles;
use crate::storage::{Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dashboard_api::{ErasureReport, ExportPage};
use slog::{info, Logger};

/// Orders per export page at most.
pub const PAGE_ORDERS: usize = 100;
/// An export page takes no further order once its orders pass this many bytes of JSON. One
/// cached order is at most about 400 KB (DynamoDB's item limit), so a page stays under about
/// 2.5 MB, well inside the 6 MB Lambda response limit.
pub const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// What the export says of the audit history, which the store does not hold.
const AUDIT_HISTORY: &str = "Changes to your profile are recorded as audit records in the \
    service's logs (who changed which field when, with personal values masked), kept for the \
    log retention period; they are not in the dashboard's store, so this export cannot include \
    them. Ask the operator for them.";

/// What an erasure leaves, as its report says.
const RETAINED: &str = "Stripe's own records (your customer record, payments, receipts) are \
    untouched: this erases the dashboard's copy only. The audit log records of your profile \
    changes and of this erasure (masked, no personal values) stay for the log retention period. \
    Per-member rate-limit counters expire by themselves within minutes.";

/// One page of the member's export: the profile, sync status and audit note on the first page
/// (no `page_token`), and on every page up to [`PAGE_ORDERS`] orders by order id.
///
/// The page token is the last order id of the previous page, base64url-encoded: it is not
/// signed, because the query is keyed by the token's member and the position only picks where
/// in the member's own orders the page starts, so no token can reach another member's data.
pub async fn export(
    store: &Store,
    orders: &OrderService,
    user_id: &str,
    page_token: Option<&str>,
) -> Result<ExportPage, DomainError> {
    let after = page_token.map(decode_token).transpose()?;
    // Every page reads the profile: a member being erased gets 404 on every page, and only
    // orders of the customer the member holds now are exported, as the listing shows them.
    let profile = store.get_profile(user_id).await?.ok_or(DomainError::MemberNotFound)?;
    let (records, more) = store.member_orders_after(user_id, after.as_deref(), PAGE_ORDERS).await?;
    let customer = profile.stripe_customer_id.clone();
    let mut page_orders = Vec::new();
    let (mut bytes, mut last, mut full) = (0, None, false);
    for record in records {
        last = Some(record.order_id.clone());
        // An order of a customer the member held before a relink (left by an interrupted
        // relink) is not the member's any more: the listing hides it too.
        if record.stripe_customer_id.as_ref().is_some_and(|c| Some(c) != customer.as_ref()) {
            continue;
        }
        let order = crate::orders::order(record);
        bytes += serde_json::to_vec(&order).map_or(0, |json| json.len());
        page_orders.push(order);
        if bytes >= PAGE_BYTES {
            full = true;
            break;
        }
    }
    let next_page_token = if full || more { last.map(|id| encode_token(&id)) } else { None };
    let first = after.is_none();
    let sync_status = if first { Some(orders.sync_status(user_id).await?) } else { None };
    Ok(ExportPage {
        exported_at: chrono::Utc::now(),
        profile: first.then(|| profiles::to_api(profile)),
        sync_status,
        audit_history: first.then(|| AUDIT_HISTORY.to_string()),
        orders: page_orders,
        next_page_token,
    })
}

fn encode_token(order_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(order_id)
}

/// The order id a page token names; anything the server could not have issued is refused.
fn decode_token(token: &str) -> Result<String, DomainError> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| DomainError::InvalidPageToken)?;
    let id = String::from_utf8(bytes).map_err(|_| DomainError::InvalidPageToken)?;
    // Order ids are PaymentIntent ids; a key over 1,024 bytes would be a store error.
    let well_formed = id.starts_with("pi_")
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if well_formed {
        Ok(id)
    } else {
        Err(DomainError::InvalidPageToken)
    }
}

/// Erases the member's dashboard data: marks the profile as being erased (with `If-Match`,
/// and removing the customer link in the same transaction: `Store::mark_erasing`), deletes
/// every cached order in batches, then the profile.
///
/// Reads answer 404 from the mark on, so nobody sees a member half erased. Interrupted (a
/// crash, a timeout, the store gone), it is completed by the next `DELETE`, which needs no
/// `If-Match` on a profile already marked: the member confirmed the version when the erasure
/// started, and that version is gone (the mark made a new one the member never saw).
pub async fn erase(
    store: &Store,
    log: &Logger,
    identity: &Identity,
    if_match: Option<&str>,
    writes_per_minute: u32,
) -> Result<ErasureReport, DomainError> {
    let user_id = &identity.user_id;
    let current = store.get_profile_any(user_id).await?.ok_or(DomainError::MemberNotFound)?;
    let resumed = current.erasing_since.is_some();
    let mut links = 0;
    if resumed {
        profiles::spend_write(store, identity, writes_per_minute).await?;
    } else {
        let expected = profiles::parse_if_match(if_match)?;
        if expected != current.version {
            return Err(DomainError::PreconditionFailed);
        }
        profiles::spend_write(store, identity, writes_per_minute).await?;
        let now = chrono::Utc::now();
        let customer = store.mark_erasing(&current, now).await.map_err(|error| match error {
            // Changed (or marked by a concurrent erasure) since it was read.
            StoreError::ConditionFailed => DomainError::PreconditionFailed,
            other => other.into(),
        })?;
        links = u64::from(customer.is_some());
        info!(log, "member erasure started";
            "record_type" => "audit", "action" => "profile.erase.start", "user_id" => user_id,
            "at" => now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    let orders_removed = store.delete_all_member_orders(user_id).await?;
    let profiles_removed = u64::from(store.delete_erasing_profile(user_id).await?);
    let erased_at = chrono::Utc::now();
    // Who and when, and how much: no personal value (the erased data is gone from the log too).
    info!(log, "member erased";
        "record_type" => "audit", "action" => "profile.erase", "user_id" => user_id,
        "at" => erased_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "resumed" => resumed, "orders_removed" => orders_removed,
        "customer_links_removed" => links);
    Ok(ErasureReport {
        erased_at,
        resumed,
        profiles_removed,
        orders_removed: orders_removed as u64,
        customer_links_removed: links,
        retained: RETAINED.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_what_was_not_issued() {
        let token = encode_token("pi_3Abc");
        assert_eq!(decode_token(&token).unwrap(), "pi_3Abc");
        for bad in ["", "!!", &URL_SAFE_NO_PAD.encode("cus_1"), &URL_SAFE_NO_PAD.encode("pi_\u{0}")]
        {
            assert!(matches!(decode_token(bad), Err(DomainError::InvalidPageToken)), "{bad}");
        }
    }
}
