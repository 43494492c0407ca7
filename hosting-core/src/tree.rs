//! A generated configuration tree that is replaced atomically, shared by the web-server and PHP
//! backends (feature `system`).
//!
//! Layout under the managed root:
//! ```text
//! ROOT/generations/<n>/...   one complete tree per apply; never modified after staging
//! ROOT/live -> generations/<n>   the symlink the server's main config includes
//! ```
//! An apply stages a whole new generation beside the live one, flushes it to disk once
//! (`sync -f`, through the process seam), and swaps the `live` symlink with a rename, which is
//! atomic. Rolling back points `live` at the previous generation again, so the previous files
//! are restored byte for byte: they were never touched. Interrupted applies leave at most an
//! unused generation directory behind, which the next apply ignores and pruning removes.
//!
//! When the server is the distro's service, the distro's configuration includes `live` through
//! one file the backend owns there; [`replace_file`] writes it only when its content differs
//! and says how to put it back.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::system::{Command, CommandRunner};
use crate::types::ConfinedPath;
use crate::web::RenderedFile;

/// The managed root of one backend.
#[derive(Debug, Clone)]
pub struct ManagedTree {
    root: PathBuf,
    runner: Arc<dyn CommandRunner>,
}

/// A generation written to disk but not yet live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The new generation's directory.
    pub dir: PathBuf,
    /// The generation that was live when staging started (`None` on the first apply).
    pub previous: Option<PathBuf>,
}

fn io_error(what: &str, path: &Path, e: io::Error) -> Error {
    Error::backend("managed-tree", format!("{what} {}: {e}", path.display()))
}

impl ManagedTree {
    /// A tree rooted at `root` (created on first stage).
    pub fn new(root: impl Into<PathBuf>, runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            root: root.into(),
            runner,
        }
    }

    /// The `live` symlink: what the server's main configuration includes.
    pub fn live(&self) -> PathBuf {
        self.root.join("live")
    }

    fn generations(&self) -> PathBuf {
        self.root.join("generations")
    }

    /// The generation `live` points at, if any.
    pub fn current(&self) -> Result<Option<PathBuf>> {
        match std::fs::read_link(self.live()) {
            Ok(target) => Ok(Some(self.root.join(target))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &self.live(), e)),
        }
    }

    /// Every file of the live generation with its contents (for drift checks).
    pub fn read_live(&self) -> Result<BTreeMap<ConfinedPath, String>> {
        let mut files = BTreeMap::new();
        if let Some(dir) = self.current()? {
            collect(&dir, &dir, &mut files)?;
        }
        Ok(files)
    }

    /// Writes `files` as a new generation and flushes it to disk. Nothing live changes.
    pub async fn stage(&self, files: &[RenderedFile]) -> Result<Staged> {
        self.stage_with(|_| Ok(files.to_vec())).await
    }

    /// Like [`ManagedTree::stage`], for trees whose files name their own directory (a master
    /// config that includes its generation's pool directory): `render` gets the new
    /// generation's path. When `render` fails, the new directory is removed.
    pub async fn stage_with(
        &self,
        render: impl FnOnce(&Path) -> Result<Vec<RenderedFile>>,
    ) -> Result<Staged> {
        let previous = self.current()?;
        let generations = self.generations();
        #[allow(
            clippy::disallowed_methods,
            reason = "a managed tree is root's own, outside every site's home"
        )]
        std::fs::create_dir_all(&generations)
            .map_err(|e| io_error("cannot create", &generations, e))?;
        let dir = next_generation(&generations)?;
        #[allow(clippy::disallowed_methods, reason = "in root's own managed tree")]
        std::fs::create_dir(&dir).map_err(|e| io_error("cannot create", &dir, e))?;
        let files = match render(&dir) {
            Ok(files) => files,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        for file in &files {
            let path = file.path.under(&dir);
            if let Some(parent) = path.parent() {
                #[allow(clippy::disallowed_methods, reason = "in root's own managed tree")]
                std::fs::create_dir_all(parent)
                    .map_err(|e| io_error("cannot create", parent, e))?;
            }
            std::fs::write(&path, &file.contents)
                .map_err(|e| io_error("cannot write", &path, e))?;
        }
        let sync = self
            .runner
            .run(&Command::new("sync").arg("-f").arg(dir.as_os_str()))
            .await?;
        if !sync.success() {
            return Err(Error::backend(
                "managed-tree",
                format!("sync -f {} failed: {}", dir.display(), sync.stderr.trim()),
            ));
        }
        Ok(Staged { dir, previous })
    }

    /// Makes `staged` live with one atomic rename of the `live` symlink.
    pub fn activate(&self, staged: &Staged) -> Result<()> {
        self.point_live_at(Some(&staged.dir))
    }

    /// Points `live` back at what was live before `staged` (or removes it on a first apply),
    /// then deletes the staged generation.
    pub fn roll_back(&self, staged: &Staged) -> Result<()> {
        self.point_live_at(staged.previous.as_deref())?;
        self.discard(staged)
    }

    /// Deletes a staged generation that never went live.
    pub fn discard(&self, staged: &Staged) -> Result<()> {
        if self.current()?.as_deref() == Some(staged.dir.as_path()) {
            return Err(Error::Conflict(format!(
                "{} is live and cannot be discarded",
                staged.dir.display()
            )));
        }
        match std::fs::remove_dir_all(&staged.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove", &staged.dir, e)),
        }
    }

    /// Takes the tree out of service: removes `live` and returns the generation it pointed at
    /// (kept on disk, so [`ManagedTree::reactivate`] can undo this).
    pub fn deactivate(&self) -> Result<Option<PathBuf>> {
        let current = self.current()?;
        self.point_live_at(None)?;
        Ok(current)
    }

    /// Points `live` at an existing generation again.
    pub fn reactivate(&self, generation: &Path) -> Result<()> {
        self.point_live_at(Some(generation))
    }

    /// Removes every generation except the live one and the `keep` newest others.
    pub fn prune(&self, keep: usize) -> Result<()> {
        let current = self.current()?;
        let mut old: Vec<(u64, PathBuf)> = generation_dirs(&self.generations())?
            .into_iter()
            .filter(|(_, dir)| Some(dir) != current.as_ref())
            .collect();
        old.sort();
        let excess = old.len().saturating_sub(keep);
        for (_, dir) in old.into_iter().take(excess) {
            std::fs::remove_dir_all(&dir).map_err(|e| io_error("cannot remove", &dir, e))?;
        }
        Ok(())
    }

    fn point_live_at(&self, target: Option<&Path>) -> Result<()> {
        let live = self.live();
        let Some(target) = target else {
            return match std::fs::remove_file(&live) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("cannot remove", &live, e)),
            };
        };
        let relative = target.strip_prefix(&self.root).map_err(|_| {
            Error::backend(
                "managed-tree",
                format!("{} is outside {}", target.display(), self.root.display()),
            )
        })?;
        let temp = self.root.join("live.next");
        match std::fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("cannot remove", &temp, e)),
        }
        std::os::unix::fs::symlink(relative, &temp)
            .map_err(|e| io_error("cannot create symlink", &temp, e))?;
        std::fs::rename(&temp, &live).map_err(|e| io_error("cannot swap", &live, e))
    }
}

