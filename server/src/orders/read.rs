//! Reads: the newest-first listing (page size, filters, signed page tokens, staleness), the
//! detail with its live Stripe fallback, and the sync status.

use super::OrderService;
use crate::error::DomainError;
use crate::storage::limits::{Counter, Spend};
use crate::storage::orders::{OrderQuery, OrderRecord, OrderSummaryRecord};
use crate::storage::profiles::SyncErrorRecord;
use crate::storage::StoreError;
use chrono::{DateTime, Utc};
use dashboard_api::{
    ErrorCode, Order, OrderFilters, OrderSummary, OrdersPage, OrdersPageSelector, SyncError,
    SyncStatus,
};
use dropshot::{PaginationParams, WhichPage};
use std::sync::Arc;

const LIMIT_DEFAULT: u32 = 20;
const LIMIT_MAX: u32 = dashboard_api::ORDERS_LIMIT_MAX;

/// `limit` as the request sent it (`query` is the raw query string). Dropshot has already
/// checked it is a positive integer, but keeps it private and folds a missing one into its own
/// default page size, which is not the API's.
fn requested_limit(query: Option<&str>) -> Option<u32> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "limit")
        .and_then(|(_, value)| value.parse().ok())
}

impl OrderService {
    pub async fn list(
        self: &Arc<Self>,
        user_id: &str,
        params: &PaginationParams<OrderFilters, OrdersPageSelector>,
        query: Option<&str>,
    ) -> Result<OrdersPage, DomainError> {
        let limit = requested_limit(query).unwrap_or(LIMIT_DEFAULT);
        if limit > LIMIT_MAX {
            return Err(DomainError::invalid(
                ErrorCode::InvalidLimit,
                "limit",
                "must be from 1 to 100",
            ));
        }
        let (status, after, before, below) = match &params.page {
            WhichPage::First(filters) => {
                if let (Some(a), Some(b)) = (filters.created_after, filters.created_before) {
                    if a >= b {
                        return Err(DomainError::invalid(
                            ErrorCode::InvalidDateRange,
                            "createdBefore",
                            "must be later than createdAfter",
                        ));
                    }
                }
                let after = filters.created_after.map(|t| t.timestamp().max(0));
                let before = filters.created_before.map(|t| t.timestamp().max(0));
                (filters.status, after, before, None)
            }
            WhichPage::Next(selector) => {
                if !self.cursor.verify(user_id, selector) {
                    return Err(DomainError::InvalidPageToken);
                }
                (
                    selector.status,
                    selector.created_after,
                    selector.created_before,
                    Some(selector.created_key.clone()),
                )
            }
        };
        let query = OrderQuery {
            user_id,
            status,
            from_key: after.map(|a| format!("{a:012}#")),
            below_key: below.or_else(|| before.map(|b| format!("{b:012}#"))),
            limit: limit as usize,
        };
        // A page without an upper bound reads the member's listing state in its own Query;
        // only a member without one (unlinked, or linked before states existed) costs a
        // second call after it. A later page reads the profile beside its Query.
        let (mut page, profile) = match query.below_key {
            None => (self.store.list_orders(&query).await?, None),
            Some(_) => {
                let (page, profile) =
                    tokio::join!(self.store.list_orders(&query), self.store.listing_state(user_id));
                (page?, profile?)
            }
        };
        let profile = match page.state.take() {
            Some(state) => Some(state),
            None if query.below_key.is_none() => self.store.listing_state(user_id).await?,
            None => profile,
        };
        let synced_at = profile.as_ref().and_then(|p| p.orders_synced_at);
        let customer = profile.as_ref().and_then(|p| p.stripe_customer_id.as_deref());
        let linked = customer.is_some();
        let stale = linked && synced_at.is_none_or(|at| self.is_stale(at));
        // One conditional write on the stale path only; a fresh listing gains no store call.
        let refreshing = stale && self.request_refresh(user_id).await;
        // The token resumes where the store stopped reading, which may lie past the last order
        // returned (a filtered listing stops after a bounded number of reads).
        let next_page = match &page.resume_key {
            Some(resume) => {
                let selector = self.cursor.sign(user_id, resume, status, after, before);
                let results = dropshot::ResultsPage::new(vec![()], &(), |_, _| selector.clone())
                    .map_err(|e| DomainError::Store(StoreError::Internal(e.internal_message)))?;
                results.next_page
            }
            None => None,
        };
        Ok(OrdersPage {
            items: page
                .orders
                .into_iter()
                .filter(|o| of_customer(o.stripe_customer_id.as_deref(), customer))
                .map(summary)
                .collect(),
            next_page,
            synced_at,
            stale,
            refreshing,
        })
    }

    fn is_stale(&self, at: DateTime<Utc>) -> bool {
        let age = Utc::now().signed_duration_since(at);
        age.to_std().unwrap_or_default() > self.config.stale_after
    }

