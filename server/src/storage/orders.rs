//! The `OrderSnapshots` table: one item per (member, order), listed newest first through the
//! `byCreated` local index, written with conditions on `version`.

use super::profiles::ListingState;
use super::rules::MAX_TRANSACTION_ITEMS;
use super::schema::{BY_CREATED, LISTING_ENTRY, LISTING_STATE_ID, LISTING_STATE_KEY};
use super::{Store, StoreError};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
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

    pub(crate) fn expired(&self, now: i64) -> bool {
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

/// What a listing reads of an order: its listing entry (the `listing` attribute's JSON, see
/// [`LISTING_ENTRY`]), or, for an order written before entries existed, the order itself.
/// One-letter keys and times as integers: an index's reads cost by the size of what it holds
/// (`LSI.html#LSI.ThroughputConsiderations`), and 20 entries with the attributes' own names and
/// RFC 3339 times cost half a read unit more than the twelve attributes did. Nanoseconds keep
/// `updatedAt` exactly as the order holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OrderSummaryRecord {
    #[serde(rename = "o")]
    pub order_id: String,
    #[serde(rename = "k")]
    pub created_key: String,
    #[serde(rename = "n")]
    pub order_number: String,
    #[serde(rename = "s", deserialize_with = "lenient_status")]
    pub status: OrderStatus,
    #[serde(rename = "a")]
    pub amount: i64,
    #[serde(rename = "r")]
    pub amount_refunded: i64,
    #[serde(rename = "c")]
    pub currency: String,
    #[serde(rename = "i", default)]
    pub item_count: u32,
    #[serde(rename = "t", with = "chrono::serde::ts_nanoseconds")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "u", with = "chrono::serde::ts_nanoseconds")]
    pub updated_at: DateTime<Utc>,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The customer the order belongs to: the listing hides orders of a customer the member
    /// no longer holds (left behind by a relink that did not finish its clean-up).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub stripe_customer_id: Option<String>,
}

impl From<&OrderRecord> for OrderSummaryRecord {
    fn from(record: &OrderRecord) -> Self {
        OrderSummaryRecord {
            order_id: record.order_id.clone(),
            created_key: record.created_key.clone(),
            order_number: record.order_number.clone(),
            status: record.status,
            amount: record.amount,
            amount_refunded: record.amount_refunded,
            currency: record.currency.clone(),
            item_count: record.item_count,
            created_at: record.created_at,
            updated_at: record.updated_at,
            expires_at: record.expires_at,
            stripe_customer_id: record.stripe_customer_id.clone(),
        }
    }
}

/// An order as stored: its attributes and its listing entry. Every order write goes through
/// here, so an entry never disagrees with the attributes written beside it.
pub(crate) fn order_item(
    record: &OrderRecord,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record)?;
    let entry = serde_json::to_string(&OrderSummaryRecord::from(record)).map_err(|e| {
        StoreError::Internal(format!("order {}: listing entry: {e}", record.order_id))
    })?;
    item.insert(LISTING_ENTRY.to_string(), AttributeValue::S(entry));
    Ok(item)
}

/// A listing entry as read; `None` when the item has none (an order written before entries
/// existed) or one this version cannot read: the listing then reads the order whole.
fn listing_entry(item: &HashMap<String, AttributeValue>) -> Option<OrderSummaryRecord> {
    let AttributeValue::S(json) = item.get(LISTING_ENTRY)? else { return None };
    serde_json::from_str(json).ok()
}

/// A member's listing state as its item's listing entry holds it ([`LISTING_STATE_ID`]).
#[derive(Serialize, Deserialize)]
struct StateEntry {
    #[serde(rename = "c")]
    customer: String,
    #[serde(rename = "y", default, skip_serializing_if = "Option::is_none")]
    synced_at: Option<DateTime<Utc>>,
}

/// Whether an item of the member's partition is its listing state rather than an order.
fn is_listing_state(item: &HashMap<String, AttributeValue>) -> bool {
    matches!(item.get("orderId"), Some(AttributeValue::S(id)) if id == LISTING_STATE_ID)
}

/// The state a listing state item holds; `None` if this version cannot read it (the listing
/// then reads the profile, as for a member without one).
fn listing_state(item: &HashMap<String, AttributeValue>) -> Option<ListingState> {
    let AttributeValue::S(json) = item.get(LISTING_ENTRY)? else { return None };
    let entry: StateEntry = serde_json::from_str(json).ok()?;
    Some(ListingState::linked(entry.customer, entry.synced_at))
}

