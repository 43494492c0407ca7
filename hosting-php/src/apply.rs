//! The transactional apply path for PHP-FPM: one managed tree per PHP version
//! (`MANAGED_ROOT/<version>/live/{php-fpm.conf,pool.d/}`), staged, validated with that
//! version's own `php-fpm -t`, swapped, and reloaded. A refused test changes no version; a
//! master that cannot be started or reloaded puts back its own version only, which
//! [`PhpRuntime::apply_versions`] reports while the other versions go live (`apply` fails).
//!
//! Whether a master runs is decided by [`process::inspect`]: its pid file must name a process
//! running the version's binary with the version's configuration on its command line. A version
//! with pools whose master does not run is started on every apply, even when no file changed
//! (after a power loss the pid and socket files stay behind; they are removed first), and a
//! process a stale pid file names is never signalled.
//!
//! Supervised, the SDK's master runs `live/php-fpm.conf`. Run by the init system, the
//! distro's master includes `live/pool.d/*.conf` through the SDK's file in its pool directory
//! (written while the version has pools, removed with its last one); the staged
//! `php-fpm.conf` is then only the configuration the staged pools are tested with, and after
//! the swap the distro's whole configuration is tested too (`php-fpm -t -y DISTRO_CONF`)
//! before the reload; if it refuses, the version is swapped back and its master untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hosting_core::model::{Website, WebsiteId};
use hosting_core::node::ServerState;
use hosting_core::php::{FailedVersion, PhpApplyReport, PhpInstallation, PhpRuntime};
use hosting_core::process::{self, Identity};
use hosting_core::tree::{FileUndo, ManagedTree, Staged, replace_file};
use hosting_core::types::{ConfinedPath, PhpVersion};
use hosting_core::{ApplyReport, Command, Drift, Error, HostLayout, RenderedFile, Result};

use crate::config::InitScript;
use crate::discovery::fpm_command;
use crate::render::{MAIN_CONFIG, POOL_DIR, master_log, pool_include};
use crate::{FpmService, PhpFpm};

/// How long a reloaded master may take to open its pools' sockets before the apply fails: a
/// floor for small nodes plus a share per pool, since FPM's reload grows with its pool count
/// (about 1 ms per pool at 10,000 on a 2-core machine).
fn socket_wait(pools: usize) -> Duration {
    const FLOOR: Duration = Duration::from_secs(10);
    const PER_POOL: Duration = Duration::from_millis(3);
    FLOOR.saturating_add(PER_POOL.saturating_mul(u32::try_from(pools).unwrap_or(u32::MAX)))
}

/// How long a stopped master may take to exit.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// The flag `/proc/net/unix` shows for a listening socket (`__SO_ACCEPTCON`).
const ACCEPTING: u32 = 0x0001_0000;

/// What a master logs once it has (re)started and serves its pools.
const READY: &str = "ready to handle connections";

/// The length of `log` now (0 when it does not exist yet).
fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// What `log` gained after its first `offset` bytes (all of it when it was rotated since).
fn log_since(log: &Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(log) else {
        return String::new();
    };
    let start = if log_len(log) < offset { 0 } else { offset };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The paths of the listening Unix sockets in this network namespace, from `/proc/net/unix`
/// (columns: slot, refcount, protocol, flags, type, state, inode, path).
fn listening_unix_sockets() -> Result<BTreeSet<PathBuf>> {
    let table = std::fs::read_to_string("/proc/net/unix").map_err(|e| {
        Error::backend(
            "php-fpm",
            format!("cannot read /proc/net/unix to see which pools listen: {e}"),
        )
    })?;
    Ok(parse_listening(&table))
}

fn parse_listening(table: &str) -> BTreeSet<PathBuf> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let flags = u32::from_str_radix(fields.nth(3)?, 16).ok()?;
            let path = fields.nth(3)?;
            (flags & ACCEPTING != 0 && path.starts_with('/')).then(|| PathBuf::from(path))
        })
        .collect()
}
/// Generations kept besides the live one, for inspection after an incident.
const KEEP_GENERATIONS: usize = 2;

