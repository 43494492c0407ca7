//! Tenants, users, nodes, the audit log and jobs: the use cases that change records only.

use std::time::Duration;

use super::{Actor, NodeStatus, Panel};
use crate::accounts::Isolation;
use crate::auth::{Permission, generate_password};
use crate::database::ServerHealth;
use crate::error::{Error, Result};
use crate::jobs::{Job, JobKind, JobOutcome, backoff};
use crate::model::{
    AccountOrigin, AuditEntry, NewNode, NewNodeAccount, NewTenant, NewUser, Node, NodeAccount,
    NodeId, Tenant, TenantChanges, TenantId, User, UserChanges, UserId, UserStatus,
};
use crate::page::{Page, PageRequest};
use crate::rbac::Caller;
use crate::types::{DbEngine, Password, SystemUser};

/// A password change as the user or its manager asks for it.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// The new password.
    pub password: Password,
    /// The actor's current password: required when the actor changes its own, so a stolen
    /// bearer token alone cannot take the account over.
    pub current_password: Option<Password>,
    /// Keep the user's API tokens working; by default a password change revokes them with its
    /// sessions and access tokens.
    pub keep_api_tokens: bool,
}

/// A user as created, with the password to hand over when the panel generated one.
#[derive(Debug, Clone)]
pub struct CreatedUser {
    /// The user.
    pub user: User,
    /// The generated first password (shown once); `None` when the creator chose it.
    pub generated_password: Option<Password>,
}

/// The lowest uid and gid of an ordinary account (Debian's `UID_MIN`): below are the
/// distribution's system accounts, which nothing a tenant runs may become.
const FIRST_ORDINARY_ID: u32 = 1000;

/// `nobody`/`nogroup` (65534) and above: shared by unrelated services, never a site's.
const NOBODY_ID: u32 = 65_534;

/// How long a worker holds a claimed job before another may take it over.
const JOB_LEASE: Duration = Duration::from_secs(10 * 60);

impl Panel {
    // -----------------------------------------------------------------------------------------
    // Tenants (the operator's)

    /// Creates a tenant.
    pub async fn create_tenant(&self, actor: &Actor, new: NewTenant) -> Result<Tenant> {
        let target = format!("tenant:{}", new.slug);
        let result = async {
            actor.require(Permission::TenantsWrite)?;
            let op = self.operator(actor)?;
            self.store.create_tenant(&op, new).await
        }
        .await;
        self.audited(actor, "tenant.create", target, result).await
    }

    /// A tenant: any for the operator, else the actor's own.
    pub async fn get_tenant(&self, actor: &Actor, id: TenantId) -> Result<Tenant> {
        actor.require(Permission::TenantsRead)?;
        match self.operator(actor) {
            Ok(op) => self.store.get_tenant(&op, id).await,
            Err(_) if id == actor.caller().tenant => self.store.own_tenant(actor.caller()).await,
            Err(_) => Err(Error::not_found("tenant")),
        }
    }

    /// Every tenant (the operator's view).
    pub async fn list_tenants(&self, actor: &Actor, page: PageRequest) -> Result<Page<Tenant>> {
        actor.require(Permission::TenantsRead)?;
        let op = self.operator(actor)?;
        self.store.list_tenants(&op, page).await
    }

    /// Changes a tenant (name, status, quotas); suspending one stops its users' logins and
    /// locks its database logins (ending their sessions), resuming unlocks them, and new
    /// database limits reach every login of the tenant.
    pub async fn update_tenant(
        &self,
        actor: &Actor,
        id: TenantId,
        changes: TenantChanges,
    ) -> Result<Tenant> {
        let result = async {
            actor.require(Permission::TenantsWrite)?;
            let op = self.operator(actor)?;
            let suspending = changes.status == Some(crate::model::TenantStatus::Suspended);
            if id == self.operator_tenant && changes.status.is_some() {
                return Err(Error::Conflict(
                    "the operator's own tenant cannot be suspended".into(),
                ));
            }
            // The database logins follow first, so a failure leaves both as they were.
            let current = self.store.get_tenant(&op, id).await?;
            let status = changes.status;
            let limits = changes.quotas.map(|q| q.database_limits);
            let tenant = self
                .tenant_logins_follow(
                    *actor.caller(),
                    &current,
                    status,
                    limits.as_ref(),
                    self.store.update_tenant(&op, id, changes),
                )
                .await?;
            if suspending {
                // Every user's sessions and access tokens end now, in every panel process; API
                // tokens stop while the tenant is suspended (checked on each use).
                self.auth
                    .end_tenant_credentials(&op, id, self.clock.now())
                    .await?;
            }
            Ok(tenant)
        }
        .await;
        self.audited(actor, "tenant.update", format!("tenant:{id}"), result)
            .await
    }

