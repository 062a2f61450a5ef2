//! Pure code, no I/O: a PaymentIntent (and what else Stripe said about it) plus the cached
//! snapshot become the new snapshot. The status mapping, the metadata item convention, and
//! the merge of charges, refunds and disputes live here, with their tests.

use super::Extras;
use crate::storage::orders::{ChargeRecord, DisputeRecord, ItemRecord, OrderRecord, RefundRecord};
use crate::stripe::{timestamp, ChargeWithRefunds, Intent, Payload};
use chrono::{DateTime, Utc};
use dashboard_api::{OrderCharge, OrderDispute, OrderItem, OrderRefund, OrderStatus};
use std::collections::HashMap;

/// Items from PaymentIntent metadata: `item_<n>` = `<quantity>|<unit amount>|<description>`.
pub fn metadata_items(metadata: &HashMap<String, String>) -> Vec<OrderItem> {
    let mut keyed: Vec<(u32, OrderItem)> = metadata
        .iter()
        .filter_map(|(key, value)| {
            let n: u32 = key.strip_prefix("item_")?.parse().ok()?;
            let mut parts = value.splitn(3, '|');
            let quantity: u64 = parts.next()?.trim().parse().ok()?;
            let unit_amount: i64 = parts.next()?.trim().parse().ok()?;
            let description = parts.next()?.trim().to_string();
            (quantity > 0 && !description.is_empty()).then(|| {
                (
                    n,
                    OrderItem {
                        description,
                        quantity,
                        unit_amount: Some(unit_amount),
                        amount_total: unit_amount.saturating_mul(quantity as i64),
                    },
                )
            })
        })
        .collect();
    keyed.sort_by_key(|(n, _)| *n);
    keyed.into_iter().map(|(_, item)| item).collect()
}

/// The order status for a PaymentIntent and its latest charge.
pub fn status_of(intent: &Intent) -> OrderStatus {
    let charge = intent.latest_charge.as_ref().map(|c| &c.charge);
    match intent.status.as_str() {
        "succeeded" => {
            let refunded = charge.map_or(0, |c| c.amount_refunded);
            let received = intent.amount_received.max(charge.map_or(0, |c| c.amount));
            if charge.is_some_and(|c| c.disputed) {
                OrderStatus::Disputed
            } else if refunded > 0 && refunded >= received {
                OrderStatus::Refunded
            } else if refunded > 0 {
                OrderStatus::PartiallyRefunded
            } else {
                OrderStatus::Succeeded
            }
        }
        "canceled" => OrderStatus::Canceled,
        "requires_payment_method" if intent.has_payment_error => OrderStatus::Failed,
        // requires_payment_method (no attempt yet), requires_confirmation, requires_action,
        // processing, requires_capture, and anything Stripe adds later.
        _ => OrderStatus::Processing,
    }
}

/// Dispute statuses Stripe never moves on from
/// (https://docs.stripe.com/api/disputes/object#dispute_object-status).
const FINAL_DISPUTE_STATUSES: [&str; 4] = ["won", "lost", "warning_closed", "prevented"];

/// Whether an order's disputes must be read again: one of its `charges` is disputed and the
/// cache has no dispute for it yet, or holds a dispute that can still change. Closed disputes
/// cost nothing more.
pub fn disputes_may_have_changed(charges: &[OrderCharge], old: Option<&OrderRecord>) -> bool {
    let mut disputed = charges.iter().filter(|c| c.disputed).peekable();
    if disputed.peek().is_none() {
        return false;
    }
    let Some(old) = old else { return true };
    let open = old.disputes.iter().any(|d| !FINAL_DISPUTE_STATUSES.contains(&d.status.as_str()));
    open || disputed.any(|c| !old.disputes.iter().any(|d| d.charge_id == c.charge_id))
}

