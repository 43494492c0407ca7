//! Servers a node runs itself (supervised, not by the distro's init), found through their pid
//! files and stopped on request: by `hostctl node stop` and `hosting-panel node stop`, so a
//! node's nginx and PHP-FPM, which outlive the program that started them, can be stopped.
//!
//! A pid file is believed only when the process it names is the server ([`inspect`] with an
//! [`Identity`]): its executable (`/proc/PID/exe`) is the server's binary and its command line
//! names the server's root or configuration. After a power loss or a `SIGKILL` the pid files
//! stay on disk and their pids may since belong to anything; a signal to such a process is
//! harm, so `kill -0` (which only says that *some* process has the pid) never decides.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
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

/// What a server's master process is, so that a pid file is believed only when it names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The server's binary, by path or by a name looked up in `PATH`: `/proc/PID/exe` must be
    /// this file (also when it was replaced on disk since, which the kernel shows as
    /// `PATH (deleted)`).
    pub executable: PathBuf,
    /// A path the master's command line names, itself or a path below it: the root the server
    /// runs under or its configuration file. `None` for a distro's service, whose command line
    /// names nothing of the SDK's; the executable alone decides then.
    pub names: Option<PathBuf>,
}

impl Identity {
    /// The server run from `executable` whose command line names `path` (or a path below it).
    pub fn new(executable: impl Into<PathBuf>, path: impl Into<PathBuf>) -> Self {
        Self {
            executable: executable.into(),
            names: Some(path.into()),
        }
    }

    /// A distro's service run from `executable`.
    pub fn service(executable: impl Into<PathBuf>) -> Self {
        Self {
            executable: executable.into(),
            names: None,
        }
    }
}

/// What a pid file says about its server ([`inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidFile {
    /// There is no pid file (or it cannot be read).
    Absent,
    /// The pid file holds no pid.
    Garbage,
    /// The pid it names is not running (or is a zombie): the server died without removing it.
    Dead(u32),
    /// The pid runs, but is not the server: after a crash or a reboot the pid was reused.
    Other {
        /// The pid the file names.
        pid: u32,
        /// What differs, for the log.
        reason: String,
    },
    /// The server's master.
    Server(u32),
}

impl PidFile {
    /// The server's pid, when the file names it.
    pub fn server(&self) -> Option<u32> {
        match self {
            Self::Server(pid) => Some(*pid),
            _ => None,
        }
    }

    /// Whether the file exists but names no server: left behind by a server that died.
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Garbage | Self::Dead(_) | Self::Other { .. })
    }
}

/// Whether `pid_file` names the server `identity` describes: the one place that decides
/// whether a server runs, and so whether it may be signalled. Reads only the pid file and
/// `/proc`; never signals.
pub fn inspect(pid_file: &Path, identity: &Identity) -> PidFile {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return PidFile::Absent;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return PidFile::Garbage;
    };
    if pid == 0 || !alive(pid) {
        return PidFile::Dead(pid);
    }
    match is_server(pid, identity) {
        Ok(()) => PidFile::Server(pid),
        Err(reason) => PidFile::Other { pid, reason },
    }
}

/// The pid of the server `identity` describes, when `pid_file` names it ([`inspect`]).
pub fn server_pid(pid_file: &Path, identity: &Identity) -> Option<u32> {
    inspect(pid_file, identity).server()
}

/// [`inspect`], then removes the pid file when it is stale (a dead pid, a reused one,
/// garbage), so that nothing later takes it for the server. Returns what was found, for the
/// caller to report; [`PidFile::server`] is the running server's pid.
pub fn clear_stale(pid_file: &Path, identity: &Identity) -> Result<PidFile> {
    let found = inspect(pid_file, identity);
    if found.is_stale() {
        match std::fs::remove_file(pid_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::backend(
                    "process",
                    format!(
                        "cannot remove the stale pid file {}: {e}",
                        pid_file.display()
                    ),
                ));
            }
        }
    }
    Ok(found)
}

/// The pid in `pid_file` when it names a live process whose command line names `root` or a
/// path below it: a server started under a node's root, whatever its binary. What
/// [`stop_servers`] stops, for callers that know the root but not the server's binary.
pub fn started_under(pid_file: &Path, root: &Path) -> Option<u32> {
    running(pid_file).filter(|pid| names_path(*pid, root))
}

