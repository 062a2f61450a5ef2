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
    EndpointTagPolicy, ErrorStatusCode, Header, HttpError, HttpResponseError, HttpResponseHeaders,
    HttpResponseOk, PaginationParams, Path, Query, RequestContext, UntypedBody,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod body;
pub use body::JsonBody;

/// Title of the API in the OpenAPI document.
pub const API_TITLE: &str = "Babes Club member dashboard API";
/// Version of the API in the OpenAPI document (lockstep with the server).
pub const API_VERSION: &str = "0.2.0";
/// Largest accepted `PUT /dashboard/profile` body, in bytes.
pub const PROFILE_BODY_MAX_BYTES: usize = 16 * 1024;
/// Largest accepted Stripe webhook body, in bytes (Stripe's events are far smaller).
pub const WEBHOOK_BODY_MAX_BYTES: usize = 512 * 1024;
/// Largest `limit` of `GET /dashboard/orders`.
pub const ORDERS_LIMIT_MAX: u32 = 100;

// Patterns of the schema (the server checks the same rules; the contract run holds both to it).
// Control characters are Unicode category Cc: U+0000 to U+001F and U+007F to U+009F.

/// Text without control characters.
pub const NO_CONTROL_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// Text without control characters and with at least one character that is not white space.
pub const VISIBLE_TEXT_PATTERN: &str =
    r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";
/// A member id (a token's `sub`): no control characters; 1 to 128 characters.
pub const USER_ID_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]+$";
/// A postal code: letters, digits, spaces and dashes, at least one letter or digit.
pub const POSTAL_CODE_PATTERN: &str = r"^[A-Za-z0-9 -]*[A-Za-z0-9][A-Za-z0-9 -]*$";
/// An avatar URL: `https://`, a host name, an optional port (0 to 65535), an optional path,
/// query and fragment (RFC 3986 characters and `%` escapes). Host labels are ASCII letters,
/// digits and single hyphens (no `xn--` labels), the last starting with a letter (so that it is
/// never read as an IP address). Every such string parses as a URL with that host.
pub const AVATAR_URL_PATTERN: &str = concat!(
    r"^https://(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*",
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?",
    r"(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?",
    r"(?:#(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$",
);
/// An assigned ISO 3166-1 alpha-2 country code.
pub const COUNTRY_PATTERN: &str = "^(?:A[DEFGILMOQRSTUWXZ]|B[ABDEFGHIJLMNOQRSTVWYZ]|\
    C[ACDFGHIKLMNORUVWXYZ]|D[EJKMOZ]|E[CEGHRST]|F[IJKMOR]|G[ABDEFGHILMNPQRSTUWY]|H[KMNRTU]|\
    I[DELMNOQRST]|J[EMOP]|K[EGHIMNPRWYZ]|L[ABCIKRSTUVY]|M[ACDEFGHKLMNOPQRSTUVWXYZ]|\
    N[ACEFGILOPRUZ]|OM|P[AEFGHKLMNRSTWY]|QA|R[EOSUW]|S[ABCDEGHIJKLMNORSTVXYZ]|\
    T[CDFGHJKLMNORTVWZ]|U[AGMSYZ]|V[ACEGINU]|W[FS]|Y[ET]|Z[AMW])$";

