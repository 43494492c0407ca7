//! One machine's web server, PHP-FPM, Unix accounts and site directories, assembled from a
//! state file and a root directory, and what hostctl does with them: check, apply, drift, diff
//! and stop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hosting_core::accounts::{LocalAccounts, SharedAccount};
use hosting_core::model::Website;
use hosting_core::node::{NodeReport, apply_node};
use hosting_core::php::{PhpInstallation, PhpRuntime};
use hosting_core::process::{
    Identity, StopSignal, SupervisedServer, php_fpm_servers, running, server_pid, started_under,
    stop_servers,
};
pub use hosting_core::process::{Skipped, Stopped};
use hosting_core::site_files::{LocalSiteFiles, SiteFiles};
use hosting_core::system::SystemRunner;
use hosting_core::tree::ManagedTree;
use hosting_core::types::PhpVersion;
use hosting_core::{
    Command, CommandRunner, Drift, Error, HostLayout, Isolation, NodeAccounts, UidRange, WebServer,
};
use hosting_php::{
    DiscoveryConfig, FpmConfig, FpmService, InitScript, PhpFpm, PrefixInstall, discover,
};
use hosting_web::{
    Apache, ApacheConfig, ApacheService, Management, Nginx, NginxConfig, NginxService,
};
use serde::Serialize;

use crate::accounts::{Resolved, resolve};
use crate::error::invalid;
use crate::record::{Recorded, StateDir};
use crate::state::{DesiredState, Mode, NodeServer, PhpInstallEntry};

/// Where Debian keeps its `php-fpmX.Y` binaries; always searched.
const SYSTEM_PHP_DIR: &str = "/usr/sbin";
/// The group the web server runs as (Debian's, and the workers of the servers hostctl starts
/// as root): as root, site homes are `0750` in it.
const WEB_GROUP: &str = "www-data";
/// How long a server may take to stop gracefully before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// Every path hostctl uses on a node.
#[derive(Debug, Clone)]
pub struct NodePaths {
    /// `--root`.
    pub root: PathBuf,
    /// Prefix or system.
    pub mode: Mode,
    /// Sites, sockets, logs and certificates.
    pub layout: HostLayout,
    /// The web server's directory under the root. Prefix mode: its server root (managed tree,
    /// pid file, logs, temporary files). System mode: the managed tree the distro's service
    /// includes.
    pub web_root: PathBuf,
    /// PHP-FPM's managed trees, one per version.
    pub php_root: PathBuf,
    /// How the PHP-FPM masters run.
    pub fpm_service: FpmService,
}

/// The directory under `--root` a web server's files live in.
fn web_dir(server: NodeServer) -> &'static str {
    match server {
        NodeServer::Nginx => "nginx",
        NodeServer::Apache => "apache",
    }
}

/// The pid file of the web server's master: under `root` when hostctl runs it (prefix mode),
/// the distro service's otherwise.
fn web_pid_file(root: &Path, mode: Mode, server: NodeServer) -> PathBuf {
    match (mode, server) {
        (Mode::Prefix, NodeServer::Nginx) => root.join("nginx/run/nginx.pid"),
        (Mode::Prefix, NodeServer::Apache) => root.join("apache/run/apache2.pid"),
        (Mode::System, NodeServer::Nginx) => NginxService::default().pid_file,
        (Mode::System, NodeServer::Apache) => ApacheService::default().pid_file,
    }
}

impl NodePaths {
    /// The paths of a node at `root` in `mode`, serving with `web`.
    pub fn new(root: &Path, mode: Mode, web: NodeServer) -> Self {
        let web_root = root.join(web_dir(web));
        match mode {
            Mode::Prefix => Self {
                root: root.to_owned(),
                mode,
                layout: HostLayout::under(root.join("node")),
                web_root,
                php_root: root.join("php"),
                fpm_service: FpmService::Supervised,
            },
            Mode::System => Self {
                root: root.to_owned(),
                mode,
                layout: HostLayout {
                    sites_root: PathBuf::from("/srv/www"),
                    php_run_dir: PathBuf::from("/run/php"),
                    log_dir: PathBuf::from("/var/log/hosting"),
                    cert_dir: PathBuf::from("/etc/hosting/certs"),
                },
                web_root,
                php_root: PathBuf::from("/etc/hosting/php"),
                fpm_service: FpmService::InitScript(InitScript::default()),
            },
        }
    }

