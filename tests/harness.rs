//! The test harness: hands real servers, started by `scripts/test.sh`, to the tests.
#![allow(clippy::expect_used)] // test support: a failed expectation is a failed test
//!
//! A test that needs a server asks [`server_url`] for it by environment variable. Without the
//! variable the test is reported as skipped with the variable's name; under `CI=true` it fails
//! instead, so a CI run can never pass by skipping. No test talks to a server it did not get
//! from here.
//!
//! A test that creates real Unix accounts (a panel node with `LocalAccounts`) checks
//! [`root_or_skip`] first, then claims its own uids with [`TestUids::claim`]: 50 uids in
//! 20000-59999 that no account or group of the machine uses and no other test of the process
//! holds, to give `LocalAccounts::new` as its range. When the guard drops, also after a failed
//! assertion, every process of a uid in that range is killed and every account and group in
//! it deleted, so a failing test leaves nothing behind and tests run side by side in one
//! `cargo test`.

use sqlx::Connection;

/// Environment variable holding the PostgreSQL superuser URL.
pub const POSTGRES_URL: &str = "HOSTING_TEST_POSTGRES_URL";
/// Environment variable holding the MariaDB URL of a user with all privileges and GRANT OPTION.
pub const MARIADB_URL: &str = "HOSTING_TEST_MARIADB_URL";
/// Environment variable holding a MySQL URL (no MySQL server exists on Debian 12).
pub const MYSQL_URL: &str = "HOSTING_TEST_MYSQL_URL";

/// Whether this run is CI, where a missing server is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The server URL in `var`, or `None` after reporting the test as skipped.
///
/// # Panics
/// Under `CI=true` when the variable is missing: CI must run every real-server test.
pub fn server_url(var: &str) -> Option<String> {
    env_or_skip(var)
}

/// The value of `var` (a server URL, a binary's path), or `None` after reporting the test as
/// skipped with the variable's name.
///
/// # Panics
/// Under `CI=true` when the variable is missing.
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!(
            "{var} is not set and CI=true: real-server tests must run in CI (scripts/test.sh sets it)"
        ),
        _ => {
            eprintln!("SKIPPED: {var} is not set; run ./scripts/test.sh to start the servers");
            None
        }
    }
}

/// `url` with its database (path) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A new, empty database on the server behind `admin_url`, returned as a URL to it, so each
/// test owns its data and tests run in parallel.
pub async fn fresh_database(admin_url: &str) -> String {
    let name = format!("t_{}", hosting_core::conformance::unique_suffix());
    if admin_url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
    } else {
        let mut conn = sqlx::MySqlConnection::connect(admin_url)
            .await
            .expect("connect to the test MySQL/MariaDB");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
            .execute(&mut conn)
            .await
            .expect("create test database");
    }
    with_database(admin_url, &name)
}

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// `GET path` for `host` on 127.0.0.1:`port` over HTTP/1.0 (the connection closes after the
/// answer, so no client library is needed): status, response head and body.
pub async fn http_get_with_head(
    port: u16,
    host: &str,
    path: &str,
) -> std::io::Result<(u16, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await
    .map_err(|_| std::io::Error::other("timed out"))??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    Ok((status, head.to_owned(), body.to_owned()))
}

/// `GET path` for `host` on 127.0.0.1:`port`: status and body.
pub async fn http_get(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_get_with_head(port, host, path)
        .await
        .map(|(status, _, body)| (status, body))
}

/// A fresh SQLite file in a new temporary directory (kept alive by the returned guard).
pub fn fresh_sqlite() -> (TempDir, String) {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    (dir, url)
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates a unique directory under the system temp dir.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "hosting-test-{}",
            hosting_core::conformance::unique_suffix()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether this process runs as root (what creating Unix accounts needs); otherwise the test is
/// reported as skipped (`SKIPPED: needs root`).
///
/// # Panics
/// Under `CI=true` when not root: CI runs the account tests as root.
pub fn root_or_skip() -> bool {
    let out = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("run id -u");
    if String::from_utf8_lossy(&out.stdout).trim() == "0" {
        return true;
    }
    assert!(
        !in_ci(),
        "this test creates Unix accounts and needs root, and CI=true"
    );
    eprintln!("SKIPPED: needs root (it creates Unix accounts)");
    false
}

/// The uid ranges the tests of this process hold, so two never share one.
static CLAIMED: std::sync::Mutex<Vec<hosting_core::UidRange>> = std::sync::Mutex::new(Vec::new());

/// A number no other call (in this process or another) is likely to draw.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
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

/// `getent DATABASE`'s entries as (name, id): uids of `passwd`, gids of `group`.
fn getent_ids(database: &str) -> Vec<(String, u32)> {
    let out = std::process::Command::new("getent")
        .arg(database)
        .output()
        .unwrap_or_else(|e| panic!("cannot run getent {database}: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields.get(2)?.parse().ok()?;
            Some(((*fields.first()?).to_owned(), id))
        })
        .collect()
}

/// Runs a program directly and answers its exit code (`None` when killed or not started).
fn status_of(program: &str, args: &[&str]) -> Option<i32> {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code())
}

/// A range of uids (and gids) of one test's own, for the Unix accounts a panel node creates
/// in it. Dropping it kills every process of a uid in the range and deletes every account and
/// group in it, whatever the test did or left half-done.
#[derive(Debug)]
pub struct TestUids {
    range: hosting_core::UidRange,
}

impl TestUids {
    /// How many uids a test gets.
    pub const LEN: u32 = 50;

