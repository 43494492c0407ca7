//! `/api/v1/websites` and `/api/v1/databases`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hosting_core::model::{NodeId, WebsiteChanges, WebsiteId, WebsiteStatus};
use hosting_core::panel::Actor;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Errors, PageParams, detached};
use crate::app::AppState;
use crate::dto::{
    CreatedWebsiteView, DatabaseCredentialsView, DatabaseView, NewWebsiteBody,
    OperatorDirectivesBody, PageOf, PhpBody, WebServerBody, WebsitePatchBody, WebsiteView,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, JsonBody, NoQuery, Paging, PathId};
use crate::read_cache::Read;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_websites, create_website))
        .routes(routes!(get_website, update_website, delete_website))
        .routes(routes!(switch_php))
        .routes(routes!(switch_web_server))
        .routes(routes!(suspend_website))
        .routes(routes!(resume_website))
        .routes(routes!(retry_website))
        .routes(routes!(set_operator_directives))
        .routes(routes!(rotate_database_password))
        .routes(routes!(list_databases))
}

/// Adds what to install or configure to an error about something `node` lacks.
fn with_node_hint(state: &AppState, node: NodeId, error: ApiError) -> ApiError {
    if error.status() != StatusCode::UNPROCESSABLE_ENTITY {
        return error;
    }
    let notes = state.notes(node);
    let hint = match error.field() {
        Some("web_server") => notes.missing_web_server,
        Some("php_version") => notes.missing_php,
        Some("settings.database.engine") => notes.missing_database,
        _ => None,
    };
    match hint {
        Some(hint) => error.with_hint(&hint),
        None => error,
    }
}

/// Fills in why the failed websites among `views` failed (one read, only when one did).
async fn with_failures(
    state: &AppState,
    actor: &Actor,
    views: &mut [WebsiteView],
) -> hosting_core::Result<()> {
    let failed: Vec<WebsiteId> = views
        .iter()
        .filter(|v| v.status == WebsiteStatus::Failed)
        .map(|v| v.id)
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    for failure in state.panel().website_failures(actor, &failed).await? {
        if let Some(view) = views.iter_mut().find(|v| v.id == failure.website_id) {
            view.failure_reason = Some(failure.reason);
        }
    }
    Ok(())
}

/// A website's view with its failure reason.
async fn website_view(
    state: &AppState,
    actor: &Actor,
    site: hosting_core::model::Website,
) -> hosting_core::Result<WebsiteView> {
    let mut view = [WebsiteView::from(site)];
    with_failures(state, actor, &mut view).await?;
    let [view] = view;
    Ok(view)
}

/// Runs a website change and, when it fails for something the site's node lacks, says what to
/// install or configure.
async fn change_website(
    state: &AppState,
    actor: Actor,
    id: WebsiteId,
    changes: WebsiteChanges,
) -> ApiResult<Json<WebsiteView>> {
    let panel = state.panel().clone();
    let for_hint = actor.clone();
    match detached(async move { panel.update_website(&actor, id, changes).await }).await {
        Ok(site) => Ok(Json(website_view(state, &for_hint, site).await?)),
        Err(e) => match state.panel().get_website(&for_hint, id).await {
            Ok(site) => Err(with_node_hint(state, site.node_id, e)),
            Err(_) => Err(e),
        },
    }
}

/// The websites the caller manages.
#[utoipa::path(
    get, path = "/websites", tag = "websites", params(PageParams),
    responses((status = 200, description = "A page of websites", body = PageOf<WebsiteView>), Errors)
)]
async fn list_websites(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let panel = state.panel();
    let load = async {
        let sites = panel.list_websites(&actor, page).await?;
        let mut views = PageOf::<WebsiteView>::from_page(sites, Into::into);
        with_failures(&state, &actor, &mut views.items).await?;
        Ok(views)
    };
    state
        .reads()
        .answer(
            panel.store().changes(),
            &actor,
            Read::Websites(page),
            &headers,
            load,
        )
        .await
}

