//! `/api/v1/tenants`, `/api/v1/users` and `/api/v1/tokens`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hosting_core::model::{ApiTokenId, TenantId, UserId};
use hosting_core::panel::PasswordChange;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Errors, PageParams, detached};
use crate::app::AppState;
use crate::dto::{
    ApiTokenCreatedView, ApiTokenView, CreatedUserView, NewApiTokenBody, NewTenantBody,
    NewUserBody, PageOf, PasswordBody, RequireTwoFactorBody, TenantChangesBody, TenantView,
    UserChangesBody, UserView,
};
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody, NoQuery, Paging, PathId};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(require_2fa))
        .routes(routes!(list_tenant_users, create_tenant_user))
        .routes(routes!(delete_tenant_user))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(set_password))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

// ---------------------------------------------------------------------------------------------
// Tenants

/// Every tenant (the operator only).
#[utoipa::path(
    get, path = "/tenants", tag = "tenants", params(PageParams),
    responses((status = 200, description = "A page of tenants", body = PageOf<TenantView>), Errors)
)]
async fn list_tenants(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<TenantView>>> {
    let page = state.panel().list_tenants(&actor, page).await?;
    Ok(Json(PageOf::from_page(page, Into::into)))
}

/// Create a tenant (the operator only).
#[utoipa::path(
    post, path = "/tenants", tag = "tenants", request_body = NewTenantBody,
    responses((status = 201, description = "Created", body = TenantView), Errors)
)]
async fn create_tenant(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<NewTenantBody>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let panel = state.panel().clone();
    let tenant = detached(async move { panel.create_tenant(&actor, body.into()).await }).await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

/// A tenant: any for the operator, else the caller's own.
#[utoipa::path(
    get, path = "/tenants/{id}", tag = "tenants",
    params(("id" = i64, Path, description = "The tenant")),
    responses((status = 200, description = "The tenant", body = TenantView), Errors)
)]
async fn get_tenant(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<TenantId>,
) -> ApiResult<Json<TenantView>> {
    Ok(Json(state.panel().get_tenant(&actor, id).await?.into()))
}

/// Change a tenant's name, status or quotas (the operator only); suspending one stops its
/// users' logins.
#[utoipa::path(
    patch, path = "/tenants/{id}", tag = "tenants", request_body = TenantChangesBody,
    params(("id" = i64, Path, description = "The tenant")),
    responses((status = 200, description = "The changed tenant", body = TenantView), Errors)
)]
async fn update_tenant(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<TenantId>,
    JsonBody(body): JsonBody<TenantChangesBody>,
) -> ApiResult<Json<TenantView>> {
    let panel = state.panel().clone();
    let tenant =
        detached(async move { panel.update_tenant(&actor, id, body.into()).await }).await?;
    Ok(Json(tenant.into()))
}

/// Delete a tenant without users or websites (the operator only).
#[utoipa::path(
    delete, path = "/tenants/{id}", tag = "tenants",
    params(("id" = i64, Path, description = "The tenant")),
    responses((status = 204, description = "Deleted"), Errors)
)]
async fn delete_tenant(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<TenantId>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move { panel.delete_tenant(&actor, id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Require (or stop requiring) a second factor of a tenant's users (the operator only).
#[utoipa::path(
    put, path = "/tenants/{id}/require-2fa", tag = "tenants", request_body = RequireTwoFactorBody,
    params(("id" = i64, Path, description = "The tenant")),
    responses((status = 204, description = "Set"), Errors)
)]
async fn require_2fa(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<TenantId>,
    JsonBody(body): JsonBody<RequireTwoFactorBody>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move {
        panel
            .set_tenant_requires_2fa(&actor, id, body.required)
            .await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a user in a tenant, e.g. its first admin (the operator only).
#[utoipa::path(
    post, path = "/tenants/{id}/users", tag = "tenants", request_body = NewUserBody,
    params(("id" = i64, Path, description = "The tenant")),
    responses((status = 201, description = "Created", body = CreatedUserView), Errors)
)]
async fn create_tenant_user(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<TenantId>,
    JsonBody(body): JsonBody<NewUserBody>,
) -> ApiResult<(StatusCode, Json<CreatedUserView>)> {
    let panel = state.panel().clone();
    let new = hosting_core::model::NewUser {
        role: body.role,
        email: body.email,
    };
    let created = detached(async move {
        panel
            .create_tenant_user(&actor, id, new, body.password)
            .await
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// The users of a tenant (the operator only, acting as that tenant's admin).
#[utoipa::path(
    get, path = "/tenants/{id}/users", tag = "tenants", params(PageParams,
        ("id" = i64, Path, description = "The tenant")),
    responses((status = 200, description = "A page of users", body = PageOf<UserView>), Errors)
)]
async fn list_tenant_users(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathId(id): PathId<TenantId>,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<UserView>>> {
    let panel = state.panel();
    let acting = panel.act_in_tenant(&actor, id).await?;
    let page = panel.list_users(&acting, page).await?;
    Ok(Json(PageOf::from_page(page, Into::into)))
}

/// Delete a user of a tenant (the operator only, acting as that tenant's admin), e.g. before
/// deleting the tenant.
#[utoipa::path(
    delete, path = "/tenants/{id}/users/{user_id}", tag = "tenants",
    params(("id" = i64, Path, description = "The tenant"),
        ("user_id" = i64, Path, description = "The user")),
    responses((status = 204, description = "Deleted"), Errors)
)]
async fn delete_tenant_user(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId((tenant, user)): PathId<(TenantId, UserId)>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move {
        let acting = panel.act_in_tenant(&actor, tenant).await?;
        panel.delete_user(&acting, user).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Users

/// The users the caller may see.
#[utoipa::path(
    get, path = "/users", tag = "users", params(PageParams),
    responses((status = 200, description = "A page of users", body = PageOf<UserView>), Errors)
)]
async fn list_users(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<UserView>>> {
    let page = state.panel().list_users(&actor, page).await?;
    Ok(Json(PageOf::from_page(page, Into::into)))
}

/// Create a user in the caller's tenant; without `password` one is generated and returned
/// once.
#[utoipa::path(
    post, path = "/users", tag = "users", request_body = NewUserBody,
    responses((status = 201, description = "Created", body = CreatedUserView), Errors)
)]
async fn create_user(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<NewUserBody>,
) -> ApiResult<(StatusCode, Json<CreatedUserView>)> {
    let panel = state.panel().clone();
    let new = hosting_core::model::NewUser {
        role: body.role,
        email: body.email,
    };
    let created =
        detached(async move { panel.create_user(&actor, new, body.password).await }).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// A user the caller may see.
#[utoipa::path(
    get, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user")),
    responses((status = 200, description = "The user", body = UserView), Errors)
)]
async fn get_user(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<UserId>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(state.panel().get_user(&actor, id).await?.into()))
}

