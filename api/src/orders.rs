//! `/dashboard/orders`: the order list (query, filters, the page token's selector, the page)
//! and the order detail with its items, shipping, charges, refunds and disputes.

use chrono::{DateTime, Utc};
use dropshot::PaginationParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest `limit` of `GET /dashboard/orders`.
pub const ORDERS_LIMIT_MAX: u32 = 100;

/// Where an order stands. Every Stripe PaymentIntent state maps to one of these.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Awaiting or undergoing payment (including 3-D Secure and manual capture).
    Processing,
    /// Paid in full.
    Succeeded,
    /// The last payment attempt failed.
    Failed,
    /// Canceled before payment.
    Canceled,
    /// Paid, then refunded in full.
    Refunded,
    /// Paid, then refunded in part.
    PartiallyRefunded,
    /// A charge of the order is disputed.
    Disputed,
}

/// First-page query of `GET /dashboard/orders`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderFilters {
    /// Only orders with this status. The server reads a bounded amount of the member's orders
    /// per request (5 store pages), so a page of a filtered listing may hold fewer orders than
    /// `limit`, even none, and still have a `next_page`: follow it until it is absent.
    #[serde(default)]
    pub status: Option<OrderStatus>,
    /// Only orders created at or after this time.
    #[serde(default)]
    pub created_after: Option<DateTime<Utc>>,
    /// Only orders created before this time.
    #[serde(default)]
    pub created_before: Option<DateTime<Utc>>,
}

/// Query of `GET /dashboard/orders`: Dropshot's pagination parameters (the filters, `limit`
/// and `page_token`), documented with the API's bounds on `limit`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct OrdersQuery(pub PaginationParams<OrderFilters, OrdersPageSelector>);

impl JsonSchema for OrdersQuery {
    fn schema_name() -> String {
        "OrdersQuery".to_string()
    }

    fn json_schema(generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::Schema;
        let mut schema =
            PaginationParams::<OrderFilters, OrdersPageSelector>::json_schema(generator)
                .into_object();
        let limit = schema.object.as_mut().and_then(|o| o.properties.get_mut("limit"));
        if let Some(Schema::Object(limit)) = limit {
            limit.number().maximum = Some(f64::from(ORDERS_LIMIT_MAX));
            limit.metadata().description = Some(format!(
                "Maximum number of orders on the page: 1 to {ORDERS_LIMIT_MAX} (default 20; \
                 over {ORDERS_LIMIT_MAX} is 400 `invalid_limit`)."
            ));
        }
        if let Some(Schema::Object(token)) =
            schema.object.as_mut().and_then(|o| o.properties.get_mut("page_token"))
        {
            token.metadata().description = Some(
                "`next_page` of the previous page, as it was returned (signed: anything else \
                 is 400 `invalid_page_token`)."
                    .to_string(),
            );
        }
        Schema::Object(schema)
    }
}

/// What a page token carries (opaque to clients; signed by the server).
///
/// The serialized names are one or three letters: they are the page token's wire format (tokens
/// already handed out must keep working), and Dropshot caps a token's length.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct OrdersPageSelector {
    /// Sort key where the listing resumes (strictly below it): the last order returned, or the
    /// last one read when a filtered listing reached its read bound.
    #[serde(rename = "k")]
    pub created_key: String,
    /// Status filter.
    #[serde(rename = "s", default)]
    pub status: Option<OrderStatus>,
    /// Created-after filter (Unix seconds).
    #[serde(rename = "a", default)]
    pub created_after: Option<i64>,
    /// Created-before filter (Unix seconds).
    #[serde(rename = "b", default)]
    pub created_before: Option<i64>,
    /// HMAC over the member and everything above.
    #[serde(rename = "sig")]
    pub signature: String,
}

/// One page of orders, with how fresh the cache is.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersPage {
    /// Orders, newest first.
    pub items: Vec<OrderSummary>,
    /// Token for the next page; absent on the last page. A page with fewer orders than `limit`
    /// (even none) may still have one: a filtered listing stops after a bounded read and
    /// resumes where it stopped.
    #[serde(rename = "next_page")]
    pub next_page: Option<String>,
    /// When the member's orders were last reconciled with Stripe (absent: never).
    pub synced_at: Option<DateTime<Utc>>,
    /// True when `syncedAt` is older than the server's freshness threshold, or absent.
    pub stale: bool,
    /// True when a background refresh for this member is running.
    pub refreshing: bool,
}