/// Create a website: its record, its database (when `settings.database` asks for one), its
/// directories, PHP pool and vhost, as one saga. Any failing step undoes the earlier ones. The
/// database's credentials are in this answer only.
#[utoipa::path(
    post, path = "/websites", tag = "websites", request_body = NewWebsiteBody,
    responses((status = 201, description = "Created and deployed", body = CreatedWebsiteView), Errors)
)]
async fn create_website(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    JsonBody(body): JsonBody<NewWebsiteBody>,
) -> ApiResult<(StatusCode, Json<CreatedWebsiteView>)> {
    let panel = state.panel().clone();
    let node = body.node_id;
    let created = detached(async move { panel.create_website(&actor, body.into()).await })
        .await
        .map_err(|e| with_node_hint(&state, node, e))?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// A website the caller manages.
#[utoipa::path(
    get, path = "/websites/{id}", tag = "websites",
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The website", body = WebsiteView), Errors)
)]
async fn get_website(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let panel = state.panel();
    let load =
        async { Ok(website_view(&state, &actor, panel.get_website(&actor, id).await?).await?) };
    state
        .reads()
        .answer(
            panel.store().changes(),
            &actor,
            Read::Website(id),
            &headers,
            load,
        )
        .await
}

/// Change a website's settings, aliases or document root, and deploy the change; when the
/// node refuses it, the record and the node go back to what they were.
#[utoipa::path(
    patch, path = "/websites/{id}", tag = "websites", request_body = WebsitePatchBody,
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The changed website", body = WebsiteView), Errors)
)]
async fn update_website(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
    JsonBody(body): JsonBody<WebsitePatchBody>,
) -> ApiResult<Json<WebsiteView>> {
    change_website(&state, actor, id, body.into()).await
}

/// Delete a website: its vhost and pool, database and login, record, then files.
#[utoipa::path(
    delete, path = "/websites/{id}", tag = "websites",
    params(("id" = i64, Path, description = "The website")),
    responses((status = 204, description = "Deleted"), Errors)
)]
async fn delete_website(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
) -> ApiResult<StatusCode> {
    let panel = state.panel().clone();
    detached(async move { panel.delete_website(&actor, id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Switch a website's PHP version (`null`: static site) without downtime.
#[utoipa::path(
    post, path = "/websites/{id}/php", tag = "websites", request_body = PhpBody,
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The switched website", body = WebsiteView), Errors)
)]
async fn switch_php(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
    JsonBody(body): JsonBody<PhpBody>,
) -> ApiResult<Json<WebsiteView>> {
    let changes = WebsiteChanges {
        php_version: Some(body.php_version),
        ..WebsiteChanges::default()
    };
    change_website(&state, actor, id, changes).await
}

/// Move a website to another web server of its node.
#[utoipa::path(
    post, path = "/websites/{id}/web-server", tag = "websites", request_body = WebServerBody,
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The switched website", body = WebsiteView), Errors)
)]
async fn switch_web_server(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
    JsonBody(body): JsonBody<WebServerBody>,
) -> ApiResult<Json<WebsiteView>> {
    let changes = WebsiteChanges {
        web_server: Some(body.web_server),
        ..WebsiteChanges::default()
    };
    change_website(&state, actor, id, changes).await
}

/// Suspend a website: its names answer 403 with a short page and its PHP stops; its files and
/// database stay.
#[utoipa::path(
    post, path = "/websites/{id}/suspend", tag = "websites",
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The suspended website", body = WebsiteView), Errors)
)]
async fn suspend_website(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
) -> ApiResult<Json<WebsiteView>> {
    let changes = WebsiteChanges {
        status: Some(WebsiteStatus::Suspended),
        ..WebsiteChanges::default()
    };
    change_website(&state, actor, id, changes).await
}

