//! What an apply would change, site by site: the state file compared with the recorded state,
//! and the accounts and files that come and go with the sites.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hosting_core::model::Website;
use hosting_core::types::{PhpVersion, SystemUser};
use hosting_core::{HostLayout, Isolation};
use serde::Serialize;

use crate::accounts::{NewAccount, Resolved};
use crate::record::{Recorded, RecordedAccount};
use crate::state::NodeSettings;

/// What happens to one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// New in the state file.
    Added,
    /// Gone from the state file.
    Removed,
    /// Some setting differs.
    Changed,
    /// As applied.
    Unchanged,
}

impl Change {
    /// The word printed for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// A site's PHP version before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhpMove {
    /// As applied (`None`: static, or not applied yet).
    pub from: Option<PhpVersion>,
    /// As desired (`None`: static, or removed).
    pub to: Option<PhpVersion>,
}

/// One site's line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SitePlan {
    /// The site id.
    pub id: i64,
    /// Its primary domain (the desired one, or the applied one when removed).
    pub domain: String,
    /// What happens to it.
    pub change: Change,
    /// Its PHP version before and after.
    pub php_version: PhpMove,
    /// The account it runs as (the applied one when removed).
    pub system_user: SystemUser,
    /// What differs, one phrase each (`php_version 8.2 -> 8.4`, `settings`).
    pub details: Vec<String>,
}

/// A site's home an apply deletes: the site is gone and its account is one hostctl created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedFiles {
    /// The site id.
    pub site: i64,
    /// Its domain.
    pub domain: String,
    /// Its home, deleted with everything in it.
    pub home: PathBuf,
}

/// How the node keeps its sites apart, and the accounts and files an apply changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountsPlan {
    /// `accounts` (as root: every site has an account of its own) or `none` (without root:
    /// every site runs as `account`).
    pub isolation: &'static str,
    /// The account every site runs as, without root.
    pub account: Option<SystemUser>,
    /// The uids new accounts get, as root.
    pub uid_range: Option<String>,
    /// Accounts the apply creates, first.
    pub create: Vec<NewAccount>,
    /// Homes of removed sites the apply deletes, once no server serves them.
    pub delete_files: Vec<DeletedFiles>,
    /// Accounts hostctl created that no site runs as any more, removed last.
    pub remove: Vec<RecordedAccount>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Node-wide differences (`http_port 80 -> 8080`); empty before the first apply.
    pub node_changes: Vec<String>,
    /// Every site of either side, by id.
    pub sites: Vec<SitePlan>,
    /// Isolation, accounts and files.
    pub accounts: AccountsPlan,
}

fn php(v: Option<PhpVersion>) -> &'static str {
    v.map_or("none", PhpVersion::as_str)
}

/// The phrases saying how `after` differs from `before`.
fn differences(before: &Website, after: &Website) -> Vec<String> {
    let mut out = Vec::new();
    if before.php_version != after.php_version {
        out.push(format!(
            "php_version {} -> {}",
            php(before.php_version),
            php(after.php_version)
        ));
    }
    if before.domain != after.domain {
        out.push(format!("domain {} -> {}", before.domain, after.domain));
    }
    if before.aliases != after.aliases {
        out.push("aliases".to_owned());
    }
    if before.web_server != after.web_server {
        out.push(format!(
            "web_server {} -> {}",
            before.web_server, after.web_server
        ));
    }
    if before.system_user != after.system_user {
        out.push(format!(
            "system_user {} -> {}",
            before.system_user, after.system_user
        ));
    }
    if before.document_root != after.document_root {
        out.push(format!(
            "document_root {} -> {}",
            before.document_root, after.document_root
        ));
    }
    if before.settings != after.settings {
        out.push("settings".to_owned());
    }
    if out.is_empty() && before != after {
        out.push("record".to_owned());
    }
    out
}