/// An order in a list.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    /// Order id (the Stripe PaymentIntent id).
    pub order_id: String,
    /// Human-friendly order number.
    pub order_number: String,
    /// Where the order stands.
    pub status: OrderStatus,
    /// Total in minor units of `currency`.
    pub amount: i64,
    /// Refunded so far, in minor units.
    pub amount_refunded: i64,
    /// ISO 4217 currency code, upper case.
    pub currency: String,
    /// Number of line items.
    pub item_count: u32,
    /// When the order was placed.
    pub created_at: DateTime<Utc>,
    /// When the cached order last changed.
    pub updated_at: DateTime<Utc>,
}

/// Path of `GET /dashboard/orders/{orderId}`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct OrderPath {
    /// The order id.
    #[serde(rename = "orderId")]
    pub order_id: String,
}

/// An order with its items and payment timeline.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Order id (the Stripe PaymentIntent id).
    pub order_id: String,
    /// Human-friendly order number.
    pub order_number: String,
    /// The Stripe PaymentIntent behind the order.
    pub stripe_payment_intent_id: String,
    /// Where the order stands.
    pub status: OrderStatus,
    /// Total in minor units of `currency`.
    pub amount: i64,
    /// Refunded so far, in minor units.
    pub amount_refunded: i64,
    /// ISO 4217 currency code, upper case.
    pub currency: String,
    /// What was bought.
    pub items: Vec<OrderItem>,
    /// Stripe's receipt page for the latest successful charge.
    pub receipt_url: Option<String>,
    /// Where the order ships.
    pub shipping: Option<OrderShipping>,
    /// Payment attempts, oldest first.
    pub charges: Vec<OrderCharge>,
    /// Refunds, oldest first.
    pub refunds: Vec<OrderRefund>,
    /// Disputes, oldest first.
    pub disputes: Vec<OrderDispute>,
    /// When the order was placed.
    pub created_at: DateTime<Utc>,
    /// When the cached order last changed.
    pub updated_at: DateTime<Utc>,
    /// When the order was last read from Stripe.
    pub synced_at: DateTime<Utc>,
}

/// A line of an order.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// What it is.
    pub description: String,
    /// How many.
    pub quantity: u64,
    /// Price of one, in minor units, when known.
    pub unit_amount: Option<i64>,
    /// Line total in minor units.
    pub amount_total: i64,
}

/// Shipping details as Stripe holds them.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderShipping {
    /// Recipient.
    pub name: Option<String>,
    /// Address line 1.
    pub line1: Option<String>,
    /// Address line 2.
    pub line2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country.
    pub country: Option<String>,
}

/// A payment attempt.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderCharge {
    /// Stripe charge id.
    pub charge_id: String,
    /// `succeeded`, `pending` or `failed`.
    pub status: String,
    /// Amount in minor units.
    pub amount: i64,
    /// Refunded from this charge, in minor units.
    pub amount_refunded: i64,
    /// Whether the charge is disputed.
    pub disputed: bool,
    /// Why it failed, when it did.
    pub failure_message: Option<String>,
    /// Stripe's receipt page.
    pub receipt_url: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A refund.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderRefund {
    /// Stripe refund id.
    pub refund_id: String,
    /// The refunded charge.
    pub charge_id: Option<String>,
    /// Amount in minor units.
    pub amount: i64,
    /// Stripe's refund status (`pending`, `succeeded`, `failed`, `canceled`, …).
    pub status: String,
    /// Why, when given.
    pub reason: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A dispute (chargeback).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderDispute {
    /// Stripe dispute id.
    pub dispute_id: String,
    /// The disputed charge.
    pub charge_id: String,
    /// Amount in minor units.
    pub amount: i64,
    /// Stripe's dispute status (`needs_response`, `won`, `lost`, …).
    pub status: String,
    /// The card network's reason.
    pub reason: String,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The selector's serialized names are the page token's format: renaming a field must not
    /// change them.
    #[test]
    fn page_selector_wire_names() {
        let selector = OrdersPageSelector {
            created_key: "000001#pi_1".to_string(),
            status: Some(OrderStatus::Succeeded),
            created_after: Some(5),
            created_before: None,
            signature: "tag".to_string(),
        };
        let json = serde_json::to_value(&selector).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "k": "000001#pi_1", "s": "succeeded", "a": 5, "b": null, "sig": "tag",
            })
        );
        let old: OrdersPageSelector =
            serde_json::from_value(serde_json::json!({ "k": "000002#pi_2", "sig": "x" })).unwrap();
        assert_eq!(
            (old.created_key.as_str(), old.status, old.created_after, old.created_before),
            ("000002#pi_2", None, None, None)
        );
        assert_eq!(old.signature, "x");
    }
}
