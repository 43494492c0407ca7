//! Websites and their customer databases. Each change is a saga over the store, the database
//! server and the node (pools and vhosts), run under the node's apply lock.
//!
//! A change the node refuses leaves nothing behind and is its own site's alone:
//! - the record goes back to exactly what it was (aliases, web server, PHP version, document
//!   root, status, settings; only `updated_at` moves), written on the panel's authority as an
//!   admin of the site's tenant, since the caller may not write every field (a client never
//!   writes `status`); the node goes back to what it served.
//! - when a web server's test refuses the node's set, it is asked which sites it refuses
//!   ([`WebServer::refused_sites`](crate::web::WebServer::refused_sites)). The changed site
//!   refused: the change is refused with the field and the rule (`settings.extra_directives[1]`,
//!   found by testing prefixes of the site's directives), never the server's output, which
//!   goes to the log. Only other sites refused: their stored state is broken, and they are set
//!   aside ([`Panel::converge_changing`]) so that the change goes through: served without their
//!   tenant directives, else left out, and recorded `failed` until their own next change.

use std::collections::BTreeSet;

use serde::Serialize;

use super::quotas::{LoginStep, prefixed};
use super::recovery::Journal;
use super::{Actor, LastApply, NodeBackends, NodeEntry, Panel};
use crate::accounts::{Isolation, UnixAccount, derived_account_name};
use crate::auth::{Permission, generate_password};
use crate::database::{DatabaseLimits, DatabaseOptions};
use crate::error::{Error, Result};
use crate::jobs::{Job, JobKind, JobOwner, NewJob};
use crate::model::{
    AccountOrigin, DatabaseSettings, ExtraDirectives, NewNodeAccount, NewOperation, NodeAccount,
    NodeId, OperationAccount, OperationKind, OperationState, Role, SagaStep, TenantStatus, Website,
    WebsiteChanges, WebsiteFailure, WebsiteId, WebsiteRequest, WebsiteSettings, WebsiteStatus,
};
use crate::node::{pool_sites, transition_pools};
use crate::page::{Page, PageLimit, PageRequest};
use crate::php::{FailedVersion, PhpInstallation};
use crate::rbac::{Caller, Operator};
use crate::types::{DbEngine, DbName, DbUserName, Password, PhpVersion, SystemUser, WebServerKind};
use crate::web::RefusedSite;

/// How a site reaches its database. The password is shown once, here, and stored nowhere.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCredentials {
    /// The engine.
    pub engine: DbEngine,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// The database.
    pub database: DbName,
    /// The login, which may use this database only.
    pub user: DbUserName,
    /// The login's password.
    #[serde(serialize_with = "expose_password")]
    pub password: Password,
}

fn expose_password<S: serde::Serializer>(
    password: &Password,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(password.expose())
}

/// A website as created, with its database's credentials when it asked for one.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedWebsite {
    /// The website, deployed.
    pub website: Website,
    /// The database's credentials (shown once).
    pub database: Option<DatabaseCredentials>,
}

/// `sites` with `site` in place of its previous version (or added).
pub(super) fn with_site(sites: &[Website], site: &Website) -> Vec<Website> {
    let mut out: Vec<Website> = sites.iter().filter(|s| s.id != site.id).cloned().collect();
    out.push(site.clone());
    out.sort_by_key(|s| s.id);
    out
}

fn without_site(sites: &[Website], id: WebsiteId) -> Vec<Website> {
    sites.iter().filter(|s| s.id != id).cloned().collect()
}

/// The share of `sites` that the web server of `kind` serves.
fn share(sites: &[Website], kind: WebServerKind) -> Vec<Website> {
    sites
        .iter()
        .filter(|s| s.web_server == kind)
        .cloned()
        .collect()
}

/// Why a site set aside is failed (the server's own words go to the log, not to its owner).
/// The error on the record of a site whose PHP version's master does not run on its node.
fn php_down_reason(version: PhpVersion) -> String {
    format!(
        "PHP {} does not run on the node: the site's PHP answers 502 until the node's next apply \
         starts it",
        version.as_str()
    )
}

const SET_ASIDE_REASON: &str = "the web server refuses its stored configuration: it is served \
     without its tenant directives (or not at all) until its next accepted change";

/// Rounds of setting refused sites aside before a move gives up: a site is tried without its
/// tenant directives, then left out.
const SET_ASIDE_ROUNDS: usize = 3;

/// Why one attempt to move a node failed.
enum Refusal {
    /// A web server's configuration test refused the set; `refused` are the sites it names.
    Sites {
        error: Error,
        refused: Vec<RefusedSite>,
    },
    /// Anything else.
    Other(Error),
}

/// `sites` as the node serves them: a [`WebsiteStatus::Failed`] site without its tenant
/// directives (the part of a site only its tenant changes, and what a server refuses).
fn served(sites: &[Website]) -> Vec<Website> {
    sites
        .iter()
        .map(|s| match s.status {
            WebsiteStatus::Failed => without_directives(s),
            _ => s.clone(),
        })
        .collect()
}

fn without_directives(site: &Website) -> Website {
    let mut out = site.clone();
    out.settings.extra_directives = ExtraDirectives::default();
    out
}

/// `sites` with `id` set aside: served without its tenant directives and marked failed when it
/// had some and is not suspended, else left out.
fn set_aside_site(sites: Vec<Website>, id: WebsiteId) -> Vec<Website> {
    sites
        .into_iter()
        .filter_map(|s| {
            if s.id != id {
                return Some(s);
            }
            let retry = s.status != WebsiteStatus::Suspended
                && !s.settings.extra_directives.as_slice().is_empty();
            retry.then(|| {
                let mut out = without_directives(&s);
                out.status = WebsiteStatus::Failed;
                out
            })
        })
        .collect()
}

/// The first field of `after` that differs from `before`, for a refusal that no tenant
/// directive explains.
fn changed_field(before: &Website, after: &Website) -> &'static str {
    if before.settings.operator_directives != after.settings.operator_directives {
        "settings.operator_directives"
    } else if before.aliases != after.aliases {
        "aliases"
    } else if before.document_root != after.document_root {
        "document_root"
    } else if before.php_version != after.php_version {
        "php_version"
    } else if before.web_server != after.web_server {
        "web_server"
    } else if before.status != after.status {
        "status"
    } else if before.settings != after.settings {
        "settings"
    } else {
        "website"
    }
}

/// The server's own words about directive `name`, when they are only about it: the first
/// `[emerg]` message, cut before its file and line, kept only when it names `name` and holds
/// no path.
fn server_said(output: &str, name: &str) -> Option<String> {
    let message = output.lines().find_map(|l| l.split_once("[emerg] "))?.1;
    let message = message.split(" in /").next()?.trim();
    (message.contains(name) && !message.contains(['/', '\\']) && message.len() <= 160)
        .then(|| message.to_owned())
}