/// What an apply did to one version, so it can be undone.
enum Done {
    /// A new generation went live.
    Staged(Staged),
    /// The version's last pool went: its master was stopped (supervised) and `live` removed;
    /// the previous generation is kept for a rollback.
    Retired(Option<PathBuf>),
}

/// One version's step of an apply: what went live, and what the SDK's include file in the
/// distro's pool directory held before (init-script masters only).
struct Applied {
    plan: VersionPlan,
    done: Done,
    include: Option<FileUndo>,
}

/// One version's part of an apply: its tree, what it should hold, and what changed. No pools
/// means the version is retired.
struct VersionPlan {
    version: PhpVersion,
    tree: ManagedTree,
    pools: Vec<RenderedFile>,
    changed: Vec<WebsiteId>,
    removed: Vec<ConfinedPath>,
}

/// `path` inside `version`'s tree, as reported in drift and removals (`8.2/pool.d/site1.conf`).
fn in_version(version: PhpVersion, path: &ConfinedPath) -> Result<ConfinedPath> {
    Ok(format!("{}/{path}", version.as_str()).parse()?)
}

fn site_of_pool(path: &ConfinedPath) -> Option<WebsiteId> {
    path.as_str()
        .strip_prefix("pool.d/site")?
        .strip_suffix(".conf")?
        .parse()
        .ok()
        .map(WebsiteId)
}

impl PhpFpm {
    fn tree(&self, version: PhpVersion) -> ManagedTree {
        ManagedTree::new(
            self.config.managed_root.join(version.as_str()),
            self.runner.clone(),
        )
    }

    /// The master config the running FPM of `version` is started with.
    pub fn live_main_config(&self, version: PhpVersion) -> PathBuf {
        self.tree(version).live().join(MAIN_CONFIG)
    }

    fn pid_file(&self, version: PhpVersion) -> PathBuf {
        self.config
            .layout
            .php_run_dir
            .join(format!("php{}-fpm.pid", version.as_str()))
    }

    /// The pools of `sites` grouped by version, every version installed (never a fallback).
    fn pools_by_version(
        &self,
        sites: &[Website],
    ) -> Result<BTreeMap<PhpVersion, Vec<RenderedFile>>> {
        let mut by_version: BTreeMap<PhpVersion, Vec<RenderedFile>> = self
            .installations
            .iter()
            .map(|i| (i.version, Vec::new()))
            .collect();
        let mut seen = BTreeSet::new();
        for site in sites {
            let Some(version) = site.php_version else {
                continue;
            };
            if !seen.insert((site.id, version)) {
                continue;
            }
            let pool = self.render_pool(site)?;
            by_version.entry(version).or_default().push(pool);
        }
        Ok(by_version)
    }

    fn plan(&self, sites: &[Website]) -> Result<Vec<VersionPlan>> {
        let mut plans = Vec::new();
        for (version, pools) in self.pools_by_version(sites)? {
            let tree = self.tree(version);
            let mut live = tree.read_live()?;
            let live_main = live.remove(&MAIN_CONFIG.parse::<ConfinedPath>()?);
            let desired: BTreeMap<&ConfinedPath, &String> =
                pools.iter().map(|f| (&f.path, &f.contents)).collect();
            let changed: Vec<WebsiteId> = pools
                .iter()
                .filter(|f| live.get(&f.path) != Some(&f.contents))
                .filter_map(|f| site_of_pool(&f.path))
                .collect();
            let removed = live
                .keys()
                .filter(|p| !desired.contains_key(p))
                .map(|p| in_version(version, p))
                .collect::<Result<Vec<_>>>()?;
            let first_apply = live_main.is_none() && !pools.is_empty();
            // A master config that differs from what its generation renders (a hand edit, a
            // changed template) is rewritten too.
            let main_drifted = match (tree.current()?, &live_main) {
                (Some(dir), Some(found)) => {
                    &self.render_main_config(version, &dir)?.contents != found
                }
                _ => false,
            };
            // The SDK's file in the distro's pool directory that is not what it should be (gone,
            // edited, or left behind by a retired version) is written again.
            let include_drifted = match &self.config.service {
                FpmService::InitScript(init) => {
                    let wanted = self.pool_include(version, !pools.is_empty())?;
                    std::fs::read(init.include_file(version)).ok().as_deref()
                        != wanted.as_ref().map(|w| w.as_bytes())
                }
                FpmService::Supervised => false,
            };
            // A master that should run and does not (killed, or the machine restarted) is
            // started again on a fresh generation, even when no file changed.
            let stopped = !pools.is_empty() && !self.master_runs(version)?;
            if changed.is_empty()
                && removed.is_empty()
                && !first_apply
                && !main_drifted
                && !include_drifted
                && !stopped
            {
                continue;
            }
            plans.push(VersionPlan {
                version,
                tree,
                pools,
                changed,
                removed,
            });
        }
        Ok(plans)
    }