/// The member dashboard API.
#[dropshot::api_description {
    tag_config = {
        allow_other_tags = false,
        policy = EndpointTagPolicy::ExactlyOne,
        tags = {
            health = { description = "Liveness of the service." },
            profile = { description = "The signed-in member's profile." },
            orders = { description = "The signed-in member's order history, cached from Stripe." },
            webhooks = { description = "Events from Stripe, authenticated by their signature." },
            internal = { description = "Administration: linking members to Stripe and syncing (admin scope)." },
        },
    },
}]
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
    /// `If-Match` with the `ETag` from the last read is required: without it (or with an empty
    /// value or `*`) the answer is 428 (`precondition_required`), with a stale or unknown one 412
    /// (`precondition_failed`). The body must be a JSON object (400 `invalid_body` otherwise).
    /// Invalid fields are 400 with a field-specific `error_code`; unknown fields are 400
    /// `unknown_field`. The body is checked first: an invalid body is 400 whatever `If-Match`
    /// says.
    #[endpoint {
        method = PUT,
        path = "/dashboard/profile",
        tags = ["profile"],
        request_body_max_bytes = PROFILE_BODY_MAX_BYTES,
    }]
    async fn put_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
        body: JsonBody<ProfileUpdate>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Profile>, ProfileHeaders>, ApiError>;

    /// List the signed-in member's orders, newest first.
    ///
    /// Served from the order cache at once. The page says how fresh the cache is; when it is
    /// older than the server's threshold, a refresh from Stripe starts in the background (at
    /// most one per member). Filters apply to the first request; later pages take only
    /// `page_token`, which is signed and bound to the member and the filters (a forged,
    /// truncated or foreign token is 400 `invalid_page_token`).
    #[endpoint { method = GET, path = "/dashboard/orders", tags = ["orders"] }]
    async fn list_orders(
        rqctx: RequestContext<Self::Context>,
        query: Query<OrdersQuery>,
    ) -> Result<HttpResponseOk<OrdersPage>, ApiError>;

    /// Get one of the signed-in member's orders with its items and payment timeline.
    ///
    /// An order not cached yet is fetched from Stripe, checked to belong to the member, cached
    /// and returned. Another member's order, or one that does not exist, is 404
    /// `order_not_found`.
    #[endpoint { method = GET, path = "/dashboard/orders/{orderId}", tags = ["orders"] }]
    async fn get_order(
        rqctx: RequestContext<Self::Context>,
        path: Path<OrderPath>,
    ) -> Result<HttpResponseOk<Order>, ApiError>;

    /// How the signed-in member's order history is kept fresh: the last webhook applied, the
    /// last reconcile, the last error.
    #[endpoint { method = GET, path = "/dashboard/sync-status", tags = ["orders"] }]
    async fn get_sync_status(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<SyncStatus>, ApiError>;

    /// Stripe webhook endpoint.
    ///
    /// Authenticated by the `Stripe-Signature` header (HMAC of the raw body, 300 s tolerance),
    /// not by a bearer token. A bad, missing or stale signature is 400 `invalid_signature` and
    /// nothing is written. Duplicates are acknowledged without a second effect; unknown event
    /// types are acknowledged and ignored; a failure to store is 5xx so that Stripe retries.
    #[endpoint {
        method = POST,
        path = "/webhooks/stripe",
        tags = ["webhooks"],
        request_body_max_bytes = WEBHOOK_BODY_MAX_BYTES,
    }]
    async fn post_stripe_webhook(
        rqctx: RequestContext<Self::Context>,
        signature: Header<StripeSignatureHeader>,
        body: UntypedBody,
    ) -> Result<HttpResponseOk<WebhookAck>, ApiError>;

    /// Reconcile one member's orders with Stripe now (admin).
    ///
    /// Needs a token with the configured admin scope or group; others get 403 `forbidden`.
    #[endpoint { method = POST, path = "/internal/sync/stripe", tags = ["internal"] }]
    async fn post_sync_member(
        rqctx: RequestContext<Self::Context>,
        body: JsonBody<SyncRequest>,
    ) -> Result<HttpResponseOk<SyncReport>, ApiError>;

    /// Reconcile every member linked to a Stripe customer (admin; the daily schedule).
    #[endpoint { method = POST, path = "/internal/sync/scheduled", tags = ["internal"] }]
    async fn post_sync_all(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<ScheduledSyncReport>, ApiError>;

    /// Link a member to their Stripe customer (admin).
    ///
    /// A customer can belong to one member only: linking it to a second is 409
    /// `customer_already_linked`.
    #[endpoint {
        method = PUT,
        path = "/internal/members/{userId}/stripe-customer",
        tags = ["internal"],
    }]
    async fn put_member_stripe_customer(
        rqctx: RequestContext<Self::Context>,
        path: Path<MemberPath>,
        body: JsonBody<LinkStripeCustomer>,
    ) -> Result<HttpResponseOk<Profile>, ApiError>;
}

