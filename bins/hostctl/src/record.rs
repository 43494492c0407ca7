//! What hostctl last applied to a node: `ROOT/state/applied.json`.
//!
//! It is the `previous` of the next apply (a PHP version switch keeps the old pool until the
//! web server has moved) and the baseline `plan` compares the state file with. It is written
//! only after an apply succeeded, atomically (temporary file, fsync, rename, fsync of the
//! directory), so it never holds half a state.
//!
//! It also remembers the Unix accounts hostctl created (name, uid, gid): only those are ever
//! removed, and a site may name one without adopting it. An account is recorded the moment it
//! exists, before anything else happens, so a failed apply never loses track of one; sites
//! whose account and directories an unfinished apply prepared are kept as `pending`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hosting_core::UnixAccount;
use hosting_core::model::Website;
use hosting_core::types::{SystemUser, WebServerKind};
use serde::{Deserialize, Serialize};

use crate::state::{DesiredState, Mode};

/// The format written by this version: 2 added `accounts` and `pending`.
const FORMAT: u32 = 2;
/// The format before: read as having no accounts and nothing pending.
const FORMAT_WITHOUT_ACCOUNTS: u32 = 1;

/// A Unix account hostctl created for a site (as root, with `LocalAccounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAccount {
    /// Its name.
    pub name: SystemUser,
    /// Its uid when it was created.
    pub uid: u32,
    /// Its primary group's gid.
    pub gid: u32,
}

impl RecordedAccount {
    /// As the account tools know it.
    pub fn unix(&self) -> UnixAccount {
        UnixAccount {
            name: self.name.clone(),
            uid: self.uid,
            gid: self.gid,
        }
    }
}

impl From<UnixAccount> for RecordedAccount {
    fn from(a: UnixAccount) -> Self {
        Self {
            name: a.name,
            uid: a.uid,
            gid: a.gid,
        }
    }
}

/// The node-wide settings an apply used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedNode {
    /// Prefix or system.
    pub mode: Mode,
    /// The web server the sites were applied to.
    pub web_server: WebServerKind,
    /// Plain HTTP port.
    pub http_port: u16,
    /// HTTPS port.
    pub https_port: u16,
}

/// The content of `applied.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// [`FORMAT`].
    pub format: u32,
    /// Node-wide settings.
    pub node: RecordedNode,
    /// Every site that is live, as applied.
    #[serde(with = "sites_with_operator_directives")]
    pub sites: Vec<Website>,
    /// Sites that are not live but may have directories (and an account) on the node: an
    /// apply that failed after preparing them, or a removed site whose files are still to be
    /// deleted. The next apply makes them live or deletes their files.
    #[serde(default, with = "sites_with_operator_directives")]
    pub pending: Vec<Website>,
    /// The accounts hostctl created and has not removed yet.
    #[serde(default)]
    pub accounts: Vec<RecordedAccount>,
}

impl Recorded {
    /// The record of applying `sites` with `state`'s node settings, nothing pending and no
    /// account.
    pub fn of(state: &DesiredState, sites: Vec<Website>) -> Self {
        Self {
            format: FORMAT,
            node: RecordedNode {
                mode: state.node.mode,
                web_server: state.node.web_server,
                http_port: state.node.ports.http,
                https_port: state.node.ports.https,
            },
            sites,
            pending: Vec::new(),
            accounts: Vec::new(),
        }
    }

    /// The live or pending site `id`: the account it runs as is fixed while hostctl keeps it.
    pub fn known_site(&self, id: i64) -> Option<&Website> {
        self.sites
            .iter()
            .chain(&self.pending)
            .find(|s| s.id.0 == id)
    }
}

/// Websites with their operator directives, which `WebsiteSettings` writes but never reads
/// (they are not taken from request bodies): each site's are kept next to its `settings`, as
/// `operator_directives`, and put back when the record is read.
mod sites_with_operator_directives {
    use hosting_core::model::{ExtraDirectives, Website};
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    const KEY: &str = "operator_directives";

