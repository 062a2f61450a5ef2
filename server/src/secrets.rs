//! Secrets from AWS Secrets Manager: one secret (by ARN) holding the Stripe keys and the page
//! token key as JSON, read once at start and never written to the environment or the logs.

use aws_sdk_secretsmanager::config::BehaviorVersion;
use serde::Deserialize;

/// The secret's JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secrets {
    pub stripe_secret_key: String,
    pub stripe_webhook_secret: String,
    pub cursor_key: String,
}

/// Reads the secret with the default AWS configuration (region, credentials, and endpoint
/// overrides such as `AWS_ENDPOINT_URL_SECRETS_MANAGER`). Errors are one line, without values.
pub async fn load(arn: &str) -> Result<Secrets, String> {
    let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_secretsmanager::Client::new(&shared);
    let output = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        format!("reading secret {arn}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
    })?;
    let text = output.secret_string().ok_or_else(|| format!("secret {arn} has no string value"))?;
    serde_json::from_str(text).map_err(|e| {
        format!(
            "secret {arn} must be JSON with stripeSecretKey, stripeWebhookSecret and cursorKey \
             (line {}, column {}: {})",
            e.line(),
            e.column(),
            e.classify_name()
        )
    })
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "missing, unknown or mistyped field",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}
