//! Per-member limits, kept in DynamoDB so that they hold across every instance (Lambda runs
//! many): conditional counters per member and one-minute window, remembered unknown order ids,
//! the profile's refresh request, and the account-wide Stripe request budget per second
//! (`stripe::budget`).
//!
//! Counters and remembered ids are items of `StripeEvents`, which has a TTL attribute
//! (`expiresAt`) and already holds an item that is not an event (the catch-up checkpoint): their
//! ids start with `limit#`, which no Stripe event id (`evt_…`) or the checkpoint can, and end with
//! the member id (any characters, so it goes last; the parts before it hold no `#`). No code
//! lists that table, so these items are only ever read by their key.
//!
//! DynamoDB's TTL deletes expired items late ("typically within a few days", and until then
//! reads return them: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html>),
//! so nothing here relies on deletion: a counter's key names its window, and a remembered id
//! is honoured only while its own `expiresAt` lies ahead.

use super::{Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::Duration;

/// The limits' settings. The defaults are the documented ones (`ServerArgs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Live Stripe look-ups of orders missing from the cache, per member per minute.
    pub order_lookups_per_minute: u32,
    /// How long an order id Stripe does not know, or that is another customer's, is answered
    /// 404 without asking Stripe again.
    pub unknown_order_ttl: Duration,
    /// Profile writes (`PUT` and `PATCH`) per member per minute.
    pub profile_writes_per_minute: u32,
    /// The first link by verified email (`DASHBOARD_AUTO_LINK=verified-email`): at most one
    /// Stripe customer look-up per member, ever (`profiles::auto_link`). Off by default.
    pub auto_link_verified_email: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            order_lookups_per_minute: 5,
            unknown_order_ttl: Duration::from_secs(600),
            profile_writes_per_minute: 10,
            auto_link_verified_email: false,
        }
    }
}

/// What a counter is for (the part of its id after `limit#`).
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    OrderLookups,
    ProfileWrites,
}

impl Counter {
    fn name(self) -> &'static str {
        match self {
            Counter::OrderLookups => "order-lookups",
            Counter::ProfileWrites => "profile-writes",
        }
    }
}

/// A counter's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spend {
    Granted,
    /// The window's budget is spent: the next window starts in this many seconds.
    Refused {
        retry_after_seconds: u32,
    },
}

/// Length of a counter's window.
const WINDOW_SECS: i64 = 60;

fn id_key(id: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("eventId".to_string(), AttributeValue::S(id))])
}

impl Store {
    /// Spends one unit of the member's budget for `counter` in the current minute, unless
    /// `per_minute` are spent already.
    pub async fn spend(
        &self,
        counter: Counter,
        user_id: &str,
        per_minute: u32,
        now_secs: i64,
    ) -> Result<Spend, StoreError> {
        let window = now_secs - now_secs.rem_euclid(WINDOW_SECS);
        let next = window + WINDOW_SECS;
        let id = format!("limit#{}#{window}#{user_id}", counter.name());
        if self.take_from_window(id, per_minute, next + WINDOW_SECS).await? {
            Ok(Spend::Granted)
        } else {
            Ok(Spend::Refused { retry_after_seconds: (next - now_secs).max(1) as u32 })
        }
    }

    /// Takes one request from the account-wide Stripe budget of the Unix second `second`
    /// (`stripe::budget`); false when `per_second` are spent already.
    pub async fn spend_stripe_second(
        &self,
        second: i64,
        per_second: u32,
    ) -> Result<bool, StoreError> {
        // Kept a minute: the key names its second, so a late deletion is harmless.
        self.take_from_window(format!("limit#stripe-requests#{second}"), per_second, second + 60)
            .await
    }

