//! What an API token may do, on top of the rules of the role it acts with.
//!
//! A closed list with stable snake_case names: the names are stored with every token and sent
//! by API clients, so a name never changes meaning; a new capability is a new name.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InvalidValue;
use crate::types::named_enum;

/// One thing an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// List and read websites.
    WebsitesRead,
    /// Create, change and delete websites.
    WebsitesWrite,
    /// List and read customer databases.
    DatabasesRead,
    /// Create, change and delete customer databases and their users.
    DatabasesWrite,
    /// List and read users.
    UsersRead,
    /// Create, change and delete users.
    UsersWrite,
    /// List and read tenants.
    TenantsRead,
    /// Create, change and delete tenants.
    TenantsWrite,
    /// List and read nodes.
    NodesRead,
    /// Register, change and remove nodes.
    NodesWrite,
    /// Read the audit log.
    AuditRead,
    /// List and read background jobs.
    JobsRead,
    /// Create and revoke API tokens.
    TokensWrite,
}

named_enum!(Permission, "permissions",
    "must be one of websites_read, websites_write, databases_read, databases_write, users_read, users_write, tenants_read, tenants_write, nodes_read, nodes_write, audit_read, jobs_read, tokens_write", {
    WebsitesRead => "websites_read",
    WebsitesWrite => "websites_write",
    DatabasesRead => "databases_read",
    DatabasesWrite => "databases_write",
    UsersRead => "users_read",
    UsersWrite => "users_write",
    TenantsRead => "tenants_read",
    TenantsWrite => "tenants_write",
    NodesRead => "nodes_read",
    NodesWrite => "nodes_write",
    AuditRead => "audit_read",
    JobsRead => "jobs_read",
    TokensWrite => "tokens_write",
});

impl Permission {
    /// The field name used in errors.
    pub const FIELD: &'static str = "permissions";

    /// Every permission, in declaration order.
    pub const ALL: [Permission; 13] = [
        Permission::WebsitesRead,
        Permission::WebsitesWrite,
        Permission::DatabasesRead,
        Permission::DatabasesWrite,
        Permission::UsersRead,
        Permission::UsersWrite,
        Permission::TenantsRead,
        Permission::TenantsWrite,
        Permission::NodesRead,
        Permission::NodesWrite,
        Permission::AuditRead,
        Permission::JobsRead,
        Permission::TokensWrite,
    ];
}

/// A set of permissions. Serde is a list of names (sorted when written); [`FromStr`] and
/// [`fmt::Display`] use a comma-separated list, for a CLI flag or a database column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// No permission.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every permission.
    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    /// Whether `permission` is in the set.
    pub fn contains(&self, permission: Permission) -> bool {
        self.0.contains(&permission)
    }

    /// Adds `permission`; `false` if it was already there.
    pub fn insert(&mut self, permission: Permission) -> bool {
        self.0.insert(permission)
    }

    /// Whether every permission here is also in `other` (a token may not be granted more
    /// than its creator holds).
    pub fn is_subset(&self, other: &PermissionSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The permissions, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl FromStr for PermissionSet {
    type Err = InvalidValue;
    /// Comma-separated names; spaces around names are ignored; the empty string is the empty
    /// set.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(Self::new());
        }
        s.split(',').map(|name| name.trim().parse()).collect()
    }
}

impl fmt::Display for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, permission) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{permission}")?;
        }
        Ok(())
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Permission>::deserialize(d).map(|list| list.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn names_round_trip() {
        let names: Vec<String> = Permission::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(names[0], "websites_read");
        assert_eq!(names[12], "tokens_write");
        for (name, permission) in names.iter().zip(Permission::ALL) {
            assert_eq!(name.parse::<Permission>(), Ok(permission));
            assert_eq!(
                serde_json::to_string(&permission).expect("json"),
                format!("\"{name}\"")
            );
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn unknown_names_name_the_field() {
        for bad in [
            "",
            "WEBSITES_READ",
            "websites-read",
            "admin",
            "websites_read ",
        ] {
            let err = bad.parse::<Permission>().expect_err(bad);
            assert_eq!(err.field, "permissions");
            assert!(err.rule.contains("websites_read"));
        }
        let err = serde_json::from_str::<PermissionSet>("[\"websites_read\",\"root\"]")
            .expect_err("unknown name");
        assert!(err.to_string().contains("permissions"), "{err}");
    }

    #[test]
    fn set_parses_serialises_and_compares() {
        let set: PermissionSet = "users_read, websites_write,websites_read"
            .parse()
            .expect("valid");
        assert!(set.contains(Permission::WebsitesRead));
        assert!(!set.contains(Permission::TokensWrite));
        assert_eq!(set.to_string(), "websites_read,websites_write,users_read");
        assert_eq!(set.to_string().parse::<PermissionSet>(), Ok(set.clone()));
        let json = serde_json::to_string(&set).expect("json");
        assert_eq!(json, r#"["websites_read","websites_write","users_read"]"#);
        assert_eq!(
            serde_json::from_str::<PermissionSet>(&json).expect("back"),
            set
        );
        assert!(set.is_subset(&PermissionSet::all()));
        assert!(!PermissionSet::all().is_subset(&set));
        assert_eq!(PermissionSet::all().iter().count(), Permission::ALL.len());
        assert_eq!("".parse::<PermissionSet>(), Ok(PermissionSet::new()));
        assert!(
            "websites_read,,users_read"
                .parse::<PermissionSet>()
                .is_err()
        );
    }
}
