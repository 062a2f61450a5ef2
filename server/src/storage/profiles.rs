//! The `UserProfiles` table: one item per member, written with conditions on `version`.

use super::schema::BY_STRIPE_CUSTOMER;
use super::{Store, StoreError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::SecondsFormat;
use dashboard_api::{DashboardSettings, ShippingAddress, SyncReport, Theme, WebhookApplied};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The part of a profile an order listing reads ([`Store::listing_state`]).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListingState {
    #[serde(default)]
    pub orders_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub stripe_customer_id: Option<String>,
    #[serde(default)]
    erasing_since: Option<chrono::DateTime<chrono::Utc>>,
}

impl ListingState {
    /// A linked member's state, as its listing state item holds it.
    pub(super) fn linked(
        customer: String,
        orders_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        ListingState { orders_synced_at, stripe_customer_id: Some(customer), erasing_since: None }
    }
}

/// A profile as stored (see [`AddressRecord`] for how stored records differ from wire types).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRecord {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<AddressRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_wallet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub dashboard_settings: SettingsRecord,
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
    pub last_sync_error: Option<SyncErrorRecord>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub version: u64,
    /// Set when the member asked for erasure (`Store::mark_erasing`): from then on the profile
    /// is hidden from every read ([`Store::get_profile`]) until it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasing_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The email a token said was verified (`email_verified: true`) when the profile was
    /// created or the first link by email was tried. The stored `email` counts as verified only
    /// while it equals this (a member's own edit of `email` leaves this as it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_email: Option<String>,
    /// The first link by verified email, once tried (at most once per member: the claim is a
    /// conditional write, [`Store::claim_auto_link`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_link: Option<AutoLinkRecord>,
}

impl ProfileRecord {
    /// The stored email if a token verified it (see [`ProfileRecord::verified_email`]).
    pub fn verified(&self) -> Option<&str> {
        self.email.as_deref().filter(|e| self.verified_email.as_deref() == Some(*e))
    }
}

/// What the first link by verified email did (`outcome`: `pending`, `linked`, `none`,
/// `several`, `taken`, `failed`; the member-facing sentence is chosen by it when read).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoLinkRecord {
    pub at: chrono::DateTime<chrono::Utc>,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