fn listing_state_key(user_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("userId".to_string(), s(user_id)),
        ("orderId".to_string(), s(LISTING_STATE_ID)),
    ])
}

impl Store {
    /// The transaction item that writes a linked member's listing state: its customer and when
    /// its orders were last synced, as the profile holds them after the same transaction.
    pub(super) fn listing_state_put(
        &self,
        user_id: &str,
        customer: &str,
        synced_at: Option<DateTime<Utc>>,
    ) -> Result<TransactWriteItem, StoreError> {
        let entry = StateEntry { customer: customer.to_string(), synced_at };
        let json =
            serde_json::to_string(&entry).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut item = listing_state_key(user_id);
        item.insert("createdKey".into(), s(LISTING_STATE_KEY));
        item.insert(LISTING_ENTRY.into(), AttributeValue::S(json));
        let put = Put::builder()
            .table_name(&self.tables.order_snapshots)
            .set_item(Some(item))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The transaction item that deletes the member's listing state (unlink, erasure): the
    /// listing then reads the profile itself. Deleting a missing item is no error.
    pub(super) fn listing_state_delete(
        &self,
        user_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.tables.order_snapshots)
            .set_key(Some(listing_state_key(user_id)))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

/// Most Query pages one listing request reads. A status filter is applied after DynamoDB has
/// read the items (`Query.FilterExpression.html`), so a rare status could otherwise take a
/// page after page of reads in one request; past this bound the listing answers with what it
/// found and a token that resumes the scan.
pub const MAX_QUERY_PAGES: usize = 5;
/// Items a filtered listing evaluates per Query page (`Limit` counts items read before the
/// filter): at most `MAX_QUERY_PAGES` × this many per request, and never more than 1 MB a page.
pub const FILTERED_PAGE_ITEMS: usize = 50;

/// One page from the newest-first index.
pub struct OrderPage {
    pub orders: Vec<OrderSummaryRecord>,
    /// Where the next page starts (strictly below this `createdKey`) when more may follow:
    /// the last order returned, or, when the read bound ended the scan first, the last item
    /// read, so that the next request resumes where this one stopped.
    pub resume_key: Option<String>,
    /// The member's listing state, when the page read it: only a page without an upper bound
    /// reaches it, and a member without one (unlinked, or linked before it existed) has none.
    pub state: Option<ListingState>,
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

/// Requests in one `BatchWriteItem` call (`API_BatchWriteItem.html`).
pub const BATCH_WRITE_MAX: usize = 25;
/// Calls per batch before unprocessed deletes are given up on (the caller may run again).
const BATCH_ATTEMPTS: usize = 8;

/// Item bytes this code puts in one transaction: [`item_bytes`] is an estimate, so this
/// leaves room below DynamoDB's 4 MB (`rules::MAX_TRANSACTION_BYTES`).
const MAX_TRANSACTION_BYTES: usize = 3 * 1024 * 1024;

/// An item's size, roughly as DynamoDB counts it (`CapacityUnitCalculations.html`).
fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Ss(set) | AttributeValue::Ns(set) => set.iter().map(String::len).sum(),
            AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::M(map) => {
                3 + map.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>()
            }
            AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value(v)).sum::<usize>(),
            _ => 1,
        }
    }
    item.iter().map(|(name, v)| name.len() + value(v)).sum()
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
    /// after reading, so a sparse status may take more Queries to fill the page: at most
    /// [`MAX_QUERY_PAGES`], after which the page may hold fewer orders than asked (even none)
    /// and still have a `resume_key`.
    pub async fn list_orders(&self, query: &OrderQuery<'_>) -> Result<OrderPage, StoreError> {
        let mut names = HashMap::from([
            ("#u".to_string(), "userId".to_string()),
            ("#k".to_string(), "createdKey".to_string()),
            ("#l".to_string(), LISTING_ENTRY.to_string()),
        ]);
        // The entry, and the order's id for an order without one (read whole below).
        let projection = "#l, orderId";
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
        // The listing state sorts above every order: a page without an upper bound reads it
        // first, in the same Query.
        let reads_state = query.below_key.is_none();
        let mut filter = None;
        if let Some(status) = query.status {
            names.insert("#s".into(), "status".into());
            values.insert(":s".into(), serde_dynamo::to_attribute_value(status)?);
            // The state has no status: it passes the filter.
            filter = Some(match reads_state {
                true => "#s = :s OR attribute_not_exists(#s)",
                false => "#s = :s",
            });
        }
        let now = Utc::now().timestamp();
        let mut orders = Vec::new();
        let mut state = None;
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            let with_state = reads_state && pages == 1;
            let wanted = query.limit - orders.len() + 1 + usize::from(with_state);
            let page_items = match query.status {
                Some(_) => wanted.max(FILTERED_PAGE_ITEMS),
                None => wanted,
            };
            let output = self
                .client
                .query()
                .table_name(&self.tables.order_snapshots)
                .index_name(BY_CREATED)
                .key_condition_expression(&key_condition)
                .projection_expression(projection)
                .set_filter_expression(filter.map(str::to_string))
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit(page_items as i32)
                // The state stands in for a consistent read of the profile: a listing right
                // after a relink or an erasure's start sees it (a local index reads
                // consistently on request, `LSI.html`).
                .consistent_read(with_state)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in output.items.unwrap_or_default() {
                if is_listing_state(&item) {
                    state = listing_state(&item);
                    continue;
                }
                let record = match listing_entry(&item) {
                    Some(entry) => entry,
                    None => match self.order_without_entry(query.user_id, &item).await? {
                        Some(record) => record,
                        None => continue,
                    },
                };
                // The page continues strictly below the cursor.
                let expired = record.expires_at.is_some_and(|at| at <= now);
                if query.below_key.as_deref() == Some(record.created_key.as_str()) || expired {
                    continue;
                }
                orders.push(record);
            }
            let last_returned =
                |orders: &[OrderSummaryRecord]| orders.last().map(|o| o.created_key.clone());
            if orders.len() > query.limit {
                orders.truncate(query.limit);
                let resume_key = last_returned(&orders);
                return Ok(OrderPage { orders, resume_key, state });
            }
            match output.last_evaluated_key {
                None => return Ok(OrderPage { orders, resume_key: None, state }),
                Some(_) if orders.len() == query.limit => {
                    let resume_key = last_returned(&orders);
                    return Ok(OrderPage { orders, resume_key, state });
                }
                // The bound is reached: every item up to the last one read was seen, and every
                // match among them is on this page, so the next page starts below that item.
                // On an index, LastEvaluatedKey holds the index's sort key too: it is what a
                // Query of the index takes back as ExclusiveStartKey (`API_Query.html`).
                Some(key) if pages >= MAX_QUERY_PAGES => {
                    let resume_key = key.get("createdKey").and_then(|k| k.as_s().ok()).cloned();
                    let resume_key = resume_key.ok_or_else(|| {
                        StoreError::Internal("LastEvaluatedKey without createdKey".into())
                    })?;
                    return Ok(OrderPage { orders, resume_key: Some(resume_key), state });
                }
                Some(key) => start = Some(key),
            }
        }
    }

    /// The summary of an order the index returned without a readable listing entry (cached
    /// before entries existed), read whole from the table; `None` once it is gone or expired.
    /// The order is written back at its own version, which adds the entry: a reconcile rewrites
    /// only orders that changed, so without this an unchanged order would cost a read on every
    /// listing for good. The write is best-effort: a writer that got there first wrote an
    /// entry itself, and a failed write leaves the next listing to try again.
    async fn order_without_entry(
        &self,
        user_id: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Option<OrderSummaryRecord>, StoreError> {
        let order_id = item
            .get("orderId")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Internal("a listing item without orderId".into()))?;
        let Some(record) = self.get_order(user_id, order_id).await? else { return Ok(None) };
        let _ = self.replace_order(&record, record.version).await;
        Ok(Some(OrderSummaryRecord::from(&record)))
    }

    /// Every cached order of a member, by order id (reconcile compares against these).
    pub async fn all_orders(
        &self,
        user_id: &str,
    ) -> Result<HashMap<String, OrderRecord>, StoreError> {
        let mut all = HashMap::new();
        for item in self.member_order_items(user_id, None).await? {
            let record: OrderRecord = serde_dynamo::from_item(item)?;
            all.insert(record.order_id.clone(), record);
        }
        Ok(all)
    }

    /// Every cached order item of a member (every Query page, consistently read, the listing
    /// state left out), with only the attributes of `projection` when it is given.
    async fn member_order_items(
        &self,
        user_id: &str,
        projection: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.order_snapshots)
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user_id))
                .set_projection_expression(projection.map(str::to_string))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            let orders = output.items.unwrap_or_default().into_iter();
            items.extend(orders.filter(|item| !is_listing_state(item)));
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }

    /// Caches a new order and counts it on the member's profile, atomically, on condition
    /// that the profile still holds the order's customer: a reconcile or webhook that read the
    /// link before a relink cannot add the old customer's orders back to the member.
    /// `ConditionFailed` when the order exists already (or the profile does not, or holds
    /// another customer now).
    pub async fn insert_order(&self, record: &OrderRecord) -> Result<(), StoreError> {
        self.insert_orders(std::slice::from_ref(record)).await
    }

    /// Caches several new orders of one member and one customer as [`Self::insert_order`]
    /// does each, in one `TransactWriteItems` (one request instead of one per order; the same
    /// write units, as each insert was a transaction already): the orders' `Put`s and one
    /// count of them on the profile. All or nothing; `ConditionFailed` when any order exists
    /// already (or the profile does not hold the customer), and `TooLarge` past what one
    /// transaction holds, so the caller can insert them one at a time instead.
    pub async fn insert_orders(&self, records: &[OrderRecord]) -> Result<(), StoreError> {
        let internal = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Internal(e.to_string());
        let Some(first) = records.first() else { return Ok(()) };
        let stranger = |r: &OrderRecord| {
            r.user_id != first.user_id || r.stripe_customer_id != first.stripe_customer_id
        };
        if records.iter().any(stranger) {
            // One count on one profile, on one customer's condition: a caller's bug.
            return Err(StoreError::Internal("orders of several members or customers".into()));
        }
        if records.len() >= MAX_TRANSACTION_ITEMS {
            return Err(StoreError::TooLarge);
        }
        let mut actions = Vec::with_capacity(records.len() + 1);
        let mut bytes = 0;
        for record in records {
            let (put, size) = self.order_put(record, None)?;
            bytes += size;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        if bytes > MAX_TRANSACTION_BYTES {
            return Err(StoreError::TooLarge);
        }
        let count = Update::builder()
            .table_name(&self.tables.user_profiles)
            .key("userId", s(&first.user_id))
            .update_expression("ADD orderCount :n")
            .expression_attribute_values(":n", AttributeValue::N(records.len().to_string()));
        let count = match &first.stripe_customer_id {
            Some(customer) => count
                .condition_expression("stripeCustomerId = :c")
                .expression_attribute_values(":c", s(customer)),
            None => count.condition_expression("attribute_exists(userId)"),
        };
        actions.push(TransactWriteItem::builder().update(count.build().map_err(internal)?).build());
        self.client.transact_write_items().set_transact_items(Some(actions)).send().await?;
        Ok(())
    }

    /// A transaction's `Put` of an order snapshot and the item's size: a new order on condition
    /// that none exists (`expected_version` `None`), else on condition that the stored one is
    /// still at `expected_version`.
    pub(super) fn order_put(
        &self,
        record: &OrderRecord,
        expected_version: Option<u64>,
    ) -> Result<(Put, usize), StoreError> {
        let item = order_item(record)?;
        let size = item_bytes(&item);
        let put = Put::builder().table_name(&self.tables.order_snapshots).set_item(Some(item));
        let put = match expected_version {
            None => put.condition_expression("attribute_not_exists(orderId)"),
            Some(version) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string())),
        };
        let put = put.build().map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok((put, size))
    }

    /// Deletes the member's cached orders of any customer but `keep` (`None`: of every
    /// customer), in batches of 25 (`BatchWriteItem`'s most), and returns how many. A relink
    /// runs it after its transaction (`Store::link_customer`); an unlink can run it with `None`.
    /// Orders without a customer (none are written so) are kept: whose they are is unknown.
    pub async fn delete_orders_except(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut doomed = Vec::new();
        let projection = Some("orderId, stripeCustomerId");
        for item in self.member_order_items(user_id, projection).await? {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let (Some(order_id), Some(customer)) = (text("orderId"), text("stripeCustomerId"))
            else {
                continue;
            };
            if keep != Some(customer.as_str()) {
                doomed.push(order_id);
            }
        }
        for batch in doomed.chunks(BATCH_WRITE_MAX) {
            self.delete_order_batch(user_id, batch).await?;
        }
        Ok(doomed.len())
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
            .set_item(Some(order_item(record)?))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
            .send()
            .await?;
        Ok(())
    }
}

