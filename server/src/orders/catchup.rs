//! The daily catch-up: instead of listing every linked member's PaymentIntents (one Stripe
//! request per member per day, changed or not), read Stripe's Events list from a checkpoint
//! stored in DynamoDB and apply each event exactly as a webhook would. Its cost grows with
//! what changed: ceil(events / 100) list requests plus the re-fetches the webhook path makes.
//!
//! Stripe lists events newest first and only for the last 30 days
//! (<https://docs.stripe.com/api/events/list>). The run pages newest first with
//! `starting_after` (<https://docs.stripe.com/api/pagination>) and applies the events oldest
//! first once it holds them all (memory grows with the events since the checkpoint, a few KB
//! each). A forward walk with `ending_before` would need an anchor event at the old end of the
//! window: the last applied event is the only one known, and walking on from it skips what the
//! overlap exists to catch (events listed behind it that were not there when it was read).
//! Events are applied 100 at a time (one intent's in order, several intents at once), and the
//! checkpoint moves after each 100. A missing checkpoint (the first run) or one older than
//! Stripe keeps events falls back to the per-member sweep ([`OrderService::reconcile_all`]),
//! said in a log record and a metric, and then sets the checkpoint to the sweep's start.

use super::webhook::intent_of;
use super::OrderService;
use crate::error::DomainError;
use crate::stripe::events::ListedEvent;
use chrono::Utc;
use dashboard_api::ScheduledSyncReport;
use serde::Serialize;
use serde_json::Value;
use slog::warn;
use std::collections::{HashMap, HashSet};

/// The event types the webhook path applies (`webhook::intent_of`), by name: `types[]` takes
/// at most 20 exact names and no wildcard (<https://docs.stripe.com/api/events/list>), so the
/// `payment_intent.*` group is spelled out
/// (<https://docs.stripe.com/api/events/types#event_types-payment_intent.amount_capturable_updated>).
pub const HANDLED_TYPES: [&str; 20] = [
    "payment_intent.amount_capturable_updated",
    "payment_intent.canceled",
    "payment_intent.created",
    "payment_intent.partially_funded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.succeeded",
    "charge.succeeded",
    "charge.failed",
    "charge.updated",
    "charge.refunded",
    "charge.captured",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "checkout.session.completed",
];

/// How far before the checkpoint a run starts reading: Stripe does not promise that events
/// become listable in `created` order (<https://docs.stripe.com/webhooks#event-ordering>), and
/// several events share a second. What the overlap re-reads, the ledger drops.
pub const OVERLAP_SECS: i64 = 300;

/// Events applied between two checkpoint writes: one list page's worth.
const CHUNK: usize = 100;

/// Outcomes of applied events, by kind.
#[derive(Default)]
struct Counts {
    applied: u64,
    duplicates: u64,
    unlinked: u64,
    ignored: u64,
    superseded: u64,
}

impl Counts {
    fn add(&mut self, outcome: &str) {
        match outcome {
            "applied" => self.applied += 1,
            "duplicate" => self.duplicates += 1,
            "unlinked" => self.unlinked += 1,
            "superseded" => self.superseded += 1,
            _ => self.ignored += 1,
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.unlinked += other.unlinked;
        self.ignored += other.ignored;
        self.superseded += other.superseded;
    }

    fn add_to(&self, report: &mut CatchUpReport) {
        report.applied += self.applied;
        report.duplicates += self.duplicates;
        report.unlinked += self.unlinked;
        report.ignored += self.ignored;
        report.superseded += self.superseded;
    }
}

/// Stripe lists events "going back up to 30 days" (<https://docs.stripe.com/api/events/list>).
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;

/// Why a run swept every member instead of reading the Events list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// No checkpoint yet: the first run.
    NoCheckpoint,
    /// The checkpoint (less the overlap) is older than Stripe keeps events.
    CheckpointExpired,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::NoCheckpoint => "no_checkpoint",
            Fallback::CheckpointExpired => "checkpoint_expired",
        }
    }
}