    /// One order; a missing snapshot is fetched from Stripe, checked and cached.
    pub async fn detail(&self, user_id: &str, order_id: &str) -> Result<Order, DomainError> {
        // Every order is a PaymentIntent: any other id is no order, answered before the store
        // is asked (a sort key over 1,024 bytes would be a store error there).
        let well_formed = order_id.starts_with("pi_")
            && order_id.len() <= 255
            && order_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return Err(DomainError::OrderNotFound);
        }
        let (record, profile) =
            tokio::join!(self.store.get_order(user_id, order_id), self.store.get_profile(user_id));
        let (record, profile) = (record?, profile?);
        let customer = profile.and_then(|p| p.stripe_customer_id);
        if let Some(record) = record {
            if !of_customer(record.stripe_customer_id.as_deref(), customer.as_deref()) {
                return Err(DomainError::OrderNotFound);
            }
            return Ok(order(record));
        }
        let Some(customer) = customer else {
            return Err(DomainError::OrderNotFound);
        };
        // The live fallback is the one path a member can make call Stripe at will: an id
        // found unknown lately is answered from the store, and the rest spend a per-member
        // budget (both items in DynamoDB, shared by every instance).
        let now = Utc::now().timestamp();
        if self.store.is_unknown_order(user_id, order_id, &customer, now).await? {
            return Err(DomainError::OrderNotFound);
        }
        let limits = &self.config.limits;
        let per_minute = limits.order_lookups_per_minute;
        if let Spend::Refused { retry_after_seconds } =
            self.store.spend(Counter::OrderLookups, user_id, per_minute, now).await?
        {
            return Err(DomainError::RateLimited { retry_after_seconds });
        }
        let intent = self.stripe.intent(order_id).await?;
        // Another customer's payment is not this member's business: same answer as missing.
        let Some(intent) = intent.filter(|i| i.customer.as_deref() == Some(customer.as_str()))
        else {
            let ttl = limits.unknown_order_ttl;
            self.store.remember_unknown_order(user_id, order_id, &customer, now, ttl).await?;
            return Err(DomainError::OrderNotFound);
        };
        let extras = self.extras_for(&intent, None).await?;
        let (_, record) = self.write(user_id, &customer, &intent, extras, None).await?;
        Ok(order(record))
    }

    pub async fn sync_status(&self, user_id: &str) -> Result<SyncStatus, DomainError> {
        let Some(profile) = self.store.get_profile(user_id).await? else {
            return Ok(SyncStatus::default());
        };
        Ok(SyncStatus {
            stripe_customer_id: profile.stripe_customer_id,
            last_webhook: profile.last_webhook,
            last_reconcile: profile.last_reconcile,
            last_error: profile.last_sync_error.map(sync_error),
            auto_link: profile.auto_link.map(auto_link),
        })
    }
}

/// What a member sees of the first link by verified email: the outcome and a sentence chosen
/// by it alone (the customer id is in the sync status only once linked).
fn auto_link(record: crate::storage::profiles::AutoLinkRecord) -> dashboard_api::AutoLink {
    use crate::profiles::auto_link_outcome as outcome;
    let reason = match record.outcome.as_str() {
        outcome::LINKED => "Your verified email matched exactly one customer, now linked.",
        outcome::NONE => "No customer has your verified email; support can link one for you.",
        outcome::SEVERAL => {
            "Several customers have your verified email, so none was linked; support can link \
             the right one."
        }
        outcome::TAKEN => {
            "The customer with your verified email is linked to another member, so it was not \
             linked; please contact support."
        }
        outcome::PENDING => "Looking for a customer with your verified email.",
        outcome::ALREADY_LINKED => "Your account was linked to a customer by support meanwhile.",
        _ => "The customer look-up could not be completed; support can link one for you.",
    };
    dashboard_api::AutoLink { at: record.at, outcome: record.outcome, reason: reason.to_string() }
}

/// What a member sees of a stored sync failure: its code, and a sentence chosen by the code
/// alone. A code this version does not know, or none (a record written before codes, whose
/// stored text may be raw Stripe or AWS output), is shown as `sync_failed`.
fn sync_error(record: SyncErrorRecord) -> SyncError {
    let code = record
        .code
        .as_deref()
        .and_then(ErrorCode::from_code)
        .filter(|code| ErrorCode::SYNC.contains(code))
        .unwrap_or(ErrorCode::SyncFailed);
    let message = match code {
        ErrorCode::StripeUnavailable => {
            "Stripe could not be reached; your orders will be refreshed again shortly."
        }
        ErrorCode::StoreUnavailable => {
            "Order history is temporarily unavailable; it will be refreshed again shortly."
        }
        ErrorCode::CustomerNotFound => {
            "The payment account linked to your membership was not found; please contact support."
        }
        _ => "Your orders could not be refreshed; they will be refreshed again shortly.",
    };
    SyncError { at: record.at, code: code.as_str().to_string(), message: message.to_string() }
}

/// Whether a cached order of `order_customer` belongs to a member holding `held`: orders of a
/// customer the member no longer holds (a relink's clean-up that did not finish) are hidden.
/// An order without a customer (none is written so) is shown.
fn of_customer(order_customer: Option<&str>, held: Option<&str>) -> bool {
    order_customer.is_none_or(|c| held == Some(c))
}

fn summary(record: OrderSummaryRecord) -> OrderSummary {
    OrderSummary {
        order_id: record.order_id,
        order_number: record.order_number,
        status: record.status,
        amount: record.amount,
        amount_refunded: record.amount_refunded,
        currency: record.currency,
        item_count: record.item_count,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// A cached order on the wire, with its whole timeline (the detail, the export).
pub(crate) fn order(record: OrderRecord) -> Order {
    Order {
        order_id: record.order_id,
        order_number: record.order_number,
        stripe_payment_intent_id: record.stripe_payment_intent_id,
        status: record.status,
        amount: record.amount,
        amount_refunded: record.amount_refunded,
        currency: record.currency,
        items: wire(record.items),
        receipt_url: record.receipt_url,
        shipping: record.shipping.map(Into::into),
        charges: wire(record.charges),
        refunds: wire(record.refunds),
        disputes: wire(record.disputes),
        created_at: record.created_at,
        updated_at: record.updated_at,
        synced_at: record.synced_at,
    }
}

/// Stored parts to their wire types.
fn wire<R, W: From<R>>(records: Vec<R>) -> Vec<W> {
    records.into_iter().map(W::from).collect()
}