/// Orders read and deleted for the member's data rights (export and erasure).
impl Store {
    /// Up to `limit` of the member's cached orders after order id `after`, by order id (the
    /// table's sort key: a stable order while orders arrive or change), read consistently,
    /// expired ones left out. Also returns whether more may follow.
    pub async fn member_orders_after(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, bool), StoreError> {
        let start = after.map(|order_id| {
            HashMap::from([
                ("userId".to_string(), s(user_id)),
                ("orderId".to_string(), s(order_id)),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.tables.order_snapshots)
            .key_condition_expression("userId = :u")
            .expression_attribute_values(":u", s(user_id))
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        let now = Utc::now().timestamp();
        let mut orders = Vec::new();
        for item in output.items.unwrap_or_default() {
            if is_listing_state(&item) {
                continue;
            }
            let record: OrderRecord = serde_dynamo::from_item(item)?;
            if !record.expired(now) {
                orders.push(record);
            }
        }
        Ok((orders, output.last_evaluated_key.is_some()))
    }

    /// Deletes every cached order of the member, whatever its customer, and returns how many
    /// (the listing state too, if one is left: the erasure's first write deleted it).
    /// Reads and deletes one page of keys at a time (memory stays bounded for 10,000 orders),
    /// in `BatchWriteItem` calls of 25; what a crash leaves, the next call deletes.
    pub async fn delete_all_member_orders(&self, user_id: &str) -> Result<usize, StoreError> {
        /// Keys read per Query: four full batches.
        const PAGE: i32 = 4 * BATCH_WRITE_MAX as i32;
        let mut deleted = 0;
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.order_snapshots)
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user_id))
                .projection_expression("orderId")
                .consistent_read(true)
                .limit(PAGE)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            let ids: Vec<String> = output
                .items
                .unwrap_or_default()
                .iter()
                .filter_map(|item| item.get("orderId")?.as_s().ok().cloned())
                .collect();
            for batch in ids.chunks(BATCH_WRITE_MAX) {
                self.delete_order_batch(user_id, batch).await?;
            }
            deleted += ids.iter().filter(|id| *id != LISTING_STATE_ID).count();
            // The next page starts after this one's last key (deleted or not, it is behind).
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(deleted),
            }
        }
    }

    /// Deletes up to 25 of the member's orders in one `BatchWriteItem`, sending what DynamoDB
    /// leaves unprocessed (throttling) again with backoff (`API_BatchWriteItem.html`).
    async fn delete_order_batch(
        &self,
        user_id: &str,
        order_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut requests = order_ids
            .iter()
            .map(|order_id| {
                let delete = DeleteRequest::builder()
                    .key("userId", s(user_id))
                    .key("orderId", s(order_id))
                    .build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for attempt in 0..BATCH_ATTEMPTS {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                let backoff = 25u64 << attempt.min(6);
                tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.tables.order_snapshots, requests)
                .send()
                .await?;
            requests = output
                .unprocessed_items
                .and_then(|mut left| left.remove(&self.tables.order_snapshots))
                .unwrap_or_default();
        }
        if requests.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Unavailable("batch deletes left unprocessed".into()))
        }
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
        assert_eq!(listing_entry(&item), None, "written before listing entries");
        assert_eq!(OrderSummaryRecord::from(&record).item_count, 2);
    }

    fn legacy_record() -> OrderRecord {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/order-legacy.json")).unwrap();
        serde_dynamo::from_item(super::super::item_from_json(&fixture).unwrap()).unwrap()
    }

    #[test]
    fn a_written_order_carries_its_listing_entry() {
        let record = legacy_record();
        let item = order_item(&record).unwrap();
        assert_eq!(listing_entry(&item), Some(OrderSummaryRecord::from(&record)));
        let back: OrderRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, record, "the entry is extra: the order reads back the same");
    }

    /// New orders inserted together are all or nothing: one that exists already refuses the
    /// whole transaction (the reconcile then inserts them one at a time), more than one
    /// transaction holds (actions or bytes) is refused before any request, and the count on
    /// the profile moves only with the orders.
    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn orders_inserted_together_are_all_or_nothing() {
        use super::super::profiles::ProfileRecord;
        let running = crate::storage::embedded::EmbeddedStore::start(None).await.unwrap();
        let store = Store::connect("local", Some(&running.endpoint), "io-").await;
        store.ensure_tables("io-").await.unwrap();
        let user = "fixture-member";
        let now = chrono::Utc::now();
        assert!(store.create_profile(&ProfileRecord::new(user, None, now)).await.unwrap());
        let template = legacy_record();
        store.link_customer(user, template.stripe_customer_id.as_deref().unwrap()).await.unwrap();
        let order = |n: i64| {
            let mut record = template.clone();
            record.user_id = user.into();
            record.order_id = format!("pi_together{n}");
            record.created_key = OrderRecord::created_key(1_764_000_000 + n, &record.order_id);
            record
        };
        store.insert_orders(&[order(0), order(1)]).await.unwrap();
        let refused = store.insert_orders(&[order(2), order(1)]).await;
        assert!(matches!(refused, Err(StoreError::ConditionFailed)), "{refused:?}");
        assert!(store.get_order(user, "pi_together2").await.unwrap().is_none());
        let too_many: Vec<OrderRecord> = (10..110).map(order).collect();
        assert!(matches!(store.insert_orders(&too_many).await, Err(StoreError::TooLarge)));
        // 80 orders of about 40 KB each: few enough actions, too many bytes.
        let heavy: Vec<OrderRecord> = (200..280)
            .map(|n| {
                let mut record = order(n);
                record.items.push(ItemRecord {
                    description: "x".repeat(40 * 1024),
                    ..ItemRecord::default()
                });
                record
            })
            .collect();
        assert!(matches!(store.insert_orders(&heavy).await, Err(StoreError::TooLarge)));
        let mut stranger = order(300);
        stranger.user_id = "someone-else".into();
        let mixed = store.insert_orders(&[order(301), stranger]).await;
        assert!(matches!(mixed, Err(StoreError::Internal(_))), "{mixed:?}");
        assert!(store.get_order(user, "pi_together301").await.unwrap().is_none());
        let profile = store.get_profile(user).await.unwrap().unwrap();
        assert_eq!(profile.order_count, 2);
        running.shutdown().await;
    }

    /// Orders cached before listing entries existed are listed from the table, in order,
    /// beside orders with entries; an unreadable entry is read the same way.
    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn orders_without_a_listing_entry_are_listed_whole() {
        let running = crate::storage::embedded::EmbeddedStore::start(None).await.unwrap();
        let store = Store::connect("local", Some(&running.endpoint), "le-").await;
        store.ensure_tables("le-").await.unwrap();
        let mut orders = Vec::new();
        for n in 0..3i64 {
            let mut record = legacy_record();
            record.order_id = format!("pi_entry{n}");
            record.created_key = OrderRecord::created_key(1_764_000_000 + n, &record.order_id);
            record.amount = 100 + n;
            let mut item = match n {
                0 => serde_dynamo::to_item(&record).unwrap(),
                _ => order_item(&record).unwrap(),
            };
            if n == 2 {
                item.insert(LISTING_ENTRY.into(), AttributeValue::S("{not json".into()));
            }
            let table = &store.tables.order_snapshots;
            store.client.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
            orders.push(record);
        }
        let query = OrderQuery {
            user_id: "fixture-member",
            status: None,
            from_key: None,
            below_key: None,
            limit: 20,
        };
        let page = store.list_orders(&query).await.unwrap();
        let newest_first: Vec<_> = orders.iter().rev().map(OrderSummaryRecord::from).collect();
        assert_eq!(page.orders, newest_first);
        // The listing wrote each of them back with a readable entry, once.
        for record in &orders {
            let stored = store
                .client
                .get_item()
                .table_name(&store.tables.order_snapshots)
                .key("userId", s(&record.user_id))
                .key("orderId", s(&record.order_id))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            assert_eq!(listing_entry(&stored), Some(OrderSummaryRecord::from(record)));
        }
        assert_eq!(store.list_orders(&query).await.unwrap().orders, newest_first);
        running.shutdown().await;
    }
}