/// What a file held before [`replace_file`] changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a failed apply puts the file back with `restore`"]
pub enum FileUndo {
    /// It already held what was asked: nothing was written.
    Unchanged,
    /// It did not exist.
    Absent,
    /// It held these bytes.
    Held(Vec<u8>),
}

impl FileUndo {
    /// Puts `path` back as [`replace_file`] found it.
    pub fn restore(&self, path: &Path) -> Result<()> {
        let done = match self {
            FileUndo::Unchanged => Ok(()),
            FileUndo::Absent => match std::fs::remove_file(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            FileUndo::Held(bytes) => write_replacing(path, bytes),
        };
        done.map_err(|e| io_error("cannot put back", path, e))
    }
}

/// Makes `path` hold `contents` (`None`: not exist), unless it already does; a new content is
/// written to a dot-file beside it and renamed over it, so a reader (a server's `*.conf` glob)
/// never sees half a file. Returns what it held before.
pub fn replace_file(path: &Path, contents: Option<&str>) -> Result<FileUndo> {
    let undo = match std::fs::read(path) {
        Ok(found) if Some(found.as_slice()) == contents.map(str::as_bytes) => {
            return Ok(FileUndo::Unchanged);
        }
        Ok(found) => FileUndo::Held(found),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if contents.is_none() {
                return Ok(FileUndo::Unchanged);
            }
            FileUndo::Absent
        }
        Err(e) => return Err(io_error("cannot read", path, e)),
    };
    let written = match contents {
        Some(contents) => write_replacing(path, contents.as_bytes()),
        None => std::fs::remove_file(path),
    };
    written.map_err(|e| io_error("cannot replace", path, e))?;
    Ok(undo)
}

fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".hosting-tmp");
    let temp = path.with_file_name(temp_name);
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

fn generation_dirs(generations: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(generations) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot list", generations, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list", generations, e))?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        {
            dirs.push((n, entry.path()));
        }
    }
    Ok(dirs)
}

/// One past the highest existing generation, so a leftover from an interrupted apply is never
/// reused.
fn next_generation(generations: &Path) -> Result<PathBuf> {
    let next = generation_dirs(generations)?
        .iter()
        .map(|(n, _)| n + 1)
        .max()
        .unwrap_or(1);
    Ok(generations.join(next.to_string()))
}