    /// One unit of the counter `id` unless `max` are taken: one conditional `UpdateItem`, so
    /// the count and its check are one atomic write and concurrent instances cannot overspend
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>).
    /// The item expires at `expires_at`.
    async fn take_from_window(
        &self,
        id: String,
        max: u32,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.stripe_events)
            .set_key(Some(id_key(id)))
            .update_expression("SET expiresAt = :ttl ADD hits :one")
            .condition_expression("attribute_not_exists(hits) OR hits < :max")
            .expression_attribute_values(":ttl", AttributeValue::N(expires_at.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
            .send()
            .await
            .map_err(StoreError::from);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }

    fn unknown_order_id(user_id: &str, order_id: &str) -> String {
        format!("limit#unknown-order#{order_id}#{user_id}")
    }

    /// Whether `order_id` was found unknown to Stripe (or another customer's) for this member
    /// while it held `customer`, recently enough to still count.
    pub async fn is_unknown_order(
        &self,
        user_id: &str,
        order_id: &str,
        customer: &str,
        now_secs: i64,
    ) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.stripe_events)
            .set_key(Some(id_key(Self::unknown_order_id(user_id, order_id))))
            .consistent_read(true)
            .send()
            .await?;
        Ok(output.item.is_some_and(|item| {
            let expires = item.get("expiresAt").and_then(|v| v.as_n().ok()?.parse::<i64>().ok());
            // A link to another customer since then may have made the order the member's.
            let same_customer =
                item.get("customer").and_then(|v| v.as_s().ok()).map(String::as_str)
                    == Some(customer);
            same_customer && expires.is_some_and(|at| at > now_secs)
        }))
    }

    /// Remembers that `order_id` is no order of `customer` (see [`Store::is_unknown_order`]).
    pub async fn remember_unknown_order(
        &self,
        user_id: &str,
        order_id: &str,
        customer: &str,
        now_secs: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let expires = now_secs + ttl.as_secs() as i64;
        self.client
            .put_item()
            .table_name(&self.tables.stripe_events)
            .item("eventId", AttributeValue::S(Self::unknown_order_id(user_id, order_id)))
            .item("customer", AttributeValue::S(customer.to_string()))
            .item("expiresAt", AttributeValue::N(expires.to_string()))
            .send()
            .await?;
        Ok(())
    }

    /// Records that a refresh of the member's orders is requested now (`now_ms`, Unix
    /// milliseconds), unless one was requested after `since_ms`: true when this call made the
    /// request. A conditional write on the profile, so of all instances and listings only one
    /// per window enqueues (or starts) the refresh, and a member whose refresh keeps failing
    /// is asked for again only once the window has passed.
    pub async fn claim_refresh(
        &self,
        user_id: &str,
        now_ms: i64,
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .key("userId", AttributeValue::S(user_id.to_string()))
            .update_expression("SET refreshRequestedAt = :now")
            .condition_expression(
                "attribute_exists(userId) AND \
                 (attribute_not_exists(refreshRequestedAt) OR refreshRequestedAt < :since)",
            )
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":since", AttributeValue::N(since_ms.to_string()))
            .send()
            .await
            .map_err(StoreError::from);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Withdraws the request [`Store::claim_refresh`] made at `at_ms` (it could not be
    /// queued), so that the next listing asks again; a later request is left alone.
    pub async fn release_refresh(&self, user_id: &str, at_ms: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .key("userId", AttributeValue::S(user_id.to_string()))
            .update_expression("REMOVE refreshRequestedAt")
            .condition_expression("refreshRequestedAt = :at")
            .expression_attribute_values(":at", AttributeValue::N(at_ms.to_string()))
            .send()
            .await
            .map_err(StoreError::from);
        match result {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rules::check;
    use serde_json::json;

    /// The counter's request passes the rules check (TTL a number, no reserved word bare).
    #[test]
    fn the_counter_update_follows_the_rules() {
        check(
            "UpdateItem",
            &json!({
                "Key": {"eventId": {"S": "limit#order-lookups#60#m"}},
                "UpdateExpression": "SET expiresAt = :ttl ADD hits :one",
                "ConditionExpression": "attribute_not_exists(hits) OR hits < :max",
                "ExpressionAttributeValues": {
                    ":ttl": {"N": "180"}, ":one": {"N": "1"}, ":max": {"N": "5"}
                },
            }),
        )
        .unwrap();
    }
}
