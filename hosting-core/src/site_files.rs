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
    use std::path::Path;
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::SiteFiles;
    use crate::beneath::{Access, SiteDir};
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

    fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
        Error::backend(
            "site-files",
            format!("cannot {what} {}: {e}", path.display()),
        )
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

    /// Creates what is missing of the document root (`0755`, each part), `tmp` and `sessions`
    /// (`0700`) in `home`, owned by `owner`, through descriptors: a symlink on the way is
    /// refused, never followed, and what exists is left as it is (a document root named `tmp`
    /// keeps its first mode).
    fn fill(home: &SiteDir, document_root: Option<&Path>, owner: Owner) -> Result<()> {
        let access = |mode| Access {
            uid: owner.uid,
            gid: owner.gid,
            mode,
        };
        let mut dir: Option<SiteDir> = None;
        for part in document_root.into_iter().flat_map(Path::components) {
            let parent = dir.as_ref().unwrap_or(home);
            dir = Some(parent.ensure_dir(Path::new(&part), access(0o755))?.0);
        }
        for name in ["tmp", "sessions"] {
            home.ensure_dir(Path::new(name), access(0o700))?;
        }
        Ok(())
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
        /// site's account can reach, then renames it into place: a half-made home is never
        /// seen.
        fn build_home(
            &self,
            name: &str,
            home: &Path,
            document_root: Option<&Path>,
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
            let root = SiteDir::anchor(&self.layout.sites_root)?;
            let (built, created) = root.ensure_dir(
                Path::new(&format!(".{name}.new")),
                Access {
                    uid: rustix::process::geteuid().as_raw(),
                    gid: rustix::process::getegid().as_raw(),
                    mode: 0o700,
                },
            )?;
            if !created {
                return Err(Error::Conflict(format!(
                    "{} appeared while the home was built",
                    staging.display()
                )));
            }
            fill(&built, document_root, owner)?;
            built.set_access(home_access)?;
            std::fs::rename(&staging, home).map_err(|e| io_error("move into place", &staging, e))
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
            let document_root = paths.document_root.strip_prefix(home).ok();
            // The sites root is root's own: no site's account writes on the way to it.
            #[allow(
                clippy::disallowed_methods,
                reason = "the sites root and what leads to it are root's own"
            )]
            std::fs::create_dir_all(&self.layout.sites_root)
                .map_err(|e| io_error("create", &self.layout.sites_root, e))?;
            let not_below = || {
                Error::Conflict(format!(
                    "{} is not directly under {}",
                    home.display(),
                    self.layout.sites_root.display()
                ))
            };
            let name = home
                .strip_prefix(&self.layout.sites_root)
                .map_err(|_| not_below())?;
            let root = SiteDir::anchor(&self.layout.sites_root)?;
            let Some(home_dir) = root.open(name)? else {
                return self.build_home(&paths.name, home, document_root, owner, home_access);
            };
            // An existing home is corrected only on a node that keeps sites apart.
            if web_gid.is_some() && home_dir.access()? != home_access {
                home_dir.set_access(home_access)?;
            }
            fill(&home_dir, document_root, owner)
        }

        async fn remove(&self, site: &Website) -> Result<()> {
            let sites_root = self.layout.sites_root.clone();
            let home = self.layout.site(site).home;
            let name = match home.strip_prefix(&sites_root) {
                Ok(name) if home.parent() == Some(sites_root.as_path()) => name.to_path_buf(),
                _ => {
                    return Err(Error::Conflict(format!(
                        "{} is not directly under {}",
                        home.display(),
                        sites_root.display()
                    )));
                }
            };
            tokio::task::spawn_blocking(move || remove_home(&sites_root, &name))
                .await
                .map_err(|e| Error::backend("site-files", e))?
        }

        async fn disk_usage(&self, site: &Website) -> Result<u64> {
            let sites_root = self.layout.sites_root.clone();
            let home = self.layout.site(site).home;
            tokio::task::spawn_blocking(move || {
                let Ok(name) = home.strip_prefix(&sites_root) else {
                    return Ok(0);
                };
                let Some(home) = SiteDir::anchor(&sites_root)?.open(name)? else {
                    return Ok(0);
                };
                let mut total = 0u64;
                home.walk(
                    |_| Ok(()),
                    |stat| {
                        let bytes = u64::try_from(stat.st_blocks)
                            .unwrap_or(0)
                            .saturating_mul(512);
                        total = total.saturating_add(bytes);
                    },
                )?;
                Ok(total)
            })
            .await
            .map_err(|e| Error::backend("site-files", e))?
        }
    }

    /// Deletes the home `name` of the sites root so that its account cannot outrun the
    /// removal: the home is first renamed to `.NAME.removing` (out of the site's path, where
    /// nothing serves or reaches it; one an interrupted removal left is finished first), then
    /// locked (every directory in it root's own `0700`, by descriptor), then deleted with
    /// `remove_dir_all`, which never follows a symlink.
    fn remove_home(sites_root: &Path, name: &Path) -> Result<()> {
        let mut aside = std::ffi::OsString::from(".");
        aside.push(name.as_os_str());
        aside.push(".removing");
        let aside = Path::new(&aside);
        delete_locked(sites_root, aside)?;
        let (from, to) = (sites_root.join(name), sites_root.join(aside));
        match std::fs::rename(&from, &to) {
            Ok(()) => delete_locked(sites_root, aside),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("move aside", &from, e)),
        }
    }

    /// Locks and deletes `name` of the sites root, if it is there; a symlink or file there is
    /// removed itself.
    fn delete_locked(sites_root: &Path, name: &Path) -> Result<()> {
        let path = sites_root.join(name);
        match SiteDir::anchor(sites_root)?.open(name) {
            Ok(Some(dir)) => dir.lock_tree()?,
            Ok(None) => return Ok(()),
            Err(Error::Conflict(_)) => {
                return std::fs::remove_file(&path).map_err(|e| io_error("remove", &path, e));
            }
            Err(e) => return Err(e),
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &path, e)),
        }
    }
}