impl ProfileRecord {
    /// A fresh profile for a member seen for the first time.
    pub fn new(user_id: &str, email: Option<String>, now: chrono::DateTime<chrono::Utc>) -> Self {
        ProfileRecord {
            user_id: user_id.to_string(),
            email,
            display_name: None,
            shipping_address: None,
            preferred_wallet: None,
            avatar_url: None,
            dashboard_settings: SettingsRecord::default(),
            stripe_customer_id: None,
            order_count: 0,
            orders_synced_at: None,
            last_reconcile: None,
            last_webhook: None,
            last_sync_error: None,
            created_at: now,
            updated_at: now,
            version: 1,
            erasing_since: None,
            verified_email: None,
            auto_link: None,
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
    ) -> ProfileRecord {
        let EditableFields {
            email,
            display_name,
            shipping_address,
            preferred_wallet,
            avatar_url,
            dashboard_settings,
        } = fields;
        ProfileRecord {
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
    pub shipping_address: Option<AddressRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_wallet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub dashboard_settings: SettingsRecord,
}

super::record_types! {
    /// A shipping address as stored. Stored records are not wire types: attributes this
    /// version does not know (a field the API has since dropped) are ignored, and missing ones
    /// default, so every item written before or after an API change still loads.
    AddressRecord <-> ShippingAddress {
        line1: String, line2: Option<String>, city: String, region: Option<String>,
        postal_code: String, country: String,
    }
}

/// Dashboard settings as stored; tolerant like [`AddressRecord`]. The theme is kept as text,
/// so a theme the API no longer offers reads back as the default instead of failing the load.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct SettingsRecord {
    pub theme: String,
    pub email_notifications: bool,
    pub orders_page_size: u32,
    pub locale: String,
}

impl Default for SettingsRecord {
    fn default() -> Self {
        DashboardSettings::default().into()
    }
}

impl From<DashboardSettings> for SettingsRecord {
    fn from(s: DashboardSettings) -> Self {
        let theme = serde_json::to_value(s.theme).ok().and_then(|t| t.as_str().map(str::to_owned));
        SettingsRecord {
            theme: theme.unwrap_or_default(),
            email_notifications: s.email_notifications,
            orders_page_size: s.orders_page_size,
            locale: s.locale,
        }
    }
}

impl From<SettingsRecord> for DashboardSettings {
    fn from(s: SettingsRecord) -> Self {
        let defaults = DashboardSettings::default();
        DashboardSettings {
            theme: serde_json::from_value::<Theme>(serde_json::Value::String(s.theme))
                .unwrap_or(defaults.theme),
            email_notifications: s.email_notifications,
            orders_page_size: s.orders_page_size,
            locale: if s.locale.is_empty() { defaults.locale } else { s.locale },
        }
    }
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
    /// The member's profile; `None` also while it is being erased, so that no read (profile,
    /// orders, sync status, links) sees a member half erased.
    pub async fn get_profile(&self, user_id: &str) -> Result<Option<ProfileRecord>, StoreError> {
        let profile = self.get_profile_any(user_id).await?;
        Ok(profile.filter(|p| p.erasing_since.is_none()))
    }

    /// What an order listing needs of the profile (its freshness and customer), read with a
    /// projection: the listing neither reads nor converts the rest (addresses, settings, the
    /// last reconcile's report). `None` without a profile or while it is being erased.
    pub async fn listing_state(&self, user_id: &str) -> Result<Option<ListingState>, StoreError> {
        // The key too: a profile with none of the others would come back as an empty item.
        let projection = "userId, ordersSyncedAt, stripeCustomerId, erasingSince";
        let Some(item) = self.profile_item(user_id, Some(projection)).await? else {
            return Ok(None);
        };
        let state: ListingState = serde_dynamo::from_item(item)?;
        Ok(state.erasing_since.is_none().then_some(state))
    }

    /// The profile's item (consistent read), whole or only the `projection`'s attributes.
    async fn profile_item(
        &self,
        user_id: &str,
        projection: Option<&str>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .consistent_read(true)
            .set_projection_expression(projection.map(str::to_string))
            .send()
            .await?;
        Ok(output.item)
    }

    /// The member's profile, also while it is being erased.
    pub async fn get_profile_any(
        &self,
        user_id: &str,
    ) -> Result<Option<ProfileRecord>, StoreError> {
        let item = self.profile_item(user_id, None).await?;
        Ok(item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Writes a new profile unless one exists. Returns false when one already did.
    pub async fn create_profile(&self, item: &ProfileRecord) -> Result<bool, StoreError> {
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
    ) -> Result<ProfileRecord, StoreError> {
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
            // A profile being erased takes no edits, whatever version is named.
            .condition_expression("#version = :expected AND attribute_not_exists(erasingSince)")
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

/// Erasure (GDPR art. 17): the two writes around the deletion of the member's orders.
impl Store {
    /// Marks the profile as being erased if it is at `expected_version`, in one transaction
    /// with the removal of its link: the profile drops `stripeCustomerId` (and leaves the
    /// customer index) and the customer's claim item is deleted if the member holds it. Once
    /// the profile holds no customer, no webhook or reconcile can cache another order for the
    /// member (`Store::insert_order` is conditional on the customer), so deleting the orders
    /// after this is final. Returns the customer the member was linked to.
    /// `ConditionFailed`: the profile changed since it was read, or is already being erased.
    pub async fn mark_erasing(
        &self,
        profile: &ProfileRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, StoreError> {
        let customer = profile.stripe_customer_id.clone();
        let mut claimed = false;
        if let Some(customer) = &customer {
            claimed = self.customer_claim(customer).await?.as_deref() == Some(&profile.user_id);
        }
        let update = Update::builder()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(&profile.user_id)))
            .update_expression("SET erasingSince = :now, #v = :next REMOVE stripeCustomerId")
            .condition_expression("#v = :expected AND attribute_not_exists(erasingSince)")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(
                ":now",
                AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            )
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(profile.version.to_string()),
            )
            .expression_attribute_values(
                ":next",
                AttributeValue::N((profile.version + 1).to_string()),
            )
            .build()
            .map_err(internal)?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            // A listing reads the profile from here on, and finds it being erased.
            .transact_items(self.listing_state_delete(&profile.user_id)?);
        if let (Some(customer), true) = (&customer, claimed) {
            let delete = Delete::builder()
                .table_name(&self.tables.stripe_customers)
                .set_key(Some(claim_key(customer)))
                .condition_expression("userId = :u")
                .expression_attribute_values(":u", AttributeValue::S(profile.user_id.clone()))
                .build()
                .map_err(internal)?;
            request = request.transact_items(TransactWriteItem::builder().delete(delete).build());
        }
        request.send().await?;
        Ok(customer)
    }

    /// Deletes a profile marked as being erased (the last step of an erasure). False when there
    /// was none to delete (another request completed the erasure first).
    pub async fn delete_erasing_profile(&self, user_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .condition_expression("attribute_exists(erasingSince)")
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

/// Sync bookkeeping kept on the profile item.
pub enum SyncMeta<'a> {
    /// A reconcile's report, and the customer whose orders it synced (`None`: none was linked).
    Reconciled(&'a SyncReport, Option<&'a str>),
    Webhook(&'a WebhookApplied),
    Failed(&'a SyncErrorRecord),
}

/// A sync failure as stored: when, and its code (one of `ErrorCode::SYNC`), never the error's
/// text, which goes to the log only. Earlier versions stored `message` (the raw Stripe or AWS
/// error) and no code: such an item still loads (unknown attributes are ignored), without a
/// code, and its text is never read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncErrorRecord {
    pub at: chrono::DateTime<chrono::Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Why a link was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the member has no profile")]
    NoMember,
    #[error("the customer is linked to another member")]
    CustomerTaken,
    /// Only with [`Store::link_unlinked`]: the member holds another customer now.
    #[error("the member is linked to another customer")]
    MemberLinked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A link as written.
#[derive(Debug)]
pub struct Linked {
    /// The profile as stored after the link.
    pub profile: ProfileRecord,
    /// The customer the member held before, when the link moved it to another one.
    pub previous: Option<String>,
}

/// Link transactions retried when a concurrent write got in between (the member's profile
/// changed, or DynamoDB reported a transaction conflict on one of the items).
const LINK_ATTEMPTS: usize = 4;

/// The wait before the `attempt`th try of a transaction that met a concurrent write: longer
/// with each try, jittered so that two contenders do not meet again.
async fn pause_after_contention(attempt: usize) {
    let jitter = rand::random::<u64>() % 20;
    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt as u64 + jitter)).await;
}

fn claim_key(customer: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("stripeCustomerId".to_string(), AttributeValue::S(customer.to_string()))])
}

fn internal(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(error.to_string())
}

/// What each action of a cancelled transaction reported (`ConditionalCheckFailed`,
/// `TransactionConflict`, `None`, …), in the order the actions were sent
/// (`API_TransactWriteItems.html`, "CancellationReasons"). `None`: not a cancellation.
fn cancellation_reasons<R>(error: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<String>> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) =
        error.as_service_error()?
    else {
        return None;
    };
    Some(
        cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None").to_string())
            .collect(),
    )
}

impl Store {
    /// Links a member to a Stripe customer, one member per customer.
    ///
    /// One `TransactWriteItems` (`transaction-apis.html`: all or nothing, isolated from other
    /// writes) puts the customer's claim item with `attribute_not_exists` (two links of one
    /// customer cannot both succeed, whatever the index says), moves the profile to the
    /// customer on condition that it still holds what was read, and deletes the claim of the
    /// customer it held before. Linking a member to the customer it holds changes nothing.
    ///
    /// Links made before claims existed have no claim item: a customer that a profile holds
    /// without one is refused too, found through the profile index and confirmed on the
    /// profile itself. The index lags writes, but such a link predates this code, and every
    /// later link writes a claim. Relinking such a member to its customer writes the claim
    /// (backfilling it). The member's cached orders are not touched here: see
    /// [`Store::delete_orders_except`].
    pub async fn link_customer(&self, user_id: &str, customer: &str) -> Result<Linked, LinkError> {
        self.link(user_id, customer, false).await
    }

    /// Links as [`Self::link_customer`] does, but only a member that holds no customer (or
    /// this one): an automatic link never replaces one an operator made meanwhile. The
    /// transaction's condition on the customer read makes the check and the link one step.
    pub async fn link_unlinked(&self, user_id: &str, customer: &str) -> Result<Linked, LinkError> {
        self.link(user_id, customer, true).await
    }

    async fn link(
        &self,
        user_id: &str,
        customer: &str,
        only_if_unlinked: bool,
    ) -> Result<Linked, LinkError> {
        for attempt in 0..LINK_ATTEMPTS {
            if attempt > 0 {
                // A concurrent writer got in between: let it finish, then read again.
                pause_after_contention(attempt).await;
            }
            let profile = self.get_profile(user_id).await?.ok_or(LinkError::NoMember)?;
            let previous = profile.stripe_customer_id.clone();
            if only_if_unlinked && previous.as_deref().is_some_and(|held| held != customer) {
                return Err(LinkError::MemberLinked);
            }
            let claimed = match self.customer_claim(customer).await? {
                Some(owner) if owner != user_id => return Err(LinkError::CustomerTaken),
                Some(_) => true,
                None => false,
            };
            if claimed && previous.as_deref() == Some(customer) {
                return Ok(Linked { profile, previous: None });
            }
            if !claimed && self.held_without_claim(customer, user_id).await? {
                return Err(LinkError::CustomerTaken);
            }
            let (actions, claim_at) =
                self.link_actions(user_id, customer, previous.as_deref(), claimed)?;
            let result =
                self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
            let error = match result {
                Ok(_) => {
                    let profile = self.get_profile(user_id).await?.ok_or(LinkError::NoMember)?;
                    let previous = previous.filter(|p| p != customer);
                    return Ok(Linked { profile, previous });
                }
                Err(error) => error,
            };
            let Some(reasons) = cancellation_reasons(&error) else {
                return Err(StoreError::from(error).into());
            };
            let failed = |at: Option<usize>| {
                at.and_then(|i| reasons.get(i)).is_some_and(|r| r == "ConditionalCheckFailed")
            };
            if failed(claim_at) {
                // Another link claimed the customer first.
                return Err(LinkError::CustomerTaken);
            }
            // The profile changed (or vanished), or a conflict: read again and retry.
        }
        Err(StoreError::Unavailable("link contention".into()).into())
    }

    /// The transaction of one link attempt, and the position of the claim `Put` in it.
    fn link_actions(
        &self,
        user_id: &str,
        customer: &str,
        previous: Option<&str>,
        claimed: bool,
    ) -> Result<(Vec<TransactWriteItem>, Option<usize>), StoreError> {
        let mut actions = Vec::new();
        let mut claim_at = None;
        if !claimed {
            let now = chrono::Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let put = Put::builder()
                .table_name(&self.tables.stripe_customers)
                .item("stripeCustomerId", AttributeValue::S(customer.to_string()))
                .item("userId", AttributeValue::S(user_id.to_string()))
                .item("linkedAt", AttributeValue::S(now))
                .condition_expression("attribute_not_exists(stripeCustomerId)")
                .build()
                .map_err(internal)?;
            claim_at = Some(actions.len());
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        if previous == Some(customer) {
            // Backfilling the claim of a link made before claims: the profile must still
            // hold the customer when the claim is written.
            let check = ConditionCheck::builder()
                .table_name(&self.tables.user_profiles)
                .set_key(Some(key(user_id)))
                .condition_expression("stripeCustomerId = :c")
                .expression_attribute_values(":c", AttributeValue::S(customer.to_string()))
                .build()
                .map_err(internal)?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
            return Ok((actions, claim_at));
        }
        let mut update = Update::builder()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":c", AttributeValue::S(customer.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        // The member's orders were synced, if ever, for another customer (or none): the link
        // drops that sync time, so the next listing finds the orders stale and asks for a
        // refresh at once (a request of the old customer's window no longer holds it back).
        // A reconcile cannot record a sync of the old customer afterwards: it is conditioned
        // on the customer it synced (`record_sync`).
        let forget = "REMOVE ordersSyncedAt, refreshRequestedAt";
        update = match previous {
            // Not a profile being erased (it holds no customer either).
            None => update
                .update_expression(format!("SET stripeCustomerId = :c, #v = #v + :one {forget}"))
                .condition_expression(
                    "attribute_exists(userId) AND attribute_not_exists(stripeCustomerId) AND \
                     attribute_not_exists(erasingSince)",
                ),
            // The count restarts: the old customer's orders leave the member, and each of
            // the new customer's is counted as it is cached.
            Some(old) => update
                .update_expression(format!(
                    "SET stripeCustomerId = :c, #v = #v + :one, orderCount = :zero {forget}"
                ))
                .condition_expression("stripeCustomerId = :old")
                .expression_attribute_values(":old", AttributeValue::S(old.to_string()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into())),
        };
        actions
            .push(TransactWriteItem::builder().update(update.build().map_err(internal)?).build());
        actions.push(self.listing_state_put(user_id, customer, None)?);
        if let Some(old) = previous {
            // The old customer's claim, if this member holds one (a link made before claims
            // has none, and deleting a missing item is no error).
            let delete = Delete::builder()
                .table_name(&self.tables.stripe_customers)
                .set_key(Some(claim_key(old)))
                .condition_expression("attribute_not_exists(stripeCustomerId) OR userId = :u")
                .expression_attribute_values(":u", AttributeValue::S(user_id.to_string()))
                .build()
                .map_err(internal)?;
            actions.push(TransactWriteItem::builder().delete(delete).build());
        }
        Ok((actions, claim_at))
    }

    /// The member holding a customer's claim (a consistent read).
    pub async fn customer_claim(&self, customer: &str) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.stripe_customers)
            .set_key(Some(claim_key(customer)))
            .consistent_read(true)
            .send()
            .await?;
        Ok(output.item.and_then(|item| item.get("userId")?.as_s().ok().cloned()))
    }

    /// Whether a member other than `user_id` holds `customer` on its profile (a link made
    /// before claims). The index is eventually consistent, so each member it names is
    /// confirmed with a consistent read of the profile.
    async fn held_without_claim(&self, customer: &str, user_id: &str) -> Result<bool, StoreError> {
        for holder in self.index_holders(customer).await? {
            if holder == user_id {
                continue;
            }
            let profile = self.get_profile(&holder).await?;
            if profile.and_then(|p| p.stripe_customer_id).as_deref() == Some(customer) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every member the profile index shows holding `customer` (more than one only where two
    /// links raced before claims existed).
    async fn index_holders(&self, customer: &str) -> Result<Vec<String>, StoreError> {
        let mut holders = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.user_profiles)
                .index_name(BY_STRIPE_CUSTOMER)
                .key_condition_expression("stripeCustomerId = :c")
                .expression_attribute_values(":c", AttributeValue::S(customer.to_string()))
                .projection_expression("userId")
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in output.items.unwrap_or_default() {
                holders.extend(item.get("userId").and_then(|v| v.as_s().ok()).cloned());
            }
            // An empty page with a LastEvaluatedKey is not the end (`API_Query.html`).
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(holders),
            }
        }
    }

    /// The member linked to a Stripe customer: its claim, read consistently; for a link made
    /// before claims, the profile index.
    pub async fn member_for_customer(&self, customer: &str) -> Result<Option<String>, StoreError> {
        if let Some(member) = self.customer_claim(customer).await? {
            return Ok(Some(member));
        }
        Ok(self.index_holders(customer).await?.into_iter().next())
    }
}

impl Store {
    /// Unlinks a member from its Stripe customer and returns the customer it held (`None`: it
    /// held none, and nothing is written).
    ///
    /// One `TransactWriteItems`, like [`Store::link_customer`]: removes the customer from the
    /// profile on condition that it still holds it (the order count restarts, as on a
    /// relink) and deletes the customer's claim if this member holds it. A claim held by
    /// another member (a corrupt state) is left alone. The member's cached orders are not
    /// touched here: see [`Store::delete_orders_except`].
    pub async fn unlink_customer(&self, user_id: &str) -> Result<Option<String>, LinkError> {
        let mut delete_claim = true;
        for attempt in 0..LINK_ATTEMPTS {
            if attempt > 0 {
                // A concurrent writer got in between: let it finish, then read again.
                pause_after_contention(attempt).await;
            }
            let profile = self.get_profile(user_id).await?.ok_or(LinkError::NoMember)?;
            let Some(customer) = profile.stripe_customer_id else { return Ok(None) };
            let update = Update::builder()
                .table_name(&self.tables.user_profiles)
                .set_key(Some(key(user_id)))
                .update_expression("SET #v = #v + :one, orderCount = :zero REMOVE stripeCustomerId")
                .condition_expression("stripeCustomerId = :c")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":c", AttributeValue::S(customer.clone()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .build()
                .map_err(internal)?;
            // A listing reads the profile from here on (no state while unlinked).
            let mut actions = vec![
                TransactWriteItem::builder().update(update).build(),
                self.listing_state_delete(user_id)?,
            ];
            let claim_at = actions.len();
            if delete_claim {
                let delete = Delete::builder()
                    .table_name(&self.tables.stripe_customers)
                    .set_key(Some(claim_key(&customer)))
                    .condition_expression("attribute_not_exists(stripeCustomerId) OR userId = :u")
                    .expression_attribute_values(":u", AttributeValue::S(user_id.to_string()))
                    .build()
                    .map_err(internal)?;
                actions.push(TransactWriteItem::builder().delete(delete).build());
            }
            let result =
                self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
            let error = match result {
                Ok(_) => return Ok(Some(customer)),
                Err(error) => error,
            };
            let Some(reasons) = cancellation_reasons(&error) else {
                return Err(StoreError::from(error).into());
            };
            if delete_claim && reasons.get(claim_at).is_some_and(|r| r == "ConditionalCheckFailed")
            {
                // Another member holds the claim: not this member's to delete.
                delete_claim = false;
            }
            // The profile changed, or a conflict: read again and retry.
        }
        Err(StoreError::Unavailable("unlink contention".into()).into())
    }
}

/// The first link by verified email: its once-per-member claim and its outcome.
impl Store {
    /// Claims the member's one try of the first link by verified email: true for the caller
    /// that wrote the claim, false when it was tried before (or the member is linked, erasing,
    /// or gone). Records `email` as verified. The claim is written before Stripe is asked, so a
    /// member re-reading the profile cannot make a second look-up, even concurrently.
    pub async fn claim_auto_link(
        &self,
        user_id: &str,
        email: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let attempt = AutoLinkRecord { at: now, outcome: "pending".into(), customer: None };
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .update_expression("SET autoLink = :a, verifiedEmail = :e")
            .condition_expression(
                "attribute_exists(userId) AND attribute_not_exists(autoLink) AND \
                 attribute_not_exists(stripeCustomerId) AND attribute_not_exists(erasingSince)",
            )
            .expression_attribute_values(":a", serde_dynamo::to_attribute_value(&attempt)?)
            .expression_attribute_values(":e", AttributeValue::S(email.to_string()))
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Records what the first link by verified email did (over the claim).
    pub async fn record_auto_link(
        &self,
        user_id: &str,
        record: &AutoLinkRecord,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .update_expression("SET autoLink = :a")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_values(":a", serde_dynamo::to_attribute_value(record)?)
            .send()
            .await;
        match result.map_err(StoreError::from) {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

impl Store {
    /// Every member without a customer whose stored email a token verified
    /// ([`ProfileRecord::verified`]), as (user id, email), in user-id order. A Scan of the whole
    /// profile table: for `dashboard-server backfill` only, never on a request path.
    pub async fn unlinked_verified_members(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut members = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.tables.user_profiles)
                .projection_expression("#u, #e, #v")
                .filter_expression(
                    "attribute_not_exists(#c) AND attribute_not_exists(#x) AND #e = #v",
                )
                .expression_attribute_names("#u", "userId")
                .expression_attribute_names("#e", "email")
                .expression_attribute_names("#v", "verifiedEmail")
                .expression_attribute_names("#c", "stripeCustomerId")
                .expression_attribute_names("#x", "erasingSince")
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in output.items.unwrap_or_default() {
                let field = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                if let (Some(user), Some(email)) = (field("userId"), field("email")) {
                    members.push((user, email));
                }
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        members.sort();
        Ok(members)
    }
}

impl Store {
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
        if let SyncMeta::Reconciled(report, Some(customer)) = meta {
            return self.record_reconcile(user_id, customer, report).await;
        }
        let now = chrono::Utc::now();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.user_profiles)
            .set_key(Some(key(user_id)))
            .condition_expression("attribute_exists(userId)");
        request = match meta {
            // A member linked meanwhile has a listing state to keep in step: not this write's.
            SyncMeta::Reconciled(report, _) => request
                .condition_expression(
                    "attribute_exists(userId) AND attribute_not_exists(stripeCustomerId)",
                )
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

    /// A linked member's reconcile: `ordersSyncedAt` and the report on the profile, and the
    /// listing state, in one transaction, on condition that the member still holds the
    /// customer synced (after a relink meanwhile, this sync was of the old customer's orders,
    /// and records nothing). A conflict with a concurrent write of the profile (a webhook's
    /// transaction) is tried again.
    async fn record_reconcile(
        &self,
        user_id: &str,
        customer: &str,
        report: &SyncReport,
    ) -> Result<(), StoreError> {
        let report: AttributeValue = serde_dynamo::to_attribute_value(report)?;
        for attempt in 0..LINK_ATTEMPTS {
            if attempt > 0 {
                pause_after_contention(attempt).await;
            }
            let now = chrono::Utc::now();
            let update = Update::builder()
                .table_name(&self.tables.user_profiles)
                .set_key(Some(key(user_id)))
                .update_expression(
                    "SET ordersSyncedAt = :at, lastReconcile = :r REMOVE lastSyncError",
                )
                .condition_expression("stripeCustomerId = :c")
                .expression_attribute_values(
                    ":at",
                    AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                )
                .expression_attribute_values(":r", report.clone())
                .expression_attribute_values(":c", AttributeValue::S(customer.to_string()))
                .build()
                .map_err(internal)?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(self.listing_state_put(user_id, customer, Some(now))?)
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let conflict = cancellation_reasons(&error)
                .is_some_and(|reasons| reasons.iter().any(|r| r == "TransactionConflict"));
            match StoreError::from(error) {
                StoreError::ConditionFailed => return Ok(()),
                _ if conflict => continue,
                other => return Err(other),
            }
        }
        Err(StoreError::Unavailable("reconcile record contention".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile written by an earlier version, holding attributes this version does not know
    /// (as after a field is removed from the API) and lacking one it does, still loads.
    #[test]
    fn stored_profiles_survive_fields_removed_from_the_api() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/profile-legacy.json")).unwrap();
        let item = super::super::item_from_json(&fixture).unwrap();
        let record: ProfileRecord = serde_dynamo::from_item(item).unwrap();
        let address: ShippingAddress = record.shipping_address.clone().unwrap().into();
        assert_eq!((address.line1.as_str(), address.country.as_str()), ("1 Example Street", "GB"));
        let settings: DashboardSettings = record.dashboard_settings.clone().into();
        assert_eq!(settings.theme, Theme::default(), "an unknown theme reads as the default");
        assert_eq!(settings.orders_page_size, 50);
        assert!(!settings.email_notifications);
        assert_eq!(settings.locale, DashboardSettings::default().locale, "missing: the default");
        assert_eq!(record.version, 7);
    }

    /// The listing state a first page reads stands in for the profile's own: after every write
    /// of what it holds (link, reconcile, relink, unlink, erasure), the two agree, or there is
    /// none and the listing reads the profile. A later page never reads it, and no reader of
    /// orders sees it as one.
    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn the_listing_state_agrees_with_the_profile_after_every_write() {
        use super::super::orders::{OrderPage, OrderQuery};
        let running = crate::storage::embedded::EmbeddedStore::start(None).await.unwrap();
        let store = Store::connect("local", Some(&running.endpoint), "ls-").await;
        store.ensure_tables("ls-").await.unwrap();
        let user = "state-member";
        let first_page = |status| OrderQuery {
            user_id: user,
            status,
            from_key: None,
            below_key: None,
            limit: 20,
        };
        let state = |page: OrderPage| page.state;
        let agree = |step: &'static str| {
            let store = &store;
            async move {
                let listed = state(store.list_orders(&first_page(None)).await.unwrap());
                let profile = store.listing_state(user).await.unwrap();
                match listed {
                    Some(listed) => assert_eq!(Some(listed), profile, "{step}"),
                    None => assert!(
                        profile.as_ref().is_none_or(|p| p.stripe_customer_id.is_none()),
                        "{step}: a linked member without a state"
                    ),
                }
                profile
            }
        };
        let now = chrono::Utc::now();
        assert!(store.create_profile(&ProfileRecord::new(user, None, now)).await.unwrap());
        let report = SyncReport { user_id: user.into(), ..Default::default() };
        // An unlinked member's reconcile: no state.
        store.record_sync(user, SyncMeta::Reconciled(&report, None)).await.unwrap();
        assert!(agree("unlinked, reconciled").await.unwrap().orders_synced_at.is_some());
        store.link_customer(user, "cus_state_a").await.unwrap();
        let linked = agree("linked").await.unwrap();
        assert!(linked.orders_synced_at.is_none(), "the sync was of no customer");
        store.record_sync(user, SyncMeta::Reconciled(&report, Some("cus_state_a"))).await.unwrap();
        let synced = agree("reconciled").await.unwrap().orders_synced_at;
        assert!(synced.is_some());
        // A reconcile of a customer the member no longer holds records nothing.
        store.record_sync(user, SyncMeta::Reconciled(&report, Some("cus_other"))).await.unwrap();
        assert_eq!(agree("another customer's reconcile").await.unwrap().orders_synced_at, synced);
        let filtered = first_page(Some(dashboard_api::OrderStatus::Succeeded));
        assert!(state(store.list_orders(&filtered).await.unwrap()).is_some(), "filtered");
        let later = OrderQuery { below_key: Some("000000000001#".into()), ..first_page(None) };
        assert!(state(store.list_orders(&later).await.unwrap()).is_none(), "a later page");
        assert!(store.all_orders(user).await.unwrap().is_empty(), "no order");
        assert!(store.member_orders_after(user, None, 10).await.unwrap().0.is_empty());
        store.link_customer(user, "cus_state_b").await.unwrap();
        let relinked = agree("relinked").await.unwrap();
        assert_eq!(relinked.stripe_customer_id.as_deref(), Some("cus_state_b"));
        assert_eq!(relinked.orders_synced_at, None, "the sync was of the old customer");
        store.unlink_customer(user).await.unwrap();
        assert_eq!(agree("unlinked").await.unwrap().stripe_customer_id, None);
        store.link_customer(user, "cus_state_c").await.unwrap();
        let profile = store.get_profile(user).await.unwrap().unwrap();
        store.mark_erasing(&profile, chrono::Utc::now()).await.unwrap();
        assert_eq!(agree("erasing").await, None);
        // A link cannot reach a profile being erased (it holds no customer any more).
        assert!(store.link_customer(user, "cus_state_d").await.is_err());
        assert_eq!(agree("erasing, link refused").await, None);
        running.shutdown().await;
    }

    #[test]
    fn records_round_trip_through_the_wire_types() {
        let settings = DashboardSettings { theme: Theme::Dark, ..Default::default() };
        assert_eq!(DashboardSettings::from(SettingsRecord::from(settings.clone())), settings);
    }
}
