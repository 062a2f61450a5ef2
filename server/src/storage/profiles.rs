//! The `UserProfiles` table: one item per member, written with conditions on `version`.

use super::{Store, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::SecondsFormat;
use dashboard_api::{DashboardSettings, ShippingAddress};
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
const EDITABLE_ATTRIBUTES: [&str; 6] = [
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