/// The body of every error response.
///
/// `error_code` values are stable: clients match on them. Those of general use:
/// `unauthorized` (401, any token problem), `invalid_body` (400, malformed JSON, a value of the
/// wrong type, or a body or nested object that is not a JSON object), `unknown_field` (400),
/// `payload_too_large` (413), `precondition_required` (428), `precondition_failed` (412),
/// `service_unavailable` (503, retry after `retry_after_seconds`), `internal_error` (500). Field
/// validation errors have a code per rule, such as `invalid_email` or `invalid_country`.
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
        if message.contains("pagination token") || message.contains("page_token") {
            return ApiError::new(ErrorStatusCode::BAD_REQUEST, "invalid_page_token", message)
                .with_field("page_token");
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
    /// Only orders with this status.
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
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct OrdersPageSelector {
    /// Sort key of the last order returned.
    pub k: String,
    /// Status filter.
    #[serde(default)]
    pub s: Option<OrderStatus>,
    /// Created-after filter (Unix seconds).
    #[serde(default)]
    pub a: Option<i64>,
    /// Created-before filter (Unix seconds).
    #[serde(default)]
    pub b: Option<i64>,
    /// HMAC over the member and everything above.
    pub sig: String,
}

/// One page of orders, with how fresh the cache is.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersPage {
    /// Orders, newest first.
    pub items: Vec<OrderSummary>,
    /// Token for the next page; absent on the last page.
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

/// How a member's order history is kept fresh.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The linked Stripe customer, if any.
    pub stripe_customer_id: Option<String>,
    /// The last webhook event applied to this member's orders.
    pub last_webhook: Option<WebhookApplied>,
    /// The last completed reconcile.
    pub last_reconcile: Option<SyncReport>,
    /// The last sync failure, if it is more recent than the last success.
    pub last_error: Option<SyncError>,
}

/// A webhook event that changed a member's orders.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookApplied {
    /// Stripe event id.
    pub event_id: String,
    /// Stripe event type.
    pub event_type: String,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
}

/// A sync failure.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncError {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What went wrong.
    pub message: String,
}

/// The outcome of reconciling one member with Stripe.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The member.
    pub user_id: String,
    /// Orders seen at Stripe.
    pub seen: u64,
    /// Orders cached for the first time.
    pub created: u64,
    /// Cached orders that changed.
    pub updated: u64,
    /// Cached orders already up to date (not written).
    pub unchanged: u64,
    /// Stripe API requests made (retries included).
    pub stripe_requests: u64,
    /// When the reconcile finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The outcome of reconciling every linked member.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledSyncReport {
    /// Members reconciled.
    pub members: u64,
    /// Members whose reconcile failed (see their sync status).
    pub failed: u64,
    /// Sum of the members' counts.
    pub totals: SyncReport,
}

/// Body of `POST /internal/sync/stripe`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// The member to reconcile: 1 to 128 characters, no control characters (else 400
    /// `invalid_user_id`).
    #[schemars(length(min = 1, max = 128), regex = "USER_ID_PATTERN")]
    pub user_id: String,
}

/// Path of the member admin endpoints.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct MemberPath {
    /// The member's user id: 1 to 128 characters, no control characters (else 400
    /// `invalid_user_id`).
    #[serde(rename = "userId")]
    #[schemars(length(min = 1, max = 128), regex = "USER_ID_PATTERN")]
    pub user_id: String,
}

/// Body of `PUT /internal/members/{userId}/stripe-customer`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkStripeCustomer {
    /// A Stripe customer id: `cus_` and 1 to 64 letters or digits (else 400
    /// `invalid_stripe_customer_id`).
    #[schemars(regex(pattern = r"^cus_[A-Za-z0-9]{1,64}$"))]
    pub stripe_customer_id: String,
}

/// The `Stripe-Signature` header of a webhook.
///
/// Required. The field is an `Option` so that a request without it gets the API's 400
/// `invalid_signature` like any other bad signature.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct StripeSignatureHeader {
    /// `t=<timestamp>,v1=<signature>[,…]` as Stripe sends it. Missing, malformed, stale (over
    /// 300 s) or not matching the body: 400 `invalid_signature`.
    #[serde(rename = "Stripe-Signature")]
    #[schemars(required)]
    pub stripe_signature: Option<String>,
}

/// What the server did with a webhook event.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAck {
    /// The event id.
    pub event_id: String,
    /// `applied`, `duplicate`, `ignored` (type not handled) or `unlinked` (no member for the
    /// customer).
    pub outcome: String,
}
