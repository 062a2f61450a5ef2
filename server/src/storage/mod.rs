//! Storage over DynamoDB (`aws-sdk-dynamodb`): one implementation, pointed at AWS, at any
//! DynamoDB-API endpoint, or at the embedded emulator. One module per table.

/// Declares stored record types (defined before the table modules, which use it). Stored records are not wire types: each tolerates
/// attributes it does not know (a field the API has since dropped) and defaults missing ones,
/// so every snapshot written before or after an API change still loads. `record_types!`
/// declares each record beside the wire type it converts to and from, field for field.
macro_rules! record_types {
    ($($(#[$doc:meta])* $record:ident <-> $wire:ident { $($field:ident: $ty:ty),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $record { $(pub $field: $ty),* }

        impl From<$wire> for $record {
            fn from(wire: $wire) -> Self {
                let $wire { $($field),* } = wire;
                $record { $($field),* }
            }
        }

        impl From<$record> for $wire {
            fn from(record: $record) -> Self {
                let $record { $($field),* } = record;
                $wire { $($field),* }
            }
        }
    )*};
}

pub(crate) use record_types;

pub mod checkpoint;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod events;
pub mod iam;
pub mod limits;
pub mod orders;
pub mod profiles;
pub mod rules;
pub mod schema;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
// Responses are small JSON documents under operation timeouts: stalled-stream detection (made
// for large downloads) only adds per-request timers.
use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig,
};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::time::Duration;

/// Storage failures, as the domain sees them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled, unreachable or timed out: worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A conditional write found a different version than expected.
    #[error("conditional write failed")]
    ConditionFailed,
    /// More than one request may hold (a transaction's 100 actions or 4 MB): send less.
    #[error("too large for one request")]
    TooLarge,
    /// Anything else: a bug or corrupt data.
    #[error("store error: {0}")]
    Internal(String),
}

/// Error codes DynamoDB uses for "try again later".
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
    // A write that met an ongoing transaction on its item
    // (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling).
    "TransactionConflictException",
    "TransactionInProgressException",
];

impl<E, R> From<SdkError<E, R>> for StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    fn from(error: SdkError<E, R>) -> Self {
        // A request the rules check refused (debug builds) is a bug, not an outage.
        if let Some(violation) = find_source::<rules::RuleViolation>(&error) {
            return StoreError::Internal(violation.to_string());
        }
        match &error {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                StoreError::Unavailable(format!("{error:?}"))
            }
            _ => match error.code() {
                Some("ConditionalCheckFailedException") => StoreError::ConditionFailed,
                Some("TransactionCanceledException")
                    if error.message().is_some_and(|m| m.contains("ConditionalCheckFailed")) =>
                {
                    StoreError::ConditionFailed
                }
                // Cancelled because another transaction or write held one of its items: the
                // reasons name it `TransactionConflict`, and trying again later is the cure
                // (same page as above).
                Some("TransactionCanceledException")
                    if error.message().is_some_and(|m| m.contains("TransactionConflict")) =>
                {
                    StoreError::Unavailable("transaction conflict".into())
                }
                Some(code) if RETRYABLE_CODES.contains(&code) => {
                    StoreError::Unavailable(code.to_string())
                }
                _ => StoreError::Internal(format!("{error:?}")),
            },
        }
    }
}

/// The first error of type `T` in `error`'s chain of sources.
fn find_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(error: serde_dynamo::Error) -> Self {
        StoreError::Internal(format!("item conversion: {error}"))
    }
}

/// An item from DynamoDB's JSON form (`{"name": {"S": "…"}}`, as the API and the console show
/// it): how stored-record fixtures are written.
pub fn item_from_json(
    item: &serde_json::Value,
) -> Result<std::collections::HashMap<String, AttributeValue>, StoreError> {
    let object =
        item.as_object().ok_or_else(|| StoreError::Internal("item is not an object".into()))?;
    object.iter().map(|(name, value)| Ok((name.clone(), value_from_json(value)?))).collect()
}

fn value_from_json(value: &serde_json::Value) -> Result<AttributeValue, StoreError> {
    let bad = || StoreError::Internal(format!("not a DynamoDB JSON value: {value}"));
    let (kind, inner) = value.as_object().and_then(|o| o.iter().next()).ok_or_else(bad)?;
    let strings = || -> Result<Vec<String>, StoreError> {
        inner
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|v| Ok(v.as_str().ok_or_else(bad)?.to_string()))
            .collect()
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str().ok_or_else(bad)?.to_string()),
        "N" => AttributeValue::N(inner.as_str().ok_or_else(bad)?.to_string()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(bad)?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(strings()?),
        "NS" => AttributeValue::Ns(strings()?),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(value_from_json)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(inner)?),
        _ => return Err(bad()),
    })
}

/// Table names after the configured prefix.
#[derive(Clone, Debug)]
pub struct TableNames {
    pub user_profiles: String,
    pub order_snapshots: String,
    pub stripe_events: String,
    pub stripe_customers: String,
}

impl TableNames {
    pub fn new(prefix: &str) -> Self {
        TableNames {
            user_profiles: format!("{prefix}{}", schema::USER_PROFILES),
            order_snapshots: format!("{prefix}{}", schema::ORDER_SNAPSHOTS),
            stripe_events: format!("{prefix}{}", schema::STRIPE_EVENTS),
            stripe_customers: format!("{prefix}{}", schema::STRIPE_CUSTOMERS),
        }
    }
}

