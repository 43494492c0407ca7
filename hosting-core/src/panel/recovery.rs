//! The saga journal and what a start does with it.
//!
//! Every website change (creation, update, deletion, retry) writes a row to the store's
//! journal ([`PanelStore::begin_operation`](crate::store::PanelStore::begin_operation)) under
//! the node's apply lock, moves it before each step with what the step is about to make
//! (account name, database, record), and removes it when the change ends. Each move is logged
//! at INFO as `saga step` (saga, operation, website, domain, step), which is also what the
//! crash tests wait for. A row still there when the panel starts is a change a crash
//! interrupted, and [`Panel::recover`] ends it before any job runs:
//! - a creation is undone whole: database and login dropped, record deleted, node converged
//!   without it, home removed, the account removed when the creation made it and no other
//!   site uses it. Only a creation that had recorded its website active is kept (finished).
//!   When the database cannot be dropped or the record deleted, the website stays, `failed`
//!   with a reason, to be retried ([`Panel::retry_website`]) or deleted.
//! - a deletion is finished: database, record, node, home, account.
//! - an update leaves the record as the store holds it (the new one once `update_website`
//!   returned, the old one before); the database login's lock is set to match it and the node
//!   converges to the store, so the two agree.
//!
//! A website left `provisioning` without a journal row (made before the journal existed) is
//! recorded `failed` with a reason. A cleanup that fails after the record is gone keeps its
//! row, and the next start tries again. So does a change whose caller's future was dropped
//! half-way (the HTTP layer runs changes detached; an embedder that drops one leaves its row to
//! the next start).

use serde::Serialize;

use super::sites::{CreatedWebsite, database_server, drop_database, with_site};
use super::{Actor, NodeBackends, NodeEntry, Panel};
use crate::auth::Permission;
use crate::error::{Error, Result};
use crate::model::{
    AccountOrigin, NewOperation, NodeId, Operation, OperationAccount, OperationId, OperationKind,
    OperationState, Role, SagaStep, TenantStatus, Website, WebsiteId, WebsiteStatus,
};
use crate::page::{PageLimit, PageRequest};
use crate::rbac::{Caller, Operator};

/// A change's row in the journal, moved before each step.
#[derive(Debug)]
pub(super) struct Journal {
    id: OperationId,
    kind: OperationKind,
    /// The website, once it has a record.
    pub(super) website: Option<WebsiteId>,
    /// What the change made so far (written with the next step).
    pub(super) state: OperationState,
    /// An undo failed or the change stopped half-way: the row stays for the next start.
    pub(super) keep: bool,
}

fn log_step(
    id: OperationId,
    kind: OperationKind,
    journal: &OperationState,
    website: Option<WebsiteId>,
    step: SagaStep,
) {
    tracing::info!(
        saga = %kind,
        operation = id.0,
        website = website.map(|w| w.0),
        domain = journal.domain.as_ref().map(tracing::field::display),
        step = %step,
        "saga step"
    );
}

/// What [`Panel::recover`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Creations undone whole.
    pub undone: usize,
    /// Creations that had finished (recorded active) before the crash: kept.
    pub finished: usize,
    /// Updates whose node is converged to the stored record.
    pub updates: usize,
    /// Deletions finished.
    pub deleted: usize,
    /// Websites recorded `failed` with a reason.
    pub failed: Vec<WebsiteId>,
    /// Journal rows kept for the next start (a cleanup failed, or the node is not attached).
    pub left: usize,
    /// Nodes whose convergence failed here; an apply job is queued for each.
    pub queued: Vec<NodeId>,
}

/// Leftovers of an ended change, removed once the node no longer serves them.
struct Cleanup {
    operation: OperationId,
    site: Option<Website>,
    /// The account to release; `made` also removes one the store never recorded.
    account: Option<OperationAccount>,
}

/// The reason a website is failed when its creation could not be undone.
fn interrupted(kind: OperationKind, what: &str) -> String {
    let change = match kind {
        OperationKind::Create => "its creation",
        OperationKind::Update => "a change to it",
        OperationKind::Delete => "its deletion",
    };
    format!(
        "{change} was interrupted by a restart of the panel and {what}; retry it \
         (POST /websites/{{id}}/retry) or delete it"
    )
}

