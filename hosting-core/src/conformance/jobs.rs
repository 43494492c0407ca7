//! The [`JobStore`] contract. The store must also be a [`PanelStore`]: the suite makes its
//! tenants, users and nodes through it.
//!
//! `claim` takes any due job in the store, so run each function against a queue that holds no
//! other claimable job: a fresh store per function, or functions one after another (each
//! leaves every job it made final, and checks that).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::conformance::store::{World, caller};
use crate::conformance::unique_suffix;
use crate::error::Error;
use crate::jobs::{
    ClaimedJob, Job, JobKind, JobOutcome, JobOwner, JobStatus, JobStore, NewJob, backoff,
};
use crate::model::{JobId, NewNode, Node, NodeRole, User};
use crate::page::{PageLimit, PageRequest};
use crate::rbac::{Caller, Operator};
use crate::store::PanelStore;

/// Every function of this suite, in order.
pub async fn run_all<S: PanelStore + JobStore>(store: &S) {
    jobs_enqueue_and_read_back(store).await;
    job_visibility_follows_the_owner(store).await;
    claim_takes_the_oldest_due_job(store).await;
    concurrent_claims_never_share_a_job(store).await;
    one_running_job_per_node(store).await;
    expired_leases_pass_to_another_worker(store).await;
    retries_back_off_until_attempts_run_out(store).await;
}

const LEASE: Duration = Duration::from_secs(30);

fn parse<T: FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("suite value {s:?} must parse: {e:?}"))
}

fn page(limit: u32) -> PageRequest {
    PageRequest::first(PageLimit::try_from(limit).unwrap_or_default())
}

fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// Now, to the millisecond: stores keep timestamps at that precision.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_else(Utc::now)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn apply(node: &Node) -> JobKind {
    JobKind::ApplyNode { node: node.id }
}

fn new_job(node: &Node, max_attempts: u32, run_after: DateTime<Utc>) -> NewJob {
    NewJob {
        kind: apply(node),
        max_attempts,
        run_after,
    }
}

/// `n` fresh nodes, so jobs on them do not wait for each other.
async fn nodes<S: PanelStore>(store: &S, n: usize) -> Vec<Node> {
    let op = Operator::assume();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let node = store
            .create_node(
                &op,
                NewNode {
                    name: parse(&format!("jobs-{}", unique_suffix())),
                    address: parse("10.0.0.1:8443"),
                    roles: BTreeSet::from([NodeRole::Web]),
                },
            )
            .await
            .expect("create node");
        out.push(node);
    }
    out
}

async fn enqueue_as<S: JobStore>(store: &S, user: &User, new: NewJob) -> Job {
    store
        .enqueue(JobOwner::Caller(&caller(user)), new)
        .await
        .expect("enqueue")
}

async fn claim<S: JobStore>(store: &S, worker: &str, at: DateTime<Utc>) -> Option<ClaimedJob> {
    store.claim(worker, at, LEASE).await.expect("claim")
}

async fn finish<S: JobStore>(
    store: &S,
    claimed: &ClaimedJob,
    outcome: JobOutcome,
    at: DateTime<Utc>,
) -> Job {
    store
        .finish(claimed, outcome, at)
        .await
        .expect("finish with a current lease")
}

async fn job<S: JobStore>(store: &S, id: JobId) -> Job {
    store
        .get_any_job(&Operator::assume(), id)
        .await
        .expect("get job")
}

/// Claims and succeeds every job due by a year from `from`, so the queue is left final.
async fn drain<S: JobStore>(store: &S, from: DateTime<Utc>) {
    let later = from + TimeDelta::days(365);
    for _ in 0..100 {
        let Some(c) = claim(store, "drain", later).await else {
            return;
        };
        finish(store, &c, JobOutcome::Succeeded, later).await;
    }
    panic!("the queue does not drain");
}

/// Checks that nothing is left to claim, even a year later.
async fn assert_queue_final<S: JobStore>(store: &S, from: DateTime<Utc>) {
    let later = from + TimeDelta::days(365);
    let left = claim(store, "check", later).await;
    assert!(left.is_none(), "a job was left claimable: {left:?}");
}

/// Opens connections before a race, so the racers start together instead of one finishing
/// while the others are still connecting.
async fn warm_up<S: JobStore>(store: &S) {
    let op = Operator::assume();
    let reads = futures::future::join_all((0..32).map(|_| store.list_all_jobs(&op, page(1)))).await;
    assert!(reads.iter().all(Result::is_ok), "warm-up reads: {reads:?}");
}