/// `executable` as the kernel names a running process's binary: a path as it is, a bare name
/// looked up in `PATH`, symlinks resolved.
pub fn resolve_executable(executable: &Path) -> Option<PathBuf> {
    if executable.components().count() > 1 || executable.is_absolute() {
        return std::fs::canonicalize(executable).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(executable))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::fs::canonicalize(found).ok())
}

/// The binary `pid` runs, without the ` (deleted)` the kernel adds once the file was replaced.
fn executable_of(pid: u32) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let bytes = link.as_os_str().as_bytes();
    let bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
    Some(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// Whether the live process `pid` is the server `identity` describes; why not otherwise.
fn is_server(pid: u32, identity: &Identity) -> std::result::Result<(), String> {
    let Some(wanted) = resolve_executable(&identity.executable) else {
        return Err(format!(
            "the server's binary {} cannot be found",
            identity.executable.display()
        ));
    };
    let Some(found) = executable_of(pid) else {
        return Err(format!("the executable of process {pid} cannot be read"));
    };
    if found != wanted {
        return Err(format!(
            "process {pid} runs {}, not {}",
            found.display(),
            wanted.display()
        ));
    }
    if let Some(path) = &identity.names
        && !names_path(pid, path)
    {
        return Err(format!(
            "the command line of process {pid} does not name {}",
            path.display()
        ));
    }
    Ok(())
}

/// Whether the command line of `pid` names `path` or a path below it, as one word (servers
/// rewrite their titles: `nginx: master process nginx -c ROOT/... -p ROOT/`,
/// `php-fpm: master process (CONFIG)`).
fn names_path(pid: u32, path: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let wanted = path.as_os_str().as_bytes();
    let wanted = match wanted {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        all => all,
    };
    raw.split(|b| matches!(b, 0 | b' ' | b'(' | b')' | b'='))
        .any(|word| {
            word == wanted
                || word
                    .strip_prefix(wanted)
                    .is_some_and(|rest| rest.starts_with(b"/"))
        })
}

/// The pid in `pid_file` when it names a live (not zombie) process, whatever that process is:
/// enough to wait for a process to go, never to decide that a server runs (see [`inspect`]).
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

/// The pids whose parent is `parent`: a master's workers.
pub fn children_of(parent: u32) -> Vec<u32> {
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
        if !names_path(pid, root) {
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

#[cfg(test)]
#[allow(clippy::expect_used, clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::process::{Child, Stdio};

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "hosting-process-{tag}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            let dir = PathBuf::from(
                dir.to_string_lossy()
                    .replace([' ', ':', '{', '}', ','], "_"),
            );
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A child that is killed and reaped when dropped.
    struct Running(Child);

    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn spawn(program: &Path, args: &[&OsStr]) -> Running {
        // A binary just copied may still be open for writing in a child another test thread
        // forks at that moment (ETXTBSY) until that child execs.
        let mut tries = 0;
        let child = loop {
            match std::process::Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => break child,
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("spawn {}: {e}", program.display()),
            }
        };
        // The child must have exec'd, and the kernel set up its arguments (the executable is
        // switched first), before its /proc entries say what it runs.
        let pid = child.id();
        let wanted = resolve_executable(program).expect("resolve");
        for _ in 0..200 {
            if executable_of(pid).is_some_and(|e| e == wanted)
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Running(child)
    }

    fn pid_file(dir: &Dir, pid: impl ToString) -> PathBuf {
        let file = dir.0.join("server.pid");
        std::fs::write(&file, format!("{}\n", pid.to_string())).expect("write pid file");
        file
    }

    #[test]
    fn a_process_running_the_binary_with_a_path_under_the_root_is_the_server() {
        let dir = Dir::new("ours");
        let root = dir.0.join("root");
        std::fs::create_dir_all(&root).expect("root");
        let config = root.join("server.conf");
        std::fs::write(&config, "").expect("config");
        let tail = spawn(Path::new("tail"), &[OsStr::new("-f"), config.as_os_str()]);
        let file = pid_file(&dir, tail.0.id());
        assert_eq!(
            inspect(&file, &Identity::new("tail", &root)),
            PidFile::Server(tail.0.id())
        );
        assert_eq!(
            server_pid(&file, &Identity::new("tail", &config)),
            Some(tail.0.id())
        );
        let tail_path = resolve_executable(Path::new("tail")).expect("tail");
        assert_eq!(
            server_pid(&file, &Identity::service(&tail_path)),
            Some(tail.0.id())
        );
        // A root that is only a prefix of the path's directory is not it.
        let mut sibling = root.clone().into_os_string();
        sibling.push("2");
        let prefix = PathBuf::from(
            root.to_str()
                .and_then(|r| r.strip_suffix('t'))
                .expect("the root ends in t"),
        );
        for other in [PathBuf::from(sibling), prefix] {
            assert!(
                matches!(
                    inspect(&file, &Identity::new("tail", &other)),
                    PidFile::Other { .. }
                ),
                "{}",
                other.display()
            );
        }
        assert_eq!(started_under(&file, &root), Some(tail.0.id()));
        assert_eq!(started_under(&file, &dir.0.join("elsewhere")), None);
        // Another binary with the same command line is not the server.
        assert!(matches!(
            inspect(&file, &Identity::new("sleep", &root)),
            PidFile::Other { .. }
        ));
    }

    #[test]
    fn a_reused_pid_is_refused_and_its_process_left_alone() {
        let dir = Dir::new("reused");
        let root = dir.0.join("root");
        // This test process itself, and an unrelated `sleep`.
        let sleep = spawn(Path::new("sleep"), &[OsStr::new("600")]);
        for pid in [std::process::id(), sleep.0.id()] {
            let file = pid_file(&dir, pid);
            for identity in [
                Identity::new("nginx", &root),
                Identity::new("sleep", &root),
                Identity::new("php-fpm8.2", &root),
            ] {
                let found = inspect(&file, &identity);
                assert!(
                    matches!(found, PidFile::Other { pid: p, .. } if p == pid),
                    "{pid} taken for {identity:?}: {found:?}"
                );
            }
            let found = clear_stale(&file, &Identity::new("sleep", &root)).expect("clear");
            assert!(found.is_stale());
            assert!(!file.exists(), "a stale pid file is removed");
        }
        assert!(alive(sleep.0.id()), "nothing was signalled");
        assert!(alive(std::process::id()));
    }

    #[test]
    fn dead_pids_garbage_and_missing_files_name_no_server() {
        let dir = Dir::new("dead");
        let identity = Identity::new("sleep", &dir.0);
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let gone = child.id();
        child.wait().expect("wait");
        let file = pid_file(&dir, gone);
        assert_eq!(inspect(&file, &identity), PidFile::Dead(gone));
        for garbage in ["", "abc", "-1", "12 13", "99999999999"] {
            let file = pid_file(&dir, garbage);
            assert_eq!(inspect(&file, &identity), PidFile::Garbage, "{garbage:?}");
            assert_eq!(server_pid(&file, &identity), None);
        }
        let file = pid_file(&dir, 0);
        assert_eq!(inspect(&file, &identity), PidFile::Dead(0));
        let missing = dir.0.join("missing.pid");
        assert_eq!(inspect(&missing, &identity), PidFile::Absent);
        assert_eq!(
            clear_stale(&missing, &identity).expect("clear"),
            PidFile::Absent
        );
    }

    #[test]
    fn a_server_whose_binary_was_replaced_is_still_the_server() {
        let dir = Dir::new("replaced");
        let bin = dir.0.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let tail = bin.join("tail");
        let system_tail = resolve_executable(Path::new("tail")).expect("tail");
        std::fs::copy(&system_tail, &tail).expect("copy tail");
        let config = dir.0.join("server.conf");
        std::fs::write(&config, "").expect("config");
        let running = spawn(&tail, &[OsStr::new("-f"), config.as_os_str()]);
        // An upgrade: a new file renamed over the old one.
        let new = bin.join("tail.new");
        std::fs::copy(&system_tail, &new).expect("copy tail");
        std::fs::rename(&new, &tail).expect("replace");
        let shown = std::fs::read_link(format!("/proc/{}/exe", running.0.id())).expect("exe");
        assert!(
            shown.to_string_lossy().ends_with(" (deleted)"),
            "{}",
            shown.display()
        );
        let file = pid_file(&dir, running.0.id());
        assert_eq!(
            server_pid(&file, &Identity::new(&tail, &config)),
            Some(running.0.id())
        );
        assert!(matches!(
            inspect(&file, &Identity::new(&system_tail, &config)),
            PidFile::Other { .. }
        ));
    }
}