/// Merges `fresh` into `old` by id; fresh entries win; sorted by time, then id.
fn merge<T: Clone>(
    old: &[T],
    fresh: &[T],
    id: impl Fn(&T) -> &str,
    at: impl Fn(&T) -> DateTime<Utc>,
) -> Vec<T> {
    let mut by_id: HashMap<String, T> = HashMap::new();
    for entry in old.iter().chain(fresh) {
        by_id.insert(id(entry).to_string(), entry.clone());
    }
    let mut all: Vec<T> = by_id.into_values().collect();
    all.sort_by(|a, b| at(a).cmp(&at(b)).then_with(|| id(a).cmp(id(b))));
    all
}

pub(super) fn build(
    user_id: &str,
    customer: &str,
    intent: &Intent,
    extras: &Extras,
    old: Option<&OrderRecord>,
    now: DateTime<Utc>,
) -> OrderRecord {
    let empty = OrderRecord::default_for(user_id, &intent.id);
    let old_or_empty = old.unwrap_or(&empty);
    let mut fresh_charges: Vec<OrderCharge> = extras.charges.clone().unwrap_or_default();
    let mut fresh_refunds: Vec<OrderRefund> = Vec::new();
    if let Some(latest) = &intent.latest_charge {
        fresh_charges.retain(|c| c.charge_id != latest.charge.charge_id);
        fresh_charges.push(latest.charge.clone());
        fresh_refunds.extend(latest.refunds.iter().cloned());
    }
    fresh_refunds.extend(extras.refunds.iter().flatten().cloned());
    let (fresh_charges, fresh_refunds): (Vec<ChargeRecord>, Vec<RefundRecord>) =
        (records(fresh_charges), records(fresh_refunds));
    let fresh_disputes: Vec<DisputeRecord> = records(extras.disputes.clone().unwrap_or_default());
    let charges = merge(&old_or_empty.charges, &fresh_charges, |c| &c.charge_id, |c| c.created_at);
    let refunds = merge(&old_or_empty.refunds, &fresh_refunds, |r| &r.refund_id, |r| r.created_at);
    let disputes =
        merge(&old_or_empty.disputes, &fresh_disputes, |d| &d.dispute_id, |d| d.created_at);
    let mut items: Vec<ItemRecord> = records(metadata_items(&intent.metadata));
    if items.is_empty() {
        items = match extras.items.clone().filter(|i| !i.is_empty()) {
            Some(fresh) => records(fresh),
            None => old_or_empty.items.clone(),
        };
    }
    let receipt_url =
        charges.iter().rev().find(|c| c.status == "succeeded").and_then(|c| c.receipt_url.clone());
    let order_number = intent.metadata.get("order_number").cloned().unwrap_or_else(|| {
        let tail: String =
            intent.id.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        format!("BC-{}", tail.to_ascii_uppercase())
    });
    let record = OrderRecord {
        user_id: user_id.to_string(),
        order_id: intent.id.clone(),
        created_key: OrderRecord::created_key(intent.created, &intent.id),
        stripe_customer_id: Some(customer.to_string()),
        order_number,
        stripe_payment_intent_id: intent.id.clone(),
        status: status_of(intent),
        amount: intent.amount,
        amount_refunded: charges.iter().map(|c| c.amount_refunded).sum(),
        currency: intent.currency.clone(),
        item_count: items.len() as u32,
        items,
        receipt_url,
        shipping: intent.shipping.clone().map(Into::into),
        charges,
        refunds,
        disputes,
        created_at: timestamp(intent.created),
        updated_at: now,
        synced_at: now,
        version: old.map_or(1, |o| o.version + 1),
        expires_at: old.and_then(|o| o.expires_at),
    };
    record
}

/// What to do with an event's own object, given the cached snapshot.
#[derive(Debug)]
pub(super) enum Plan {
    /// The event is older than (or the same as) what the cache holds.
    Nothing,
    /// Build from this PaymentIntent state (from the payload or the cache) and these extras.
    Build(Intent, Extras),
    /// Only the Checkout Session's line items are missing (the session's id, and the intent
    /// as cached).
    FetchItems(String, Intent),
    /// The payload cannot be ordered against the cache, or lacks what the snapshot needs.
    Refetch,
}

