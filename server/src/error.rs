//! The one mapping from domain failures to HTTP errors with stable `error_code`s.

use crate::auth::AuthError;
use crate::storage::StoreError;
use dashboard_api::ApiError;
use dropshot::ErrorStatusCode;
use slog::{debug, error, warn, Logger};

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{field}: {message}")]
    Invalid { code: &'static str, field: String, message: String },
    #[error("If-Match missing")]
    PreconditionRequired,
    #[error("stale If-Match")]
    PreconditionFailed,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not found")]
    NotFound,
    #[error("member not found")]
    MemberNotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("invalid webhook signature: {0}")]
    InvalidSignature(&'static str),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Stripe could not be reached (after retries).
    #[error("{0}")]
    Upstream(String),
}

impl From<crate::stripe::StripeFailure> for DomainError {
    fn from(failure: crate::stripe::StripeFailure) -> Self {
        DomainError::Upstream(failure.to_string())
    }
}

impl DomainError {
    pub fn invalid(code: &'static str, field: &str, message: &str) -> Self {
        DomainError::Invalid { code, field: field.to_string(), message: message.to_string() }
    }
}

impl DomainError {
    /// The client-facing error; details that are not the client's business only go to the log.
    pub fn into_api(self, log: &Logger) -> ApiError {
        match self {
            DomainError::Auth(AuthError::KeysUnavailable(why)) => {
                warn!(log, "token keys unavailable"; "error" => why);
                unavailable()
            }
            DomainError::Auth(why) => {
                debug!(log, "authentication failed"; "reason" => why.to_string());
                unauthorized()
            }
            DomainError::Invalid { code, field, message } => {
                ApiError::new(ErrorStatusCode::BAD_REQUEST, code, format!("{field} {message}"))
                    .with_field(field)
            }
            DomainError::PreconditionRequired => ApiError::new(
                ErrorStatusCode::from_u16(428).expect("428 is a client error"),
                "precondition_required",
                "send If-Match with the ETag of the profile you read",
            ),
            DomainError::PreconditionFailed | DomainError::Store(StoreError::ConditionFailed) => {
                ApiError::new(
                    ErrorStatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "the profile changed since you read it; read it again and retry",
                )
            }
            DomainError::Store(StoreError::Unavailable(why)) => {
                warn!(log, "store unavailable"; "error" => why);
                unavailable()
            }
            DomainError::NotFound => ApiError::new(
                ErrorStatusCode::NOT_FOUND,
                "order_not_found",
                "no such order for this member",
            ),
            DomainError::MemberNotFound => ApiError::new(
                ErrorStatusCode::NOT_FOUND,
                "member_not_found",
                "no member with this id has a profile",
            ),
            DomainError::Forbidden => ApiError::new(
                ErrorStatusCode::FORBIDDEN,
                "forbidden",
                "this operation needs the admin scope",
            ),
            DomainError::InvalidPageToken => ApiError::new(
                ErrorStatusCode::BAD_REQUEST,
                "invalid_page_token",
                "page_token is not valid for this member and listing",
            )
            .with_field("page_token"),
            DomainError::InvalidSignature(why) => {
                debug!(log, "webhook rejected"; "reason" => why);
                ApiError::new(
                    ErrorStatusCode::BAD_REQUEST,
                    "invalid_signature",
                    "missing or invalid Stripe-Signature",
                )
                .with_field("Stripe-Signature")
            }
            DomainError::Conflict(code) => ApiError::new(
                ErrorStatusCode::CONFLICT,
                code,
                "the Stripe customer belongs to another member",
            ),
            DomainError::Upstream(why) => {
                warn!(log, "Stripe unavailable"; "error" => why);
                unavailable()
            }
            DomainError::Store(StoreError::Internal(why)) => {
                error!(log, "store error"; "error" => why);
                ApiError::new(
                    ErrorStatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error",
                )
            }
        }
    }
}

/// The one body every authentication failure gets, whatever the reason.
pub fn unauthorized() -> ApiError {
    ApiError::new(ErrorStatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid bearer token")
}

fn unavailable() -> ApiError {
    let mut error = ApiError::new(
        ErrorStatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "temporarily unavailable; retry shortly",
    );
    error.retry_after_seconds = Some(RETRY_AFTER_SECS);
    error
}
