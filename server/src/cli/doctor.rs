//! `dashboard-server doctor`: checks a configuration against its environment without serving.
//! One line per check (`ok` or `FAIL`, and what was seen); the exit code is 1 when any check
//! fails, 2 when the configuration itself does not resolve. No secret is ever printed.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    KeySchemaElement, KeyType, Projection, ProjectionType, TimeToLiveStatus,
};
use clap::Args;
use dashboard_server::auth::JwksSource;
use dashboard_server::config::{Config, ServerArgs, StoreConfig, StripeSetting};
use dashboard_server::storage::schema::{self, IndexProjection, IndexSpec, Key, TableSpec};
use dashboard_server::storage::Store;
use secrecy::ExposeSecret;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
#[command(after_help = "Example:\n  \
    DASHBOARD_DYNAMODB_ENDPOINT=http://127.0.0.1:8000 STRIPE_SECRET_KEY=sk_test_… \\\n  \
    STRIPE_WEBHOOK_SECRET=whsec_… DASHBOARD_JWKS_URL=https://…/jwks.json … dashboard-server doctor")]
pub struct DoctorArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// How long a JWKS or Stripe request may take before it counts as unreachable.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The check lines printed so far, and whether any failed.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, ok: bool, check: &str, detail: impl std::fmt::Display) {
        self.failed |= !ok;
        println!("{} {check}: {detail}", if ok { "ok  " } else { "FAIL" });
    }
}

pub async fn run(args: DoctorArgs) -> ExitCode {
    let data_dir = args.server.data_dir.clone();
    let mut report = Report::default();
    let config = match args.server.load_secrets().await.and_then(ServerArgs::resolve) {
        Ok(config) => config,
        Err(error) => {
            report.line(false, "config", error);
            return ExitCode::from(2);
        }
    };
    report.line(true, "config", "resolved");
    check_store(&config, &mut report).await;
    check_auth(&config, &data_dir, &mut report).await;
    check_stripe(&config, &mut report).await;
    if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn check_store(config: &Config, report: &mut Report) {
    let prefix = &config.table_prefix;
    let (store, at) = match &config.store {
        StoreConfig::Embedded { data_dir } => {
            let at = data_dir.as_ref().map_or("memory".into(), |d| d.display().to_string());
            let detail = format!("embedded store ({at}); its tables are created on start");
            return report.line(true, "store", detail);
        }
        StoreConfig::Endpoint { url, region } => {
            (Store::connect(region, Some(url), prefix).await, url.clone())
        }
        StoreConfig::Aws { region } => {
            (Store::connect(region, None, prefix).await, format!("DynamoDB in {region}"))
        }
    };
    for spec in schema::tables() {
        let name = format!("{prefix}{}", spec.base_name);
        let check = format!("table {name}");
        let described = store.client.describe_table().table_name(&name).send().await;
        let table = match described {
            Ok(output) => output.table,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                report.line(false, &check, "missing");
                continue;
            }
            Err(error) if error.as_service_error().is_none() => {
                // Not an answer from the store: nothing further can be checked.
                let detail = format!("{at} unreachable: {}", DisplayErrorContext(&error));
                return report.line(false, "store", detail);
            }
            Err(error) => {
                report.line(false, &check, DisplayErrorContext(&error));
                continue;
            }
        };
        let Some(table) = table else {
            report.line(false, &check, "DescribeTable returned no table");
            continue;
        };
        let mut problems = Vec::new();
        if !same_keys(table.key_schema(), &spec.partition, spec.sort.as_ref()) {
            problems.push(format!("key schema is not {}", keys_text(&spec.partition, spec.sort)));
        }
        let global: Vec<_> = table
            .global_secondary_indexes()
            .iter()
            .map(|i| (i.index_name().unwrap_or_default(), i.key_schema(), i.projection()))
            .collect();
        let local: Vec<_> = table
            .local_secondary_indexes()
            .iter()
            .map(|i| (i.index_name().unwrap_or_default(), i.key_schema(), i.projection()))
            .collect();
        problems.extend(index_problems("global", &spec.global_indexes, &global));
        problems.extend(index_problems("local", &spec.local_indexes, &local));
        if let Some(attribute) = spec.ttl_attribute {
            problems.extend(ttl_problem(&store, &name, attribute).await);
        }
        if problems.is_empty() {
            report.line(true, &check, summary(&spec));
        } else {
            report.line(false, &check, problems.join("; "));
        }
    }
}