/// How far along Stripe's PaymentIntent lifecycle a state is
/// (https://docs.stripe.com/payments/paymentintents/lifecycle): 0 before any attempt, 1 an
/// attempt under way or failed (these move back and forth, so they cannot be ordered against
/// each other), 2 a terminal state (`succeeded`, `canceled`), which never changes again.
fn intent_rank(status: &str, has_payment_error: bool) -> u8 {
    match status {
        "succeeded" | "canceled" => 2,
        "requires_payment_method" if !has_payment_error => 0,
        _ => 1,
    }
}

/// The rank of a cached order's PaymentIntent, when its status tells: `processing` covers both
/// the state before any attempt and attempts under way.
fn record_rank(status: OrderStatus) -> Option<u8> {
    match status {
        OrderStatus::Processing => None,
        OrderStatus::Failed => Some(1),
        _ => Some(2),
    }
}

/// A charge's status only moves from `pending` to `succeeded` or `failed`
/// (https://docs.stripe.com/api/charges/object#charge_object-status).
fn charge_rank(status: &str) -> u8 {
    u8::from(status != "pending")
}

/// A refund moves from `pending` (or `requires_action`) to `succeeded`, and may then fail or
/// be canceled (https://docs.stripe.com/api/refunds/object#refund_object-status).
fn refund_rank(status: &str) -> u8 {
    match status {
        "pending" | "requires_action" => 0,
        "succeeded" => 1,
        _ => 2,
    }
}

/// A dispute needs a response, is then under review, then closes for good
/// (https://docs.stripe.com/api/disputes/object#dispute_object-status).
fn dispute_rank(status: &str) -> u8 {
    match status {
        "needs_response" | "warning_needs_response" => 0,
        "under_review" | "warning_under_review" => 1,
        _ => 2,
    }
}

/// The newer of two states of one charge, by its monotone parts: the status, the amount
/// refunded (refunds only accumulate) and `disputed` (never cleared).
fn newer_charge(old: &OrderCharge, new: &OrderCharge) -> OrderCharge {
    let mut merged = if charge_rank(&new.status) >= charge_rank(&old.status) {
        new.clone()
    } else {
        old.clone()
    };
    merged.amount_refunded = old.amount_refunded.max(new.amount_refunded);
    merged.disputed = old.disputed || new.disputed;
    merged
}

/// The PaymentIntent as the cached snapshot knows it, with `charges` and `refunds` as merged:
/// what an event about a charge, refund or dispute is applied to. The status keeps its class
/// (a succeeded intent's latest charge is its succeeded one); the order number goes through
/// metadata so `build` keeps it, and no metadata items means `build` keeps the cached items.
fn cached_intent(old: &OrderRecord, charges: &[OrderCharge], refunds: &[OrderRefund]) -> Intent {
    let (status, has_payment_error) = match old.status {
        OrderStatus::Succeeded
        | OrderStatus::PartiallyRefunded
        | OrderStatus::Refunded
        | OrderStatus::Disputed => ("succeeded", false),
        OrderStatus::Canceled => ("canceled", false),
        OrderStatus::Failed => ("requires_payment_method", true),
        _ => ("processing", false),
    };
    let latest = charges
        .iter()
        .filter(|c| status != "succeeded" || c.status == "succeeded")
        .max_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.charge_id.cmp(&b.charge_id)))
        .cloned();
    Intent {
        id: old.order_id.clone(),
        customer: old.stripe_customer_id.clone(),
        status: status.to_string(),
        amount: old.amount,
        amount_received: if status == "succeeded" { old.amount } else { 0 },
        currency: old.currency.clone(),
        created: old.created_at.timestamp(),
        has_payment_error,
        metadata: HashMap::from([("order_number".to_string(), old.order_number.clone())]),
        shipping: old.shipping.clone().map(Into::into),
        latest_charge: latest.map(|charge| ChargeWithRefunds {
            refunds: refunds
                .iter()
                .filter(|r| r.charge_id.as_deref() == Some(&charge.charge_id))
                .cloned()
                .collect(),
            charge,
        }),
    }
}

