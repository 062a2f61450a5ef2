//! HTTP handlers: authenticate, validate, call the domain, map errors. Nothing else; and the
//! context they share.

use crate::auth::Identity;
use crate::error::DomainError;
use crate::profiles;
use dashboard_api::{
    ApiError, DashboardApi, Health, IfMatchHeader, JsonBody, LinkStripeCustomer, MemberPath, Order,
    OrderPath, OrdersPage, OrdersQuery, Profile, ProfileHeaders, ProfilePatch, ProfileUpdate,
    ScheduledSyncReport, StripeSignatureHeader, SyncReport, SyncRequest, SyncStatus, WebhookAck,
};
use dropshot::{
    Header, HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext, UntypedBody,
};
use std::future::Future;

/// Shared state of every request.
pub struct ServerContext {
    pub store: crate::storage::Store,
    pub auth: crate::auth::Authenticator,
    pub orders: std::sync::Arc<crate::orders::OrderService>,
    /// Development default only: a token for the demo member (served on `/dev/token`).
    pub dev_token: Option<String>,
}

/// The implementation of the API trait (never constructed).
pub enum DashboardImpl {}

type ProfileResponse = HttpResponseHeaders<HttpResponseOk<Profile>, ProfileHeaders>;

fn profile_response(item: crate::storage::profiles::ProfileRecord) -> ProfileResponse {
    let etag = profiles::etag(&item);
    HttpResponseHeaders::new(HttpResponseOk(profiles::to_api(item)), ProfileHeaders { etag })
}

/// Like [`authenticated`], for a member's own endpoints: an operator client's token names no
/// member (its `sub` is the client), so it has no profile or orders and gets 403.
async fn member<T, F, Fut>(rqctx: &RequestContext<ServerContext>, call: F) -> Result<T, ApiError>
where
    F: FnOnce(Identity) -> Fut,
    Fut: Future<Output = Result<T, DomainError>>,
{
    authenticated(rqctx, |identity| async move {
        if !identity.is_member() {
            return Err(DomainError::MemberRequired);
        }
        call(identity).await
    })
    .await
}

/// Authenticates, runs the domain call, and maps its error: the whole of a handler.
async fn authenticated<T, F, Fut>(
    rqctx: &RequestContext<ServerContext>,
    call: F,
) -> Result<T, ApiError>
where
    F: FnOnce(Identity) -> Fut,
    Fut: Future<Output = Result<T, DomainError>>,
{
    let started = std::time::Instant::now();
    let result = async {
        let identity = rqctx.context().auth.authenticate(rqctx.request.headers()).await?;
        call(identity).await
    };
    // Every Stripe call of the request stops retrying before the request's deadline.
    let lambda = rqctx.request.headers().get("x-amzn-lambda-context").map(|v| v.as_bytes());
    let deadline = rqctx.context().orders.request_deadline(started, lambda);
    let result = crate::stripe::with_deadline(deadline, result).await;
    let result = result.map_err(|e| e.into_api(&rqctx.log));
    let status = result.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::metrics::request(&rqctx.log, &rqctx.endpoint.operation_id, latency_ms, status);
    result
}

/// Like [`authenticated`], for the admin-only endpoints (an admin member or the operator).
///
/// Every call an admin makes leaves one audit record once it is done: who (`user_id`), what
/// (`action`, the operation id), whom it was about (`target`) and whether it succeeded.
async fn admin<T, F, Fut>(
    rqctx: &RequestContext<ServerContext>,
    target: AdminTarget,
    call: F,
) -> Result<T, ApiError>
where
    F: FnOnce(Identity) -> Fut,
    Fut: Future<Output = Result<T, DomainError>>,
{
    authenticated(rqctx, |identity| async {
        if !rqctx.context().auth.is_admin(&identity) {
            return Err(DomainError::AdminRequired);
        }
        let actor = identity.user_id.clone();
        let result = call(identity).await;
        slog::info!(rqctx.log, "admin action";
            "record_type" => "audit", "user_id" => actor,
            "action" => rqctx.endpoint.operation_id.clone(),
            "target_user_id" => target.user_id,
            "stripe_customer_id" => target.stripe_customer_id,
            "outcome" => if result.is_ok() { "ok" } else { "failed" });
        result
    })
    .await
}

/// Whom an admin action is about, as its audit record names it (`None`: not logged as a value).
#[derive(Default)]
struct AdminTarget {
    /// The member acted on (`target_user_id`).
    user_id: Option<String>,
    /// The Stripe customer linked (`stripe_customer_id`).
    stripe_customer_id: Option<String>,
}

impl DashboardApi for DashboardImpl {
    type Context = ServerContext;

