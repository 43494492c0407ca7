//! The panel's own records.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    AlertRule, AlertRuleId, AlertRuleSpec, AuditEntry, NewAuditEntry, NewNode, NewNodeAccount,
    NewOperation, NewTenant, NewUser, NewWebsite, Node, NodeAccount, NodeAccountId, NodeId,
    Operation, OperationId, OperationState, SagaStep, Tenant, TenantChanges, TenantId, User,
    UserChanges, UserId, Website, WebsiteChanges, WebsiteFailure, WebsiteId,
};
use crate::page::{Page, PageRequest};
use crate::rbac::{Caller, Operator};
use crate::tracked::ChangeTracker;
#[cfg(doc)]
use crate::tracked::TrackedStore;
use crate::types::{DomainName, SystemUser};

/// Which database holds the panel's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// `sqlite`, `postgres`, `mysql` or `mariadb` (told apart by the server's `VERSION()`).
    pub engine: &'static str,
    /// The server's own version string.
    pub server_version: String,
}

/// The panel's records: tenants, users, websites with their settings, nodes, alert rules and
/// the audit log.
///
/// # Contract
/// - Every method that touches tenant-owned rows takes a [`Caller`] and only ever sees rows of
///   `caller.tenant` that [`crate::rbac`] lets the caller manage. A row outside that scope is
///   reported as [`Error::NotFound`](crate::Error::NotFound), never as "forbidden", so ids in
///   other tenants cannot be probed.
/// - A role that may not do something at all (a client creating users) gets
///   [`Error::PermissionDenied`](crate::Error::PermissionDenied).
/// - Domains are unique across the whole panel, primary domains and aliases together; a clash
///   is [`Error::AlreadyExists`](crate::Error::AlreadyExists), also under concurrent creates:
///   exactly one wins.
/// - Deleting a row that others still reference is [`Error::Conflict`](crate::Error::Conflict).
/// - A Unix account on a node belongs to one tenant: name and uid are each unique per node;
///   deleting a tenant forgets its accounts.
/// - Lists are keyset-paginated in ascending id order (see [`PageRequest`]).
/// - Each method is atomic: on error nothing was written.
/// - A website's failure reason is set only with [`PanelStore::fail_website`] and cleared by
///   every other status change ([`PanelStore::set_website_status`], or `update_website`
///   writing a status).
/// - The saga journal (`*_operation`) is the panel's own: operator methods, durable when they
///   return (a crash right after still finds the row), independent of the website rows (a
///   deletion's row outlives its website).
///
/// `hosting_core::conformance::store` checks all of this.
#[async_trait]
pub trait PanelStore: Debug + Send + Sync {
    /// Which engine and server version hold the records.
    fn info(&self) -> StoreInfo;

    /// The counter of this store's writes, when it keeps one (a [`TrackedStore`]): what lets a
    /// caller reuse an earlier read while nothing was written since.
    fn changes(&self) -> Option<&ChangeTracker> {
        None
    }

    /// Creates a tenant.
    async fn create_tenant(&self, op: &Operator, new: NewTenant) -> Result<Tenant>;
    /// Any tenant, for the operator.
    async fn get_tenant(&self, op: &Operator, id: TenantId) -> Result<Tenant>;
    /// The caller's own tenant.
    async fn own_tenant(&self, caller: &Caller) -> Result<Tenant>;
    /// All tenants.
    async fn list_tenants(&self, op: &Operator, page: PageRequest) -> Result<Page<Tenant>>;
    /// Changes a tenant.
    async fn update_tenant(
        &self,
        op: &Operator,
        id: TenantId,
        changes: TenantChanges,
    ) -> Result<Tenant>;
    /// Deletes a tenant that no longer has users or websites.
    async fn delete_tenant(&self, op: &Operator, id: TenantId) -> Result<()>;

    /// Adds a node.
    async fn create_node(&self, op: &Operator, new: NewNode) -> Result<Node>;
    /// One node.
    async fn get_node(&self, op: &Operator, id: NodeId) -> Result<Node>;
    /// All nodes.
    async fn list_nodes(&self, op: &Operator, page: PageRequest) -> Result<Page<Node>>;
    /// Removes a node that no longer serves websites.
    async fn delete_node(&self, op: &Operator, id: NodeId) -> Result<()>;

    /// Creates the first admin (or any user) of a tenant on the operator's authority.
    async fn create_user_as_operator(
        &self,
        op: &Operator,
        tenant: TenantId,
        new: NewUser,
    ) -> Result<User>;
    /// Creates a user in the caller's tenant, recorded as created by the caller.
    async fn create_user(&self, caller: &Caller, new: NewUser) -> Result<User>;
    /// A user the caller may view.
    async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User>;
    /// The users the caller may view.
    async fn list_users(&self, caller: &Caller, page: PageRequest) -> Result<Page<User>>;
    /// Changes a user the caller manages.
    async fn update_user(&self, caller: &Caller, id: UserId, changes: UserChanges) -> Result<User>;
    /// Deletes a user the caller manages; a user that still owns sites or created users is a
    /// conflict.
    async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()>;