/// `DASHBOARD_DYNAMODB_ATTEMPT_TIMEOUT_MS`'s default.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The DynamoDB client and table names; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub client: Client,
    pub tables: TableNames,
    /// Requests sent, by operation (debug builds, where the rules check counts them; always
    /// zero otherwise).
    pub calls: std::sync::Arc<rules::CallCounts>,
}

impl Store {
    /// Builds the SDK client for AWS (`endpoint` = None) or a DynamoDB-API endpoint. No network
    /// work happens here, so cold start stays cheap.
    pub async fn connect(region: &str, endpoint: Option<&str>, prefix: &str) -> Self {
        Self::connect_with_timeout(region, endpoint, prefix, DEFAULT_ATTEMPT_TIMEOUT).await
    }

    /// [`Self::connect`], with each request attempt limited to `attempt` (the request with
    /// its retries to 2.5 times that).
    pub async fn connect_with_timeout(
        region: &str,
        endpoint: Option<&str>,
        prefix: &str,
        attempt: Duration,
    ) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt.mul_f64(2.5))
            .build();
        let mut config = match endpoint {
            None => {
                // The process's one AWS configuration, with the configured region.
                aws_sdk_dynamodb::config::Builder::from(crate::aws::shared().await)
                    .region(Region::new(region.to_string()))
                    .timeout_config(timeouts)
                    .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                    .build()
            }
            // Emulators accept any credentials; static ones avoid probing the credential chain.
            Some(url) => {
                let mut builder = aws_sdk_dynamodb::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new(region.to_string()))
                    .endpoint_url(url)
                    .credentials_provider(Credentials::new("local", "local", None, None, "static"))
                    .timeout_config(timeouts)
                    .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
                // A plain-HTTP endpoint needs no TLS: skip loading the system's root
                // certificates, which is most of the start-up time otherwise.
                if url.starts_with("http://") {
                    builder =
                        builder.http_client(aws_smithy_http_client::Builder::new().build_http());
                }
                builder.build()
            }
        };
        // Debug builds (tests, the local default) refuse requests real DynamoDB would refuse,
        // whatever store they talk to.
        let calls = std::sync::Arc::<rules::CallCounts>::default();
        if cfg!(debug_assertions) {
            let rules = rules::RulesInterceptor { calls: calls.clone() };
            config = config.to_builder().interceptor(rules).build();
        }
        Store { client: Client::from_conf(config), tables: TableNames::new(prefix), calls }
    }

    /// Creates missing tables (local runs and tests; production tables come from `infra/`) and
    /// waits until each is ACTIVE: real DynamoDB creates tables asynchronously, and a table in
    /// CREATING refuses reads, writes and `UpdateTimeToLive` (`API_CreateTable.html`).
    pub async fn ensure_tables(&self, prefix: &str) -> Result<(), StoreError> {
        for spec in schema::tables() {
            let name = format!("{prefix}{}", spec.base_name);
            // One DescribeTable per table rather than ListTables, whose pages of 100 names
            // would need following on an account (or emulator) with many tables.
            let exists = match self.client.describe_table().table_name(&name).send().await {
                Ok(_) => true,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    false
                }
                Err(error) => return Err(error.into()),
            };
            if !exists {
                spec.create(&self.client, &name)
                    .await
                    .map_err(|e| StoreError::Internal(format!("creating {name}: {e:?}")))?;
            }
        }
        Ok(())
    }

    /// Deletes the tables under `prefix` (test clean-up; never called by the server).
    pub async fn delete_tables(&self, prefix: &str) -> Result<(), StoreError> {
        for spec in schema::tables() {
            let name = format!("{prefix}{}", spec.base_name);
            match self.client.delete_table().table_name(&name).send().await {
                Ok(_) => {}
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_smithy_types::body::SdkBody;

    fn response() -> HttpResponse {
        HttpResponse::new(400.try_into().unwrap(), SdkBody::empty())
    }

    /// A `TransactWriteItems` cancelled for `reasons`, as DynamoDB words it.
    fn cancelled(reasons: &str) -> StoreError {
        let message = format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons \
             [{reasons}]"
        );
        let meta =
            ErrorMetadata::builder().code("TransactionCanceledException").message(&message).build();
        let error = TransactionCanceledException::builder().message(&message).meta(meta).build();
        let error = TransactWriteItemsError::TransactionCanceledException(error);
        StoreError::from(SdkError::service_error(error, response()))
    }

    fn put_failed(code: &str) -> StoreError {
        let error = PutItemError::generic(ErrorMetadata::builder().code(code).build());
        StoreError::from(SdkError::service_error(error, response()))
    }

    /// A failed condition is the caller's to handle (read again, or a duplicate); a conflict
    /// with another transaction is worth retrying later (a 503, or a deferred webhook), never
    /// an internal error (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling).
    #[test]
    fn cancelled_transactions_and_conflicts_map_to_what_the_caller_can_do() {
        assert!(matches!(cancelled("ConditionalCheckFailed, None"), StoreError::ConditionFailed));
        assert!(matches!(cancelled("None, TransactionConflict"), StoreError::Unavailable(_)));
        assert!(matches!(cancelled("ValidationError"), StoreError::Internal(_)));
        for code in ["TransactionConflictException", "TransactionInProgressException"] {
            assert!(matches!(put_failed(code), StoreError::Unavailable(_)), "{code}");
        }
        assert!(matches!(
            put_failed("ConditionalCheckFailedException"),
            StoreError::ConditionFailed
        ));
        assert!(matches!(put_failed("ResourceNotFoundException"), StoreError::Internal(_)));
    }
}
