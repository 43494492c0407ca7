//! Privileged work below a directory a tenant can write, by descriptor and never by path.
//!
//! A site's account can swap any entry of its home for a symlink at any moment, so a path
//! below the home means nothing to root: between a check and a `chown(path)` it may lead to
//! `/etc/shadow`. [`SiteDir`] is an open directory reached from a root-owned anchor one
//! component at a time with `O_NOFOLLOW | O_DIRECTORY`; a directory is created with `mkdirat`
//! in the one already opened, then opened the same way and given its owner and mode with
//! `fchown`/`fchmod` on that descriptor. Whatever the account swaps in, root acts on the
//! directory it opened or refuses.

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Owner, group and permission bits of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Owner's uid.
    pub uid: u32,
    /// Group's gid.
    pub gid: u32,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
}

/// An open directory reached without following a symlink below its anchor. Every operation
/// acts on this descriptor or on a single name inside it.
#[derive(Debug)]
pub struct SiteDir {
    fd: OwnedFd,
    /// For messages only: never opened again.
    path: PathBuf,
}

/// How a directory below the anchor is opened: a symlink fails (`ELOOP`), anything but a
/// directory fails (`ENOTDIR`) before a FIFO could block the open.
fn flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn failed(what: &str, path: &Path, e: Errno) -> Error {
    match e {
        Errno::LOOP | Errno::NOTDIR => Error::Conflict(format!(
            "{} is not a directory (a symlink or another file): refused, never followed",
            path.display()
        )),
        _ => Error::backend(
            "site-files",
            format!(
                "cannot {what} {}: {}",
                path.display(),
                std::io::Error::from(e)
            ),
        ),
    }
}

/// `name` as one plain component: no `/`, `.`, `..` or empty name can walk elsewhere.
fn single(name: &Path) -> Result<&Path> {
    let mut parts = name.components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(part)), None) => Ok(Path::new(part)),
        _ => Err(Error::Conflict(format!(
            "{} is not a single directory name",
            name.display()
        ))),
    }
}

impl SiteDir {
    /// Opens `path` itself, by path: only for a root-owned anchor no tenant can write on the
    /// way to (the sites root, a staging directory in it).
    pub fn anchor(path: &Path) -> Result<Self> {
        let fd =
            rustix::fs::open(path, flags(), Mode::empty()).map_err(|e| failed("open", path, e))?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Where this directory was when it was opened, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `relative` below this directory one component at a time, following no symlink;
    /// `None` when a component does not exist.
    pub fn open(&self, relative: &Path) -> Result<Option<Self>> {
        let mut path = self.path.clone();
        let mut fd = None::<OwnedFd>;
        for part in relative.components() {
            let Component::Normal(part) = part else {
                return Err(Error::Conflict(format!(
                    "{} must be a relative path without `..`",
                    relative.display()
                )));
            };
            path.push(part);
            let parent = fd.as_ref().unwrap_or(&self.fd);
            match rustix::fs::openat(parent, part, flags(), Mode::empty()) {
                Ok(next) => fd = Some(next),
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(failed("open", &path, e)),
            }
        }
        let fd = match fd {
            Some(fd) => fd,
            None => self.fd.try_clone().map_err(|e| {
                Error::backend("site-files", format!("cannot dup {}: {e}", path.display()))
            })?,
        };
        Ok(Some(Self { fd, path }))
    }

    /// The directory `name` in this one, created with `access` when missing (`true`), or
    /// opened as it is (`false`): what exists is not changed.
    ///
    /// The new directory is opened again without following a symlink and must be one this
    /// process owns, so a directory the account renamed in after `mkdirat` is refused rather
    /// than given away.
    pub fn ensure_dir(&self, name: &Path, access: Access) -> Result<(Self, bool)> {
        let name = single(name)?;
        let path = self.path.join(name);
        let created = match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            // The open parent itself was removed meanwhile.
            Err(Errno::NOENT) => {
                return Err(Error::Conflict(format!(
                    "{} was removed while {} was created in it: refused, never followed",
                    self.path.display(),
                    path.display()
                )));
            }
            Err(e) => return Err(failed("create", &path, e)),
        };
        let fd = match rustix::fs::openat(&self.fd, name, flags(), Mode::empty()) {
            Ok(fd) => fd,
            // Made (or seen) a moment ago and gone now: the account moved it away.
            Err(Errno::NOENT) => {
                return Err(Error::Conflict(format!(
                    "{} was moved away while it was created: refused, never followed",
                    path.display()
                )));
            }
            Err(e) => return Err(failed("open", &path, e)),
        };
        let dir = Self { fd, path };
        if created {
            let stat = rustix::fs::fstat(&dir.fd).map_err(|e| failed("check", &dir.path, e))?;
            if stat.st_uid != rustix::process::geteuid().as_raw() {
                return Err(Error::Conflict(format!(
                    "{} was replaced while it was created: refused, never followed",
                    dir.path.display()
                )));
            }
            dir.set_access(access)?;
        }
        Ok((dir, created))
    }

