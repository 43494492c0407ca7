//! Which Unix account each site runs as: the panel's rules, on one machine.
//!
//! As root every site runs as an account of its own that hostctl creates (`LocalAccounts`,
//! uids from `[node] uid_range`), named after its domain, and removes with the last site that
//! runs as it. A site may name an account hostctl created (several sites may share one), or
//! one the operator adopts (`adopt_account = true`: an existing account with uid and gid 1000
//! or above, never removed by hostctl). Anything else (an existing account hostctl did not
//! create, a system account) is refused naming `site[i].system_user` before anything changes.
//! Without root there are no separate accounts: every site runs as the current user.
//!
//! Resolving changes nothing: it only asks the account database (`getent`).

use std::collections::{BTreeMap, BTreeSet};

use hosting_core::accounts::derived_account_name;
use hosting_core::model::Website;
use hosting_core::types::SystemUser;
use hosting_core::{Isolation, NodeAccounts};
use serde::Serialize;

use crate::error::invalid;
use crate::record::{Recorded, RecordedAccount};
use crate::state::{AccountChoice, DERIVED_ATTEMPTS, DesiredState, SiteSpec};

/// The lowest uid and gid an adopted account may have: below are the distribution's system
/// accounts.
const FIRST_ORDINARY_ID: u32 = 1000;

/// An account an apply creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewAccount {
    /// Its name, derived from the site's domain.
    pub name: SystemUser,
    /// The site it is created for.
    pub site: i64,
}

/// The state file's sites with their accounts, and what an apply does to accounts and files.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// How the node keeps its sites apart.
    pub isolation: Isolation,
    /// Every desired site, running as its account, sorted by id.
    pub sites: Vec<Website>,
    /// Accounts the apply creates (before anything else).
    pub create: Vec<NewAccount>,
    /// Sites that are not desired (live or pending) and ran as an account hostctl created:
    /// their homes are deleted once the servers no longer serve them.
    pub delete_files: Vec<Website>,
    /// Accounts hostctl created that no desired site runs as: removed last.
    pub remove: Vec<RecordedAccount>,
}

fn refuse(spec: &SiteSpec, reason: impl std::fmt::Display) -> anyhow::Error {
    invalid(format!("site[{}].system_user: {reason}", spec.index))
}

