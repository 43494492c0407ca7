//! [`JobStore`] for [`SqlStore`]: a queue in the `jobs` table, claimed with leases.
//!
//! A claim is one write transaction. On PostgreSQL and MySQL/MariaDB it picks its job with
//! `FOR UPDATE SKIP LOCKED`, so workers never wait for each other's candidates; SQLite's
//! `BEGIN IMMEDIATE` runs one claim at a time. "One running job per node" is not left to the
//! claim query alone (two workers can each pick a different job of one node): a running job
//! holds its node in `running_node`, whose unique index refuses the second, and the loser
//! retries with a fresh transaction.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hosting_core::jobs::{ClaimedJob, Job, JobOutcome, JobOwner, JobStatus, JobStore, NewJob};
use hosting_core::model::JobId;
use hosting_core::rbac::{self, Caller, Operator};
use hosting_core::{Error, Page, PageRequest, Result};

use super::auth::millis_after;
use super::{Args, Dialect, SqlStore, now_ms, rows};

/// Claims that lose a race for a node (or a deadlock) are retried this often before the
/// conflict is reported.
const CLAIM_TRIES: usize = 8;
/// Expired jobs on their last attempt one claim may fail before it gives up looking.
const EXHAUSTED_PER_CLAIM: usize = 16;
/// Progress and error texts are for people; longer ones are cut at this many bytes.
const MAX_TEXT: usize = 4096;
/// The error recorded when a job's last attempt was abandoned.
const LAST_LEASE_EXPIRED: &str = "the lease of the last attempt expired";
/// The longest worker name stored.
const MAX_WORKER: usize = 200;

/// The jobs `caller` may see: a tenant admin's whole tenant, anyone else's own.
fn job_scope(caller: &Caller, args: Args) -> (&'static str, Args) {
    if rbac::can_administer_tenant(caller, caller.tenant) {
        ("tenant_id = ?", args.int(caller.tenant.0))
    } else {
        (
            "tenant_id = ? AND created_by = ?",
            args.int(caller.tenant.0).int(caller.user.0),
        )
    }
}

/// `s` cut to at most [`MAX_TEXT`] bytes on a character boundary.
fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A lease token: unique per claim because `(job, attempt)` is (every claim counts an
/// attempt), with a random tail so a token is not derivable from the job alone.
fn lease_token(job: JobId, attempt: u32) -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_i64(job.0);
    h.write_u32(attempt);
    h.write_i64(now_ms());
    format!("{}-{}-{:016x}", job.0, attempt, h.finish())
}

fn stale_lease() -> Error {
    Error::Conflict("the job's lease is no longer held by this claim".into())
}

