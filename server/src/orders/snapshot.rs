//! Pure code, no I/O: a PaymentIntent (and what else Stripe said about it) plus the cached
//! snapshot become the new snapshot. The status mapping, the metadata item convention, and
//! the merge of charges, refunds and disputes live here, with their tests.

use super::Extras;
use crate::storage::orders::{ChargeRecord, DisputeRecord, ItemRecord, OrderRecord, RefundRecord};
use crate::stripe::{timestamp, Intent};
use chrono::{DateTime, Utc};
use dashboard_api::{OrderCharge, OrderItem, OrderRefund, OrderStatus};
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