/// What one scheduled run did. The `/events` schedule answers it (outside the contract).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatchUpReport {
    /// `catch_up` (read the Events list) or `sweep` (reconciled every member).
    pub mode: &'static str,
    /// Set when the run swept instead of catching up.
    pub fallback: Option<Fallback>,
    /// The checkpoint the run started from (Unix seconds).
    pub previous_checkpoint: Option<i64>,
    /// The checkpoint after the run.
    pub checkpoint: Option<i64>,
    /// Events listed (the overlap's re-reads included).
    pub events: u64,
    /// Events that changed an order, and those the ledger already had.
    pub applied: u64,
    pub duplicates: u64,
    /// Events about a customer no member is linked to, or an intent Stripe no longer has.
    pub unlinked: u64,
    pub ignored: u64,
    /// PaymentIntent events left unapplied because a later event of the run ends the same
    /// intent (see [`superseded`]).
    pub superseded: u64,
    /// Stripe requests of the Events list (ceil(events / 100), retries included).
    pub list_requests: u64,
    /// Stripe requests the webhook path made while applying the events.
    pub refetch_requests: u64,
    /// Every Stripe request of the run (the sweep's, in a fallback).
    pub stripe_requests: u64,
    /// The sweep's report, in a fallback.
    #[serde(skip)]
    pub sweep: Option<ScheduledSyncReport>,
}

impl CatchUpReport {
    /// The sweep's report (zeros when the run caught up) with this report's fields beside it,
    /// so callers of the schedule that read `members`/`totals` keep working.
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        let mut value = serde_json::to_value(self.sweep.clone().unwrap_or_default())?;
        if let (Some(out), Value::Object(extra)) =
            (value.as_object_mut(), serde_json::to_value(self)?)
        {
            out.extend(extra);
        }
        Ok(value)
    }
}

impl OrderService {
    /// The scheduled sync: catch up from the stored checkpoint, or sweep every member when
    /// there is none or it is older than Stripe keeps events.
    pub async fn catch_up(&self) -> Result<CatchUpReport, DomainError> {
        let started = Utc::now().timestamp();
        let previous = self.store.catch_up_checkpoint().await?;
        let fallback = match previous {
            None => Some(Fallback::NoCheckpoint),
            Some(at) if at - OVERLAP_SECS < started - RETENTION_SECS => {
                Some(Fallback::CheckpointExpired)
            }
            Some(_) => None,
        };
        let report = match (fallback, previous) {
            (None, Some(checkpoint)) => self.read_events(checkpoint).await?,
            _ => self.sweep(previous, fallback.unwrap_or(Fallback::NoCheckpoint), started).await?,
        };
        crate::metrics::catch_up(
            &self.log,
            report.fallback.is_some(),
            report.events,
            report.applied,
            report.stripe_requests,
        );
        Ok(report)
    }

    async fn sweep(
        &self,
        previous: Option<i64>,
        reason: Fallback,
        started: i64,
    ) -> Result<CatchUpReport, DomainError> {
        warn!(self.log, "catch-up fell back to the sweep";
            "reason" => reason.as_str(), "previous_checkpoint" => previous);
        let before = self.stripe.requests();
        let sweep = self.reconcile_all().await?;
        // Everything created before the sweep began is now in the cache (members whose
        // reconcile failed carry the failure on their profile and refresh when listed).
        self.store.advance_catch_up_checkpoint(started).await?;
        Ok(CatchUpReport {
            mode: "sweep",
            fallback: Some(reason),
            previous_checkpoint: previous,
            checkpoint: Some(previous.map_or(started, |p| p.max(started))),
            stripe_requests: self.stripe.requests() - before,
            sweep: Some(sweep),
            ..Default::default()
        })
    }

    async fn read_events(&self, checkpoint: i64) -> Result<CatchUpReport, DomainError> {
        let mut report = CatchUpReport {
            mode: "catch_up",
            previous_checkpoint: Some(checkpoint),
            checkpoint: Some(checkpoint),
            ..Default::default()
        };
        let before = self.stripe.requests();
        let events = self.list_events(checkpoint - OVERLAP_SECS).await?;
        report.events = events.len() as u64;
        report.list_requests = self.stripe.requests() - before;
        // Over the whole list, not per chunk: an intent's events often straddle two chunks.
        let moot: HashSet<String> = by_intent(&events)
            .0
            .into_iter()
            .flat_map(|(_, group)| {
                let skip = superseded(&group);
                group.into_iter().zip(skip).filter(|(_, skip)| *skip).map(|(e, _)| e.id.clone())
            })
            .collect();
        // A chunk at a time, oldest first; the checkpoint moves after each chunk, so a run
        // that fails or runs out of time resumes there (and re-reads at most one chunk,
        // which the ledger drops).
        for chunk in events.chunks(CHUNK) {
            let (counts, failure) = self.apply_chunk(chunk, &moot).await;
            counts.add_to(&mut report);
            if let Some((event_id, error)) = failure {
                report.stripe_requests = self.stripe.requests() - before;
                report.refetch_requests = report.stripe_requests - report.list_requests;
                warn!(self.log, "catch-up stopped"; "event_id" => event_id,
                    "applied" => report.applied, "checkpoint" => report.checkpoint,
                    "error" => error.to_string());
                return Err(error);
            }
            let newest = chunk.iter().map(|e| e.created).max().unwrap_or(checkpoint);
            if newest > report.checkpoint.unwrap_or(checkpoint) {
                self.store.advance_catch_up_checkpoint(newest).await?;
                report.checkpoint = Some(newest);
            }
        }
        report.stripe_requests = self.stripe.requests() - before;
        report.refetch_requests = report.stripe_requests - report.list_requests;
        Ok(report)
    }

