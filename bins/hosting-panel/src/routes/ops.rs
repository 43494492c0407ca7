//! `/api/v1/nodes`, `/api/v1/audit`, `/api/v1/jobs`, the OpenAPI document, and `/health` and
//! `/ready` at the root.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hosting_core::model::{JobId, NodeId, WebsiteId};
use hosting_core::panel::NodeStatus;
use hosting_core::{Error, Operator, PageLimit, PageRequest};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Errors, PageParams, detached};
use crate::app::AppState;
use crate::dto::{
    AdoptAccountBody, AuditView, DatabaseHealthView, HealthView, JobView, NewNodeBody,
    NodeAccountView, NodeView, PageOf, PhpVersionView,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Authed, JsonBody, NoQuery, Paging, PathId};

pub(super) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes, create_node))
        .routes(routes!(get_node, delete_node))
        .routes(routes!(php_versions))
        .routes(routes!(list_node_accounts, adopt_node_account))
        .routes(routes!(node_database_health))
        .routes(routes!(apply_node))
        .routes(routes!(list_audit))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(openapi_json))
}

pub(super) fn root_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// The nodes (every user may list them: websites are placed on them).
#[utoipa::path(
    get, path = "/nodes", tag = "nodes", params(PageParams),
    responses((status = 200, description = "A page of nodes", body = PageOf<NodeView>), Errors)
)]
async fn list_nodes(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<NodeView>>> {
    let page = state.panel().list_nodes(&actor, page).await?;
    let panel = state.panel();
    Ok(Json(PageOf::from_page(page, |node| {
        let isolation = panel.node_isolation(node.id);
        NodeView::new(node, isolation)
    })))
}

/// Record a node (the operator only). Its backends are attached by the server (the local
/// node) or, later, through its agent.
#[utoipa::path(
    post, path = "/nodes", tag = "nodes", request_body = NewNodeBody,
    responses((status = 201, description = "Recorded", body = NodeView), Errors)
)]
async fn create_node(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<NewNodeBody>,
) -> ApiResult<(StatusCode, Json<NodeView>)> {
    let panel = state.panel().clone();
    let node = detached(async move { panel.create_node(&actor, body.into()).await }).await?;
    let isolation = state.panel().node_isolation(node.id);
    Ok((StatusCode::CREATED, Json(NodeView::new(node, isolation))))
}

/// A node, and for the operator whether its servers run and how its last apply ended.
#[derive(Debug, Serialize, ToSchema)]
struct NodeDetailView {
    #[serde(flatten)]
    node: NodeView,
    /// For the operator, on a node this panel drives; `null` otherwise.
    status: Option<NodeStatusView>,
}

/// What a node runs now and how its last apply ended.
#[derive(Debug, Serialize, ToSchema)]
struct NodeStatusView {
    /// Each server process of the node (`nginx`, `apache`, `php-fpm 8.2`, ...).
    servers: Vec<ServerStateView>,
    /// The node's last apply since this panel started; `null` before the first.
    last_apply: Option<LastApplyView>,
}

/// One server process.
#[derive(Debug, Serialize, ToSchema)]
struct ServerStateView {
    /// Its name.
    name: String,
    /// Whether it runs: its pid file names this server's master.
    running: bool,
    /// The master's pid while it runs.
    pid: Option<u32>,
}

/// How an apply ended.
#[derive(Debug, Serialize, ToSchema)]
struct LastApplyView {
    /// When it ended.
    finished_at: DateTime<Utc>,
    /// Whether everything went live.
    ok: bool,
    /// Why it failed (for the operator: it may name node paths).
    error: Option<String>,
    /// PHP versions whose master did not run their pools after it, with their websites.
    php_failed: Vec<FailedPhpView>,
}

/// A PHP version whose master does not run.
#[derive(Debug, Serialize, ToSchema)]
struct FailedPhpView {
    /// The version.
    version: String,
    /// Its websites, whose PHP answers 502.
    #[schema(value_type = Vec<i64>)]
    websites: Vec<WebsiteId>,
    /// What failed.
    reason: String,
}

impl From<NodeStatus> for NodeStatusView {
    fn from(status: NodeStatus) -> Self {
        Self {
            servers: status
                .servers
                .into_iter()
                .map(|s| ServerStateView {
                    name: s.name,
                    running: s.pid.is_some(),
                    pid: s.pid,
                })
                .collect(),
            last_apply: status.last_apply.map(|last| LastApplyView {
                finished_at: last.finished_at,
                ok: last.error.is_none() && last.php_failed.is_empty(),
                error: last.error,
                php_failed: last
                    .php_failed
                    .into_iter()
                    .map(|f| FailedPhpView {
                        version: f.version.as_str().to_owned(),
                        websites: f.sites,
                        reason: f.reason,
                    })
                    .collect(),
            }),
        }
    }
}