impl Panel {
    /// Writes a change's first row to the journal.
    pub(super) async fn journal_begin(&self, new: NewOperation) -> Result<Journal> {
        let row = self.store.begin_operation(&Operator::assume(), new).await?;
        log_step(row.id, row.kind, &row.state, row.website_id, row.step);
        Ok(Journal {
            id: row.id,
            kind: row.kind,
            website: row.website_id,
            state: row.state,
            keep: false,
        })
    }

    /// Records that the change is about to run `step`, with what it made so far.
    pub(super) async fn journal_step(&self, journal: &mut Journal, step: SagaStep) -> Result<()> {
        self.store
            .advance_operation(
                &Operator::assume(),
                journal.id,
                journal.website,
                step,
                &journal.state,
            )
            .await?;
        log_step(
            journal.id,
            journal.kind,
            &journal.state,
            journal.website,
            step,
        );
        Ok(())
    }

    /// Removes the change's row unless it is to be kept for the next start.
    pub(super) async fn journal_end(&self, journal: Journal) {
        if journal.keep {
            tracing::warn!(
                operation = journal.id.0,
                website = journal.website.map(|w| w.0),
                "a website change stopped half-way: the next start finishes or undoes it"
            );
            return;
        }
        if let Err(e) = self
            .store
            .end_operation(&Operator::assume(), journal.id)
            .await
        {
            tracing::error!(operation = journal.id.0, error = %e, "removing a journal row failed");
        }
    }

    /// Finishes or undoes every website change a crash interrupted (see the module docs), and
    /// records `failed` every website still `provisioning` without one. Call it at start,
    /// after the nodes are attached and before any job runs; a node whose convergence fails
    /// here gets an apply job.
    pub async fn recover(&self, op: &Operator) -> Result<Recovery> {
        let mut operations = Vec::new();
        let limit = PageLimit::try_from(PageLimit::MAX)?;
        let mut page = PageRequest::first(limit);
        loop {
            let found = self.store.list_operations(op, page).await?;
            operations.extend(found.items);
            match found.next_after {
                Some(after) => page.after = Some(after),
                None => break,
            }
        }
        let mut report = Recovery::default();
        let nodes: Vec<NodeId> = match self.nodes.read() {
            Ok(nodes) => nodes.keys().copied().collect(),
            Err(_) => return Err(Error::backend("panel", "the node table is poisoned")),
        };
        for operation in operations.iter().filter(|o| !nodes.contains(&o.node_id)) {
            tracing::warn!(
                operation = operation.id.0,
                node = operation.node_id.0,
                "an interrupted website change waits for its node to be attached"
            );
            report.left += 1;
        }
        for node in nodes {
            let mine: Vec<&Operation> = operations.iter().filter(|o| o.node_id == node).collect();
            self.recover_node(op, node, &mine, &mut report).await?;
        }
        if report != Recovery::default() {
            tracing::info!(
                ?report,
                "recovered the website changes a restart interrupted"
            );
        }
        Ok(report)
    }

    async fn recover_node(
        &self,
        op: &Operator,
        node: NodeId,
        operations: &[&Operation],
        report: &mut Recovery,
    ) -> Result<()> {
        let entry = self.node(node)?;
        let _held = entry.apply_lock.lock().await;
        let mut cleanups = Vec::new();
        let failed_before = report.failed.len();
        for operation in operations {
            tracing::info!(
                operation = operation.id.0,
                saga = %operation.kind,
                step = %operation.step,
                website = operation.website_id.map(|w| w.0),
                "recovering an interrupted website change"
            );
            let cleanup = match operation.kind {
                OperationKind::Create => self.undo_creation(op, &entry, operation, report).await,
                OperationKind::Delete => self.finish_deletion(op, &entry, operation, report).await,
                OperationKind::Update => {
                    self.settle_update(op, operation).await;
                    report.updates += 1;
                    Some(Cleanup {
                        operation: operation.id,
                        site: None,
                        account: None,
                    })
                }
            };
            cleanups.extend(cleanup);
        }
        for site in self.node_sites(op, node).await? {
            if site.status == WebsiteStatus::Provisioning
                && !operations.iter().any(|o| o.website_id == Some(site.id))
            {
                let reason = interrupted(
                    OperationKind::Create,
                    "the panel kept no record of how far it got",
                );
                self.store.fail_website(op, site.id, &reason).await?;
                report.failed.push(site.id);
            }
        }
        if operations.is_empty() && report.failed.len() == failed_before {
            return Ok(());
        }
        // The node first, so no pool or vhost uses a home or account removed below.
        let sites = self.node_sites(op, node).await?;
        if let Err(e) = self.converge(&entry, &sites, &sites).await {
            tracing::warn!(node = node.0, error = %e, "converging the node after a restart failed: queued an apply");
            self.enqueue_apply(op, node).await?;
            report.queued.push(node);
        }
        for cleanup in cleanups {
            let mut done = Ok(());
            if let Some(site) = &cleanup.site {
                done = entry.backends.files.remove(site).await;
            }
            if done.is_ok()
                && let Some(account) = &cleanup.account
            {
                done = match account.made {
                    true => {
                        self.release_made_account(&entry.backends, node, &account.name)
                            .await
                    }
                    false => {
                        self.release_account(&entry.backends, node, &account.name)
                            .await
                    }
                };
            }
            match done {
                Ok(()) => self.store.end_operation(op, cleanup.operation).await?,
                Err(e) => {
                    tracing::error!(operation = cleanup.operation.0, error = %e, "removing what an interrupted website change left failed: the next start tries again");
                    report.left += 1;
                }
            }
        }
        Ok(())
    }

