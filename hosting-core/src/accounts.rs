//! The Unix accounts sites run as. The panel creates one per site (CloudPanel's choice, argued
//! in ARCHITECTURE.md), records it with its tenant, and removes it with the last site that
//! uses it; a tenant can only ever name an account the panel keeps for that tenant.

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{Error, InvalidValue, Result};
use crate::system::{Command, CommandOutput, CommandRunner};
use crate::types::SystemUser;

/// The uids (and gids) the panel gives the accounts it creates: by default 20000-59999, above
/// any distribution's system and login ranges and below `nobody` (65534).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UidRange {
    first: u32,
    last: u32,
}

impl UidRange {
    /// The default range.
    pub const DEFAULT: Self = Self {
        first: 20_000,
        last: 59_999,
    };

    /// Checked: `first..=last`, `first` at least 1000 (never a system account) and `last` below
    /// 65534 (`nobody`).
    pub fn new(first: u32, last: u32) -> Result<Self, InvalidValue> {
        if first < 1000 {
            return Err(InvalidValue::new(
                "uid_range",
                "must start at 1000 or above: lower uids are the distribution's system accounts",
            ));
        }
        if last >= 65_534 || first > last {
            return Err(InvalidValue::new(
                "uid_range",
                "must be FIRST-LAST with FIRST <= LAST < 65534",
            ));
        }
        Ok(Self { first, last })
    }

    /// The lowest uid.
    pub fn first(&self) -> u32 {
        self.first
    }

    /// The highest uid.
    pub fn last(&self) -> u32 {
        self.last
    }

    /// Whether `uid` is in the range.
    pub fn contains(&self, uid: u32) -> bool {
        (self.first..=self.last).contains(&uid)
    }
}

impl Default for UidRange {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for UidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl std::str::FromStr for UidRange {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let bad = || InvalidValue::new("uid_range", "must be FIRST-LAST, e.g. 20000-59999");
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        Self::new(
            first.trim().parse().map_err(|_| bad())?,
            last.trim().parse().map_err(|_| bad())?,
        )
    }
}

/// A Unix account as the node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnixAccount {
    /// Its name.
    pub name: SystemUser,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

/// How a node keeps its sites apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "isolation")]
pub enum Isolation {
    /// Every site runs as an account of its own that the panel creates (the node runs as root).
    Accounts,
    /// The node cannot switch users (it does not run as root): every site runs as `account`.
    /// Sites of different tenants share it only when the operator allowed that.
    None {
        /// The one account every site runs as.
        account: SystemUser,
        /// Whether sites of more than one tenant may run on the node.
        tenants_may_share: bool,
    },
}

/// Creates, finds and removes the Unix accounts sites run as on one node.
///
/// # Contract
/// - `create` makes an account with a uid and gid in the node's [`UidRange`], no password, no
///   login shell (`/usr/sbin/nologin`), no supplementary group and no home directory of its
///   own (the site's directories are [`SiteFiles`](crate::site_files::SiteFiles)'); an account
///   or group that already exists under that name is
///   [`Error::AlreadyExists`] and nothing is changed.
/// - `find` answers what the node's account database says, for any account.
/// - `remove` stops every process running as the account, deletes what it owns in the node's
///   shared temporary directories, and deletes the account and its group; an account that no
///   longer exists is not an error. It refuses an account outside the node's [`UidRange`].
/// - With [`Isolation::None`] `create` and `remove` are
///   [`Error::Unsupported`].
#[async_trait]
pub trait NodeAccounts: Debug + Send + Sync {
    /// How this node keeps sites apart.
    fn isolation(&self) -> Isolation;
    /// The uids accounts are created from.
    fn uid_range(&self) -> UidRange;
    /// The account named `name`, if the node has one.
    async fn find(&self, name: &SystemUser) -> Result<Option<UnixAccount>>;
    /// Creates the account `name`.
    async fn create(&self, name: &SystemUser) -> Result<UnixAccount>;
    /// Removes `account` and everything it left running or lying in shared temporary
    /// directories.
    async fn remove(&self, account: &UnixAccount) -> Result<()>;
}

