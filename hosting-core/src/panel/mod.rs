//! The `Panel` service (feature `panel`): the library's front door. It holds the stores, the
//! node backends and the clock, and offers the use cases: authentication, tenants, users,
//! websites and their databases, nodes, the audit log and jobs.
//!
//! Every use case takes an [`Actor`], checks the actor's role, tenant and token permissions
//! before anything else, writes one audit entry (who, what, target, outcome, source IP), and
//! changes several systems as a saga: store row, customer database, PHP pool, vhost. When a
//! step fails the earlier steps are undone and the error ([`Error::StepFailed`]) names the step.

mod accounts;
mod auth;
mod denials;
mod hashing;
mod machine;
mod quotas;
mod recovery;
mod sites;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use self::hashing::Hashing;
use crate::accounts::NodeAccounts;
use crate::auth::{AttemptPolicy, Keyring, PasswordPolicy, Permission, PermissionSet};
use crate::auth_store::AuthStore;
use crate::clock::Clock;
use crate::database::DatabaseBackend;
use crate::error::{Error, Result};
use crate::jobs::JobStore;
use crate::model::{ApiTokenId, AuditOutcome, NewAuditEntry, NodeId, Role, SessionId, TenantId};
use crate::php::PhpRuntime;
use crate::rbac::{Caller, Operator};
use crate::site_files::SiteFiles;
use crate::store::PanelStore;
use crate::types::{DbEngine, WebServerKind};
use crate::web::WebServer;

pub use accounts::{CreatedUser, PasswordChange};
pub use auth::{ApiTokenCreated, LoginRequest, Tokens, TotpEnrolment};
pub use machine::PasswordReset;
pub use recovery::Recovery;
pub use sites::{CreatedWebsite, DatabaseCredentials};

/// A customer database server a node offers.
#[derive(Debug, Clone)]
pub struct DatabaseServer {
    /// The engine.
    pub engine: DbEngine,
    /// The backend that creates databases on it.
    pub backend: Arc<dyn DatabaseBackend>,
    /// The host name customers' sites connect to.
    pub host: String,
    /// The port customers' sites connect to.
    pub port: u16,
}

/// What one node runs: its web servers (one per kind), its PHP runtime, its database servers
/// and its sites' directories. Local and remote nodes look the same here.
#[derive(Debug, Clone)]
pub struct NodeBackends {
    /// The web servers, at most one per kind.
    pub web: Vec<Arc<dyn WebServer>>,
    /// The PHP runtime.
    pub php: Arc<dyn PhpRuntime>,
    /// The customer database servers, at most one per engine.
    pub databases: Vec<DatabaseServer>,
    /// The sites' directories.
    pub files: Arc<dyn SiteFiles>,
    /// The Unix accounts sites run as.
    pub accounts: Arc<dyn NodeAccounts>,
}

impl NodeBackends {
    fn web_server(&self, kind: WebServerKind) -> Option<&Arc<dyn WebServer>> {
        self.web.iter().find(|w| w.kind() == kind)
    }

    fn database(&self, engine: DbEngine) -> Option<&DatabaseServer> {
        self.databases.iter().find(|d| d.engine == engine)
    }
}

/// Policies of the panel's authentication.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How long an access token is valid.
    pub access_ttl: Duration,
    /// How long a refresh token is valid.
    pub refresh_ttl: Duration,
    /// Password guesses per source, and per account from sources that never logged in as its
    /// user (an unknown account is counted the same way). Kept in the store, so every panel
    /// process on it spends the same budget.
    pub password_attempts: AttemptPolicy,
    /// Second-factor and recovery-code guesses per user, one budget for every place a code is
    /// checked (login, confirming and disabling a factor).
    pub code_attempts: AttemptPolicy,
    /// How long a source stays known-good for a user after a login from it: the account's
    /// budget (which anyone can spend) does not apply there, only the source's own.
    pub known_source_for: Duration,
    /// New password hashes (password writes) waiting or running at once per tenant and per
    /// source; one per acting user. More are refused with a retry delay.
    pub hashing_writes_per_tenant: usize,
    /// See `hashing_writes_per_tenant`.
    pub hashing_writes_per_source: usize,
    /// Denied calls of one credential and action within this long are audited as one entry
    /// counting them, not one entry each.
    pub denied_audit_burst: Duration,
    /// The issuer shown in authenticator apps.
    pub totp_issuer: String,
    /// The argon2id cost of new password hashes (existing hashes carry their own).
    pub password_policy: PasswordPolicy,
    /// How many passwords are hashed at once; the others wait. Each slot keeps the policy's
    /// memory (19 MiB by default) for good, so this bounds the memory logins can take.
    pub hashing_slots: NonZeroUsize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(5 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            password_attempts: AttemptPolicy {
                free: 10,
                first_wait: Duration::from_secs(1),
                max_wait: Duration::from_secs(15 * 60),
                forget: Duration::from_secs(3600),
            },
            code_attempts: AttemptPolicy {
                free: 5,
                first_wait: Duration::from_secs(30),
                max_wait: Duration::from_secs(3600),
                forget: Duration::from_secs(24 * 3600),
            },
            known_source_for: Duration::from_secs(90 * 24 * 3600),
            hashing_writes_per_tenant: 4,
            hashing_writes_per_source: 4,
            denied_audit_burst: Duration::from_secs(60),
            totp_issuer: "hosting-sdk".to_owned(),
            password_policy: PasswordPolicy::OWASP,
            hashing_slots: NonZeroUsize::MIN,
        }
    }
}

