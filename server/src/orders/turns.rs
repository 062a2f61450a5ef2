//! Per-PaymentIntent turns: this process applies one event of an intent at a time, in the order
//! the events arrived. Stripe sends an order's events within moments of each other; applied
//! concurrently, a charge event would race the intent's first write (and be re-fetched from
//! Stripe for want of a cached order), and writers would retry each other's conditional
//! writes. Correctness never rests on turns (each write is conditional, and other instances
//! take no part in them): they only save Stripe requests and retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub(super) struct Turns {
    /// One lock per intent while anyone holds or awaits it.
    held: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// An intent's turn; ends when dropped.
pub(super) struct Turn<'a> {
    turns: &'a Turns,
    intent_id: String,
    patience: Option<std::time::Duration>,
    /// `None`: the caller went on without its turn.
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits for the intent's turn, at most `patience` (`None`: as long as it takes).
    /// Past that the caller goes on without one: a slow holder (an event waiting for the
    /// Stripe budget) must not hold webhooks until Stripe gives up on them.
    pub(super) async fn take(
        &self,
        intent_id: &str,
        patience: Option<std::time::Duration>,
    ) -> Turn<'_> {
        let lock = {
            let mut held = self.held.lock().unwrap();
            Arc::clone(held.entry(intent_id.to_string()).or_default())
        };
        let guard = acquire(lock, patience).await;
        Turn { turns: self, intent_id: intent_id.to_string(), patience, guard }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// The lock, waited for at most `patience`; tokio's mutex serves waiters in the order they
/// came.
async fn acquire(
    lock: Arc<AsyncMutex<()>>,
    patience: Option<std::time::Duration>,
) -> Option<OwnedMutexGuard<()>> {
    match patience {
        None => Some(lock.lock_owned().await),
        Some(limit) => tokio::time::timeout(limit, lock.lock_owned()).await.ok(),
    }
}

impl Turn<'_> {
    /// Lets the events of this intent that wait for the turn go first, then takes it again
    /// (with the same patience); `false`, doing nothing, when none waits. An event that cannot
    /// be applied without Stripe because it came before its order's first event (a charge
    /// ahead of `payment_intent.created`, which Stripe sends at the same moment) gives that
    /// event its chance to write the order first.
    pub(super) async fn let_waiting_go_first(&mut self) -> bool {
        let Some(guard) = self.guard.take() else { return false };
        let lock = Arc::clone(OwnedMutexGuard::mutex(&guard));
        // The map's reference, the guard's and this one: any more are waiters'.
        if Arc::strong_count(&lock) <= 3 {
            self.guard = Some(guard);
            return false;
        }
        drop(guard);
        self.guard = acquire(lock, self.patience).await;
        true
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut held = self.turns.held.lock().unwrap();
        // Released under the map's lock, so no one clones the lock between the check and the
        // removal; the entry goes when no one else holds or awaits it.
        drop(self.guard.take());
        if held.get(&self.intent_id).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            held.remove(&self.intent_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_event_of_an_intent_at_a_time_in_arrival_order() {
        let turns = Arc::new(Turns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = turns.take("pi_1", None).await;
        let mut waiting = Vec::new();
        for n in 0..3 {
            let (turns, order) = (Arc::clone(&turns), Arc::clone(&order));
            waiting.push(tokio::spawn(async move {
                let _turn = turns.take("pi_1", None).await;
                order.lock().unwrap().push(n);
            }));
            // Let each task queue up before the next, as events arrive one after another.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Another intent is not held up.
        drop(turns.take("pi_2", Some(Duration::from_millis(10))).await);
        assert!(order.lock().unwrap().is_empty(), "nobody ran before the first turn ended");
        drop(first);
        for task in waiting {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(turns.len(), 0, "no lock is kept once nobody holds or awaits it");
    }

    #[tokio::test]
    async fn a_turn_lets_the_events_waiting_for_it_go_first_once_asked() {
        let turns = Arc::new(Turns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut first = turns.take("pi_1", None).await;
        assert!(!first.let_waiting_go_first().await, "nobody waits yet");
        let waiting = {
            let (turns, order) = (Arc::clone(&turns), Arc::clone(&order));
            tokio::spawn(async move {
                let _turn = turns.take("pi_1", None).await;
                order.lock().unwrap().push("waiting");
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(first.let_waiting_go_first().await);
        order.lock().unwrap().push("first, again");
        assert!(first.guard.is_some(), "the turn is held again");
        drop(first);
        waiting.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["waiting", "first, again"]);
        assert_eq!(turns.len(), 0);
    }

    #[tokio::test]
    async fn a_caller_with_little_patience_goes_on_without_a_turn() {
        let turns = Turns::default();
        let held = turns.take("pi_1", None).await;
        let impatient = turns.take("pi_1", Some(Duration::from_millis(20))).await;
        assert!(impatient.guard.is_none());
        drop(impatient);
        drop(held);
        assert_eq!(turns.len(), 0);
    }
}