fn refused_field(
    field: impl Into<std::borrow::Cow<'static, str>>,
    reason: impl Into<std::borrow::Cow<'static, str>>,
) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The changes that put `site` back as it was.
fn restoring(site: &Website) -> WebsiteChanges {
    WebsiteChanges {
        aliases: Some(site.aliases.clone()),
        web_server: Some(site.web_server),
        php_version: Some(site.php_version),
        document_root: Some(site.document_root.clone()),
        status: Some(site.status),
        settings: Some(site.settings.clone()),
    }
}

fn step(step: &'static str) -> impl FnOnce(Error) -> Error {
    move |source| Error::StepFailed {
        step,
        source: Box::new(source),
    }
}

/// A saga's completed steps, undone newest first when a later step fails.
enum Done {
    /// The panel created the account on the node and recorded it.
    Account(NodeAccount),
    /// The panel recorded the node's shared account for the caller's tenant.
    SharedAccount(NodeAccount),
    /// The store row exists.
    Row(WebsiteId),
    /// The database and its login exist.
    Database(DatabaseSettings),
    /// The site's directories exist.
    Files(Box<Website>),
    /// The node was moved to serve the new state; the value is what it served before.
    Node(Vec<Website>),
}

impl Panel {
    /// Everything `node` should serve, read from the store: every website on it (a suspended
    /// one answers 403 and runs no pool).
    pub(super) async fn node_sites(&self, op: &Operator, node: NodeId) -> Result<Vec<Website>> {
        let mut sites = Vec::new();
        let limit = PageLimit::try_from(PageLimit::MAX)?;
        let mut page = PageRequest::first(limit);
        loop {
            let Page { items, next_after } = self.store.list_node_websites(op, node, page).await?;
            sites.extend(items);
            match next_after {
                Some(after) => page.after = Some(after),
                None => return Ok(sites),
            }
        }
    }

    /// Moves a node from serving `previous` to serving `desired`: pools for both, each web
    /// server to its share of `desired`, then only the desired pools. When a web server
    /// refuses, the web servers before it and the PHP side go back to `previous`, and the web
    /// server is asked which sites it refuses ([`WebServer::refused_sites`]):
    /// - `changing` (the site this change is about) refused: the change is refused with the
    ///   field that broke it ([`Self::refusal`]); nothing else is tried.
    /// - only other sites refused: their stored state is broken (stored before the policy, left
    ///   by an interrupted change, or made invalid by the node): each is set aside and the move
    ///   tried again. A site set aside is served without its tenant directives and recorded
    ///   [`WebsiteStatus::Failed`]; refused even so (or suspended), it is left out of the node
    ///   until its next accepted change. A warning names it and the server's output.
    /// - none named: the error as it is.
    ///
    /// A site already [`WebsiteStatus::Failed`] in the store is served without its tenant
    /// directives, in `previous` and `desired` alike; `changing` comes with the status it is to
    /// have, so a change is its retry.
    pub(super) async fn converge_changing(
        &self,
        entry: &NodeEntry,
        previous: &[Website],
        stored: &[Website],
        changing: Option<WebsiteId>,
    ) -> Result<Vec<FailedVersion>> {
        let result = self
            .converge_recorded(&entry.backends, previous, stored, changing)
            .await;
        let outcome = LastApply {
            finished_at: self.clock.now(),
            error: result.as_ref().err().map(ToString::to_string),
            php_failed: result.as_ref().map(Vec::clone).unwrap_or_default(),
        };
        if let Ok(mut last) = entry.last_apply.lock() {
            *last = Some(outcome);
        }
        result
    }

    /// [`Self::converge_changing`] without keeping its outcome.
    async fn converge_recorded(
        &self,
        backends: &NodeBackends,
        previous: &[Website],
        stored: &[Website],
        changing: Option<WebsiteId>,
    ) -> Result<Vec<FailedVersion>> {
        let desired = stored;
        if let Some(site) = desired
            .iter()
            .find(|s| backends.web_server(s.web_server).is_none())
        {
            return Err(Error::Invalid {
                field: "web_server".into(),
                reason: format!(
                    "website {} uses {}, which its node does not run",
                    site.id, site.web_server
                )
                .into(),
            });
        }
        let previous = served(previous);
        let mut desired = served(desired);
        let mut set_aside = Vec::new();
        let mut php_failed = Vec::new();
        for round in 0..=SET_ASIDE_ROUNDS {
            let refusal = match self.converge_once(backends, &previous, &desired).await {
                Ok(failed) => {
                    php_failed = failed;
                    break;
                }
                Err(refusal) => refusal,
            };
            let (error, refused) = match refusal {
                Refusal::Other(e) => return Err(e),
                Refusal::Sites { error, refused } => (error, refused),
            };
            if let Some(own) = refused.iter().find(|r| Some(r.site) == changing) {
                tracing::warn!(
                    website = own.site.0,
                    tool = %own.tool,
                    output = %own.output,
                    "the web server refuses the change"
                );
                return Err(self.refusal(backends, &previous, &desired, own).await);
            }
            if refused.is_empty() || round == SET_ASIDE_ROUNDS {
                return Err(error);
            }
            for r in &refused {
                tracing::warn!(
                    website = r.site.0,
                    tool = %r.tool,
                    output = %r.output,
                    "the web server refuses a website's stored configuration: set aside"
                );
                set_aside.push(r.site);
                desired = set_aside_site(desired, r.site);
            }
        }
        let op = Operator::assume();
        for id in set_aside {
            let recorded = stored.iter().find(|s| s.id == id).is_some_and(|s| {
                matches!(s.status, WebsiteStatus::Suspended | WebsiteStatus::Failed)
            });
            if !recorded && let Err(e) = self.store.fail_website(&op, id, SET_ASIDE_REASON).await {
                tracing::error!(website = id.0, error = %e, "recording a website as failed failed");
            }
        }
        self.record_php_failures(stored, &php_failed, changing)
            .await?;
        Ok(php_failed)
    }

