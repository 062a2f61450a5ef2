//! The member dashboard API contract.
//!
//! This crate holds the Dropshot API trait and every type that crosses the wire. It has no AWS,
//! Stripe or database dependencies so that the OpenAPI document can be generated (and checked for
//! drift) in seconds, without compiling the implementation.
//!
//! Conventions shared by every endpoint:
//! - JSON fields are camelCase; timestamps are RFC 3339 UTC; ids are opaque strings.
//! - Every error is an [`ApiError`]: a stable `error_code` for programs, a `message` for people,
//!   and `field`, the JSON path of the input at fault (for example `shippingAddress.country`).

use chrono::{DateTime, Utc};
use dropshot::{
    ErrorStatusCode, Header, HttpError, HttpResponseError, HttpResponseHeaders, HttpResponseOk,
    RequestContext, TypedBody,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Title of the API in the OpenAPI document.
pub const API_TITLE: &str = "Babes Club member dashboard API";
/// Version of the API in the OpenAPI document (lockstep with the server).
pub const API_VERSION: &str = "0.1.0";
/// Largest accepted `PUT /dashboard/profile` body, in bytes.
pub const PROFILE_BODY_MAX_BYTES: usize = 16 * 1024;

/// The member dashboard API.
#[dropshot::api_description]
pub trait DashboardApi {
    type Context;

    /// Liveness check.
    ///
    /// Unauthenticated and cheap: it touches no storage, so it also serves as the readiness path.
    #[endpoint { method = GET, path = "/healthz", tags = ["health"] }]
    async fn get_healthz(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<Health>, ApiError>;

    /// Get the signed-in member's profile.
    ///
    /// A member without a profile yet gets one created from the token's claims (the email claim
    /// when present). The `ETag` header carries the profile's version; send it back in `If-Match`
    /// to update the profile.
    #[endpoint { method = GET, path = "/dashboard/profile", tags = ["profile"] }]
    async fn get_profile(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Profile>, ProfileHeaders>, ApiError>;

    /// Replace the signed-in member's editable profile fields.
    ///
    /// Every editable field is replaced: a field left out or sent as `null` is cleared.
    /// `If-Match` with the `ETag` from the last read is required: without it the answer is 428
    /// (`precondition_required`), with a stale one 412 (`precondition_failed`). Invalid fields are
    /// 400 with a field-specific `error_code`; unknown fields are 400 `unknown_field`.
    #[endpoint {
        method = PUT,
        path = "/dashboard/profile",
        tags = ["profile"],
        request_body_max_bytes = PROFILE_BODY_MAX_BYTES,
    }]
    async fn put_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
        body: TypedBody<ProfileUpdate>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Profile>, ProfileHeaders>, ApiError>;
}

/// The body of every error response.
///
/// `error_code` values are stable: clients match on them. Those of general use:
/// `unauthorized` (401, any token problem), `invalid_body` (400, malformed JSON or a value of the
/// wrong type), `unknown_field` (400), `payload_too_large` (413), `precondition_required` (428),
/// `precondition_failed` (412), `service_unavailable` (503, retry after `retry_after_seconds`),
/// `internal_error` (500). Field validation errors have a code per rule, such as
/// `invalid_email` or `invalid_country`.
#[derive(Clone, Debug, Serialize, JsonSchema, thiserror::Error)]
#[error("{status} {error_code}: {message}")]
pub struct ApiError {
    /// Stable, machine-readable error code.
    pub error_code: String,
    /// Human-readable explanation.
    pub message: String,
    /// JSON path of the request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For 503: how many seconds to wait before retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
    /// HTTP status; not part of the body.
    #[serde(skip)]
    pub status: ErrorStatusCode,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: ErrorStatusCode, error_code: &str, message: impl Into<String>) -> Self {
        ApiError {
            error_code: error_code.to_string(),
            message: message.into(),
            field: None,
            retry_after_seconds: None,
            status,
        }
    }

    /// The same error, about one input field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl HttpResponseError for ApiError {
    fn status_code(&self) -> ErrorStatusCode {
        self.status
    }
}

/// Dropshot's own errors (body too large, JSON that does not parse, a bad header) reach clients
/// in the same shape, with stable codes instead of Dropshot's free text.
impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> Self {
        let message = error.external_message;
        if message.contains("request body exceeded maximum size") {
            return ApiError::new(ErrorStatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message);
        }
        if let Some(field) = between(&message, "unknown field `", "`") {
            return ApiError::new(
                ErrorStatusCode::BAD_REQUEST,
                "unknown_field",
                format!("unknown field `{field}`"),
            )
            .with_field(field);
        }
        if let Some(field) = between(&message, "missing field `", "`") {
            return ApiError::new(ErrorStatusCode::BAD_REQUEST, "missing_field", message.clone())
                .with_field(field);
        }
        let error_code = match (error.error_code, error.status_code.as_u16()) {
            (Some(code), _) => code,
            (None, 400) => "invalid_body".to_string(),
            (None, 404) => "not_found".to_string(),
            (None, 405) => "method_not_allowed".to_string(),
            (None, 415) => "unsupported_media_type".to_string(),
            (None, s) if s >= 500 => "internal_error".to_string(),
            (None, _) => "invalid_request".to_string(),
        };
        ApiError::new(error.status_code, &error_code, message)
    }
}

fn between<'a>(haystack: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &haystack[haystack.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// Liveness report.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    /// Server version.
    pub version: String,
}

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
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct IfMatchHeader {
    /// The `ETag` of the profile version this update was based on.
    #[serde(rename = "If-Match")]
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
    /// Name shown on the dashboard: 1 to 64 characters, no control characters.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"\S"))]
    pub display_name: Option<String>,
    /// Where orders are shipped.
    #[serde(default)]
    pub shipping_address: Option<ShippingAddress>,
    /// An EVM address: `0x` and 40 hex digits. A mixed-case address must pass its EIP-55
    /// checksum.
    #[serde(default)]
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub preferred_wallet: Option<String>,
    /// Avatar image URL: `https` only, at most 2048 characters.
    #[serde(default)]
    #[schemars(length(max = 2048), regex(pattern = r"^https://[^\s/@]+"))]
    pub avatar_url: Option<String>,
    /// Dashboard preferences; defaults apply when left out.
    #[serde(default)]
    pub dashboard_settings: Option<DashboardSettings>,
}

/// A postal address.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShippingAddress {
    /// First address line: 1 to 100 characters.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub line1: String,
    /// Second address line: at most 100 characters.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub line2: Option<String>,
    /// City: 1 to 64 characters.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"\S"))]
    pub city: String,
    /// State, province or region: at most 64 characters.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub region: Option<String>,
    /// Postal code: 1 to 16 letters, digits, spaces or dashes.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9 -]*[A-Za-z0-9][A-Za-z0-9 -]*$"),
        length(min = 1, max = 16)
    )]
    pub postal_code: String,
    /// Country as an ISO 3166-1 alpha-2 code, upper case (for example `US`).
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
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
