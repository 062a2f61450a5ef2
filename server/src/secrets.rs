//! Secrets from AWS Secrets Manager: one secret (by ARN) holding the Stripe keys and the page
//! token key as JSON, read once at start and never written to the environment or the logs.

use secrecy::SecretString;
use serde::Deserialize;

/// The secret's JSON. `Debug` prints no value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secrets {
    pub stripe_secret_key: SecretString,
    pub stripe_webhook_secret: SecretString,
    pub cursor_key: SecretString,
}

/// Reads the secret with the default AWS configuration (region, credentials, and endpoint
/// overrides such as `AWS_ENDPOINT_URL_SECRETS_MANAGER`). Errors are one line, without values.
pub async fn load(arn: &str) -> Result<Secrets, String> {
    let client = aws_sdk_secretsmanager::Client::new(crate::aws::shared().await);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_manager_result_cannot_print_its_values() {
        let secrets: Secrets = serde_json::from_str(
            r#"{"stripeSecretKey":"sk_live_PRINTME1","stripeWebhookSecret":"whsec_PRINTME2",
                "cursorKey":"PRINTME3-0123456789abcdef0123456789"}"#,
        )
        .unwrap();
        let printed = format!("{secrets:?}");
        for value in ["PRINTME1", "PRINTME2", "PRINTME3"] {
            assert!(!printed.contains(value), "{value} in {printed}");
        }
    }
}
