//! Bench baseline: a bare Dropshot server with one endpoint returning a fixed JSON body of the
//! size of a profile, logging like the real server. `cargo xtask bench` compares against it.

use dropshot::{endpoint, ApiDescription, HttpError, HttpResponseOk, RequestContext};

#[endpoint { method = GET, path = "/healthz" }]
async fn fixed(_rqctx: RequestContext<()>) -> Result<HttpResponseOk<serde_json::Value>, HttpError> {
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

#[tokio::main]
async fn main() {
    let bind = std::env::var("DASHBOARD_BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let format = match std::env::var("DASHBOARD_LOG_FORMAT").as_deref() {
        Ok("pretty") => dashboard_server::config::LogFormat::Pretty,
        _ => dashboard_server::config::LogFormat::Json,
    };
    let level = std::env::var("DASHBOARD_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let log = dashboard_server::logging::logger(format, &level);
    let mut api = ApiDescription::new();
    api.register(fixed).unwrap();
    let config =
        dropshot::ConfigDropshot { bind_address: bind.parse().unwrap(), ..Default::default() };
    let server =
        dropshot::ServerBuilder::new(api, (), log).config(config).start().expect("server starts");
    server.await.unwrap();
}