    /// Puts an error on the record of every site whose PHP version's master does not run
    /// after a converge (the web server answers 502 for its PHP), and takes it off the sites
    /// of versions that run again. The change's own site on such a version fails the change
    /// instead, so that it is undone.
    async fn record_php_failures(
        &self,
        stored: &[Website],
        failed: &[FailedVersion],
        changing: Option<WebsiteId>,
    ) -> Result<()> {
        let op = Operator::assume();
        for version in failed {
            tracing::error!(
                php = version.version.as_str(),
                websites = ?version.sites.iter().map(|s| s.0).collect::<Vec<_>>(),
                reason = %version.reason,
                "a PHP version's master does not run: its websites answer 502"
            );
            if let Some(own) = changing.filter(|id| version.sites.contains(id)) {
                return Err(Error::backend(
                    "php-fpm",
                    format!(
                        "PHP {} does not run on the node, so website {own} cannot be served with it",
                        version.version.as_str()
                    ),
                ));
            }
            for id in &version.sites {
                let live = stored
                    .iter()
                    .find(|s| s.id == *id)
                    .is_some_and(|s| s.status == WebsiteStatus::Active);
                if live
                    && let Err(e) = self
                        .store
                        .fail_website(&op, *id, &php_down_reason(version.version))
                        .await
                {
                    tracing::error!(website = id.0, error = %e, "recording a website as failed failed");
                }
            }
        }
        self.heal_php_failures(stored, failed).await;
        Ok(())
    }

    /// Sites recorded failed only because their PHP version did not run are active again once
    /// it runs.
    async fn heal_php_failures(&self, stored: &[Website], failed: &[FailedVersion]) {
        let down: BTreeSet<PhpVersion> = failed.iter().map(|f| f.version).collect();
        let candidates: Vec<&Website> = stored
            .iter()
            .filter(|s| s.status == WebsiteStatus::Failed)
            .filter(|s| s.php_version.is_some_and(|v| !down.contains(&v)))
            .collect();
        let op = Operator::assume();
        for site in candidates {
            let Some(version) = site.php_version else {
                continue;
            };
            let caller = Caller {
                tenant: site.tenant_id,
                user: site.owner_id,
                role: Role::Admin,
            };
            let reason = match self.store.website_failures(&caller, &[site.id]).await {
                Ok(failures) => failures.into_iter().next().map(|f| f.reason),
                Err(e) => {
                    tracing::error!(website = site.id.0, error = %e, "reading a failure reason failed");
                    None
                }
            };
            if reason.as_deref() == Some(php_down_reason(version).as_str())
                && let Err(e) = self
                    .store
                    .set_website_status(&op, site.id, WebsiteStatus::Active)
                    .await
            {
                tracing::error!(website = site.id.0, error = %e, "recording a website as active failed");
            }
        }
    }

    /// [`Self::converge_changing`] for a move that changes no site of its own (a deletion, an
    /// undo, a node apply): every refused site is set aside.
    pub(super) async fn converge(
        &self,
        entry: &NodeEntry,
        previous: &[Website],
        desired: &[Website],
    ) -> Result<()> {
        self.converge_changing(entry, previous, desired, None)
            .await
            .map(|_| ())
    }

    /// One attempt of [`Self::converge_changing`]; a web server's refusal comes with the sites it names.
    async fn converge_once(
        &self,
        backends: &NodeBackends,
        previous: &[Website],
        desired: &[Website],
    ) -> std::result::Result<Vec<FailedVersion>, Refusal> {
        // Version by version: a master that cannot run keeps no web server from its change
        // (the other versions and the static sites go on serving); the final step says which.
        backends
            .php
            .apply_versions(&transition_pools(previous, desired))
            .await
            .map_err(Refusal::Other)?;
        let (previous_pools, desired_pools) = (pool_sites(previous), pool_sites(desired));
        for (done, web) in backends.web.iter().enumerate() {
            let mine = share(desired, web.kind());
            if let Err(e) = web.apply(&mine).await {
                for undo in backends.web.iter().take(done) {
                    if let Err(again) = undo.apply(&share(previous, undo.kind())).await {
                        tracing::error!(error = %again, "putting a web server back failed");
                    }
                }
                match backends.php.apply_versions(&previous_pools).await {
                    Ok(report) if report.failed.is_empty() => {}
                    Ok(report) => tracing::error!(
                        versions = ?report.failed.iter().map(|f| f.version.as_str()).collect::<Vec<_>>(),
                        "putting the PHP pools back left versions without a master"
                    ),
                    Err(again) => {
                        tracing::error!(error = %again, "putting the PHP pools back failed");
                    }
                }
                if !matches!(e.root(), Error::Validation { .. }) {
                    return Err(Refusal::Other(e));
                }
                let refused = web.refused_sites(&mine).await.unwrap_or_else(|again| {
                    tracing::error!(error = %again, "finding the refused websites failed");
                    Vec::new()
                });
                return Err(Refusal::Sites { error: e, refused });
            }
        }
        backends
            .php
            .apply_versions(&desired_pools)
            .await
            .map(|report| report.failed)
            .map_err(Refusal::Other)
    }

    /// The error for `own`, the changed site its web server refuses: the field that breaks it
    /// and the rule, never the server's output (it names node paths and other sites' files).
    /// The first tenant directive whose addition makes the server refuse the site is named
    /// (`settings.extra_directives[2]`); when the site is refused without any, the first field
    /// that differs from `previous`.
    async fn refusal(
        &self,
        backends: &NodeBackends,
        previous: &[Website],
        desired: &[Website],
        own: &RefusedSite,
    ) -> Error {
        let Some(site) = desired.iter().find(|s| s.id == own.site) else {
            return refused_field("website", "the web server refuses the website");
        };
        let server = site.web_server;
        let directives = site.settings.extra_directives.as_slice();
        if let Some(web) = backends.web_server(server)
            && !directives.is_empty()
        {
            // Refused with the first `n` directives, as far as the server says.
            let refused_with = async |n: usize| -> Option<bool> {
                let mut trial = site.clone();
                trial.settings.extra_directives =
                    ExtraDirectives::try_from(directives[..n].to_vec()).ok()?;
                let sites = share(&with_site(desired, &trial), server);
                match web.refused_sites(&sites).await {
                    Ok(refused) => Some(refused.iter().any(|r| r.site == site.id)),
                    Err(e) => {
                        tracing::error!(website = site.id.0, error = %e, "testing a website's directives failed");
                        None
                    }
                }
            };
            if refused_with(0).await == Some(false) {
                // Accepted with none, refused with all: the first refused prefix ends at it.
                let (mut accepted, mut refused) = (0, directives.len());
                while refused - accepted > 1 {
                    let mid = accepted + (refused - accepted) / 2;
                    match refused_with(mid).await {
                        Some(true) => refused = mid,
                        Some(false) => accepted = mid,
                        None => break,
                    }
                }
                let at = refused - 1;
                let name = directives[at].name.as_str();
                let said = server_said(&own.output, name)
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                return refused_field(
                    format!("settings.extra_directives[{at}]"),
                    format!(
                        "the {server} server's configuration test refuses `{name}` together \
                         with this website's other settings{said}; nothing was changed"
                    ),
                );
            }
        }
        let before = previous.iter().find(|s| s.id == site.id);
        let field = before.map_or("website", |before| changed_field(before, site));
        refused_field(
            field,
            format!(
                "the {server} server's configuration test refuses the website with this \
                 change; nothing was changed"
            ),
        )
    }

