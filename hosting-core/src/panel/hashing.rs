//! Password hashing off the async workers, a bounded number at a time, in reused memory.
//!
//! Argon2 spends tens of milliseconds and 19 MiB per hash on purpose. Run on the async workers
//! it would stall every other request; run on as many blocking threads as logins arrive, each
//! thread's allocator would keep its 19 MiB after the login. So hashes wait for one of a few
//! slots, each slot owning its memory for good: the panel's memory for hashing is
//! `slots x policy memory`, however many logins arrive at once.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use crate::auth::{HashMemory, PasswordHash, PasswordPolicy, verify_password_in};
use crate::error::{Error, Result};
use crate::types::Password;

/// The hashing slots of a panel.
#[derive(Debug)]
pub(super) struct Hashing {
    policy: PasswordPolicy,
    slots: Arc<Semaphore>,
    memories: Arc<Mutex<Vec<HashMemory>>>,
}

impl Hashing {
    pub(super) fn new(policy: PasswordPolicy, slots: NonZeroUsize) -> Self {
        Self {
            policy,
            slots: Arc::new(Semaphore::new(slots.get())),
            memories: Arc::new(Mutex::new(Vec::with_capacity(slots.get()))),
        }
    }

    /// A new hash of `password` under the panel's policy.
    pub(super) async fn hash(&self, password: Password) -> Result<PasswordHash> {
        let policy = self.policy;
        self.run(move |memory| policy.hash_in(&password, memory))
            .await?
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

    /// Runs `work` on a blocking thread once a slot is free. The slot and its memory go with
    /// the work, so a request that gives up waiting does not free a slot still hashing.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::backend("panel", format!("the hashing slots closed: {e}")))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::auth::verify_password;

    const FAST: PasswordPolicy = PasswordPolicy {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_hashes_share_the_slots_memory() {
        let slots = NonZeroUsize::new(2).expect("non-zero");
        let hashing = Arc::new(Hashing::new(FAST, slots));
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
        let hashing = Hashing::new(FAST, NonZeroUsize::MIN);
        let password: Password = "correct horse battery".parse().expect("valid");
        let hash = hashing.hash(password.clone()).await.expect("hash");
        assert!(verify_password(&password, &hash));
        let wrong: Password = "correct horse battera".parse().expect("valid");
        assert!(!hashing.verify(wrong.clone(), hash).await.expect("verify"));
        hashing.verify_against_dummy(wrong).await.expect("dummy");
    }
}