/// Decides how an event's own object changes the cached snapshot `old`, without asking
/// Stripe when the two can be ordered. Stripe does not deliver events in order
/// (https://docs.stripe.com/webhooks#event-ordering), so the snapshot keeps what is newer by
/// the monotone parts of the state: refunds and disputes only accumulate, a charge or refund
/// only moves forward, a terminal PaymentIntent stays terminal. Two states that cannot be
/// ordered that way (two attempts of one intent, a dispute `won` against one `lost`) and that
/// differ are re-fetched; so is a first sighting the object cannot describe alone.
pub(super) fn plan(payload: &Payload, old: Option<&OrderRecord>, now: DateTime<Utc>) -> Plan {
    let wire = |old: &OrderRecord| -> (Vec<OrderCharge>, Vec<OrderRefund>, Vec<OrderDispute>) {
        (
            old.charges.iter().cloned().map(Into::into).collect(),
            old.refunds.iter().cloned().map(Into::into).collect(),
            old.disputes.iter().cloned().map(Into::into).collect(),
        )
    };
    match payload {
        Payload::Intent { intent, latest_charge } => {
            // A first sighting without metadata items needs Checkout's line items (once
            // cached, whoever wrote the order has looked them up).
            if old.is_none() && metadata_items(&intent.metadata).is_empty() {
                return Plan::Refetch;
            }
            let rank = intent_rank(&intent.status, intent.has_payment_error);
            let mut intent: Intent = (**intent).clone();
            let Some(old) = old else { return Plan::Build(intent, Extras::default()) };
            let (charges, refunds, _) = wire(old);
            intent.latest_charge = charges
                .iter()
                .find(|c| Some(&c.charge_id) == latest_charge.as_ref())
                .map(|c| ChargeWithRefunds {
                    charge: c.clone(),
                    refunds: refunds
                        .iter()
                        .filter(|r| r.charge_id.as_deref() == Some(&c.charge_id))
                        .cloned()
                        .collect(),
                });
            let same = || {
                let customer = old.stripe_customer_id.as_deref().unwrap_or_default();
                let fresh =
                    build(&old.user_id, customer, &intent, &Extras::default(), Some(old), now);
                old.same_content(&fresh)
            };
            match (rank, record_rank(old.status)) {
                // The state before any attempt is never newer than a cached one.
                (0, _) => Plan::Nothing,
                (new, Some(cached)) if new < cached => Plan::Nothing,
                (2, Some(cached)) if cached < 2 => Plan::Build(intent, Extras::default()),
                (2, None) => Plan::Build(intent, Extras::default()),
                _ if same() => Plan::Nothing,
                _ => Plan::Refetch,
            }
        }
        Payload::Charge { charge, .. } => {
            let Some(old) = old else { return Plan::Refetch };
            let (mut charges, refunds, _) = wire(old);
            match charges.iter_mut().find(|c| c.charge_id == charge.charge_id) {
                Some(known) => *known = newer_charge(known, charge),
                None => charges.push(charge.clone()),
            }
            with_disputes_marked(old, charges, refunds)
        }
        Payload::Refund { refund, .. } => {
            let Some(old) = old else { return Plan::Refetch };
            let (mut charges, mut refunds, _) = wire(old);
            match refunds.iter_mut().find(|r| r.refund_id == refund.refund_id) {
                Some(known) if refund_rank(&refund.status) > refund_rank(&known.status) => {
                    *known = refund.clone()
                }
                Some(known) if refund_rank(&refund.status) < refund_rank(&known.status) => {}
                Some(known) if known.status != refund.status => return Plan::Refetch,
                Some(_) => {}
                None => refunds.push(refund.clone()),
            }
            // The charge's refunded amount is at least what its succeeded refunds add up to,
            // even before the `charge.refunded` event arrives.
            for charge in &mut charges {
                let refunded: i64 = refunds
                    .iter()
                    .filter(|r| r.charge_id.as_deref() == Some(&charge.charge_id))
                    .filter(|r| r.status == "succeeded")
                    .map(|r| r.amount)
                    .sum();
                charge.amount_refunded = charge.amount_refunded.max(refunded);
            }
            with_disputes_marked(old, charges, refunds)
        }
        Payload::Dispute { dispute, .. } => {
            let Some(old) = old else { return Plan::Refetch };
            let (charges, refunds, mut disputes) = wire(old);
            match disputes.iter_mut().find(|d| d.dispute_id == dispute.dispute_id) {
                Some(known) if dispute_rank(&dispute.status) > dispute_rank(&known.status) => {
                    *known = dispute.clone()
                }
                Some(known) if dispute_rank(&dispute.status) < dispute_rank(&known.status) => {}
                Some(known) if known.status != dispute.status => return Plan::Refetch,
                Some(_) => {}
                None => disputes.push(dispute.clone()),
            }
            let mut plan = with_disputes_marked(old, charges, refunds);
            if let Plan::Build(intent, extras) = &mut plan {
                extras.disputes = Some(disputes);
                // A dispute marks its charge even before a charge event says so.
                let mut charges = extras.charges.take().unwrap_or_default();
                for charge in &mut charges {
                    charge.disputed |= charge.charge_id == dispute.charge_id;
                }
                *intent = cached_intent(old, &charges, extras.refunds.as_deref().unwrap_or(&[]));
                extras.charges = Some(charges);
            }
            plan
        }
        Payload::Session { session, .. } => match old {
            Some(old) if !old.items.is_empty() => Plan::Nothing,
            Some(old) => {
                let (charges, refunds, _) = wire(old);
                Plan::FetchItems(session.clone(), cached_intent(old, &charges, &refunds))
            }
            None => Plan::Refetch,
        },
    }
}