/// Everything a [`Panel`] is built from.
#[derive(Debug, Clone)]
pub struct PanelParts {
    /// The panel's records.
    pub store: Arc<dyn PanelStore>,
    /// Credentials, sessions and tokens.
    pub auth: Arc<dyn AuthStore>,
    /// The job queue.
    pub jobs: Arc<dyn JobStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The keys access tokens are signed with.
    pub keys: Keyring,
    /// The tenant whose admins are the hosting operator.
    pub operator_tenant: TenantId,
    /// Authentication policies.
    pub auth_settings: AuthSettings,
}

/// The panel's use cases over its stores and nodes.
#[derive(Debug)]
pub struct Panel {
    store: Arc<dyn PanelStore>,
    auth: Arc<dyn AuthStore>,
    jobs: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    keys: Keyring,
    operator_tenant: TenantId,
    settings: AuthSettings,
    hashing: Hashing,
    nodes: RwLock<BTreeMap<NodeId, NodeEntry>>,
    denials: denials::Denials,
}

/// A node's backends, the lock that keeps two applies to it from interleaving, and how its
/// last apply ended (kept by this panel process, for [`Panel::node_status`]).
#[derive(Debug, Clone)]
struct NodeEntry {
    backends: Arc<NodeBackends>,
    apply_lock: Arc<tokio::sync::Mutex<()>>,
    last_apply: Arc<std::sync::Mutex<Option<LastApply>>>,
}

/// How a node's last apply (a website change or a whole-node apply) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastApply {
    /// When it ended.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Why it failed, for the operator (it may name node paths); `None`: it went live.
    pub error: Option<String>,
    /// The PHP versions whose master did not run their pools after it, with their sites.
    pub php_failed: Vec<crate::php::FailedVersion>,
}

/// What a node runs now and how its last apply ended: the operator's view after a crash or
/// a reboot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Each server process of its backends, running or not.
    pub servers: Vec<crate::node::ServerState>,
    /// Its last apply since this panel started; `None` before the first.
    pub last_apply: Option<LastApply>,
}

/// How an actor proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grant {
    /// A login session's access token: the role's rules alone decide.
    Session {
        /// The session.
        id: SessionId,
        /// The tenant requires a second factor the user has not enrolled yet: nothing but
        /// enrolling one is allowed.
        enrol_only: bool,
    },
    /// An API token: the role's rules and the token's permissions decide.
    ApiToken {
        /// The token.
        id: ApiTokenId,
        /// What it may do.
        permissions: PermissionSet,
    },
    /// The embedding application vouches for the caller (its own authentication).
    Embedder,
}

/// Who is acting, from where, and on what authority. Built by [`Panel::authenticate`] (or by
/// an embedder with [`Actor::trusted`]); never from request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    caller: Caller,
    source_ip: Option<IpAddr>,
    grant: Grant,
}

impl Actor {
    /// An actor the embedding application has authenticated itself.
    pub fn trusted(caller: Caller, source_ip: Option<IpAddr>) -> Self {
        Self {
            caller,
            source_ip,
            grant: Grant::Embedder,
        }
    }

    /// The tenant user acting.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Where the request came from.
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source_ip
    }

    /// How the actor authenticated.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The credential that acted, as the audit log names it (`session:12`, `api_token:7`);
    /// `None` for an embedder's actor.
    pub fn credential(&self) -> Option<String> {
        match &self.grant {
            Grant::Session { id, .. } => Some(format!("session:{id}")),
            Grant::ApiToken { id, .. } => Some(format!("api_token:{id}")),
            Grant::Embedder => None,
        }
    }

    /// Refuses an API token that lacks `permission`, and a session that must enrol a second
    /// factor before anything else.
    fn require(&self, permission: Permission) -> Result<()> {
        match &self.grant {
            Grant::ApiToken { permissions, .. } if !permissions.contains(permission) => Err(
                Error::denied(format!("this API token lacks the {permission} permission")),
            ),
            Grant::Session {
                enrol_only: true, ..
            } => Err(Error::denied(
                "your tenant requires a second factor: enrol one first",
            )),
            _ => Ok(()),
        }
    }

    /// Refuses API tokens: a person's second factor is managed by that person's own login.
    fn require_own_login(&self) -> Result<()> {
        match self.grant {
            Grant::ApiToken { .. } => Err(Error::denied(
                "second factors are managed from a login session, not with an API token",
            )),
            _ => Ok(()),
        }
    }
}