    /// Claims [`TestUids::LEN`] uids of 20000-59999 that no account or group on this machine
    /// has and no other test of this process holds. Needs root to clean up: check
    /// [`root_or_skip`] first.
    ///
    /// # Panics
    /// When no free range turns up in 1000 draws.
    pub fn claim() -> Self {
        let (low, high) = (20_000u32, 59_999u32);
        let starts = u64::from(high - low + 2 - Self::LEN);
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..1000 {
            let first = low + u32::try_from(random() % starts).expect("below 40000");
            let range = hosting_core::UidRange::new(first, first + Self::LEN - 1).expect("range");
            let overlaps = |other: &hosting_core::UidRange| {
                other.first() <= range.last() && range.first() <= other.last()
            };
            if claimed.iter().any(overlaps) {
                continue;
            }
            let used = getent_ids("passwd")
                .into_iter()
                .chain(getent_ids("group"))
                .any(|(_, id)| range.contains(id));
            if !used {
                claimed.push(range);
                return Self { range };
            }
        }
        panic!("no free range of {} uids in {low}-{high}", Self::LEN)
    }

    /// The range, for `LocalAccounts::new`.
    pub fn range(&self) -> hosting_core::UidRange {
        self.range
    }

    /// The accounts on this machine whose uid is in the range: (name, uid), by uid.
    pub fn accounts(&self) -> Vec<(String, u32)> {
        let mut found: Vec<(String, u32)> = getent_ids("passwd")
            .into_iter()
            .filter(|(_, uid)| self.range.contains(*uid))
            .collect();
        found.sort_by_key(|(_, uid)| *uid);
        found
    }
}

impl Drop for TestUids {
    fn drop(&mut self) {
        // Each may already be gone: the outcome is only that nothing of the range is left.
        for (name, uid) in self.accounts() {
            let uid = uid.to_string();
            for attempt in 0..100 {
                for selector in ["-U", "-u"] {
                    status_of("pkill", &["-KILL", selector, &uid]);
                }
                // userdel: 8 is "currently used by a process" (a killed one not reaped yet).
                if status_of("userdel", &[&name]) != Some(8) {
                    break;
                }
                if attempt == 99 {
                    status_of("userdel", &["--force", &name]);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        for (group, gid) in getent_ids("group") {
            if self.range.contains(gid) {
                status_of("groupdel", &[&group]);
            }
        }
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        claimed.retain(|r| *r != self.range);
    }
}

/// A helper binary of this package (`tests/bin/`), found beside the running test's own
/// executable: `cargo test --workspace --all-targets` builds it with the tests.
///
/// # Panics
/// When it was not built, saying how to build it.
pub fn helper_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let found = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not built beside {}: run `cargo build -p hosting-tests --bin {name}` \
             (scripts/test.sh builds it with --all-targets)",
            exe.display()
        )
    })
}

/// Every process whose command line names a path under `dir`, and their descendants; never
/// this test process. Found by path, never by name: other tests run the same servers beside.
pub fn processes_under(dir: &std::path::Path) -> std::collections::BTreeSet<u32> {
    let needle = format!("{}/", dir.display());
    let mut found: std::collections::BTreeSet<u32> = all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                String::from_utf8_lossy(&raw)
                    .replace('\0', " ")
                    .contains(&needle)
            })
        })
        .collect();
    found.remove(&std::process::id());
    loop {
        let children: std::collections::BTreeSet<u32> = all_pids()
            .into_iter()
            .filter(|pid| !found.contains(pid))
            .filter(|pid| parent_of(*pid).is_some_and(|p| found.contains(&p)))
            .collect();
        if children.is_empty() {
            return found;
        }
        found.extend(children);
    }
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn signal(signal: &str, pids: &std::collections::BTreeSet<u32>) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .output();
}

/// A power cut for everything under `dir`: freezes each process found there (so none forks
/// one the kill would miss), then kills them all at once with SIGKILL, leaving their pid and
/// socket files behind, and waits until they are gone. The number killed.
pub fn power_cut(dir: &std::path::Path) -> usize {
    let mut frozen = std::collections::BTreeSet::new();
    loop {
        let new: std::collections::BTreeSet<u32> =
            processes_under(dir).difference(&frozen).copied().collect();
        if new.is_empty() {
            break;
        }
        signal("-STOP", &new);
        frozen.extend(new);
    }
    signal("-KILL", &frozen);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while frozen.iter().any(|pid| hosting_core::process::alive(*pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "killed processes are gone"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    frozen.len()
}

/// A live process that is not a server (`sleep`, which any signal a server is sent would
/// end), for a stale pid file to name after a "reboot"; killed when dropped.
pub struct Bystander(std::process::Child);

impl Bystander {
    /// Starts it.
    pub fn start() -> Self {
        Self(
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("start sleep"),
        )
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Asserts that nothing signalled it: still running, still sleeping (not stopped).
    #[track_caller]
    pub fn assert_untouched(&mut self) {
        assert!(
            self.0.try_wait().expect("try_wait").is_none(),
            "the process a stale pid file named was signalled"
        );
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id()))
            .expect("its /proc entry");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(str::to_owned);
        assert_eq!(state.as_deref(), Some("S"), "still sleeping, not stopped");
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_part_only() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres", "t_1"),
            "postgres://u:p@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("mysql://u:p@127.0.0.1:3306/mysql?ssl-mode=disabled", "t_2"),
            "mysql://u:p@127.0.0.1:3306/t_2?ssl-mode=disabled"
        );
        assert_eq!(with_database("mysql://u@h", "x"), "mysql://u@h/x");
    }
}
