//! The HTTP face of the simulator: Stripe's URL shapes, list envelopes, errors and `expand[]`.

use crate::{Collection, State};
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

mod account;
mod customers;
mod events;

#[derive(Clone)]
struct App {
    state: Arc<Mutex<State>>,
    secret_key: String,
}

pub(crate) fn router(state: Arc<Mutex<State>>, secret_key: String) -> Router {
    Router::new()
        .route("/v1/account", get(account::get_account))
        .route("/v1/customers", get(customers::list_customers))
        .route("/v1/customers/{id}", get(get_customer))
        .route("/v1/payment_intents", get(list_payment_intents))
        .route("/v1/payment_intents/{id}", get(get_payment_intent))
        .route("/v1/charges", get(list_charges))
        .route("/v1/charges/{id}", get(get_charge))
        .route("/v1/refunds", get(list_refunds))
        .route("/v1/refunds/{id}", get(get_refund))
        .route("/v1/disputes", get(list_disputes))
        .route("/v1/disputes/{id}", get(get_dispute))
        .route("/v1/checkout/sessions", get(list_sessions))
        .route("/v1/checkout/sessions/{id}", get(get_session))
        .route("/v1/checkout/sessions/{id}/line_items", get(list_line_items))
        .route("/v1/events", get(events::list_events))
        .route("/v1/events/{id}", get(get_event))
        .with_state(App { state, secret_key })
}

fn stripe_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

fn missing(id: &str) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such object: '{id}'"),
    )
}

