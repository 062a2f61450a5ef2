//! Acknowledge after a durable write, apply within the Stripe budget (issue 12, target 2).
//!
//! Nothing is acknowledged before it is stored, so an acknowledged event is never lost. A
//! verified event is applied at once when that costs no Stripe request, or one that the budget
//! grants without waiting (`Patience::Once`: no waiting, no retry); its effect and its ledger
//! record are then stored before the 2xx. Otherwise the event itself is stored in the ledger
//! as pending, with its object (`Store::receive_event`), it is deferred and the answer says
//! `queued`. Storing every event before applying it would cost a write per event that the
//! common case does not need (the done record follows either way).
//! - in this process (the local default, tests): a FIFO queue drained by a few tasks that wait
//!   for the budget and retry through outages, oldest first; while it is not empty, webhooks
//!   send no Stripe request at all, so the deferred events go first;
//! - under Lambda (a refresh queue is configured): an SQS message `{"eventId"}` for the worker,
//!   which applies it from the ledger ([`OrderService::apply_deferred`]); a failed record is
//!   retried by SQS, and one that ends in the dead-letter queue is still pending in the ledger.
//!
//! A deferred event lost with its process (a crash, a deploy) stays pending in the ledger, and
//! the daily catch-up applies it: it reads Stripe's Events list from its checkpoint, and the
//! ledger lets pending events through (`Store::event_seen`).

use super::webhook::intent_of;
use super::OrderService;
use crate::error::DomainError;
use crate::storage::StoreError;
use crate::stripe::{with_patience, Patience};
use slog::{info, warn};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// The in-process queue of deferred events.
#[derive(Default)]
pub(super) struct Deferred {
    /// Events deferred and not applied yet.
    waiting: AtomicUsize,
    /// Started on the first deferral.
    sender: OnceLock<mpsc::UnboundedSender<String>>,
}

/// First wait after a failed attempt; doubles up to [`MAX_BACKOFF`], with full jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Attempts (about ten minutes at [`MAX_BACKOFF`]) before an event is left to the catch-up.
const MAX_ATTEMPTS: u32 = 120;

impl OrderService {
    /// Events deferred in this process and not applied yet.
    pub fn deferred_events(&self) -> usize {
        self.deferred.waiting.load(Ordering::Relaxed)
    }

    /// How the webhook now in hand may use Stripe: not at all while deferred events wait in
    /// this process (they go first); else once, without waiting for the budget. Under Lambda
    /// the deferred events are the worker's, so only the budget decides.
    pub(super) fn webhook_patience(&self) -> Patience {
        if self.deferred_events() > 0 {
            Patience::Never
        } else {
            Patience::Once
        }
    }

    /// Whether a failure to apply an event now is one to defer rather than to answer 5xx.
    pub(super) fn deferrable(error: &DomainError) -> bool {
        matches!(
            error,
            DomainError::StripeUnavailable(_) | DomainError::Store(StoreError::Unavailable(_))
        )
    }

    /// Defers a stored event: to the worker through SQS under Lambda, else to this process's
    /// queue. An SQS failure is an error (the webhook answers 5xx and Stripe delivers again).
    pub(super) async fn defer(self: &Arc<Self>, event_id: &str) -> Result<(), DomainError> {
        if let (Some(queue), Some(url)) = (&self.queue, &self.config.refresh_queue_url) {
            let body = serde_json::json!({ "eventId": event_id }).to_string();
            // Boxed: the SDK's send future is large (see `http::post_stripe_webhook`).
            let send = Box::pin(queue.send_message().queue_url(url).message_body(body).send());
            return send.await.map(|_| ()).map_err(|e| {
                let why = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
                DomainError::Store(StoreError::Unavailable(format!("queueing the event: {why}")))
            });
        }
        let sender = self.deferred.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let concurrency = self.config.schedule_concurrency.max(1);
            tokio::spawn(drain(Arc::downgrade(self), receiver, concurrency));
            sender
        });
        self.deferred.waiting.fetch_add(1, Ordering::Relaxed);
        if sender.send(event_id.to_string()).is_err() {
            self.deferred.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Applies a deferred event from the ledger, waiting for the Stripe budget up to the usual
    /// deadline; `duplicate` when it was applied meanwhile (a redelivery, the catch-up).
    pub async fn apply_deferred(&self, event_id: &str) -> Result<&'static str, DomainError> {
        let Some(pending) = self.store.pending_event(event_id).await? else {
            return Ok("duplicate");
        };
        let object = pending.object.as_deref().and_then(|json| serde_json::from_str(json).ok());
        let work = async {
            match &object {
                Some(object) => {
                    let intent = intent_of(&pending.event_type, object)
                        .unwrap_or_else(|| pending.intent_id.clone());
                    Box::pin(self.apply(event_id, &pending.event_type, object, &intent)).await
                }
                // Too large to keep: Stripe's current state instead.
                None => {
                    let event_type = &pending.event_type;
                    Box::pin(self.apply_refetched(event_id, event_type, &pending.intent_id)).await
                }
            }
        };
        // `apply` records the event in the ledger, in the same write as its effect.
        self.stripe.bounded(with_patience(Patience::Wait, work)).await
    }

    /// Applies one deferred event, retrying with backoff through outages.
    async fn apply_until_done(&self, event_id: &str) {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            match self.apply_deferred(event_id).await {
                Ok(outcome) => {
                    info!(self.log, "deferred event applied"; "event_id" => event_id,
                        "outcome" => outcome, "attempts" => attempt);
                    return;
                }
                Err(error) if attempt < MAX_ATTEMPTS => {
                    warn!(self.log, "deferred event not applied yet"; "event_id" => event_id,
                        "attempt" => attempt, "error" => error.to_string());
                    tokio::time::sleep(backoff.mul_f64(rand::random::<f64>())).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => {
                    warn!(self.log, "deferred event left to the catch-up"; "event_id" => event_id,
                        "attempts" => attempt, "error" => error.to_string());
                }
            }
        }
    }
}

/// Drains the in-process queue, `concurrency` events at a time, oldest first. Ends when the
/// service is gone (its sender with it).
async fn drain(
    service: Weak<OrderService>,
    mut receiver: mpsc::UnboundedReceiver<String>,
    concurrency: usize,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    while let Some(event_id) = receiver.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let Some(service) = service.upgrade() else { return };
        tokio::spawn(async move {
            service.apply_until_done(&event_id).await;
            service.deferred.waiting.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}
