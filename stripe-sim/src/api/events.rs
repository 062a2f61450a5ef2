//! `GET /v1/events` as Stripe serves it (https://docs.stripe.com/api/events/list): newest first,
//! `created` as an exact value or a range (`created[gt|gte|lt|lte]`), `type` (one name, or a
//! group with `*`) or `types[]` (up to 20 exact names, not both), `limit` 1 to 100 (default 10),
//! and the cursors `starting_after` (older than the object) and `ending_before` (newer than it,
//! still newest first; `has_more` then says whether even newer ones exist), as described under
//! https://docs.stripe.com/api/pagination. Served from the events the lifecycle steps recorded.

use super::{admit, missing, stripe_error, App, Params};
use axum::extract::{RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

const URL: &str = "/v1/events";

/// Stripe's cap on `types[]` (the parameter's reference text: "an array of up to 20 strings").
const MAX_TYPES: usize = 20;

fn invalid(code: &str, message: &str) -> Response {
    stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some(code), message)
}

/// Every value of an array parameter, sent as `key[]=…`, `key[0]=…` or `key=…`.
fn array(params: &Params, key: &str) -> Vec<String> {
    let indexed = format!("{key}[");
    params
        .0
        .iter()
        .filter(|(k, _)| {
            k == key
                || k.strip_prefix(&indexed).and_then(|rest| rest.strip_suffix(']')).is_some_and(
                    |index| index.is_empty() || index.chars().all(|c| c.is_ascii_digit()),
                )
        })
        .map(|(_, v)| v.clone())
        .collect()
}

/// The `created` filter: `created=<ts>` or any of `created[gt|gte|lt|lte]=<ts>`.
struct Created {
    bounds: Vec<(&'static str, i64)>,
}

impl Created {
    /// The bounds, or the invalid value.
    fn parse(params: &Params) -> Result<Self, String> {
        let mut bounds = Vec::new();
        for (key, op) in [
            ("created", "eq"),
            ("created[gt]", "gt"),
            ("created[gte]", "gte"),
            ("created[lt]", "lt"),
            ("created[lte]", "lte"),
        ] {
            if let Some(value) = params.get(key) {
                let Ok(ts) = value.parse::<i64>() else { return Err(value.to_string()) };
                bounds.push((op, ts));
            }
        }
        Ok(Created { bounds })
    }

    /// True when `created` is below a lower bound: so is every older event.
    fn below(&self, created: i64) -> bool {
        self.bounds.iter().any(|&(op, ts)| match op {
            "eq" | "gte" => created < ts,
            "gt" => created <= ts,
            _ => false,
        })
    }

    /// True when `created` is above an upper bound: so is every newer event.
    fn above(&self, created: i64) -> bool {
        self.bounds.iter().any(|&(op, ts)| match op {
            "eq" | "lte" => created > ts,
            "lt" => created >= ts,
            _ => false,
        })
    }

    fn admits(&self, created: i64) -> bool {
        self.bounds.iter().all(|&(op, ts)| match op {
            "eq" => created == ts,
            "gt" => created > ts,
            "gte" => created >= ts,
            "lt" => created < ts,
            _ => created <= ts,
        })
    }
}

/// `type` matches exactly, or as a group when it ends in `*` (`charge.*`).
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => kind == pattern,
    }
}