    /// The web server's managed tree (its `live` symlink and generations).
    pub fn web_tree(&self) -> PathBuf {
        match self.mode {
            Mode::Prefix => self.web_root.join("managed"),
            Mode::System => self.web_root.clone(),
        }
    }

    /// The pid file of the PHP-FPM master of `version`.
    fn php_pid_file(&self, version: PhpVersion) -> PathBuf {
        match &self.fpm_service {
            FpmService::InitScript(init) => init.pid_file(version),
            FpmService::Supervised => self
                .layout
                .php_run_dir
                .join(format!("php{}-fpm.pid", version.as_str())),
        }
    }
}

/// Which backend a drifted file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Web,
    Php,
}

/// How a live file differs from what the state file renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The file should exist but does not.
    Missing,
    /// The file's contents differ.
    Modified,
    /// No site renders the file.
    Unexpected,
}

impl DriftKind {
    /// `missing`, `modified` or `unexpected`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Modified => "modified",
            DriftKind::Unexpected => "unexpected",
        }
    }

    /// What an apply does to such a file.
    pub fn apply_change(self) -> &'static str {
        match self {
            DriftKind::Missing => "created",
            DriftKind::Modified => "rewritten",
            DriftKind::Unexpected => "removed",
        }
    }
}

/// A live file that differs from what the state file renders.
#[derive(Debug, Clone, Serialize)]
pub struct DriftEntry {
    #[serde(skip)]
    side: Side,
    /// `nginx`, `apache` or `php-fpm`.
    pub server: String,
    /// How it differs.
    pub kind: DriftKind,
    /// The path inside the backend's managed tree (`sites/site1.conf`, `8.2/pool.d/site1.conf`).
    pub path: String,
    /// Where the live file is (or would be).
    pub live_path: PathBuf,
}

/// A server that should run (its configuration is live) but does not.
#[derive(Debug, Clone, Serialize)]
pub struct NotRunning {
    /// `nginx`, `apache` or `php-fpm 8.2`.
    pub server: String,
    /// The pid file that names no live process.
    pub pid_file: PathBuf,
}

/// Everything `drift` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriftReport {
    /// Live files that differ.
    pub files: Vec<DriftEntry>,
    /// Servers that are down.
    pub not_running: Vec<NotRunning>,
}

impl DriftReport {
    /// Whether the node is as the state file says.
    pub fn is_clean(&self) -> bool {
        self.files.is_empty() && self.not_running.is_empty()
    }
}

/// What an apply would do to one live file.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// `nginx`, `apache` or `php-fpm`.
    pub server: String,
    /// How the live file differs.
    pub kind: DriftKind,
    /// The live file.
    pub live_path: PathBuf,
    /// A unified diff from the live file to what would be written.
    pub diff: Option<String>,
    /// Said instead of a diff when none can be shown.
    pub note: Option<String>,
}

/// A node's backends, ready to render, apply and compare.
#[derive(Debug)]
pub struct Node {
    /// Its paths.
    pub paths: NodePaths,
    server: NodeServer,
    runner: Arc<dyn CommandRunner>,
    web: Box<dyn WebServer>,
    /// What the web server's master is, to tell whether its pid file names it.
    web_identity: Identity,
    php: PhpFpm,
    accounts: Arc<dyn NodeAccounts>,
    uid_range: UidRange,
    files: LocalSiteFiles,
}

/// A backend refused its settings: invalid input when it says which value is wrong.
fn setup_error(what: &str, e: Error) -> anyhow::Error {
    match e {
        Error::Invalid { .. } => {
            invalid(format!("{what}: {e} (check --root and the [node] table)"))
        }
        other => anyhow::Error::new(other).context(what.to_owned()),
    }
}

