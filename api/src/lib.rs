//! The member dashboard API contract.
//!
//! This crate holds the Dropshot API trait and every type that crosses the wire. It has no AWS,
//! Stripe or database dependencies so that the OpenAPI document can be generated (and checked for
//! drift) in seconds, without compiling the implementation.
//!
//! Conventions shared by every endpoint:
//! - JSON fields are camelCase; timestamps are RFC 3339 UTC; ids are opaque strings.
//! - Every error is an [`ApiError`]: a stable `error_code` for programs (one of the list
//!   [`ErrorCode`]), a `message` for people, and `field`, the JSON path of the input at fault
//!   (for example `shippingAddress.country`).

use dropshot::{
    EndpointTagPolicy, Header, HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext,
    UntypedBody,
};

// One module per resource; everything public is re-exported here, so that every type is
// `dashboard_api::Name` whichever module holds it.
mod body;
mod error;
mod health;
mod orders;
mod patterns;
mod profile;
mod rights;
mod sync;
mod webhooks;

pub use body::{from_json_value, JsonBody};
pub use error::{ApiError, ErrorCode};
pub use health::Health;
pub use orders::{
    Order, OrderCharge, OrderDispute, OrderFilters, OrderItem, OrderPath, OrderRefund,
    OrderShipping, OrderStatus, OrderSummary, OrdersPage, OrdersPageSelector, OrdersQuery,
    ORDERS_LIMIT_MAX,
};
pub use patterns::{
    AVATAR_URL_PATTERN, COUNTRY_PATTERN, NO_CONTROL_PATTERN, POSTAL_CODE_PATTERN, USER_ID_PATTERN,
    VISIBLE_TEXT_PATTERN,
};
pub use profile::{
    DashboardSettings, DashboardSettingsPatch, IfMatchHeader, Profile, ProfileHeaders,
    ProfilePatch, ProfileUpdate, ShippingAddress, ShippingAddressPatch, Theme,
    PROFILE_BODY_MAX_BYTES,
};
pub use rights::{ErasureReport, ExportPage, ExportQuery};
pub use sync::{
    AutoLink, LinkStripeCustomer, MemberPath, ScheduledSyncReport, SyncError, SyncReport,
    SyncRequest, SyncStatus, WebhookApplied,
};
pub use webhooks::{StripeSignatureHeader, WebhookAck, WEBHOOK_BODY_MAX_BYTES};

/// Title of the API in the OpenAPI document.
pub const API_TITLE: &str = "Babes Club member dashboard API";
/// Version of the API in the OpenAPI document (lockstep with the server). 0.3.0: every field of
/// a profile update is required (breaking for 0.2 clients), `PATCH /dashboard/profile` added.
pub const API_VERSION: &str = "0.3.0";

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
    /// Every editable field is replaced, so every one must be sent, nested members included: a
    /// field left out is 400 `missing_field` (naming it in `field`), and only `null` clears a
    /// field. For a partial update use `PATCH`. `If-Match` with the `ETag` from the last read is
    /// required: without it (or with an empty value or `*`) the answer is 428
    /// (`precondition_required`), with a stale or unknown one 412 (`precondition_failed`). The
    /// body must be a JSON object (400 `invalid_body` otherwise). Invalid fields are 400 with a
    /// field-specific `error_code`; unknown fields are 400 `unknown_field`. The body is checked
    /// first: an invalid body is 400 whatever `If-Match` says.
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

    /// Change some of the signed-in member's editable profile fields (JSON Merge Patch).
    ///
    /// The body is a JSON Merge Patch (RFC 7396) of the editable fields: a member left out is
    /// kept, `null` clears it, `shippingAddress` and `dashboardSettings` merge member by member.
    /// Sent as `application/merge-patch+json` or `application/json` (both are read alike). The
    /// patched profile must be valid as a whole (the rules and codes of `PUT`; a new address
    /// missing a required part is 400 `missing_field`). `If-Match` is required as for `PUT`
    /// (428, 412), also for `{}`, which changes nothing. As for `PUT`, the patched profile is
    /// checked first: an invalid one is 400 whatever `If-Match` says.
    #[endpoint {
        method = PATCH,
        path = "/dashboard/profile",
        tags = ["profile"],
        request_body_max_bytes = PROFILE_BODY_MAX_BYTES,
    }]
    async fn patch_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
        body: JsonBody<ProfilePatch>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Profile>, ProfileHeaders>, ApiError>;

    /// Erase the signed-in member's dashboard data (GDPR art. 17).
    ///
    /// Removes the profile, every cached order and the link to a Stripe customer. Stripe's own
    /// records (customer, payments) are untouched; the masked audit log records stay for their
    /// retention; per-member rate-limit counters expire within minutes. The report says so.
    /// Only the token's own member can be erased, at most as often as profile writes (429
    /// `rate_limited`).
    ///
    /// `If-Match` with the profile's `ETag` is required (428 `precondition_required` without,
    /// 412 `precondition_failed` when stale). The profile is first marked as being erased, and
    /// from then on reads answer 404 `member_not_found` (the orders listing is empty); then the
    /// orders are deleted in batches and the profile last. If that is interrupted, another
    /// `DELETE` completes it: on a profile being erased `If-Match` is not needed (the member
    /// already confirmed the version they erase), any value is ignored. No profile: 404
    /// `member_not_found`. The next `GET /dashboard/profile` starts a fresh profile.
    #[endpoint { method = DELETE, path = "/dashboard/profile", tags = ["profile"] }]
    async fn delete_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
    ) -> Result<HttpResponseOk<ErasureReport>, ApiError>;

    /// Export the signed-in member's data (GDPR art. 15 and 20), one page at a time.
    ///
    /// Paged, so that each response stays far below the 6 MB response limit of the function
    /// whatever the number of orders: a page holds at most 100 orders and stops adding orders
    /// once it passes about 2 MB of JSON (one cached order is at most about 400 KB). The first
    /// page adds the profile, the sync status and a note on the audit history (kept in the
    /// service's logs, not in the store). Follow `nextPageToken` until it is absent; the pages
    /// together hold every cached order exactly once. Only the token's own member's data; a
    /// member without a profile, or whose profile is being erased, gets 404
    /// `member_not_found`.
    #[endpoint { method = GET, path = "/dashboard/export", tags = ["profile"] }]
    async fn get_export(
        rqctx: RequestContext<Self::Context>,
        query: Query<ExportQuery>,
    ) -> Result<HttpResponseOk<ExportPage>, ApiError>;

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
