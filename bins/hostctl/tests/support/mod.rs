//! What the node tests share: accounts hostctl creates for a test, from a uid range of the
//! test's own and named after domains that carry a tag of the test's own, so tests run side by
//! side; every such account is removed when the guard drops, also when the test fails.
#![allow(dead_code, clippy::expect_used)] // each test binary uses its own part of this module

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use hosting_core::accounts::derived_account_name;

/// The account name hostctl derives from `domain` (the first attempt).
pub fn derived(domain: &str) -> String {
    derived_account_name(&domain.parse().expect("domain"), 0)
        .expect("derived")
        .to_string()
}

/// A number no other test (in this process or another) is likely to draw.
pub fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// `getent DATABASE KEY`'s fields, or `None` when the key is unknown.
pub fn getent(database: &str, key: &str) -> Option<Vec<String>> {
    let out = std::process::Command::new("getent")
        .args([database, key])
        .output()
        .expect("getent");
    out.status.success().then(|| {
        text(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_owned)
            .collect()
    })
}

/// The accounts hostctl creates for one test: a uid range of the test's own (`[node]
/// uid_range`) and a tag in every domain, hence in every account name derived from one. On
/// drop, whatever happened, every account in the range whose name holds the tag is removed.
pub struct TestAccounts {
    /// In every domain and account name of the test.
    pub tag: String,
    first: u32,
    last: u32,
}

impl TestAccounts {
    pub fn new() -> Self {
        let n = random();
        let first = 20_000 + u32::try_from(n % 39_980).expect("small");
        Self {
            tag: format!("{:08x}", (n >> 20) & 0xffff_ffff),
            first,
            last: first + 19,
        }
    }

    pub fn uid_range(&self) -> String {
        format!("{}-{}", self.first, self.last)
    }

    /// The domain of site `id`: `s<ID>-<TAG>.hostctl.example.com`.
    pub fn domain(&self, id: i64) -> String {
        format!("s{id}-{}.hostctl.example.com", self.tag)
    }

    /// The account hostctl derives for site `id`.
    pub fn account(&self, id: i64) -> String {
        derived(&self.domain(id))
    }

    /// The uid of `name`, checked to be one hostctl took from the test's range.
    #[track_caller]
    pub fn uid_in_range(&self, name: &str) -> u32 {
        let entry = getent("passwd", name).unwrap_or_else(|| panic!("{name} exists"));
        let uid: u32 = entry[2].parse().expect("uid");
        assert!(
            (self.first..=self.last).contains(&uid),
            "{name} has uid {uid}, outside {}",
            self.uid_range()
        );
        assert_eq!(entry[3], entry[2], "{name}: its own group, same id");
        assert_eq!(entry[6], "/usr/sbin/nologin", "{name}: no login");
        uid
    }
}

impl Drop for TestAccounts {
    fn drop(&mut self) {
        let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
            return;
        };
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let (Some(name), Some(uid)) = (fields.first(), fields.get(2)) else {
                continue;
            };
            let in_range = uid
                .parse::<u32>()
                .is_ok_and(|uid| (self.first..=self.last).contains(&uid));
            if in_range && name.contains(&self.tag) {
                for (program, args) in [
                    ("pkill", vec!["-KILL", "-u", name]),
                    ("userdel", vec![name]),
                    ("groupdel", vec![name]),
                ] {
                    let _ = std::process::Command::new(program).args(args).output();
                }
            }
        }
    }
}

/// Output as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the real `hostctl` binary with `args`.
pub fn hostctl<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    std::process::Command::new(env!("CARGO_BIN_EXE_hostctl"))
        .args(args)
        .output()
        .expect("run hostctl")
}