impl SqlStore {
    async fn job_by_id<'e, E>(&self, exec: E, id: i64) -> Result<Job>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let sql = format!("SELECT {} FROM jobs WHERE id = ?", rows::JOB_COLUMNS);
        let row = self
            .fetch_optional(exec, &sql, Args::default().int(id))
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        rows::job(&row)
    }

    /// Starts a claim's transaction. MySQL/MariaDB claims run under READ COMMITTED: a locking
    /// read then keeps only the row it returns locked (no gap locks, none on rows the node
    /// filter rejects), so concurrent claimers and enqueues do not wait on rows it passed over.
    async fn begin_claim(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.dialect {
            Dialect::MySql => self
                .pool
                .begin_with("SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION")
                .await
                .map_err(|e| Error::backend("panel-store", e)),
            Dialect::Sqlite | Dialect::Postgres => self.begin().await,
        }
    }

    /// One claim transaction. A lost race surfaces as `AlreadyExists` (the node's unique
    /// index) or `Conflict` (a deadlock or serialisation failure); the caller retries those.
    async fn try_claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>> {
        let at = rows::millis(now);
        let mut tx = self.begin_claim().await?;
        let lock = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE SKIP LOCKED",
        };
        // Two queries, each walking one index in order, so LIMIT 1 stops at the first row it
        // can lock: abandoned jobs (running, lease expired) first, since they were due before
        // their first claim; then due queued jobs whose node no live job holds.
        let abandoned = format!(
            "SELECT {} FROM jobs WHERE status = 'running' AND lease_until <= ? \
             ORDER BY lease_until, id LIMIT 1{lock}",
            rows::JOB_COLUMNS
        );
        let due = format!(
            "SELECT {} FROM jobs j WHERE j.status = 'queued' AND j.run_after <= ? \
             AND (j.node_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
             WHERE r.running_node = j.node_id AND r.lease_until > ?)) \
             ORDER BY j.run_after, j.id LIMIT 1{lock}",
            rows::JOB_COLUMNS
        );
        let mut found = None;
        for _ in 0..EXHAUSTED_PER_CLAIM {
            let Some(row) = self
                .fetch_optional(&mut *tx, &abandoned, Args::default().int(at))
                .await?
            else {
                break;
            };
            let job = rows::job(&row)?;
            if job.attempts < job.max_attempts {
                found = Some(job);
                break;
            }
            // Its worker vanished during the last attempt: the job fails rather than run more
            // often than allowed.
            self.execute(
                &mut *tx,
                "UPDATE jobs SET status = 'failed', running_node = NULL, lease_token = NULL, \
                 lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?",
                Args::default()
                    .text(LAST_LEASE_EXPIRED)
                    .int(at)
                    .int(job.id.0),
                "job",
                String::new,
            )
            .await?;
        }
        if found.is_none() {
            found = self
                .fetch_optional(&mut *tx, &due, Args::default().int(at).int(at))
                .await?
                .map(|row| rows::job(&row))
                .transpose()?;
        }
        match found {
            None => {
                Self::commit(tx).await?;
                Ok(None)
            }
            Some(job) => {
                if let Some(node) = job.kind.node() {
                    // A holder of the node whose lease expired gives it up (back to the queue, or
                    // failed after its last attempt), so this job can take the node.
                    self.execute(
                        &mut *tx,
                        "UPDATE jobs SET \
                     status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                     last_error = CASE WHEN attempts >= max_attempts THEN ? ELSE last_error END, \
                     running_node = NULL, lease_token = NULL, lease_until = NULL, updated_at = ? \
                     WHERE running_node = ? AND id <> ? AND lease_until <= ?",
                        Args::default()
                            .text(LAST_LEASE_EXPIRED)
                            .int(at)
                            .int(node.0)
                            .int(job.id.0)
                            .int(at),
                        "job",
                        String::new,
                    )
                    .await?;
                }
                let attempt = job.attempts.saturating_add(1);
                let token = lease_token(job.id, attempt);
                self.execute(
                    &mut *tx,
                    "UPDATE jobs SET status = 'running', running_node = node_id, attempts = ?, \
                 worker = ?, lease_token = ?, lease_until = ?, updated_at = ? WHERE id = ?",
                    Args::default()
                        .int(i64::from(attempt))
                        .text(worker)
                        .text(token.clone())
                        .int(millis_after(now, lease))
                        .int(at)
                        .int(job.id.0),
                    "job",
                    || "another job of this node is running".into(),
                )
                .await?;
                let job = self.job_by_id(&mut *tx, job.id.0).await?;
                Self::commit(tx).await?;
                Ok(Some(ClaimedJob { job, lease: token }))
            }
        }
    }
}

#[async_trait]
impl JobStore for SqlStore {
    async fn enqueue(&self, owner: JobOwner<'_>, new: NewJob) -> Result<Job> {
        if new.max_attempts == 0 {
            return Err(Error::Invalid {
                field: "max_attempts".into(),
                reason: "must be at least 1".into(),
            });
        }
        let (tenant, created_by) = match owner {
            JobOwner::Caller(caller) => (Some(caller.tenant.0), Some(caller.user.0)),
            JobOwner::Operator(_) => (None, None),
        };
        let now = now_ms();
        let id = self
            .insert(
                &self.pool,
                "INSERT INTO jobs (tenant_id, created_by, kind, node_id, status, attempts, \
                 max_attempts, run_after, progress, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, 0, ?, ?, '', ?, ?)",
                Args::default()
                    .opt_int(tenant)
                    .opt_int(created_by)
                    .text(rows::to_json(&new.kind)?)
                    .opt_int(new.kind.node().map(|n| n.0))
                    .text(JobStatus::Queued.to_string())
                    .int(i64::from(new.max_attempts))
                    .int(rows::millis(new.run_after))
                    .int(now)
                    .int(now),
                "job",
                String::new,
            )
            .await?;
        self.job_by_id(&self.pool, id).await
    }

    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>> {
        if worker.is_empty() || worker.len() > MAX_WORKER {
            return Err(Error::Invalid {
                field: "worker".into(),
                reason: format!("must be 1 to {MAX_WORKER} bytes").into(),
            });
        }
        let mut last = None;
        for _ in 0..CLAIM_TRIES {
            match self.try_claim(worker, now, lease).await {
                Err(e @ (Error::AlreadyExists { .. } | Error::Conflict(_))) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::Conflict("the claim kept losing races".into())))
    }