/// Change a user's role, e-mail or status; suspending one ends its sessions.
#[utoipa::path(
    patch, path = "/users/{id}", tag = "users", request_body = UserChangesBody,
    params(("id" = i64, Path, description = "The user")),
    responses((status = 200, description = "The changed user", body = UserView), Errors)
)]
async fn update_user(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<UserId>,
    JsonBody(body): JsonBody<UserChangesBody>,
) -> ApiResult<Json<UserView>> {
    let panel = state.panel().clone();
    let user = detached(async move { panel.update_user(&actor, id, body.into()).await }).await?;
    Ok(Json(user.into()))
}

/// Delete a user the caller manages.
#[utoipa::path(
    delete, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user")),
    responses((status = 204, description = "Deleted"), Errors)
)]
async fn delete_user(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<UserId>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move { panel.delete_user(&actor, id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a user's password (the caller's own, with `current_password`, or one it manages). The
/// user's sessions and access tokens end at once, and its API tokens too unless
/// `keep_api_tokens` is true.
#[utoipa::path(
    put, path = "/users/{id}/password", tag = "users", request_body = PasswordBody,
    params(("id" = i64, Path, description = "The user")),
    responses((status = 204, description = "Set"), Errors)
)]
async fn set_password(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<UserId>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    let change = PasswordChange {
        password: body.password,
        current_password: body.current_password,
        keep_api_tokens: body.keep_api_tokens,
    };
    detached(async move { panel.set_password(&actor, id, change).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// API tokens

/// The caller's API tokens (a tenant admin: its tenant's).
#[utoipa::path(
    get, path = "/tokens", tag = "tokens", params(PageParams),
    responses((status = 200, description = "A page of tokens", body = PageOf<ApiTokenView>), Errors)
)]
async fn list_tokens(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<ApiTokenView>>> {
    let page = state.panel().list_api_tokens(&actor, page).await?;
    Ok(Json(PageOf::from_page(page, Into::into)))
}

/// Create an API token acting as the caller, with some permissions; its secret is shown once.
/// Only from a login session (an API token cannot mint one) and with the caller's current
/// password (`403 reauthentication_failed` when wrong).
#[utoipa::path(
    post, path = "/tokens", tag = "tokens", request_body = NewApiTokenBody,
    responses((status = 201, description = "Created", body = ApiTokenCreatedView), Errors)
)]
async fn create_token(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<NewApiTokenBody>,
) -> ApiResult<(StatusCode, Json<ApiTokenCreatedView>)> {
    let panel = state.panel().clone();
    let role = body.role.unwrap_or(actor.caller().role);
    let created = detached(async move {
        panel
            .create_api_token(
                &actor,
                body.name,
                role,
                body.permissions,
                body.expires_at,
                &body.current_password,
            )
            .await
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Revoke an API token.
#[utoipa::path(
    delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "The token")),
    responses((status = 204, description = "Revoked"), Errors)
)]
async fn revoke_token(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<ApiTokenId>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move { panel.revoke_api_token(&actor, id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}
