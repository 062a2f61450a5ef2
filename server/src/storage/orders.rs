//! The `OrderSnapshots` table: one item per (member, order), listed newest first through the
//! `byCreated` local index, written with conditions on `version`.

use super::schema::BY_CREATED;
use super::{Store, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use dashboard_api::{
    OrderCharge, OrderDispute, OrderItem, OrderRefund, OrderShipping, OrderStatus,
};
use serde::Deserializer;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An order as cached.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    pub user_id: String,
    pub order_id: String,
    /// `<created, 12 digits>#<order id>`: sorts newest-first listings, ties included.
    pub created_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_customer_id: Option<String>,
    pub order_number: String,
    pub stripe_payment_intent_id: String,
    #[serde(deserialize_with = "lenient_status")]
    pub status: OrderStatus,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    #[serde(default)]
    pub items: Vec<ItemRecord>,
    /// `items.len()`, kept so that listings read only summary attributes.
    #[serde(default)]
    pub item_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingRecord>,
    #[serde(default)]
    pub charges: Vec<ChargeRecord>,
    #[serde(default)]
    pub refunds: Vec<RefundRecord>,
    #[serde(default)]
    pub disputes: Vec<DisputeRecord>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub synced_at: DateTime<Utc>,
    pub version: u64,
    /// Optional expiry (Unix seconds) for DynamoDB TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl OrderRecord {
    pub fn created_key(created: i64, order_id: &str) -> String {
        format!("{created:012}#{order_id}")
    }

    /// True when the Stripe-derived content is the same (bookkeeping fields aside).
    pub fn same_content(&self, other: &OrderRecord) -> bool {
        let strip = |r: &OrderRecord| OrderRecord {
            updated_at: DateTime::<Utc>::MIN_UTC,
            synced_at: DateTime::<Utc>::MIN_UTC,
            version: 0,
            expires_at: None,
            ..r.clone()
        };
        strip(self) == strip(other)
    }

    fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A status the API has since dropped reads as `processing` (the next reconcile rewrites it)
/// rather than failing the whole load.
fn lenient_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OrderStatus, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(serde_json::from_value(serde_json::Value::String(text)).unwrap_or(OrderStatus::Processing))
}

// The parts of a cached order, as stored: tolerant records (see [`super::record_types`]).
record_types! {
    /// One line of an order.
    ItemRecord <-> OrderItem {
        description: String, quantity: u64, unit_amount: Option<i64>, amount_total: i64,
    }
    /// Shipping details as Stripe held them.
    ShippingRecord <-> OrderShipping {
        name: Option<String>, line1: Option<String>, line2: Option<String>, city: Option<String>,
        region: Option<String>, postal_code: Option<String>, country: Option<String>,
    }
    /// A payment attempt.
    ChargeRecord <-> OrderCharge {
        charge_id: String, status: String, amount: i64, amount_refunded: i64, disputed: bool,
        failure_message: Option<String>, receipt_url: Option<String>, created_at: DateTime<Utc>,
    }
    /// A refund.
    RefundRecord <-> OrderRefund {
        refund_id: String, charge_id: Option<String>, amount: i64, status: String,
        reason: Option<String>, created_at: DateTime<Utc>,
    }
    /// A dispute.
    DisputeRecord <-> OrderDispute {
        dispute_id: String, charge_id: String, amount: i64, status: String, reason: String,
        created_at: DateTime<Utc>,
    }
}

/// The attributes a listing reads (a projection: the full timeline stays in the table).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummaryRecord {
    pub order_id: String,
    pub created_key: String,
    pub order_number: String,
    #[serde(deserialize_with = "lenient_status")]
    pub status: OrderStatus,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    #[serde(default)]
    pub item_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

const SUMMARY_ATTRIBUTES: [&str; 11] = [
    "orderId",
    "createdKey",
    "orderNumber",
    "status",
    "amount",
    "amountRefunded",
    "currency",
    "itemCount",
    "createdAt",
    "updatedAt",
    "expiresAt",
];

/// One page from the newest-first index.
pub struct OrderPage {
    pub orders: Vec<OrderSummaryRecord>,
    /// Whether more may follow the last order returned.
    pub more: bool,
}

/// What a listing asks for.
pub struct OrderQuery<'a> {
    pub user_id: &'a str,
    pub status: Option<OrderStatus>,
    /// Lowest `createdKey` (inclusive).
    pub from_key: Option<String>,
    /// Listing continues strictly below this `createdKey`.
    pub below_key: Option<String>,
    pub limit: usize,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