    async fn stage_and_validate(&self, plan: &VersionPlan) -> Result<Staged> {
        let staged = plan
            .tree
            .stage_with(|dir| {
                let mut files = plan.pools.clone();
                files.push(self.render_main_config(plan.version, dir)?);
                Ok(files)
            })
            .await?;
        // A master with no pools is stopped, not validated: FPM refuses an empty config.
        if !plan.pools.is_empty()
            && let Err(e) = self.validate(plan.version, &staged.dir).await
        {
            plan.tree.discard(&staged)?;
            return Err(e);
        }
        Ok(staged)
    }

    async fn run_checked(&self, command: Command, what: &str) -> Result<()> {
        let out = self.runner.run(&command).await?;
        if out.success() {
            Ok(())
        } else {
            Err(Error::backend(
                "php-fpm",
                format!("{what} failed: {}{}", out.stdout.trim(), out.stderr.trim()),
            ))
        }
    }

    /// What `version`'s master is: its binary, with the version's managed tree (supervised) or
    /// the distro's configuration (init script) on its command line.
    fn identity(&self, version: PhpVersion) -> Result<Identity> {
        let binary = &self.find(version)?.fpm_binary;
        Ok(match &self.config.service {
            FpmService::Supervised => {
                Identity::new(binary, self.config.managed_root.join(version.as_str()))
            }
            FpmService::InitScript(init) => Identity::new(binary, init.main_config(version)),
        })
    }

    /// The pid file `version`'s master writes.
    fn master_pid_file(&self, version: PhpVersion) -> PathBuf {
        match &self.config.service {
            FpmService::Supervised => self.pid_file(version),
            FpmService::InitScript(init) => init.pid_file(version),
        }
    }

    /// The pid of `version`'s running master, when its pid file names it
    /// ([`process::inspect`]); `None` also when the version is not installed.
    pub fn running_master(&self, version: PhpVersion) -> Option<u32> {
        let identity = self.identity(version).ok()?;
        process::server_pid(&self.master_pid_file(version), &identity)
    }

    /// Whether `version`'s master runs. A pid file that names no master (its pid dead, or since
    /// taken by another process) is removed, so the master is started and that process is
    /// never signalled.
    fn master_runs(&self, version: PhpVersion) -> Result<bool> {
        Ok(self.verified_master(version)?.is_some())
    }

    /// [`Self::master_runs`], with the pid.
    fn verified_master(&self, version: PhpVersion) -> Result<Option<String>> {
        let pid_file = self.master_pid_file(version);
        let found = process::clear_stale(&pid_file, &self.identity(version)?)?;
        if found.is_stale() {
            tracing::warn!(
                version = version.as_str(),
                pid_file = %pid_file.display(),
                found = ?found,
                "the pid file names no running PHP-FPM master (left by a crash?): removed"
            );
        }
        Ok(found.server().map(|pid| pid.to_string()))
    }

