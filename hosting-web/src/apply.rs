//! The transactional apply path shared by NGINX and Apache, in both ways of running them
//! ([`Management`](crate::Management)).
//!
//! Supervised, the server runs under a server root the SDK owns:
//! ```text
//! ROOT/managed/live -> generations/<n>   main config + sites/*.conf of one generation
//! ROOT/run, ROOT/logs, ROOT/tmp          pid file, server logs, temporary files
//! ```
//! It is started with `ROOT/managed/live/<main config>`, whose include names its own
//! generation's `sites/`. As a distro service, the distro's main configuration includes the
//! SDK's include file, which includes `MANAGED_ROOT/live/hosting.conf`:
//! ```text
//! MANAGED_ROOT/live -> generations/<n>   hosting.conf + test.conf + sites/*.conf
//! MANAGED_ROOT/tmp                       what `nginx -t` writes while testing test.conf
//! ```
//!
//! An apply renders every site, stages a new generation, runs the server's own test on it
//! (supervised: its main config; service: `test.conf`, a main config that is only tested, with
//! the distro's modules around the staged `hosting.conf`), swaps `live`, and as a service
//! then tests the whole distro configuration (`nginx -t`, `apache2ctl -t`) before it reloads.
//! It reloads gracefully (or starts the server), and asks the sites over HTTP. Any failure
//! before the reload leaves the running server untouched and the live tree as it was; a
//! failure after it points `live` back at the previous generation and reloads again. The
//! health check asks only the sites whose files changed, each on a path its own server block
//! answers without PHP.
//!
//! When the test refuses a set, `refused_sites` tells whose fault it is without touching what
//! is live: trial generations, each staged beside the live one, tested and discarded, put the
//! changed sites' new files on top of the live files of the rest
//! ([`find_refused`](hosting_core::web::find_refused)).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hosting_core::model::{Website, WebsiteId};
use hosting_core::process::{self, Identity};
use hosting_core::tree::{FileUndo, ManagedTree, Staged, replace_file};
use hosting_core::types::ConfinedPath;
use hosting_core::web::{RenderedFile, find_refused};
use hosting_core::{ApplyReport, Command, CommandRunner, Drift, Error, RefusedSite, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::context::first_serving_name;
use crate::service::{ServiceParts, holds};
use crate::stage::run_check;

/// How long the server may take to answer a site after a reload.
const HEALTH_WAIT: Duration = Duration::from_secs(10);
/// Generations kept besides the live one.
const KEEP_GENERATIONS: usize = 2;

/// The name the main configuration answers the generation probe on; `.invalid` can never be a
/// customer's domain.
pub(crate) const HEALTH_HOST: &str = "hosting-health.invalid";
/// The path of the generation probe.
const GENERATION_PATH: &str = "/.hosting-generation";
/// Consecutive answers from the new generation before the reload counts as complete: after a
/// graceful reload, old workers may still accept a connection or two.
const GENERATION_CONFIRMATIONS: usize = 5;
/// The path every site's own server block answers with `204` and an `X-Hosting-Site` header
/// naming the site's first serving name (see the site templates).
const SITE_PROBE_PATH: &str = "/.hosting-site";
/// Site probes sent at once: enough to hide the round trips of a large batch, few enough not to
/// crowd out the customers' own requests.
const PROBES_IN_FLIGHT: usize = 16;

/// A service generation's http-level part, which the SDK's include file includes from `live`.
pub(crate) const SERVICE_SNIPPET: &str = "hosting.conf";
/// A service generation's main configuration that is only ever tested.
pub(crate) const SERVICE_TEST: &str = "test.conf";
/// The service program every service is reloaded and started through.
const SERVICE: &str = "service";

/// The generation a sites directory belongs to: the name of the directory holding it.
pub(crate) fn generation_of(sites_dir: &Path) -> Result<String> {
    sites_dir
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::Invalid {
            field: "sites_dir".into(),
            reason: format!("{} has no parent directory name", sites_dir.display()).into(),
        })
}