async fn visible_ids<S: JobStore>(store: &S, me: &Caller) -> Vec<JobId> {
    let mut ids = Vec::new();
    let mut request = page(2);
    loop {
        let p = store.list_jobs(me, request).await.expect("list jobs");
        ids.extend(p.items.iter().map(|j| j.id));
        match p.next_after {
            Some(after) => request.after = Some(after),
            None => return ids,
        }
    }
}

/// An enqueued job is queued, unattempted and owned as asked; `max_attempts` is at least 1.
pub async fn jobs_enqueue_and_read_back<S: PanelStore + JobStore>(store: &S) {
    let op = Operator::assume();
    let w = World::create(store).await;
    let t0 = now();
    let mine = enqueue_as(store, &w.admin, new_job(&w.node, 3, t0)).await;
    assert_eq!(mine.tenant_id, Some(w.tenant.id));
    assert_eq!(mine.created_by, Some(w.admin.id));
    assert_eq!(mine.kind, apply(&w.node));
    assert_eq!(mine.status, JobStatus::Queued);
    assert_eq!((mine.attempts, mine.max_attempts), (0, 3));
    assert_eq!(mine.run_after, t0);
    assert_eq!(mine.progress, "");
    assert_eq!(mine.last_error, None);
    assert_eq!(job(store, mine.id).await, mine);
    assert_eq!(
        store
            .get_job(&caller(&w.admin), mine.id)
            .await
            .expect("get"),
        mine
    );

    let platform = store
        .enqueue(JobOwner::Operator(&op), new_job(&w.node, 1, t0))
        .await
        .expect("enqueue as operator");
    assert_eq!((platform.tenant_id, platform.created_by), (None, None));
    assert_eq!(job(store, platform.id).await, platform);

    match store
        .enqueue(JobOwner::Operator(&op), new_job(&w.node, 0, t0))
        .await
    {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "max_attempts"),
        other => panic!("zero attempts: expected Invalid, got {other:?}"),
    }
    assert_not_found(store.get_any_job(&op, JobId(i64::MAX)).await, "unknown job");
    drain(store, t0).await;
    assert_queue_final(store, t0).await;
}

/// A tenant admin sees its tenant's jobs, anyone else the jobs it enqueued, the operator
/// every job; anything else is `NotFound`, another tenant's jobs above all.
pub async fn job_visibility_follows_the_owner<S: PanelStore + JobStore>(store: &S) {
    let op = Operator::assume();
    let w = World::create(store).await;
    let away = World::create(store).await;
    let t0 = now();
    let by_admin = enqueue_as(store, &w.admin, new_job(&w.node, 1, t0)).await;
    let by_reseller = enqueue_as(store, &w.reseller_a, new_job(&w.node, 1, t0)).await;
    let by_client = enqueue_as(store, &w.client_of_a, new_job(&w.node, 1, t0)).await;
    let by_operator = store
        .enqueue(JobOwner::Operator(&op), new_job(&w.node, 1, t0))
        .await
        .expect("enqueue");
    let by_away = enqueue_as(store, &away.admin, new_job(&away.node, 1, t0)).await;

    let admin = caller(&w.admin);
    for j in [&by_admin, &by_reseller, &by_client] {
        assert_eq!(&store.get_job(&admin, j.id).await.expect("admin reads"), j);
    }
    assert_eq!(
        visible_ids(store, &admin).await,
        vec![by_admin.id, by_reseller.id, by_client.id],
        "a tenant admin sees its tenant's jobs, oldest first"
    );
    let reseller = caller(&w.reseller_a);
    assert_eq!(visible_ids(store, &reseller).await, vec![by_reseller.id]);
    let client = caller(&w.client_of_a);
    assert_eq!(visible_ids(store, &client).await, vec![by_client.id]);
    assert!(visible_ids(store, &caller(&w.client_of_b)).await.is_empty());
    let away_admin = caller(&away.admin);
    assert_eq!(visible_ids(store, &away_admin).await, vec![by_away.id]);

    for (who, me, j) in [
        ("admin, operator's job", &admin, &by_operator),
        ("admin, another tenant's job", &admin, &by_away),
        ("reseller, its client's job", &reseller, &by_client),
        ("reseller, the admin's job", &reseller, &by_admin),
        ("client, its reseller's job", &client, &by_reseller),
        ("other tenant's admin", &away_admin, &by_client),
        (
            "other tenant's admin, operator's job",
            &away_admin,
            &by_operator,
        ),
    ] {
        assert_not_found(store.get_job(me, j.id).await, who);
    }

    let all: Vec<JobId> = store
        .list_all_jobs(&op, page(500))
        .await
        .expect("list all")
        .items
        .iter()
        .map(|j| j.id)
        .collect();
    let ours = [
        by_admin.id,
        by_reseller.id,
        by_client.id,
        by_operator.id,
        by_away.id,
    ];
    assert!(ours.iter().all(|id| all.contains(id)), "{all:?}");
    assert!(all.windows(2).all(|p| p[0] < p[1]), "newest last: {all:?}");
    drain(store, t0).await;
    assert_queue_final(store, t0).await;
}

