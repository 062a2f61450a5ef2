//! Reads: the newest-first listing (page size, filters, signed page tokens, staleness), the
//! detail with its live Stripe fallback, and the sync status.

use super::OrderService;
use crate::error::DomainError;
use crate::storage::orders::{OrderQuery, OrderRecord, OrderSummaryRecord};
use crate::storage::StoreError;
use chrono::{DateTime, Utc};
use dashboard_api::{
    ErrorCode, Order, OrderFilters, OrderSummary, OrdersPage, OrdersPageSelector, SyncStatus,
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
        let (page, profile) =
            tokio::join!(self.store.list_orders(&query), self.store.get_profile(user_id));
        let (page, profile) = (page?, profile?);
        let synced_at = profile.as_ref().and_then(|p| p.orders_synced_at);
        let linked = profile.as_ref().is_some_and(|p| p.stripe_customer_id.is_some());
        let stale = linked && synced_at.is_none_or(|at| self.is_stale(at));
        let mut queued = false;
        if stale {
            queued = self.request_refresh(user_id).await;
        }
        let next_page = match (page.more, page.orders.last()) {
            (true, Some(last)) => {
                let selector = self.cursor.sign(user_id, &last.created_key, status, after, before);
                let results = dropshot::ResultsPage::new(vec![()], &(), |_, _| selector.clone())
                    .map_err(|e| DomainError::Store(StoreError::Internal(e.internal_message)))?;
                results.next_page
            }
            _ => None,
        };
        Ok(OrdersPage {
            items: page.orders.iter().map(summary).collect(),
            next_page,
            synced_at,
            stale,
            refreshing: queued || self.refreshing.lock().unwrap().contains(user_id),
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
        if let Some(record) = self.store.get_order(user_id, order_id).await? {
            return Ok(order(record));
        }
        let profile = self.store.get_profile(user_id).await?;
        let Some(customer) = profile.and_then(|p| p.stripe_customer_id) else {
            return Err(DomainError::OrderNotFound);
        };
        let Some(intent) = self.stripe.intent(order_id).await? else {
            return Err(DomainError::OrderNotFound);
        };
        // Another customer's payment is not this member's business: same answer as missing.
        if intent.customer.as_deref() != Some(customer.as_str()) {
            return Err(DomainError::OrderNotFound);
        }
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
            last_error: profile.last_sync_error,
        })
    }
}

fn summary(record: &OrderSummaryRecord) -> OrderSummary {
    OrderSummary {
        order_id: record.order_id.clone(),
        order_number: record.order_number.clone(),
        status: record.status,
        amount: record.amount,
        amount_refunded: record.amount_refunded,
        currency: record.currency.clone(),
        item_count: record.item_count,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

fn order(record: OrderRecord) -> Order {
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