/// Replace a website's operator directives: raw directives past the directive policy, for
/// what tenants may not do (the operator only; audited; shown in the website's
/// `settings.operator_directives`). The web server's own configuration test still applies.
#[utoipa::path(
    put, path = "/websites/{id}/operator-directives", tag = "websites",
    params(("id" = i64, Path, description = "The website")),
    request_body = OperatorDirectivesBody,
    responses((status = 200, description = "The website, deployed", body = WebsiteView), Errors)
)]
async fn set_operator_directives(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
    JsonBody(body): JsonBody<OperatorDirectivesBody>,
) -> ApiResult<Json<WebsiteView>> {
    let panel = state.panel().clone();
    let website = detached(async move {
        panel
            .set_operator_directives(&actor, id, body.directives)
            .await
    })
    .await?;
    Ok(Json(website.into()))
}

/// Serve a suspended website again.
#[utoipa::path(
    post, path = "/websites/{id}/resume", tag = "websites",
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The resumed website", body = WebsiteView), Errors)
)]
async fn resume_website(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
) -> ApiResult<Json<WebsiteView>> {
    let changes = WebsiteChanges {
        status: Some(WebsiteStatus::Active),
        ..WebsiteChanges::default()
    };
    change_website(&state, actor, id, changes).await
}

/// Retry a `failed` website: its home is made again, its database created when it is missing
/// (its credentials are then in this answer, once), and it is deployed and recorded active. A
/// website whose creation or deletion a restart interrupted, or whose stored configuration
/// its web server refuses, is failed with a reason; deleting it is the other way on.
#[utoipa::path(
    post, path = "/websites/{id}/retry", tag = "websites",
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The website, active again", body = CreatedWebsiteView), Errors)
)]
async fn retry_website(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
) -> ApiResult<Json<CreatedWebsiteView>> {
    let panel = state.panel().clone();
    let for_hint = actor.clone();
    match detached(async move { panel.retry_website(&actor, id).await }).await {
        Ok(retried) => Ok(Json(retried.into())),
        Err(e) => match state.panel().get_website(&for_hint, id).await {
            Ok(site) => Err(with_node_hint(&state, site.node_id, e)),
            Err(_) => Err(e),
        },
    }
}

/// Give a website's database login a new password, returned here once.
#[utoipa::path(
    post, path = "/websites/{id}/database/rotate-password", tag = "websites",
    params(("id" = i64, Path, description = "The website")),
    responses((status = 200, description = "The new credentials", body = DatabaseCredentialsView), Errors)
)]
async fn rotate_database_password(
    State(state): State<AppState>,
    Authed(actor): Authed,
    _: NoQuery,
    PathId(id): PathId<WebsiteId>,
) -> ApiResult<Json<DatabaseCredentialsView>> {
    let panel = state.panel().clone();
    let credentials =
        detached(async move { panel.rotate_database_password(&actor, id).await }).await?;
    Ok(Json(credentials.into()))
}

/// The databases of the websites the caller manages, without secrets. Paged by website id, so
/// a page may hold fewer than `limit` items and still have a next one.
#[utoipa::path(
    get, path = "/databases", tag = "websites", params(PageParams),
    responses((status = 200, description = "A page of databases", body = PageOf<DatabaseView>), Errors)
)]
async fn list_databases(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Paging(page): Paging,
) -> ApiResult<Json<PageOf<DatabaseView>>> {
    let page = state.panel().list_websites(&actor, page).await?;
    let mut items = Vec::new();
    for site in page.items {
        let Some(db) = site.settings.database else {
            continue;
        };
        let endpoint = state
            .notes(site.node_id)
            .databases
            .into_iter()
            .find(|d| d.engine == db.engine);
        items.push(DatabaseView {
            website_id: site.id,
            domain: site.domain,
            node_id: site.node_id,
            engine: db.engine,
            user: db.login()?,
            name: db.name,
            charset: db.charset.to_string(),
            collation: db.collation.to_string(),
            host: endpoint.as_ref().map(|e| e.host.clone()),
            port: endpoint.map(|e| e.port),
        });
    }
    Ok(Json(PageOf {
        items,
        next_after: page.next_after,
    }))
}