    /// Applies a chunk of events (oldest first): one PaymentIntent's events in order, several
    /// intents at once. An intent's remaining events stop at its first failure; the first
    /// failure is returned. Events in `moot` are counted as superseded, not applied.
    async fn apply_chunk(
        &self,
        chunk: &[ListedEvent],
        moot: &HashSet<String>,
    ) -> (Counts, Option<(String, DomainError)>) {
        use futures::StreamExt;
        let (groups, ignored) = by_intent(chunk);
        let mut counts = Counts { ignored, ..Counts::default() };
        // Owned, so the futures below borrow nothing of this call's locals.
        let groups: Vec<Vec<ListedEvent>> =
            groups.into_iter().map(|(_, events)| events.into_iter().cloned().collect()).collect();
        let results: Vec<_> = futures::stream::iter(groups)
            .map(|events| self.apply_in_order(events, moot))
            .buffer_unordered(self.config.schedule_concurrency.max(1))
            .collect()
            .await;
        let mut failure = None;
        for (group, failed) in results {
            counts.merge(&group);
            failure = failure.or(failed);
        }
        (counts, failure)
    }

    /// One intent's events, in order, up to the first failure.
    async fn apply_in_order(
        &self,
        events: Vec<ListedEvent>,
        moot: &HashSet<String>,
    ) -> (Counts, Option<(String, DomainError)>) {
        let mut counts = Counts::default();
        for event in events {
            if moot.contains(&event.id) {
                counts.add("superseded");
                continue;
            }
            match self.apply_event(&event.id, &event.event_type, &event.object).await {
                Ok(outcome) => counts.add(outcome),
                Err(error) => return (counts, Some((event.id.clone(), error))),
            }
        }
        (counts, None)
    }

    /// Every event of [`HANDLED_TYPES`] created at or after `since`, oldest first.
    async fn list_events(&self, since: i64) -> Result<Vec<ListedEvent>, DomainError> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) =
                self.stripe.events_page(&HANDLED_TYPES, since, after.as_deref()).await?;
            after = page.last().map(|e| e.id.clone());
            events.extend(page);
            if !more || after.is_none() {
                break;
            }
        }
        // Stripe's order is newest first (ties: the later event first).
        events.reverse();
        Ok(events)
    }
}