/// The plan for merged charges and refunds: each charge a cached dispute names is disputed.
fn with_disputes_marked(
    old: &OrderRecord,
    mut charges: Vec<OrderCharge>,
    refunds: Vec<OrderRefund>,
) -> Plan {
    for charge in &mut charges {
        charge.disputed |= old.disputes.iter().any(|d| d.charge_id == charge.charge_id);
    }
    let intent = cached_intent(old, &charges, &refunds);
    Plan::Build(
        intent,
        Extras { charges: Some(charges), refunds: Some(refunds), ..Extras::default() },
    )
}

/// Wire types (as the Stripe client returns them) to their stored form.
fn records<W, R: From<W>>(wire: Vec<W>) -> Vec<R> {
    wire.into_iter().map(R::from).collect()
}

impl OrderRecord {
    fn default_for(user_id: &str, order_id: &str) -> Self {
        OrderRecord {
            user_id: user_id.to_string(),
            order_id: order_id.to_string(),
            created_key: String::new(),
            stripe_customer_id: None,
            order_number: String::new(),
            stripe_payment_intent_id: order_id.to_string(),
            status: OrderStatus::Processing,
            amount: 0,
            amount_refunded: 0,
            currency: String::new(),
            items: Vec::new(),
            item_count: 0,
            receipt_url: None,
            shipping: None,
            charges: Vec::new(),
            refunds: Vec::new(),
            disputes: Vec::new(),
            created_at: DateTime::<Utc>::MIN_UTC,
            updated_at: DateTime::<Utc>::MIN_UTC,
            synced_at: DateTime::<Utc>::MIN_UTC,
            version: 0,
            expires_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::ChargeWithRefunds;

    fn intent(status: &str, refunded: i64, disputed: bool, error: bool) -> Intent {
        Intent {
            id: "pi_1".into(),
            customer: Some("cus_1".into()),
            status: status.into(),
            amount: 1000,
            amount_received: if status == "succeeded" { 1000 } else { 0 },
            currency: "USD".into(),
            created: 1_700_000_000,
            has_payment_error: error,
            metadata: HashMap::new(),
            shipping: None,
            latest_charge: Some(ChargeWithRefunds {
                charge: OrderCharge {
                    charge_id: "ch_1".into(),
                    status: "succeeded".into(),
                    amount: 1000,
                    amount_refunded: refunded,
                    disputed,
                    failure_message: None,
                    receipt_url: None,
                    created_at: timestamp(1_700_000_000),
                },
                refunds: vec![],
            }),
        }
    }

    #[test]
    fn every_stripe_state_maps_to_an_order_status() {
        use OrderStatus::*;
        let cases = [
            (intent("succeeded", 0, false, false), Succeeded),
            (intent("succeeded", 400, false, false), PartiallyRefunded),
            (intent("succeeded", 1000, false, false), Refunded),
            (intent("succeeded", 1000, true, false), Disputed),
            (intent("canceled", 0, false, false), Canceled),
            (intent("requires_payment_method", 0, false, true), Failed),
            (intent("requires_payment_method", 0, false, false), Processing),
            (intent("requires_confirmation", 0, false, false), Processing),
            (intent("requires_action", 0, false, false), Processing),
            (intent("processing", 0, false, false), Processing),
            (intent("requires_capture", 0, false, false), Processing),
            (intent("some_future_state", 0, false, false), Processing),
        ];
        for (intent, expected) in cases {
            assert_eq!(status_of(&intent), expected, "{}", intent.status);
        }
    }

    /// Disputes are read again while one is open or a disputed charge has none cached; closed
    /// ones, and orders without a disputed charge, cost no request.
    #[test]
    fn disputes_are_reread_only_while_they_can_change() {
        let charges = |disputed: bool| intent("succeeded", 0, disputed, false).latest_charge;
        let disputed = vec![charges(true).unwrap().charge];
        let undisputed = vec![charges(false).unwrap().charge];
        let cached = |status: &str| {
            let mut order = OrderRecord::default_for("u", "pi_1");
            order.disputes = vec![DisputeRecord {
                dispute_id: "dp_1".into(),
                charge_id: "ch_1".into(),
                amount: 1000,
                status: status.into(),
                reason: "fraudulent".into(),
                created_at: timestamp(1_700_000_000),
            }];
            order
        };
        assert!(!disputes_may_have_changed(&undisputed, None));
        assert!(disputes_may_have_changed(&disputed, None));
        let empty = OrderRecord::default_for("u", "pi_1");
        assert!(disputes_may_have_changed(&disputed, Some(&empty)));
        assert!(disputes_may_have_changed(&disputed, Some(&cached("needs_response"))));
        assert!(disputes_may_have_changed(&disputed, Some(&cached("under_review"))));
        for status in FINAL_DISPUTE_STATUSES {
            assert!(!disputes_may_have_changed(&disputed, Some(&cached(status))), "{status}");
        }
    }

    /// A cached order built from `intent`, with metadata items so no Checkout look-up is due.
    fn cached(mut intent: Intent) -> OrderRecord {
        intent.metadata.insert("item_1".into(), "1|1000|Tee".into());
        build("u", "cus_1", &intent, &Extras::default(), None, Utc::now())
    }

    fn intent_payload(status: &str, error: bool) -> Payload {
        let mut intent = intent(status, 0, false, error);
        intent.latest_charge = None;
        intent.metadata.insert("item_1".into(), "1|1000|Tee".into());
        Payload::Intent { intent: Box::new(intent), latest_charge: Some("ch_1".into()) }
    }

    /// A late event about an earlier PaymentIntent state changes nothing and asks Stripe
    /// nothing: a terminal state stays terminal, and the state before any attempt is the oldest.
    #[test]
    fn an_older_intent_state_never_replaces_a_newer_one() {
        let paid = cached(intent("succeeded", 400, false, false));
        let now = Utc::now();
        for (status, error) in [
            ("requires_payment_method", false),
            ("processing", false),
            ("requires_payment_method", true),
        ] {
            let plan = plan(&intent_payload(status, error), Some(&paid), now);
            assert!(matches!(plan, Plan::Nothing), "{status}: {plan:?}");
        }
        let failed = cached(intent("requires_payment_method", 0, false, true));
        let initial = intent_payload("requires_payment_method", false);
        assert!(matches!(plan(&initial, Some(&failed), now), Plan::Nothing));
        // A terminal state is newer than any attempt.
        let Plan::Build(newer, _) = plan(&intent_payload("succeeded", false), Some(&failed), now)
        else {
            panic!("a success after a failure is applied")
        };
        assert_eq!(newer.status, "succeeded");
    }

    /// States that the lifecycle cannot order (two attempts, two closed disputes) and that
    /// differ are re-fetched; so is a first sighting the object cannot describe alone.
    #[test]
    fn what_cannot_be_ordered_or_says_too_little_is_refetched() {
        let now = Utc::now();
        let failed = cached(intent("requires_payment_method", 0, false, true));
        assert!(matches!(
            plan(&intent_payload("processing", false), Some(&failed), now),
            Plan::Refetch
        ));
        let charge = intent("succeeded", 0, false, false).latest_charge.unwrap().charge;
        let charge_event = Payload::Charge { intent: "pi_1".into(), customer: None, charge };
        assert!(matches!(plan(&charge_event, None, now), Plan::Refetch));
        let mut bare = intent("processing", 0, false, false);
        bare.latest_charge = None;
        let no_items = Payload::Intent { intent: Box::new(bare), latest_charge: None };
        assert!(matches!(plan(&no_items, None, now), Plan::Refetch), "Checkout items needed");
        let dispute = |status: &str| Payload::Dispute {
            intent: "pi_1".into(),
            dispute: OrderDispute {
                dispute_id: "dp_1".into(),
                charge_id: "ch_1".into(),
                amount: 1000,
                status: status.into(),
                reason: "fraudulent".into(),
                created_at: timestamp(1_700_000_000),
            },
        };
        let mut won = cached(intent("succeeded", 0, true, false));
        let Plan::Build(i, extras) = plan(&dispute("won"), Some(&won), now) else { panic!() };
        won = build("u", "cus_1", &i, &extras, Some(&won), now);
        assert_eq!(won.disputes[0].status, "won");
        assert!(matches!(plan(&dispute("lost"), Some(&won), now), Plan::Refetch));
        assert!(matches!(plan(&dispute("won"), Some(&won), now), Plan::Build(..)));
        let Plan::Build(i, extras) = plan(&dispute("needs_response"), Some(&won), now) else {
            panic!()
        };
        let after = build("u", "cus_1", &i, &extras, Some(&won), now);
        assert!(won.same_content(&after), "an earlier dispute status changes nothing");
    }

    /// A charge keeps its largest refunded amount and stays disputed, whatever order its
    /// events come in; a refund event counts before `charge.refunded` arrives.
    #[test]
    fn charges_and_refunds_only_move_forward() {
        let now = Utc::now();
        let mut order = cached(intent("succeeded", 600, true, false));
        let mut stale = intent("succeeded", 0, false, false).latest_charge.unwrap().charge;
        stale.status = "pending".into();
        let event = Payload::Charge { intent: "pi_1".into(), customer: None, charge: stale };
        let Plan::Build(i, extras) = plan(&event, Some(&order), now) else { panic!() };
        let after = build("u", "cus_1", &i, &extras, Some(&order), now);
        assert!(order.same_content(&after), "an older charge state changes nothing");
        let refund = Payload::Refund {
            intent: "pi_1".into(),
            refund: OrderRefund {
                refund_id: "re_1".into(),
                charge_id: Some("ch_1".into()),
                amount: 1000,
                status: "succeeded".into(),
                reason: None,
                created_at: timestamp(1_700_000_100),
            },
        };
        order.charges[0].disputed = false;
        order.status = OrderStatus::PartiallyRefunded;
        let Plan::Build(i, extras) = plan(&refund, Some(&order), now) else { panic!() };
        let after = build("u", "cus_1", &i, &extras, Some(&order), now);
        assert_eq!(after.refunds.len(), 1);
        assert_eq!(after.amount_refunded, 1000);
        assert_eq!(after.status, OrderStatus::Refunded);
    }

    #[test]
    fn metadata_items_follow_the_convention() {
        let metadata = HashMap::from([
            ("item_2".to_string(), "1|500|Sticker".to_string()),
            ("item_1".to_string(), "2|2500|Babes Club Tee | black".to_string()),
            ("item_x".to_string(), "1|1|ignored".to_string()),
            ("item_3".to_string(), "zero|1|bad".to_string()),
            ("note".to_string(), "not an item".to_string()),
        ]);
        let items = metadata_items(&metadata);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].description, "Babes Club Tee | black");
        assert_eq!(items[0].amount_total, 5000);
        assert_eq!(items[1].description, "Sticker");
    }
}