    /// Undoes `done`, newest first. An undo that fails is logged and, for the node, leaves an
    /// apply job behind so the node converges later; the caller reports the original error.
    /// False when any undo failed.
    async fn undo(
        &self,
        caller: &Caller,
        entry: &NodeEntry,
        node: NodeId,
        done: Vec<Done>,
    ) -> bool {
        let op = Operator::assume();
        let mut complete = true;
        for step in done.into_iter().rev() {
            let outcome = match &step {
                Done::Account(account) => self.remove_account(&entry.backends, account).await,
                Done::SharedAccount(account) => {
                    self.store.delete_node_account(&op, account.id).await
                }
                Done::Row(id) => self.store.delete_website(caller, *id).await,
                Done::Database(settings) => drop_database(&entry.backends, settings).await,
                Done::Files(site) => entry.backends.files.remove(site).await,
                Done::Node(previous) => match self.node_sites(&op, node).await {
                    Ok(now) => self.converge(entry, &now, previous).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = outcome {
                complete = false;
                tracing::error!(node = node.0, error = %e, "undoing a step failed");
                if matches!(step, Done::Node(_))
                    && let Err(e) = self.enqueue_apply(&op, node).await
                {
                    tracing::error!(node = node.0, error = %e, "enqueueing a node apply failed");
                }
            }
        }
        complete
    }

    pub(super) async fn enqueue_apply(&self, op: &Operator, node: NodeId) -> Result<Job> {
        self.jobs
            .enqueue(
                JobOwner::Operator(op),
                NewJob {
                    kind: JobKind::ApplyNode { node },
                    max_attempts: 8,
                    run_after: self.clock.now(),
                },
            )
            .await
    }

    /// Checks what `site` needs of its node before anything changes.
    async fn check_node_offers(&self, backends: &NodeBackends, site: &SiteNeeds<'_>) -> Result<()> {
        if backends.web_server(site.web_server).is_none() {
            return Err(Error::Invalid {
                field: "web_server".into(),
                reason: format!("the node does not run {}", site.web_server).into(),
            });
        }
        if let Some(version) = site.php_version {
            let installed = backends.php.installed().await?;
            if !installed.iter().any(|i| i.version == version) {
                let have: Vec<&str> = installed.iter().map(|i| i.version.as_str()).collect();
                return Err(Error::Invalid {
                    field: "php_version".into(),
                    reason: format!(
                        "PHP {version} is not installed on the node (installed: {})",
                        have.join(", ")
                    )
                    .into(),
                });
            }
        }
        if let Some(db) = site.database
            && backends.database(db.engine).is_none()
        {
            return Err(Error::Invalid {
                field: "settings.database.engine".into(),
                reason: format!("the node offers no {} server", db.engine).into(),
            });
        }
        Ok(())
    }

    /// Creates a website: its Unix account (unless it names one of its tenant's), the store row,
    /// its database (if its settings ask for one), its directories, its pool and its vhost. Any
    /// failing step undoes the earlier ones.
    pub async fn create_website(
        &self,
        actor: &Actor,
        request: WebsiteRequest,
    ) -> Result<CreatedWebsite> {
        let target = format!("website:{}", request.domain);
        let result = self.create_website_saga(actor, request).await;
        self.audited(actor, "website.create", target, result).await
    }

    async fn create_website_saga(
        &self,
        actor: &Actor,
        request: WebsiteRequest,
    ) -> Result<CreatedWebsite> {
        actor.require(Permission::WebsitesWrite)?;
        let caller = actor.caller();
        if !request.settings.operator_directives.as_slice().is_empty() {
            self.operator(actor)
                .map_err(|_| operator_directives_denied())?;
        }
        let tenant = self.store.own_tenant(caller).await?;
        let mut request = request;
        if let Some(settings) = &request.settings.database {
            request.settings.database = Some(prefixed(&tenant, settings)?);
        }
        let wants_database = request.settings.database.is_some();
        self.check_quotas(
            &tenant,
            &self.tenant_sites(tenant.id, *caller).await?,
            wants_database,
        )
        .await?;
        let node = request.node_id;
        let entry = self.node(node)?;
        self.check_node_offers(
            &entry.backends,
            &SiteNeeds {
                web_server: request.web_server,
                php_version: request.php_version,
                database: request.settings.database.as_ref(),
            },
        )
        .await?;
        check_directives(&entry.backends, request.web_server, &request.settings)?;
        let _held = entry.apply_lock.lock().await;
        let mut journal = self
            .journal_begin(NewOperation {
                tenant_id: caller.tenant,
                user_id: caller.user,
                node_id: node,
                website_id: None,
                kind: OperationKind::Create,
                step: SagaStep::Account,
                state: OperationState {
                    domain: Some(request.domain.clone()),
                    ..OperationState::default()
                },
            })
            .await?;
        let result = self
            .create_steps(caller, &entry, &tenant, request, &mut journal)
            .await;
        self.journal_end(journal).await;
        result
    }

    /// The steps of a creation under the node's apply lock, each recorded in `journal` before
    /// it runs; a failing step undoes the earlier ones (and keeps the journal's row when an
    /// undo fails, so the next start tries again).
    async fn create_steps(
        &self,
        caller: &Caller,
        entry: &NodeEntry,
        tenant: &crate::model::Tenant,
        request: WebsiteRequest,
        journal: &mut Journal,
    ) -> Result<CreatedWebsite> {
        let node = request.node_id;
        let wants_database = request.settings.database.is_some();
        let op = Operator::assume();
        let previous = self.node_sites(&op, node).await?;
        let mut done = Vec::new();
        let account = match self
            .site_account(caller, &entry.backends, &request, &mut done, journal)
            .await
        {
            Ok(account) => account,
            Err(e) => {
                self.undo_into(journal, caller, entry, node, done).await;
                return Err(e);
            }
        };
        let created = async {
            self.journal_step(journal, SagaStep::Record).await?;
            self.store
                .create_website(caller, request.with_account(account))
                .await
        };
        let site = match created.await {
            Ok(site) => site,
            Err(e) => {
                self.undo_into(journal, caller, entry, node, done).await;
                return Err(e);
            }
        };
        done.push(Done::Row(site.id));
        journal.website = Some(site.id);
        journal.state.site = Some(Box::new(site.clone()));
        // Checked again with the new row in place: of two creations racing past the first
        // check, neither stays over the quota.
        let recheck = async {
            let mut others = self.tenant_sites(tenant.id, *caller).await?;
            others.retain(|s| s.id != site.id);
            self.check_quotas(tenant, &others, wants_database).await
        };
        if let Err(e) = recheck.await {
            self.undo_into(journal, caller, entry, node, done).await;
            return Err(e);
        }
        let limits = tenant.quotas.database_limits;
        let credentials = match &site.settings.database {
            Some(settings) => {
                journal.state.database = Some(settings.clone());
                let made = async {
                    self.journal_step(journal, SagaStep::Database).await?;
                    create_database(&entry.backends, settings, &limits).await
                };
                match made.await {
                    Ok(credentials) => {
                        done.push(Done::Database(settings.clone()));
                        Some(credentials)
                    }
                    Err(e) => {
                        self.undo_into(journal, caller, entry, node, done).await;
                        return Err(step("database")(e));
                    }
                }
            }
            None => None,
        };
        // Recorded before it runs: a half-done prepare is removed too, and the home derives
        // from the new site's id, so it can hold nothing else.
        done.push(Done::Files(Box::new(site.clone())));
        let prepared = async {
            self.journal_step(journal, SagaStep::Files).await?;
            entry.backends.files.prepare(&site).await
        };
        if let Err(e) = prepared.await {
            self.undo_into(journal, caller, entry, node, done).await;
            return Err(step("files")(e));
        }
        let desired = with_site(&previous, &site);
        done.push(Done::Node(previous.clone()));
        let deployed = async {
            self.journal_step(journal, SagaStep::Deploy).await?;
            self.converge_changing(entry, &previous, &desired, Some(site.id))
                .await
        };
        if let Err(e) = deployed.await {
            self.undo_into(journal, caller, entry, node, done).await;
            return Err(step("deploy")(e));
        }
        let activated = async {
            self.journal_step(journal, SagaStep::Activate).await?;
            self.store
                .set_website_status(&op, site.id, WebsiteStatus::Active)
                .await
        };
        match activated.await {
            Ok(website) => Ok(CreatedWebsite {
                website,
                database: credentials,
            }),
            Err(e) => {
                self.undo_into(journal, caller, entry, node, done).await;
                Err(step("record")(e))
            }
        }
    }

    /// [`Self::undo`] for a journaled change: an undo that fails keeps the journal's row.
    async fn undo_into(
        &self,
        journal: &mut Journal,
        caller: &Caller,
        entry: &NodeEntry,
        node: NodeId,
        done: Vec<Done>,
    ) {
        if !self.undo(caller, entry, node, done).await {
            journal.keep = true;
        }
    }

    /// The account a new site runs as, under the node's apply lock. A named account must be
    /// one the panel keeps for the caller's tenant on the node, and every site already running
    /// as it must be one the caller manages (a client cannot borrow another client's account).
    /// Otherwise the node creates one for the site, or, on a node without separate accounts,
    /// the shared one is used if the node's sites belong to the caller's tenant (or the
    /// operator allowed tenants to share it).
    async fn site_account(
        &self,
        caller: &Caller,
        backends: &NodeBackends,
        request: &WebsiteRequest,
        done: &mut Vec<Done>,
        journal: &mut Journal,
    ) -> Result<SystemUser> {
        let op = Operator::assume();
        let node = request.node_id;
        match backends.accounts.isolation() {
            Isolation::None {
                account,
                tenants_may_share,
            } => {
                if let Some(named) = &request.system_user
                    && *named != account
                {
                    return Err(invalid_account(format!(
                        "node {node} has no separate Unix accounts (the panel does not run as \
                         root): every website on it runs as {account}"
                    )));
                }
                match self.store.find_node_account(&op, node, &account).await? {
                    Some(record) if record.tenant_id == caller.tenant || tenants_may_share => {}
                    Some(_) => {
                        return Err(invalid_account(format!(
                            "node {node} runs every website as {account}, and those websites \
                             belong to another tenant; the operator can allow tenants to share \
                             it (node.allow_shared_account)"
                        )));
                    }
                    None => {
                        // Websites made before the panel recorded accounts run as it too.
                        let others = self
                            .sites_running_as(node, &account)
                            .await?
                            .iter()
                            .any(|s| s.tenant_id != caller.tenant);
                        if others && !tenants_may_share {
                            return Err(invalid_account(format!(
                                "node {node} runs every website as {account}, and some belong \
                                 to another tenant; the operator can allow tenants to share it \
                                 (node.allow_shared_account)"
                            )));
                        }
                        let Some(unix) = backends.accounts.find(&account).await? else {
                            return Err(invalid_account(format!(
                                "{account} is not an account on node {node}"
                            )));
                        };
                        journal.state.account = Some(OperationAccount {
                            name: account.clone(),
                            made: true,
                        });
                        self.journal_step(journal, SagaStep::Account).await?;
                        let record = self
                            .store
                            .record_node_account(
                                &op,
                                NewNodeAccount {
                                    tenant_id: caller.tenant,
                                    node_id: node,
                                    name: account.clone(),
                                    uid: unix.uid,
                                    gid: unix.gid,
                                    origin: AccountOrigin::Shared,
                                },
                            )
                            .await?;
                        done.push(Done::SharedAccount(record));
                    }
                }
                Ok(account)
            }
            Isolation::Accounts => match &request.system_user {
                Some(named) => {
                    let refused = || {
                        invalid_account(format!(
                            "{named} is not an account the panel keeps for your tenant on node \
                             {node} (leave system_user out to give the website its own)"
                        ))
                    };
                    let record = match self.store.get_node_account(caller, node, named).await {
                        Ok(record) => record,
                        Err(Error::NotFound { .. }) => return Err(refused()),
                        Err(e) => return Err(e),
                    };
                    // A shared record is left from a time without root: that account is the
                    // panel's own user, never a site's.
                    if record.origin == AccountOrigin::Shared {
                        return Err(refused());
                    }
                    let sites = self.sites_running_as(node, &record.name).await?;
                    // An account no site uses (an adopted one, or one whose release failed)
                    // belongs to the tenant as a whole: only its admins may hand it out.
                    if sites.is_empty() && caller.role != Role::Admin {
                        return Err(refused());
                    }
                    for site in sites {
                        if self.store.get_website(caller, site.id).await.is_err() {
                            return Err(refused());
                        }
                    }
                    Ok(record.name)
                }
                None => {
                    let record = self
                        .create_account(caller, backends, request, journal)
                        .await?;
                    let name = record.name.clone();
                    done.push(Done::Account(record));
                    Ok(name)
                }
            },
        }
    }

    /// Creates and records a new account named after the site's domain (`-2`, `-3`, … when
    /// the name is taken on the node or in the store).
    async fn create_account(
        &self,
        caller: &Caller,
        backends: &NodeBackends,
        request: &WebsiteRequest,
        journal: &mut Journal,
    ) -> Result<NodeAccount> {
        let op = Operator::assume();
        let node = request.node_id;
        for attempt in 0..32 {
            let name = derived_account_name(&request.domain, attempt)?;
            if self
                .store
                .find_node_account(&op, node, &name)
                .await?
                .is_some()
                || backends.accounts.find(&name).await?.is_some()
            {
                continue;
            }
            journal.state.account = Some(OperationAccount {
                name: name.clone(),
                made: true,
            });
            self.journal_step(journal, SagaStep::Account).await?;
            let unix = match backends.accounts.create(&name).await {
                Ok(unix) => unix,
                Err(Error::AlreadyExists { .. }) => continue,
                Err(e) => {
                    // The name was free a moment ago under the node's apply lock: whatever
                    // exists under it now is what this failed create left behind.
                    if let Ok(Some(left)) = backends.accounts.find(&name).await
                        && let Err(again) = backends.accounts.remove(&left).await
                    {
                        tracing::error!(account = %name, error = %again, "removing a half-created account failed");
                    }
                    return Err(step("account")(e));
                }
            };
            let new = NewNodeAccount {
                tenant_id: caller.tenant,
                node_id: node,
                name,
                uid: unix.uid,
                gid: unix.gid,
                origin: AccountOrigin::Created,
            };
            return match self.store.record_node_account(&op, new).await {
                Ok(record) => Ok(record),
                Err(e) => {
                    if let Err(again) = backends.accounts.remove(&unix).await {
                        tracing::error!(account = %unix.name, error = %again, "removing an unrecorded account failed");
                    }
                    Err(step("account")(e))
                }
            };
        }
        Err(invalid_account(format!(
            "no free account name derived from {} on node {node}",
            request.domain
        )))
    }

    /// Every site on `node` that runs as `account`, whatever its status (a site stuck half-way
    /// through a saga still owns its account).
    pub(super) async fn sites_running_as(
        &self,
        node: NodeId,
        account: &SystemUser,
    ) -> Result<Vec<Website>> {
        let sites = self.node_sites(&Operator::assume(), node).await?;
        Ok(sites
            .into_iter()
            .filter(|s| s.system_user == *account)
            .collect())
    }

    /// Removes an account the panel created, then forgets it.
    pub(super) async fn remove_account(
        &self,
        backends: &NodeBackends,
        account: &NodeAccount,
    ) -> Result<()> {
        let unix = UnixAccount {
            name: account.name.clone(),
            uid: account.uid,
            gid: account.gid,
        };
        backends.accounts.remove(&unix).await?;
        self.store
            .delete_node_account(&Operator::assume(), account.id)
            .await
    }

    /// After a site left `node`: the account it ran as goes too when no other site uses it and
    /// the panel created it (an adopted account stays; a shared record is forgotten).
    pub(super) async fn release_account(
        &self,
        backends: &NodeBackends,
        node: NodeId,
        name: &SystemUser,
    ) -> Result<()> {
        let op = Operator::assume();
        if !self.sites_running_as(node, name).await?.is_empty() {
            return Ok(());
        }
        let Some(record) = self.store.find_node_account(&op, node, name).await? else {
            return Ok(());
        };
        match record.origin {
            AccountOrigin::Created => self.remove_account(backends, &record).await,
            AccountOrigin::Shared => self.store.delete_node_account(&op, record.id).await,
            AccountOrigin::Adopted => Ok(()),
        }
    }

    /// A website the actor manages.
    pub async fn get_website(&self, actor: &Actor, id: WebsiteId) -> Result<Website> {
        actor.require(Permission::WebsitesRead)?;
        self.store.get_website(actor.caller(), id).await
    }

    /// Why those of `ids` that are failed and the actor manages failed.
    pub async fn website_failures(
        &self,
        actor: &Actor,
        ids: &[WebsiteId],
    ) -> Result<Vec<WebsiteFailure>> {
        actor.require(Permission::WebsitesRead)?;
        self.store.website_failures(actor.caller(), ids).await
    }

    /// The websites the actor manages.
    pub async fn list_websites(&self, actor: &Actor, page: PageRequest) -> Result<Page<Website>> {
        actor.require(Permission::WebsitesRead)?;
        self.store.list_websites(actor.caller(), page).await
    }

    /// Changes a website and deploys the change; when the node refuses it, the record and the
    /// node go back to what they were. Switching the PHP version, the web server, suspending
    /// and resuming are changes like any other. The database a site was created with cannot be
    /// changed here.
    pub async fn update_website(
        &self,
        actor: &Actor,
        id: WebsiteId,
        changes: WebsiteChanges,
    ) -> Result<Website> {
        let action = match (&changes.php_version, &changes.web_server, &changes.status) {
            (Some(_), None, None) => "website.switch_php",
            (None, Some(_), None) => "website.switch_web_server",
            (None, None, Some(WebsiteStatus::Suspended)) => "website.suspend",
            (None, None, Some(_)) => "website.resume",
            _ => "website.update",
        };
        let result = self.update_website_saga(actor, id, changes).await;
        self.audited(actor, action, format!("website:{id}"), result)
            .await
    }

    async fn update_website_saga(
        &self,
        actor: &Actor,
        id: WebsiteId,
        changes: WebsiteChanges,
    ) -> Result<Website> {
        actor.require(Permission::WebsitesWrite)?;
        if let Some(status) = changes.status
            && !matches!(status, WebsiteStatus::Active | WebsiteStatus::Suspended)
        {
            return Err(Error::Invalid {
                field: "status".into(),
                reason: "may be set to active or suspended only".into(),
            });
        }
        self.deploy_changes(actor.caller(), id, move |current| {
            let mut changes = changes;
            if let Some(settings) = &mut changes.settings {
                if settings.database != current.settings.database {
                    return Err(Error::Invalid {
                        field: "settings.database".into(),
                        reason: "is chosen when the website is created and cannot be changed"
                            .into(),
                    });
                }
                settings.operator_directives = current.settings.operator_directives.clone();
            }
            Ok(changes)
        })
        .await
    }

    /// Replaces the operator's own directives of a website (the escape hatch past the
    /// directive policy): the operator only, audited, deployed like any change.
    pub async fn set_operator_directives(
        &self,
        actor: &Actor,
        id: WebsiteId,
        directives: ExtraDirectives,
    ) -> Result<Website> {
        let result = async {
            actor.require(Permission::WebsitesWrite)?;
            let op = self
                .operator(actor)
                .map_err(|_| operator_directives_denied())?;
            // The operator works on any tenant's website, as an admin of that tenant.
            let site = self.store.get_any_website(&op, id).await?;
            let caller = Caller {
                tenant: site.tenant_id,
                user: actor.caller().user,
                role: Role::Admin,
            };
            self.deploy_changes(&caller, id, move |current| {
                Ok(WebsiteChanges {
                    settings: Some(WebsiteSettings {
                        operator_directives: directives,
                        ..current.settings.clone()
                    }),
                    ..WebsiteChanges::default()
                })
            })
            .await
        }
        .await;
        self.audited(
            actor,
            "website.operator_directives",
            format!("website:{id}"),
            result,
        )
        .await
    }

    /// Under the node's apply lock, reads the website, records what `edit` makes of it and
    /// moves the node there; when the node refuses, the record and the node go back. Reading
    /// under the lock keeps two changes from undoing each other (a tenant's settings update
    /// cannot restore operator directives the operator just removed).
    async fn deploy_changes(
        &self,
        caller: &Caller,
        id: WebsiteId,
        edit: impl FnOnce(&Website) -> Result<WebsiteChanges> + Send,
    ) -> Result<Website> {
        // A website never changes node, so the lock read before the website is the right one.
        let node = self.store.get_website(caller, id).await?.node_id;
        let entry = self.node(node)?;
        let _held = entry.apply_lock.lock().await;
        let current = self.store.get_website(caller, id).await?;
        let changes = edit(&current)?;
        let web_server = changes.web_server.unwrap_or(current.web_server);
        self.check_node_offers(
            &entry.backends,
            &SiteNeeds {
                web_server,
                php_version: changes.php_version.unwrap_or(current.php_version),
                database: None,
            },
        )
        .await?;
        // Only what changes is checked: directives stored before the policy existed (which the
        // renderer leaves out) do not block a suspension or a PHP switch.
        let directives = changes
            .settings
            .as_ref()
            .map(|s| &s.extra_directives)
            .filter(|d| **d != current.settings.extra_directives);
        if changes.web_server.is_some() || directives.is_some() {
            check_directives(
                &entry.backends,
                web_server,
                changes.settings.as_ref().unwrap_or(&current.settings),
            )?;
        }
        // A suspended site's database login is locked (its sessions end); resuming unlocks it
        // unless the whole tenant is suspended. This goes first, so a failure changes nothing.
        let login = match changes.status.filter(|s| *s != current.status) {
            Some(WebsiteStatus::Suspended) => Some(LoginStep::Lock),
            Some(_) if self.store.own_tenant(caller).await?.status == TenantStatus::Active => {
                Some(LoginStep::Unlock)
            }
            _ => None,
        };
        let undo_login = || async {
            let back = match login {
                Some(LoginStep::Lock) => LoginStep::Unlock,
                _ => LoginStep::Lock,
            };
            if login.is_some()
                && let Err(e) = self.login_step(&current, back).await
            {
                tracing::error!(website = id.0, error = %e, "restoring a database login's lock failed");
            }
        };
        let mut journal = self
            .journal_begin(NewOperation {
                tenant_id: current.tenant_id,
                user_id: caller.user,
                node_id: current.node_id,
                website_id: Some(id),
                kind: OperationKind::Update,
                step: if login.is_some() {
                    SagaStep::Database
                } else {
                    SagaStep::Record
                },
                state: OperationState {
                    site: Some(Box::new(current.clone())),
                    ..OperationState::default()
                },
            })
            .await?;
        let result = async {
            if let Some(change) = login {
                self.login_step(&current, change)
                    .await
                    .map_err(step("database"))?;
                if let Err(e) = self.journal_step(&mut journal, SagaStep::Record).await {
                    undo_login().await;
                    return Err(e);
                }
            }
            self.update_steps(caller, &entry, &current, changes, &mut journal, undo_login)
                .await
        }
        .await;
        self.journal_end(journal).await;
        result
    }

    /// The record and deploy steps of [`Self::deploy_changes`]. The store holds the new record
    /// from the moment `update_website` returns, before the node moves: a crash after it
    /// leaves a record the start-up apply converges the node to (or sets aside when refused).
    async fn update_steps<F: Future<Output = ()>>(
        &self,
        caller: &Caller,
        entry: &NodeEntry,
        current: &Website,
        changes: WebsiteChanges,
        journal: &mut Journal,
        undo_login: impl Fn() -> F,
    ) -> Result<Website> {
        let id = current.id;
        let op = Operator::assume();
        let recorded = async {
            let previous = self.node_sites(&op, current.node_id).await?;
            let updated = self.store.update_website(caller, id, changes).await?;
            Ok::<_, Error>((previous, updated))
        };
        let (previous, updated) = match recorded.await {
            Ok(both) => both,
            Err(e) => {
                undo_login().await;
                return Err(e);
            }
        };
        // A failed site's change is its retry: it is deployed whole, as the status it had
        // before it failed (a failed site is never suspended), and recorded so when accepted.
        let retried = updated.status == WebsiteStatus::Failed;
        let mut deployed = updated.clone();
        if retried {
            deployed.status = WebsiteStatus::Active;
        }
        let desired = with_site(&previous, &deployed);
        let moved = async {
            self.journal_step(journal, SagaStep::Deploy).await?;
            self.converge_changing(entry, &previous, &desired, Some(id))
                .await
        };
        if let Err(e) = moved.await {
            // Put back on the panel's own authority, as an admin of the site's tenant: the
            // caller may not set everything the record holds (a client never sets `status`).
            let restorer = Caller {
                tenant: current.tenant_id,
                user: caller.user,
                role: Role::Admin,
            };
            if let Err(again) = self
                .store
                .update_website(&restorer, id, restoring(current))
                .await
            {
                tracing::error!(website = id.0, error = %again, "restoring a website record failed");
            }
            self.undo(caller, entry, current.node_id, vec![Done::Node(previous)])
                .await;
            undo_login().await;
            return Err(step("deploy")(e));
        }
        if retried {
            return match self
                .store
                .set_website_status(&op, id, WebsiteStatus::Active)
                .await
            {
                Ok(site) => Ok(site),
                Err(e) => {
                    tracing::error!(website = id.0, error = %e, "recording a retried website as active failed");
                    Ok(updated)
                }
            };
        }
        Ok(updated)
    }

    /// Deletes a website: its vhost and pool, its database and login, its record, then its
    /// files. When the database cannot be dropped the site is deployed again and keeps its
    /// record.
    pub async fn delete_website(&self, actor: &Actor, id: WebsiteId) -> Result<()> {
        let result = self.delete_website_saga(actor, id).await;
        self.audited(actor, "website.delete", format!("website:{id}"), result)
            .await
    }

    async fn delete_website_saga(&self, actor: &Actor, id: WebsiteId) -> Result<()> {
        actor.require(Permission::WebsitesWrite)?;
        let caller = actor.caller();
        let node = self.store.get_website(caller, id).await?.node_id;
        let entry = self.node(node)?;
        let _held = entry.apply_lock.lock().await;
        // Read under the lock: the record as no other change of it will leave it.
        let current = self.store.get_website(caller, id).await?;
        let mut journal = self
            .journal_begin(NewOperation {
                tenant_id: current.tenant_id,
                user_id: caller.user,
                node_id: node,
                website_id: Some(id),
                kind: OperationKind::Delete,
                step: SagaStep::Deploy,
                state: OperationState {
                    database: current.settings.database.clone(),
                    site: Some(Box::new(current.clone())),
                    ..OperationState::default()
                },
            })
            .await?;
        let result = self
            .delete_steps(caller, &entry, &current, &mut journal)
            .await;
        self.journal_end(journal).await;
        result
    }

    /// The steps of a deletion: node, database, record, files, account. Until the record is
    /// gone a failure puts the node back and the site stays; after it, a failure keeps the
    /// journal's row so the next start finishes the deletion.
    async fn delete_steps(
        &self,
        caller: &Caller,
        entry: &NodeEntry,
        current: &Website,
        journal: &mut Journal,
    ) -> Result<()> {
        let (id, node) = (current.id, current.node_id);
        let op = Operator::assume();
        let previous = self.node_sites(&op, node).await?;
        let desired = without_site(&previous, id);
        self.converge(entry, &previous, &desired)
            .await
            .map_err(step("deploy"))?;
        if let Some(settings) = &current.settings.database {
            let dropped = async {
                self.journal_step(journal, SagaStep::Database).await?;
                drop_database(&entry.backends, settings).await
            };
            if let Err(e) = dropped.await {
                self.undo(caller, entry, node, vec![Done::Node(previous)])
                    .await;
                return Err(step("database")(e));
            }
        }
        let deleted = async {
            self.journal_step(journal, SagaStep::Record).await?;
            self.store.delete_website(caller, id).await
        };
        if let Err(e) = deleted.await {
            self.undo(caller, entry, node, vec![Done::Node(previous)])
                .await;
            return Err(step("record")(e));
        }
        // Last, because it cannot be undone: a failure here leaves files behind, never a
        // site without its files.
        journal.keep = true;
        self.journal_step(journal, SagaStep::Files).await?;
        entry
            .backends
            .files
            .remove(current)
            .await
            .map_err(step("files"))?;
        self.journal_step(journal, SagaStep::Release).await?;
        self.release_account(&entry.backends, node, &current.system_user)
            .await
            .map_err(step("account"))?;
        journal.keep = false;
        Ok(())
    }

    /// Gives a website's database login a new password and returns it (shown once).
    pub async fn rotate_database_password(
        &self,
        actor: &Actor,
        id: WebsiteId,
    ) -> Result<DatabaseCredentials> {
        let result = async {
            actor.require(Permission::DatabasesWrite)?;
            let site = self.store.get_website(actor.caller(), id).await?;
            let settings = site
                .settings
                .database
                .as_ref()
                .ok_or_else(|| Error::Conflict(format!("website {id} has no database")))?;
            let entry = self.node(site.node_id)?;
            let server = database_server(&entry.backends, settings.engine)?;
            let user = settings.login()?;
            let password = generate_password()?;
            server.backend.rotate_password(&user, &password).await?;
            Ok(DatabaseCredentials {
                engine: settings.engine,
                host: server.host.clone(),
                port: server.port,
                database: settings.name.clone(),
                user,
                password,
            })
        }
        .await;
        self.audited(
            actor,
            "database.rotate_password",
            format!("website:{id}"),
            result,
        )
        .await
    }

    /// The PHP versions installed on a node (every user may ask: clients choose among them).
    pub async fn php_versions(&self, actor: &Actor, node: NodeId) -> Result<Vec<PhpInstallation>> {
        actor.require(Permission::WebsitesRead)?;
        self.node(node)?.backends.php.installed().await
    }
}

fn invalid_account(reason: String) -> Error {
    Error::Invalid {
        field: "system_user".into(),
        reason: reason.into(),
    }
}

fn operator_directives_denied() -> Error {
    Error::denied(
        "settings.operator_directives: only the hosting operator may set operator directives",
    )
}

/// Checks a site's tenant directives against the policy of the web server that renders them.
fn check_directives(
    backends: &NodeBackends,
    web_server: WebServerKind,
    settings: &WebsiteSettings,
) -> Result<()> {
    let Some(web) = backends.web_server(web_server) else {
        return Ok(());
    };
    web.directive_policy()
        .check(settings.extra_directives.as_slice())
        .map_err(|e| Error::Invalid {
            field: format!("settings.{}", e.field).into(),
            reason: e.rule,
        })
}

/// What a site needs of its node.
struct SiteNeeds<'a> {
    web_server: WebServerKind,
    php_version: Option<crate::types::PhpVersion>,
    database: Option<&'a DatabaseSettings>,
}

pub(super) fn database_server(
    backends: &NodeBackends,
    engine: DbEngine,
) -> Result<&super::DatabaseServer> {
    backends.database(engine).ok_or_else(|| Error::Invalid {
        field: "settings.database.engine".into(),
        reason: format!("the node offers no {engine} server").into(),
    })
}

/// Creates the database, its login with the tenant's limits, and the login's grant; undoes its
/// own steps on failure.
pub(super) async fn create_database(
    backends: &NodeBackends,
    settings: &DatabaseSettings,
    limits: &DatabaseLimits,
) -> Result<DatabaseCredentials> {
    let server = database_server(backends, settings.engine)?;
    let db = &server.backend;
    let user = settings.login()?;
    let password = generate_password()?;
    let options = DatabaseOptions {
        charset: Some(settings.charset.clone()),
        collation: Some(settings.collation.clone()),
    };
    db.create_database(&settings.name, &options).await?;
    let undo_database = || async {
        if let Err(e) = db.drop_database(&settings.name).await {
            tracing::error!(database = %settings.name, error = %e, "dropping a half-created database failed");
        }
    };
    if let Err(e) = db.create_user(&user, &password).await {
        undo_database().await;
        return Err(e);
    }
    let limited_and_granted = async {
        db.set_limits(&user, limits).await?;
        db.grant_all(&user, &settings.name).await
    };
    if let Err(e) = limited_and_granted.await {
        if let Err(again) = db.drop_user(&user).await {
            tracing::error!(user = %user, error = %again, "dropping a half-created login failed");
        }
        undo_database().await;
        return Err(e);
    }
    Ok(DatabaseCredentials {
        engine: settings.engine,
        host: server.host.clone(),
        port: server.port,
        database: settings.name.clone(),
        user,
        password,
    })
}

/// Drops a site's database login and database. Either one already gone counts as done: a
/// customer may drop its own database, and its site must stay deletable.
pub(super) async fn drop_database(
    backends: &NodeBackends,
    settings: &DatabaseSettings,
) -> Result<()> {
    let server = database_server(backends, settings.engine)?;
    let user = settings.login()?;
    let done = |result: Result<()>| match result {
        Err(Error::NotFound { .. }) => Ok(()),
        other => other,
    };
    done(server.backend.drop_user(&user).await)?;
    done(server.backend.drop_database(&settings.name).await)
}