/// Claims hand out due jobs oldest first, mark them running with a lease and count the
/// attempt; a job is not claimed before its `run_after`.
pub async fn claim_takes_the_oldest_due_job<S: PanelStore + JobStore>(store: &S) {
    let w = World::create(store).await;
    let n = nodes(store, 3).await;
    let t0 = now();
    let first = enqueue_as(store, &w.admin, new_job(&n[0], 3, t0)).await;
    let second = enqueue_as(store, &w.admin, new_job(&n[1], 3, t0)).await;
    let later = enqueue_as(store, &w.admin, new_job(&n[2], 3, t0 + secs(60))).await;

    let a = claim(store, "worker-a", t0).await.expect("a due job");
    assert_eq!(a.job.id, first.id, "oldest first");
    assert_eq!(a.job.status, JobStatus::Running);
    assert_eq!(a.job.attempts, 1);
    assert!(!a.lease.is_empty());
    assert_eq!(job(store, first.id).await, a.job, "the claim is stored");
    let b = claim(store, "worker-b", t0).await.expect("a due job");
    assert_eq!(b.job.id, second.id);
    assert_ne!(a.lease, b.lease);
    let a_done = finish(store, &a, JobOutcome::Succeeded, t0 + secs(1)).await;
    assert_eq!(a_done.status, JobStatus::Succeeded);
    assert_eq!(a_done.attempts, 1);
    finish(store, &b, JobOutcome::Succeeded, t0 + secs(1)).await;
    assert!(
        claim(store, "worker-c", t0 + secs(59)).await.is_none(),
        "not before run_after"
    );
    let c = claim(store, "worker-c", t0 + secs(60))
        .await
        .expect("due at run_after");
    assert_eq!(c.job.id, later.id);
    finish(store, &c, JobOutcome::Succeeded, t0 + secs(61)).await;
    assert!(
        claim(store, "worker-a", t0 + secs(62)).await.is_none(),
        "finished jobs are not claimed again"
    );
    assert_queue_final(store, t0).await;
}

/// Workers claiming at once each get a different job, and every due job goes to one of them.
pub async fn concurrent_claims_never_share_a_job<S: PanelStore + JobStore>(store: &S) {
    let w = World::create(store).await;
    let t0 = now();
    for round in 0..3 {
        let n = nodes(store, 4).await;
        let mut expected = BTreeSet::new();
        for node in &n {
            expected.insert(enqueue_as(store, &w.admin, new_job(node, 3, t0)).await.id);
        }
        let workers: Vec<String> = (0..6).map(|i| format!("worker-{round}-{i}")).collect();
        warm_up(store).await;
        let results =
            futures::future::join_all(workers.iter().map(|name| store.claim(name, t0, LEASE)))
                .await;
        let claimed: Vec<ClaimedJob> = results
            .into_iter()
            .filter_map(|r| r.expect("claim"))
            .collect();
        let ids: BTreeSet<JobId> = claimed.iter().map(|c| c.job.id).collect();
        assert_eq!(
            ids.len(),
            claimed.len(),
            "a job went to two workers: {ids:?}"
        );
        assert_eq!(ids, expected, "every due job is claimed once");
        let leases: BTreeSet<&str> = claimed.iter().map(|c| c.lease.as_str()).collect();
        assert_eq!(leases.len(), claimed.len(), "leases are distinct");
        for c in &claimed {
            finish(store, c, JobOutcome::Succeeded, t0 + secs(1)).await;
        }
    }
    assert_queue_final(store, t0).await;
}