    /// Deletes a tenant without users or websites.
    pub async fn delete_tenant(&self, actor: &Actor, id: TenantId) -> Result<()> {
        let result = async {
            actor.require(Permission::TenantsWrite)?;
            let op = self.operator(actor)?;
            if id == self.operator_tenant {
                return Err(Error::Conflict(
                    "the operator's own tenant cannot be deleted".into(),
                ));
            }
            self.store.delete_tenant(&op, id).await
        }
        .await;
        self.audited(actor, "tenant.delete", format!("tenant:{id}"), result)
            .await
    }

    /// Requires (or stops requiring) a second factor of a tenant's users.
    pub async fn set_tenant_requires_2fa(
        &self,
        actor: &Actor,
        id: TenantId,
        required: bool,
    ) -> Result<()> {
        let result = async {
            actor.require(Permission::TenantsWrite)?;
            let op = self.operator(actor)?;
            self.auth.set_tenant_requires_2fa(&op, id, required).await
        }
        .await;
        self.audited(actor, "tenant.require_2fa", format!("tenant:{id}"), result)
            .await
    }

    /// The operator acting as an admin of `tenant`, for support work inside it (its users,
    /// sites and settings) with that tenant's rules applying. Everything done this way is
    /// audited in the tenant under the operator's own user, and starting it is audited too.
    pub async fn act_in_tenant(&self, actor: &Actor, tenant: TenantId) -> Result<Actor> {
        let result = async {
            let op = self.operator(actor)?;
            self.store.get_tenant(&op, tenant).await?;
            Ok(Actor {
                caller: Caller {
                    tenant,
                    user: actor.caller.user,
                    role: crate::model::Role::Admin,
                },
                source_ip: actor.source_ip,
                grant: actor.grant.clone(),
            })
        }
        .await;
        self.audited(actor, "tenant.act_in", format!("tenant:{tenant}"), result)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Users

    /// A hash of `password` under the panel's policy, computed in its hashing slots (so it
    /// takes no memory beyond theirs): for an embedder's own set-up that writes credentials
    /// itself, such as a first admin.
    pub async fn hash_password(&self, password: Password) -> Result<crate::auth::PasswordHash> {
        self.hashing.hash(password).await
    }

    /// The hash of `password`, or of a generated one that is returned to be shown once.
    pub(super) async fn first_password(
        &self,
        password: Option<Password>,
    ) -> Result<(crate::auth::PasswordHash, Option<Password>)> {
        let (password, generated) = match password {
            Some(p) => (p, None),
            None => {
                let p = generate_password()?;
                (p.clone(), Some(p))
            }
        };
        Ok((self.hash_password(password).await?, generated))
    }

    /// Creates a user in the actor's tenant with `password`, or a generated one that is
    /// returned once.
    pub async fn create_user(
        &self,
        actor: &Actor,
        new: NewUser,
        password: Option<Password>,
    ) -> Result<CreatedUser> {
        let target = format!("user:{}", new.email);
        let result = async {
            actor.require(Permission::UsersWrite)?;
            let (hash, generated) = self.first_password(password).await?;
            let user = self.store.create_user(actor.caller(), new).await?;
            self.finish_user(actor.caller(), user, &hash, generated)
                .await
        }
        .await;
        self.audited(actor, "user.create", target, result).await
    }

    /// Creates a user in any tenant (the operator creating a tenant's first admin).
    pub async fn create_tenant_user(
        &self,
        actor: &Actor,
        tenant: TenantId,
        new: NewUser,
        password: Option<Password>,
    ) -> Result<CreatedUser> {
        let target = format!("user:{}", new.email);
        let result = async {
            actor.require(Permission::UsersWrite)?;
            let op = self.operator(actor)?;
            let (hash, generated) = self.first_password(password).await?;
            let user = self.store.create_user_as_operator(&op, tenant, new).await?;
            // On the operator's authority, the new user's own tenant admin rights undo it.
            let undoer = Caller {
                tenant,
                user: user.id,
                role: crate::model::Role::Admin,
            };
            self.finish_user(&undoer, user, &hash, generated).await
        }
        .await;
        self.audited(actor, "user.create", target, result).await
    }

    /// Stores a new user's password hash; a user without one is removed again (by `undoer`),
    /// so no account exists that nobody can log in to.
    pub(super) async fn finish_user(
        &self,
        undoer: &Caller,
        user: User,
        hash: &crate::auth::PasswordHash,
        generated_password: Option<Password>,
    ) -> Result<CreatedUser> {
        match self.auth.set_password(user.id, hash).await {
            Ok(()) => Ok(CreatedUser {
                user,
                generated_password,
            }),
            Err(e) => {
                if let Err(again) = self.store.delete_user(undoer, user.id).await {
                    tracing::error!(user = user.id.0, error = %again, "removing a user without a password failed");
                }
                Err(Error::StepFailed {
                    step: "password",
                    source: Box::new(e),
                })
            }
        }
    }

    /// A user the actor may see.
    pub async fn get_user(&self, actor: &Actor, id: UserId) -> Result<User> {
        actor.require(Permission::UsersRead)?;
        self.store.get_user(actor.caller(), id).await
    }

    /// The users the actor may see.
    pub async fn list_users(&self, actor: &Actor, page: PageRequest) -> Result<Page<User>> {
        actor.require(Permission::UsersRead)?;
        self.store.list_users(actor.caller(), page).await
    }

    /// Changes a user the actor manages. Suspending one or changing its role ends its sessions
    /// and access tokens at once (its API tokens follow its current status and role on each
    /// use); the audit entry records an old and new role.
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: UserId,
        changes: UserChanges,
    ) -> Result<User> {
        let mut detail = String::new();
        let result = async {
            actor.require(Permission::UsersWrite)?;
            let before = self.store.get_user(actor.caller(), id).await?;
            let user = self.store.update_user(actor.caller(), id, changes).await?;
            if user.role != before.role {
                detail = format!("role: {} -> {}", before.role, user.role);
            }
            let suspended =
                user.status == UserStatus::Suspended && before.status != UserStatus::Suspended;
            if suspended || user.role != before.role {
                self.auth.end_user_credentials(id, self.clock.now()).await?;
            }
            Ok(user)
        }
        .await;
        self.audited_with(actor, "user.update", format!("user:{id}"), result, detail)
            .await
    }