impl Node {
    /// Builds the web server and PHP-FPM backends for `state` under `root`: finds the PHP
    /// installations (Debian's in `/usr/sbin`, then `[[node.php]]`, which win for their
    /// version) by asking each binary. As root, sites get accounts of their own
    /// (`LocalAccounts` from `[node] uid_range`) and homes in the web server's group; without
    /// root every site runs as the current user. Changes nothing on disk.
    pub async fn open(root: &Path, state: &DesiredState) -> anyhow::Result<Node> {
        let node = &state.node;
        // `state::parse` refused any other kind already; a hand-built state is refused here.
        let server = NodeServer::try_from(node.web_server)
            .map_err(|rule| invalid(format!("node.web_server: {rule}")))?;
        let paths = NodePaths::new(root, node.mode, server);
        let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
        let as_root = is_root(runner.as_ref()).await?;
        if node.mode == Mode::System && !as_root {
            return Err(invalid(
                "node.mode: system mode drives the distro's services and paths and needs root",
            ));
        }
        let (accounts, files): (Arc<dyn NodeAccounts>, LocalSiteFiles) = if as_root {
            (
                Arc::new(LocalAccounts::new(runner.clone(), node.uid_range)),
                LocalSiteFiles::new(paths.layout.clone(), runner.clone())
                    .with_web_group(WEB_GROUP)
                    .map_err(|e| anyhow::anyhow!("web group {WEB_GROUP}: {e}"))?,
            )
        } else {
            (
                Arc::new(
                    SharedAccount::current(runner.clone(), false)
                        .await
                        .context("cannot tell which account hostctl runs as")?,
                ),
                LocalSiteFiles::new(paths.layout.clone(), runner.clone()),
            )
        };
        let web_binary = match server {
            NodeServer::Apache => node.apache_binary.clone(),
            NodeServer::Nginx => node.nginx_binary.clone(),
        };
        let web_identity = match node.mode {
            Mode::Prefix => Identity::new(web_binary, paths.web_root.clone()),
            Mode::System => Identity::service(web_binary),
        };
        let web: Box<dyn WebServer> = match server {
            NodeServer::Apache => {
                let mut config = ApacheConfig::new(paths.layout.clone());
                config.binary = node.apache_binary.clone();
                config.ports = node.ports;
                config.runner = runner.clone();
                config.management = match node.mode {
                    Mode::Prefix => Management::Supervised {
                        server_root: paths.web_root.clone(),
                    },
                    Mode::System => {
                        let mut service = ApacheService::default();
                        service.managed_root = paths.web_root.clone();
                        Management::Service(service)
                    }
                };
                Box::new(Apache::new(config).map_err(|e| setup_error("apache", e))?)
            }
            NodeServer::Nginx => {
                let mut config = NginxConfig::new(paths.layout.clone());
                config.binary = node.nginx_binary.clone();
                config.ports = node.ports;
                config.listen_ipv6 = node.listen_ipv6;
                config.runner = runner.clone();
                config.management = match node.mode {
                    Mode::Prefix => Management::Supervised {
                        server_root: paths.web_root.clone(),
                    },
                    Mode::System => {
                        let mut service = NginxService::default();
                        service.managed_root = paths.web_root.clone();
                        Management::Service(service)
                    }
                };
                Box::new(Nginx::new(config).map_err(|e| setup_error("nginx", e))?)
            }
        };
        let installations = php_installations(runner.as_ref(), &node.php).await?;
        let mut config = FpmConfig::new(paths.layout.clone());
        config.managed_root = paths.php_root.clone();
        config.service = paths.fpm_service.clone();
        if let Isolation::None { account, .. } = accounts.isolation() {
            // Without root FPM cannot hand a socket to www-data, and the web server's workers
            // run as this same user: the pools' sockets belong to it.
            config.web_user = account
                .as_str()
                .parse()
                .map_err(|e| anyhow::anyhow!("account {account}: {e}"))?;
        }
        let php = PhpFpm::new(runner.clone(), config, installations)
            .map_err(|e| setup_error("php-fpm", e))?;
        Ok(Node {
            paths,
            server,
            runner,
            web,
            web_identity,
            php,
            accounts,
            uid_range: node.uid_range,
            files,
        })
    }

