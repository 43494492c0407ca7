//! Knowing, without asking the database, whether the panel's records changed.
//!
//! A read served from memory is only as good as the certainty that nothing was written since
//! it was read. [`TrackedStore`] wraps a [`PanelStore`] and counts its writes in a
//! [`ChangeTracker`]; anything derived from a read (a serialized answer, say) can carry the
//! [`Stamp`] taken before the read and be reused while [`ChangeTracker::is_current`] holds.
//!
//! It counts what goes through the [`PanelStore`] trait: tenants, users, websites, nodes, alert
//! rules and the audit log, not the credentials, sessions and jobs an `AuthStore` or
//! `JobStore` writes. Writes by other processes reach it only through a change feed: a tracker
//! made with [`ChangeTracker::sole_writer`] trusts that there are none (the embedded SQLite
//! store, whose file the panel locks); one made with [`ChangeTracker::with_other_writers`]
//! hands out no stamp until a feed (PostgreSQL's `LISTEN`, in `hosting-db`) reports that it is
//! listening, and none again from the moment the feed is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    AlertRule, AlertRuleId, AlertRuleSpec, AuditEntry, NewAuditEntry, NewNode, NewNodeAccount,
    NewOperation, NewTenant, NewUser, NewWebsite, Node, NodeAccount, NodeAccountId, NodeId,
    Operation, OperationId, OperationState, SagaStep, Tenant, TenantChanges, TenantId, User,
    UserChanges, UserId, Website, WebsiteChanges, WebsiteFailure, WebsiteId, WebsiteStatus,
};
use crate::page::{Page, PageRequest};
use crate::rbac::{Caller, Operator};
use crate::store::{PanelStore, StoreInfo};
use crate::types::{DomainName, SystemUser};

/// The store's write count when a read began, while no write was under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp(u64);

/// Counts the writes to a store, so that a copy of a read can be checked for freshness with
/// a few atomic loads.
///
/// Each write moves the count when it begins and again when it has finished (committed or
/// failed), and is counted as under way in between. A read taken while no write was under way,
/// and still current afterwards, saw no write at all: its result equals what the store holds.
/// A write announced by another process moves the count once, when the announcement arrives
/// (after that write committed).
#[derive(Debug)]
pub struct ChangeTracker {
    version: AtomicU64,
    writing: AtomicU64,
    /// Whether every writer's commits reach this tracker: always for a sole writer, and
    /// while the change feed listens when there are others.
    sighted: AtomicBool,
}

impl ChangeTracker {
    /// A tracker for a store this process alone writes.
    pub fn sole_writer() -> Self {
        Self {
            version: AtomicU64::new(0),
            writing: AtomicU64::new(0),
            sighted: AtomicBool::new(true),
        }
    }

    /// A tracker for a store that other processes write too: it hands out no stamp until
    /// [`feed_listening`](Self::feed_listening) says their commits are being announced.
    pub fn with_other_writers() -> Self {
        Self {
            sighted: AtomicBool::new(false),
            ..Self::sole_writer()
        }
    }

    /// The stamp to take before a read, or `None` while a write is under way (its outcome
    /// is unknown, so nothing read now may be kept) or while other writers' commits go unseen.
    pub fn stamp(&self) -> Option<Stamp> {
        let version = self.version.load(Ordering::SeqCst);
        (self.writing.load(Ordering::SeqCst) == 0 && self.sighted.load(Ordering::SeqCst))
            .then_some(Stamp(version))
    }

    /// Whether no write has begun since `stamp` was taken: what was read under it still is
    /// what the store holds.
    pub fn is_current(&self, stamp: Stamp) -> bool {
        self.writing.load(Ordering::SeqCst) == 0
            && self.sighted.load(Ordering::SeqCst)
            && self.version.load(Ordering::SeqCst) == stamp.0
    }

