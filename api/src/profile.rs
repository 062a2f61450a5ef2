//! `/dashboard/profile`: the profile, its editable fields (address, settings, theme), the
//! `ETag`/`If-Match` headers of its optimistic concurrency, and the body size limit of an
//! update.

use crate::patterns::{
    AVATAR_URL_PATTERN, COUNTRY_PATTERN, NO_CONTROL_PATTERN, POSTAL_CODE_PATTERN,
    VISIBLE_TEXT_PATTERN,
};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest accepted `PUT` or `PATCH /dashboard/profile` body, in bytes.
pub const PROFILE_BODY_MAX_BYTES: usize = 16 * 1024;

/// A member's profile as stored, plus derived fields.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The member's id: the `sub` claim of their token. Never writable.
    pub user_id: String,
    /// Contact email.
    pub email: Option<String>,
    /// Name shown on the dashboard.
    pub display_name: Option<String>,
    /// Where orders are shipped.
    pub shipping_address: Option<ShippingAddress>,
    /// An EVM wallet address (0x + 40 hex digits).
    pub preferred_wallet: Option<String>,
    /// Avatar image URL (https).
    pub avatar_url: Option<String>,
    /// Dashboard preferences.
    pub dashboard_settings: DashboardSettings,
    /// The linked Stripe customer, if any. Set by the shop, never by the member.
    pub stripe_customer_id: Option<String>,
    /// Number of orders in the member's history.
    pub total_orders: u64,
    /// When the profile was created.
    pub created_at: DateTime<Utc>,
    /// When the profile last changed.
    pub updated_at: DateTime<Utc>,
}

/// Headers sent with a profile.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ProfileHeaders {
    /// The profile's current version; send it back in `If-Match` to update.
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// Conditional-request headers for a profile update.
///
/// `If-Match` is required. The field is an `Option` so that a request without it reaches the
/// handler and gets the API's 428 `precondition_required` rather than a generic 400.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct IfMatchHeader {
    /// The `ETag` of the profile version this update was based on (as `GET /dashboard/profile`
    /// sent it). Missing, empty or `*`: 428 `precondition_required`; not the current version:
    /// 412 `precondition_failed`.
    #[serde(rename = "If-Match")]
    #[schemars(required)]
    pub if_match: Option<String>,
}

/// The editable fields of a profile, every one of them: `PUT` replaces them all.
///
/// Each field must be present (400 `missing_field` naming it otherwise), nested objects' members
/// included; `null` clears a field (for `dashboardSettings`: back to the defaults). For a
/// partial update, send a merge patch (`PATCH`, `ProfilePatch`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdate {
    /// Contact email (at most 254 characters).
    #[serde(deserialize_with = "present")]
    #[schemars(required, with = "Nullable<String>", email, length(max = 254))]
    pub email: Option<String>,
    /// Name shown on the dashboard: 1 to 64 characters, not all white space, no control
    /// characters. Surrounding white space is removed.
    #[serde(deserialize_with = "present")]
    #[schemars(
        required,
        with = "Nullable<String>",
        length(min = 1, max = 64),
        regex = "VISIBLE_TEXT_PATTERN"
    )]
    pub display_name: Option<String>,
    /// Where orders are shipped.
    #[serde(deserialize_with = "present")]
    #[schemars(required, with = "Nullable<ShippingAddress>")]
    pub shipping_address: Option<ShippingAddress>,
    /// An EVM address: `0x` and 40 hex digits. A mixed-case address must pass its EIP-55
    /// checksum.
    #[serde(deserialize_with = "present")]
    #[schemars(required, with = "Nullable<String>", regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub preferred_wallet: Option<String>,
    /// Avatar image URL, at most 2048 characters: `https://`, a host name (ASCII letters,
    /// digits, dots and single hyphens; the last label starts with a letter), an optional port,
    /// then an optional path, query and fragment of URL characters (RFC 3986, `%` escapes).
    /// No user name or password.
    #[serde(deserialize_with = "present")]
    #[schemars(
        required,
        with = "Nullable<String>",
        length(max = 2048),
        regex = "AVATAR_URL_PATTERN"
    )]
    pub avatar_url: Option<String>,
    /// Dashboard preferences; `null` sets the defaults.
    #[serde(deserialize_with = "present")]
    #[schemars(required, with = "Nullable<DashboardSettings>")]
    pub dashboard_settings: Option<DashboardSettings>,
}

/// The schema of a field that is required and nullable. schemars 0.8 drops `nullable` from an
/// `Option` field marked `required` (it takes the inner type's schema), so these fields name
/// this type instead: the schema of `Option<T>` (nullable), without being an `Option` itself.
struct Nullable<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema> JsonSchema for Nullable<T> {
    fn is_referenceable() -> bool {
        false
    }

    fn schema_name() -> String {
        <Option<T>>::schema_name()
    }

    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        <Option<T>>::json_schema(gen)
    }
}