pub(super) async fn list_events(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = admit(&app, &headers, URL).await {
        return response;
    }
    let params = Params::parse(query);
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return invalid("parameter_invalid_integer", "limit must be an integer from 1 to 100"),
    };
    let created = match Created::parse(&params) {
        Ok(created) => created,
        Err(value) => {
            return invalid("parameter_invalid_integer", &format!("Invalid integer: {value}"))
        }
    };
    let types = array(&params, "types");
    let single = params.get("type");
    if single.is_some() && !types.is_empty() {
        return invalid("parameter_invalid", "You may pass either type or types, but not both.");
    }
    if types.len() > MAX_TYPES {
        return invalid("parameter_invalid", "types accepts at most 20 event types.");
    }
    if params.get("starting_after").is_some() && params.get("ending_before").is_some() {
        return invalid(
            "parameter_invalid",
            "You may only specify one of these parameters: ending_before, starting_after.",
        );
    }
    let state = app.state.lock().unwrap();
    // The events oldest first by (`created`, insertion): newest first read backwards. A cursor
    // is resolved among all events, not only those the filters keep: its place in that order
    // is where the page starts or ends.
    let ordered = state.indexes.events(&state.events);
    let all = &ordered.oldest_first;
    let event = |i: usize| &state.events.objects[&state.events.order[all[i]]];
    let keeps = |e: &Value| {
        let kind = e["type"].as_str().unwrap_or_default();
        created.admits(e["created"].as_i64().unwrap_or(0))
            && single.is_none_or(|pattern| type_matches(pattern, kind))
            && (types.is_empty() || types.iter().any(|t| t == kind))
    };
    // Up to `limit + 1` kept events, walking from the cursor; the walk stops early once
    // `created` has passed the range, as every later event is further out of it.
    let mut items: Vec<&Value> = Vec::new();
    if let Some(before) = params.get("ending_before") {
        let Some(at) = ordered.rank(&state.events, before) else { return missing(before) };
        // The `limit` events just newer than the cursor, still newest first.
        for i in at + 1..all.len() {
            let e = event(i);
            if created.above(e["created"].as_i64().unwrap_or(0)) {
                break;
            }
            if keeps(e) {
                items.push(e);
                if items.len() > limit {
                    break;
                }
            }
        }
        let has_more = items.len() > limit;
        items.truncate(limit);
        items.reverse();
        return page(items, has_more);
    }
    let end = match params.get("starting_after") {
        Some(after) => match ordered.rank(&state.events, after) {
            Some(at) => at,
            None => return missing(after),
        },
        None => all.len(),
    };
    for i in (0..end).rev() {
        let e = event(i);
        if created.below(e["created"].as_i64().unwrap_or(0)) {
            break;
        }
        if keeps(e) {
            items.push(e);
            if items.len() > limit {
                break;
            }
        }
    }
    let has_more = items.len() > limit;
    items.truncate(limit);
    page(items, has_more)
}

fn page(items: Vec<&Value>, has_more: bool) -> Response {
    let data: Vec<Value> = items.into_iter().cloned().collect();
    Json(json!({ "object": "list", "data": data, "has_more": has_more, "url": URL }))
        .into_response()
}

#[cfg(test)]
mod tests {
    use crate::{ItemSpec, StripeSim};
    use serde_json::Value;

    async fn get(sim: &StripeSim, query: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/events?{query}", sim.url()))
            .bearer_auth(sim.secret_key())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    fn ids(page: &Value) -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().into()).collect()
    }

    /// Stripe's shapes: newest first, `created` ranges, `types[]` (indexed as async-stripe
    /// sends it) and `type` wildcards, and both cursors, `ending_before` walking towards the
    /// newest while each page stays newest first.
    #[tokio::test]
    async fn the_events_list_filters_and_pages_both_ways_as_stripe_does() {
        let sim = StripeSim::start().await;
        sim.set_clock(1_000);
        let customer = sim.create_customer("list@example.com");
        for _ in 0..3 {
            sim.advance(10);
            let pi =
                sim.create_payment_intent(&customer, 500, "usd", &[ItemSpec::new("A", 1, 500)]);
            sim.succeed(&pi);
        }
        let all: Vec<Value> = sim.events().into_iter().rev().collect();
        let all_ids: Vec<String> = all.iter().map(|e| e["id"].as_str().unwrap().into()).collect();
        let (_, page) = get(&sim, "limit=100").await;
        assert_eq!(ids(&page), all_ids, "newest first");

        let (_, page) = get(&sim, "limit=100&created[gte]=1020&created[lt]=1030").await;
        assert!(page["data"].as_array().unwrap().iter().all(|e| e["created"] == 1020));
        assert_eq!(ids(&page).len(), 3, "one intent's three events");

        let (_, page) =
            get(&sim, "limit=100&types[0]=charge.succeeded&types[1]=customer.created").await;
        assert_eq!(ids(&page).len(), 4);
        let (_, page) = get(&sim, "limit=100&type=payment_intent.*").await;
        assert_eq!(ids(&page).len(), 6);
        let (status, _) = get(&sim, "type=charge.succeeded&types[]=charge.failed").await;
        assert_eq!(status, 400, "type and types together");
        let (status, _) = get(&sim, "limit=101").await;
        assert_eq!(status, 400);

        // Forward from the oldest: the two just newer than it, still newest first.
        let oldest = all_ids.last().unwrap();
        let (_, page) = get(&sim, &format!("limit=2&ending_before={oldest}")).await;
        let n = all_ids.len();
        assert_eq!(ids(&page), all_ids[n - 3..n - 1].to_vec());
        assert_eq!(page["has_more"], true);
        let (_, page) = get(&sim, &format!("limit=100&ending_before={}", all_ids[1])).await;
        assert_eq!((ids(&page), &page["has_more"]), (all_ids[..1].to_vec(), &Value::Bool(false)));
        let (_, page) = get(&sim, &format!("limit=2&starting_after={}", all_ids[0])).await;
        assert_eq!(ids(&page), all_ids[1..3].to_vec());
        let (status, _) = get(&sim, "ending_before=evt_unknown").await;
        assert_eq!(status, 404);
    }
}
