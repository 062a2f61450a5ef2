//! HTTP handlers: authenticate, validate, call the domain, map errors. Nothing else.

use crate::error::DomainError;
use crate::profiles;
use crate::ServerContext;
use dashboard_api::{
    ApiError, DashboardApi, Health, IfMatchHeader, Profile, ProfileHeaders, ProfileUpdate,
};
use dropshot::{Header, HttpResponseHeaders, HttpResponseOk, RequestContext, TypedBody};

/// The implementation of the API trait (never constructed).
pub enum DashboardImpl {}

type ProfileResponse = HttpResponseHeaders<HttpResponseOk<Profile>, ProfileHeaders>;

fn profile_response(item: crate::storage::profiles::ProfileItem) -> ProfileResponse {
    let etag = profiles::etag(&item);
    HttpResponseHeaders::new(HttpResponseOk(profiles::to_api(item)), ProfileHeaders { etag })
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
        let cx = rqctx.context();
        let result = async {
            let identity = cx.auth.authenticate(rqctx.request.headers()).await?;
            profiles::get_or_create(&cx.store, &identity).await
        };
        result.await.map(profile_response).map_err(|e: DomainError| e.into_api(&rqctx.log))
    }

    async fn put_profile(
        rqctx: RequestContext<Self::Context>,
        if_match: Header<IfMatchHeader>,
        body: TypedBody<ProfileUpdate>,
    ) -> Result<ProfileResponse, ApiError> {
        let cx = rqctx.context();
        let result = async {
            let identity = cx.auth.authenticate(rqctx.request.headers()).await?;
            let if_match = if_match.into_inner().if_match;
            let log = rqctx.log.new(slog::o!("user_id" => identity.user_id.clone()));
            profiles::update(&cx.store, &log, &identity, if_match.as_deref(), body.into_inner())
                .await
        };
        result.await.map(profile_response).map_err(|e: DomainError| e.into_api(&rqctx.log))
    }
}