    /// The directory's owner, group and permission bits now.
    pub fn access(&self) -> Result<Access> {
        let stat = rustix::fs::fstat(&self.fd).map_err(|e| failed("check", &self.path, e))?;
        Ok(Access {
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: stat.st_mode & 0o7777,
        })
    }

    /// Gives this directory `access` through its descriptor (`fchown`, then `fchmod`, so the
    /// mode is exactly `access.mode`).
    pub fn set_access(&self, access: Access) -> Result<()> {
        std::os::unix::fs::fchown(&self.fd, Some(access.uid), Some(access.gid)).map_err(|e| {
            Error::backend(
                "site-files",
                format!("cannot chown {}: {e}", self.path.display()),
            )
        })?;
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(access.mode))
            .map_err(|e| failed("chmod", &self.path, e))
    }

    /// Walks this directory and every directory below it, parents before what they hold, by
    /// descriptor: `visit` runs on each directory before its entries are listed (so an owner
    /// or mode it sets holds before anything below is read), and `entry` gets every entry's
    /// `lstat` (a symlink is never followed). A directory is reached again from this one, one
    /// component at a time with no symlink followed, so the walk holds one descriptor per
    /// level; an entry the account swapped or removed meanwhile is skipped.
    pub fn walk(
        &self,
        mut visit: impl FnMut(&SiteDir) -> Result<()>,
        mut entry: impl FnMut(&rustix::fs::Stat),
    ) -> Result<()> {
        let mut pending = vec![PathBuf::new()];
        while let Some(relative) = pending.pop() {
            let dir = match self.open(&relative) {
                Ok(Some(dir)) => dir,
                Ok(None) | Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            };
            visit(&dir)?;
            let mut listing =
                rustix::fs::Dir::read_from(&dir.fd).map_err(|e| failed("list", &dir.path, e))?;
            while let Some(next) = listing.read() {
                let next = next.map_err(|e| failed("list", &dir.path, e))?;
                let name = Path::new(std::ffi::OsStr::from_bytes(next.file_name().to_bytes()));
                if name == Path::new(".") || name == Path::new("..") {
                    continue;
                }
                let stat = match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => stat,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(failed("check", &dir.path.join(name), e)),
                };
                entry(&stat);
                if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                    pending.push(relative.join(name));
                }
            }
        }
        Ok(())
    }

    /// Makes this directory and every one below it this process's own (root's), `0700`,
    /// parents first: once a directory is locked its account can add nothing to it, so what
    /// is listed after stays all there is (for a removal the account cannot outrun).
    pub fn lock_tree(&self) -> Result<()> {
        let mine = Access {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            mode: 0o700,
        };
        self.walk(|dir| dir.set_access(mine), |_| {})
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct Temp(PathBuf);

    impl Temp {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("hosting-core-beneath-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir(&path).expect("mkdir");
            Self(path)
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn me() -> (u32, u32) {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    }

    #[test]
    fn a_missing_directory_is_created_with_exactly_its_access_and_an_existing_one_kept() {
        let t = Temp::new("create");
        let (uid, gid) = me();
        let anchor = SiteDir::anchor(&t.0).expect("anchor");
        let want = Access {
            uid,
            gid,
            mode: 0o751,
        };
        let (dir, created) = anchor.ensure_dir(Path::new("a"), want).expect("create");
        assert!(created);
        assert_eq!(dir.access().expect("access"), want);
        let meta = std::fs::symlink_metadata(t.0.join("a")).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o751, "no umask applied");

        std::fs::set_permissions(t.0.join("a"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let (_, created) = anchor.ensure_dir(Path::new("a"), want).expect("again");
        assert!(!created);
        let meta = std::fs::symlink_metadata(t.0.join("a")).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o700, "what exists is untouched");
    }

    #[test]
    fn a_symlinked_component_is_refused_and_its_target_untouched() {
        let t = Temp::new("symlink");
        let (uid, gid) = me();
        let target = t.0.join("target");
        std::fs::create_dir(&target).expect("mkdir");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::create_dir(t.0.join("home")).expect("mkdir");
        std::os::unix::fs::symlink(&target, t.0.join("home/link")).expect("symlink");
        let anchor = SiteDir::anchor(&t.0).expect("anchor");
        let want = Access {
            uid,
            gid,
            mode: 0o777,
        };

        let walked = anchor.open(Path::new("home/link/inner"));
        assert!(matches!(walked, Err(Error::Conflict(_))), "{walked:?}");
        let home = anchor.open(Path::new("home")).expect("open").expect("home");
        let ensured = home.ensure_dir(Path::new("link"), want);
        assert!(matches!(ensured, Err(Error::Conflict(_))), "{ensured:?}");
        assert_eq!(
            std::fs::symlink_metadata(&target).expect("stat").mode() & 0o7777,
            0o700
        );
        assert_eq!(std::fs::read_dir(&target).expect("read").count(), 0);
    }

    #[test]
    fn a_file_where_a_directory_belongs_is_refused() {
        let t = Temp::new("file");
        let (uid, gid) = me();
        std::fs::write(t.0.join("f"), "x").expect("write");
        let anchor = SiteDir::anchor(&t.0).expect("anchor");
        let want = Access {
            uid,
            gid,
            mode: 0o755,
        };
        let ensured = anchor.ensure_dir(Path::new("f"), want);
        assert!(matches!(ensured, Err(Error::Conflict(_))), "{ensured:?}");
        let opened = anchor.open(Path::new("f"));
        assert!(matches!(opened, Err(Error::Conflict(_))), "{opened:?}");
    }

    #[test]
    fn names_that_walk_elsewhere_are_refused() {
        let t = Temp::new("names");
        let (uid, gid) = me();
        let anchor = SiteDir::anchor(&t.0).expect("anchor");
        let want = Access {
            uid,
            gid,
            mode: 0o755,
        };
        for name in ["..", "a/b", "/etc", ""] {
            let ensured = anchor.ensure_dir(Path::new(name), want);
            assert!(
                matches!(ensured, Err(Error::Conflict(_))),
                "{name}: {ensured:?}"
            );
        }
        let opened = anchor.open(Path::new("../x"));
        assert!(matches!(opened, Err(Error::Conflict(_))), "{opened:?}");
        assert!(anchor.open(Path::new("missing")).expect("open").is_none());
    }

    #[test]
    fn owner_and_mode_change_on_the_descriptor() {
        let t = Temp::new("chown");
        let (uid, gid) = me();
        let anchor = SiteDir::anchor(&t.0).expect("anchor");
        let (dir, _) = anchor
            .ensure_dir(
                Path::new("d"),
                Access {
                    uid,
                    gid,
                    mode: 0o700,
                },
            )
            .expect("create");
        // Renamed away and replaced by a symlink: the handle still names the directory.
        std::fs::rename(t.0.join("d"), t.0.join("moved")).expect("rename");
        std::os::unix::fs::symlink("/", t.0.join("d")).expect("symlink");
        let other = if uid == 0 { 65534 } else { gid };
        dir.set_access(Access {
            uid,
            gid: other,
            mode: 0o750,
        })
        .expect("set");
        let moved = std::fs::symlink_metadata(t.0.join("moved")).expect("stat");
        assert_eq!((moved.gid(), moved.mode() & 0o7777), (other, 0o750));
        let root = std::fs::metadata("/").expect("stat /");
        assert_ne!(
            root.mode() & 0o7777,
            0o750,
            "the symlink's target is untouched"
        );
    }

    #[test]
    fn a_walk_lists_every_entry_and_never_follows_a_symlink() {
        let t = Temp::new("walk");
        let outside = t.0.join("outside");
        std::fs::create_dir_all(outside.join("deep")).expect("mkdir");
        std::fs::write(outside.join("deep/secret"), b"x").expect("write");
        std::fs::create_dir_all(t.0.join("home/a/b")).expect("mkdir");
        std::fs::write(t.0.join("home/a/b/page"), b"x").expect("write");
        std::os::unix::fs::symlink(&outside, t.0.join("home/a/link")).expect("symlink");
        let home = SiteDir::anchor(&t.0.join("home")).expect("anchor");
        let (mut dirs, mut entries) = (Vec::new(), 0);
        home.walk(
            |dir| {
                dirs.push(dir.path().to_path_buf());
                Ok(())
            },
            |_| entries += 1,
        )
        .expect("walk");
        dirs.sort();
        assert_eq!(
            dirs,
            [t.0.join("home"), t.0.join("home/a"), t.0.join("home/a/b")]
        );
        assert_eq!(entries, 4, "a, b, page and the link itself");
    }

    #[test]
    fn a_locked_tree_is_this_processs_own_and_closed_and_its_links_untouched() {
        let t = Temp::new("lock");
        let outside = t.0.join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir_all(t.0.join("home/a/b")).expect("mkdir");
        std::os::unix::fs::symlink(&outside, t.0.join("home/a/link")).expect("symlink");
        SiteDir::anchor(&t.0.join("home"))
            .expect("anchor")
            .lock_tree()
            .expect("lock");
        for dir in ["home", "home/a", "home/a/b"] {
            let meta = std::fs::symlink_metadata(t.0.join(dir)).expect("stat");
            assert_eq!(meta.mode() & 0o7777, 0o700, "{dir}");
            assert_eq!((meta.uid(), meta.gid()), me(), "{dir}");
        }
        let meta = std::fs::symlink_metadata(&outside).expect("stat");
        assert_eq!(
            meta.mode() & 0o7777,
            0o755,
            "the link's target is untouched"
        );
    }
}