/// Gives every site of `state` its account, by the rules above, and says which accounts an
/// apply creates and removes and which sites' files it deletes. Every refusal is invalid input
/// naming the site's field.
pub async fn resolve(
    state: &DesiredState,
    recorded: Option<&Recorded>,
    accounts: &dyn NodeAccounts,
) -> anyhow::Result<Resolved> {
    let isolation = accounts.isolation();
    let created: &[RecordedAccount] = recorded.map_or(&[], |r| r.accounts.as_slice());
    let is_created = |name: &SystemUser| created.iter().any(|a| a.name == *name);
    let known = |spec: &SiteSpec| recorded.and_then(|r| r.known_site(spec.site.id.0));
    let mut chosen: BTreeMap<i64, SystemUser> = BTreeMap::new();
    let mut create: Vec<NewAccount> = Vec::new();

    match &isolation {
        Isolation::None { account, .. } => {
            if !created.is_empty() {
                let names: Vec<&str> = created.iter().map(|a| a.name.as_str()).collect();
                return Err(invalid(format!(
                    "the record of this root lists accounts hostctl created as root ({}); \
                     run hostctl as root to manage this node",
                    names.join(", ")
                )));
            }
            for spec in &state.sites {
                if spec.account != AccountChoice::Own && spec.site.system_user != *account {
                    return Err(refuse(
                        spec,
                        format!(
                            "{} cannot be used: hostctl does not run as root here, so sites \
                             have no accounts of their own and every site runs as {account} \
                             (leave system_user out, or name {account})",
                            spec.site.system_user
                        ),
                    ));
                }
                chosen.insert(spec.site.id.0, account.clone());
            }
        }
        Isolation::Accounts => {
            // Sites that get an account of their own first, so a named site may share an
            // account this apply creates.
            for spec in state
                .sites
                .iter()
                .filter(|s| s.account == AccountChoice::Own)
            {
                if let Some(site) = known(spec) {
                    if !is_created(&site.system_user) {
                        return Err(refuse(
                            spec,
                            format!(
                                "site {} runs as {}, which hostctl did not create, and the \
                                 account of a site cannot change while hostctl keeps it: name \
                                 it (system_user = \"{}\" with adopt_account = true), or \
                                 remove the site, apply, and add it again",
                                site.id, site.system_user, site.system_user
                            ),
                        ));
                    }
                    chosen.insert(spec.site.id.0, site.system_user.clone());
                    continue;
                }
                // A name another site adopts exists, so `find` sees it; a name another site
                // names without adopting is one it shares with this site.
                let taken =
                    |name: &SystemUser| is_created(name) || create.iter().any(|c| c.name == *name);
                let mut found = None;
                for attempt in 0..DERIVED_ATTEMPTS {
                    let Ok(name) = derived_account_name(&spec.site.domain, attempt) else {
                        continue;
                    };
                    if taken(&name) || accounts.find(&name).await?.is_some() {
                        continue;
                    }
                    found = Some(name);
                    break;
                }
                let Some(name) = found else {
                    return Err(refuse(
                        spec,
                        format!(
                            "no free account name derived from {} (tried {DERIVED_ATTEMPTS})",
                            spec.site.domain
                        ),
                    ));
                };
                chosen.insert(spec.site.id.0, name.clone());
                create.push(NewAccount {
                    name,
                    site: spec.site.id.0,
                });
            }
            for spec in state
                .sites
                .iter()
                .filter(|s| s.account != AccountChoice::Own)
            {
                let name = &spec.site.system_user;
                if !is_created(name) && !create.iter().any(|c| c.name == *name) {
                    check_foreign(spec, accounts).await?;
                }
                chosen.insert(spec.site.id.0, name.clone());
            }
            // An account hostctl created that is gone (or was replaced) would fail the apply
            // halfway; say so now.
            let used: BTreeSet<&SystemUser> = chosen.values().collect();
            for account in created.iter().filter(|a| used.contains(&a.name)) {
                let found = accounts.find(&account.name).await?;
                if found.as_ref().is_none_or(|f| f.uid != account.uid) {
                    let spec = state
                        .sites
                        .iter()
                        .find(|s| chosen.get(&s.site.id.0) == Some(&account.name))
                        .ok_or_else(|| anyhow::anyhow!("no site runs as {}", account.name))?;
                    return Err(refuse(
                        spec,
                        format!(
                            "{}, which hostctl created with uid {}, {} on this machine; \
                             remove its sites from the state file and apply (hostctl forgets \
                             it), then add them again",
                            account.name,
                            account.uid,
                            match found {
                                Some(f) => format!("now has uid {}", f.uid),
                                None => "no longer exists".to_owned(),
                            }
                        ),
                    ));
                }
            }
        }
    }

    // A site keeps its account while hostctl keeps the site: its directories are the
    // account's.
    for spec in &state.sites {
        let name = &chosen[&spec.site.id.0];
        if let Some(site) = known(spec)
            && site.system_user != *name
        {
            return Err(refuse(
                spec,
                format!(
                    "site {} runs as {}; the account of a site cannot change while hostctl \
                     keeps it (its directories are that account's): remove the site, apply, \
                     and add it again",
                    site.id, site.system_user
                ),
            ));
        }
    }

    let sites: Vec<Website> = state
        .sites
        .iter()
        .map(|spec| {
            let mut site = spec.site.clone();
            site.system_user = chosen[&spec.site.id.0].clone();
            site
        })
        .collect();
    let desired: BTreeSet<i64> = sites.iter().map(|s| s.id.0).collect();
    let mut delete_files: Vec<Website> = Vec::new();
    if let Some(r) = recorded {
        for site in r.sites.iter().chain(&r.pending) {
            if !desired.contains(&site.id.0)
                && is_created(&site.system_user)
                && !delete_files.iter().any(|s| s.id == site.id)
            {
                delete_files.push(site.clone());
            }
        }
    }
    delete_files.sort_by_key(|s| s.id);
    let remove = created
        .iter()
        .filter(|a| !sites.iter().any(|s| s.system_user == a.name))
        .cloned()
        .collect();
    Ok(Resolved {
        isolation,
        sites,
        create,
        delete_files,
        remove,
    })
}

