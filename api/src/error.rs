//! [`ApiError`], the body of every error response; [`ErrorCode`], the one list of the
//! `error_code`s the server sends; and the conversion from Dropshot's own errors.

use dropshot::{ErrorStatusCode, HttpError, HttpResponseError};
use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, Metadata, Schema, SchemaObject};
use schemars::JsonSchema;
use serde::Serialize;

/// Declares [`ErrorCode`] from one list: each entry's doc comment is both its rustdoc and its
/// line in the spec's description of `error_code` ([`ErrorCode::doc`]).
macro_rules! error_codes {
    (
        api { $( $(#[doc = $doc:literal])+ $variant:ident = $code:literal, )+ }
        events { $( $(#[doc = $edoc:literal])+ $evariant:ident = $ecode:literal, )+ }
        sync { $( $(#[doc = $sdoc:literal])+ $svariant:ident = $scode:literal, )+ }
    ) => {
        /// A stable `error_code`: every code the server sends, and nothing else.
        ///
        /// The wire field ([`ApiError::error_code`]) stays a string, so adding a code breaks no
        /// client; clients treat a code they do not know by its HTTP status. Each code's doc
        /// comment says when it is sent and with which status; those of [`ErrorCode::API`] are
        /// listed in the spec (the description of `error_code`) and in the README.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])+ $variant, )+
            $( $(#[doc = $edoc])+ $evariant, )+
            $( $(#[doc = $sdoc])+ $svariant, )+
        }

        impl ErrorCode {
            /// The codes an [`ApiError`] body carries: the API's, documented in the spec.
            pub const API: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
            /// The codes only the unpublished `POST /events` path sends (Lambda events, not
            /// the API: its errors are Dropshot's own body, and API Gateway never routes there).
            pub const EVENTS: &'static [ErrorCode] = &[$(ErrorCode::$evariant),+];
            /// The codes of a failed sync (`lastError.code` of `GET /dashboard/sync-status`):
            /// not errors of the request that reads them, so not in an [`ApiError`].
            pub const SYNC: &'static [ErrorCode] = &[$(ErrorCode::$svariant),+];
            /// Every code the server sends.
            pub const ALL: &'static [ErrorCode] = &[
                $(ErrorCode::$variant,)+ $(ErrorCode::$evariant,)+ $(ErrorCode::$svariant,)+
            ];

            /// The code as it goes on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                    $(ErrorCode::$evariant => $ecode,)+
                    $(ErrorCode::$svariant => $scode,)+
                }
            }

            /// The code's doc comment: when it is sent, with which status.
            pub const fn doc(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!($($doc, "\n"),+),)+
                    $(ErrorCode::$evariant => concat!($($edoc, "\n"),+),)+
                    $(ErrorCode::$svariant => concat!($($sdoc, "\n"),+),)+
                }
            }
        }
    };
}

error_codes! {
    api {
        /// 401, any problem with the bearer token (missing, malformed, expired, wrong issuer or
        /// audience, bad signature): one uniform body whatever the reason.
        Unauthorized = "unauthorized",
        /// 400, a request that cannot be read: JSON that does not parse, a value of the wrong
        /// type (in the body, the query or a header), or a body or nested object that is not a
        /// JSON object.
        InvalidBody = "invalid_body",
        /// 400, a body field the schema does not have; `field` names it.
        UnknownField = "unknown_field",
        /// 400, a required body field left out; `field` names it.
        MissingField = "missing_field",
        /// 400, `email` is not an email address of at most 254 characters.
        InvalidEmail = "invalid_email",
        /// 400, `displayName` is not 1 to 64 characters, is all white space, or has control
        /// characters.
        InvalidDisplayName = "invalid_display_name",
        /// 400, `shippingAddress.line1` (1 to 100 characters, not all white space) or `line2`
        /// (at most 100) breaks its rule, or has control characters.
        InvalidAddressLine = "invalid_address_line",
        /// 400, `shippingAddress.city` is not 1 to 64 characters, is all white space, or has
        /// control characters.
        InvalidCity = "invalid_city",
        /// 400, `shippingAddress.region` is over 64 characters or has control characters.
        InvalidRegion = "invalid_region",
        /// 400, `shippingAddress.postalCode` is not 1 to 16 letters, digits, spaces and dashes
        /// with at least one letter or digit.
        InvalidPostalCode = "invalid_postal_code",
        /// 400, `shippingAddress.country` is not an assigned upper-case ISO 3166-1 alpha-2 code.
        InvalidCountry = "invalid_country",
        /// 400, `preferredWallet` is not `0x` and 40 hex digits.
        InvalidWalletAddress = "invalid_wallet_address",
        /// 400, a mixed-case `preferredWallet` fails its EIP-55 checksum.
        WalletChecksumMismatch = "wallet_checksum_mismatch",
        /// 400, `avatarUrl` is not an https URL with a host name and no credentials, of at most
        /// 2048 characters.
        InvalidAvatarUrl = "invalid_avatar_url",
        /// 400, `dashboardSettings.ordersPageSize` is not from 1 to 100.
        InvalidPageSize = "invalid_page_size",
        /// 400, `dashboardSettings.locale` is not a BCP 47 language tag.
        InvalidLocale = "invalid_locale",
        /// 413, the request body is over the endpoint's size limit.
        PayloadTooLarge = "payload_too_large",
        /// 412, the profile changed since the `If-Match` version was read: read it again.
        PreconditionFailed = "precondition_failed",
        /// 428, `If-Match` is missing, empty or `*` on a profile update.
        PreconditionRequired = "precondition_required",
        /// 503, the store, Stripe or the token issuer's keys are unavailable for now: retry
        /// after `retry_after_seconds`.
        ServiceUnavailable = "service_unavailable",
        /// 429, the member's budget for this kind of request is spent for now (live look-ups
        /// of orders missing from the cache, profile writes): retry after
        /// `retry_after_seconds`.
        RateLimited = "rate_limited",
        /// 500, an error on the server's side (details only in its log).
        InternalError = "internal_error",
        /// 400, a `page_token` that is malformed, truncated, or not from this member's listing
        /// with these filters.
        InvalidPageToken = "invalid_page_token",
        /// 400, `limit` is over 100 (0 or not a number is `invalid_body`).
        InvalidLimit = "invalid_limit",
        /// 400, `createdAfter` is not earlier than `createdBefore`.
        InvalidDateRange = "invalid_date_range",
        /// 404, no such order for this member (another member's order included).
        OrderNotFound = "order_not_found",
        /// 400, a Stripe webhook whose `Stripe-Signature` is missing, stale, or does not match
        /// the body.
        InvalidSignature = "invalid_signature",
        /// 400, a `userId` that is not 1 to 128 characters without control characters (admin
        /// endpoints).
        InvalidUserId = "invalid_user_id",
        /// 400, `stripeCustomerId` is not `cus_` and 1 to 64 letters or digits.
        InvalidStripeCustomerId = "invalid_stripe_customer_id",
        /// 403, an admin endpoint called by a member outside the admin group or an operator
        /// token without the admin scope, or a member's endpoint called with the operator
        /// client's token.
        Forbidden = "forbidden",
        /// 404, no member with this user id has a profile (admin linking), or the signed-in
        /// member has none to export or erase, or it is being erased (every read of it until
        /// the erasure completes).
        MemberNotFound = "member_not_found",
        /// 409, the Stripe customer is already linked to another member.
        CustomerAlreadyLinked = "customer_already_linked",
        /// 404, Dropshot's own not-found error, should one reach an endpoint (none does with
        /// Dropshot 0.18; an unknown path gets Dropshot's body, without a code).
        NotFound = "not_found",
        /// 405, Dropshot's own method-not-allowed error, should one reach an endpoint (none does
        /// with Dropshot 0.18).
        MethodNotAllowed = "method_not_allowed",
        /// 415, Dropshot's own unsupported-media-type error, should one reach an endpoint (with
        /// Dropshot 0.18 a wrong content type is 400 `invalid_body`).
        UnsupportedMediaType = "unsupported_media_type",
        /// 4xx, any other client-error status Dropshot reports without a code of this list.
        InvalidRequest = "invalid_request",
    }
    events {
        /// 400 on `POST /events`: the body is not JSON.
        InvalidEvent = "invalid_event",
        /// 400 on `POST /events`: neither an SQS batch nor a schedule event.
        UnknownEvent = "unknown_event",
        /// 503 on `POST /events`: the scheduled reconcile failed (so the schedule retries it).
        ReconcileFailed = "reconcile_failed",
    }
    sync {
        /// Stripe could not be reached, timed out or kept answering 409, 429 or 5xx after the
        /// retries; the next sync tries again.
        StripeUnavailable = "stripe_unavailable",
        /// The order store was throttled, unreachable or timed out; the next sync tries again.
        StoreUnavailable = "store_unavailable",
        /// Stripe has no such customer (`resource_missing`): the member's link needs an admin.
        CustomerNotFound = "customer_not_found",
        /// Any other failure, and any failure recorded by an earlier version (whose stored text
        /// is never shown).
        SyncFailed = "sync_failed",
    }
}

impl ErrorCode {
    /// The code sent as `code`, if it is one of the list.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
    }

    /// The description of `error_code` in the spec: one line per code of [`ErrorCode::API`],
    /// from its doc comment.
    pub fn api_description() -> String {
        let mut text = String::from(
            "Stable, machine-readable error code: clients match on it. New codes may be added; \
             treat a code you do not know by the HTTP status. The codes and when they are sent:\n",
        );
        for code in ErrorCode::API {
            let doc = code.doc().split_whitespace().collect::<Vec<_>>().join(" ");
            text.push_str(&format!("\n- `{}`: {doc}", code.as_str()));
        }
        text
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The schema of `error_code`: a plain string (so that a new code breaks no client), described
/// by the list.
fn error_code_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        metadata: Some(Box::new(Metadata {
            description: Some(ErrorCode::api_description()),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

/// The body of every error response.
///
/// `error_code` is stable (its description lists every code); `message` is for people; `field`,
/// when present, is the JSON path of the input at fault (for example `shippingAddress.country`).
#[derive(Clone, Debug, Serialize, JsonSchema, thiserror::Error)]
#[error("{status} {error_code}: {message}")]
pub struct ApiError {
    // Documented by `error_code_schema` (the list of codes) rather than a doc comment.
    #[schemars(schema_with = "error_code_schema")]
    pub error_code: String,
    /// Human-readable explanation.
    pub message: String,
    /// JSON path of the request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For 503 and 429: how many seconds to wait before retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
    /// HTTP status; not part of the body.
    #[serde(skip)]
    pub status: ErrorStatusCode,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: ErrorStatusCode, error_code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            error_code: error_code.as_str().to_string(),
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
/// in the same shape, with codes of the list instead of Dropshot's free text.
impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> Self {
        let message = error.external_message;
        if message.contains("request body exceeded maximum size") {
            return ApiError::new(
                ErrorStatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                message,
            );
        }
        if let Some(field) = between(&message, "unknown field `", "`") {
            return ApiError::new(
                ErrorStatusCode::BAD_REQUEST,
                ErrorCode::UnknownField,
                format!("unknown field `{field}`"),
            )
            .with_field(field);
        }
        if message.contains("pagination token") || message.contains("page_token") {
            return ApiError::new(
                ErrorStatusCode::BAD_REQUEST,
                ErrorCode::InvalidPageToken,
                message,
            )
            .with_field("page_token");
        }
        if let Some(field) = between(&message, "missing field `", "`") {
            // serde_path_to_error names the object that lacks the field ("shippingAddress:
            // missing field `city`"); `field` is the path of the field itself.
            let parent = message
                .strip_prefix("unable to parse JSON body: ")
                .and_then(|m| m.split_once(": missing field `"))
                .map(|(parent, _)| parent);
            let field = parent.map_or_else(|| field.to_string(), |p| format!("{p}.{field}"));
            return ApiError::new(
                ErrorStatusCode::BAD_REQUEST,
                ErrorCode::MissingField,
                message.clone(),
            )
            .with_field(field);
        }
        // A code Dropshot set is kept only if it is one of the list (Dropshot's own
        // `for_internal_error` says `Internal`, which becomes `internal_error`).
        let listed = error.error_code.as_deref().and_then(ErrorCode::from_code);
        let error_code = match (listed, error.status_code.as_u16()) {
            (Some(code), _) => code,
            (None, 400) => ErrorCode::InvalidBody,
            (None, 404) => ErrorCode::NotFound,
            (None, 405) => ErrorCode::MethodNotAllowed,
            (None, 415) => ErrorCode::UnsupportedMediaType,
            (None, s) if s >= 500 => ErrorCode::InternalError,
            (None, _) => ErrorCode::InvalidRequest,
        };
        ApiError::new(error.status_code, error_code, message)
    }
}

fn between<'a>(haystack: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &haystack[haystack.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_distinct_snake_case_and_documented() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} is listed twice");
            assert!(
                text.split('_').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
                "{text} is not snake_case"
            );
            assert!(!code.doc().trim().is_empty(), "{text} has no doc comment");
            assert_eq!(ErrorCode::from_code(text), Some(*code));
        }
        assert_eq!(
            ErrorCode::ALL.len(),
            ErrorCode::API.len() + ErrorCode::EVENTS.len() + ErrorCode::SYNC.len()
        );
        assert!(ErrorCode::API.iter().all(|c| !ErrorCode::EVENTS.contains(c)));
        assert!(ErrorCode::SYNC.iter().all(|c| !ErrorCode::API.contains(c)));
        assert!(ErrorCode::SYNC.iter().all(|c| !ErrorCode::EVENTS.contains(c)));
    }

    /// The spec lists every code of the API in `error_code`, and no code of `/events` or of a
    /// sync status (those of a sync status are listed on `SyncError.code`).
    #[test]
    fn the_schema_lists_the_api_codes() {
        let schema = schemars::schema_for!(ApiError);
        let json = serde_json::to_value(&schema).unwrap();
        let description = json["properties"]["error_code"]["description"].as_str().unwrap();
        assert_eq!(json["properties"]["error_code"]["type"], "string");
        for code in ErrorCode::API {
            assert!(description.contains(&format!("- `{code}`: ")), "{code} not in the schema");
        }
        for code in ErrorCode::EVENTS.iter().chain(ErrorCode::SYNC) {
            assert!(!description.contains(&format!("`{code}`")), "{code} in the schema");
        }
    }

    #[test]
    fn dropshot_errors_get_codes_of_the_list() {
        let cases = [
            (HttpError::for_internal_error("serializing failed".into()), 500, "internal_error"),
            (HttpError::for_bad_request(None, "bad header".into()), 400, "invalid_body"),
            (
                HttpError::for_bad_request(
                    None,
                    "unable to parse JSON body: unknown field `x`".into(),
                ),
                400,
                "unknown_field",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.error_code.as_str()), (status, code));
        }
    }
}