fn same_keys(actual: &[KeySchemaElement], partition: &Key, sort: Option<&Key>) -> bool {
    let named = |kind: KeyType| {
        actual.iter().find(|k| *k.key_type() == kind).map(|k| k.attribute_name().to_string())
    };
    actual.len() == 1 + usize::from(sort.is_some())
        && named(KeyType::Hash).as_deref() == Some(partition.name)
        && named(KeyType::Range).as_deref() == sort.map(|s| s.name)
}

fn keys_text(partition: &Key, sort: Option<Key>) -> String {
    match sort {
        Some(sort) => format!("{}/{}", partition.name, sort.name),
        None => partition.name.to_string(),
    }
}

fn index_problems(
    kind: &str,
    expected: &[IndexSpec],
    actual: &[(&str, &[KeySchemaElement], Option<&Projection>)],
) -> Vec<String> {
    expected
        .iter()
        .filter_map(|index| {
            let found = actual.iter().find(|(name, _, _)| *name == index.name);
            match found {
                None => Some(format!("{kind} index {} missing", index.name)),
                Some((_, keys, _)) if !same_keys(keys, &index.partition, index.sort.as_ref()) => {
                    Some(format!(
                        "{kind} index {} key schema is not {}",
                        index.name,
                        keys_text(&index.partition, index.sort)
                    ))
                }
                Some((_, _, projection)) if !same_projection(*projection, index.projection) => {
                    Some(format!(
                        "{kind} index {} projects {}, not {:?}",
                        index.name,
                        projection.and_then(|p| p.projection_type()).map_or("?", |t| t.as_str()),
                        index.projection
                    ))
                }
                Some(_) => None,
            }
        })
        .collect()
}

fn same_projection(actual: Option<&Projection>, expected: IndexProjection) -> bool {
    let Some(actual) = actual else { return false };
    let mut held: Vec<&str> = actual.non_key_attributes().iter().map(String::as_str).collect();
    held.sort_unstable();
    match (actual.projection_type(), expected) {
        (Some(ProjectionType::KeysOnly), IndexProjection::KeysOnly) => true,
        (Some(ProjectionType::All), IndexProjection::All) => true,
        (Some(ProjectionType::Include), IndexProjection::Include(attributes)) => {
            let mut wanted = attributes.to_vec();
            wanted.sort_unstable();
            held == wanted
        }
        _ => false,
    }
}

async fn ttl_problem(store: &Store, table: &str, attribute: &str) -> Option<String> {
    let output = match store.client.describe_time_to_live().table_name(table).send().await {
        Ok(output) => output,
        Err(error) => return Some(format!("TTL unreadable: {}", DisplayErrorContext(&error))),
    };
    let description = output.time_to_live_description();
    let status = description.and_then(|d| d.time_to_live_status());
    let on = matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    let name = description.and_then(|d| d.attribute_name());
    if on && name == Some(attribute) {
        None
    } else {
        Some(format!("TTL on {attribute} is not enabled"))
    }
}

fn summary(spec: &TableSpec) -> String {
    let mut parts = vec![format!("key {}", keys_text(&spec.partition, spec.sort))];
    for index in spec.global_indexes.iter().chain(&spec.local_indexes) {
        parts.push(format!("index {}", index.name));
    }
    if let Some(attribute) = spec.ttl_attribute {
        parts.push(format!("TTL {attribute}"));
    }
    parts.join(", ")
}