    /// Gives every site of `state` its Unix account (see `crate::accounts`) and checks that
    /// each site's home, where it exists, is a directory. Changes nothing.
    pub async fn resolve(
        &self,
        state: &DesiredState,
        recorded: Option<&Recorded>,
    ) -> anyhow::Result<Resolved> {
        let resolved = resolve(state, recorded, self.accounts.as_ref()).await?;
        for site in &resolved.sites {
            let home = self.paths.layout.site(site).home;
            match std::fs::symlink_metadata(&home) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(invalid(format!(
                        "site {} ({}): {} exists and is not a directory",
                        site.id,
                        site.domain,
                        home.display()
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot check {}", home.display()));
                }
            }
        }
        Ok(resolved)
    }

    /// The PHP installations found, oldest first.
    pub fn php_installed(&self) -> &[PhpInstallation] {
        self.php.installed()
    }

    /// Renders every site with both backends (pure) so that anything they refuse (a PHP version
    /// that is not installed, an extension it lacks, a value a template cannot hold) is
    /// reported as invalid input before anything is touched.
    pub fn check_sites(&self, sites: &[Website]) -> anyhow::Result<()> {
        for site in sites {
            let who = format!("site {} ({})", site.id, site.domain);
            let refused = |e: Error| match e {
                Error::Invalid { .. } => invalid(format!("{who}: {e}")),
                other => anyhow::Error::new(other).context(who.clone()),
            };
            self.web.render_site(site).map_err(refused)?;
            if site.php_version.is_some() {
                self.php.render_pool(site).map_err(refused)?;
            }
        }
        Ok(())
    }

    /// Moves the node from what `record` says is applied to `resolved`, keeping `record` (saved
    /// in `state_dir` after each step) true to the machine throughout:
    ///
    /// 1. creates the new accounts, recording each as soon as it exists;
    /// 2. records the sites that are not live yet as pending and prepares every site's
    ///    directories (`LocalSiteFiles`: as root, homes `0750` in the web server's group);
    /// 3. the SDK's node apply (pools for both, then the web server, then only the desired
    ///    pools), then records the desired sites as live;
    /// 4. deletes the homes of removed sites that ran as accounts hostctl created, now that no
    ///    server serves them;
    /// 5. removes the accounts hostctl created that no site runs as (their processes, their
    ///    files in the shared temporary directories, the account and its group).
    ///
    /// A failure stops there: the record says what exists, and the next apply carries on.
    pub async fn apply(
        &self,
        state: &DesiredState,
        state_dir: &StateDir,
        record: &mut Recorded,
        resolved: &Resolved,
    ) -> anyhow::Result<NodeReport> {
        self.create_layout()?;
        for new in &resolved.create {
            let account = self.accounts.create(&new.name).await.with_context(|| {
                format!(
                    "cannot create the account {} for site {}",
                    new.name, new.site
                )
            })?;
            record.accounts.push(account.clone().into());
            if let Err(e) = state_dir.save(record) {
                // Not recorded: hostctl would never remove it.
                record.accounts.pop();
                let _ = self.accounts.remove(&account).await;
                return Err(e);
            }
        }
        let live: BTreeSet<i64> = record.sites.iter().map(|s| s.id.0).collect();
        let mut pending_changed = false;
        for site in resolved.sites.iter().filter(|s| !live.contains(&s.id.0)) {
            match record.pending.iter_mut().find(|p| p.id == site.id) {
                Some(p) if p == site => {}
                Some(p) => {
                    *p = site.clone();
                    pending_changed = true;
                }
                None => {
                    record.pending.push(site.clone());
                    pending_changed = true;
                }
            }
        }
        if pending_changed {
            state_dir.save(record)?;
        }
        for site in &resolved.sites {
            self.files.prepare(site).await.with_context(|| {
                format!(
                    "site {} ({}): cannot prepare its directories",
                    site.id, site.domain
                )
            })?;
        }
        // A previous pool on a version that is no longer installed is not running: nothing to
        // keep alive during a switch, and it could not be rendered.
        let previous: Vec<Website> = record
            .sites
            .iter()
            .filter(|s| s.php_version.is_none_or(|v| self.php.find(v).is_ok()))
            .cloned()
            .collect();
        // Servers that do not run (after `stop`, a crash or a reboot) are started by the
        // backends themselves: each finds out from its pid file and /proc whether its master
        // is really there.
        let report = apply_node(self.web.as_ref(), &self.php, &previous, &resolved.sites)
            .await
            .map_err(|e| {
                anyhow::Error::new(e).context(
                    "the apply failed; the recorded sites are unchanged (run `hostctl node \
                     drift` to see where the node stands)",
                )
            })?;
        let accounts = std::mem::take(&mut record.accounts);
        *record = Recorded::of(state, resolved.sites.clone());
        record.accounts = accounts;
        record.pending = resolved.delete_files.clone();
        state_dir.save(record)?;
        for site in &resolved.delete_files {
            self.files.remove(site).await.with_context(|| {
                format!(
                    "site {} ({}): cannot delete {}",
                    site.id,
                    site.domain,
                    self.paths.layout.site(site).home.display()
                )
            })?;
            record.pending.retain(|p| p.id != site.id);
            state_dir.save(record)?;
        }
        for account in &resolved.remove {
            let unix = account.unix();
            // The record proves hostctl created it, also outside a uid_range changed since.
            let range = if self.uid_range.contains(unix.uid) {
                self.uid_range
            } else {
                UidRange::new(unix.uid, unix.uid)
                    .map_err(|e| anyhow::anyhow!("account {}: {e}", unix.name))?
            };
            LocalAccounts::new(self.runner.clone(), range)
                .remove(&unix)
                .await
                .with_context(|| format!("cannot remove the account {}", unix.name))?;
            record.accounts.retain(|a| a.name != account.name);
            state_dir.save(record)?;
        }
        if !report.php_failed.is_empty() {
            let failed: Vec<String> = report
                .php_failed
                .iter()
                .map(|f| {
                    let sites: Vec<String> = f.sites.iter().map(ToString::to_string).collect();
                    format!(
                        "PHP {} (sites {}): {}",
                        f.version.as_str(),
                        sites.join(", "),
                        f.reason
                    )
                })
                .collect();
            anyhow::bail!(
                "the {} serves the node, but these PHP versions' masters do not run, so their \
                 sites answer 502 until an apply starts them: {}",
                self.web_server_name(),
                failed.join("; ")
            );
        }
        Ok(report)
    }

    fn create_layout(&self) -> anyhow::Result<()> {
        let layout = &self.paths.layout;
        for dir in [
            &layout.sites_root,
            &layout.php_run_dir,
            &layout.log_dir,
            &layout.cert_dir,
        ] {
            #[allow(
                clippy::disallowed_methods,
                reason = "the node's own directories under the root hostctl was given"
            )]
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }

    fn php_tree(&self, version: PhpVersion) -> ManagedTree {
        ManagedTree::new(
            self.paths.php_root.join(version.as_str()),
            self.runner.clone(),
        )
    }

    fn web_server_name(&self) -> String {
        self.server.as_str().to_owned()
    }

    /// Live files that differ from what `desired` renders, and servers that should run but do
    /// not (the web server whenever its tree is live, and each PHP master whose tree is live).
    pub async fn drift(&self, desired: &[Website]) -> anyhow::Result<DriftReport> {
        let mut report = DriftReport::default();
        let web_live = self.paths.web_tree().join("live");
        for drift in self.web.drift(desired).await? {
            let (kind, path) = drift_parts(drift);
            report.files.push(DriftEntry {
                side: Side::Web,
                server: self.web_server_name(),
                kind,
                live_path: web_live.join(&path),
                path,
            });
        }
        for drift in self.php.drift(desired).await? {
            let (kind, path) = drift_parts(drift);
            let live_path = match path.split_once('/') {
                Some((version, rest)) => self.paths.php_root.join(version).join("live").join(rest),
                None => self.paths.php_root.join(&path),
            };
            report.files.push(DriftEntry {
                side: Side::Php,
                server: "php-fpm".to_owned(),
                kind,
                path,
                live_path,
            });
        }
        let web_tree = ManagedTree::new(self.paths.web_tree(), self.runner.clone());
        let web_pid = web_pid_file(&self.paths.root, self.paths.mode, self.server);
        if web_tree.current()?.is_some() && server_pid(&web_pid, &self.web_identity).is_none() {
            report.not_running.push(NotRunning {
                server: self.web_server_name(),
                pid_file: web_pid,
            });
        }
        for install in self.php.installed() {
            let pid_file = self.paths.php_pid_file(install.version);
            if self.php_tree(install.version).current()?.is_some()
                && self.php.running_master(install.version).is_none()
            {
                report.not_running.push(NotRunning {
                    server: format!("php-fpm {}", install.version.as_str()),
                    pid_file,
                });
            }
        }
        Ok(report)
    }