impl Panel {
    /// A panel over `parts`, with no nodes yet.
    pub fn new(parts: PanelParts) -> Self {
        let settings = parts.auth_settings;
        Self {
            denials: denials::Denials::default(),
            store: parts.store,
            auth: parts.auth,
            jobs: parts.jobs,
            clock: parts.clock,
            keys: parts.keys,
            operator_tenant: parts.operator_tenant,
            hashing: Hashing::new(
                settings.password_policy,
                settings.hashing_slots,
                hashing::WriteLimits {
                    per_tenant: settings.hashing_writes_per_tenant,
                    per_source: settings.hashing_writes_per_source,
                },
            ),
            settings,
            nodes: RwLock::new(BTreeMap::new()),
        }
    }

    /// The panel's records, for embedders that need a query the use cases do not offer.
    pub fn store(&self) -> &Arc<dyn PanelStore> {
        &self.store
    }

    /// The job queue.
    pub fn jobs(&self) -> &Arc<dyn JobStore> {
        &self.jobs
    }

    /// Attaches (or replaces) the backends of a node recorded in the store.
    pub fn attach_node(&self, node: NodeId, backends: NodeBackends) {
        let entry = NodeEntry {
            backends: Arc::new(backends),
            apply_lock: Arc::new(tokio::sync::Mutex::new(())),
            last_apply: Arc::new(std::sync::Mutex::new(None)),
        };
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.insert(node, entry);
        }
    }

    fn node(&self, node: NodeId) -> Result<NodeEntry> {
        self.nodes
            .read()
            .map_err(|_| Error::backend("panel", "the node table is poisoned"))?
            .get(&node)
            .cloned()
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "node {node} has no backends attached to this panel"
                ))
            })
    }

    /// Operator authority for an admin of the operator tenant.
    fn operator(&self, actor: &Actor) -> Result<Operator> {
        if actor.caller.tenant == self.operator_tenant && actor.caller.role == Role::Admin {
            Ok(Operator::assume())
        } else {
            Err(Error::denied("only the hosting operator may do this"))
        }
    }

    /// Writes the audit entry for `result` of `action` on `target` by `actor`, then returns
    /// `result`. A failure to write the entry fails the call: an unaudited change is not
    /// acceptable, and the change itself was already made, so the error says so.
    async fn audited<T>(
        &self,
        actor: &Actor,
        action: &str,
        target: impl Into<String>,
        result: Result<T>,
    ) -> Result<T> {
        self.audited_with(actor, action, target, result, String::new())
            .await
    }

    /// [`audited`](Self::audited) with `detail` for a success (a failure's detail is its
    /// error), such as a role change's old and new role.
    async fn audited_with<T>(
        &self,
        actor: &Actor,
        action: &str,
        target: impl Into<String>,
        result: Result<T>,
        detail: String,
    ) -> Result<T> {
        let outcome = match &result {
            Ok(_) => AuditOutcome::Success,
            Err(e) => match e.root() {
                Error::PermissionDenied(_)
                | Error::Unauthenticated(_)
                | Error::ReauthenticationFailed
                | Error::RateLimited { .. } => AuditOutcome::Denied,
                _ => AuditOutcome::Failed,
            },
        };
        let mut entry = NewAuditEntry::by(&actor.caller, action, target, outcome)
            .with_credential(actor.credential())
            .with_detail(detail);
        if let Some(ip) = actor.source_ip {
            entry = entry.from_ip(ip);
        }
        if let Err(e) = &result {
            entry = entry.with_detail(e.to_string());
        }
        if matches!(outcome, AuditOutcome::Denied) {
            // A burst of denials is one entry and a count (see `denials`).
            let key = format!("{:?}/{}/{action}", actor.grant, actor.caller.user);
            let now = self.clock.now();
            for entry in self
                .denials
                .note(key, entry, now, self.settings.denied_audit_burst)
            {
                self.store.append_audit(entry).await?;
            }
        } else {
            self.store.append_audit(entry).await?;
        }
        result
    }

    /// Writes the counts of denied-call bursts that have ended (all of them with `all`, at
    /// shutdown). The server calls it periodically so a count is written even when no further
    /// denial comes.
    pub async fn flush_denied_audit(&self, all: bool) -> Result<()> {
        let now = self.clock.now();
        for entry in self
            .denials
            .take_closed(now, self.settings.denied_audit_burst, all)
        {
            self.store.append_audit(entry).await?;
        }
        Ok(())
    }

    /// Writes an audit entry for an action without an authenticated actor (a login attempt).
    async fn audit_anonymous(
        &self,
        action: &str,
        target: String,
        outcome: AuditOutcome,
        source_ip: Option<IpAddr>,
        detail: &str,
    ) -> Result<()> {
        let mut entry = NewAuditEntry::by_operator(action, target, outcome).with_detail(detail);
        if let Some(ip) = source_ip {
            entry = entry.from_ip(ip);
        }
        self.store.append_audit(entry).await.map(|_| ())
    }
}
