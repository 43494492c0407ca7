//! A site's directories on its node: home, document root, tmp and sessions, owned by the site's
//! own system user. PHP's `open_basedir` and the pool's user confine the site to them, so they
//! must exist with the right owner and modes before its pool starts.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::Website;

/// Creates and removes the directories of the sites a node serves.
///
/// # Contract
/// - `prepare` creates what is missing, owned by the site's `system_user`; it creates nothing
///   inside a symlink; a missing account is [`Error::Invalid`](crate::Error::Invalid) naming
///   `system_user`.
/// - On a node that keeps sites apart (it names the web server's group), the home is mode
///   `0750`, owned by the site's account and the web server's group: another site's account
///   cannot enter it, the web server can. An existing home with another owner, group or mode is
///   corrected (the home itself only, never through a symlink). Otherwise the home is `0711`
///   and what exists is never touched.
/// - The document root and any directory leading to it are `0755`; `tmp` and `sessions` are
///   `0700`.
/// - `remove` deletes the site's home and everything in it, and nothing outside it.
/// - `disk_usage` counts the disk space under the home, never following a symlink; a home that
///   does not exist uses 0 bytes.
#[async_trait]
pub trait SiteFiles: Debug + Send + Sync {
    /// Makes sure `site`'s directories exist.
    async fn prepare(&self, site: &Website) -> Result<()>;
    /// Deletes `site`'s home.
    async fn remove(&self, site: &Website) -> Result<()>;
    /// Bytes of disk the site's home takes, for its tenant's storage quota.
    async fn disk_usage(&self, site: &Website) -> Result<u64>;
}

#[cfg(feature = "system")]
pub use local::LocalSiteFiles;

#[cfg(feature = "system")]
mod local {
    use std::fs::{DirBuilder, File, Permissions};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::SiteFiles;
    use crate::error::{Error, InvalidValue, Result};
    use crate::layout::HostLayout;
    use crate::model::Website;
    use crate::system::{Command, CommandRunner};

    /// [`SiteFiles`] on this machine, under a [`HostLayout`]. Accounts and groups are looked
    /// up with `getent` through the process seam.
    ///
    /// With a web group ([`LocalSiteFiles::with_web_group`]) the home is `0750`, owned by the
    /// site's account and the web server's group: the one gate between sites, since another
    /// site's PHP runs as another uid outside that group and cannot even traverse it, while the
    /// web server, in the group, still reaches the static files it serves. Below it the
    /// document root stays `0755` in the site's own group: a second gate would add nothing
    /// behind the home, and the files the site's own tools create (`0755`/`0644` under the
    /// usual umask) stay readable to the web server as "other". Without a web group (a node not
    /// running as root, where every site is one account) the home is `0711` as before.
    #[derive(Debug, Clone)]
    pub struct LocalSiteFiles {
        layout: HostLayout,
        runner: Arc<dyn CommandRunner>,
        web_group: Option<String>,
    }

    /// A Unix account's ids.
    #[derive(Debug, Clone, Copy)]
    struct Owner {
        uid: u32,
        gid: u32,
    }

    /// A directory's owner, group and mode.
    #[derive(Debug, Clone, Copy)]
    struct Access {
        uid: u32,
        gid: u32,
        mode: u32,
    }

    fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
        Error::backend(
            "site-files",
            format!("cannot {what} {}: {e}", path.display()),
        )
    }

    fn not_a_directory(site: &Website, path: &Path) -> Error {
        Error::Conflict(format!(
            "site {}: {} exists and is not a directory",
            site.id,
            path.display()
        ))
    }

    /// `getent` key of a group: a name `groupadd` accepts, which also cannot pass as an option.
    fn check_group_name(name: &str) -> Result<(), InvalidValue> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if first_ok && rest_ok && name.len() <= 32 {
            Ok(())
        } else {
            Err(InvalidValue::new(
                "web_group",
                "must be a group name: [a-z_][a-z0-9_-]*, at most 32 characters",
            ))
        }
    }

    /// Sets the owner, group and mode by path. Only for a directory no other account can reach
    /// yet (inside the staging directory, or the staging directory itself in the sites root).
    fn set_access(dir: &Path, access: Access) -> Result<()> {
        std::os::unix::fs::chown(dir, Some(access.uid), Some(access.gid))
            .map_err(|e| io_error("chown", dir, e))?;
        std::fs::set_permissions(dir, Permissions::from_mode(access.mode))
            .map_err(|e| io_error("chmod", dir, e))
    }

    /// Gives an existing home `want`, through a descriptor of the directory `symlink_metadata`
    /// saw: a symlink or anything else swapped in meanwhile is refused, never followed. The
    /// home's parent is the sites root, which no site's account can write, so opening it
    /// cannot block on a planted FIFO.
    fn correct_home(site: &Website, home: &Path, want: Access) -> Result<()> {
        let seen = std::fs::symlink_metadata(home).map_err(|e| io_error("check", home, e))?;
        if !seen.is_dir() {
            return Err(not_a_directory(site, home));
        }
        if (seen.uid(), seen.gid(), seen.mode() & 0o7777) == (want.uid, want.gid, want.mode) {
            return Ok(());
        }
        let dir = File::open(home).map_err(|e| io_error("open", home, e))?;
        let opened = dir.metadata().map_err(|e| io_error("check", home, e))?;
        if !opened.is_dir() || (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) {
            return Err(Error::Conflict(format!(
                "site {}: {} changed while its access was corrected",
                site.id,
                home.display()
            )));
        }
        std::os::unix::fs::fchown(&dir, Some(want.uid), Some(want.gid))
            .map_err(|e| io_error("chown", home, e))?;
        dir.set_permissions(Permissions::from_mode(want.mode))
            .map_err(|e| io_error("chmod", home, e))
    }

    impl LocalSiteFiles {
        /// Site directories under `layout.sites_root`, homes `0711` (no web group).
        pub fn new(layout: HostLayout, runner: Arc<dyn CommandRunner>) -> Self {
            Self {
                layout,
                runner,
                web_group: None,
            }
        }

        /// Homes `0750` in `group`, the group the web server runs as (`www-data` on Debian),
        /// looked up with `getent group` at each `prepare`. Needs root, like the accounts.
        pub fn with_web_group(mut self, group: &str) -> Result<Self, InvalidValue> {
            check_group_name(group)?;
            self.web_group = Some(group.to_owned());
            Ok(self)
        }

        async fn owner(&self, site: &Website) -> Result<Owner> {
            let user = site.system_user.as_str();
            let out = self
                .runner
                .run(&Command::new("getent").arg("passwd").arg(user))
                .await?;
            let missing = || Error::Invalid {
                field: "system_user".into(),
                reason: format!("{user} is not an account on this node; create it first").into(),
            };
            if !out.success() {
                return Err(missing());
            }
            // name:password:uid:gid:gecos:home:shell
            let fields: Vec<&str> = out.stdout.trim().split(':').collect();
            match (fields.get(2), fields.get(3)) {
                (Some(uid), Some(gid)) => Ok(Owner {
                    uid: uid.parse().map_err(|_| missing())?,
                    gid: gid.parse().map_err(|_| missing())?,
                }),
                _ => Err(missing()),
            }
        }

        /// The web group's gid, if the node has one.
        async fn web_gid(&self) -> Result<Option<u32>> {
            let Some(group) = &self.web_group else {
                return Ok(None);
            };
            let out = self
                .runner
                .run(&Command::new("getent").arg("group").arg(group))
                .await?;
            let missing = || Error::Invalid {
                field: "web_group".into(),
                reason: format!("{group} is not a group on this node").into(),
            };
            if !out.success() {
                return Err(missing());
            }
            // name:password:gid:members
            let gid = out.stdout.trim().split(':').nth(2).ok_or_else(missing)?;
            gid.parse().map(Some).map_err(|_| missing())
        }

        /// Builds a new home completely in a staging directory in the sites root, where no
        /// site's account can reach, then renames it into place: nothing is ever chowned at a
        /// path a tenant controls, and a half-made home is never seen.
        fn build_home(
            &self,
            name: &str,
            home: &Path,
            inside: &[(PathBuf, u32)],
            owner: Owner,
            home_access: Access,
        ) -> Result<()> {
            let staging = self.layout.sites_root.join(format!(".{name}.new"));
            // Left by an interrupted build; it never was anyone's home.
            match std::fs::remove_dir_all(&staging) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &staging, e)),
            }
            DirBuilder::new()
                .mode(0o700)
                .create(&staging)
                .map_err(|e| io_error("create", &staging, e))?;
            for (relative, mode) in inside {
                let dir = staging.join(relative);
                // A document root named `tmp` is listed twice; the first mode wins.
                if std::fs::symlink_metadata(&dir).is_ok() {
                    continue;
                }
                std::fs::create_dir(&dir).map_err(|e| io_error("create", &dir, e))?;
                set_access(
                    &dir,
                    Access {
                        uid: owner.uid,
                        gid: owner.gid,
                        mode: *mode,
                    },
                )?;
            }
            set_access(&staging, home_access)?;
            std::fs::rename(&staging, home).map_err(|e| io_error("move into place", &staging, e))
        }

        /// Creates `dir` in an existing home, which its account controls: with that account's
        /// own rights when the node is root, so a symlink swapped in on the way leads only
        /// where the account could go itself.
        async fn create_in_home(&self, dir: &Path, mode: u32, owner: Owner) -> Result<()> {
            let id = self.runner.run(&Command::new("id").arg("-u")).await?;
            if !id.success() {
                return Err(Error::backend(
                    "site-files",
                    format!("id -u failed: {}", id.stderr.trim()),
                ));
            }
            if id.stdout.trim() != "0" {
                // Not root: the node runs as the site's (shared) account itself.
                DirBuilder::new()
                    .mode(mode)
                    .create(dir)
                    .map_err(|e| io_error("create", dir, e))?;
                return std::os::unix::fs::lchown(dir, Some(owner.uid), Some(owner.gid))
                    .map_err(|e| io_error("chown", dir, e));
            }
            let out = self
                .runner
                .run(
                    &Command::new("setpriv")
                        .arg(format!("--reuid={}", owner.uid))
                        .arg(format!("--regid={}", owner.gid))
                        .arg("--clear-groups")
                        .arg("--")
                        .arg("mkdir")
                        .arg("-m")
                        .arg(format!("{mode:o}"))
                        .arg("--")
                        .arg(dir),
                )
                .await?;
            if out.success() {
                Ok(())
            } else {
                Err(Error::backend(
                    "site-files",
                    format!(
                        "cannot create {} as uid {}: {}",
                        dir.display(),
                        owner.uid,
                        out.stderr.trim()
                    ),
                ))
            }
        }
    }

    #[async_trait]
    impl SiteFiles for LocalSiteFiles {
        async fn prepare(&self, site: &Website) -> Result<()> {
            let owner = self.owner(site).await?;
            let web_gid = self.web_gid().await?;
            let paths = self.layout.site(site);
            let home = &paths.home;
            let home_access = match web_gid {
                Some(gid) => Access {
                    uid: owner.uid,
                    gid,
                    mode: 0o750,
                },
                None => Access {
                    uid: owner.uid,
                    gid: owner.gid,
                    mode: 0o711,
                },
            };
            // Relative to the home, parents first.
            let mut inside: Vec<(PathBuf, u32)> = Vec::new();
            let mut dir = PathBuf::new();
            if let Ok(relative) = paths.document_root.strip_prefix(home) {
                for part in relative.components() {
                    dir.push(part);
                    inside.push((dir.clone(), 0o755));
                }
            }
            inside.push((PathBuf::from("tmp"), 0o700));
            inside.push((PathBuf::from("sessions"), 0o700));
            std::fs::create_dir_all(&self.layout.sites_root)
                .map_err(|e| io_error("create", &self.layout.sites_root, e))?;
            match std::fs::symlink_metadata(home) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(not_a_directory(site, home)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return self.build_home(&paths.name, home, &inside, owner, home_access);
                }
                Err(e) => return Err(io_error("check", home, e)),
            }
            if web_gid.is_some() {
                correct_home(site, home, home_access)?;
            }
            for (relative, mode) in inside {
                let dir = home.join(relative);
                // Parents come first, so a symlinked one is refused here before anything is
                // created below it.
                match std::fs::symlink_metadata(&dir) {
                    Ok(meta) if meta.is_dir() => continue,
                    Ok(_) => return Err(not_a_directory(site, &dir)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("check", &dir, e)),
                }
                self.create_in_home(&dir, mode, owner).await?;
            }
            Ok(())
        }

        async fn remove(&self, site: &Website) -> Result<()> {
            let home = self.layout.site(site).home;
            if home.parent() != Some(self.layout.sites_root.as_path()) {
                return Err(Error::Conflict(format!(
                    "{} is not directly under {}",
                    home.display(),
                    self.layout.sites_root.display()
                )));
            }
            // `remove_dir_all` removes a symlink itself, never what it points to.
            match std::fs::remove_dir_all(&home) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("remove", &home, e)),
            }
        }

        async fn disk_usage(&self, site: &Website) -> Result<u64> {
            let home = self.layout.site(site).home;
            tokio::task::spawn_blocking(move || allocated_bytes(&home))
                .await
                .map_err(|e| Error::backend("site-files", e))?
        }
    }

    /// The disk space allocated under `root` (blocks, as `du` counts them), without following
    /// symlinks. Entries that vanish while it walks (the site is live) count as nothing.
    fn allocated_bytes(root: &Path) -> Result<u64> {
        let mut total = 0u64;
        let mut pending = vec![root.to_path_buf()];
        while let Some(path) = pending.pop() {
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("measure", &path, e)),
            };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                let entries = match std::fs::read_dir(&path) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error("measure", &path, e)),
                };
                for entry in entries {
                    match entry {
                        Ok(entry) => pending.push(entry.path()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_error("measure", &path, e)),
                    }
                }
            }
        }
        Ok(total)
    }
}
