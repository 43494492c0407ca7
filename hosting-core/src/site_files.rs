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
/// - `prepare` creates what is missing, owned by the site's `system_user`, and never touches
///   what exists; it creates nothing inside a symlink; a missing account is
///   [`Error::Invalid`](crate::Error::Invalid) naming `system_user`.
/// - `remove` deletes the site's home and everything in it, and nothing outside it.
#[async_trait]
pub trait SiteFiles: Debug + Send + Sync {
    /// Makes sure `site`'s directories exist.
    async fn prepare(&self, site: &Website) -> Result<()>;
    /// Deletes `site`'s home.
    async fn remove(&self, site: &Website) -> Result<()>;
}

#[cfg(feature = "system")]
pub use local::LocalSiteFiles;

#[cfg(feature = "system")]
mod local {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::SiteFiles;
    use crate::error::{Error, Result};
    use crate::layout::HostLayout;
    use crate::model::Website;
    use crate::system::{Command, CommandRunner};

    /// [`SiteFiles`] on this machine, under a [`HostLayout`]. Accounts are looked up with
    /// `getent passwd` through the process seam.
    #[derive(Debug, Clone)]
    pub struct LocalSiteFiles {
        layout: HostLayout,
        runner: Arc<dyn CommandRunner>,
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

    impl LocalSiteFiles {
        /// Site directories under `layout.sites_root`.
        pub fn new(layout: HostLayout, runner: Arc<dyn CommandRunner>) -> Self {
            Self { layout, runner }
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
    }

    #[async_trait]
    impl SiteFiles for LocalSiteFiles {
        async fn prepare(&self, site: &Website) -> Result<()> {
            let owner = self.owner(site).await?;
            let paths = self.layout.site(site);
            let home = &paths.home;
            let mut dirs: Vec<(PathBuf, u32)> = vec![(home.clone(), 0o711)];
            let mut dir = home.clone();
            if let Ok(relative) = paths.document_root.strip_prefix(home) {
                for part in relative.components() {
                    dir.push(part);
                    dirs.push((dir.clone(), 0o755));
                }
            }
            dirs.push((paths.tmp_dir, 0o700));
            dirs.push((paths.session_dir, 0o700));
            std::fs::create_dir_all(&self.layout.sites_root)
                .map_err(|e| io_error("create", &self.layout.sites_root, e))?;
            for (dir, mode) in dirs {
                match std::fs::symlink_metadata(&dir) {
                    Ok(meta) if meta.is_dir() => continue,
                    Ok(_) => {
                        return Err(Error::Conflict(format!(
                            "site {}: {} exists and is not a directory",
                            site.id,
                            dir.display()
                        )));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("check", &dir, e)),
                }
                // `create_dir` (not `_all`) with every parent checked above as a real
                // directory: nothing is created through a symlink planted in the tree.
                std::fs::create_dir(&dir).map_err(|e| io_error("create", &dir, e))?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io_error("chmod", &dir, e))?;
                std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
                    .map_err(|e| io_error("chown", &dir, e))?;
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
    }
}
