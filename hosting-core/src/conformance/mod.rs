//! Conformance suites: the contract of each trait, as `pub async fn`s over `&dyn Trait`.
//!
//! Our backends run every function here in their tests; a plugin adds `hosting-core` with the
//! `conformance` feature as a dev-dependency and runs the same functions against its own
//! implementation. A function panics (like an assertion) when the backend breaks the contract.
#![allow(clippy::expect_used)] // a suite reports a broken contract by panicking, like assert!

pub mod auth_store;
pub mod database;
pub mod jobs;
pub mod php;
pub mod store;
pub mod web;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A short string unique within this process and unlikely to repeat across runs, so suites can
/// share a server without their names colliding.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}{n:x}", std::process::id() % 0xfff, nanos % 0xfffff)
}
