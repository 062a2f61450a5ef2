//! Reconcile: one member's orders against Stripe (the admin trigger, a stale listing, the
//! refresh queue), every linked member (the daily schedule), and how refreshes are requested.

use super::snapshot::{build, disputes_may_have_changed, metadata_items};
use super::{Extras, OrderService, Outcome};
use crate::error::DomainError;
use crate::storage::orders::OrderRecord;
use crate::storage::profiles::{SyncErrorRecord, SyncMeta};
use crate::storage::rules::MAX_TRANSACTION_ITEMS;
use crate::storage::StoreError;
use crate::stripe::{Intent, StripeFailure};
use chrono::Utc;
use dashboard_api::{ErrorCode, OrderCharge, OrderItem, SyncReport};
use slog::{info, warn};
use std::collections::HashMap;

/// Why a reconcile failed, kept as it came until the member's code is chosen (a
/// [`DomainError`] folds Stripe's failures into one text).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Stripe(#[from] StripeFailure),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Domain(error.into())
    }
}

impl From<Failure> for DomainError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Stripe(stripe) => stripe.into(),
            Failure::Domain(domain) => domain,
        }
    }
}

impl Failure {
    /// The sync code a member sees (one of `ErrorCode::SYNC`).
    fn code(&self) -> ErrorCode {
        match self {
            // Stripe answers `resource_missing` for an id it does not know; every listing of a
            // reconcile is keyed by the customer (https://docs.stripe.com/error-codes#resource-missing).
            Failure::Stripe(StripeFailure::Missing) => ErrorCode::CustomerNotFound,
            Failure::Stripe(StripeFailure::Unavailable(_))
            | Failure::Domain(DomainError::StripeUnavailable(_)) => ErrorCode::StripeUnavailable,
            Failure::Domain(DomainError::Store(StoreError::Unavailable(_))) => {
                ErrorCode::StoreUnavailable
            }
            Failure::Stripe(StripeFailure::Other(_)) | Failure::Domain(_) => ErrorCode::SyncFailed,
        }
    }
}

impl OrderService {
    /// Reconciles one member: pages through the customer's PaymentIntents newest first and
    /// writes only the snapshots that changed.
    pub async fn reconcile(&self, user_id: &str) -> Result<SyncReport, DomainError> {
        crate::validate::user_id("userId", user_id)?;
        let started_requests = self.stripe.requests();
        // Within the request's or invocation's deadline, or (in the background) its own budget.
        let result = self.stripe.bounded(self.reconcile_inner(user_id, started_requests)).await;
        crate::metrics::reconcile(&self.log, result.as_ref().ok().map(|(report, _)| report));
        match result {
            Ok((report, customer)) => {
                let meta = SyncMeta::Reconciled(&report, customer.as_deref());
                self.store.record_sync(user_id, meta).await?;
                info!(self.log, "reconcile finished";
                    "user_id" => user_id, "seen" => report.seen, "created" => report.created,
                    "updated" => report.updated, "unchanged" => report.unchanged,
                    "stripe_requests" => report.stripe_requests);
                Ok(report)
            }
            Err(failure) => {
                // The member sees only the code (and a sentence chosen by it, see
                // `sync_status`); Stripe's or AWS's own text (request ids, ARNs, table names)
                // goes to the log alone.
                let code = failure.code();
                warn!(self.log, "reconcile failed"; "user_id" => user_id,
                    "code" => code.as_str(), "error" => failure.to_string());
                let record = SyncErrorRecord { at: Utc::now(), code: Some(code.as_str().into()) };
                let _ = self.store.record_sync(user_id, SyncMeta::Failed(&record)).await;
                Err(failure.into())
            }
        }
    }

    /// The report, and the customer whose orders were synced (`None`: the member held none).
    async fn reconcile_inner(
        &self,
        user_id: &str,
        started_requests: u64,
    ) -> Result<(SyncReport, Option<String>), Failure> {
        let mut report = SyncReport { user_id: user_id.to_string(), ..Default::default() };
        let profile = self.store.get_profile(user_id).await?;
        let Some(customer) = profile.and_then(|p| p.stripe_customer_id) else {
            report.finished_at = Some(Utc::now());
            return Ok((report, None));
        };
        let cached = self.store.all_orders(user_id).await?;
        let mut checkout_items: Option<HashMap<String, Vec<OrderItem>>> = None;
        let mut charges: Option<HashMap<String, Vec<OrderCharge>>> = None;
        let mut after: Option<String> = None;
        loop {
            let (intents, more) = self.stripe.intents_page(&customer, after.as_deref()).await?;
            after = intents.last().map(|i| i.id.clone());
            if charges.is_none() && !intents.is_empty() {
                // One paged listing of the customer's charges gives every order its earlier
                // (failed) attempts, as the webhooks of those attempts would.
                charges = Some(self.customer_charges(&customer).await?);
            }
            // New orders of this page, inserted together after it (`insert_new`).
            let mut new_orders = Vec::new();
            for intent in &intents {
                report.seen += 1;
                let old = cached.get(&intent.id);
                let mut extras = Extras {
                    charges: Some(
                        charges
                            .as_ref()
                            .and_then(|c| c.get(&intent.id))
                            .cloned()
                            .unwrap_or_default(),
                    ),
                    ..Extras::default()
                };
                let mut known: Vec<OrderCharge> = extras.charges.clone().unwrap_or_default();
                known.extend(intent.latest_charge.as_ref().map(|c| c.charge.clone()));
                // Stripe lists disputes by charge or PaymentIntent, not by customer
                // (https://docs.stripe.com/api/disputes/list): one request per order whose
                // dispute is new or still open.
                if disputes_may_have_changed(&known, old) {
                    extras.disputes = Some(self.stripe.disputes(&intent.id).await?);
                }
                let needs_items = metadata_items(&intent.metadata).is_empty()
                    && old.is_none_or(|o| o.items.is_empty());
                if needs_items {
                    if checkout_items.is_none() {
                        // One paged listing of the customer's sessions serves every order.
                        checkout_items =
                            Some(self.stripe.checkout_items_by_intent(&customer).await?);
                    }
                    extras.items = checkout_items.as_ref().and_then(|m| m.get(&intent.id).cloned());
                }
                // Unchanged orders cost no store read: compare with the cached copy first.
                if let Some(old) = old {
                    let fresh = build(user_id, &customer, intent, &extras, Some(old), Utc::now());
                    if old.same_content(&fresh) {
                        report.unchanged += 1;
                        continue;
                    }
                }
                if old.is_none() {
                    new_orders.push((intent, extras));
                    continue;
                }
                match self.write(user_id, &customer, intent, extras, old.cloned()).await?.0 {
                    Outcome::Created => report.created += 1,
                    Outcome::Updated => report.updated += 1,
                    Outcome::Unchanged => report.unchanged += 1,
                }
            }
            self.insert_new(user_id, &customer, new_orders, &mut report).await?;
            if !more || after.is_none() {
                break;
            }
        }
        report.stripe_requests = self.stripe.requests() - started_requests;
        report.finished_at = Some(Utc::now());
        Ok((report, Some(customer)))
    }