/// One node; the operator also sees whether its servers run and how its last apply ended.
#[utoipa::path(
    get, path = "/nodes/{id}", tag = "nodes",
    params(("id" = i64, Path, description = "The node")),
    responses((status = 200, description = "The node", body = NodeDetailView), Errors)
)]
async fn get_node(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<NodeDetailView>> {
    let node = state.panel().get_node(&actor, id).await?;
    let status = match state.panel().node_status(&actor, id).await {
        Ok(status) => Some(status.into()),
        // Not the operator, or a node this panel drives no backends for.
        Err(Error::PermissionDenied(_) | Error::Conflict(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(NodeDetailView {
        node: NodeView::new(node, state.panel().node_isolation(id)),
        status,
    }))
}

/// The Unix accounts the panel keeps on a node, each with its one tenant (the operator only).
#[utoipa::path(
    get, path = "/nodes/{id}/accounts", tag = "nodes",
    params(("id" = i64, Path, description = "The node"), PageParams),
    responses((status = 200, description = "A page of accounts", body = PageOf<NodeAccountView>), Errors)
)]
async fn list_node_accounts(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathId(id): PathId<NodeId>,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<NodeAccountView>>> {
    let page = state.panel().list_node_accounts(&actor, id, page).await?;
    Ok(Json(PageOf::from_page(page, Into::into)))
}

/// The health check of the node's database servers (the operator only): databases every login
/// may connect to, which a customer could use outside its own.
#[utoipa::path(
    get, path = "/nodes/{id}/database-health", tag = "nodes",
    params(("id" = i64, Path, description = "The node")),
    responses((status = 200, description = "One entry per database server", body = Vec<DatabaseHealthView>), Errors)
)]
async fn node_database_health(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<Vec<DatabaseHealthView>>> {
    let report = state.panel().database_health(&actor, id).await?;
    Ok(Json(
        report
            .into_iter()
            .map(|(engine, health)| DatabaseHealthView {
                engine,
                open_to_every_login: health.open_to_every_login,
            })
            .collect(),
    ))
}

/// Adopt an existing Unix account on the node for a tenant, so its websites can run as it
/// (a migration; the operator only, audited). Never a system account (uid or gid below 1000).
#[utoipa::path(
    post, path = "/nodes/{id}/accounts", tag = "nodes",
    params(("id" = i64, Path, description = "The node")),
    request_body = AdoptAccountBody,
    responses((status = 201, description = "Adopted", body = NodeAccountView), Errors)
)]
async fn adopt_node_account(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<NodeId>,
    JsonBody(body): JsonBody<AdoptAccountBody>,
) -> ApiResult<(StatusCode, Json<NodeAccountView>)> {
    let panel = state.panel().clone();
    let account = detached(async move {
        panel
            .adopt_node_account(&actor, id, body.tenant_id, body.name)
            .await
    })
    .await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// Remove a node that serves no websites (the operator only).
#[utoipa::path(
    delete, path = "/nodes/{id}", tag = "nodes",
    params(("id" = i64, Path, description = "The node")),
    responses((status = 204, description = "Removed"), Errors)
)]
async fn delete_node(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<NodeId>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move { panel.delete_node(&actor, id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The PHP versions installed on a node (one page holds them all).
#[utoipa::path(
    get, path = "/nodes/{id}/php-versions", tag = "nodes",
    params(("id" = i64, Path, description = "The node")),
    responses((status = 200, description = "The installed versions", body = PageOf<PhpVersionView>), Errors)
)]
async fn php_versions(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<PageOf<PhpVersionView>>> {
    let installed = state.panel().php_versions(&actor, id).await?;
    Ok(Json(PageOf {
        items: installed
            .into_iter()
            .map(|i| PhpVersionView {
                version: i.version,
                full_version: i.full_version,
                extensions: i.extensions.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        next_after: None,
    }))
}

/// Queue a job that renders and applies everything a node serves (the operator only).
#[utoipa::path(
    post, path = "/nodes/{id}/apply", tag = "nodes",
    params(("id" = i64, Path, description = "The node")),
    responses((status = 202, description = "Queued", body = JobView), Errors)
)]
async fn apply_node(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<NodeId>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let panel = state.panel().clone();
    let job = detached(async move { panel.request_node_apply(&actor, id).await }).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

// ---------------------------------------------------------------------------------------------
// Audit and jobs

/// The audit log: all of it for the operator, the tenant's for a tenant admin.
#[utoipa::path(
    get, path = "/audit", tag = "audit", params(PageParams),
    responses((status = 200, description = "A page of entries", body = PageOf<AuditView>), Errors)
)]
async fn list_audit(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<AuditView>>> {
    let page = state.panel().list_audit(&actor, page).await?;
    Ok(Json(PageOf::from_page(page, Into::into)))
}

/// The jobs the caller may see.
#[utoipa::path(
    get, path = "/jobs", tag = "jobs", params(PageParams),
    responses((status = 200, description = "A page of jobs", body = PageOf<JobView>), Errors)
)]
async fn list_jobs(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<JobView>>> {
    let page = state.panel().list_jobs(&actor, page).await?;
    Ok(Json(PageOf::from_page(page, Into::into)))
}

/// One job.
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "The job")),
    responses((status = 200, description = "The job", body = JobView), Errors)
)]
async fn get_job(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<JobId>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(state.panel().get_job(&actor, id).await?.into()))
}

// ---------------------------------------------------------------------------------------------
// Documentation and health

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get, path = "/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json().to_owned(),
    )
        .into_response()
}

/// The process is up.
#[utoipa::path(
    get, path = "/health", tag = "health", security(()),
    responses((status = 200, description = "Up", body = HealthView))
)]
async fn health() -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}

/// The panel's store answers (within 5 s).
#[utoipa::path(
    get, path = "/ready", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready", body = HealthView),
        (status = 503, description = "The store does not answer", body = ErrorBody)
    )
)]
async fn ready(State(state): State<AppState>) -> Result<Json<HealthView>, ApiError> {
    let page = PageRequest::first(PageLimit::try_from(1).map_err(ApiError::from)?);
    let store = state.panel().store().clone();
    let op = Operator::assume();
    let probe = store.list_tenants(&op, page);
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(_)) => Ok(Json(HealthView { status: "ok" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness probe failed");
            Err(not_ready())
        }
        Err(_) => Err(not_ready()),
    }
}

fn not_ready() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "the panel's store does not answer",
    )
}