    /// Marks a write as under way until the guard is dropped.
    pub fn begin_write(&self) -> WriteGuard<'_> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::SeqCst);
        WriteGuard { tracker: self }
    }

    /// Another process committed a write (or may have: announcements carry no detail).
    pub fn changed_elsewhere(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// The change feed listens: from now on every other writer's commit is announced.
    /// Whatever was read before is stale, since commits made while nobody listened are lost.
    pub fn feed_listening(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.sighted.store(true, Ordering::SeqCst);
    }

    /// The change feed stopped listening: no stamp is handed out or honoured until it listens
    /// again.
    pub fn feed_lost(&self) {
        self.sighted.store(false, Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

/// A write under way; dropping it (after the write committed or failed) ends it.
#[derive(Debug)]
#[must_use = "the write counts as under way only while the guard lives"]
pub struct WriteGuard<'a> {
    tracker: &'a ChangeTracker,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // The count moves before the write stops counting as under way, so no reader can
        // see "nothing under way" together with the version from before this write.
        self.tracker.version.fetch_add(1, Ordering::SeqCst);
        self.tracker.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A [`PanelStore`] whose every write is counted in a [`ChangeTracker`].
///
/// Every method that may write, the audit log included, counts as a write: a forgotten
/// write would serve stale data, an extra one only costs a cache miss.
#[derive(Debug)]
pub struct TrackedStore {
    inner: Arc<dyn PanelStore>,
    tracker: Arc<ChangeTracker>,
}

impl TrackedStore {
    /// Wraps `inner`, which this process must be the only writer of.
    pub fn new(inner: Arc<dyn PanelStore>) -> Self {
        Self::with_tracker(inner, Arc::new(ChangeTracker::sole_writer()))
    }

    /// Wraps `inner`, counting its writes in `tracker` (which a change feed may also move).
    pub fn with_tracker(inner: Arc<dyn PanelStore>, tracker: Arc<ChangeTracker>) -> Self {
        Self { inner, tracker }
    }
}

#[async_trait]
impl PanelStore for TrackedStore {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }

    fn changes(&self) -> Option<&ChangeTracker> {
        Some(&self.tracker)
    }

    async fn create_tenant(&self, op: &Operator, new: NewTenant) -> Result<Tenant> {
        let _write = self.tracker.begin_write();
        self.inner.create_tenant(op, new).await
    }

    async fn get_tenant(&self, op: &Operator, id: TenantId) -> Result<Tenant> {
        self.inner.get_tenant(op, id).await
    }

    async fn own_tenant(&self, caller: &Caller) -> Result<Tenant> {
        self.inner.own_tenant(caller).await
    }

    async fn list_tenants(&self, op: &Operator, page: PageRequest) -> Result<Page<Tenant>> {
        self.inner.list_tenants(op, page).await
    }

    async fn update_tenant(
        &self,
        op: &Operator,
        id: TenantId,
        changes: TenantChanges,
    ) -> Result<Tenant> {
        let _write = self.tracker.begin_write();
        self.inner.update_tenant(op, id, changes).await
    }

    async fn delete_tenant(&self, op: &Operator, id: TenantId) -> Result<()> {
        let _write = self.tracker.begin_write();
        self.inner.delete_tenant(op, id).await
    }

    async fn create_node(&self, op: &Operator, new: NewNode) -> Result<Node> {
        let _write = self.tracker.begin_write();
        self.inner.create_node(op, new).await
    }

    async fn get_node(&self, op: &Operator, id: NodeId) -> Result<Node> {
        self.inner.get_node(op, id).await
    }

    async fn list_nodes(&self, op: &Operator, page: PageRequest) -> Result<Page<Node>> {
        self.inner.list_nodes(op, page).await
    }

    async fn delete_node(&self, op: &Operator, id: NodeId) -> Result<()> {
        let _write = self.tracker.begin_write();
        self.inner.delete_node(op, id).await
    }

    async fn create_user_as_operator(
        &self,
        op: &Operator,
        tenant: TenantId,
        new: NewUser,
    ) -> Result<User> {
        let _write = self.tracker.begin_write();
        self.inner.create_user_as_operator(op, tenant, new).await
    }

    async fn create_user(&self, caller: &Caller, new: NewUser) -> Result<User> {
        let _write = self.tracker.begin_write();
        self.inner.create_user(caller, new).await
    }

    async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        self.inner.get_user(caller, id).await
    }

    async fn list_users(&self, caller: &Caller, page: PageRequest) -> Result<Page<User>> {
        self.inner.list_users(caller, page).await
    }

    async fn update_user(&self, caller: &Caller, id: UserId, changes: UserChanges) -> Result<User> {
        let _write = self.tracker.begin_write();
        self.inner.update_user(caller, id, changes).await
    }

    async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()> {
        let _write = self.tracker.begin_write();
        self.inner.delete_user(caller, id).await
    }

    async fn create_website(&self, caller: &Caller, new: NewWebsite) -> Result<Website> {
        let _write = self.tracker.begin_write();
        self.inner.create_website(caller, new).await
    }

    async fn get_website(&self, caller: &Caller, id: WebsiteId) -> Result<Website> {
        self.inner.get_website(caller, id).await
    }

    async fn get_any_website(&self, op: &Operator, id: WebsiteId) -> Result<Website> {
        self.inner.get_any_website(op, id).await
    }

    async fn get_website_by_domain(&self, caller: &Caller, domain: &DomainName) -> Result<Website> {
        self.inner.get_website_by_domain(caller, domain).await
    }

    async fn list_websites(&self, caller: &Caller, page: PageRequest) -> Result<Page<Website>> {
        self.inner.list_websites(caller, page).await
    }

    async fn list_node_websites(
        &self,
        op: &Operator,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<Website>> {
        self.inner.list_node_websites(op, node, page).await
    }

    async fn update_website(
        &self,
        caller: &Caller,
        id: WebsiteId,
        changes: WebsiteChanges,
    ) -> Result<Website> {
        let _write = self.tracker.begin_write();
        self.inner.update_website(caller, id, changes).await
    }

    async fn delete_website(&self, caller: &Caller, id: WebsiteId) -> Result<()> {
        let _write = self.tracker.begin_write();
        self.inner.delete_website(caller, id).await
    }

    async fn set_website_status(
        &self,
        op: &Operator,
        id: WebsiteId,
        status: WebsiteStatus,
    ) -> Result<Website> {
        let _write = self.tracker.begin_write();
        self.inner.set_website_status(op, id, status).await
    }

    async fn fail_website(&self, op: &Operator, id: WebsiteId, reason: &str) -> Result<Website> {
        let _write = self.tracker.begin_write();
        self.inner.fail_website(op, id, reason).await
    }

    async fn website_failures(
        &self,
        caller: &Caller,
        ids: &[WebsiteId],
    ) -> Result<Vec<WebsiteFailure>> {
        self.inner.website_failures(caller, ids).await
    }

    // The journal's writes are not counted: no answer kept in memory is read from it.
    async fn begin_operation(&self, op: &Operator, new: NewOperation) -> Result<Operation> {
        self.inner.begin_operation(op, new).await
    }

    async fn advance_operation(
        &self,
        op: &Operator,
        id: OperationId,
        website: Option<WebsiteId>,
        step: SagaStep,
        state: &OperationState,
    ) -> Result<()> {
        self.inner
            .advance_operation(op, id, website, step, state)
            .await
    }

    async fn end_operation(&self, op: &Operator, id: OperationId) -> Result<()> {
        self.inner.end_operation(op, id).await
    }

    async fn list_operations(&self, op: &Operator, page: PageRequest) -> Result<Page<Operation>> {
        self.inner.list_operations(op, page).await
    }

    async fn create_alert_rule(&self, caller: &Caller, spec: AlertRuleSpec) -> Result<AlertRule> {
        let _write = self.tracker.begin_write();
        self.inner.create_alert_rule(caller, spec).await
    }

    async fn get_alert_rule(&self, caller: &Caller, id: AlertRuleId) -> Result<AlertRule> {
        self.inner.get_alert_rule(caller, id).await
    }

    async fn list_alert_rules(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<AlertRule>> {
        self.inner.list_alert_rules(caller, page).await
    }

    async fn update_alert_rule(
        &self,
        caller: &Caller,
        id: AlertRuleId,
        spec: AlertRuleSpec,
    ) -> Result<AlertRule> {
        let _write = self.tracker.begin_write();
        self.inner.update_alert_rule(caller, id, spec).await
    }

    async fn delete_alert_rule(&self, caller: &Caller, id: AlertRuleId) -> Result<()> {
        let _write = self.tracker.begin_write();
        self.inner.delete_alert_rule(caller, id).await
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        let _write = self.tracker.begin_write();
        self.inner.append_audit(entry).await
    }

    async fn list_audit(&self, caller: &Caller, page: PageRequest) -> Result<Page<AuditEntry>> {
        self.inner.list_audit(caller, page).await
    }

    async fn list_all_audit(&self, op: &Operator, page: PageRequest) -> Result<Page<AuditEntry>> {
        self.inner.list_all_audit(op, page).await
    }

    async fn record_node_account(&self, op: &Operator, new: NewNodeAccount) -> Result<NodeAccount> {
        let _write = self.tracker.begin_write();
        self.inner.record_node_account(op, new).await
    }

    async fn get_node_account(
        &self,
        caller: &Caller,
        node: NodeId,
        name: &SystemUser,
    ) -> Result<NodeAccount> {
        self.inner.get_node_account(caller, node, name).await
    }

    async fn find_node_account(
        &self,
        op: &Operator,
        node: NodeId,
        name: &SystemUser,
    ) -> Result<Option<NodeAccount>> {
        self.inner.find_node_account(op, node, name).await
    }

    async fn list_node_accounts(
        &self,
        op: &Operator,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<NodeAccount>> {
        self.inner.list_node_accounts(op, node, page).await
    }

    async fn delete_node_account(&self, op: &Operator, id: NodeAccountId) -> Result<()> {
        let _write = self.tracker.begin_write();
        self.inner.delete_node_account(op, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_outlives_no_write() {
        let tracker = ChangeTracker::sole_writer();
        let Some(before) = tracker.stamp() else {
            panic!("no write is under way");
        };
        assert!(tracker.is_current(before));

        let write = tracker.begin_write();
        // Under way: nothing read now may be kept, and nothing read before may be served.
        assert_eq!(tracker.stamp(), None);
        assert!(!tracker.is_current(before));
        drop(write);

        assert!(!tracker.is_current(before));
        let Some(after) = tracker.stamp() else {
            panic!("the write ended");
        };
        assert_ne!(after, before);
        assert!(tracker.is_current(after));
    }

    #[test]
    fn a_write_that_began_and_ended_during_a_read_is_seen() {
        let tracker = ChangeTracker::sole_writer();
        let Some(stamp) = tracker.stamp() else {
            panic!("no write is under way");
        };
        drop(tracker.begin_write());
        assert!(!tracker.is_current(stamp));
    }

    #[test]
    fn overlapping_writes_count_as_under_way_until_the_last_ends() {
        let tracker = ChangeTracker::sole_writer();
        let first = tracker.begin_write();
        let second = tracker.begin_write();
        drop(first);
        assert_eq!(tracker.stamp(), None);
        drop(second);
        assert!(tracker.stamp().is_some());
    }

    #[test]
    fn other_writers_leave_nothing_to_keep_until_the_feed_listens() {
        let tracker = ChangeTracker::with_other_writers();
        assert_eq!(tracker.stamp(), None, "commits elsewhere go unseen");
        tracker.feed_listening();
        let Some(stamp) = tracker.stamp() else {
            panic!("the feed listens");
        };
        assert!(tracker.is_current(stamp));
        tracker.changed_elsewhere();
        assert!(
            !tracker.is_current(stamp),
            "an announced commit ends the stamp"
        );
    }

    #[test]
    fn a_lost_feed_ends_every_stamp_and_a_new_one_starts_afresh() {
        let tracker = ChangeTracker::with_other_writers();
        tracker.feed_listening();
        let Some(before) = tracker.stamp() else {
            panic!("the feed listens");
        };
        tracker.feed_lost();
        assert!(!tracker.is_current(before));
        assert_eq!(tracker.stamp(), None);
        tracker.feed_listening();
        assert!(
            !tracker.is_current(before),
            "what was read before the loss may have missed a commit"
        );
        assert!(tracker.stamp().is_some());
    }
}