fn collect(base: &Path, dir: &Path, out: &mut BTreeMap<ConfinedPath, String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list", dir, e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| io_error("cannot stat", &path, e))?;
        if kind.is_dir() {
            collect(base, &path, out)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(base)
                .ok()
                .and_then(|p| p.to_str())
                .and_then(|p| p.parse::<ConfinedPath>().ok())
                .ok_or_else(|| {
                    Error::backend(
                        "managed-tree",
                        format!("unexpected file name {}", path.display()),
                    )
                })?;
            let contents =
                std::fs::read_to_string(&path).map_err(|e| io_error("cannot read", &path, e))?;
            out.insert(relative, contents);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::SystemRunner;

    fn temp_root() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("hosting-tree-{}-{n}", std::process::id()))
    }

    fn file(path: &str, contents: &str) -> RenderedFile {
        RenderedFile {
            path: path.parse().expect("path"),
            contents: contents.to_owned(),
        }
    }

    #[tokio::test]
    async fn stage_activate_and_roll_back_restore_the_previous_tree_exactly() {
        let root = temp_root();
        let tree = ManagedTree::new(&root, Arc::new(SystemRunner));
        assert_eq!(tree.current().expect("current"), None);

        let first = tree
            .stage(&[
                file("sites/site1.conf", "one\n"),
                file("sites/site2.conf", "two\n"),
            ])
            .await
            .expect("stage");
        assert_eq!(
            tree.read_live().expect("live"),
            BTreeMap::new(),
            "staging changes nothing"
        );
        tree.activate(&first).expect("activate");
        let before = tree.read_live().expect("live");
        assert_eq!(before.len(), 2);
        let live_file = tree.live().join("sites/site1.conf");
        let bytes_before = std::fs::read(&live_file).expect("read");

        let second = tree
            .stage(&[file("sites/site1.conf", "changed\n")])
            .await
            .expect("stage");
        assert_eq!(second.previous.as_deref(), Some(first.dir.as_path()));
        tree.activate(&second).expect("activate");
        assert_eq!(
            std::fs::read_to_string(&live_file).expect("read"),
            "changed\n"
        );

        tree.roll_back(&second).expect("roll back");
        assert_eq!(tree.read_live().expect("live"), before);
        assert_eq!(std::fs::read(&live_file).expect("read"), bytes_before);
        assert!(!second.dir.exists(), "the failed generation is gone");

        tree.prune(0).expect("prune");
        assert_eq!(
            tree.current().expect("current").as_deref(),
            Some(first.dir.as_path())
        );
        std::fs::remove_dir_all(root).expect("cleanup");
    }

    #[tokio::test]
    async fn a_leftover_generation_is_never_reused_and_the_live_one_cannot_be_discarded() {
        let root = temp_root();
        let tree = ManagedTree::new(&root, Arc::new(SystemRunner));
        let live = tree.stage(&[file("a.conf", "a\n")]).await.expect("stage");
        tree.activate(&live).expect("activate");
        let interrupted = tree
            .stage(&[file("a.conf", "half\n")])
            .await
            .expect("stage");
        let next = tree.stage(&[file("a.conf", "b\n")]).await.expect("stage");
        assert_ne!(next.dir, interrupted.dir);
        assert!(matches!(tree.discard(&live), Err(Error::Conflict(_))));
        tree.roll_back(&next)
            .expect("rolling back keeps the live generation");
        assert_eq!(
            tree.current().expect("current").as_deref(),
            Some(live.dir.as_path())
        );
        std::fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn a_replaced_file_is_written_only_when_it_differs_and_put_back_exactly() {
        let root = temp_root();
        std::fs::create_dir_all(&root).expect("mkdir");
        let path = root.join("hosting.conf");
        let first = replace_file(&path, Some("one\n")).expect("write");
        assert_eq!(first, FileUndo::Absent);
        assert_eq!(
            replace_file(&path, Some("one\n")).expect("same"),
            FileUndo::Unchanged
        );
        let second = replace_file(&path, Some("two\n")).expect("rewrite");
        assert_eq!(second, FileUndo::Held(b"one\n".to_vec()));
        let removed = replace_file(&path, None).expect("remove");
        assert!(!path.exists());
        assert_eq!(
            replace_file(&path, None).expect("gone"),
            FileUndo::Unchanged
        );
        removed.restore(&path).expect("undo remove");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two\n");
        second.restore(&path).expect("undo rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\n");
        first.restore(&path).expect("undo create");
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(&root).expect("list").count(),
            0,
            "no temporary file is left"
        );
        std::fs::remove_dir_all(root).expect("cleanup");
    }
}
