//! Bench baselines, logging like the real server:
//! - `GET /healthz`: a bare Dropshot endpoint returning a fixed JSON body of a profile's size;
//! - `GET /store-read` (when `DASHBOARD_DYNAMODB_ENDPOINT` is set): the same plus one
//!   consistent `GetItem` of a profile through the server's own DynamoDB client, and nothing
//!   else (no auth, no domain). It is the floor of any endpoint that reads the store per request.
//!
//! `cargo xtask bench` compares the real endpoints against both.

use dashboard_server::storage::Store;
use dropshot::{endpoint, ApiDescription, HttpError, HttpResponseOk, RequestContext};

#[endpoint { method = GET, path = "/healthz" }]
async fn fixed(
    _rqctx: RequestContext<Option<Store>>,
) -> Result<HttpResponseOk<serde_json::Value>, HttpError> {
    Ok(HttpResponseOk(serde_json::json!({
        "userId": "bench-member-00",
        "email": "member@example.com",
        "displayName": "Bench Member",
        "shippingAddress": null,
        "preferredWallet": null,
        "avatarUrl": null,
        "dashboardSettings": {"theme": "system", "emailNotifications": true, "ordersPageSize": 20, "locale": "en-US"},
        "stripeCustomerId": null,
        "totalOrders": 0,
        "createdAt": "2026-11-28T00:00:00Z",
        "updatedAt": "2026-11-28T00:00:00Z"
    })))
}

#[endpoint { method = GET, path = "/store-read" }]
async fn store_read(
    rqctx: RequestContext<Option<Store>>,
) -> Result<HttpResponseOk<serde_json::Value>, HttpError> {
    let store =
        rqctx.context().as_ref().ok_or_else(|| HttpError::for_not_found(None, "".into()))?;
    let item = store
        .get_profile("bench-member-00")
        .await
        .map_err(|e| HttpError::for_unavail(None, e.to_string()))?
        .ok_or_else(|| HttpError::for_not_found(None, "no profile".into()))?;
    serde_json::to_value(item)
        .map(HttpResponseOk)
        .map_err(|e| HttpError::for_internal_error(e.to_string()))
}

// The server's allocator, so that the floor differs from the server only in what it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let bind = std::env::var("DASHBOARD_BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let format = match std::env::var("DASHBOARD_LOG_FORMAT").as_deref() {
        Ok("pretty") => dashboard_server::logging::LogFormat::Pretty,
        _ => dashboard_server::logging::LogFormat::Json,
    };
    let level = std::env::var("DASHBOARD_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let log = dashboard_server::logging::logger(format, &level);
    let store = match std::env::var("DASHBOARD_DYNAMODB_ENDPOINT") {
        Ok(endpoint) => {
            let prefix = std::env::var("DASHBOARD_TABLE_PREFIX").unwrap_or_default();
            Some(Store::connect("local", Some(&endpoint), &prefix).await)
        }
        Err(_) => None,
    };
    let mut api = ApiDescription::new();
    api.register(fixed).unwrap();
    api.register(store_read).unwrap();
    let config =
        dropshot::ConfigDropshot { bind_address: bind.parse().unwrap(), ..Default::default() };
    let server = dropshot::ServerBuilder::new(api, store, log)
        .config(config)
        .start()
        .expect("server starts");
    server.await.unwrap();
}
