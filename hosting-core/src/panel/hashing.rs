//! Password hashing off the async workers, a bounded number at a time, in reused memory.
//!
//! Argon2 spends tens of milliseconds and 19 MiB per hash on purpose. Run on the async workers
//! it would stall every other request; run on as many blocking threads as logins arrive, each
//! thread's allocator would keep its 19 MiB after the login. So hashes wait for one of a few
//! slots, each slot owning its memory for good: the panel's memory for hashing is
//! `slots x policy memory`, however many logins arrive at once.
//!
//! Two lanes share the slots so that no tenant's writes can starve anyone's login. A login
//! (a verification) queues for a slot directly; a new hash (a password write) first passes a
//! gate that lets one write at a time queue for a slot. The slots serve in arrival order, so a
//! login waits for the hashes running and at most one write, however many writes are queued.
//! Writes are also admitted per acting user (one at a time), per tenant and per source (a few
//! waiting or running); past that they are refused with a retry delay instead of queueing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use super::Actor;
use crate::auth::{HashMemory, PasswordHash, PasswordPolicy, verify_password_in};
use crate::error::{Error, Result};
use crate::types::Password;

/// Password writes admitted at once, waiting or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WriteLimits {
    /// Per tenant.
    pub per_tenant: usize,
    /// Per source address.
    pub per_source: usize,
}

/// The hashing slots of a panel.
#[derive(Debug)]
pub(super) struct Hashing {
    policy: PasswordPolicy,
    slots: Arc<Semaphore>,
    /// Lets one write at a time queue for a slot.
    write_gate: Semaphore,
    limits: WriteLimits,
    /// Writes admitted and not finished, per user, tenant and source.
    writers: Arc<Mutex<HashMap<String, usize>>>,
    memories: Arc<Mutex<Vec<HashMemory>>>,
}

/// The admission of one write; leaving gives its places back.
struct Admitted {
    keys: Vec<String>,
    writers: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut writers = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            if let Some(n) = writers.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    writers.remove(key);
                }
            }
        }
    }
}

impl Hashing {
    pub(super) fn new(policy: PasswordPolicy, slots: NonZeroUsize, limits: WriteLimits) -> Self {
        Self {
            policy,
            slots: Arc::new(Semaphore::new(slots.get())),
            write_gate: Semaphore::new(1),
            limits,
            writers: Arc::new(Mutex::new(HashMap::new())),
            memories: Arc::new(Mutex::new(Vec::with_capacity(slots.get()))),
        }
    }

    /// A new hash of `password` under the panel's policy, in the write lane, for the panel
    /// itself or an embedder (no per-user admission).
    pub(super) async fn hash(&self, password: Password) -> Result<PasswordHash> {
        self.write(None, password).await
    }

    /// [`Hashing::hash`] on behalf of `actor`: refused with a retry delay while the actor's
    /// user, tenant or source already has its share of writes waiting or running.
    pub(super) async fn hash_for(&self, actor: &Actor, password: Password) -> Result<PasswordHash> {
        self.write(Some(actor), password).await
    }

    async fn write(&self, actor: Option<&Actor>, password: Password) -> Result<PasswordHash> {
        let _admitted = actor.map(|a| self.admit(a)).transpose()?;
        let gate = self
            .write_gate
            .acquire()
            .await
            .map_err(|e| Error::backend("panel", format!("the hashing gate closed: {e}")))?;
        let slot = self.slot().await?;
        drop(gate);
        let policy = self.policy;
        self.run_in(slot, move |memory| policy.hash_in(&password, memory))
            .await?
    }

    fn admit(&self, actor: &Actor) -> Result<Admitted> {
        let caller = actor.caller();
        let mut wanted = vec![
            (format!("user:{}", caller.user), 1),
            (format!("tenant:{}", caller.tenant), self.limits.per_tenant),
        ];
        if let Some(ip) = actor.source_ip() {
            wanted.push((format!("source:{}", source_key(ip)), self.limits.per_source));
        }
        let mut writers = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        if wanted
            .iter()
            .any(|(key, limit)| writers.get(key).copied().unwrap_or(0) >= (*limit).max(1))
        {
            return Err(Error::RateLimited {
                retry_after_secs: 1,
            });
        }
        for (key, _) in &wanted {
            *writers.entry(key.clone()).or_insert(0) += 1;
        }
        Ok(Admitted {
            keys: wanted.into_iter().map(|(k, _)| k).collect(),
            writers: self.writers.clone(),
        })
    }

    /// Whether `password` matches `hash`.
    pub(super) async fn verify(&self, password: Password, hash: PasswordHash) -> Result<bool> {
        self.run(move |memory| verify_password_in(&password, &hash, memory))
            .await
    }

    /// The work of a verification, for an account that does not exist.
    pub(super) async fn verify_against_dummy(&self, password: Password) -> Result<()> {
        let policy = self.policy;
        self.run(move |memory| policy.verify_against_dummy_in(&password, memory))
            .await
    }

    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::backend("panel", format!("the hashing slots closed: {e}")))
    }

    /// Runs `work` on a blocking thread once a slot is free (the login lane).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T> {
        let slot = self.slot().await?;
        self.run_in(slot, work).await
    }

    /// Runs `work` on a blocking thread in `slot`. The slot and its memory go with the work,
    /// so a request that gives up waiting does not free a slot still hashing.
    async fn run_in<T: Send + 'static>(
        &self,
        slot: tokio::sync::OwnedSemaphorePermit,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T> {
        let memories = self.memories.clone();
        let policy = self.policy;
        tokio::task::spawn_blocking(move || {
            let mut memory = memories
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .unwrap_or_default();
            let out = work(&mut memory);
            memory.shrink_to(&policy);
            memories
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            drop(slot);
            out
        })
        .await
        .map_err(|e| Error::backend("panel", format!("the hashing task failed: {e}")))
    }
}