/// Checks a named account hostctl did not create: only an adopted one with ordinary ids.
async fn check_foreign(spec: &SiteSpec, accounts: &dyn NodeAccounts) -> anyhow::Result<()> {
    let name = &spec.site.system_user;
    let found = accounts.find(name).await?;
    let own = "leave system_user out to give the site an account of its own";
    match (spec.account, found) {
        (_, Some(unix)) if unix.uid < FIRST_ORDINARY_ID || unix.gid < FIRST_ORDINARY_ID => {
            Err(refuse(
                spec,
                format!(
                    "{name} (uid {}, gid {}) is a system account: a site never runs as one, \
                     and only accounts with ids from {FIRST_ORDINARY_ID} up can be adopted; \
                     {own}",
                    unix.uid, unix.gid
                ),
            ))
        }
        (AccountChoice::Adopted, Some(_)) => Ok(()),
        (AccountChoice::Adopted, None) => Err(refuse(
            spec,
            format!(
                "{name} does not exist on this machine: only an existing account can be adopted; {own}"
            ),
        )),
        (_, Some(unix)) => Err(refuse(
            spec,
            format!(
                "{name} (uid {}) is an existing account hostctl did not create; to run the \
                 site as it, adopt it with adopt_account = true (hostctl never removes an \
                 adopted account), or {own}",
                unix.uid
            ),
        )),
        (_, None) => Err(refuse(
            spec,
            format!(
                "{name} is not an account hostctl created; {own} (the apply creates it), or \
                 name one hostctl created for another site"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use hosting_core::{UidRange, UnixAccount};

    use super::*;
    use crate::state::parse;

    /// An account database in memory.
    fn changes_anything(r: &Resolved) -> bool {
        !(r.create.is_empty() && r.delete_files.is_empty() && r.remove.is_empty())
    }

    #[derive(Debug)]
    struct Fake {
        isolation: Isolation,
        known: Mutex<Vec<UnixAccount>>,
    }

    impl Fake {
        fn root(known: &[(&str, u32)]) -> Self {
            Self {
                isolation: Isolation::Accounts,
                known: Mutex::new(
                    known
                        .iter()
                        .map(|(name, id)| UnixAccount {
                            name: name.parse().expect("name"),
                            uid: *id,
                            gid: *id,
                        })
                        .collect(),
                ),
            }
        }
    }

    #[async_trait]
    impl NodeAccounts for Fake {
        fn isolation(&self) -> Isolation {
            self.isolation.clone()
        }
        fn uid_range(&self) -> UidRange {
            UidRange::DEFAULT
        }
        async fn find(&self, name: &SystemUser) -> hosting_core::Result<Option<UnixAccount>> {
            Ok(self
                .known
                .lock()
                .expect("lock")
                .iter()
                .find(|a| a.name == *name)
                .cloned())
        }
        async fn create(&self, _: &SystemUser) -> hosting_core::Result<UnixAccount> {
            unreachable!("resolving creates nothing")
        }
        async fn remove(&self, _: &UnixAccount) -> hosting_core::Result<()> {
            unreachable!("resolving removes nothing")
        }
    }

    fn state(sites: &str) -> DesiredState {
        parse(&format!(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\n{sites}"
        ))
        .expect("state")
    }

    fn site(id: i64, domain: &str, extra: &str) -> String {
        format!("[[site]]\nid = {id}\ndomain = \"{domain}\"\n{extra}\n")
    }

    async fn error_of(
        sites: &str,
        recorded: Option<&Recorded>,
        accounts: &dyn NodeAccounts,
    ) -> String {
        format!(
            "{:#}",
            resolve(&state(sites), recorded, accounts)
                .await
                .expect_err("refused")
        )
    }

    fn account(name: &str, id: u32) -> RecordedAccount {
        RecordedAccount {
            name: name.parse().expect("name"),
            uid: id,
            gid: id,
        }
    }

    #[tokio::test]
    async fn new_sites_get_accounts_of_their_own_and_may_share_one() {
        // shop-example-com is taken on the machine: the next derived name.
        let fake = Fake::root(&[("shop-example-com", 1500), ("legacy", 1200)]);
        let sites = [
            site(1, "shop.example.com", ""),
            site(2, "blog.example.com", ""),
            site(3, "b.example.com", "system_user = \"blog-example-com\""),
            site(
                4,
                "old.example.com",
                "system_user = \"legacy\"\nadopt_account = true",
            ),
        ]
        .concat();
        let resolved = resolve(&state(&sites), None, &fake)
            .await
            .expect("resolved");
        let users: Vec<&str> = resolved
            .sites
            .iter()
            .map(|s| s.system_user.as_str())
            .collect();
        assert_eq!(
            users,
            [
                "shop-example-com-2",
                "blog-example-com",
                "blog-example-com",
                "legacy"
            ]
        );
        assert_eq!(
            resolved.create,
            [
                NewAccount {
                    name: "shop-example-com-2".parse().expect("name"),
                    site: 1
                },
                NewAccount {
                    name: "blog-example-com".parse().expect("name"),
                    site: 2
                }
            ]
        );
        assert!(resolved.remove.is_empty() && resolved.delete_files.is_empty());
    }

    #[tokio::test]
    async fn foreign_and_system_accounts_are_refused_naming_the_field() {
        let fake = Fake::root(&[("legacy", 1200), ("systemd-timesync", 997), ("odd", 0)]);
        for (extra, says) in [
            (
                "system_user = \"legacy\"",
                "existing account hostctl did not create",
            ),
            ("system_user = \"systemd-timesync\"", "is a system account"),
            (
                "system_user = \"systemd-timesync\"\nadopt_account = true",
                "is a system account",
            ),
            (
                "system_user = \"odd\"\nadopt_account = true",
                "is a system account",
            ),
            (
                "system_user = \"ghost\"",
                "is not an account hostctl created",
            ),
            (
                "system_user = \"ghost\"\nadopt_account = true",
                "does not exist",
            ),
        ] {
            let sites = [
                site(1, "a.example.com", ""),
                site(2, "b.example.com", extra),
            ]
            .concat();
            let err = error_of(&sites, None, &fake).await;
            assert!(err.starts_with("site[1].system_user: "), "{err}");
            assert!(err.contains(says), "{extra}: {err}");
        }
    }

    #[tokio::test]
    async fn a_site_keeps_its_account_and_unused_created_ones_go() {
        let fake = Fake::root(&[("a-example-com", 20_001), ("legacy", 1200)]);
        let applied = state(
            &[
                site(1, "a.example.com", ""),
                site(
                    2,
                    "b.example.com",
                    "system_user = \"legacy\"\nadopt_account = true",
                ),
                site(3, "c.example.com", "system_user = \"a-example-com\""),
            ]
            .concat(),
        );
        let mut recorded = Recorded::of(&applied, applied.websites());
        recorded.accounts.push(account("a-example-com", 20_001));

        // As applied: nothing to create or remove.
        let resolved = resolve(&applied, Some(&recorded), &fake)
            .await
            .expect("same");
        assert!(!changes_anything(&resolved), "{resolved:?}");

        // Site 2 may not move to an account of its own, nor site 1 to the adopted one.
        let err = error_of(
            &[site(1, "a.example.com", ""), site(2, "b.example.com", "")].concat(),
            Some(&recorded),
            &fake,
        )
        .await;
        assert!(
            err.starts_with("site[1].system_user: site 2 runs as legacy"),
            "{err}"
        );
        let err = error_of(
            &site(
                1,
                "a.example.com",
                "system_user = \"legacy\"\nadopt_account = true",
            ),
            Some(&recorded),
            &fake,
        )
        .await;
        assert!(err.contains("cannot change"), "{err}");

        // Site 1 goes, site 3 keeps the account: site 1's files go, the account stays.
        let resolved = resolve(
            &state(&site(3, "c.example.com", "system_user = \"a-example-com\"")),
            Some(&recorded),
            &fake,
        )
        .await
        .expect("resolved");
        let deleted: Vec<i64> = resolved.delete_files.iter().map(|s| s.id.0).collect();
        assert_eq!(deleted, [1]);
        assert!(resolved.remove.is_empty());

        // Every site goes: the created account goes, the adopted one stays.
        let resolved = resolve(&state(""), Some(&recorded), &fake)
            .await
            .expect("resolved");
        let deleted: Vec<i64> = resolved.delete_files.iter().map(|s| s.id.0).collect();
        assert_eq!(
            deleted,
            [1, 3],
            "site 2's account is adopted: its files stay"
        );
        assert_eq!(resolved.remove, [account("a-example-com", 20_001)]);

        // A created account that disappeared is named before anything happens.
        let gone = Fake::root(&[("legacy", 1200)]);
        let err = error_of(&site(1, "a.example.com", ""), Some(&recorded), &gone).await;
        assert!(err.contains("no longer exists"), "{err}");
    }

    #[tokio::test]
    async fn without_root_every_site_runs_as_the_current_user() {
        let fake = Fake {
            isolation: Isolation::None {
                account: "alice".parse().expect("name"),
                tenants_may_share: false,
            },
            known: Mutex::new(Vec::new()),
        };
        let resolved = resolve(
            &state(
                &[
                    site(1, "a.example.com", ""),
                    site(2, "b.example.com", "system_user = \"alice\""),
                ]
                .concat(),
            ),
            None,
            &fake,
        )
        .await
        .expect("resolved");
        assert!(
            resolved
                .sites
                .iter()
                .all(|s| s.system_user.as_str() == "alice")
        );
        assert!(!changes_anything(&resolved));
        let err = error_of(
            &site(
                1,
                "a.example.com",
                "system_user = \"bob\"\nadopt_account = true",
            ),
            None,
            &fake,
        )
        .await;
        assert!(
            err.starts_with("site[0].system_user: bob cannot be used"),
            "{err}"
        );
    }
}