    /// Creates a website owned by a user the caller manages (or the caller itself).
    async fn create_website(&self, caller: &Caller, new: NewWebsite) -> Result<Website>;
    /// A website the caller manages.
    async fn get_website(&self, caller: &Caller, id: WebsiteId) -> Result<Website>;
    /// Any tenant's website, for the operator's own work on it (`NotFound` when there is none).
    async fn get_any_website(&self, op: &Operator, id: WebsiteId) -> Result<Website>;
    /// The website answering to `domain` (primary or alias), if the caller manages it.
    async fn get_website_by_domain(&self, caller: &Caller, domain: &DomainName) -> Result<Website>;
    /// The websites the caller manages.
    async fn list_websites(&self, caller: &Caller, page: PageRequest) -> Result<Page<Website>>;
    /// Every website on a node, across tenants: what the node must serve.
    async fn list_node_websites(
        &self,
        op: &Operator,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<Website>>;
    /// Changes a website the caller manages.
    async fn update_website(
        &self,
        caller: &Caller,
        id: WebsiteId,
        changes: WebsiteChanges,
    ) -> Result<Website>;
    /// Deletes a website the caller manages.
    async fn delete_website(&self, caller: &Caller, id: WebsiteId) -> Result<()>;
    /// Sets a website's status on the panel's own authority: the transitions a deployment
    /// drives (provisioning to active), which are nobody's user action. Clears its failure
    /// reason.
    async fn set_website_status(
        &self,
        op: &Operator,
        id: WebsiteId,
        status: crate::model::WebsiteStatus,
    ) -> Result<Website>;
    /// Records a website [`WebsiteStatus::Failed`](crate::model::WebsiteStatus::Failed) with
    /// `reason`, on the panel's own authority.
    async fn fail_website(&self, op: &Operator, id: WebsiteId, reason: &str) -> Result<Website>;
    /// The failure reasons of those of `ids` the caller manages that have one.
    async fn website_failures(
        &self,
        caller: &Caller,
        ids: &[WebsiteId],
    ) -> Result<Vec<WebsiteFailure>>;

    /// Records a website change in flight before its first step.
    async fn begin_operation(&self, op: &Operator, new: NewOperation) -> Result<Operation>;
    /// Records the next step of a change in flight and what it made so far; `NotFound` when
    /// the change is not in the journal.
    async fn advance_operation(
        &self,
        op: &Operator,
        id: OperationId,
        website: Option<WebsiteId>,
        step: SagaStep,
        state: &OperationState,
    ) -> Result<()>;
    /// Removes a change that ended (done or undone); `NotFound` when there is none.
    async fn end_operation(&self, op: &Operator, id: OperationId) -> Result<()>;
    /// The changes in flight, oldest first.
    async fn list_operations(&self, op: &Operator, page: PageRequest) -> Result<Page<Operation>>;

    /// Creates an alert rule in the caller's tenant (admins only).
    async fn create_alert_rule(&self, caller: &Caller, spec: AlertRuleSpec) -> Result<AlertRule>;
    /// One alert rule of the caller's tenant.
    async fn get_alert_rule(&self, caller: &Caller, id: AlertRuleId) -> Result<AlertRule>;
    /// The alert rules of the caller's tenant.
    async fn list_alert_rules(&self, caller: &Caller, page: PageRequest)
    -> Result<Page<AlertRule>>;
    /// Replaces an alert rule (admins only).
    async fn update_alert_rule(
        &self,
        caller: &Caller,
        id: AlertRuleId,
        spec: AlertRuleSpec,
    ) -> Result<AlertRule>;
    /// Deletes an alert rule (admins only).
    async fn delete_alert_rule(&self, caller: &Caller, id: AlertRuleId) -> Result<()>;

    /// Appends to the audit log. Entries are never changed or deleted through this trait.
    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry>;
    /// The caller's tenant's audit log (admins only).
    async fn list_audit(&self, caller: &Caller, page: PageRequest) -> Result<Page<AuditEntry>>;
    /// The whole audit log, operator entries included.
    async fn list_all_audit(&self, op: &Operator, page: PageRequest) -> Result<Page<AuditEntry>>;

    /// Records a Unix account on a node for one tenant. A name or uid the node already has on
    /// record is `AlreadyExists`; an unknown tenant or node is `NotFound`.
    async fn record_node_account(&self, op: &Operator, new: NewNodeAccount) -> Result<NodeAccount>;
    /// The account `name` on `node` when it belongs to the caller's tenant; `NotFound` otherwise
    /// (another tenant's account is indistinguishable from none).
    async fn get_node_account(
        &self,
        caller: &Caller,
        node: NodeId,
        name: &SystemUser,
    ) -> Result<NodeAccount>;
    /// The account `name` on `node`, whoever it belongs to.
    async fn find_node_account(
        &self,
        op: &Operator,
        node: NodeId,
        name: &SystemUser,
    ) -> Result<Option<NodeAccount>>;
    /// The accounts on `node`, by id.
    async fn list_node_accounts(
        &self,
        op: &Operator,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<NodeAccount>>;
    /// Forgets an account (after the node removed it, or when the operator releases an adopted
    /// one). `NotFound` when there is no such record.
    async fn delete_node_account(&self, op: &Operator, id: NodeAccountId) -> Result<()>;
}