/// The account name the panel derives for a site on `domain`: its letters and digits as
/// `a-z0-9-`, cut to 24 characters, starting with a letter (`s` prepended otherwise), then
/// `attempt` > 0 appended (`-2`, `-3`, …) when an earlier name was taken.
pub fn derived_account_name(
    domain: &crate::types::DomainName,
    attempt: u32,
) -> Result<SystemUser, InvalidValue> {
    let mut base: String = domain
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base.insert(0, 's');
    }
    base.truncate(24);
    let base = base.trim_end_matches('-');
    let name = if attempt == 0 {
        base.to_owned()
    } else {
        format!("{base}-{}", attempt + 1)
    };
    name.parse()
}

/// `getent passwd NAME` through `runner`: what the node's account database says.
async fn lookup(runner: &dyn CommandRunner, name: &SystemUser) -> Result<Option<UnixAccount>> {
    let out = runner
        .run(&Command::new("getent").arg("passwd").arg(name.as_str()))
        .await?;
    match out.code {
        Some(0) => parse_passwd(name, &out.stdout).map(Some),
        // getent's "no such key".
        Some(2) => Ok(None),
        _ => Err(failed("getent passwd", &out)),
    }
}

/// A `name:password:uid:gid:gecos:home:shell` line, which must be `name`'s.
fn parse_passwd(name: &SystemUser, line: &str) -> Result<UnixAccount> {
    let line = line.trim_end();
    let bad = || {
        Error::backend(
            "accounts",
            format!("getent passwd {name} answered {line:?}, not a passwd line for {name}"),
        )
    };
    match line.split(':').collect::<Vec<_>>().as_slice() {
        [found, _, uid, gid, ..] if *found == name.as_str() => Ok(UnixAccount {
            name: name.clone(),
            uid: uid.parse().map_err(|_| bad())?,
            gid: gid.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// A tool that exited badly, with what it printed on stderr (no secret is ever passed to these
/// tools).
fn failed(tool: &str, out: &CommandOutput) -> Error {
    let how = out.code.map_or_else(
        || "killed by a signal".to_owned(),
        |c| format!("exit code {c}"),
    );
    Error::backend(
        "accounts",
        format!("{tool} failed ({how}): {}", out.stderr.trim()),
    )
}

/// [`NodeAccounts`] on a node that cannot switch users because it does not run as root: every
/// site runs as the one account the node runs as, and no account is created or removed
/// ([`Error::Unsupported`]).
#[derive(Debug, Clone)]
pub struct SharedAccount {
    account: UnixAccount,
    tenants_may_share: bool,
    runner: Option<Arc<dyn CommandRunner>>,
}

impl SharedAccount {
    /// Sites run as `account`. Performs no IO, so `find` knows `account` and answers `None` for
    /// any other name (the panel asks a shared node for nothing else).
    pub fn new(account: UnixAccount, tenants_may_share: bool) -> Self {
        Self {
            account,
            tenants_may_share,
            runner: None,
        }
    }

    /// Sites run as the account `runner` runs processes as (`id -un`, `id -u`, `id -g`), which
    /// is the node's own wherever the runner executes; `find` asks `getent` through `runner`
    /// for any other name. Root is refused: a root node gives each site an account of its own.
    pub async fn current(runner: Arc<dyn CommandRunner>, tenants_may_share: bool) -> Result<Self> {
        let id = |flag: &'static str| {
            let runner = Arc::clone(&runner);
            async move {
                let out = runner.run(&Command::new("id").arg(flag)).await?;
                if out.success() {
                    Ok(out.stdout.trim().to_owned())
                } else {
                    Err(failed("id", &out))
                }
            }
        };
        let number = |flag: &'static str, text: String| {
            text.parse::<u32>().map_err(|_| {
                Error::backend(
                    "accounts",
                    format!("id {flag} answered {text:?}, not a number"),
                )
            })
        };
        let uid = number("-u", id("-u").await?)?;
        if uid == 0 {
            return Err(Error::Invalid {
                field: "system_user".into(),
                reason: "the node runs as root: give each site an account of its own \
                         (LocalAccounts) instead of sharing root's"
                    .into(),
            });
        }
        let gid = number("-g", id("-g").await?)?;
        let name: SystemUser = id("-un").await?.parse()?;
        Ok(Self {
            account: UnixAccount { name, uid, gid },
            tenants_may_share,
            runner: Some(runner),
        })
    }
}

#[async_trait]
impl NodeAccounts for SharedAccount {
    fn isolation(&self) -> Isolation {
        Isolation::None {
            account: self.account.name.clone(),
            tenants_may_share: self.tenants_may_share,
        }
    }

    /// No account is created here: the default range is answered.
    fn uid_range(&self) -> UidRange {
        UidRange::DEFAULT
    }

    async fn find(&self, name: &SystemUser) -> Result<Option<UnixAccount>> {
        if *name == self.account.name {
            return Ok(Some(self.account.clone()));
        }
        match &self.runner {
            Some(runner) => lookup(runner.as_ref(), name).await,
            None => Ok(None),
        }
    }

    async fn create(&self, _name: &SystemUser) -> Result<UnixAccount> {
        Err(Error::Unsupported {
            operation: "creating a Unix account",
            backend: "a node that does not run as root",
        })
    }

    async fn remove(&self, _account: &UnixAccount) -> Result<()> {
        Err(Error::Unsupported {
            operation: "removing a Unix account",
            backend: "a node that does not run as root",
        })
    }
}

#[cfg(feature = "system")]
pub use local::LocalAccounts;

#[cfg(feature = "system")]
mod local {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use async_trait::async_trait;

    use super::{Isolation, NodeAccounts, UidRange, UnixAccount, failed, lookup};
    use crate::error::{Error, Result};
    use crate::system::{Command, CommandOutput, CommandRunner};
    use crate::types::SystemUser;

    /// Where any local account can leave files behind: what `remove` cleans by default.
    const SHARED_TEMP_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

    /// How long `remove` waits for the account's processes to be gone after SIGKILL: a killed
    /// process lingers until its parent reaps it, and a pool still configured for the account
    /// would start new ones forever.
    const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    const STOP_POLL: Duration = Duration::from_millis(50);

    /// [`NodeAccounts`] on this machine through the shadow tools (`useradd`, `userdel`,
    /// `groupdel`), `getent`, `pkill` and `find`, every call through the process seam (argv
    /// only), so a node agent can make the same calls. The node must run as root.
    #[derive(Debug, Clone)]
    pub struct LocalAccounts {
        runner: Arc<dyn CommandRunner>,
        range: UidRange,
        shared_temp_dirs: Vec<PathBuf>,
    }

    impl LocalAccounts {
        /// Accounts with uids and gids from `range`; `remove` cleans `/tmp`, `/var/tmp` and
        /// `/dev/shm`.
        pub fn new(runner: Arc<dyn CommandRunner>, range: UidRange) -> Self {
            Self {
                runner,
                range,
                shared_temp_dirs: SHARED_TEMP_DIRS.iter().map(PathBuf::from).collect(),
            }
        }

        /// Replaces the shared temporary directories `remove` cleans (absolute paths; one
        /// that does not exist is skipped), for a node that has others or a test that points
        /// them at its own.
        #[must_use]
        pub fn with_shared_temp_dirs(
            mut self,
            dirs: impl IntoIterator<Item = impl Into<PathBuf>>,
        ) -> Self {
            self.shared_temp_dirs = dirs.into_iter().map(Into::into).collect();
            self
        }

        async fn run(&self, command: Command) -> Result<CommandOutput> {
            self.runner.run(&command).await
        }

        /// Refuses when `account`'s name or uid now belongs to another account: its processes
        /// and files would be someone else's.
        async fn check_same_account(&self, account: &UnixAccount) -> Result<()> {
            let by_uid = self
                .run(
                    Command::new("getent")
                        .arg("passwd")
                        .arg(account.uid.to_string()),
                )
                .await?;
            match by_uid.code {
                Some(0) => {
                    let holder = by_uid.stdout.split(':').next().unwrap_or_default();
                    if holder != account.name.as_str() {
                        return Err(Error::Conflict(format!(
                            "uid {} now belongs to {holder}, not {}: not removed",
                            account.uid, account.name
                        )));
                    }
                }
                Some(2) => {}
                _ => return Err(failed("getent passwd", &by_uid)),
            }
            match lookup(self.runner.as_ref(), &account.name).await? {
                Some(found) if found.uid != account.uid => Err(Error::Conflict(format!(
                    "{} now has uid {}, not {}: not removed",
                    account.name, found.uid, account.uid
                ))),
                _ => Ok(()),
            }
        }

        /// SIGKILLs every process whose real or effective uid is `uid` (a setuid program it
        /// started, or one of its own setuid programs someone else ran) until none is left:
        /// forks racing one round are caught by the next.
        async fn stop_processes(&self, uid: u32) -> Result<()> {
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                let mut found = false;
                for selector in ["-U", "-u"] {
                    let out = self
                        .run(
                            Command::new("pkill")
                                .arg("-KILL")
                                .arg(selector)
                                .arg(uid.to_string()),
                        )
                        .await?;
                    match out.code {
                        Some(0) => found = true,
                        // pkill: 1 is "no process matched".
                        Some(1) => {}
                        _ => return Err(failed("pkill", &out)),
                    }
                }
                if !found {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(Error::backend(
                        "accounts",
                        format!(
                            "processes of uid {uid} are still there {} s after SIGKILL (a \
                             parent that does not reap them, or a PHP pool still configured \
                             for the account)",
                            STOP_TIMEOUT.as_secs()
                        ),
                    ));
                }
                tokio::time::sleep(STOP_POLL).await;
            }
        }

        /// Deletes what `uid` owns in the shared temporary directories, on their own file
        /// system only; a directory the node lacks is skipped. `find` fails a pass when another
        /// process deletes a file under it meanwhile, so up to three passes run, and what
        /// counts is that a last look finds nothing of the uid's.
        async fn clean_temp_dirs(&self, uid: u32) -> Result<()> {
            let owned = |dir: &std::path::Path| {
                Command::new("find")
                    .arg(dir)
                    .arg("-xdev")
                    .arg("-uid")
                    .arg(uid.to_string())
            };
            for dir in &self.shared_temp_dirs {
                let exists = self.run(Command::new("test").arg("-e").arg(dir)).await?;
                if exists.code == Some(1) {
                    continue;
                }
                for _ in 0..3 {
                    if self.run(owned(dir).arg("-delete")).await?.success() {
                        break;
                    }
                }
                let left = self.run(owned(dir).arg("-print").arg("-quit")).await?;
                if !left.stdout.trim().is_empty() {
                    return Err(failed(&format!("find {} -delete", dir.display()), &left));
                }
            }
            Ok(())
        }

        /// `userdel`, then `groupdel` for a group of the same name and gid that outlived it
        /// (without `USERGROUPS_ENAB` userdel leaves it). Either one already gone is fine.
        async fn delete(&self, account: &UnixAccount) -> Result<()> {
            let name = account.name.as_str();
            let out = self.run(Command::new("userdel").arg(name)).await?;
            // userdel and groupdel: 6 is "does not exist".
            if !matches!(out.code, Some(0 | 6)) {
                return Err(failed("userdel", &out));
            }
            let group = self
                .run(Command::new("getent").arg("group").arg(name))
                .await?;
            match group.code {
                Some(0) if group.stdout.split(':').nth(2) == Some(&account.gid.to_string()) => {
                    let out = self.run(Command::new("groupdel").arg(name)).await?;
                    if matches!(out.code, Some(0 | 6)) {
                        Ok(())
                    } else {
                        Err(failed("groupdel", &out))
                    }
                }
                // Absent, or a group of that name with another gid: not the account's.
                Some(0 | 2) => Ok(()),
                _ => Err(failed("getent group", &group)),
            }
        }
    }

    #[async_trait]
    impl NodeAccounts for LocalAccounts {
        fn isolation(&self) -> Isolation {
            Isolation::Accounts
        }

        fn uid_range(&self) -> UidRange {
            self.range
        }

        async fn find(&self, name: &SystemUser) -> Result<Option<UnixAccount>> {
            lookup(self.runner.as_ref(), name).await
        }

        /// `useradd` with the range as its `-K` limits, a user group, no home and `nologin`;
        /// no password is set, so the account is locked (`!` in shadow).
        async fn create(&self, name: &SystemUser) -> Result<UnixAccount> {
            let range = self.range;
            let mut useradd = Command::new("useradd")
                .arg("--no-create-home")
                .arg("--home-dir")
                .arg("/nonexistent")
                .arg("--shell")
                .arg("/usr/sbin/nologin")
                .arg("--user-group");
            // No subordinate ids either: they would let the account map 65536 more uids
            // into a user namespace.
            for (key, value) in [
                ("UID_MIN", range.first()),
                ("UID_MAX", range.last()),
                ("GID_MIN", range.first()),
                ("GID_MAX", range.last()),
                ("SUB_UID_COUNT", 0),
                ("SUB_GID_COUNT", 0),
            ] {
                useradd = useradd.arg("-K").arg(format!("{key}={value}"));
            }
            let out = self.run(useradd.arg(name.as_str())).await?;
            match out.code {
                Some(0) => {}
                // useradd: 9 is "user or group name already in use"; nothing was changed.
                Some(9) => {
                    return Err(Error::AlreadyExists {
                        entity: "account",
                        detail: format!("system_user {name}"),
                    });
                }
                _ => return Err(failed("useradd", &out)),
            }
            let Some(account) = lookup(self.runner.as_ref(), name).await? else {
                return Err(Error::backend(
                    "accounts",
                    format!("useradd created {name}, but getent passwd does not find it"),
                ));
            };
            if range.contains(account.uid) && range.contains(account.gid) {
                return Ok(account);
            }
            self.delete(&account).await?;
            Err(Error::backend(
                "accounts",
                format!(
                    "useradd gave {name} uid {} and gid {}, not both in {range}; removed it again",
                    account.uid, account.gid
                ),
            ))
        }

        /// Refuses, as a conflict, an account whose name or uid now belongs to another
        /// account. Remove the site's PHP pool first: a pool still running keeps starting
        /// processes as the account, and `remove` gives up after 10 s.
        async fn remove(&self, account: &UnixAccount) -> Result<()> {
            if account.uid == 0 || !self.range.contains(account.uid) {
                return Err(Error::Invalid {
                    field: "system_user".into(),
                    reason: format!(
                        "{} has uid {}, outside the accounts this node creates ({}): not removed",
                        account.name, account.uid, self.range
                    )
                    .into(),
                });
            }
            self.check_same_account(account).await?;
            self.stop_processes(account.uid).await?;
            self.clean_temp_dirs(account.uid).await?;
            self.delete(account).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_clear_of_system_accounts_and_nobody() {
        assert_eq!("20000-59999".parse::<UidRange>(), Ok(UidRange::DEFAULT));
        assert!("999-2000".parse::<UidRange>().is_err());
        assert!("2000-65534".parse::<UidRange>().is_err());
        assert!("3000-2000".parse::<UidRange>().is_err());
        assert!("0-10".parse::<UidRange>().is_err());
        assert!(UidRange::DEFAULT.contains(20_000));
        assert!(!UidRange::DEFAULT.contains(60_000));
    }

    #[test]
    fn derived_names_are_valid_accounts() {
        let name = |d: &str, n| {
            derived_account_name(&d.parse().expect("domain"), n)
                .expect("name")
                .to_string()
        };
        assert_eq!(name("shop.example.com", 0), "shop-example-com");
        assert_eq!(name("shop.example.com", 1), "shop-example-com-2");
        assert_eq!(name("1und1.de", 0), "s1und1-de");
        assert_eq!(
            name("a-very-long-subdomain.of-a-long-domain.example", 0),
            "a-very-long-subdomain-of"
        );
        assert_eq!(name("xn--bcher-kva.example", 0), "xn--bcher-kva-example");
    }

    #[test]
    fn passwd_lines_are_read_for_the_name_asked_only() {
        let web: SystemUser = "web1".parse().expect("name");
        assert_eq!(
            parse_passwd(&web, "web1:x:20001:20002::/nonexistent:/usr/sbin/nologin\n")
                .expect("parsed"),
            UnixAccount {
                name: web.clone(),
                uid: 20_001,
                gid: 20_002
            }
        );
        assert!(parse_passwd(&web, "web10:x:20001:20002::/:/bin/sh").is_err());
        assert!(parse_passwd(&web, "web1:x:uid:20002::/:/bin/sh").is_err());
        assert!(parse_passwd(&web, "web1:x").is_err());
    }

    #[tokio::test]
    async fn a_shared_account_is_the_only_one_and_none_is_created() {
        let web: SystemUser = "web1".parse().expect("name");
        let account = UnixAccount {
            name: web.clone(),
            uid: 1000,
            gid: 1000,
        };
        let shared = SharedAccount::new(account.clone(), false);
        assert_eq!(
            shared.isolation(),
            Isolation::None {
                account: web.clone(),
                tenants_may_share: false
            }
        );
        assert_eq!(
            shared.find(&web).await.expect("find"),
            Some(account.clone())
        );
        let other: SystemUser = "other".parse().expect("name");
        assert_eq!(shared.find(&other).await.expect("find"), None);
        assert!(matches!(
            shared.create(&other).await,
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(
            shared.remove(&account).await,
            Err(Error::Unsupported { .. })
        ));
    }
}