    async fn get_healthz(
        _rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<Health>, ApiError> {
        Ok(HttpResponseOk(Health {
            status: "ok".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn get_profile(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<ProfileResponse, ApiError> {
        let store = rqctx.context().store.clone();
        let orders = rqctx.context().orders.clone();
        let log = rqctx.log.clone();
        member(&rqctx, |identity| async move {
            profiles::get_or_create_linking(&store, &orders, &log, &identity).await
        })
        .await
        .map(profile_response)
    }

    async fn put_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
        body: JsonBody<ProfileUpdate>,
    ) -> Result<ProfileResponse, ApiError> {
        let store = rqctx.context().store.clone();
        let if_match = if_match.into_inner().if_match;
        let log = rqctx.log.clone();
        let per_minute = rqctx.context().orders.limits().profile_writes_per_minute;
        // The audit record names the member itself (a second `user_id` key would repeat it).
        member(&rqctx, |identity| async move {
            let body = body.into_inner();
            profiles::update(&store, &log, &identity, if_match.as_deref(), body, per_minute).await
        })
        .await
        .map(profile_response)
    }

    async fn patch_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
        body: JsonBody<ProfilePatch>,
    ) -> Result<ProfileResponse, ApiError> {
        let store = rqctx.context().store.clone();
        let if_match = if_match.into_inner().if_match;
        let log = rqctx.log.clone();
        let per_minute = rqctx.context().orders.limits().profile_writes_per_minute;
        // The audit record names the member itself (a second `user_id` key would repeat it).
        member(&rqctx, |identity| async move {
            let body = body.into_inner();
            profiles::patch(&store, &log, &identity, if_match.as_deref(), body, per_minute).await
        })
        .await
        .map(profile_response)
    }

    async fn delete_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
    ) -> Result<HttpResponseOk<dashboard_api::ErasureReport>, ApiError> {
        let store = rqctx.context().store.clone();
        let if_match = if_match.into_inner().if_match;
        let log = rqctx.log.clone();
        let per_minute = rqctx.context().orders.limits().profile_writes_per_minute;
        // The token's own member only, as often as profile writes (`rights`).
        member(&rqctx, |identity| async move {
            crate::rights::erase(&store, &log, &identity, if_match.as_deref(), per_minute).await
        })
        .await
        .map(HttpResponseOk)
    }

    async fn get_export(
        rqctx: RequestContext<Self::Context>,
        query: Query<dashboard_api::ExportQuery>,
    ) -> Result<HttpResponseOk<dashboard_api::ExportPage>, ApiError> {
        let token = query.into_inner().page_token;
        let store = rqctx.context().store.clone();
        let orders = rqctx.context().orders.clone();
        // The token's own member only; each page reads a bounded number of orders (`rights`).
        member(&rqctx, |identity| async move {
            crate::rights::export(&store, &orders, &identity.user_id, token.as_deref()).await
        })
        .await
        .map(HttpResponseOk)
    }

    async fn list_orders(
        rqctx: RequestContext<Self::Context>,
        query: Query<OrdersQuery>,
    ) -> Result<HttpResponseOk<OrdersPage>, ApiError> {
        let params = query.into_inner().0;
        let raw_query = rqctx.request.uri().query().map(str::to_owned);
        let orders = rqctx.context().orders.clone();
        member(&rqctx, |identity| async move {
            orders.list(&identity.user_id, &params, raw_query.as_deref()).await
        })
        .await
        .map(HttpResponseOk)
    }

    async fn get_order(
        rqctx: RequestContext<Self::Context>,
        path: Path<OrderPath>,
    ) -> Result<HttpResponseOk<Order>, ApiError> {
        let order_id = path.into_inner().order_id;
        let orders = rqctx.context().orders.clone();
        member(&rqctx, |identity| async move { orders.detail(&identity.user_id, &order_id).await })
            .await
            .map(HttpResponseOk)
    }

    async fn get_sync_status(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<SyncStatus>, ApiError> {
        let orders = rqctx.context().orders.clone();
        member(&rqctx, |identity| async move { orders.sync_status(&identity.user_id).await })
            .await
            .map(HttpResponseOk)
    }

    async fn post_stripe_webhook(
        rqctx: RequestContext<Self::Context>,
        signature: Header<StripeSignatureHeader>,
        body: UntypedBody,
    ) -> Result<HttpResponseOk<WebhookAck>, ApiError> {
        let signature = signature.into_inner().stripe_signature;
        let lambda = rqctx.request.headers().get("x-amzn-lambda-context").map(|v| v.as_bytes());
        let deadline = rqctx.context().orders.request_deadline(std::time::Instant::now(), lambda);
        // Boxed: applying an event is a deep future, too large to move around on the stack of
        // a debug build.
        let work = Box::pin(rqctx.context().orders.webhook(body.as_bytes(), signature.as_deref()));
        let result = crate::stripe::with_deadline(deadline, work).await;
        let outcome = match &result {
            Ok(ack) => ack.outcome.as_str(),
            Err(DomainError::InvalidWebhookSignature(_)) => "rejected",
            Err(_) => "failed",
        };
        crate::metrics::webhook(&rqctx.log, outcome);
        result.map(HttpResponseOk).map_err(|e| e.into_api(&rqctx.log))
    }

    async fn post_sync_member(
        rqctx: RequestContext<Self::Context>,
        body: JsonBody<SyncRequest>,
    ) -> Result<HttpResponseOk<SyncReport>, ApiError> {
        let user_id = body.into_inner().user_id;
        let orders = rqctx.context().orders.clone();
        let target = AdminTarget { user_id: Some(user_id.clone()), ..Default::default() };
        admin(&rqctx, target, |_| async move { orders.reconcile(&user_id).await })
            .await
            .map(HttpResponseOk)
    }

    async fn post_sync_all(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<ScheduledSyncReport>, ApiError> {
        let orders = rqctx.context().orders.clone();
        admin(&rqctx, AdminTarget::default(), |_| async move { orders.reconcile_all().await })
            .await
            .map(HttpResponseOk)
    }

    async fn put_member_stripe_customer(
        rqctx: RequestContext<Self::Context>,
        path: Path<MemberPath>,
        body: JsonBody<LinkStripeCustomer>,
    ) -> Result<HttpResponseOk<Profile>, ApiError> {
        let user_id = path.into_inner().user_id;
        let customer = body.into_inner().stripe_customer_id;
        let store = rqctx.context().store.clone();
        let target = AdminTarget {
            user_id: Some(user_id.clone()),
            stripe_customer_id: Some(customer.clone()),
        };
        admin(&rqctx, target, |_| async move { profiles::link(&store, &user_id, &customer).await })
            .await
            .map(|item| HttpResponseOk(profiles::to_api(item)))
    }
}

/// Non-HTTP work delivered by the AWS Lambda Web Adapter on its pass-through path: SQS batches
/// (stale-order refreshes: `{"userId": …}` bodies) and the daily EventBridge schedule. Not part
/// of the API, and registered only under Lambda (`Config::lambda_events`).
///
/// The adapter sets `x-amzn-request-context` on every request it forwards, replacing any the
/// caller sent, to the JSON of the event's request context; a non-HTTP event has none and gets
/// the literal `null` (`fetch_response` in
/// https://github.com/awslabs/aws-lambda-web-adapter/blob/main/src/lib.rs inserts
/// `serde_json::to_string(&request_context)`, and lambda_http's `RequestContext::PassThrough` is
/// a unit variant of an untagged enum, which serializes as `null`; docs:
/// https://github.com/awslabs/aws-lambda-web-adapter/blob/main/docs/guide/src/features/non-http-events.md).
/// So anything but a present `null` did not come from the adapter as an event, and gets the
/// same 404 as an unknown path.
#[dropshot::endpoint {
    method = POST,
    path = "/events",
    unpublished = true,
    request_body_max_bytes = 6 * 1024 * 1024,
}]
pub async fn lambda_events(
    rqctx: RequestContext<ServerContext>,
    body: UntypedBody,
) -> Result<HttpResponseOk<serde_json::Value>, dropshot::HttpError> {
    let context = rqctx.request.headers().get("x-amzn-request-context");
    if context.is_none_or(|v| v.as_bytes() != b"null") {
        // Dropshot's own unknown-path error: same status, no code, same message.
        return Err(dropshot::HttpError::for_not_found(
            None,
            "not a Lambda event on the events path".into(),
        ));
    }
    let event: serde_json::Value = serde_json::from_slice(body.as_bytes()).map_err(|e| {
        let code = dashboard_api::ErrorCode::InvalidEvent.as_str().to_string();
        dropshot::HttpError::for_bad_request(Some(code), format!("not JSON: {e}"))
    })?;
    let orders = rqctx.context().orders.clone();
    let work = crate::events::handle(&orders, &rqctx.log, &event);
    // The invocation's deadline bounds the whole batch or sweep (the worker runs up to 15
    // minutes); without one, each member's reconcile keeps to its own budget.
    let lambda = rqctx.request.headers().get("x-amzn-lambda-context").map(|v| v.as_bytes());
    match crate::stripe::invocation_deadline(lambda) {
        Some(deadline) => crate::stripe::with_deadline(deadline, work).await.map(HttpResponseOk),
        None => work.await.map(HttpResponseOk),
    }
}
