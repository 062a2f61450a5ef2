//! Stripe objects made from Stripe's fixtures, and the lifecycle steps that change them. Each
//! step records the events Stripe would emit, with a snapshot of the object at that moment.

use crate::{State, StripeSim};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// Stripe's `openapi/fixtures3.json` (one example object per resource), embedded at build time.
const FIXTURES: &str = include_str!("../fixtures/fixtures3.json");

fn fixture(resource: &str) -> Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    let all = PARSED.get_or_init(|| serde_json::from_str(FIXTURES).expect("fixtures parse"));
    all["resources"][resource].clone()
}

/// Sets fields of a JSON object.
fn set(object: &mut Value, fields: Value) {
    for (key, value) in fields.as_object().expect("fields are an object") {
        object[key] = value.clone();
    }
}

/// One line of an order: `quantity` x `unit_amount` (minor units).
#[derive(Clone, Debug)]
pub struct ItemSpec {
    pub description: String,
    pub quantity: u64,
    pub unit_amount: i64,
}

impl ItemSpec {
    pub fn new(description: &str, quantity: u64, unit_amount: i64) -> Self {
        ItemSpec { description: description.to_string(), quantity, unit_amount }
    }
}

impl State {
    fn event(&mut self, kind: &str, object: &Value) {
        let id = self.next_id("evt");
        let mut event = fixture("event");
        set(
            &mut event,
            json!({
                "id": id,
                "type": kind,
                "created": self.now,
                "api_version": "2026-09-30.endive",
                "data": { "object": object },
                "pending_webhooks": 1,
                "request": { "id": null, "idempotency_key": null },
            }),
        );
        self.events.insert(event);
    }

    fn payment_intent(&mut self, id: &str) -> &mut Value {
        self.payment_intents.get_mut(id).unwrap_or_else(|| panic!("no payment intent {id}"))
    }

    fn emit_payment_intent(&mut self, id: &str, kind: &str) {
        let snapshot = self.payment_intents.get(id).cloned().expect("payment intent");
        self.event(kind, &snapshot);
    }

    fn emit_charge(&mut self, id: &str, kind: &str) {
        let snapshot = self.charges.get(id).cloned().expect("charge");
        self.event(kind, &snapshot);
    }

    fn latest_charge(&self, pi: &str) -> String {
        self.payment_intents.get(pi).expect("payment intent")["latest_charge"]
            .as_str()
            .unwrap_or_else(|| panic!("{pi} has no charge yet"))
            .to_string()
    }

    fn new_charge(&mut self, pi: &str, succeeded: bool) -> String {
        let intent = self.payment_intents.get(pi).cloned().expect("payment intent");
        let id = self.next_id("ch");
        let mut charge = fixture("charge");
        let amount = intent["amount"].clone();
        set(
            &mut charge,
            json!({
                "id": id,
                "created": self.now,
                "amount": amount,
                "amount_captured": if succeeded { amount.clone() } else { json!(0) },
                "amount_refunded": 0,
                "captured": succeeded,
                "paid": succeeded,
                "refunded": false,
                "disputed": false,
                "status": if succeeded { "succeeded" } else { "failed" },
                "failure_code": if succeeded { Value::Null } else { json!("card_declined") },
                "failure_message": if succeeded { Value::Null } else { json!("Your card was declined.") },
                "currency": intent["currency"],
                "customer": intent["customer"],
                "payment_intent": pi,
                "receipt_url": format!("https://pay.stripe.com/receipts/sim/{id}"),
                "refunds": { "object": "list", "data": [], "has_more": false, "url": format!("/v1/charges/{id}/refunds") },
                "metadata": {},
            }),
        );
        self.charges.insert(charge);
        set(self.payment_intent(pi), json!({ "latest_charge": id }));
        id
    }
}

impl StripeSim {
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn create_customer(&self, email: &str) -> String {
        self.with_state(|s| {
            let id = s.next_id("cus");
            let mut customer = fixture("customer");
            set(
                &mut customer,
                json!({ "id": id, "email": email, "created": s.now, "discount": null, "shipping": null }),
            );
            s.customers.insert(customer.clone());
            s.event("customer.created", &customer);
            id
        })
    }

