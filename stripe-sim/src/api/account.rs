//! `GET /v1/account` (https://docs.stripe.com/api/accounts/retrieve): the account of the key,
//! the cheapest read a client can make to learn that its key works (`dashboard-server doctor`
//! uses it). The object is Stripe's own fixture; a wrong key gets the usual 401.

use super::{admit, App};
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use std::sync::OnceLock;

const URL: &str = "/v1/account";

/// The `account` object of Stripe's fixtures (the file `objects.rs` builds every object from).
fn account() -> Value {
    static ACCOUNT: OnceLock<Value> = OnceLock::new();
    ACCOUNT
        .get_or_init(|| {
            let all: Value = serde_json::from_str(include_str!("../../fixtures/fixtures3.json"))
                .unwrap_or_default();
            all["resources"]["account"].clone()
        })
        .clone()
}

pub(super) async fn get_account(AxumState(app): AxumState<App>, headers: HeaderMap) -> Response {
    if let Err(response) = admit(&app, &headers, URL).await {
        return response;
    }
    Json(account()).into_response()
}
