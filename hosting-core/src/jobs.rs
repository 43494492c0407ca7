//! Background jobs: work that outlives a request (converging a node, repairing drift), stored
//! in the panel's database so any panel instance can run it, retried with backoff, and visible
//! to the people who asked for it.
//!
//! A job is claimed with a lease: a worker that dies mid-job loses the lease when it expires and
//! another worker takes the job over. On PostgreSQL and MySQL the claim uses
//! `FOR UPDATE SKIP LOCKED`, so workers never queue behind each other; SQLite has one writer.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{JobId, NodeId, TenantId, UserId};
use crate::page::{Page, PageRequest};
use crate::rbac::{Caller, Operator};
use crate::types::named_enum;

/// What a job does. Stored as JSON (`{"type": "apply_node", "node": 3}`), so the set can grow
/// without a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum JobKind {
    /// Render every site of a node and apply the result: the way a node converges after a
    /// failed or interrupted change.
    ApplyNode {
        /// The node.
        node: NodeId,
    },
}

impl JobKind {
    /// The node the job works on, so two jobs for one node never run at once.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            JobKind::ApplyNode { node } => Some(*node),
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for a worker (possibly until `run_after`, after a failed attempt).
    Queued,
    /// A worker holds its lease.
    Running,
    /// Done.
    Succeeded,
    /// Gave up after its last attempt; `last_error` says why.
    Failed,
}
named_enum!(JobStatus, "status", "must be one of queued, running, succeeded, failed", {
    Queued => "queued", Running => "running", Succeeded => "succeeded", Failed => "failed",
});

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Assigned by the store.
    pub id: JobId,
    /// The tenant it was enqueued for; `None` for the operator's and the panel's own jobs.
    pub tenant_id: Option<TenantId>,
    /// Who enqueued it; `None` for the operator or the panel itself.
    pub created_by: Option<UserId>,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed before it fails for good.
    pub max_attempts: u32,
    /// Not claimed before this time.
    pub run_after: DateTime<Utc>,
    /// The last step a worker reported, for people watching it.
    pub progress: String,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// Attempts allowed (at least 1).
    pub max_attempts: u32,
    /// Not claimed before this time.
    pub run_after: DateTime<Utc>,
}

/// Who a job is enqueued for: decides who may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOwner<'a> {
    /// A tenant user; the job is visible in its tenant.
    Caller(&'a Caller),
    /// The operator or the panel itself.
    Operator(&'a Operator),
}

/// A job a worker holds: the job as claimed, and the lease token proving the claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job (status `running`, `attempts` counting this one).
    pub job: Job,
    /// Identifies this claim; reporting without it (after the lease passed to another worker)
    /// is refused.
    pub lease: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Done.
    Succeeded,
    /// Failed; try again at `run_after` if attempts remain, else the job fails with `error`.
    Retry {
        /// Why it failed (no secrets).
        error: String,
        /// When to try again.
        run_after: DateTime<Utc>,
    },
    /// Failed in a way another attempt cannot fix.
    Failed {
        /// Why.
        error: String,
    },
}

/// The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed: doubling
/// from `base`, capped at `cap`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(30);
    base.saturating_mul(1 << doublings).min(cap)
}

/// The panel's job queue.
///
/// # Contract
/// - `claim` hands each due job to exactly one worker at a time, oldest first, and never a job
///   whose node already has a running job; a job whose lease expired is claimable again.
/// - `report` and `finish` with a stale lease are [`Error::Conflict`](crate::Error::Conflict)
///   and change nothing.
/// - Visibility: a tenant admin sees every job of its tenant, other users the jobs they
///   enqueued; another tenant's job is [`Error::NotFound`](crate::Error::NotFound).
#[async_trait]
pub trait JobStore: Debug + Send + Sync {
    /// Enqueues a job.
    async fn enqueue(&self, owner: JobOwner<'_>, new: NewJob) -> Result<Job>;
    /// Takes the oldest due job for `worker`, holding it until `now + lease`.
    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>>;
    /// Records progress and extends the lease to `now + lease`.
    async fn report(
        &self,
        claimed: &ClaimedJob,
        progress: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<()>;
    /// Ends an attempt.
    async fn finish(
        &self,
        claimed: &ClaimedJob,
        outcome: JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job>;
    /// A job the caller may see.
    async fn get_job(&self, caller: &Caller, id: JobId) -> Result<Job>;
    /// The jobs the caller may see, newest last.
    async fn list_jobs(&self, caller: &Caller, page: PageRequest) -> Result<Page<Job>>;
    /// Any job.
    async fn get_any_job(&self, op: &Operator, id: JobId) -> Result<Job>;
    /// Every job.
    async fn list_all_jobs(&self, op: &Operator, page: PageRequest) -> Result<Page<Job>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(300);
        let delays: Vec<u64> = (1..=9).map(|a| backoff(a, base, cap).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX, base, cap), cap);
    }

    #[test]
    fn job_kinds_are_tagged_json() {
        let kind = JobKind::ApplyNode { node: NodeId(3) };
        let json = serde_json::to_string(&kind).expect("json");
        assert_eq!(json, r#"{"type":"apply_node","node":3}"#);
        assert_eq!(serde_json::from_str::<JobKind>(&json).expect("parse"), kind);
        assert!(serde_json::from_str::<JobKind>(r#"{"type":"rm_rf"}"#).is_err());
    }
}
