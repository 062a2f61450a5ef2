//! The `UserProfiles` table: one item per member, written with conditions on `version`.

use super::schema::BY_STRIPE_CUSTOMER;
use super::{Store, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::SecondsFormat;
use dashboard_api::{DashboardSettings, ShippingAddress, SyncError, SyncReport, WebhookApplied};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A profile item as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileItem {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_wallet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub dashboard_settings: DashboardSettings,
    /// Absent, not null, when unset: it is the key of a (sparse) index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_customer_id: Option<String>,
    #[serde(default)]
    pub order_count: u64,
    /// When the orders were last reconciled with Stripe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile: Option<SyncReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_webhook: Option<WebhookApplied>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_error: Option<SyncError>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub version: u64,
}

impl ProfileItem {
    /// A fresh profile for a member seen for the first time.
    pub fn new(user_id: &str, email: Option<String>, now: chrono::DateTime<chrono::Utc>) -> Self {
        ProfileItem {
            user_id: user_id.to_string(),
            email,
            display_name: None,
            shipping_address: None,
            preferred_wallet: None,
            avatar_url: None,
            dashboard_settings: DashboardSettings::default(),
            stripe_customer_id: None,
            order_count: 0,
            orders_synced_at: None,
            last_reconcile: None,
            last_webhook: None,
            last_sync_error: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    pub fn editable(&self) -> EditableFields {
        EditableFields {
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            shipping_address: self.shipping_address.clone(),
            preferred_wallet: self.preferred_wallet.clone(),
            avatar_url: self.avatar_url.clone(),
            dashboard_settings: self.dashboard_settings.clone(),
        }
    }

    /// This item with the editable fields replaced, as written by a successful update.
    pub fn with_editable(
        self,
        fields: EditableFields,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ProfileItem {
        let EditableFields {
            email,
            display_name,
            shipping_address,
            preferred_wallet,
            avatar_url,
            dashboard_settings,
        } = fields;
        ProfileItem {
            email,
            display_name,
            shipping_address,
            preferred_wallet,
            avatar_url,
            dashboard_settings,
            updated_at: now,
            version: self.version + 1,
            ..self
        }
    }
}

/// The fields a member may change, validated.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EditableFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_wallet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub dashboard_settings: DashboardSettings,
}

/// Attribute names of the editable fields, in the order `EditableFields` declares them.
pub const EDITABLE_ATTRIBUTES: [&str; 6] = [
    "email",
    "displayName",
    "shippingAddress",
    "preferredWallet",
    "avatarUrl",
    "dashboardSettings",
];

fn key(user_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("userId".to_string(), AttributeValue::S(user_id.to_string()))])
}

impl Store {
    pub async fn get_profile(&self, user_id: &str) -> Result<Option<ProfileItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .consistent_read(true)
            .send()
            .await?;
        Ok(output.item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Writes a new profile unless one exists. Returns false when one already did.
    pub async fn create_profile(&self, item: &ProfileItem) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.user_profiles)
            .set_item(Some(serde_dynamo::to_item(item)?))
            .condition_expression("attribute_not_exists(userId)")
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Replaces the editable fields if the stored version is `expected_version`, and returns
    /// the item as it was before the write. `ConditionFailed` means someone else wrote first.
    pub async fn update_profile(
        &self,
        user_id: &str,
        expected_version: u64,
        fields: &EditableFields,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ProfileItem, StoreError> {
        let values = serde_dynamo::to_item::<_, HashMap<String, AttributeValue>>(fields)?;
        let mut names = HashMap::from([
            ("#version".to_string(), "version".to_string()),
            ("#updatedAt".to_string(), "updatedAt".to_string()),
        ]);
        let mut expression_values = HashMap::from([
            (":expected".to_string(), AttributeValue::N(expected_version.to_string())),
            (":next".to_string(), AttributeValue::N((expected_version + 1).to_string())),
            // The same text chrono's serde writes, so items read back alike.
            (
                ":now".to_string(),
                AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            ),
        ]);
        let mut set = vec!["#version = :next".to_string(), "#updatedAt = :now".to_string()];
        let mut remove = Vec::new();
        for (i, attribute) in EDITABLE_ATTRIBUTES.iter().enumerate() {
            let name = format!("#f{i}");
            names.insert(name.clone(), attribute.to_string());
            match values.get(*attribute) {
                Some(value) => {
                    let placeholder = format!(":f{i}");
                    set.push(format!("{name} = {placeholder}"));
                    expression_values.insert(placeholder, value.clone());
                }
                None => remove.push(name),
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let output = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .update_expression(expression)
            .condition_expression("#version = :expected")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(expression_values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .send()
            .await?;
        let old = output.attributes.ok_or(StoreError::ConditionFailed)?;
        Ok(serde_dynamo::from_item(old)?)
    }
}

/// Sync bookkeeping kept on the profile item.
pub enum SyncMeta<'a> {
    Reconciled(&'a SyncReport),
    Webhook(&'a WebhookApplied),
    Failed(&'a SyncError),
}

impl Store {
    /// Links a member to a Stripe customer. `ConditionFailed` when the member has no profile.
    pub async fn link_customer(
        &self,
        user_id: &str,
        customer: &str,
    ) -> Result<ProfileItem, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .update_expression("SET stripeCustomerId = :c, #v = #v + :one")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":c", AttributeValue::S(customer.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await?;
        let item = output.attributes.ok_or(StoreError::ConditionFailed)?;
        Ok(serde_dynamo::from_item(item)?)
    }

    /// The member linked to a Stripe customer, through the sparse index.
    pub async fn member_for_customer(&self, customer: &str) -> Result<Option<String>, StoreError> {
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.user_profiles)
                .index_name(BY_STRIPE_CUSTOMER)
                .key_condition_expression("stripeCustomerId = :c")
                .expression_attribute_values(":c", AttributeValue::S(customer.to_string()))
                .limit(2)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            let items = output.items.unwrap_or_default();
            if let Some(user) = items.first().and_then(|i| i.get("userId")?.as_s().ok()) {
                return Ok(Some(user.clone()));
            }
            // An empty page with a LastEvaluatedKey is not the end (`API_Query.html`).
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(None),
            }
        }
    }

    /// Every (member, customer) link. A Scan of the sparse index: for the daily schedule only,
    /// never on a member's request path.
    pub async fn linked_members(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut links = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.tables.user_profiles)
                .index_name(BY_STRIPE_CUSTOMER)
                .projection_expression("userId, stripeCustomerId")
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in output.items.unwrap_or_default() {
                let field = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                if let (Some(user), Some(customer)) = (field("userId"), field("stripeCustomerId")) {
                    links.push((user, customer));
                }
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(links),
            }
        }
    }

    /// Records sync bookkeeping on the profile (no version bump: it is not a member edit).
    pub async fn record_sync(&self, user_id: &str, meta: SyncMeta<'_>) -> Result<(), StoreError> {
        let now = chrono::Utc::now();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .condition_expression("attribute_exists(userId)");
        request = match meta {
            SyncMeta::Reconciled(report) => request
                .update_expression(
                    "SET ordersSyncedAt = :at, lastReconcile = :r REMOVE lastSyncError",
                )
                .expression_attribute_values(
                    ":at",
                    AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                )
                .expression_attribute_values(":r", serde_dynamo::to_attribute_value(report)?),
            SyncMeta::Webhook(applied) => request
                .update_expression("SET lastWebhook = :w")
                .expression_attribute_values(":w", serde_dynamo::to_attribute_value(applied)?),
            SyncMeta::Failed(error) => request
                .update_expression("SET lastSyncError = :e")
                .expression_attribute_values(":e", serde_dynamo::to_attribute_value(error)?),
        };
        match request.send().await.map_err(StoreError::from) {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(other) => Err(other),
        }
    }
}