/// Query pairs in order, keeping repeated keys such as `expand[]`.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Self {
        let raw = raw.unwrap_or_default();
        Params(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn expand(&self) -> Vec<String> {
        self.0
            .iter()
            // Clients send `expand[]=…`, `expand[0]=…` or `expand=…`.
            .filter(|(k, _)| k == "expand" || k.starts_with("expand["))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Auth, request counting and injected faults, shared by every route.
async fn admit(app: &App, headers: &HeaderMap, route: &str) -> Result<(), Response> {
    let wanted = format!("Bearer {}", app.secret_key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(wanted.as_str()) {
        return Err(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            "Invalid API Key provided",
        ));
    }
    let (latency, fault) = {
        let mut state = app.state.lock().unwrap();
        *state.requests.entry(route.to_string()).or_default() += 1;
        *state.per_second.entry(chrono::Utc::now().timestamp()).or_default() += 1;
        let faults = &mut state.faults;
        let fault = if faults.rate_limited > 0 {
            faults.rate_limited -= 1;
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if faults.server_errors > 0 {
            faults.server_errors -= 1;
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        } else {
            None
        };
        (faults.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(StatusCode::TOO_MANY_REQUESTS) => {
            let mut response = stripe_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some("rate_limit"),
                "Too many requests hit the API too quickly.",
            );
            response.headers_mut().insert("retry-after", "1".parse().unwrap());
            response.headers_mut().insert("stripe-should-retry", "true".parse().unwrap());
            Err(response)
        }
        Some(_) => {
            let mut response = stripe_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                None,
                "An unknown error occurred",
            );
            response.headers_mut().insert("stripe-should-retry", "true".parse().unwrap());
            Err(response)
        }
        None => Ok(()),
    }
}

/// Replaces ids with objects along `path` (e.g. `latest_charge.refunds`).
fn expand(state: &State, object: &mut Value, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let kind = object["object"].as_str().unwrap_or_default().to_string();
    let id = object["id"].as_str().unwrap_or_default().to_string();
    match (kind.as_str(), head) {
        ("payment_intent", "latest_charge") | ("refund", "charge") | ("dispute", "charge") => {
            if let Some(charge) = object[head].as_str().and_then(|c| state.charges.get(c)) {
                object[head] = charge.clone();
            }
        }
        ("charge", "refunds") => {
            let refunds: Vec<Value> = state
                .indexes
                .matching("refunds", &state.refunds, "charge", &id)
                .into_iter()
                .cloned()
                .collect();
            object["refunds"] = json!({
                "object": "list", "data": refunds, "has_more": false,
                "url": format!("/v1/charges/{id}/refunds"),
            });
        }
        ("checkout.session", "line_items") => {
            let lines = state.line_items.get(&id).cloned().unwrap_or_default();
            object["line_items"] = json!({
                "object": "list", "data": lines, "has_more": false,
                "url": format!("/v1/checkout/sessions/{id}/line_items"),
            });
        }
        _ => {}
    }
    if let Some(rest) = rest {
        if object[head].is_object() {
            let mut inner = object[head].take();
            expand(state, &mut inner, rest);
            object[head] = inner;
        }
    }
}

/// A Stripe list: filters, newest first, `starting_after`, `limit`, `expand[]` on `data.*`.
/// `name` identifies the collection to the index of `filters` (a list filtered by one of them
/// reads only the matching objects, not the whole collection).
fn list(
    state: &State,
    (name, collection): (&'static str, &Collection),
    params: &Params,
    url: &str,
    filters: &[&'static str],
) -> Response {
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "limit must be an integer from 1 to 100",
            )
        }
    };
    let created_gt = params.get("created[gt]").and_then(|v| v.parse::<i64>().ok());
    let indexed = filters.iter().find_map(|f| Some((*f, params.get(f)?)));
    let candidates = match indexed {
        Some((field, want)) => state.indexes.matching(name, collection, field, want),
        None => collection.newest_first(),
    };
    let mut items: Vec<&Value> = candidates
        .into_iter()
        .filter(|o| filters.iter().all(|f| params.get(f).is_none_or(|want| o[*f] == want)))
        .filter(|o| created_gt.is_none_or(|gt| o["created"].as_i64().unwrap_or(0) > gt))
        .collect();
    if let Some(after) = params.get("starting_after") {
        match items.iter().position(|o| o["id"] == after) {
            Some(i) => items.drain(..=i).for_each(drop),
            None => return missing(after),
        }
    }
    let has_more = items.len() > limit;
    let expansions: Vec<String> = params
        .expand()
        .into_iter()
        .filter_map(|e| e.strip_prefix("data.").map(str::to_string))
        .collect();
    let data: Vec<Value> = items
        .into_iter()
        .take(limit)
        .map(|o| {
            let mut o = o.clone();
            for path in &expansions {
                expand(state, &mut o, path);
            }
            o
        })
        .collect();
    Json(json!({ "object": "list", "data": data, "has_more": has_more, "url": url }))
        .into_response()
}

fn one(state: &State, collection: &Collection, id: &str, params: &Params) -> Response {
    match collection.get(id) {
        Some(object) => {
            let mut object = object.clone();
            for path in params.expand() {
                expand(state, &mut object, &path);
            }
            Json(object).into_response()
        }
        None => missing(id),
    }
}

macro_rules! list_route {
    ($name:ident, $field:ident, $url:expr, [$($filter:expr),*]) => {
        async fn $name(
            AxumState(app): AxumState<App>,
            headers: HeaderMap,
            RawQuery(query): RawQuery,
        ) -> Response {
            if let Err(response) = admit(&app, &headers, $url).await {
                return response;
            }
            let state = app.state.lock().unwrap();
            let collection = (stringify!($field), &state.$field);
            list(&state, collection, &Params::parse(query), $url, &[$($filter),*])
        }
    };
}

macro_rules! get_route {
    ($name:ident, $field:ident, $url:expr) => {
        async fn $name(
            AxumState(app): AxumState<App>,
            headers: HeaderMap,
            Path(id): Path<String>,
            RawQuery(query): RawQuery,
        ) -> Response {
            if let Err(response) = admit(&app, &headers, $url).await {
                return response;
            }
            let state = app.state.lock().unwrap();
            one(&state, &state.$field, &id, &Params::parse(query))
        }
    };
}

list_route!(list_payment_intents, payment_intents, "/v1/payment_intents", ["customer"]);
list_route!(list_charges, charges, "/v1/charges", ["customer", "payment_intent"]);
list_route!(list_refunds, refunds, "/v1/refunds", ["charge", "payment_intent"]);
list_route!(list_disputes, disputes, "/v1/disputes", ["charge", "payment_intent"]);
list_route!(list_sessions, sessions, "/v1/checkout/sessions", ["customer", "payment_intent"]);
get_route!(get_customer, customers, "/v1/customers/{id}");
get_route!(get_payment_intent, payment_intents, "/v1/payment_intents/{id}");
get_route!(get_charge, charges, "/v1/charges/{id}");
get_route!(get_refund, refunds, "/v1/refunds/{id}");
get_route!(get_dispute, disputes, "/v1/disputes/{id}");
get_route!(get_session, sessions, "/v1/checkout/sessions/{id}");
get_route!(get_event, events, "/v1/events/{id}");

async fn list_line_items(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let url = "/v1/checkout/sessions/{id}/line_items";
    if let Err(response) = admit(&app, &headers, url).await {
        return response;
    }
    let state = app.state.lock().unwrap();
    let Some(lines) = state.line_items.get(&id) else { return missing(&id) };
    let mut collection = Collection::default();
    for line in lines.iter().rev() {
        collection.insert(line.clone());
    }
    list(
        &state,
        ("line_items", &collection),
        &Params::parse(query),
        &format!("/v1/checkout/sessions/{id}/line_items"),
        &[],
    )
}