/// Who runs a server, as the apply path sees it.
#[derive(Debug, Clone)]
pub(crate) enum Run<'a> {
    /// The SDK, under this server root.
    Supervised(&'a Path),
    /// The distro's service.
    Service(ServiceParts<'a>),
}

/// What the shared apply path needs from one web server.
#[async_trait]
pub(crate) trait Managed: Send + Sync {
    /// `nginx` or `apache2`, for errors and logs.
    const NAME: &'static str;
    /// The supervised main configuration's file name inside a generation.
    const MAIN_CONFIG: &'static str;
    /// Directories the supervised server writes under its root.
    const RUNTIME_DIRS: &'static [&'static str];
    /// Directories the configuration test of a service writes under the managed root.
    const SERVICE_DIRS: &'static [&'static str];

    /// The server's binary (by path or by name in `PATH`).
    fn binary(&self) -> &Path;
    /// Who runs the server.
    fn run(&self) -> Run<'_>;
    /// The process seam.
    fn runner(&self) -> &dyn CommandRunner;
    /// The port sites answer plain HTTP on.
    fn http_port(&self) -> u16;
    /// The site files of `site` (paths under a generation).
    fn render_site_files(&self, site: &Website) -> Result<Vec<RenderedFile>>;
    /// The files of a generation at `generation` besides the sites: the main configuration
    /// (supervised), or [`SERVICE_SNIPPET`] and [`SERVICE_TEST`] for `sites` (service).
    fn render_frame(&self, generation: &Path, sites: &[Website]) -> Result<Vec<RenderedFile>>;
    /// The server's own test of the staged generation at `generation`.
    async fn test_staged(&self, generation: &Path) -> Result<()>;
    /// Starts the server supervised under `root` on the live main config.
    fn start_command(&self, root: &Path, live_main: &Path) -> Command;
    /// Asks the supervised server (pid `pid`) to reload its configuration gracefully.
    fn reload_command(&self, live_main: &Path, pid: &str) -> Command;
}

/// Where `server`'s managed tree is.
fn tree_root<S: Managed + ?Sized>(server: &S) -> PathBuf {
    match server.run() {
        Run::Supervised(root) => root.join("managed"),
        Run::Service(service) => service.managed_root.to_owned(),
    }
}

fn tree<S: Managed + ?Sized>(server: &S, runner: std::sync::Arc<dyn CommandRunner>) -> ManagedTree {
    ManagedTree::new(tree_root(server), runner)
}

/// Where the running server keeps its pid.
fn pid_file<S: Managed + ?Sized>(server: &S) -> PathBuf {
    match server.run() {
        Run::Supervised(root) => root.join("run").join(format!("{}.pid", S::NAME)),
        Run::Service(service) => service.pid_file.to_owned(),
    }
}

/// What the SDK's include file must hold.
fn include_contents<S: Managed + ?Sized>(service: &ServiceParts<'_>) -> Result<String> {
    let target = service.managed_root.join("live").join(SERVICE_SNIPPET);
    crate::service::include_contents(S::NAME, service.managed_root, service.include_line, &target)
}

fn site_files<S: Managed + ?Sized>(
    server: &S,
    sites: &[Website],
) -> Result<BTreeMap<ConfinedPath, (WebsiteId, String)>> {
    let mut files = BTreeMap::new();
    for site in sites {
        for file in server.render_site_files(site)? {
            if files
                .insert(file.path.clone(), (site.id, file.contents))
                .is_some()
            {
                return Err(Error::Invalid {
                    field: "sites".into(),
                    reason: format!("website {} is listed twice", site.id).into(),
                });
            }
        }
    }
    Ok(files)
}

/// `WebServer` for a [`Managed`] backend with inherent `render_site`, `validate`, `kind` and
/// `directive_policy`
/// and a `config.runner`: every such server takes the shared apply path.
macro_rules! managed_web_server {
    ($ty:ident) => {
        #[async_trait::async_trait]
        impl hosting_core::WebServer for $ty {
            fn kind(&self) -> hosting_core::types::WebServerKind {
                $ty::kind(self)
            }

            fn directive_policy(&self) -> hosting_core::DirectivePolicy {
                $ty::directive_policy(self)
            }

            fn render_site(
                &self,
                site: &hosting_core::model::Website,
            ) -> hosting_core::Result<Vec<hosting_core::RenderedFile>> {
                $ty::render_site(self, site)
            }

            async fn validate(&self, staged_root: &std::path::Path) -> hosting_core::Result<()> {
                $ty::validate(self, staged_root).await
            }

            async fn apply(
                &self,
                sites: &[hosting_core::model::Website],
            ) -> hosting_core::Result<hosting_core::ApplyReport> {
                $crate::apply::apply(self, self.config.runner.clone(), sites).await
            }

            async fn drift(
                &self,
                sites: &[hosting_core::model::Website],
            ) -> hosting_core::Result<Vec<hosting_core::Drift>> {
                $crate::apply::drift(self, self.config.runner.clone(), sites)
            }

            async fn refused_sites(
                &self,
                sites: &[hosting_core::model::Website],
            ) -> hosting_core::Result<Vec<hosting_core::RefusedSite>> {
                $crate::apply::refused_sites(self, self.config.runner.clone(), sites).await
            }

            async fn servers(&self) -> hosting_core::Result<Vec<hosting_core::node::ServerState>> {
                Ok(vec![hosting_core::node::ServerState {
                    name: $ty::kind(self).to_string(),
                    pid: $crate::apply::master_pid(self),
                }])
            }
        }
    };
}
pub(crate) use managed_web_server;