    /// A new PaymentIntent awaiting payment. Items go into metadata (`item_<n>` =
    /// `<quantity>|<unit_amount>|<description>`), the convention the server reads.
    pub fn create_payment_intent(
        &self,
        customer: &str,
        amount: i64,
        currency: &str,
        items: &[ItemSpec],
    ) -> String {
        self.with_state(|s| {
            let id = s.next_id("pi");
            let mut metadata = serde_json::Map::new();
            for (n, item) in items.iter().enumerate() {
                metadata.insert(
                    format!("item_{}", n + 1),
                    json!(format!("{}|{}|{}", item.quantity, item.unit_amount, item.description)),
                );
            }
            let mut intent = fixture("payment_intent");
            set(
                &mut intent,
                json!({
                    "id": id,
                    "client_secret": format!("{id}_secret_sim"),
                    "created": s.now,
                    "amount": amount,
                    "amount_received": 0,
                    "amount_capturable": 0,
                    "currency": currency,
                    "customer": customer,
                    "status": "requires_payment_method",
                    "metadata": metadata,
                    "last_payment_error": null,
                    "next_action": null,
                    "processing": null,
                    "canceled_at": null,
                    "cancellation_reason": null,
                    "latest_charge": null,
                    "transfer_data": null,
                    "payment_method_configuration_details": null,
                    "review": null,
                    "description": format!("Babes Club order {}", s.seq),
                    "shipping": {
                        "address": {
                            "city": "Portland", "country": "US", "line1": "1 Rose Way", "line2": null,
                            "postal_code": "97201", "state": "OR"
                        },
                        "carrier": null, "name": "Demo Member", "phone": null, "tracking_number": null
                    },
                }),
            );
            s.payment_intents.insert(intent.clone());
            s.event("payment_intent.created", &intent);
            id
        })
    }

    /// Payment goes through: a succeeded charge, then the intent succeeds.
    pub fn succeed(&self, pi: &str) -> String {
        self.with_state(|s| {
            let charge = s.new_charge(pi, true);
            let amount = s.payment_intent(pi)["amount"].clone();
            set(s.payment_intent(pi), json!({ "status": "succeeded", "amount_received": amount }));
            s.emit_charge(&charge, "charge.succeeded");
            s.emit_payment_intent(pi, "payment_intent.succeeded");
            charge
        })
    }

    /// The card is declined: a failed charge, the intent back to `requires_payment_method`.
    pub fn fail(&self, pi: &str) -> String {
        self.with_state(|s| {
            let charge = s.new_charge(pi, false);
            set(
                s.payment_intent(pi),
                json!({
                    "status": "requires_payment_method",
                    "last_payment_error": {
                        "type": "card_error", "code": "card_declined",
                        "message": "Your card was declined.", "charge": charge
                    }
                }),
            );
            s.emit_charge(&charge, "charge.failed");
            s.emit_payment_intent(pi, "payment_intent.payment_failed");
            charge
        })
    }

    pub fn process(&self, pi: &str) {
        self.with_state(|s| {
            set(s.payment_intent(pi), json!({ "status": "processing" }));
            s.emit_payment_intent(pi, "payment_intent.processing");
        })
    }

    pub fn cancel(&self, pi: &str) {
        self.with_state(|s| {
            let now = s.now;
            set(
                s.payment_intent(pi),
                json!({ "status": "canceled", "canceled_at": now, "cancellation_reason": "requested_by_customer" }),
            );
            s.emit_payment_intent(pi, "payment_intent.canceled");
        })
    }

    /// Refunds `amount` of the intent's latest charge.
    pub fn refund(&self, pi: &str, amount: i64) -> String {
        self.with_state(|s| {
            let charge_id = s.latest_charge(pi);
            let id = s.next_id("re");
            let currency = s.payment_intent(pi)["currency"].clone();
            let mut refund = fixture("refund");
            set(
                &mut refund,
                json!({
                    "id": id, "amount": amount, "charge": charge_id, "payment_intent": pi,
                    "created": s.now, "currency": currency, "status": "succeeded",
                    "reason": "requested_by_customer", "balance_transaction": null,
                }),
            );
            s.refunds.insert(refund.clone());
            let charge = s.charges.get_mut(&charge_id).expect("charge");
            let refunded = charge["amount_refunded"].as_i64().unwrap_or(0) + amount;
            let total = charge["amount"].as_i64().unwrap_or(0);
            set(charge, json!({ "amount_refunded": refunded, "refunded": refunded >= total }));
            s.emit_charge(&charge_id, "charge.refunded");
            s.event("charge.refund.updated", &refund);
            id
        })
    }

    /// The customer disputes the latest charge.
    pub fn dispute(&self, pi: &str) -> String {
        self.with_state(|s| {
            let charge_id = s.latest_charge(pi);
            let id = s.next_id("dp");
            let (amount, currency) = {
                let charge = s.charges.get(&charge_id).expect("charge");
                (charge["amount"].clone(), charge["currency"].clone())
            };
            let mut dispute = fixture("dispute");
            set(
                &mut dispute,
                json!({
                    "id": id, "amount": amount, "currency": currency, "charge": charge_id,
                    "payment_intent": pi, "created": s.now, "reason": "fraudulent",
                    "status": "needs_response",
                }),
            );
            s.disputes.insert(dispute.clone());
            set(s.charges.get_mut(&charge_id).expect("charge"), json!({ "disputed": true }));
            s.event("charge.dispute.created", &dispute);
            id
        })
    }