impl Plan {
    /// The state file's node settings and its sites with their accounts (`resolved`) compared
    /// with what was last applied (`None`: nothing yet); `layout` places the sites' homes.
    pub fn between(
        recorded: Option<&Recorded>,
        node: &NodeSettings,
        resolved: &Resolved,
        layout: &HostLayout,
    ) -> Plan {
        let mut node_changes = Vec::new();
        let applied: &[Website] = recorded.map_or(&[], |r| r.sites.as_slice());
        if let Some(r) = recorded {
            let n = node;
            if r.node.mode != n.mode {
                node_changes.push(format!(
                    "mode {} -> {}",
                    r.node.mode.as_str(),
                    n.mode.as_str()
                ));
            }
            if r.node.web_server != n.web_server {
                node_changes.push(format!(
                    "web_server {} -> {}",
                    r.node.web_server, n.web_server
                ));
            }
            if r.node.http_port != n.ports.http {
                node_changes.push(format!(
                    "http_port {} -> {}",
                    r.node.http_port, n.ports.http
                ));
            }
            if r.node.https_port != n.ports.https {
                node_changes.push(format!(
                    "https_port {} -> {}",
                    r.node.https_port, n.ports.https
                ));
            }
        }
        let mut by_id: BTreeMap<i64, (Option<&Website>, Option<&Website>)> = BTreeMap::new();
        for site in applied {
            by_id.entry(site.id.0).or_default().0 = Some(site);
        }
        for site in &resolved.sites {
            by_id.entry(site.id.0).or_default().1 = Some(site);
        }
        let sites = by_id
            .into_iter()
            .filter_map(|(id, pair)| {
                let (change, site, details) = match pair {
                    (None, Some(after)) => (Change::Added, after, Vec::new()),
                    (Some(before), None) => (Change::Removed, before, Vec::new()),
                    (Some(before), Some(after)) => {
                        let details = differences(before, after);
                        let change = if details.is_empty() {
                            Change::Unchanged
                        } else {
                            Change::Changed
                        };
                        (change, after, details)
                    }
                    (None, None) => return None,
                };
                Some(SitePlan {
                    id,
                    domain: site.domain.to_string(),
                    system_user: site.system_user.clone(),
                    change,
                    php_version: PhpMove {
                        from: pair.0.and_then(|s| s.php_version),
                        to: pair.1.and_then(|s| s.php_version),
                    },
                    details,
                })
            })
            .collect();
        let (isolation, account, uid_range) = match &resolved.isolation {
            Isolation::Accounts => ("accounts", None, Some(node.uid_range.to_string())),
            Isolation::None { account, .. } => ("none", Some(account.clone()), None),
        };
        Plan {
            node_changes,
            sites,
            accounts: AccountsPlan {
                isolation,
                account,
                uid_range,
                create: resolved.create.clone(),
                delete_files: resolved
                    .delete_files
                    .iter()
                    .map(|site| DeletedFiles {
                        site: site.id.0,
                        domain: site.domain.to_string(),
                        home: layout.site(site).home,
                    })
                    .collect(),
                remove: resolved.remove.clone(),
            },
        }
    }

    /// How many sites have `change`.
    pub fn count(&self, change: Change) -> usize {
        self.sites.iter().filter(|s| s.change == change).count()
    }

    /// Whether applying would change nothing in the record, and no account or file.
    pub fn is_empty(&self) -> bool {
        let a = &self.accounts;
        self.node_changes.is_empty()
            && self.sites.iter().all(|s| s.change == Change::Unchanged)
            && a.create.is_empty()
            && a.delete_files.is_empty()
            && a.remove.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DesiredState, parse};

    fn state(sites: &str) -> DesiredState {
        parse(&format!(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\nhttp_port = 8080\n{sites}"
        ))
        .expect("state")
    }

    /// `state`'s sites as named, no account created or removed.
    fn resolved(state: &DesiredState) -> Resolved {
        Resolved {
            isolation: Isolation::Accounts,
            sites: state.websites(),
            create: Vec::new(),
            delete_files: Vec::new(),
            remove: Vec::new(),
        }
    }

    fn between(recorded: Option<&Recorded>, state: &DesiredState) -> Plan {
        Plan::between(
            recorded,
            &state.node,
            &resolved(state),
            &HostLayout::under("/n"),
        )
    }

    const ONE: &str = "[[site]]\nid = 1\ndomain = \"a.example.com\"\nsystem_user = \"u\"\nphp_version = \"8.2\"\n";
    const TWO: &str = "[[site]]\nid = 2\ndomain = \"b.example.com\"\nsystem_user = \"u\"\n";

    #[test]
    fn before_the_first_apply_every_site_is_added() {
        let plan = between(None, &state(&format!("{ONE}{TWO}")));
        assert_eq!(plan.count(Change::Added), 2);
        assert!(plan.node_changes.is_empty());
        assert!(!plan.is_empty());
    }

    #[test]
    fn a_php_switch_a_removal_and_a_port_change_are_named() {
        let applied = state(&format!("{ONE}{TWO}"));
        let recorded = Recorded::of(&applied, applied.websites());
        assert!(between(Some(&recorded), &applied).is_empty());

        let desired = parse(&format!(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\nhttp_port = 8081\n{}",
            ONE.replace("8.2", "8.4")
        ))
        .expect("state");
        let plan = between(Some(&recorded), &desired);
        assert_eq!(plan.node_changes, ["http_port 8080 -> 8081"]);
        assert_eq!(plan.sites[0].change, Change::Changed);
        assert_eq!(plan.sites[0].details, ["php_version 8.2 -> 8.4"]);
        assert_eq!(
            plan.sites[0].php_version,
            PhpMove {
                from: Some(PhpVersion::V8_2),
                to: Some(PhpVersion::V8_4)
            }
        );
        assert_eq!(plan.sites[1].change, Change::Removed);
        assert_eq!(plan.sites[1].domain, "b.example.com");
        assert_eq!(plan.sites[1].system_user.as_str(), "u");
    }

    #[test]
    fn accounts_and_files_make_a_plan_that_is_not_empty() {
        let applied = state(&format!("{ONE}{TWO}"));
        let recorded = Recorded::of(&applied, applied.websites());
        let mut gone = resolved(&applied);
        gone.delete_files.push(applied.websites()[1].clone());
        let plan = Plan::between(
            Some(&recorded),
            &applied.node,
            &gone,
            &HostLayout::under("/n"),
        );
        assert!(!plan.is_empty(), "files to delete are a change");
        assert_eq!(
            plan.accounts.delete_files[0].home,
            PathBuf::from("/n/sites/site2")
        );
        assert_eq!(plan.accounts.isolation, "accounts");
        assert_eq!(plan.accounts.uid_range.as_deref(), Some("20000-59999"));
    }
}
