//! The AWS SDK's shared configuration (region, credentials chain, endpoint overrides such as
//! `AWS_ENDPOINT_URL_SQS`, all from the environment), loaded once per process and shared by
//! every AWS client: DynamoDB, SQS and Secrets Manager. Loading it reads the environment and
//! builds the credentials chain, which a Lambda cold start should do once, not per client.

use aws_config::{BehaviorVersion, SdkConfig};
use tokio::sync::OnceCell;

static SHARED: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process's shared AWS configuration; the first call loads it.
pub async fn shared() -> &'static SdkConfig {
    SHARED.get_or_init(|| aws_config::defaults(BehaviorVersion::latest()).load()).await
}