/// A job is not claimed while another job of its node runs, even by workers racing; it is
/// once that job ends.
pub async fn one_running_job_per_node<S: PanelStore + JobStore>(store: &S) {
    let w = World::create(store).await;
    let other = nodes(store, 1).await;
    let t0 = now();
    let a = enqueue_as(store, &w.admin, new_job(&w.node, 3, t0)).await;
    let b = enqueue_as(store, &w.admin, new_job(&w.node, 3, t0)).await;
    let c = enqueue_as(store, &w.admin, new_job(&other[0], 3, t0)).await;

    let first = claim(store, "w1", t0).await.expect("a");
    assert_eq!(first.job.id, a.id);
    let second = claim(store, "w2", t0).await.expect("c");
    assert_eq!(
        second.job.id, c.id,
        "b waits for its node; c's node is free"
    );
    assert!(
        claim(store, "w3", t0).await.is_none(),
        "b's node is busy until a ends"
    );
    finish(store, &first, JobOutcome::Succeeded, t0 + secs(1)).await;
    let third = claim(store, "w3", t0 + secs(1)).await.expect("b");
    assert_eq!(third.job.id, b.id);
    finish(store, &second, JobOutcome::Succeeded, t0 + secs(2)).await;
    finish(store, &third, JobOutcome::Succeeded, t0 + secs(2)).await;

    // Racing workers: of two queued jobs of one node, one is handed out.
    let d = enqueue_as(store, &w.admin, new_job(&w.node, 3, t0)).await;
    let e = enqueue_as(store, &w.admin, new_job(&w.node, 3, t0)).await;
    let names: Vec<String> = (0..4).map(|i| format!("racer-{i}")).collect();
    warm_up(store).await;
    let results = futures::future::join_all(
        names
            .iter()
            .map(|name| store.claim(name, t0 + secs(3), LEASE)),
    )
    .await;
    let claimed: Vec<ClaimedJob> = results
        .into_iter()
        .filter_map(|r| r.expect("claim"))
        .collect();
    assert_eq!(
        claimed.len(),
        1,
        "one job per node runs: {:?}",
        claimed.iter().map(|c| c.job.id).collect::<Vec<_>>()
    );
    // Which of the two wins a race is up to the engine; the other waits for it.
    let (won, waits) = if claimed[0].job.id == d.id {
        (d.id, e.id)
    } else {
        (e.id, d.id)
    };
    assert_eq!(claimed[0].job.id, won);
    finish(store, &claimed[0], JobOutcome::Succeeded, t0 + secs(4)).await;
    let last = claim(store, "w1", t0 + secs(4))
        .await
        .expect("the other job of the node");
    assert_eq!(last.job.id, waits);
    finish(store, &last, JobOutcome::Succeeded, t0 + secs(5)).await;
    assert_queue_final(store, t0).await;
}

/// A report extends the lease; once a lease expires the job goes to the next claimer as a new
/// attempt, and the old claim's reports and finish are `Conflict` and change nothing. A job
/// abandoned on its last attempt is not handed out again: it fails.
pub async fn expired_leases_pass_to_another_worker<S: PanelStore + JobStore>(store: &S) {
    let w = World::create(store).await;
    let t0 = now();
    let queued = enqueue_as(store, &w.admin, new_job(&w.node, 3, t0)).await;

    let first = claim(store, "w1", t0).await.expect("claim");
    assert!(claim(store, "w2", t0 + secs(10)).await.is_none(), "leased");
    store
        .report(&first, "step 1 of 3", t0 + secs(20), LEASE)
        .await
        .expect("report");
    let reported = job(store, queued.id).await;
    assert_eq!(reported.progress, "step 1 of 3");
    assert_eq!(reported.status, JobStatus::Running);
    assert!(
        claim(store, "w2", t0 + secs(45)).await.is_none(),
        "a report extends the lease to its time plus the lease"
    );

    let second = claim(store, "w2", t0 + secs(51))
        .await
        .expect("an expired lease is claimable");
    assert_eq!(second.job.id, queued.id);
    assert_eq!(second.job.attempts, 2, "a reclaim is a new attempt");
    assert_ne!(second.lease, first.lease);
    assert_conflict(
        store.report(&first, "late", t0 + secs(52), LEASE).await,
        "report with a stale lease",
    );
    assert_conflict(
        store
            .finish(&first, JobOutcome::Succeeded, t0 + secs(52))
            .await,
        "finish with a stale lease",
    );
    let unchanged = job(store, queued.id).await;
    assert_eq!(unchanged.status, JobStatus::Running);
    assert_eq!(unchanged.progress, "step 1 of 3");
    assert_eq!(unchanged.attempts, 2);

    let done = finish(store, &second, JobOutcome::Succeeded, t0 + secs(60)).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_conflict(
        store
            .finish(&second, JobOutcome::Succeeded, t0 + secs(61))
            .await,
        "finishing twice",
    );
    assert_conflict(
        store.report(&second, "after", t0 + secs(61), LEASE).await,
        "reporting on a finished job",
    );

    let single = enqueue_as(store, &w.admin, new_job(&w.node, 1, t0)).await;
    let only = claim(store, "w1", t0 + secs(100))
        .await
        .expect("claim single");
    assert_eq!(only.job.id, single.id);
    assert!(
        claim(store, "w2", t0 + secs(200)).await.is_none(),
        "no attempt is left after an abandoned last attempt"
    );
    let failed = job(store, single.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 1);
    assert!(failed.last_error.is_some());
    assert_conflict(
        store
            .finish(&only, JobOutcome::Succeeded, t0 + secs(201))
            .await,
        "finish after the job failed for good",
    );
    assert_queue_final(store, t0).await;
}