/// Events grouped by the PaymentIntent they are about, each group in list order, groups in
/// the order of their first event; and how many are about no order (the webhook path ignores
/// those too).
fn by_intent(events: &[ListedEvent]) -> (Vec<(String, Vec<&ListedEvent>)>, u64) {
    let mut groups: Vec<(String, Vec<&ListedEvent>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut ignored = 0;
    for event in events {
        let Some(intent) = intent_of(&event.event_type, &event.object) else {
            ignored += 1;
            continue;
        };
        match index.get(&intent) {
            Some(&at) => groups[at].1.push(event),
            None => {
                index.insert(intent.clone(), groups.len());
                groups.push((intent, vec![event]));
            }
        }
    }
    (groups, ignored)
}

/// Which of one intent's events (oldest first) a later event of the same list makes moot: a
/// PaymentIntent state of an attempt under way or failed (`payment_failed`, `processing`,
/// `requires_action`, ...), followed by a terminal state of the intent (`succeeded`,
/// `canceled`), once an earlier PaymentIntent event of the list has given the order its
/// snapshot. Such states move back and forth and cannot be ordered against the cache
/// (`snapshot::plan`), so applying one costs a re-fetch (a declined card retried within the
/// second: one order in eight of the simulator's shop), while the terminal event carries the
/// whole intent as it is later, and never changes again
/// (<https://docs.stripe.com/payments/paymentintents/lifecycle>). The attempt's charge has
/// events of its own, which are applied. A webhook cannot do this: it sees one event. A skipped
/// event is not written to the ledger; were it delivered later, it plans as older than the
/// terminal state and changes nothing.
fn superseded(events: &[&ListedEvent]) -> Vec<bool> {
    const TERMINAL: [&str; 2] = ["payment_intent.succeeded", "payment_intent.canceled"];
    let intent_event = |e: &&ListedEvent| e.event_type.starts_with("payment_intent.");
    let last_terminal = events.iter().rposition(|e| TERMINAL.contains(&e.event_type.as_str()));
    let mut seen_intent = false;
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let moot = seen_intent
                && intent_event(event)
                && event.event_type != "payment_intent.created"
                && !TERMINAL.contains(&event.event_type.as_str())
                && last_terminal.is_some_and(|last| i < last);
            seen_intent |= intent_event(event);
            moot
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list asks Stripe for exactly what a webhook would apply: each name is one the
    /// webhook path takes, and `types[]` holds no more than Stripe accepts.
    #[test]
    fn the_listed_types_are_the_ones_webhooks_apply() {
        let object = serde_json::json!({ "id": "pi_1", "payment_intent": "pi_1" });
        for kind in HANDLED_TYPES {
            assert_eq!(intent_of(kind, &object).as_deref(), Some("pi_1"), "{kind}");
        }
        let unique: std::collections::HashSet<_> = HANDLED_TYPES.iter().collect();
        assert_eq!(unique.len(), HANDLED_TYPES.len());
        assert!(HANDLED_TYPES.len() <= 20);
    }

    /// Only an attempt's intent states between the order's first intent event and a later
    /// terminal one are moot; charges, the first sighting and the terminal state are applied.
    #[test]
    fn an_attempts_intent_states_before_a_terminal_one_are_superseded() {
        // One intent's events of these types, in this order: which are moot.
        let moot = |kinds: &[&str]| -> Vec<bool> {
            let event = |(n, kind): (usize, &&str)| ListedEvent {
                id: format!("evt_{n}"),
                event_type: kind.to_string(),
                created: 1,
                object: Value::Null,
            };
            let events: Vec<ListedEvent> = kinds.iter().enumerate().map(event).collect();
            superseded(&events.iter().collect::<Vec<_>>())
        };
        let retried = moot(&[
            "payment_intent.created",
            "charge.failed",
            "payment_intent.payment_failed",
            "payment_intent.requires_action",
            "charge.succeeded",
            "payment_intent.succeeded",
            "charge.updated",
        ]);
        assert_eq!(retried, [false, false, true, true, false, false, false]);
        // No terminal state after it: the failure is the newest the list knows.
        let failed =
            moot(&["payment_intent.created", "charge.failed", "payment_intent.payment_failed"]);
        assert_eq!(failed, [false; 3]);
        // No intent event before it (its order may not be cached): applied, as a webhook.
        let late = moot(&["payment_intent.payment_failed", "payment_intent.canceled"]);
        assert_eq!(late, [false; 2]);
        // After the terminal state: applied (it plans as older and changes nothing).
        let after = moot(&[
            "payment_intent.created",
            "payment_intent.succeeded",
            "payment_intent.processing",
        ]);
        assert_eq!(after, [false; 3]);
    }

    /// `by_intent` puts an intent's events into one group wherever they sit in the list (the
    /// catch-up groups the whole list so that chunks cannot split one), in list order, and
    /// counts the events about no order.
    #[test]
    fn events_group_by_intent_in_list_order() {
        let event = |id: &str, kind: &str, intent: &str| ListedEvent {
            id: id.to_string(),
            event_type: kind.to_string(),
            created: 1,
            object: serde_json::json!({ "id": intent, "payment_intent": intent }),
        };
        let events = [
            event("evt_1", "payment_intent.created", "pi_a"),
            event("evt_2", "payment_intent.created", "pi_b"),
            event("evt_3", "customer.created", "cus_1"),
            event("evt_4", "payment_intent.succeeded", "pi_a"),
        ];
        let (groups, ignored) = by_intent(&events);
        let ids: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|(intent, group)| (intent.as_str(), group.iter().map(|e| e.id.as_str()).collect()))
            .collect();
        assert_eq!(ids, [("pi_a", vec!["evt_1", "evt_4"]), ("pi_b", vec!["evt_2"])]);
        assert_eq!(ignored, 1);
    }

    /// The schedule's answer keeps the sweep's fields and adds the catch-up's.
    #[test]
    fn the_report_keeps_the_sweeps_fields() {
        let report = CatchUpReport { mode: "catch_up", events: 3, ..Default::default() };
        let json = report.to_json().unwrap();
        assert_eq!(json["members"], 0);
        assert_eq!(json["totals"]["created"], 0);
        assert_eq!(json["mode"], "catch_up");
        assert_eq!(json["events"], 3);
        assert_eq!(json["fallback"], Value::Null);
    }
}