    /// What an apply of `desired` would write: a unified diff per drifted file, from the live
    /// file to what would be rendered. Changes nothing.
    pub async fn diff(&self, desired: &[Website]) -> anyhow::Result<(DriftReport, Vec<FileDiff>)> {
        let report = self.drift(desired).await?;
        let mut web_files: BTreeMap<String, String> = BTreeMap::new();
        let mut php_files: BTreeMap<String, String> = BTreeMap::new();
        for site in desired {
            for file in self.web.render_site(site)? {
                web_files.insert(file.path.to_string(), file.contents);
            }
            if let Some(version) = site.php_version {
                let pool = self.php.render_pool(site)?;
                php_files.insert(format!("{}/{}", version.as_str(), pool.path), pool.contents);
            }
        }
        for install in self.php.installed() {
            if let Some(generation) = self.php_tree(install.version).current()? {
                let main = self.php.render_main_config(install.version, &generation)?;
                php_files.insert(
                    format!("{}/{}", install.version.as_str(), main.path),
                    main.contents,
                );
            }
        }
        let mut diffs = Vec::new();
        for entry in &report.files {
            let wanted = match entry.side {
                Side::Web => web_files.get(&entry.path),
                Side::Php => php_files.get(&entry.path),
            };
            let new = match entry.kind {
                DriftKind::Unexpected => Some(""),
                _ => wanted.map(String::as_str),
            };
            let Some(new) = new else {
                diffs.push(FileDiff {
                    server: entry.server.clone(),
                    kind: entry.kind,
                    live_path: entry.live_path.clone(),
                    diff: None,
                    note: Some(
                        "written around the sites (the server's main configuration, or the \
                         part the distro's configuration includes); apply regenerates it for \
                         the new generation"
                            .to_owned(),
                    ),
                });
                continue;
            };
            let shown = entry.live_path.display().to_string();
            let (old, old_name) = match entry.kind {
                DriftKind::Missing => (String::new(), "/dev/null".to_owned()),
                _ => (
                    std::fs::read_to_string(&entry.live_path)
                        .with_context(|| format!("cannot read {shown}"))?,
                    format!("{shown} (live)"),
                ),
            };
            let new_name = match entry.kind {
                DriftKind::Unexpected => "/dev/null".to_owned(),
                _ => format!("{shown} (after apply)"),
            };
            let diff = Some(unified(&old, new, &old_name, &new_name));
            let note = None;
            diffs.push(FileDiff {
                server: entry.server.clone(),
                kind: entry.kind,
                live_path: entry.live_path.clone(),
                diff,
                note,
            });
        }
        Ok((report, diffs))
    }
}

/// A unified diff with three lines of context.
fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

fn drift_parts(drift: Drift) -> (DriftKind, String) {
    match drift {
        Drift::Missing(p) => (DriftKind::Missing, p.to_string()),
        Drift::Modified(p) => (DriftKind::Modified, p.to_string()),
        Drift::Unexpected(p) => (DriftKind::Unexpected, p.to_string()),
    }
}

