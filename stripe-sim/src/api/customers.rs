//! `GET /v1/customers` (https://docs.stripe.com/api/customers/list): newest first, with the
//! `email` filter the dashboard's first link by verified email uses. As at Stripe, `email` is an
//! exact, case-sensitive match on the stored address (`Ada@x.io` does not find `ada@x.io`).

use super::{admit, list, App, Params};
use axum::extract::{RawQuery, State as AxumState};
use axum::http::HeaderMap;
use axum::response::Response;

const URL: &str = "/v1/customers";

pub(super) async fn list_customers(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = admit(&app, &headers, URL).await {
        return response;
    }
    let state = app.state.lock().unwrap();
    let collection = ("customers", &state.customers);
    list(&state, collection, &Params::parse(query), URL, &["email"])
}