async fn check_auth(config: &Config, data_dir: &std::path::Path, report: &mut Report) {
    let auth = &config.auth;
    if auth.dev_mode {
        let detail = format!("development HS256 secret in {}", data_dir.display());
        return report.line(true, "auth", detail);
    }
    if auth.hs256_secret.is_some() {
        report.line(true, "auth", "HS256 secret set");
    }
    let body = match &auth.jwks {
        None => return,
        Some(JwksSource::Url(url)) => fetch_jwks(url).await.map_err(|e| format!("{url}: {e}")),
        Some(JwksSource::File(path)) => {
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
        }
    };
    let source = match &auth.jwks {
        Some(JwksSource::Url(url)) => url.clone(),
        Some(JwksSource::File(path)) => path.display().to_string(),
        None => String::new(),
    };
    let result = body.and_then(|body| {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("{source}: not a JWKS: {e}"))?;
        let rs256 = set
            .keys
            .iter()
            .filter(|key| {
                matches!(key.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_))
                    && key
                        .common
                        .key_algorithm
                        .is_none_or(|a| a == jsonwebtoken::jwk::KeyAlgorithm::RS256)
            })
            .count();
        match rs256 {
            0 => Err(format!("{source}: no RS256 key")),
            n => Ok(format!("{source}: {n} RS256 key(s)")),
        }
    });
    match result {
        Ok(detail) => report.line(true, "jwks", detail),
        Err(detail) => report.line(false, "jwks", detail),
    }
}

async fn fetch_jwks(url: &str) -> Result<Vec<u8>, String> {
    let client = http_client()?;
    let response = client.get(url).send().await.map_err(|e| format!("unreachable: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    response.bytes().await.map(|b| b.to_vec()).map_err(|e| format!("reading the body: {e}"))
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().map_err(|e| e.to_string())
}

async fn check_stripe(config: &Config, report: &mut Report) {
    let stripe = match &config.stripe {
        StripeSetting::Simulated => {
            report.line(true, "stripe", "in-process simulator (development default)");
            return report.line(true, "webhook secret", "the simulator's own");
        }
        StripeSetting::Live(stripe) => stripe,
    };
    let key = stripe.secret_key.expose_secret();
    // `sk_live`, `sk_test`, `rk_live`…: the kind of key, never any of the key itself.
    let kind: String = key.split('_').take(2).collect::<Vec<_>>().join("_");
    let kind = if ["sk_live", "sk_test", "rk_live", "rk_test"].contains(&kind.as_str()) {
        kind
    } else {
        "a key of unknown kind".into()
    };
    match retrieve_account(&stripe.api_base, key).await {
        Ok(account) => report.line(true, "stripe", format!("{kind} accepted (account {account})")),
        Err(error) => report.line(false, "stripe", format!("{kind}: {error}")),
    }
    let webhook = stripe.webhook_secret.expose_secret();
    if webhook.starts_with("whsec_") && webhook.len() > "whsec_".len() {
        report.line(true, "webhook secret", "has the whsec_ prefix");
    } else {
        report.line(
            false,
            "webhook secret",
            "does not start with whsec_ (Stripe's signing secrets do)",
        );
    }
}

/// One cheap read with the key: `GET /v1/account` (https://docs.stripe.com/api/accounts/retrieve).
async fn retrieve_account(api_base: &str, key: &str) -> Result<String, String> {
    let url = url::Url::parse(api_base)
        .and_then(|base| base.join("v1/account"))
        .map_err(|e| format!("STRIPE_API_BASE: {e}"))?;
    let response = http_client()?
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        let refused = status == reqwest::StatusCode::UNAUTHORIZED;
        return Err(if refused {
            "key refused (401)".into()
        } else {
            format!("answered {status}")
        });
    }
    let account: serde_json::Value =
        response.json().await.map_err(|e| format!("not an account: {}", e.without_url()))?;
    Ok(account["id"].as_str().unwrap_or("without id").to_string())
}
