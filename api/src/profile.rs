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

/// Largest accepted `PUT /dashboard/profile` body, in bytes.
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

/// The editable fields of a profile. Fields left out or `null` are cleared.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdate {
    /// Contact email (at most 254 characters).
    #[serde(default)]
    #[schemars(email, length(max = 254))]
    pub email: Option<String>,
    /// Name shown on the dashboard: 1 to 64 characters, not all white space, no control
    /// characters. Surrounding white space is removed.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), regex = "VISIBLE_TEXT_PATTERN")]
    pub display_name: Option<String>,
    /// Where orders are shipped.
    #[serde(default)]
    pub shipping_address: Option<ShippingAddress>,
    /// An EVM address: `0x` and 40 hex digits. A mixed-case address must pass its EIP-55
    /// checksum.
    #[serde(default)]
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub preferred_wallet: Option<String>,
    /// Avatar image URL, at most 2048 characters: `https://`, a host name (ASCII letters,
    /// digits, dots and single hyphens; the last label starts with a letter), an optional port,
    /// then an optional path, query and fragment of URL characters (RFC 3986, `%` escapes).
    /// No user name or password.
    #[serde(default)]
    #[schemars(length(max = 2048), regex = "AVATAR_URL_PATTERN")]
    pub avatar_url: Option<String>,
    /// Dashboard preferences; defaults apply when left out.
    #[serde(default)]
    pub dashboard_settings: Option<DashboardSettings>,
}

/// A postal address.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShippingAddress {
    /// First address line: 1 to 100 characters, not all white space, no control characters.
    #[schemars(length(min = 1, max = 100), regex = "VISIBLE_TEXT_PATTERN")]
    pub line1: String,
    /// Second address line: at most 100 characters, no control characters. Blank is cleared.
    #[serde(default)]
    #[schemars(length(max = 100), regex = "NO_CONTROL_PATTERN")]
    pub line2: Option<String>,
    /// City: 1 to 64 characters, not all white space, no control characters.
    #[schemars(length(min = 1, max = 64), regex = "VISIBLE_TEXT_PATTERN")]
    pub city: String,
    /// State, province or region: at most 64 characters, no control characters. Blank is
    /// cleared.
    #[serde(default)]
    #[schemars(length(max = 64), regex = "NO_CONTROL_PATTERN")]
    pub region: Option<String>,
    /// Postal code: 1 to 16 letters, digits, spaces or dashes.
    #[schemars(regex = "POSTAL_CODE_PATTERN", length(min = 1, max = 16))]
    pub postal_code: String,
    /// Country as an assigned ISO 3166-1 alpha-2 code, upper case (for example `US`).
    #[schemars(regex = "COUNTRY_PATTERN")]
    pub country: String,
}

/// Dashboard preferences.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DashboardSettings {
    /// Colour theme.
    #[serde(default)]
    pub theme: Theme,
    /// Whether the member wants order emails.
    #[serde(default = "default_true")]
    pub email_notifications: bool,
    /// Orders shown per page: 1 to 100.
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 100))]
    pub orders_page_size: u32,
    /// Preferred locale as a BCP 47 tag (for example `en-US`), at most 35 characters.
    #[serde(default = "default_locale")]
    #[schemars(length(max = 35), regex(pattern = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"))]
    pub locale: String,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            theme: Theme::default(),
            email_notifications: true,
            orders_page_size: default_page_size(),
            locale: default_locale(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_page_size() -> u32 {
    20
}

fn default_locale() -> String {
    "en-US".to_string()
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