    async fn report(
        &self,
        claimed: &ClaimedJob,
        progress: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<()> {
        let changed = self
            .execute(
                &self.pool,
                "UPDATE jobs SET progress = ?, lease_until = ?, updated_at = ? \
                 WHERE id = ? AND status = 'running' AND lease_token = ?",
                Args::default()
                    .text(bounded(progress))
                    .int(millis_after(now, lease))
                    .int(rows::millis(now))
                    .int(claimed.job.id.0)
                    .text(claimed.lease.clone()),
                "job",
                String::new,
            )
            .await?;
        if changed == 0 {
            return Err(stale_lease());
        }
        Ok(())
    }

    async fn finish(
        &self,
        claimed: &ClaimedJob,
        outcome: JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT {} FROM jobs WHERE id = ? AND status = 'running' AND lease_token = ?{}",
            rows::JOB_COLUMNS,
            self.for_update()
        );
        let current = self
            .fetch_optional(
                &mut *tx,
                &sql,
                Args::default()
                    .int(claimed.job.id.0)
                    .text(claimed.lease.clone()),
            )
            .await?
            .ok_or_else(stale_lease)
            .and_then(|row| rows::job(&row))?;
        let (status, run_after, last_error) = match outcome {
            JobOutcome::Succeeded => (JobStatus::Succeeded, current.run_after, current.last_error),
            JobOutcome::Retry { error, run_after } if current.attempts < current.max_attempts => {
                (JobStatus::Queued, run_after, Some(bounded(&error)))
            }
            JobOutcome::Retry { error, .. } | JobOutcome::Failed { error } => {
                (JobStatus::Failed, current.run_after, Some(bounded(&error)))
            }
        };
        self.execute(
            &mut *tx,
            "UPDATE jobs SET status = ?, run_after = ?, last_error = ?, running_node = NULL, \
             lease_token = NULL, lease_until = NULL, updated_at = ? WHERE id = ?",
            Args::default()
                .text(status.to_string())
                .int(rows::millis(run_after))
                .opt_text(last_error)
                .int(rows::millis(now))
                .int(current.id.0),
            "job",
            String::new,
        )
        .await?;
        let job = self.job_by_id(&mut *tx, current.id.0).await?;
        Self::commit(tx).await?;
        Ok(job)
    }

    async fn get_job(&self, caller: &Caller, id: JobId) -> Result<Job> {
        let (scope, args) = job_scope(caller, Args::default().int(id.0));
        let sql = format!(
            "SELECT {} FROM jobs WHERE id = ? AND {scope}",
            rows::JOB_COLUMNS
        );
        let row = self
            .fetch_optional(&self.pool, &sql, args)
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        rows::job(&row)
    }

    async fn list_jobs(&self, caller: &Caller, page: PageRequest) -> Result<Page<Job>> {
        let (scope, args) = job_scope(caller, Args::default());
        let sql = format!("SELECT {} FROM jobs WHERE {scope}", rows::JOB_COLUMNS);
        self.list_page(&sql, "id", args, page, rows::job, |j| j.id.0)
            .await
    }

    async fn get_any_job(&self, _op: &Operator, id: JobId) -> Result<Job> {
        self.job_by_id(&self.pool, id.0).await
    }

    async fn list_all_jobs(&self, _op: &Operator, page: PageRequest) -> Result<Page<Job>> {
        let sql = format!("SELECT {} FROM jobs WHERE 1 = 1", rows::JOB_COLUMNS);
        self.list_page(&sql, "id", Args::default(), page, rows::job, |j| j.id.0)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_TEXT); // two bytes each
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT && cut.len() >= MAX_TEXT - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn leases_differ_per_attempt_and_fit_the_column() {
        let a = lease_token(JobId(i64::MAX), u32::MAX);
        let b = lease_token(JobId(i64::MAX), u32::MAX - 1);
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
    }

    #[test]
    fn lease_ends_stay_readable_timestamps() {
        let now = Utc::now();
        let end = millis_after(now, Duration::MAX);
        assert!(DateTime::from_timestamp_millis(end).is_some());
        assert_eq!(
            millis_after(now, Duration::from_secs(30)),
            rows::millis(now) + 30_000
        );
    }
}