    /// Removes `version`'s pool sockets nothing listens on (left by a master that was killed),
    /// before its master starts.
    fn remove_stale_sockets(&self, version: PhpVersion) -> Result<()> {
        let dir = &self.config.layout.php_run_dir;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let listening = listening_unix_sockets()?;
        let prefix = format!("php{}-site", version.as_str());
        for entry in entries.flatten() {
            let path = entry.path();
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".sock"));
            let is_socket = entry
                .file_type()
                .is_ok_and(|t| std::os::unix::fs::FileTypeExt::is_socket(&t));
            if ours && is_socket && !listening.contains(&path) {
                tracing::info!(socket = %path.display(), "removing a stale PHP-FPM socket");
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(Error::backend(
                        "php-fpm",
                        format!("cannot remove the stale socket {}: {e}", path.display()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What the SDK's file in `version`'s distro pool directory must hold: the include of the
    /// live pools while the version has any, nothing (no file) otherwise.
    fn pool_include(&self, version: PhpVersion, has_pools: bool) -> Result<Option<String>> {
        if !has_pools {
            return Ok(None);
        }
        pool_include(version, &self.tree(version).live().join(POOL_DIR)).map(Some)
    }

    /// Makes the running FPM of `version` serve its live tree of `pools` pools (none: stop the
    /// supervised master; an init-script master keeps the distro's own pools).
    async fn reload(&self, version: PhpVersion, pools: usize) -> Result<()> {
        let has_pools = pools > 0;
        match &self.config.service {
            FpmService::InitScript(init) => self.reload_service(init, version, has_pools).await,
            FpmService::Supervised => match (self.verified_master(version)?, has_pools) {
                (Some(pid), true) => {
                    let log = master_log(&self.config.layout, version);
                    let logged = log_len(&log);
                    self.run_checked(
                        Command::new("kill").arg("-USR2").arg(&pid),
                        "reloading php-fpm",
                    )
                    .await?;
                    self.wait_until_ready(version, &log, logged, pools).await
                }
                (Some(pid), false) => {
                    self.run_checked(
                        Command::new("kill").arg("-QUIT").arg(&pid),
                        "stopping php-fpm",
                    )
                    .await?;
                    self.wait_for_exit(version).await
                }
                (None, true) => {
                    self.remove_stale_sockets(version)?;
                    self.start(self.find(version)?).await
                }
                (None, false) => Ok(()),
            },
        }
    }

    /// `service phpX.Y-fpm reload` when its master runs; `start` when it does not and
    /// `start` is asked (the version has pools). The distro's init script sends `USR2`; the
    /// socket wait after the apply says when the pools listen.
    async fn reload_service(
        &self,
        init: &InitScript,
        version: PhpVersion,
        start: bool,
    ) -> Result<()> {
        let running = self.master_runs(version)?;
        let action = match (running, start) {
            (true, _) => "reload",
            (false, true) => {
                self.remove_stale_sockets(version)?;
                "start"
            }
            (false, false) => return Ok(()),
        };
        let service = init.service(version);
        self.run_checked(
            Command::new("service").arg(&service).arg(action),
            &format!("service {service} {action}"),
        )
        .await
    }

    /// The distro's whole FPM configuration of `version`, with the SDK's include file and the
    /// swapped `live` tree, as its master would load it.
    async fn test_distro(&self, init: &InitScript, version: PhpVersion) -> Result<()> {
        let install = self.find(version)?;
        let command = fpm_command(
            &install.fpm_binary,
            install.php_ini.as_deref(),
            install.scan_dir.as_deref(),
            [
                "-t".into(),
                "-y".into(),
                init.main_config(version).into_os_string(),
            ],
        );
        self.check(install, &command).await
    }

    async fn start(&self, install: &PhpInstallation) -> Result<()> {
        let command = fpm_command(
            &install.fpm_binary,
            install.php_ini.as_deref(),
            install.scan_dir.as_deref(),
            [
                "-y".into(),
                self.live_main_config(install.version).into_os_string(),
            ],
        );
        self.run_checked(command, "starting php-fpm").await
    }

    /// Waits until the master of `version`, signalled to reload, logs that it is ready again
    /// (after `logged` bytes of `log`). Until then it has not installed its signal handlers, and
    /// a stop sent in that window is lost.
    async fn wait_until_ready(
        &self,
        version: PhpVersion,
        log: &Path,
        logged: u64,
        pools: usize,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + socket_wait(pools);
        loop {
            if log_since(log, logged).contains(READY) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::backend(
                    "php-fpm",
                    format!(
                        "the PHP {} master did not log {READY:?} in {} after the reload",
                        version.as_str(),
                        log.display()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a stopped master is gone (its pid file removed), so a later start cannot be
    /// mistaken for it.
    async fn wait_for_exit(&self, version: PhpVersion) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        while self.running_master(version).is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::backend(
                    "php-fpm",
                    format!("the PHP {} master did not stop", version.as_str()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Waits until every pool socket of `sites` is listening: the reload really took effect (a
    /// socket file alone may be left over from a stopped master). Listening is read from the
    /// kernel's socket table rather than by connecting, because every connection to an
    /// `ondemand` pool makes FPM fork a worker, a thousand workers for a thousand pools. The
    /// sockets still not listening at the deadline, by version.
    async fn unready_sockets(
        &self,
        sites: &[Website],
    ) -> Result<BTreeMap<PhpVersion, BTreeSet<PathBuf>>> {
        let layout: &HostLayout = &self.config.layout;
        let mut waiting: BTreeMap<PathBuf, PhpVersion> = sites
            .iter()
            .filter_map(|s| s.php_version.map(|v| (layout.php_socket(s.id, v), v)))
            .collect();
        let deadline = tokio::time::Instant::now() + socket_wait(waiting.len());
        loop {
            let listening = listening_unix_sockets()?;
            waiting.retain(|socket, _| !listening.contains(socket));
            if waiting.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut by_version: BTreeMap<PhpVersion, BTreeSet<PathBuf>> = BTreeMap::new();
        for (socket, version) in waiting {
            by_version.entry(version).or_default().insert(socket);
        }
        Ok(by_version)
    }

    /// Puts `step`'s files back as they were before this apply (its tree, and the include
    /// file), without reloading. Whether a master should run them again.
    fn put_back(&self, step: &Applied) -> bool {
        let (put_back, running) = match &step.done {
            Done::Staged(staged) => (step.plan.tree.roll_back(staged), staged.previous.is_some()),
            Done::Retired(Some(previous)) => (step.plan.tree.reactivate(previous), true),
            Done::Retired(None) => (Ok(()), false),
        };
        let version = step.plan.version.as_str();
        if let Err(e) = put_back {
            tracing::error!(version, error = %e, "php rollback failed");
            return false;
        }
        if let (FpmService::InitScript(init), Some(undo)) = (&self.config.service, &step.include)
            && let Err(e) = undo.restore(&init.include_file(step.plan.version))
        {
            tracing::error!(version, error = %e, "cannot put the pool include file back");
        }
        running
    }

    /// Puts every version back as it was before this apply, newest step first, and makes its
    /// master serve it again.
    async fn restore(&self, applied: &[Applied]) {
        for step in applied.iter().rev() {
            let running = self.put_back(step);
            let version = step.plan.version;
            let reloaded = match &self.config.service {
                // The distro's master runs whatever its configuration now holds; one it does not
                // run is not started by a rollback.
                FpmService::InitScript(init) => self.reload_service(init, version, false).await,
                FpmService::Supervised => {
                    // The restored generation's pool count only sizes the wait for its master.
                    let pools = match running {
                        true => step
                            .plan
                            .tree
                            .read_live()
                            .map_or(1, |files| files.len().max(1)),
                        false => 0,
                    };
                    self.reload(version, pools).await
                }
            };
            if let Err(e) = reloaded {
                tracing::error!(version = version.as_str(), error = %e, "php reload after rollback failed");
            }
        }
    }

    /// Makes one version's staged generation (or, without one, its retirement) live: the tree,
    /// for an init-script master the include file and the distro's test of its whole
    /// configuration, then the reload. When the distro's test refuses, this version is put
    /// back here, before any reload; any other failure leaves the step in `applied` for
    /// [`Self::restore`].
    async fn go_live(
        &self,
        plan: VersionPlan,
        staged: Option<Staged>,
        applied: &mut Vec<Applied>,
    ) -> Result<()> {
        let version = plan.version;
        let pools = plan.pools.len();
        let include = match &self.config.service {
            FpmService::InitScript(init) => Some((init, self.pool_include(version, pools > 0)?)),
            FpmService::Supervised => None,
        };
        match staged {
            Some(staged) => {
                let activated = plan.tree.activate(&staged);
                applied.push(Applied {
                    plan,
                    done: Done::Staged(staged),
                    include: None,
                });
                activated?;
            }
            None => {
                // A supervised master is stopped before its files go, as it still runs them.
                if self.config.service == FpmService::Supervised {
                    self.reload(version, 0).await?;
                }
                let previous = plan.tree.deactivate()?;
                applied.push(Applied {
                    plan,
                    done: Done::Retired(previous),
                    include: None,
                });
            }
        }
        if let Some((init, wanted)) = include {
            let tested = match replace_file(&init.include_file(version), wanted.as_deref()) {
                Ok(undo) => {
                    if let Some(step) = applied.last_mut() {
                        step.include = Some(undo);
                    }
                    self.test_distro(init, version).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = tested {
                // The master has not been asked to reload: put this version back untouched.
                if let Some(step) = applied.pop() {
                    self.put_back(&step);
                }
                return Err(e);
            }
        }
        match (&self.config.service, pools) {
            // Stopped above, before its files went.
            (FpmService::Supervised, 0) => Ok(()),
            _ => self.reload(version, pools).await,
        }
    }
}

/// What an apply does when a version's master cannot serve its new pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failures {
    /// Put every version back and fail ([`PhpRuntime::apply`]).
    Fail,
    /// Put that version back, report it and apply the others
    /// ([`PhpRuntime::apply_versions`]).
    Report,
}

impl PhpFpm {
    /// The apply, both ways ([`Failures`]): the report, and with [`Failures::Fail`] the error
    /// of the first version that failed (everything put back then).
    async fn apply_each(
        &self,
        sites: &[Website],
        failures: Failures,
    ) -> Result<(PhpApplyReport, Option<Error>)> {
        let plans = self.plan(sites)?;
        let mut staged: Vec<(VersionPlan, Option<Staged>)> = Vec::new();
        for plan in plans {
            if plan.pools.is_empty() {
                staged.push((plan, None));
                continue;
            }
            match self.stage_and_validate(&plan).await {
                Ok(s) => staged.push((plan, Some(s))),
                Err(e) => {
                    for (p, s) in &staged {
                        if let Some(s) = s {
                            p.tree.discard(s)?;
                        }
                    }
                    return Err(e);
                }
            }
        }
        let mut applied: Vec<Applied> = Vec::new();
        let mut failed: BTreeMap<PhpVersion, String> = BTreeMap::new();
        for (plan, s) in staged {
            let version = plan.version;
            let mut step = Vec::new();
            match self.go_live(plan, s, &mut step).await {
                Ok(()) => applied.append(&mut step),
                // A refused test (the distro's whole configuration) changes nothing: that
                // version was put back before any reload, the others are put back here.
                Err(e) if failures == Failures::Fail || matches!(e, Error::Validation { .. }) => {
                    applied.append(&mut step);
                    self.restore(&applied).await;
                    return Err(e);
                }
                Err(e) => {
                    tracing::error!(
                        version = version.as_str(),
                        error = %e,
                        "the PHP-FPM master cannot serve its pools; the other versions are applied"
                    );
                    self.restore(&step).await;
                    failed.insert(version, e.to_string());
                }
            }
        }
        // The versions that failed above are not waited for: their master is not serving.
        let served: Vec<Website> = sites
            .iter()
            .filter(|s| s.php_version.is_some_and(|v| !failed.contains_key(&v)))
            .cloned()
            .collect();
        let unready = self.unready_sockets(&served).await?;
        let pools_unready: usize = unready.values().map(BTreeSet::len).sum();
        for (version, sockets) in unready {
            let Some(socket) = sockets.first() else {
                continue;
            };
            let reason = format!(
                "{} is not listening after the reload ({} of the node's pools are not)",
                socket.display(),
                pools_unready
            );
            if failures == Failures::Fail {
                self.restore(&applied).await;
                return Ok((
                    PhpApplyReport::default(),
                    Some(Error::backend("php-fpm", reason)),
                ));
            }
            tracing::error!(
                version = version.as_str(),
                error = %reason,
                "the PHP-FPM pools do not listen; the other versions are applied"
            );
            if let Some(at) = applied.iter().position(|a| a.plan.version == version) {
                let step = applied.remove(at);
                self.restore(std::slice::from_ref(&step)).await;
            }
            failed.insert(version, reason);
        }
        let mut report = PhpApplyReport {
            applied: ApplyReport {
                reloaded: !applied.is_empty(),
                ..ApplyReport::default()
            },
            failed: Vec::new(),
        };
        for Applied { plan, .. } in &applied {
            plan.tree.prune(KEEP_GENERATIONS)?;
            report.applied.changed.extend(&plan.changed);
            report.applied.removed.extend(plan.removed.iter().cloned());
        }
        report.applied.changed.sort();
        report.applied.changed.dedup();
        report.failed = failed
            .into_iter()
            .map(|(version, reason)| {
                let mut sites: Vec<WebsiteId> = sites
                    .iter()
                    .filter(|s| s.php_version == Some(version))
                    .map(|s| s.id)
                    .collect();
                sites.sort();
                sites.dedup();
                FailedVersion {
                    version,
                    sites,
                    reason,
                }
            })
            .collect();
        Ok((report, None))
    }
}

#[async_trait]
impl PhpRuntime for PhpFpm {
    async fn installed(&self) -> Result<Vec<PhpInstallation>> {
        Ok(self.installations.clone())
    }

    fn render_pool(&self, site: &Website) -> Result<RenderedFile> {
        PhpFpm::render_pool(self, site)
    }

    async fn validate(&self, version: PhpVersion, staged_root: &Path) -> Result<()> {
        PhpFpm::validate(self, version, staged_root).await
    }

    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        match self.apply_each(sites, Failures::Fail).await? {
            (report, None) => Ok(report.applied),
            (_, Some(e)) => Err(e),
        }
    }

    async fn apply_versions(&self, sites: &[Website]) -> Result<PhpApplyReport> {
        let (report, _) = self.apply_each(sites, Failures::Report).await?;
        Ok(report)
    }

    /// The master of every version that has live pools (a version without runs none).
    async fn servers(&self) -> Result<Vec<ServerState>> {
        let mut servers = Vec::new();
        for install in &self.installations {
            let version = install.version;
            let live = self.tree(version).read_live()?;
            if live.keys().any(|path| path.as_str().starts_with("pool.d/")) {
                servers.push(ServerState {
                    name: format!("php-fpm {}", version.as_str()),
                    pid: self.running_master(version),
                });
            }
        }
        Ok(servers)
    }

    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        let mut drift = Vec::new();
        for (version, pools) in self.pools_by_version(sites)? {
            let tree = self.tree(version);
            let mut live = tree.read_live()?;
            let mut desired: BTreeMap<ConfinedPath, String> =
                pools.into_iter().map(|f| (f.path, f.contents)).collect();
            if let Some(dir) = tree.current()? {
                let main = self.render_main_config(version, &dir)?;
                desired.insert(main.path, main.contents);
            }
            for (path, contents) in &desired {
                match live.remove(path) {
                    None => drift.push(Drift::Missing(in_version(version, path)?)),
                    Some(found) if &found != contents => {
                        drift.push(Drift::Modified(in_version(version, path)?));
                    }
                    Some(_) => {}
                }
            }
            for path in live.into_keys() {
                drift.push(Drift::Unexpected(in_version(version, &path)?));
            }
        }
        Ok(drift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_sockets_with_a_path_count() {
        let table = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 41001 /run/php/php8.2-site1.sock
0000000000000000: 00000003 00000000 00000000 0001 03 41002 /run/php/php8.2-site2.sock
0000000000000000: 00000002 00000000 00010000 0001 01 41003 @abstract
0000000000000000: 00000002 00000000 00010000 0001 01 41004
";
        let listening = parse_listening(table);
        assert_eq!(
            listening.into_iter().collect::<Vec<_>>(),
            vec![PathBuf::from("/run/php/php8.2-site1.sock")]
        );
    }

    #[test]
    fn the_socket_wait_grows_with_the_pool_count() {
        assert_eq!(socket_wait(0), Duration::from_secs(10));
        assert_eq!(socket_wait(10_000), Duration::from_secs(40));
    }
}