    /// The record a creation made, found by id or, when the crash came before the id was
    /// noted, by its domain (a `provisioning` site of the node created after the change began).
    async fn created_site(&self, op: &Operator, operation: &Operation) -> Result<Option<Website>> {
        if let Some(id) = operation.website_id {
            return match self.store.get_any_website(op, id).await {
                Ok(site) => Ok(Some(site)),
                Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
        let Some(domain) = &operation.state.domain else {
            return Ok(None);
        };
        let admin = Caller {
            tenant: operation.tenant_id,
            user: operation.user_id,
            role: Role::Admin,
        };
        match self.store.get_website_by_domain(&admin, domain).await {
            Ok(site)
                if site.domain == *domain
                    && site.node_id == operation.node_id
                    && site.status == WebsiteStatus::Provisioning
                    && site.created_at >= operation.started_at =>
            {
                Ok(Some(site))
            }
            Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Undoes an interrupted creation up to its node and files (which [`Cleanup`] removes
    /// after the node converged); `None` when the website stays (finished, or failed).
    async fn undo_creation(
        &self,
        op: &Operator,
        entry: &NodeEntry,
        operation: &Operation,
        report: &mut Recovery,
    ) -> Option<Cleanup> {
        let site = match self.created_site(op, operation).await {
            Ok(site) => site,
            Err(e) => {
                tracing::error!(operation = operation.id.0, error = %e, "reading an interrupted creation's website failed");
                report.left += 1;
                return None;
            }
        };
        // Past `provisioning`, the creation had recorded its website active: it finished.
        if let Some(site) = &site
            && site.status != WebsiteStatus::Provisioning
        {
            report.finished += 1;
            return self.ended(op, operation, report).await;
        }
        if let Some(settings) = &operation.state.database {
            let others_use_it = match self.node_sites(op, operation.node_id).await {
                Ok(sites) => sites.iter().any(|s| {
                    Some(s.id) != site.as_ref().map(|s| s.id)
                        && s.settings.database.as_ref().map(|d| (&d.name, d.engine))
                            == Some((&settings.name, settings.engine))
                }),
                Err(e) => {
                    tracing::error!(error = %e, "listing the node's websites failed");
                    true
                }
            };
            if !others_use_it && let Err(e) = drop_database(&entry.backends, settings).await {
                tracing::error!(operation = operation.id.0, database = %settings.name, error = %e, "dropping an interrupted creation's database failed");
                return self
                    .failed(
                        op,
                        operation,
                        site.as_ref(),
                        "its database could not be dropped",
                        report,
                    )
                    .await;
            }
        }
        if let Some(site) = &site
            && let Err(end) = self.delete_record(op, operation, site, report).await
        {
            return end;
        }
        report.undone += 1;
        Some(Cleanup {
            operation: operation.id,
            site: site.or_else(|| operation.state.site.as_deref().cloned()),
            account: operation.state.account.clone().filter(|a| a.made),
        })
    }

    /// Finishes an interrupted deletion up to its node and files.
    async fn finish_deletion(
        &self,
        op: &Operator,
        entry: &NodeEntry,
        operation: &Operation,
        report: &mut Recovery,
    ) -> Option<Cleanup> {
        let Some(site) = operation.state.site.as_deref() else {
            return self.ended(op, operation, report).await;
        };
        let present = match self.store.get_any_website(op, site.id).await {
            Ok(_) => true,
            Err(Error::NotFound { .. }) => false,
            Err(e) => {
                tracing::error!(operation = operation.id.0, error = %e, "reading a website being deleted failed");
                report.left += 1;
                return None;
            }
        };
        if let Some(settings) = &site.settings.database
            && let Err(e) = drop_database(&entry.backends, settings).await
        {
            tracing::error!(operation = operation.id.0, error = %e, "dropping a deleted website's database failed");
            if present {
                return self
                    .failed(
                        op,
                        operation,
                        Some(site),
                        "its database could not be dropped",
                        report,
                    )
                    .await;
            }
            report.left += 1;
            return None;
        }
        if present && let Err(end) = self.delete_record(op, operation, site, report).await {
            return end;
        }
        report.deleted += 1;
        // The account goes when the panel created it and no other site uses it.
        Some(Cleanup {
            operation: operation.id,
            site: Some(site.clone()),
            account: Some(OperationAccount {
                name: site.system_user.clone(),
                made: false,
            }),
        })
    }

    /// Sets an interrupted update's database login to match the stored record.
    async fn settle_update(&self, op: &Operator, operation: &Operation) {
        let Some(id) = operation.website_id else {
            return;
        };
        let site = match self.store.get_any_website(op, id).await {
            Ok(site) => site,
            Err(e) => {
                tracing::warn!(website = id.0, error = %e, "reading an updated website failed");
                return;
            }
        };
        if site.settings.database.is_none() {
            return;
        }
        let tenant_active = match self.store.get_tenant(op, site.tenant_id).await {
            Ok(tenant) => tenant.status == TenantStatus::Active,
            Err(e) => {
                tracing::warn!(website = id.0, error = %e, "reading a website's tenant failed");
                return;
            }
        };
        let step = if site.status == WebsiteStatus::Suspended || !tenant_active {
            super::quotas::LoginStep::Lock
        } else {
            super::quotas::LoginStep::Unlock
        };
        if let Err(e) = self.login_step(&site, step).await {
            tracing::error!(website = id.0, error = %e, "setting a database login's lock after a restart failed");
        }
    }

    /// Records `site` failed with a reason and ends the change (a retry or a deletion is the
    /// way on); with no site, the row stays for the next start.
    /// Deletes `site`'s record on the panel's authority, as an admin of its tenant; when that
    /// fails, the site is recorded failed and `Err` holds how the operation ends.
    async fn delete_record(
        &self,
        op: &Operator,
        operation: &Operation,
        site: &Website,
        report: &mut Recovery,
    ) -> Result<(), Option<Cleanup>> {
        let admin = Caller {
            tenant: site.tenant_id,
            user: operation.user_id,
            role: Role::Admin,
        };
        match self.store.delete_website(&admin, site.id).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(operation = operation.id.0, error = %e, "deleting a website's record failed");
                Err(self
                    .failed(
                        op,
                        operation,
                        Some(site),
                        "its record could not be deleted",
                        report,
                    )
                    .await)
            }
        }
    }

    async fn failed(
        &self,
        op: &Operator,
        operation: &Operation,
        site: Option<&Website>,
        what: &str,
        report: &mut Recovery,
    ) -> Option<Cleanup> {
        let Some(site) = site else {
            report.left += 1;
            return None;
        };
        let reason = interrupted(operation.kind, what);
        match self.store.fail_website(op, site.id, &reason).await {
            Ok(_) => {
                report.failed.push(site.id);
                self.ended(op, operation, report).await
            }
            Err(e) => {
                tracing::error!(website = site.id.0, error = %e, "recording a website as failed failed");
                report.left += 1;
                None
            }
        }
    }

    /// Removes the change's row now (nothing left to clean up).
    async fn ended(
        &self,
        op: &Operator,
        operation: &Operation,
        report: &mut Recovery,
    ) -> Option<Cleanup> {
        if let Err(e) = self.store.end_operation(op, operation.id).await {
            tracing::error!(operation = operation.id.0, error = %e, "removing a journal row failed");
            report.left += 1;
        }
        None
    }

    /// An account a change made, when no site uses it: removed as
    /// [`Self::release_account`] does, and also when the crash came between creating it on the
    /// node and recording it (the name was free when the change chose it under the lock).
    async fn release_made_account(
        &self,
        backends: &NodeBackends,
        node: NodeId,
        name: &crate::types::SystemUser,
    ) -> Result<()> {
        let op = Operator::assume();
        if !self.sites_running_as(node, name).await?.is_empty() {
            return Ok(());
        }
        match self.store.find_node_account(&op, node, name).await? {
            Some(record) => match record.origin {
                AccountOrigin::Created => self.remove_account(backends, &record).await,
                AccountOrigin::Shared => self.store.delete_node_account(&op, record.id).await,
                AccountOrigin::Adopted => Ok(()),
            },
            None if matches!(
                backends.accounts.isolation(),
                crate::accounts::Isolation::Accounts
            ) =>
            {
                match backends.accounts.find(name).await? {
                    Some(unix) => backends.accounts.remove(&unix).await,
                    None => Ok(()),
                }
            }
            None => Ok(()),
        }
    }

    /// Retries a `failed` website: its home is made again, its database created when it is
    /// missing (its credentials are in the answer then), and it is deployed and recorded
    /// active. Any change to a failed website is also its retry; this one changes nothing else.
    pub async fn retry_website(&self, actor: &Actor, id: WebsiteId) -> Result<CreatedWebsite> {
        let result = self.retry_website_saga(actor, id).await;
        self.audited(actor, "website.retry", format!("website:{id}"), result)
            .await
    }

    async fn retry_website_saga(&self, actor: &Actor, id: WebsiteId) -> Result<CreatedWebsite> {
        actor.require(Permission::WebsitesWrite)?;
        let caller = actor.caller();
        let node = self.store.get_website(caller, id).await?.node_id;
        let entry = self.node(node)?;
        let _held = entry.apply_lock.lock().await;
        let site = self.store.get_website(caller, id).await?;
        if site.status != WebsiteStatus::Failed {
            return Err(Error::Conflict(format!(
                "website {id} is {}, not failed: there is nothing to retry",
                site.status
            )));
        }
        if entry
            .backends
            .accounts
            .find(&site.system_user)
            .await?
            .is_none()
        {
            return Err(Error::Conflict(format!(
                "the Unix account {} of website {id} is gone from its node: delete the website \
                 and create it again",
                site.system_user
            )));
        }
        let mut journal = self
            .journal_begin(NewOperation {
                tenant_id: site.tenant_id,
                user_id: caller.user,
                node_id: node,
                website_id: Some(id),
                kind: OperationKind::Update,
                step: SagaStep::Database,
                state: OperationState {
                    site: Some(Box::new(site.clone())),
                    ..OperationState::default()
                },
            })
            .await?;
        let result = self.retry_steps(caller, &entry, &site, &mut journal).await;
        self.journal_end(journal).await;
        result
    }

    async fn retry_steps(
        &self,
        caller: &Caller,
        entry: &NodeEntry,
        site: &Website,
        journal: &mut Journal,
    ) -> Result<CreatedWebsite> {
        let op = Operator::assume();
        let step = |name: &'static str| {
            move |source| Error::StepFailed {
                step: name,
                source: Box::new(source),
            }
        };
        let credentials = match &site.settings.database {
            Some(settings) => {
                let server = database_server(&entry.backends, settings.engine)?;
                let have = server
                    .backend
                    .list_databases()
                    .await
                    .map_err(step("database"))?;
                if have.contains(&settings.name) {
                    None
                } else {
                    let limits = self.store.own_tenant(caller).await?.quotas.database_limits;
                    Some(
                        super::sites::create_database(&entry.backends, settings, &limits)
                            .await
                            .map_err(step("database"))?,
                    )
                }
            }
            None => None,
        };
        self.journal_step(journal, SagaStep::Files).await?;
        entry
            .backends
            .files
            .prepare(site)
            .await
            .map_err(step("files"))?;
        self.journal_step(journal, SagaStep::Deploy).await?;
        let previous = self.node_sites(&op, site.node_id).await?;
        let mut deployed = site.clone();
        deployed.status = WebsiteStatus::Active;
        let desired = with_site(&previous, &deployed);
        if let Err(e) = self
            .converge_changing(entry, &previous, &desired, Some(site.id))
            .await
        {
            if let Err(again) = self.converge(entry, &previous, &previous).await {
                tracing::error!(website = site.id.0, error = %again, "putting the node back failed: queued an apply");
                self.enqueue_apply(&op, site.node_id).await?;
            }
            return Err(step("deploy")(e));
        }
        self.journal_step(journal, SagaStep::Activate).await?;
        let website = self
            .store
            .set_website_status(&op, site.id, WebsiteStatus::Active)
            .await
            .map_err(step("record"))?;
        Ok(CreatedWebsite {
            website,
            database: credentials,
        })
    }
}