/// An IPv6 source by its /64, which one holder has.
fn source_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(net))
        }
        v4 => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::auth::verify_password;
    use crate::model::{Role, TenantId, UserId};
    use crate::rbac::Caller;

    const LIMITS: WriteLimits = WriteLimits {
        per_tenant: 2,
        per_source: 3,
    };

    fn actor(tenant: i64, user: i64, ip: &str) -> Actor {
        Actor::trusted(
            Caller {
                tenant: TenantId(tenant),
                user: UserId(user),
                role: Role::Admin,
            },
            Some(ip.parse().expect("ip")),
        )
    }

    #[tokio::test]
    async fn writes_are_admitted_per_user_tenant_and_source() {
        let hashing = Hashing::new(FAST, NonZeroUsize::MIN, LIMITS);
        let a = hashing.admit(&actor(1, 1, "192.0.2.1")).expect("first");
        assert!(
            matches!(
                hashing.admit(&actor(1, 1, "192.0.2.9")),
                Err(Error::RateLimited { .. })
            ),
            "one write per user"
        );
        let b = hashing
            .admit(&actor(1, 2, "192.0.2.1"))
            .expect("same tenant");
        assert!(
            hashing.admit(&actor(1, 3, "192.0.2.2")).is_err(),
            "tenant full"
        );
        let c = hashing
            .admit(&actor(2, 4, "192.0.2.1"))
            .expect("other tenant");
        assert!(
            hashing.admit(&actor(3, 5, "192.0.2.1")).is_err(),
            "source full"
        );
        let v6 = hashing
            .admit(&actor(4, 6, "2001:db8::1"))
            .expect("a /64 counts once");
        assert!(hashing.admit(&actor(5, 7, "2001:db8::2")).is_ok());
        drop((a, b, c, v6));
        assert!(hashing.writers.lock().expect("lock").is_empty());
        hashing
            .hash_for(
                &actor(1, 1, "192.0.2.1"),
                "a password of 1".parse().expect("valid"),
            )
            .await
            .expect("admitted again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_login_waits_for_at_most_one_queued_write() {
        let hashing = Arc::new(Hashing::new(FAST, NonZeroUsize::MIN, LIMITS));
        // Hold the only slot, queue many writes, then a login.
        let held = hashing.slot().await.expect("slot");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (hashing, order) = (hashing.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                hashing
                    .hash(format!("password {i}").parse().expect("valid"))
                    .await
                    .expect("hash");
                order.lock().expect("lock").push(format!("write {i}"));
            }));
        }
        // The first write has passed the gate and waits for the slot.
        while hashing.write_gate.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let login = {
            let (hashing, order) = (hashing.clone(), order.clone());
            tokio::spawn(async move {
                hashing
                    .verify_against_dummy("a login password".parse().expect("valid"))
                    .await
                    .expect("dummy");
                order.lock().expect("lock").push("login".to_owned());
            })
        };
        // Let the login queue on the slot behind that write (ordering only, nothing is timed).
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        drop(held);
        login.await.expect("login");
        for task in tasks {
            task.await.expect("write");
        }
        let order = order.lock().expect("lock").clone();
        let login_at = order.iter().position(|o| o == "login").expect("logged in");
        assert!(
            login_at <= 1,
            "the login finished after {login_at} writes: {order:?}"
        );
    }

    const FAST: PasswordPolicy = PasswordPolicy {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_hashes_share_the_slots_memory() {
        let slots = NonZeroUsize::new(2).expect("non-zero");
        let hashing = Arc::new(Hashing::new(FAST, slots, LIMITS));
        let mut tasks = Vec::new();
        for i in 0..32 {
            let hashing = hashing.clone();
            tasks.push(tokio::spawn(async move {
                let password: Password = format!("password number {i}").parse().expect("valid");
                let hash = hashing.hash(password.clone()).await.expect("hash");
                assert!(hashing.verify(password, hash).await.expect("verify"));
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let memories = hashing.memories.lock().expect("lock");
        assert!(
            !memories.is_empty() && memories.len() <= slots.get(),
            "{} memories for {slots} slots",
            memories.len()
        );
        assert!(memories.iter().all(|m| m.bytes() == 64 * 1024));
    }

    #[tokio::test]
    async fn hashes_verify_outside_the_pool_and_wrong_passwords_fail() {
        let hashing = Hashing::new(FAST, NonZeroUsize::MIN, LIMITS);
        let password: Password = "correct horse battery".parse().expect("valid");
        let hash = hashing.hash(password.clone()).await.expect("hash");
        assert!(verify_password(&password, &hash));
        let wrong: Password = "correct horse battera".parse().expect("valid");
        assert!(!hashing.verify(wrong.clone(), hash).await.expect("verify"));
        hashing.verify_against_dummy(wrong).await.expect("dummy");
    }
}