    /// A dispute moves to `status` (for example `under_review` once evidence is in, then `won`
    /// or `lost`). Stripe sends `charge.dispute.updated`, and `charge.dispute.closed` when the
    /// status becomes `won`, `lost` or `warning_closed`; the charge stays `disputed`
    /// (https://docs.stripe.com/api/events/types#event_types-charge.dispute.closed,
    /// https://docs.stripe.com/disputes/how-disputes-work).
    pub fn update_dispute(&self, dispute: &str, status: &str) {
        self.with_state(|s| {
            let object =
                s.disputes.get_mut(dispute).unwrap_or_else(|| panic!("no dispute {dispute}"));
            set(object, json!({ "status": status }));
            let snapshot = object.clone();
            let closed = matches!(status, "won" | "lost" | "warning_closed");
            s.event(
                if closed { "charge.dispute.closed" } else { "charge.dispute.updated" },
                &snapshot,
            );
        })
    }

    /// A completed Checkout Session: a new, paid PaymentIntent whose items live in the
    /// session's line items (not in metadata). Returns (session id, payment intent id).
    pub fn checkout(&self, customer: &str, currency: &str, items: &[ItemSpec]) -> (String, String) {
        let amount: i64 = items.iter().map(|i| i.unit_amount * i.quantity as i64).sum();
        let pi = self.create_payment_intent(customer, amount, currency, &[]);
        self.succeed(&pi);
        let session = self.with_state(|s| {
            let id = s.next_id("cs");
            let mut lines = Vec::new();
            for item in items {
                let mut line = fixture("item");
                let total = item.unit_amount * item.quantity as i64;
                let price_id = s.next_id("price");
                let line_id = s.next_id("li");
                let mut price = line["price"].clone();
                set(
                    &mut price,
                    json!({
                        "id": price_id, "unit_amount": item.unit_amount,
                        "unit_amount_decimal": item.unit_amount.to_string(), "currency": currency,
                        "recurring": null, "type": "one_time", "transform_quantity": null,
                        "custom_unit_amount": null,
                    }),
                );
                set(
                    &mut line,
                    json!({
                        "id": line_id, "description": item.description, "quantity": item.quantity,
                        "amount_subtotal": total, "amount_total": total, "currency": currency,
                        "price": price, "adjustable_quantity": null,
                    }),
                );
                lines.push(line);
            }
            let mut session = fixture("checkout.session");
            set(
                &mut session,
                json!({
                    "id": id, "created": s.now, "customer": customer, "payment_intent": pi,
                    "mode": "payment", "status": "complete", "payment_status": "paid",
                    "amount_total": amount, "amount_subtotal": amount, "currency": currency,
                }),
            );
            s.sessions.insert(session.clone());
            s.line_items.insert(id.clone(), lines);
            s.event("checkout.session.completed", &session);
            id
        });
        (session, pi)
    }

    /// A shop's ordinary traffic for one customer: `orders` PaymentIntents, one simulated second
    /// apart, each created and paid (`payment_intent.created`, `charge.succeeded`,
    /// `payment_intent.succeeded`) and its charge updated once (`charge.updated`); every eighth
    /// card is declined first (`charge.failed`, `payment_intent.payment_failed`), every third
    /// order is partly refunded (`charge.refunded`, `charge.refund.updated`) and every tenth
    /// disputed (`charge.dispute.created`). Returns the PaymentIntents' ids.
    pub fn shop_orders(&self, customer: &str, orders: usize) -> Vec<String> {
        (0..orders)
            .map(|n| {
                self.advance(1);
                self.shop_order(customer, n)
            })
            .collect()
    }

    /// The `n`th order of [`Self::shop_orders`]' mix, at the current clock (a shop's orders
    /// spread over many customers follow the same mix by passing their shop-wide number).
    pub fn shop_order(&self, customer: &str, n: usize) -> String {
        let items = [ItemSpec::new("Babes Club Tee", 1, 3000)];
        let pi = self.create_payment_intent(customer, 3000, "usd", &items);
        if n % 8 == 3 {
            self.fail(&pi);
        }
        self.succeed(&pi);
        self.touch_charge(&pi, "shipped");
        if n.is_multiple_of(3) {
            self.refund(&pi, 1000);
        }
        if n.is_multiple_of(10) {
            self.dispute(&pi);
        }
        pi
    }

    /// A Stripe-side change to the latest charge that moves nothing else (`charge.updated`).
    pub fn touch_charge(&self, pi: &str, description: &str) {
        self.with_state(|s| {
            let charge_id = s.latest_charge(pi);
            set(
                s.charges.get_mut(&charge_id).expect("charge"),
                json!({ "description": description }),
            );
            s.emit_charge(&charge_id, "charge.updated");
        })
    }
}
