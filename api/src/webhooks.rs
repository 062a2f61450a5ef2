//! `POST /webhooks/stripe`: the `Stripe-Signature` header, the acknowledgement, and the body
//! size limit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest accepted Stripe webhook body, in bytes (Stripe's events are far smaller).
pub const WEBHOOK_BODY_MAX_BYTES: usize = 512 * 1024;

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
    /// `applied`, `duplicate`, `ignored` (type not handled), `unlinked` (no member for the
    /// customer) or `queued` (stored, and applied once Stripe and the server's Stripe request
    /// budget allow: it needs a Stripe read that cannot be made now).
    pub outcome: String,
}