/// Creates the directories the server (or its configuration test) writes.
fn create_dirs<S: Managed + ?Sized>(server: &S) -> Result<()> {
    let (dirs_root, dirs) = match server.run() {
        Run::Supervised(root) => (root.to_owned(), S::RUNTIME_DIRS),
        Run::Service(service) => (service.managed_root.to_owned(), S::SERVICE_DIRS),
    };
    for dir in dirs {
        let dir = dirs_root.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::backend(S::NAME, format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    Ok(())
}

/// The shared apply path; see the module docs.
pub(crate) async fn apply<S: Managed>(
    server: &S,
    runner: std::sync::Arc<dyn CommandRunner>,
    sites: &[Website],
) -> Result<ApplyReport> {
    create_dirs(server)?;
    let service = match server.run() {
        Run::Service(service) => Some(service),
        Run::Supervised(_) => None,
    };
    let include = match &service {
        Some(service) => Some((service.include_file, include_contents::<S>(service)?)),
        None => None,
    };
    let tree = tree(server, runner);
    let desired = site_files(server, sites)?;
    let mut live = tree.read_live()?;
    // The files around the sites: unchanged when the live ones are what the current
    // generation renders to for these sites.
    let frame_current = match tree.current()? {
        Some(dir) => {
            let mut same = true;
            for file in server.render_frame(&dir, sites)? {
                // Removed from `live` whatever the answer: they are not sites.
                same &= live.remove(&file.path).as_ref() == Some(&file.contents);
            }
            same
        }
        None => false,
    };
    let changed: Vec<WebsiteId> = {
        let mut ids: Vec<WebsiteId> = desired
            .iter()
            .filter(|(path, (_, contents))| live.get(*path) != Some(contents))
            .map(|(_, (id, _))| *id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let removed: Vec<ConfinedPath> = live
        .keys()
        .filter(|p| !desired.contains_key(*p))
        .cloned()
        .collect();
    let running = running_pid(server).await?;
    let old_workers = running
        .as_deref()
        .and_then(|pid| pid.parse().ok())
        .map(process::children_of)
        .unwrap_or_default();
    let include_current = include
        .as_ref()
        .is_none_or(|(path, contents)| holds(path, contents));
    if changed.is_empty()
        && removed.is_empty()
        && frame_current
        && include_current
        && running.is_some()
    {
        return Ok(ApplyReport::default());
    }

    let staged = tree
        .stage_with(|generation| {
            let mut files: Vec<RenderedFile> = desired
                .iter()
                .map(|(path, (_, contents))| RenderedFile {
                    path: path.clone(),
                    contents: contents.clone(),
                })
                .collect();
            files.extend(server.render_frame(generation, sites)?);
            Ok(files)
        })
        .await?;
    if let Err(e) = server.test_staged(&staged.dir).await {
        tree.discard(&staged)?;
        return Err(e);
    }
    tree.activate(&staged)?;
    let include_undo = match &include {
        Some((path, contents)) => match replace_file(path, Some(contents)) {
            Ok(undo) => Some(undo),
            Err(e) => {
                swap_back(server, &tree, &staged, None);
                return Err(e);
            }
        },
        None => None,
    };
    if let Some(service) = &service {
        let command = &service.system_test;
        let tool = command.program.display().to_string() + " -t";
        if let Err(e) = run_check(server.runner(), tool, command).await {
            swap_back(server, &tree, &staged, include_undo.as_ref());
            return Err(e);
        }
    }
    let live_main = tree.live().join(S::MAIN_CONFIG);
    if let Err(e) = reload(server, &live_main, running.as_deref()).await {
        restore(server, &tree, &staged, &live_main, include_undo.as_ref()).await;
        return Err(e);
    }
    let generation = generation_of(&staged.dir.join("sites"))?;
    if let Err(e) = check_health(server, &generation, sites, &changed).await {
        restore(server, &tree, &staged, &live_main, include_undo.as_ref()).await;
        return Err(e);
    }
    // Until the old workers are gone they may still serve with the old configuration, so the
    // caller must not remove what it used (a PHP pool on another version) before this returns.
    wait_for_exit(&old_workers).await;
    tree.prune(KEEP_GENERATIONS)?;
    Ok(ApplyReport {
        changed,
        removed,
        reloaded: true,
    })
}

/// The sites of `sites` the server's own test refuses ([`find_refused`]): each trial is a
/// generation staged beside the live one with the frame for `sites`, tested as an apply tests
/// it, and discarded. Nothing is activated or reloaded.
pub(crate) async fn refused_sites<S: Managed>(
    server: &S,
    runner: std::sync::Arc<dyn CommandRunner>,
    sites: &[Website],
) -> Result<Vec<RefusedSite>> {
    create_dirs(server)?;
    let tree = tree(server, runner);
    let live = tree.read_live()?;
    let tree = &tree;
    let trial = |files: Vec<RenderedFile>| async move {
        let staged = tree
            .stage_with(|generation| {
                let mut all = files;
                all.extend(server.render_frame(generation, sites)?);
                Ok(all)
            })
            .await?;
        let tested = server.test_staged(&staged.dir).await;
        tree.discard(&staged)?;
        tested
    };
    find_refused(sites, |site| server.render_site_files(site), &live, trial).await
}

/// Differences between the live tree and what `sites` render to.
pub(crate) fn drift<S: Managed>(
    server: &S,
    runner: std::sync::Arc<dyn CommandRunner>,
    sites: &[Website],
) -> Result<Vec<Drift>> {
    let tree = tree(server, runner);
    let mut desired: BTreeMap<ConfinedPath, String> = site_files(server, sites)?
        .into_iter()
        .map(|(path, (_, contents))| (path, contents))
        .collect();
    if let Some(dir) = tree.current()? {
        for file in server.render_frame(&dir, sites)? {
            desired.insert(file.path, file.contents);
        }
    }
    let mut live = tree.read_live()?;
    let mut out = Vec::new();
    for (path, contents) in desired {
        match live.remove(&path) {
            None => out.push(Drift::Missing(path)),
            Some(found) if found != contents => out.push(Drift::Modified(path)),
            Some(_) => {}
        }
    }
    out.extend(live.into_keys().map(Drift::Unexpected));
    Ok(out)
}

/// What the server's master is: its binary, and when the SDK runs it, a command line under its
/// root. A distro's service is known by its binary alone.
fn identity<S: Managed + ?Sized>(server: &S) -> Identity {
    match server.run() {
        Run::Supervised(root) => Identity::new(server.binary(), root),
        Run::Service(_) => Identity::service(server.binary()),
    }
}

/// The running master's pid, when the pid file names it ([`process::inspect`]).
pub(crate) fn master_pid<S: Managed + ?Sized>(server: &S) -> Option<u32> {
    process::server_pid(&pid_file(server), &identity(server))
}

/// The running master's pid, when the pid file names it. A pid file that names no server (left
/// by a server killed with its machine, its pid dead or since taken by another process) is
/// removed, so the server is started, and the process the file named is never signalled.
async fn running_pid<S: Managed + ?Sized>(server: &S) -> Result<Option<String>> {
    let pid_file = pid_file(server);
    let found = process::clear_stale(&pid_file, &identity(server))?;
    if found.is_stale() {
        tracing::warn!(
            server = S::NAME,
            pid_file = %pid_file.display(),
            found = ?found,
            "the pid file names no running server (left by a crash?): removed, the server will be started"
        );
    }
    Ok(found.server().map(|pid| pid.to_string()))
}

/// Reloads the running server (pid `running`) gracefully, or starts it.
async fn reload<S: Managed + ?Sized>(
    server: &S,
    live_main: &Path,
    running: Option<&str>,
) -> Result<()> {
    let command = match (server.run(), running) {
        (Run::Supervised(_), Some(pid)) => server.reload_command(live_main, pid),
        (Run::Supervised(root), None) => server.start_command(root, live_main),
        (Run::Service(service), Some(_)) => Command::new(SERVICE).arg(service.name).arg("reload"),
        (Run::Service(service), None) => Command::new(SERVICE).arg(service.name).arg("start"),
    };
    let out = server.runner().run(&command).await?;
    if out.success() {
        Ok(())
    } else {
        let shown = std::iter::once(command.program.as_os_str())
            .chain(command.args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        Err(Error::Validation {
            tool: shown,
            output: format!("{}{}", out.stdout.trim(), out.stderr.trim()),
        })
    }
}

/// Points `live` back at the previous generation and puts the include file back, before the
/// server was asked to reload: it still runs what it ran.
fn swap_back<S: Managed + ?Sized>(
    server: &S,
    tree: &ManagedTree,
    staged: &Staged,
    include_undo: Option<&FileUndo>,
) {
    if let Err(e) = tree.roll_back(staged) {
        tracing::error!(server = S::NAME, error = %e, "rollback failed");
    }
    if let (Run::Service(service), Some(undo)) = (server.run(), include_undo)
        && let Err(e) = undo.restore(service.include_file)
    {
        tracing::error!(
            server = S::NAME,
            file = %service.include_file.display(),
            error = %e,
            "cannot put the include file back"
        );
    }
}

/// [`swap_back`], then makes the server load the previous files again: a supervised server is
/// reloaded (or started) when there was a previous generation, a service when it runs.
async fn restore<S: Managed + ?Sized>(
    server: &S,
    tree: &ManagedTree,
    staged: &Staged,
    live_main: &Path,
    include_undo: Option<&FileUndo>,
) {
    swap_back(server, tree, staged, include_undo);
    if tree.current().ok().flatten() != staged.previous {
        return;
    }
    let running = running_pid(server).await.ok().flatten();
    let reload_now = match server.run() {
        Run::Supervised(_) => staged.previous.is_some(),
        Run::Service(_) => running.is_some(),
    };
    if reload_now && let Err(e) = reload(server, live_main, running.as_deref()).await {
        tracing::error!(server = S::NAME, error = %e, "reload after rollback failed");
    }
}

/// The server answers from `generation` (several times in a row), then every site in
/// `changed` answers its own probe path. Unchanged sites were proven by an earlier apply and
/// the generation probe proves the server loaded them again; asking only the changed ones
/// keeps a one-site change from touching a thousand sites. The probe path is answered by
/// the site's server block itself, so no PHP worker is started for it.
async fn check_health<S: Managed + ?Sized>(
    server: &S,
    generation: &str,
    sites: &[Website],
    changed: &[WebsiteId],
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + HEALTH_WAIT;
    let mut confirmed = 0;
    while confirmed < GENERATION_CONFIRMATIONS {
        let answer = probe(server.http_port(), HEALTH_HOST, GENERATION_PATH).await;
        match answer {
            Ok((_, headers)) if header(&headers, "x-hosting-generation") == Some(generation) => {
                confirmed += 1;
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(Error::backend(
                    S::NAME,
                    format!("the server does not serve generation {generation} after the reload"),
                ));
            }
            _ => {
                confirmed = 0;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let port = server.http_port();
    let names: Vec<String> = sites
        .iter()
        .filter(|site| changed.binary_search(&site.id).is_ok())
        .map(|site| first_serving_name(site).as_str().to_owned())
        .collect();
    let mut pending = names.into_iter();
    let mut probes = tokio::task::JoinSet::new();
    loop {
        while probes.len() < PROBES_IN_FLIGHT {
            let Some(name) = pending.next() else { break };
            probes.spawn(site_answers(port, name, deadline));
        }
        let Some(done) = probes.join_next().await else {
            return Ok(());
        };
        let failure = match done {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(e) => format!("the probe task failed: {e}"),
        };
        probes.abort_all();
        return Err(Error::backend(S::NAME, failure));
    }
}

/// Asks `name`'s probe path until the site's own block answers or `deadline` passes.
async fn site_answers(
    port: u16,
    name: String,
    deadline: tokio::time::Instant,
) -> std::result::Result<(), String> {
    loop {
        let why = match probe(port, &name, SITE_PROBE_PATH).await {
            Ok((204, head)) if header(&head, "x-hosting-site") == Some(name.as_str()) => {
                return Ok(());
            }
            Ok((status, _)) => format!("its probe {SITE_PROBE_PATH} answered {status}"),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{name} does not answer after the reload: {why}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (up to the servers' shutdown timeout) until none of `pids` is alive any more.
async fn wait_for_exit(pids: &[u32]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    while pids.iter().any(|pid| process::alive(*pid)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of header `name` (lower-case) in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Status code and response head of `HEAD path` for `host` on 127.0.0.1:`port`.
async fn probe(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("HEAD {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer")
        })?;
    Ok((status, head))
}