    /// Caches a page's new orders: a transaction per 99 of them (`Store::insert_orders`; a
    /// transaction holds 100 actions, one of them the count), or, when that is refused (an
    /// order was cached meanwhile, by a webhook; the member was relinked; too large for one
    /// transaction) or fails, one at a time as any other write.
    async fn insert_new(
        &self,
        user_id: &str,
        customer: &str,
        new_orders: Vec<(&Intent, Extras)>,
        report: &mut SyncReport,
    ) -> Result<(), Failure> {
        let mut new_orders = new_orders.into_iter().peekable();
        while new_orders.peek().is_some() {
            let chunk: Vec<(&Intent, Extras)> =
                new_orders.by_ref().take(MAX_TRANSACTION_ITEMS - 1).collect();
            let now = Utc::now();
            let records: Vec<OrderRecord> = chunk
                .iter()
                .map(|(intent, extras)| build(user_id, customer, intent, extras, None, now))
                .collect();
            if records.len() > 1 && self.store.insert_orders(&records).await.is_ok() {
                report.created += records.len() as u64;
                continue;
            }
            for (intent, extras) in chunk {
                match self.write(user_id, customer, intent, extras, None).await?.0 {
                    Outcome::Created => report.created += 1,
                    Outcome::Updated => report.updated += 1,
                    Outcome::Unchanged => report.unchanged += 1,
                }
            }
        }
        Ok(())
    }

    /// Every charge of a customer by PaymentIntent id, oldest first: one Stripe request per
    /// 100 charges.
    async fn customer_charges(
        &self,
        customer: &str,
    ) -> Result<HashMap<String, Vec<OrderCharge>>, StripeFailure> {
        let mut by_intent: HashMap<String, Vec<OrderCharge>> = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) =
                self.stripe.customer_charges_page(customer, after.as_deref()).await?;
            after = page.last().map(|(_, c)| c.charge_id.clone());
            for (intent, charge) in page {
                if let Some(intent) = intent {
                    by_intent.entry(intent).or_default().push(charge);
                }
            }
            if !more || after.is_none() {
                break;
            }
        }
        // Pages come newest first.
        by_intent.values_mut().for_each(|charges| charges.reverse());
        Ok(by_intent)
    }

    /// Reconciles every linked member, a few at a time.
    pub async fn reconcile_all(&self) -> Result<dashboard_api::ScheduledSyncReport, DomainError> {
        use futures::StreamExt;
        let members = self.store.linked_members().await?;
        let results: Vec<_> = futures::stream::iter(members)
            .map(|(user_id, _)| async move { self.reconcile(&user_id).await })
            .buffer_unordered(self.config.schedule_concurrency.max(1))
            .collect()
            .await;
        let mut report = dashboard_api::ScheduledSyncReport::default();
        for result in results {
            report.members += 1;
            match result {
                Ok(r) => {
                    report.totals.seen += r.seen;
                    report.totals.created += r.created;
                    report.totals.updated += r.updated;
                    report.totals.unchanged += r.unchanged;
                    report.totals.stripe_requests += r.stripe_requests;
                }
                Err(_) => report.failed += 1,
            }
        }
        report.totals.finished_at = Some(Utc::now());
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each failure a reconcile can meet gets its sync code; only the log sees the text.
    #[test]
    fn sync_codes_follow_the_failure() {
        let cases = [
            (Failure::Stripe(StripeFailure::Missing), ErrorCode::CustomerNotFound),
            (
                Failure::Stripe(StripeFailure::Unavailable("503".into())),
                ErrorCode::StripeUnavailable,
            ),
            (Failure::Stripe(StripeFailure::Other("401 bad key".into())), ErrorCode::SyncFailed),
            (StoreError::Unavailable("throttled".into()).into(), ErrorCode::StoreUnavailable),
            (StoreError::Internal("ValidationException".into()).into(), ErrorCode::SyncFailed),
            (Failure::Domain(DomainError::MemberNotFound), ErrorCode::SyncFailed),
        ];
        for (failure, code) in cases {
            assert_eq!(failure.code(), code, "{failure}");
            assert!(ErrorCode::SYNC.contains(&code));
        }
    }
}
