//! Reconcile: one member's orders against Stripe (the admin trigger, a stale listing, the
//! refresh queue), every linked member (the daily schedule), and how refreshes are requested.

use super::snapshot::{build, metadata_items};
use super::{Extras, OrderService, Outcome};
use crate::error::DomainError;
use crate::storage::profiles::SyncMeta;
use chrono::Utc;
use dashboard_api::{OrderItem, SyncError, SyncReport};
use slog::{info, warn};
use std::collections::HashMap;
use std::sync::Arc;

impl OrderService {
    /// Reconciles one member: pages through the customer's PaymentIntents newest first and
    /// writes only the snapshots that changed.
    pub async fn reconcile(&self, user_id: &str) -> Result<SyncReport, DomainError> {
        crate::validate::user_id("userId", user_id)?;
        let started_requests = self.stripe.requests();
        let result = self.reconcile_inner(user_id, started_requests).await;
        crate::metrics::reconcile(&self.log, result.as_ref().ok());
        match &result {
            Ok(report) => {
                self.store.record_sync(user_id, SyncMeta::Reconciled(report)).await?;
                info!(self.log, "reconcile finished";
                    "user_id" => user_id, "seen" => report.seen, "created" => report.created,
                    "updated" => report.updated, "unchanged" => report.unchanged,
                    "stripe_requests" => report.stripe_requests);
            }
            Err(error) => {
                warn!(self.log, "reconcile failed"; "user_id" => user_id, "error" => error.to_string());
                let failure = SyncError { at: Utc::now(), message: error.to_string() };
                let _ = self.store.record_sync(user_id, SyncMeta::Failed(&failure)).await;
            }
        }
        result
    }

    async fn reconcile_inner(
        &self,
        user_id: &str,
        started_requests: u64,
    ) -> Result<SyncReport, DomainError> {
        let mut report = SyncReport { user_id: user_id.to_string(), ..Default::default() };
        let profile = self.store.get_profile(user_id).await?;
        let Some(customer) = profile.and_then(|p| p.stripe_customer_id) else {
            report.finished_at = Some(Utc::now());
            return Ok(report);
        };
        let cached = self.store.all_orders(user_id).await?;
        let mut checkout_items: Option<HashMap<String, Vec<OrderItem>>> = None;
        let mut after: Option<String> = None;
        loop {
            let (intents, more) = self.stripe.intents_page(&customer, after.as_deref()).await?;
            after = intents.last().map(|i| i.id.clone());
            for intent in &intents {
                report.seen += 1;
                let old = cached.get(&intent.id);
                let mut extras = Extras::default();
                let disputed = intent.latest_charge.as_ref().is_some_and(|c| c.charge.disputed);
                if disputed && old.is_none_or(|o| o.disputes.is_empty()) {
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
                match self.write(user_id, &customer, intent, extras, old.cloned()).await?.0 {
                    Outcome::Created => report.created += 1,
                    Outcome::Updated => report.updated += 1,
                    Outcome::Unchanged => report.unchanged += 1,
                }
            }
            if !more || after.is_none() {
                break;
            }
        }
        report.stripe_requests = self.stripe.requests() - started_requests;
        report.finished_at = Some(Utc::now());
        Ok(report)
    }

    /// Asks for a refresh of the member's orders: an SQS message when a queue is configured
    /// (returns true once it is sent), else a background task in this process. A failure to
    /// queue is logged; the listing is answered from the cache either way.
    pub(super) async fn request_refresh(self: &Arc<Self>, user_id: &str) -> bool {
        let (Some(queue), Some(url)) = (&self.queue, &self.config.refresh_queue_url) else {
            self.refresh_in_background(user_id);
            return false;
        };
        let body = serde_json::json!({ "userId": user_id }).to_string();
        match queue.send_message().queue_url(url).message_body(body).send().await {
            Ok(_) => true,
            Err(error) => {
                warn!(self.log, "could not queue a refresh"; "user_id" => user_id,
                    "error" => aws_sdk_sqs::error::DisplayErrorContext(error).to_string());
                false
            }
        }
    }

    /// Starts a reconcile for the member unless one is already running.
    pub fn refresh_in_background(self: &Arc<Self>, user_id: &str) {
        if !self.refreshing.lock().unwrap().insert(user_id.to_string()) {
            return;
        }
        let service = Arc::clone(self);
        let user_id = user_id.to_string();
        tokio::spawn(async move {
            let _ = service.reconcile(&user_id).await;
            service.refreshing.lock().unwrap().remove(&user_id);
        });
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
