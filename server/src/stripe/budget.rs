//! The account-wide Stripe request rate (`DASHBOARD_STRIPE_MAX_RPS`). Stripe's rate limit is per
//! account and shared with the shop's checkout (https://docs.stripe.com/rate-limits), so every
//! request this server sends, from any instance, takes a unit of one budget per second first.
//!
//! Two layers: a pacer in this process spaces its requests `1 / max_rps` apart (so waiting
//! tasks do not all hit the store at each second's start), and a conditional counter per Unix
//! second in DynamoDB holds the rate across instances (Lambda runs many). A second's counter
//! that is spent makes the request wait for the next second; a request whose deadline comes
//! first fails as an outage would ([`StripeFailure::Unavailable`]). A store that cannot be read
//! fails the request too: the budget is not guessed.

use super::StripeFailure;
use crate::storage::Store;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a caller may wait for the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// Up to the deadline in force (background work: reconcile, deferred events, catch-up).
    Wait,
    /// Not at all, and no retry after a failed attempt: a webhook applied while Stripe's
    /// sender waits, which defers the event instead.
    Once,
    /// Send nothing: work that must not spend Stripe requests now (a webhook while deferred
    /// events still wait for the budget).
    Never,
}

tokio::task_local! {
    static PATIENCE: Patience;
}

/// Runs `work` with `patience` for every Stripe call inside it.
pub async fn with_patience<F: std::future::Future>(patience: Patience, work: F) -> F::Output {
    PATIENCE.scope(patience, work).await
}

/// The patience in force around the caller ([`Patience::Wait`] when none was set).
pub fn current_patience() -> Patience {
    PATIENCE.try_with(|p| *p).unwrap_or(Patience::Wait)
}

pub struct RequestBudget {
    per_second: u32,
    interval: Duration,
    /// When this process may send its next request.
    next_slot: Mutex<Instant>,
    store: Store,
}

impl RequestBudget {
    pub fn new(per_second: u32, store: Store) -> Self {
        let per_second = per_second.max(1);
        RequestBudget {
            per_second,
            interval: Duration::from_secs(1) / per_second,
            next_slot: Mutex::new(Instant::now()),
            store,
        }
    }

    /// Takes one request from the budget, waiting (with [`Patience::Wait`]) until `deadline`
    /// at most.
    pub async fn take(&self, deadline: Instant) -> Result<(), StripeFailure> {
        let patience = current_patience();
        let spent = || StripeFailure::Unavailable("the Stripe request budget is spent".into());
        loop {
            let wait = self.reserve_slot(patience == Patience::Wait).ok_or_else(spent)?;
            if Instant::now() + wait > deadline {
                return Err(spent());
            }
            tokio::time::sleep(wait).await;
            let now = chrono::Utc::now();
            let granted = self
                .store
                .spend_stripe_second(now.timestamp(), self.per_second)
                .await
                .map_err(|e| StripeFailure::Unavailable(format!("the Stripe budget: {e}")))?;
            // A grant counts in the second it was asked for: one that came back after that
            // second ended (a slow store) would put the request into the next second, beside
            // that second's own grants. It is left spent, and the next second asked for.
            let late = chrono::Utc::now().timestamp() != now.timestamp();
            if granted && !late {
                return Ok(());
            }
            if patience != Patience::Wait {
                return Err(spent());
            }
            // Another instance spent this second (or the grant came late): wait for the next.
            let into_second = u64::from(chrono::Utc::now().timestamp_subsec_millis());
            let until_next = if late {
                Duration::ZERO
            } else {
                Duration::from_millis(1000u64.saturating_sub(into_second))
            };
            if Instant::now() + until_next > deadline {
                return Err(spent());
            }
            tokio::time::sleep(until_next).await;
        }
    }

    /// Reserves this process's next send slot and returns how long to wait for it; `None` when
    /// the slot is not free now and the caller may not wait (nothing is reserved then).
    fn reserve_slot(&self, may_wait: bool) -> Option<Duration> {
        let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let slot = (*next).max(now);
        if slot > now && !may_wait {
            return None;
        }
        *next = slot + self.interval;
        Some(slot - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_spaces_this_processs_requests_and_a_caller_that_cannot_wait_is_refused() {
        let store = Store::connect("us-east-1", Some("http://127.0.0.1:9"), "unused-").await;
        let budget = RequestBudget::new(10, store);
        assert_eq!(budget.reserve_slot(false), Some(Duration::ZERO));
        let second = budget.reserve_slot(true).unwrap();
        assert!(second > Duration::from_millis(90) && second <= Duration::from_millis(100));
        assert_eq!(budget.reserve_slot(false), None, "the next slot is taken for 100 ms");
        let third = budget.reserve_slot(true).unwrap();
        assert!(third > Duration::from_millis(190), "slots queue up: {third:?}");
    }
}