/// `Retry` puts the job back with its `run_after` and error until its attempts run out, then
/// it fails; `Failed` fails at once.
pub async fn retries_back_off_until_attempts_run_out<S: PanelStore + JobStore>(store: &S) {
    let w = World::create(store).await;
    let t0 = now();
    let base = Duration::from_secs(10);
    let cap = Duration::from_secs(300);
    let delay =
        |attempt: u32| TimeDelta::from_std(backoff(attempt, base, cap)).expect("small delay");
    let queued = enqueue_as(store, &w.client_of_a, new_job(&w.node, 3, t0)).await;

    let mut at = t0;
    for attempt in 1..=3u32 {
        let c = claim(store, "w", at).await.expect("due");
        assert_eq!(c.job.id, queued.id);
        assert_eq!(c.job.attempts, attempt);
        let retry_at = at + delay(attempt);
        let after = finish(
            store,
            &c,
            JobOutcome::Retry {
                error: format!("boom {attempt}"),
                run_after: retry_at,
            },
            at + secs(1),
        )
        .await;
        assert_eq!(
            after.last_error.as_deref(),
            Some(format!("boom {attempt}").as_str())
        );
        assert_eq!(after.attempts, attempt);
        if attempt < 3 {
            assert_eq!(after.status, JobStatus::Queued, "attempt {attempt} retries");
            assert_eq!(after.run_after, retry_at);
            assert!(
                claim(store, "w", retry_at - TimeDelta::milliseconds(1))
                    .await
                    .is_none(),
                "not before the backoff"
            );
            assert_conflict(
                store.report(&c, "late", at + secs(2), LEASE).await,
                "the retried attempt's lease",
            );
        } else {
            assert_eq!(after.status, JobStatus::Failed, "no attempt left");
        }
        at = retry_at;
    }
    assert_eq!(
        store
            .get_job(&caller(&w.client_of_a), queued.id)
            .await
            .expect("the owner sees the outcome")
            .status,
        JobStatus::Failed
    );

    let fatal = enqueue_as(store, &w.admin, new_job(&w.node, 5, t0)).await;
    let c = claim(store, "w", at).await.expect("due");
    assert_eq!(c.job.id, fatal.id);
    let failed = finish(
        store,
        &c,
        JobOutcome::Failed {
            error: "the node is gone".into(),
        },
        at,
    )
    .await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_error.as_deref(), Some("the node is gone"));

    let flaky = enqueue_as(store, &w.admin, new_job(&w.node, 2, t0)).await;
    let c = claim(store, "w", at).await.expect("due");
    assert_eq!(c.job.id, flaky.id);
    finish(
        store,
        &c,
        JobOutcome::Retry {
            error: "timeout".into(),
            run_after: at,
        },
        at,
    )
    .await;
    let c = claim(store, "w", at).await.expect("due again");
    assert_eq!((c.job.id, c.job.attempts), (flaky.id, 2));
    let ok = finish(store, &c, JobOutcome::Succeeded, at).await;
    assert_eq!(ok.status, JobStatus::Succeeded);
    assert_queue_final(store, t0).await;
}
