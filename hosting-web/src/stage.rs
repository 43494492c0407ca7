//! Writing a staged tree and running a server's own configuration test on it.

use std::path::Path;

use hosting_core::web::RenderedFile;
use hosting_core::{Command, CommandRunner, Error, Result};

/// Writes `files` under `root`, after creating `dirs` (relative to `root`) for the paths the
/// server itself writes. `root` must be new or empty, so nothing left over from an earlier
/// tree is validated with the new one.
pub(crate) fn write_tree(
    backend: &'static str,
    root: &Path,
    dirs: &[&str],
    files: &[RenderedFile],
) -> Result<()> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Error::backend(backend, format!("cannot {what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(root).map_err(|e| io("create", root, e))?;
    let mut entries = std::fs::read_dir(root).map_err(|e| io("read", root, e))?;
    if entries.next().is_some() {
        return Err(Error::Conflict(format!(
            "the staged root {} is not empty; stage into a new directory",
            root.display()
        )));
    }
    for dir in dirs {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
    }
    for file in files {
        let path = file.path.under(root);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        std::fs::write(&path, &file.contents).map_err(|e| io("write", &path, e))?;
    }
    Ok(())
}

/// Whether this process runs as root, read from `/proc/self/status` (effective uid). Servers
/// started by root drop their workers to `www-data`; started by anyone else they cannot.
pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Runs a configuration test; a non-zero exit is an [`Error::Validation`] carrying everything
/// the tool printed.
pub(crate) async fn run_check(
    runner: &dyn CommandRunner,
    tool: String,
    command: &Command,
) -> Result<()> {
    let output = runner.run(command).await?;
    if output.success() {
        return Ok(());
    }
    let printed = [output.stderr.trim(), output.stdout.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Err(Error::Validation {
        tool,
        output: match output.code {
            Some(code) => format!("exit code {code}: {printed}"),
            None => format!("killed by a signal: {printed}"),
        },
    })
}

/// A [`RenderedFile`] at `path`, which the caller builds from fixed names and the site's
/// `site<ID>` name only.
pub(crate) fn rendered(path: &str, contents: String) -> Result<RenderedFile> {
    Ok(RenderedFile {
        path: path.parse()?,
        contents,
    })
}
