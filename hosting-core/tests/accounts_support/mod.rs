//! What the account and site-file tests share: a root check, throwaway accounts from a uid
//! range of the test's own (so tests run side by side), temporary directories, and commands
//! run as another uid. Every account and directory is removed when its guard drops, also when
//! the test fails.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hosting_core::accounts::LocalAccounts;
use hosting_core::system::SystemRunner;
use hosting_core::types::SystemUser;
use hosting_core::{CommandRunner, NodeAccounts, UidRange, UnixAccount};

/// Whether the test can run: root, or `SKIPPED: needs root` printed (a failure under `CI=true`).
pub fn needs_root() -> bool {
    let uid = run("id", &["-u"]);
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test needs root, and CI=true"
    );
    println!("SKIPPED: needs root");
    false
}

/// A number no other test (in this process or another) is likely to draw.
pub fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Twenty uids somewhere in 20000-59999.
pub fn test_range() -> UidRange {
    let first = 20_000 + u32::try_from(random() % 39_980).expect("small");
    UidRange::new(first, first + 19).expect("range")
}

/// `prefix` and eight random hex digits: a valid, unused account name.
pub fn unique_name(prefix: &str) -> SystemUser {
    format!("{prefix}{:08x}", random() & 0xffff_ffff)
        .parse()
        .expect("account name")
}

/// Runs a program directly (not through the seam: this is the test looking at the machine).
pub fn run(program: &str, args: &[&str]) -> Output {
    std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs `program` as `uid`/`gid` with no supplementary group.
pub fn run_as(uid: u32, gid: u32, program: &str, args: &[&str]) -> Output {
    let reuid = format!("--reuid={uid}");
    let regid = format!("--regid={gid}");
    let mut all = vec![
        reuid.as_str(),
        regid.as_str(),
        "--clear-groups",
        "--",
        program,
    ];
    all.extend_from_slice(args);
    run("setpriv", &all)
}

/// Local accounts from a range of the test's own; every name created through
/// [`TestAccounts::create`] is removed on drop, whatever the test did.
pub struct TestAccounts {
    pub accounts: LocalAccounts,
    pub range: UidRange,
    names: std::sync::Mutex<Vec<String>>,
}

impl TestAccounts {
    pub fn new() -> Self {
        let range = test_range();
        Self {
            accounts: LocalAccounts::new(Arc::new(SystemRunner) as Arc<dyn CommandRunner>, range),
            range,
            names: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Remembers `name` for cleanup, then creates it.
    pub async fn create(&self, name: &SystemUser) -> UnixAccount {
        self.remember(name);
        self.accounts.create(name).await.expect("create account")
    }

    /// Cleans `name` up on drop too (an account or group a test makes by other means).
    pub fn remember(&self, name: &SystemUser) {
        self.names
            .lock()
            .expect("names")
            .push(name.as_str().to_owned());
    }
}

impl Drop for TestAccounts {
    fn drop(&mut self) {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        for name in names {
            // Each may already be gone; the outcome is only that none is left.
            let _ = run("pkill", &["-KILL", "-u", &name]);
            let _ = run("userdel", &[&name]);
            let _ = run("groupdel", &[&name]);
        }
    }
}

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}-{:016x}", random()));
        std::fs::create_dir(&path).expect("temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `getent DATABASE KEY`'s fields, or `None` when the key is unknown.
pub fn getent(database: &str, key: &str) -> Option<Vec<String>> {
    let out = run("getent", &[database, key]);
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_owned)
            .collect()
    })
}
