//! [`ApiError`], the body of every error response, and its conversion from Dropshot's own
//! errors.

use dropshot::{ErrorStatusCode, HttpError, HttpResponseError};
use schemars::JsonSchema;
use serde::Serialize;

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
