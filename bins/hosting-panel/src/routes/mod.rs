//! Every route of the API, each registered together with its OpenAPI description
//! (utoipa-axum's `routes!`), so the served document lists exactly what is served.
//!
//! Handlers are thin: parse (the extractors), call one `Panel` use case with the request's
//! `Actor` (the Panel checks roles, tenants and token permissions), shape the answer. Changes
//! run on their own task, so a client that disconnects or times out cannot cancel a saga
//! half-way; it finishes, undoes itself on failure, and is audited either way.

mod accounts;
mod auth;
mod ops;
mod sites;

use std::future::Future;

use axum::http::StatusCode;
use tracing::Instrument;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

/// The document's fixed parts: title, the bearer scheme (required everywhere unless a path
/// says `security(())`), tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hosting-panel API",
        description = "The HTTP API of the hosting SDK's panel. Every endpoint but login, \
                       refresh, health, ready and this document needs \
                       `Authorization: Bearer <access token or hsk_ API token>`. Errors are \
                       always `{\"error\": {\"code\", \"message\", \"field\"}}`. Lists take \
                       `?after=&limit=` and answer `{items, next_after}`."
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Logging in, sessions, second factors"),
        (name = "tenants", description = "Customer organisations (the operator's)"),
        (name = "users", description = "People and their roles"),
        (name = "websites", description = "Websites and their databases"),
        (name = "nodes", description = "Machines that serve websites"),
        (name = "audit", description = "Who did what"),
        (name = "jobs", description = "Background work"),
        (name = "tokens", description = "API tokens"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "A short-lived access token from POST /api/v1/auth/login or /refresh, or an API \
             token (hsk_...) from POST /api/v1/tokens."
                .to_owned(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// The errors any authenticated endpoint may answer with.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// Unreadable request: malformed JSON, nested too deep, bad query string.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid bearer token (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The role or the token's permissions do not allow it.
    #[response(status = 403)]
    PermissionDenied(ErrorBody),
    /// No such record (or not visible to the caller), or no such endpoint.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The endpoint does not take this method.
    #[response(status = 405)]
    MethodNotAllowed(ErrorBody),
    /// Already exists, or contradicts the current state.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than `max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A value broke a rule (`field` names it), wrong type, unknown or missing field, or a
    /// server's own config test refused the change (`validation_failed`).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Too many attempts; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The panel failed; the log has the details under the request's id.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// A node's backend (database server, web server, PHP) failed; the step is named.
    #[response(status = 502)]
    BadGateway(ErrorBody),
}

/// Keyset paging of a list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Return rows after this id (the previous page's `next_after`).
    after: Option<i64>,
    /// At most this many rows, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// Runs a change on its own task so that a dropped request cannot cancel it half-way.
pub async fn detached<T, F>(change: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Future<Output = hosting_core::Result<T>> + Send + 'static,
{
    tokio::spawn(change.instrument(tracing::Span::current()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a change's task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error (the server log has the details under this request's id)",
            )
        })?
        .map_err(ApiError::from)
}

/// Any path the API does not have (reached only with valid credentials).
pub async fn fallback() -> ApiError {
    ApiError::no_route()
}

/// Every route, with its documentation.
pub fn all() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .merge(auth::routes())
        .merge(accounts::routes())
        .merge(sites::routes())
        .merge(ops::api_routes());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api)
        .merge(ops::root_routes())
}