    pub fn serialize<S: Serializer>(sites: &[Website], serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(sites.len());
        for site in sites {
            let mut value = serde_json::to_value(site).map_err(S::Error::custom)?;
            let directives = value
                .get_mut("settings")
                .and_then(Value::as_object_mut)
                .and_then(|settings| settings.remove(KEY))
                .unwrap_or(Value::Array(Vec::new()));
            if let Some(fields) = value.as_object_mut() {
                fields.insert(KEY.to_owned(), directives);
            }
            out.push(value);
        }
        out.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Website>, D::Error> {
        let values = Vec::<Value>::deserialize(deserializer)?;
        let mut sites = Vec::with_capacity(values.len());
        for mut value in values {
            let directives = value
                .as_object_mut()
                .and_then(|fields| fields.remove(KEY))
                .unwrap_or(Value::Array(Vec::new()));
            let mut site: Website = serde_json::from_value(value).map_err(D::Error::custom)?;
            site.settings.operator_directives =
                ExtraDirectives::deserialize(directives).map_err(D::Error::custom)?;
            sites.push(site);
        }
        Ok(sites)
    }
}

/// `ROOT/state`: the record and the lock.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state directory of the node at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("state"),
        }
    }

    /// `ROOT/state/applied.json`.
    pub fn record_path(&self) -> PathBuf {
        self.dir.join("applied.json")
    }

    /// The last applied state, or `None` before the first apply.
    pub fn load(&self) -> anyhow::Result<Option<Recorded>> {
        let path = self.record_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let recorded: Recorded = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged (move it away to start from no recorded state)",
                path.display()
            )
        })?;
        match recorded.format {
            FORMAT => Ok(Some(recorded)),
            // Written before hostctl created accounts: it has none, and nothing pending.
            FORMAT_WITHOUT_ACCOUNTS => Ok(Some(Recorded {
                format: FORMAT,
                ..recorded
            })),
            other => anyhow::bail!(
                "{} has format {other}, this hostctl reads formats {FORMAT_WITHOUT_ACCOUNTS} \
                 and {FORMAT}",
                path.display()
            ),
        }
    }

    /// Replaces the record atomically.
    pub fn save(&self, recorded: &Recorded) -> anyhow::Result<()> {
        #[allow(
            clippy::disallowed_methods,
            reason = "hostctl's state directory under the node root, root's own"
        )]
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.record_path();
        let temp = self.dir.join("applied.json.tmp");
        let mut bytes = serde_json::to_vec_pretty(recorded).context("cannot encode the record")?;
        bytes.push(b'\n');
        let mut file =
            File::create(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", temp.display()))?;
        drop(file);
        std::fs::rename(&temp, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot flush {}", self.dir.display()))?;
        Ok(())
    }

    /// Takes the node's lock (`ROOT/state/lock`), waiting for another hostctl that holds it.
    /// Held until the returned file is dropped.
    pub fn lock(&self) -> anyhow::Result<File> {
        #[allow(
            clippy::disallowed_methods,
            reason = "hostctl's state directory under the node root, root's own"
        )]
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "waiting for another hostctl working on this node ({})",
                    path.display()
                );
                file.lock()
                    .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use hosting_core::model::ServerDirective;

    use super::*;

    #[test]
    fn a_record_round_trips_and_replaces_the_previous_one() {
        let root = std::env::temp_dir().join(format!("hostctl-record-{}", std::process::id()));
        let dir = StateDir::new(&root);
        assert_eq!(dir.load().expect("load"), None);
        let state = crate::state::parse(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\n[[site]]\nid = 1\n\
             domain = \"a.example.com\"\nsystem_user = \"u\"\nphp_version = \"8.2\"\n",
        )
        .expect("state");
        let mut first = Recorded::of(&state, state.websites());
        first.accounts.push(RecordedAccount {
            name: "shop".parse().expect("name"),
            uid: 20_001,
            gid: 20_001,
        });
        first.pending = state.websites();
        first.pending[0].settings.operator_directives = vec![ServerDirective {
            name: "access_log".parse().expect("name"),
            args: vec!["/var/log/x.log".parse().expect("arg")],
        }]
        .try_into()
        .expect("directives");
        dir.save(&first).expect("save");
        assert_eq!(dir.load().expect("load"), Some(first.clone()));
        assert!(first.known_site(1).is_some() && first.known_site(2).is_none());
        let empty = Recorded::of(&state, Vec::new());
        dir.save(&empty).expect("save");
        assert_eq!(dir.load().expect("load"), Some(empty.clone()));
        assert!(!dir.dir.join("applied.json.tmp").exists());
        // A record of the format before accounts reads as one without accounts.
        let mut old = serde_json::to_value(&empty).expect("json");
        old["format"] = 1.into();
        if let Some(fields) = old.as_object_mut() {
            fields.remove("accounts");
            fields.remove("pending");
        }
        std::fs::write(dir.record_path(), old.to_string()).expect("write");
        assert_eq!(dir.load().expect("load"), Some(empty));
        old["format"] = 3.into();
        std::fs::write(dir.record_path(), old.to_string()).expect("write");
        assert!(dir.load().is_err(), "a newer format is refused");
        let _lock = dir.lock().expect("lock");
        std::fs::remove_dir_all(root).expect("cleanup");
    }
}
