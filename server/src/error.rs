//! The one mapping from domain failures to HTTP errors with stable `error_code`s.

use crate::auth::AuthError;
use crate::storage::StoreError;
use dashboard_api::{ApiError, ErrorCode};
use dropshot::ErrorStatusCode;
use slog::{debug, error, warn, Logger};

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An input that breaks a validation rule: the rule's code, and the field at fault.
    #[error("{field}: {message}")]
    Invalid { code: ErrorCode, field: String, message: String },
    #[error("If-Match missing")]
    PreconditionRequired,
    #[error("stale If-Match")]
    PreconditionFailed,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such order for this member (another member's order included).
    #[error("order not found")]
    OrderNotFound,
    #[error("member not found")]
    MemberNotFound,
    /// An admin endpoint called without admin rights (the group, or the operator's scope).
    #[error("admin scope required")]
    AdminRequired,
    /// A member's endpoint called with the operator client's token, which names no member.
    #[error("member token required")]
    MemberRequired,
    #[error("invalid page token")]
    InvalidPageToken,
    /// A Stripe webhook whose signature is missing or wrong (the reason is only logged).
    #[error("invalid webhook signature: {0}")]
    InvalidWebhookSignature(&'static str),
    /// The Stripe customer is already linked to another member.
    #[error("Stripe customer already linked to another member")]
    CustomerAlreadyLinked,
    /// Stripe could not be reached (after retries).
    #[error("{0}")]
    StripeUnavailable(String),
    /// The member's budget for this kind of request is spent until the next window.
    #[error("rate limited for {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u32 },
}

impl From<crate::stripe::StripeFailure> for DomainError {
    fn from(failure: crate::stripe::StripeFailure) -> Self {
        DomainError::StripeUnavailable(failure.to_string())
    }
}

impl DomainError {
    pub fn invalid(code: ErrorCode, field: &str, message: &str) -> Self {
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
                ErrorCode::PreconditionRequired,
                "send If-Match with the ETag of the profile you read",
            ),
            DomainError::PreconditionFailed | DomainError::Store(StoreError::ConditionFailed) => {
                ApiError::new(
                    ErrorStatusCode::PRECONDITION_FAILED,
                    ErrorCode::PreconditionFailed,
                    "the profile changed since you read it; read it again and retry",
                )
            }
            DomainError::Store(StoreError::Unavailable(why)) => {
                warn!(log, "store unavailable"; "error" => why);
                unavailable()
            }
            DomainError::OrderNotFound => ApiError::new(
                ErrorStatusCode::NOT_FOUND,
                ErrorCode::OrderNotFound,
                "no such order for this member",
            ),
            DomainError::MemberNotFound => ApiError::new(
                ErrorStatusCode::NOT_FOUND,
                ErrorCode::MemberNotFound,
                "no member with this id has a profile",
            ),
            DomainError::AdminRequired => ApiError::new(
                ErrorStatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this operation needs an admin: a member of the admin group or the operator client",
            ),
            DomainError::MemberRequired => ApiError::new(
                ErrorStatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this operation needs a member's token; the operator client is not a member",
            ),
            DomainError::InvalidPageToken => ApiError::new(
                ErrorStatusCode::BAD_REQUEST,
                ErrorCode::InvalidPageToken,
                "page_token is not valid for this member and listing",
            )
            .with_field("page_token"),
            DomainError::InvalidWebhookSignature(why) => {
                debug!(log, "webhook rejected"; "reason" => why);
                ApiError::new(
                    ErrorStatusCode::BAD_REQUEST,
                    ErrorCode::InvalidSignature,
                    "missing or invalid Stripe-Signature",
                )
                .with_field("Stripe-Signature")
            }
            DomainError::CustomerAlreadyLinked => ApiError::new(
                ErrorStatusCode::CONFLICT,
                ErrorCode::CustomerAlreadyLinked,
                "the Stripe customer belongs to another member",
            ),
            DomainError::StripeUnavailable(why) => {
                warn!(log, "Stripe unavailable"; "error" => why);
                unavailable()
            }
            DomainError::RateLimited { retry_after_seconds } => {
                let mut error = ApiError::new(
                    ErrorStatusCode::from_u16(429).expect("429 is a client error"),
                    ErrorCode::RateLimited,
                    format!("too many requests of this kind; retry in {retry_after_seconds} s"),
                );
                error.retry_after_seconds = Some(retry_after_seconds);
                error
            }
            // A request the domain should have split (too large) is a bug like the rest.
            DomainError::Store(error @ (StoreError::Internal(_) | StoreError::TooLarge)) => {
                error!(log, "store error"; "error" => error.to_string());
                ApiError::new(
                    ErrorStatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::InternalError,
                    "internal error",
                )
            }
        }
    }
}

/// The one body every authentication failure gets, whatever the reason.
pub fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorStatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "missing or invalid bearer token",
    )
}

fn unavailable() -> ApiError {
    let mut error = ApiError::new(
        ErrorStatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable,
        "temporarily unavailable; retry shortly",
    );
    error.retry_after_seconds = Some(RETRY_AFTER_SECS);
    error
}