impl Store {
    pub async fn get_order(
        &self,
        user_id: &str,
        order_id: &str,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.order_snapshots)
            .key("userId", s(user_id))
            .key("orderId", s(order_id))
            .consistent_read(true)
            .send()
            .await?;
        let record: Option<OrderRecord> = output.item.map(serde_dynamo::from_item).transpose()?;
        Ok(record.filter(|r| !r.expired(Utc::now().timestamp())))
    }

    /// Newest first. One Query per page without a status filter; with one, DynamoDB filters
    /// after reading, so a sparse status may take a few Queries to fill the page.
    pub async fn list_orders(&self, query: &OrderQuery<'_>) -> Result<OrderPage, StoreError> {
        let mut names = HashMap::from([
            ("#u".to_string(), "userId".to_string()),
            ("#k".to_string(), "createdKey".to_string()),
        ]);
        // Every projected attribute through a placeholder: `status` is a reserved word.
        let mut projection = Vec::new();
        for (i, attribute) in SUMMARY_ATTRIBUTES.iter().enumerate() {
            names.insert(format!("#p{i}"), attribute.to_string());
            projection.push(format!("#p{i}"));
        }
        let projection = projection.join(", ");
        let mut values = HashMap::from([(":u".to_string(), s(query.user_id))]);
        // One condition on the sort key, and only on the bounds given: real DynamoDB refuses an
        // empty string as a key value, so "no lower bound" is no condition, never `""`.
        let sort_condition = match (&query.from_key, &query.below_key) {
            (None, None) => None,
            (Some(low), None) => {
                values.insert(":lo".into(), s(low));
                Some("#k >= :lo")
            }
            (None, Some(high)) => {
                values.insert(":hi".into(), s(high));
                Some("#k < :hi")
            }
            // BETWEEN is inclusive: the cursor's own item is skipped below.
            (Some(low), Some(high)) => {
                values.insert(":lo".into(), s(low));
                values.insert(":hi".into(), s(high));
                Some("#k BETWEEN :lo AND :hi")
            }
        };
        let key_condition = match sort_condition {
            Some(condition) => format!("#u = :u AND {condition}"),
            None => {
                names.remove("#k");
                "#u = :u".to_string()
            }
        };
        let mut filter = None;
        if let Some(status) = query.status {
            names.insert("#s".into(), "status".into());
            values.insert(":s".into(), serde_dynamo::to_attribute_value(status)?);
            filter = Some("#s = :s");
        }
        let now = Utc::now().timestamp();
        let mut orders = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.order_snapshots)
                .index_name(BY_CREATED)
                .key_condition_expression(&key_condition)
                .projection_expression(&projection)
                .set_filter_expression(filter.map(str::to_string))
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit((query.limit - orders.len()) as i32 + 1)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in output.items.unwrap_or_default() {
                let record: OrderSummaryRecord = serde_dynamo::from_item(item)?;
                // The page continues strictly below the cursor.
                let expired = record.expires_at.is_some_and(|at| at <= now);
                if query.below_key.as_deref() == Some(record.created_key.as_str()) || expired {
                    continue;
                }
                orders.push(record);
            }
            if orders.len() > query.limit {
                orders.truncate(query.limit);
                return Ok(OrderPage { orders, more: true });
            }
            match output.last_evaluated_key {
                Some(key) if orders.len() < query.limit => start = Some(key),
                Some(_) => return Ok(OrderPage { orders, more: true }),
                None => return Ok(OrderPage { orders, more: false }),
            }
        }
    }

    /// Every cached order of a member, by order id (reconcile compares against these).
    pub async fn all_orders(
        &self,
        user_id: &str,
    ) -> Result<HashMap<String, OrderRecord>, StoreError> {
        let mut all = HashMap::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.order_snapshots)
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user_id))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in output.items.unwrap_or_default() {
                let record: OrderRecord = serde_dynamo::from_item(item)?;
                all.insert(record.order_id.clone(), record);
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(all),
            }
        }
    }

    /// Caches a new order and counts it on the member's profile, atomically.
    /// `ConditionFailed` when the order exists already (or the profile does not).
    pub async fn insert_order(&self, record: &OrderRecord) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.order_snapshots)
            .set_item(Some(serde_dynamo::to_item(record)?))
            .condition_expression("attribute_not_exists(orderId)")
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let count = Update::builder()
            .table_name(&self.tables.user_profiles)
            .key("userId", s(&record.user_id))
            .update_expression("ADD orderCount :one")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await?;
        Ok(())
    }

    /// Replaces a cached order if it is still at `expected_version`.
    pub async fn replace_order(
        &self,
        record: &OrderRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.order_snapshots)
            .set_item(Some(serde_dynamo::to_item(record)?))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
            .send()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot written by an earlier version, with attributes this version does not know
    /// (at the top and inside items and charges), parts it lacks, and a status the API no
    /// longer has, still loads.
    #[test]
    fn stored_orders_survive_fields_removed_from_the_api() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/order-legacy.json")).unwrap();
        let item = super::super::item_from_json(&fixture).unwrap();
        let record: OrderRecord = serde_dynamo::from_item(item.clone()).unwrap();
        assert_eq!(record.status, OrderStatus::Processing, "an unknown status: processing");
        assert_eq!(record.items.len(), 2);
        let sticker = OrderItem::from(record.items[1].clone());
        assert_eq!((sticker.unit_amount, sticker.amount_total), (None, 500));
        assert_eq!(OrderCharge::from(record.charges[0].clone()).receipt_url, None);
        let summary: OrderSummaryRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(summary.item_count, 2);
    }
}