/// A nullable field that must be present: serde reads a missing `Option` as `None` unless the
/// field has its own deserializer, so this one (which accepts `null` or a value) makes a missing
/// field the error "missing field `…`" (400 `missing_field`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// A member that may be left out or `null`, and whose `null` must be told apart from its
/// absence (`Some(None)` against `None`), as a merge patch needs.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A member that may be left out but is never `null` (the value it would clear is required).
fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A JSON Merge Patch (RFC 7396) of the editable fields: a member left out is kept, `null`
/// clears it, a nested object is merged member by member. The patched profile must then be a
/// valid `ProfileUpdate` (a new `shippingAddress` needs `line1`, `city`, `postalCode` and
/// `country`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilePatch {
    /// Contact email (at most 254 characters); `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", email, length(max = 254))]
    pub email: Option<Option<String>>,
    /// Name shown on the dashboard (the rules of `ProfileUpdate.displayName`); `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", length(min = 1, max = 64), regex = "VISIBLE_TEXT_PATTERN")]
    pub display_name: Option<Option<String>>,
    /// Changes to the shipping address, merged into the current one; `null` removes it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ShippingAddressPatch>")]
    pub shipping_address: Option<Option<ShippingAddressPatch>>,
    /// An EVM address (the rules of `ProfileUpdate.preferredWallet`); `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub preferred_wallet: Option<Option<String>>,
    /// Avatar image URL (the rules of `ProfileUpdate.avatarUrl`); `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", length(max = 2048), regex = "AVATAR_URL_PATTERN")]
    pub avatar_url: Option<Option<String>>,
    /// Changes to the dashboard preferences; `null` sets the defaults.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DashboardSettingsPatch>")]
    pub dashboard_settings: Option<Option<DashboardSettingsPatch>>,
}

/// Changes to a shipping address (the rules of `ShippingAddress`); members left out are kept.
/// The required parts cannot be `null`: remove the whole address instead.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShippingAddressPatch {
    /// First address line: 1 to 100 characters, not all white space, no control characters.
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 100), regex = "VISIBLE_TEXT_PATTERN")]
    pub line1: Option<String>,
    /// Second address line: at most 100 characters, no control characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", length(max = 100), regex = "NO_CONTROL_PATTERN")]
    pub line2: Option<Option<String>>,
    /// City: 1 to 64 characters, not all white space, no control characters.
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 64), regex = "VISIBLE_TEXT_PATTERN")]
    pub city: Option<String>,
    /// State, province or region: at most 64 characters, no control characters; `null` clears
    /// it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", length(max = 64), regex = "NO_CONTROL_PATTERN")]
    pub region: Option<Option<String>>,
    /// Postal code: 1 to 16 letters, digits, spaces or dashes.
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", regex = "POSTAL_CODE_PATTERN", length(min = 1, max = 16))]
    pub postal_code: Option<String>,
    /// Country as an assigned ISO 3166-1 alpha-2 code, upper case (for example `US`).
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", regex = "COUNTRY_PATTERN")]
    pub country: Option<String>,
}

/// Changes to the dashboard preferences (the rules of `DashboardSettings`); members left out
/// are kept. None can be `null`: set `dashboardSettings` to `null` for all the defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DashboardSettingsPatch {
    /// Colour theme.
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Theme")]
    pub theme: Option<Theme>,
    /// Whether the member wants order emails.
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "bool")]
    pub email_notifications: Option<bool>,
    /// Orders shown per page: 1 to 100.
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u32", range(min = 1, max = 100))]
    pub orders_page_size: Option<u32>,
    /// Preferred locale as a BCP 47 tag (for example `en-US`), at most 35 characters.
    #[serde(default, deserialize_with = "not_null", skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        length(max = 35),
        regex(pattern = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
    )]
    pub locale: Option<String>,
}

/// A postal address.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShippingAddress {
    /// First address line: 1 to 100 characters, not all white space, no control characters.
    #[schemars(length(min = 1, max = 100), regex = "VISIBLE_TEXT_PATTERN")]
    pub line1: String,
    /// Second address line: at most 100 characters, no control characters. Blank or `null` is
    /// cleared; it must be sent all the same.
    #[serde(deserialize_with = "present")]
    #[schemars(
        required,
        with = "Nullable<String>",
        length(max = 100),
        regex = "NO_CONTROL_PATTERN"
    )]
    pub line2: Option<String>,
    /// City: 1 to 64 characters, not all white space, no control characters.
    #[schemars(length(min = 1, max = 64), regex = "VISIBLE_TEXT_PATTERN")]
    pub city: String,
    /// State, province or region: at most 64 characters, no control characters. Blank or
    /// `null` is cleared; it must be sent all the same.
    #[serde(deserialize_with = "present")]
    #[schemars(
        required,
        with = "Nullable<String>",
        length(max = 64),
        regex = "NO_CONTROL_PATTERN"
    )]
    pub region: Option<String>,
    /// Postal code: 1 to 16 letters, digits, spaces or dashes.
    #[schemars(regex = "POSTAL_CODE_PATTERN", length(min = 1, max = 16))]
    pub postal_code: String,
    /// Country as an assigned ISO 3166-1 alpha-2 code, upper case (for example `US`).
    #[schemars(regex = "COUNTRY_PATTERN")]
    pub country: String,
}

/// Dashboard preferences. In an update every member must be sent.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DashboardSettings {
    /// Colour theme.
    pub theme: Theme,
    /// Whether the member wants order emails.
    pub email_notifications: bool,
    /// Orders shown per page: 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub orders_page_size: u32,
    /// Preferred locale as a BCP 47 tag (for example `en-US`), at most 35 characters.
    #[schemars(length(max = 35), regex(pattern = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"))]
    pub locale: String,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            theme: Theme::default(),
            email_notifications: true,
            orders_page_size: 20,
            locale: "en-US".to_string(),
        }
    }
}

/// Colour theme of the dashboard.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    /// Follow the device setting.
    #[default]
    System,
    /// Light theme.
    Light,
    /// Dark theme.
    Dark,
}