/// Debian's PHP-FPM binaries, then each `[[node.php]]` entry asked on its own, so a listed
/// binary that is unusable is named. A listed installation replaces Debian's of the same
/// version; two listed installations of one version are refused.
async fn php_installations(
    runner: &dyn CommandRunner,
    entries: &[PhpInstallEntry],
) -> anyhow::Result<Vec<PhpInstallation>> {
    let system = DiscoveryConfig {
        system_dir: Some(PathBuf::from(SYSTEM_PHP_DIR)),
        prefix_installs: Vec::new(),
    };
    let mut found = discover(runner, &system)
        .await
        .with_context(|| format!("cannot look for PHP-FPM in {SYSTEM_PHP_DIR}"))?;
    let mut listed: BTreeMap<PhpVersion, usize> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let one = DiscoveryConfig {
            system_dir: None,
            prefix_installs: vec![PrefixInstall {
                fpm_binary: entry.fpm_binary.clone(),
                php_ini: entry.php_ini.clone(),
                scan_dir: entry.scan_dir.clone(),
            }],
        };
        let install = discover(runner, &one)
            .await
            .with_context(|| format!("cannot check node.php[{i}]"))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                invalid(format!(
                    "node.php[{i}].fpm_binary: {} is not a usable PHP-FPM 8.0 to 8.4 \
                     (the warning above says why)",
                    entry.fpm_binary.display()
                ))
            })?;
        if let Some(first) = listed.insert(install.version, i) {
            return Err(invalid(format!(
                "node.php[{i}]: PHP {} is already given by node.php[{first}]",
                install.version.as_str()
            )));
        }
        found.retain(|f| f.version != install.version);
        found.push(install);
    }
    found.sort_by_key(|i| i.version);
    Ok(found)
}

/// Whether `runner` runs processes as root (`id -u`).
async fn is_root(runner: &dyn CommandRunner) -> anyhow::Result<bool> {
    let out = runner
        .run(&Command::new("id").arg("-u"))
        .await
        .context("cannot run id -u")?;
    if !out.success() {
        anyhow::bail!("id -u failed: {}", out.stderr.trim());
    }
    Ok(out.stdout.trim() == "0")
}

/// Stops every server hostctl started under `root` (the web servers first, then each PHP-FPM
/// master), gracefully, and waits until they and their workers are gone; a server still there
/// after 15 s is killed. Servers it did not start (another command line, or Debian's services
/// in system mode) are left alone.
pub async fn stop(
    root: &Path,
    runner: &dyn CommandRunner,
) -> anyhow::Result<(Vec<Stopped>, Vec<Skipped>)> {
    let mut servers = vec![
        SupervisedServer {
            name: "nginx".to_owned(),
            pid_file: web_pid_file(root, Mode::Prefix, NodeServer::Nginx),
            stop_signal: StopSignal::Quit,
        },
        SupervisedServer {
            name: "apache".to_owned(),
            pid_file: web_pid_file(root, Mode::Prefix, NodeServer::Apache),
            stop_signal: StopSignal::Term,
        },
    ];
    servers.extend(php_fpm_servers(
        &HostLayout::under(root.join("node")).php_run_dir,
    ));
    stop_servers(root, &servers, runner, STOP_WAIT)
        .await
        .context("cannot stop the node's servers")
}

/// Whether the web server of a node at `root` in `mode` is up: the one hostctl runs under
/// `root`, or the distro's service.
pub fn web_server_running(root: &Path, mode: Mode, server: NodeServer) -> bool {
    let pid_file = web_pid_file(root, mode, server);
    match mode {
        // The one `hostctl node stop` would stop: a stale pid file naming another process does
        // not hold a switch back.
        Mode::Prefix => started_under(&pid_file, root).is_some(),
        Mode::System => running(&pid_file).is_some(),
    }
}

/// The command that stops the web server of a node at `root` in `mode`.
pub fn stop_command(root: &Path, mode: Mode, server: NodeServer) -> String {
    match (mode, server) {
        (Mode::Prefix, _) => format!("hostctl node stop --root {}", root.display()),
        (Mode::System, NodeServer::Nginx) => {
            format!("service {} stop", NginxService::default().service)
        }
        (Mode::System, NodeServer::Apache) => {
            format!("service {} stop", ApacheService::default().service)
        }
    }
}