    /// Deletes a user the actor manages.
    pub async fn delete_user(&self, actor: &Actor, id: UserId) -> Result<()> {
        let result = async {
            actor.require(Permission::UsersWrite)?;
            if id == actor.caller().user {
                return Err(Error::Conflict("a user cannot delete itself".into()));
            }
            // The store removes the user's sessions, tokens and credentials with it.
            self.store.delete_user(actor.caller(), id).await
        }
        .await;
        self.audited(actor, "user.delete", format!("user:{id}"), result)
            .await
    }

    /// Sets a user's password (the actor's own, proven with the current one, or one it
    /// manages) and ends the user's sessions, access tokens and, unless asked to keep them,
    /// API tokens, in one store transaction.
    pub async fn set_password(
        &self,
        actor: &Actor,
        id: UserId,
        change: PasswordChange,
    ) -> Result<()> {
        let result = async {
            actor.require(Permission::UsersWrite)?;
            let caller: &Caller = actor.caller();
            if id == caller.user {
                let current = change
                    .current_password
                    .as_ref()
                    .ok_or_else(|| Error::Invalid {
                        field: "current_password".into(),
                        reason: "is required to change your own password".into(),
                    })?;
                self.reauthenticate(actor, current).await?;
            } else {
                let user = self.store.get_user(caller, id).await?;
                let facts = crate::rbac::UserFacts {
                    tenant: user.tenant_id,
                    id: user.id,
                    role: user.role,
                    created_by: user.created_by,
                };
                if !crate::rbac::can_manage_user(caller, &facts) {
                    return Err(Error::denied("you may not change this user's password"));
                }
            }
            let hash = self.hashing.hash_for(actor, change.password).await?;
            self.auth
                .change_password(id, &hash, self.clock.now(), change.keep_api_tokens)
                .await
        }
        .await;
        self.audited(actor, "user.set_password", format!("user:{id}"), result)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Nodes

    /// Records a node (its backends are attached by the embedder with
    /// [`Panel::attach_node`]).
    pub async fn create_node(&self, actor: &Actor, new: NewNode) -> Result<Node> {
        let target = format!("node:{}", new.name);
        let result = async {
            actor.require(Permission::NodesWrite)?;
            let op = self.operator(actor)?;
            self.store.create_node(&op, new).await
        }
        .await;
        self.audited(actor, "node.create", target, result).await
    }

    /// One node (every user may see nodes: sites are placed on them).
    pub async fn get_node(&self, actor: &Actor, id: NodeId) -> Result<Node> {
        actor.require(Permission::NodesRead)?;
        self.store
            .get_node(&crate::rbac::Operator::assume(), id)
            .await
    }

    /// The nodes.
    pub async fn list_nodes(&self, actor: &Actor, page: PageRequest) -> Result<Page<Node>> {
        actor.require(Permission::NodesRead)?;
        self.store
            .list_nodes(&crate::rbac::Operator::assume(), page)
            .await
    }

    /// Removes a node that serves no websites.
    pub async fn delete_node(&self, actor: &Actor, id: NodeId) -> Result<()> {
        let result = async {
            actor.require(Permission::NodesWrite)?;
            let op = self.operator(actor)?;
            self.store.delete_node(&op, id).await?;
            if let Ok(mut nodes) = self.nodes.write() {
                nodes.remove(&id);
            }
            Ok(())
        }
        .await;
        self.audited(actor, "node.delete", format!("node:{id}"), result)
            .await
    }

    /// Queues a job that renders and applies everything a node serves (drift repair, or
    /// convergence after a failure).
    pub async fn request_node_apply(&self, actor: &Actor, node: NodeId) -> Result<Job> {
        let result = async {
            actor.require(Permission::NodesWrite)?;
            let op = self.operator(actor)?;
            self.store.get_node(&op, node).await?;
            self.enqueue_apply(&op, node).await
        }
        .await;
        self.audited(actor, "node.apply", format!("node:{node}"), result)
            .await
    }

    /// How a node keeps its sites apart; `None` when this panel has no backends for it.
    pub fn node_isolation(&self, node: NodeId) -> Option<Isolation> {
        self.node(node)
            .ok()
            .map(|entry| entry.backends.accounts.isolation())
    }

    /// The health check of a node's database servers (the operator only): for each, what it
    /// allows that the operator should fix, such as databases every login may connect to.
    pub async fn database_health(
        &self,
        actor: &Actor,
        node: NodeId,
    ) -> Result<Vec<(DbEngine, ServerHealth)>> {
        actor.require(Permission::NodesRead)?;
        let op = self.operator(actor)?;
        self.store.get_node(&op, node).await?;
        let entry = self.node(node)?;
        let mut report = Vec::new();
        for server in &entry.backends.databases {
            report.push((server.engine, server.backend.health().await?));
        }
        Ok(report)
    }

    /// The Unix accounts the panel keeps on a node, with their tenants (the operator only).
    pub async fn list_node_accounts(
        &self,
        actor: &Actor,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<NodeAccount>> {
        actor.require(Permission::NodesRead)?;
        let op = self.operator(actor)?;
        self.store.get_node(&op, node).await?;
        self.store.list_node_accounts(&op, node, page).await
    }

    /// Adopts an account that already exists on a node for one tenant, so the tenant's sites
    /// can run as it (a migration from another panel). The operator only; never a system
    /// account (uid or gid below 1000); the panel never removes an adopted account.
    pub async fn adopt_node_account(
        &self,
        actor: &Actor,
        node: NodeId,
        tenant: TenantId,
        name: SystemUser,
    ) -> Result<NodeAccount> {
        let target = format!("node:{node}/account:{name}");
        let result =
            async {
                actor.require(Permission::NodesWrite)?;
                let op = self.operator(actor)?;
                let entry = self.node(node)?;
                let refuse = |reason: String| Error::Invalid {
                    field: "name".into(),
                    reason: reason.into(),
                };
                if !matches!(entry.backends.accounts.isolation(), Isolation::Accounts) {
                    return Err(refuse(format!(
                        "node {node} has no separate Unix accounts (the panel does not run as root)"
                    )));
                }
                self.store.get_tenant(&op, tenant).await?;
                let unix =
                    entry.backends.accounts.find(&name).await?.ok_or_else(|| {
                        refuse(format!("{name} is not an account on node {node}"))
                    })?;
                if unix.uid < FIRST_ORDINARY_ID
                    || unix.gid < FIRST_ORDINARY_ID
                    || unix.uid >= NOBODY_ID
                    || unix.gid >= NOBODY_ID
                {
                    return Err(refuse(format!(
                        "{name} (uid {}, gid {}) is a system account: only accounts with ids from \
                     {FIRST_ORDINARY_ID} to {} can be adopted",
                        unix.uid,
                        unix.gid,
                        NOBODY_ID - 1
                    )));
                }
                self.store
                    .record_node_account(
                        &op,
                        NewNodeAccount {
                            tenant_id: tenant,
                            node_id: node,
                            name: unix.name,
                            uid: unix.uid,
                            gid: unix.gid,
                            origin: AccountOrigin::Adopted,
                        },
                    )
                    .await
            }
            .await;
        self.audited(actor, "node.adopt_account", target, result)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Audit log and jobs

    /// The audit log: the whole of it for the operator, the tenant's for a tenant admin.
    pub async fn list_audit(&self, actor: &Actor, page: PageRequest) -> Result<Page<AuditEntry>> {
        actor.require(Permission::AuditRead)?;
        match self.operator(actor) {
            Ok(op) => self.store.list_all_audit(&op, page).await,
            Err(_) => self.store.list_audit(actor.caller(), page).await,
        }
    }

    /// A job the actor may see.
    pub async fn get_job(&self, actor: &Actor, id: crate::model::JobId) -> Result<Job> {
        actor.require(Permission::JobsRead)?;
        match self.operator(actor) {
            Ok(op) => self.jobs.get_any_job(&op, id).await,
            Err(_) => self.jobs.get_job(actor.caller(), id).await,
        }
    }

    /// The jobs the actor may see.
    pub async fn list_jobs(&self, actor: &Actor, page: PageRequest) -> Result<Page<Job>> {
        actor.require(Permission::JobsRead)?;
        match self.operator(actor) {
            Ok(op) => self.jobs.list_all_jobs(&op, page).await,
            Err(_) => self.jobs.list_jobs(actor.caller(), page).await,
        }
    }

    /// Claims and runs the oldest due job as `worker`; `None` when nothing is due. A failed
    /// attempt is retried with exponential backoff until the job's attempts run out.
    pub async fn run_next_job(&self, worker: &str) -> Result<Option<Job>> {
        let Some(claimed) = self.jobs.claim(worker, self.clock.now(), JOB_LEASE).await? else {
            return Ok(None);
        };
        let attempt = match &claimed.job.kind {
            JobKind::ApplyNode { node } => self.apply_whole_node(*node).await,
        };
        let outcome = match attempt {
            Ok(()) => JobOutcome::Succeeded,
            Err(e) => {
                let delay = backoff(
                    claimed.job.attempts,
                    Duration::from_secs(5),
                    Duration::from_secs(600),
                );
                let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                JobOutcome::Retry {
                    error: e.to_string(),
                    run_after: self.clock.now() + delay,
                }
            }
        };
        let job = self
            .jobs
            .finish(&claimed, outcome, self.clock.now())
            .await?;
        Ok(Some(job))
    }

    /// Renders and applies everything `node` serves.
    async fn apply_whole_node(&self, node: NodeId) -> Result<()> {
        let entry = self.node(node)?;
        let _held = entry.apply_lock.lock().await;
        let sites = self
            .node_sites(&crate::rbac::Operator::assume(), node)
            .await?;
        // Logged like a website change's steps (`recovery`), so a crash test can stop it here.
        tracing::info!(saga = %"apply", node = node.0, step = %"deploy", "saga step");
        let failed = self.converge_changing(&entry, &sites, &sites, None).await?;
        // The web server is live; a PHP version whose master did not start is tried again
        // with the job's backoff.
        match failed.as_slice() {
            [] => Ok(()),
            failed => Err(Error::backend(
                "php-fpm",
                format!(
                    "the masters of PHP {} do not run; their websites answer 502",
                    failed
                        .iter()
                        .map(|f| f.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// What `node`'s servers run now and how its last apply ended (the operator only).
    pub async fn node_status(&self, actor: &Actor, node: NodeId) -> Result<NodeStatus> {
        self.operator(actor)?;
        let entry = self.node(node)?;
        let mut servers = Vec::new();
        for web in &entry.backends.web {
            servers.extend(web.servers().await?);
        }
        servers.extend(entry.backends.php.servers().await?);
        let last_apply = entry
            .last_apply
            .lock()
            .map_err(|_| Error::backend("panel", "the node's last apply is poisoned"))?
            .clone();
        Ok(NodeStatus {
            servers,
            last_apply,
        })
    }
}
