//! Servers a node runs itself (supervised, not by the distro's init), found through their pid
//! files and stopped on request: by `hostctl node stop` and `hosting-panel node stop`, so a
//! node's nginx and PHP-FPM, which outlive the program that started them, can be stopped.
//!
//! A pid file is trusted only when the process it names was started with a path under the
//! node's root on its command line, so a pid reused by another program is never signalled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::system::{Command, CommandRunner};

/// How a server is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGQUIT: nginx's and PHP-FPM's graceful stop.
    Quit,
    /// SIGTERM: Apache's stop.
    Term,
}

impl StopSignal {
    fn kill_arg(self) -> &'static str {
        match self {
            Self::Quit => "-QUIT",
            Self::Term => "-TERM",
        }
    }
}

/// A server the node may have started, named by its master's pid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisedServer {
    /// `nginx`, `apache` or `php-fpm 8.2`, for reports.
    pub name: String,
    /// Its master's pid file.
    pub pid_file: PathBuf,
    /// How it stops gracefully.
    pub stop_signal: StopSignal,
}

/// A server [`stop_servers`] stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// `nginx`, `apache` or `php-fpm 8.2`.
    pub server: String,
    /// Its master's pid.
    pub pid: u32,
    /// Whether it had to be killed after not stopping gracefully.
    pub forced: bool,
}

/// A pid file [`stop_servers`] left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The pid file.
    pub pid_file: PathBuf,
    /// The pid it names.
    pub pid: u32,
    /// Why it was left alone.
    pub reason: String,
}

/// The pid in `pid_file` when it names a live (not zombie) process.
pub fn running(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The command name may hold spaces; the fields after its closing paren do not.
        !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X") | None
        )
    })
}

/// The pids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = parent.to_string();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    == Some(parent.as_str())
            })
        })
        .collect()
}

/// Whether the command line of `pid` mentions a path under `root`: the supervised servers are
/// all given one, so a reused pid is never taken for them.
fn started_under(pid: u32, root: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
    root.to_str()
        .is_some_and(|root| cmdline.contains(&format!("{}/", root.trim_end_matches('/'))))
}

async fn wait_gone(pids: &[u32], wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if !pids.iter().any(|p| alive(*p)) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stops each of `servers` that is running and was started under `root`, in order, gracefully,
/// and waits until it and its workers are gone; one still there after `grace` is killed (and
/// its pid file removed, so a reused pid is not mistaken for it later). Servers that are not
/// running are passed over; those started elsewhere are left alone and reported.
pub async fn stop_servers(
    root: &Path,
    servers: &[SupervisedServer],
    runner: &dyn CommandRunner,
    grace: Duration,
) -> Result<(Vec<Stopped>, Vec<Skipped>)> {
    let mut stopped = Vec::new();
    let mut skipped = Vec::new();
    for server in servers {
        let Some(pid) = running(&server.pid_file) else {
            continue;
        };
        if !started_under(pid, root) {
            skipped.push(Skipped {
                pid_file: server.pid_file.clone(),
                pid,
                reason: format!(
                    "process {pid} was not started under {}; left alone",
                    root.display()
                ),
            });
            continue;
        }
        let mut pids = children_of(pid);
        pids.push(pid);
        runner
            .run(
                &Command::new("kill")
                    .arg(server.stop_signal.kill_arg())
                    .arg(pid.to_string()),
            )
            .await?;
        let mut forced = false;
        if !wait_gone(&pids, grace).await {
            forced = true;
            for p in pids.iter().filter(|p| alive(**p)) {
                // A worker may exit between the look and the signal; the wait below decides.
                let _ = runner
                    .run(&Command::new("kill").arg("-KILL").arg(p.to_string()))
                    .await;
            }
            if !wait_gone(&pids, Duration::from_secs(5)).await {
                return Err(Error::backend(
                    "process",
                    format!(
                        "{} (pid {pid}) did not stop, even after SIGKILL",
                        server.name
                    ),
                ));
            }
            let _ = std::fs::remove_file(&server.pid_file);
        }
        stopped.push(Stopped {
            server: server.name.clone(),
            pid,
            forced,
        });
    }
    Ok((stopped, skipped))
}

/// The PHP-FPM masters' pid files in `run_dir` (`phpX.Y-fpm.pid`, as the PHP backend names
/// them), sorted by version.
pub fn php_fpm_servers(run_dir: &Path) -> Vec<SupervisedServer> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(crate::types::PhpVersion, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let version = name.strip_prefix("php")?.strip_suffix("-fpm.pid")?;
            Some((version.parse().ok()?, path.clone()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(version, pid_file)| SupervisedServer {
            name: format!("php-fpm {}", version.as_str()),
            pid_file,
            stop_signal: StopSignal::Quit,
        })
        .collect()
}
