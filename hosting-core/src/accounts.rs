//! The Unix accounts sites run as. The panel creates one per site (CloudPanel's choice, argued
//! in ARCHITECTURE.md), records it with its tenant, and removes it with the last site that
//! uses it; a tenant can only ever name an account the panel keeps for that tenant.

use std::fmt::{self, Debug};

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{InvalidValue, Result};
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
///   [`Error::AlreadyExists`](crate::Error::AlreadyExists) and nothing is changed.
/// - `find` answers what the node's account database says, for any account.
/// - `remove` stops every process running as the account, deletes what it owns in the node's
///   shared temporary directories, and deletes the account and its group; an account that no
///   longer exists is not an error. It refuses an account outside the node's [`UidRange`].
/// - With [`Isolation::None`] `create` and `remove` are
///   [`Error::Unsupported`](crate::Error::Unsupported).
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
}
