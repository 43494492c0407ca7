//! `/api/v1/auth`: login, refresh, logout, second factors, and who the caller is.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hosting_core::panel::{Grant, LoginRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Errors, detached};
use crate::app::AppState;
use crate::dto::{
    CodeBody, DisableTotpBody, GrantKind, LoginBody, MeView, ReauthBody, RefreshBody, TokensView,
    TotpEnrolmentView,
};
use crate::error::ApiResult;
use crate::extract::{Authed, ClientIp, JsonBody, NoQuery};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(enrol_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(disable_totp))
        .routes(routes!(me))
}

/// Log in with e-mail and password (and a second factor when enrolled).
///
/// Throttled per source address and per account (`429` with `Retry-After`); repeated failures
/// lock the account for a while. A `401` with code `second_factor_required` means the password
/// was right: send it again with `totp_code` or `recovery_code`.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth", security(()),
    request_body = LoginBody,
    responses((status = 200, description = "Logged in", body = TokensView), Errors)
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(source_ip): ClientIp,
    _: NoQuery,
    JsonBody(body): JsonBody<LoginBody>,
) -> ApiResult<Json<TokensView>> {
    let panel = state.panel().clone();
    let request = LoginRequest {
        email: body.email,
        password: body.password,
        totp_code: body.totp_code,
        recovery_code: body.recovery_code,
        source_ip,
    };
    let tokens = detached(async move { panel.login(request).await }).await?;
    Ok(Json(tokens.into()))
}

/// Exchange a refresh token for new tokens; the presented one is used up. Presenting a used
/// refresh token again revokes its whole session.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth", security(()),
    request_body = RefreshBody,
    responses((status = 200, description = "New tokens", body = TokensView), Errors)
)]
async fn refresh(
    State(state): State<AppState>,
    ClientIp(source_ip): ClientIp,
    _: NoQuery,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<Json<TokensView>> {
    let panel = state.panel().clone();
    let tokens =
        detached(async move { panel.refresh(&body.refresh_token, source_ip).await }).await?;
    Ok(Json(tokens.into()))
}

/// End the caller's session: its refresh token and access tokens stop working.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out"), Errors)
)]
async fn logout(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move { panel.logout(&actor).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start enrolling a second factor (TOTP), with the current password: a secret and recovery
/// codes, shown once; it is active after `POST /auth/2fa/confirm`. A wrong password is a `403`
/// with code `reauthentication_failed` and counts as a failed login.
#[utoipa::path(
    post, path = "/auth/2fa/enrol", tag = "auth",
    request_body = ReauthBody,
    responses((status = 200, description = "Secret and recovery codes", body = TotpEnrolmentView), Errors)
)]
async fn enrol_totp(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<ReauthBody>,
) -> ApiResult<Json<TotpEnrolmentView>> {
    let panel = state.panel().clone();
    let enrolment =
        detached(async move { panel.enrol_totp(&actor, &body.current_password).await }).await?;
    Ok(Json(enrolment.into()))
}

/// Confirm the pending second factor with a current code.
#[utoipa::path(
    post, path = "/auth/2fa/confirm", tag = "auth",
    request_body = CodeBody,
    responses((status = 204, description = "The second factor is active"), Errors)
)]
async fn confirm_totp(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<CodeBody>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move { panel.confirm_totp(&actor, &body.code).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove the caller's second factor, proven with a current code and the current password.
#[utoipa::path(
    post, path = "/auth/2fa/disable", tag = "auth",
    request_body = DisableTotpBody,
    responses((status = 204, description = "The second factor is removed"), Errors)
)]
async fn disable_totp(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<DisableTotpBody>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move {
        panel
            .disable_totp(&actor, &body.code, &body.current_password)
            .await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the bearer token belongs to, and what it may do.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = MeView), Errors)
)]
async fn me(State(state): State<AppState>, Authed(actor): Authed, _: NoQuery) -> Json<MeView> {
    let (grant, permissions, enrol_only) = match actor.grant() {
        Grant::Session { enrol_only, .. } => (GrantKind::Session, None, *enrol_only),
        Grant::ApiToken { permissions, .. } => {
            (GrantKind::ApiToken, Some(permissions.clone()), false)
        }
        Grant::Embedder => (GrantKind::Embedder, None, false),
    };
    let caller = *actor.caller();
    let user = state
        .panel()
        .get_user(&actor, caller.user)
        .await
        .ok()
        .map(Into::into);
    Json(MeView {
        user_id: caller.user,
        tenant_id: caller.tenant,
        role: caller.role,
        grant,
        permissions,
        second_factor_enrolment_required: enrol_only,
        user,
    })
}
