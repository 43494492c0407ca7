//! Applying PHP sites to a real node: NGINX in front of PHP-FPM 8.2 (ondemand pools, one per
//! site), both started and reloaded by the SDK under a temporary prefix.
//!
//! ```text
//! ./scripts/with-servers.sh cargo bench -p hosting-benches --bench web_apply
//! ```
//!
//! For each size N (100, 1,000 and 10,000), on a fresh node, after waiting (up to 3 min) for
//! the CPU to be under 25% busy, which it reports:
//! 1. **Pieces**, timed one by one through the public API on scratch trees (nothing running):
//!    `render_site` and `render_pool` for every site, `ManagedTree::stage` (write, then one
//!    `sync -f`) of the vhosts and of the pools, `Nginx::validate` (`nginx -t`) and
//!    `PhpFpm::validate` (`php-fpm -t`) on complete staged trees, `ManagedTree::activate`.
//! 2. **The batch**: the node runs one site (servers started by a first apply), then N new
//!    sites go in through one `hosting_core::node::apply_node` call. The `WebServer` and
//!    `PhpRuntime` it gets are thin wrappers that time each `apply`, and every process goes
//!    through a `CommandRunner` that times it, so the steps inside the real path (render +
//!    write, `sync`, `-t`, swap + reload signal, reload + health check) are read off one run
//!    without changing the library. Up to 1,000 sites the batch is repeated on two more fresh
//!    nodes, for its spread.
//! 3. **Baseline, same run, same final tree**: `nginx -t` by hand plus `kill -HUP` until the
//!    master's workers are all new ones (old gone); `php-fpm -t` plus `kill -USR2` until FPM
//!    logs "ready to handle connections" again; `HEAD /` on every site in turn, while the
//!    workers the apply started are idle, and again after FPM's reload stopped them.
//! 4. At 1,000: **single-site changes**. 30 times, one site's `post_max_size` flips between
//!    64M and 128M (it changes both the vhost's `client_max_body_size` and the pool) and
//!    `apply_node` runs; p50/p99 from render to reloaded, beside the servers' own test and
//!    reload (step 3) repeated as often.
//! 5. When a batch fails (rolled back), what can be measured without it: PHP-FPM reloaded by
//!    hand onto every pool, what one worker costs at that pool count, and the web server's own
//!    `apply` with PHP-FPM stopped beside nginx's own test and reload of the same tree. At
//!    10,000 the same tree with per-site logs is also handed to `nginx -t`.
//!
//! Every site has an `index.php` owned by its user (the users of `HOSTING_TEST_SYSTEM_USERS`,
//! in turn), so a request to a site runs PHP (the baseline's `HEAD /`; the SDK's own health check
//! asks each changed site's `/.hosting-site`, which its server block answers without PHP).
//!
//! Needs `HOSTING_TEST_NGINX`, `HOSTING_TEST_PHP_FPM_82` and `HOSTING_TEST_SYSTEM_USERS`
//! (`scripts/with-servers.sh` exports them); without one it prints `skipped: VAR not set`.
//! `HOSTING_BENCH_WEB_SIZES=100,1000` and `HOSTING_BENCH_WEB_CHANGES=30` override the sizes and
//! the number of single-site changes; `HOSTING_BENCH_WEB_SIMULATE_FAILURE=1` takes the path a
//! failed batch takes (to check it on a small node). Every server started here is stopped
//! (SIGQUIT to its master) when its node is dropped, also on a panic, and a memory guard stops
//! PHP-FPM's workers if the machine runs short of memory. Without `--bench` (as
//! `cargo test --all-targets` runs it) a smoke pass applies 3 sites and 2 changes.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot set up should stop

mod stats;
mod web_sites;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hosting_core::model::{PhpSettings, Website};
use hosting_core::node::apply_node;
use hosting_core::php::{PhpInstallation, PhpRuntime};
use hosting_core::system::SystemRunner;
use hosting_core::tree::ManagedTree;
use hosting_core::types::{PhpBytes, PhpVersion, SystemUser, WebServerKind};
use hosting_core::{
    ApplyReport, Command, CommandOutput, CommandRunner, Drift, HostLayout, RenderedFile, Result,
    WebServer,
};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, PhpFpm, PrefixInstall};
use hosting_tests::{TempDir, free_port};
use hosting_web::{LogMode, Management, Nginx, NginxConfig, Ports};

#[derive(Clone)]
struct Scale {
    sizes: Vec<usize>,
    /// The size the single-site changes run on.
    change_node: usize,
    changes: usize,
    /// Sizes from which the per-site-logs tree is also tested.
    per_site_check_from: usize,
    /// How long to wait for a quiet machine before each size.
    settle: Duration,
    /// Extra fresh nodes the batch is repeated on, up to `repeat_up_to` sites, for its spread.
    repeats: usize,
    repeat_up_to: usize,
}

fn scale() -> Scale {
    let full = std::env::args().any(|a| a == "--bench");
    let list = |var: &str| -> Option<Vec<usize>> {
        let text = std::env::var(var).ok()?;
        Some(
            text.split(',')
                .map(|n| n.trim().parse().expect("a list of numbers"))
                .collect(),
        )
    };
    let mut scale = if full {
        Scale {
            sizes: vec![100, 1_000, 10_000],
            change_node: 1_000,
            changes: 30,
            per_site_check_from: 10_000,
            settle: Duration::from_secs(180),
            repeats: 2,
            repeat_up_to: 1_000,
        }
    } else {
        Scale {
            sizes: vec![3],
            change_node: 3,
            changes: 2,
            per_site_check_from: usize::MAX,
            settle: Duration::ZERO,
            repeats: 0,
            repeat_up_to: 0,
        }
    };
    if let Some(sizes) = list("HOSTING_BENCH_WEB_SIZES") {
        scale.sizes = sizes;
    }
    if let Some(changes) = list("HOSTING_BENCH_WEB_CHANGES") {
        scale.changes = changes[0];
    }
    scale
}

/// The binaries and users this machine provides.
struct Machine {
    nginx: PathBuf,
    php82: PathBuf,
    users: Vec<SystemUser>,
}

fn machine() -> Option<Machine> {
    let var = |name: &str| match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            println!("skipped: {name} not set");
            None
        }
    };
    let nginx = var("HOSTING_TEST_NGINX")?.into();
    let php82 = var("HOSTING_TEST_PHP_FPM_82")?.into();
    let users = var("HOSTING_TEST_SYSTEM_USERS")?
        .split(',')
        .map(|u| u.trim().parse().expect("valid test user"))
        .collect();
    Some(Machine {
        nginx,
        php82,
        users,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale = scale();
    let Some(machine) = machine() else {
        return;
    };
    println!(
        "nginx {}, php-fpm {}, users {:?}; open files: {}; load average: {}",
        machine.nginx.display(),
        machine.php82.display(),
        machine
            .users
            .iter()
            .map(SystemUser::as_str)
            .collect::<Vec<_>>(),
        open_files_limit(),
        web_sites::load_average()
    );
    for &n in &scale.sizes {
        let first = run_size(&machine, &scale, n).await;
        if n <= scale.repeat_up_to && scale.repeats > 0 {
            let mut totals: Vec<Duration> = first.into_iter().collect();
            for _ in 0..scale.repeats {
                println!("({})", web_sites::settle(scale.settle));
                match batch_only(&machine, n).await {
                    Ok(took) => totals.push(took),
                    Err(e) => println!("repeat failed: {e}"),
                }
            }
            let mut sorted = totals.clone();
            sorted.sort();
            println!(
                "apply_node of {n} new sites on {} fresh nodes: {} (median {})",
                totals.len(),
                totals
                    .iter()
                    .map(|d| secs(*d))
                    .collect::<Vec<_>>()
                    .join(", "),
                sorted
                    .get(sorted.len() / 2)
                    .map_or("-".to_owned(), |d| secs(*d))
            );
        }
    }
    println!(
        "after: CPU {:.0}% busy over 1 s, load average {}",
        web_sites::cpu_busy_percent(Duration::from_secs(1)),
        web_sites::load_average()
    );
}

// ---------------------------------------------------------------------------------------------
// Timing without touching the library: a runner and two trait wrappers that record events.

#[derive(Debug, Clone)]
struct Event {
    /// `$ nginx -t` for a process, `web.apply` / `php.apply` for an SDK call.
    what: String,
    start: Instant,
    end: Instant,
}

impl Event {
    fn took(&self) -> Duration {
        self.end - self.start
    }
}

#[derive(Debug, Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn record(&self, what: String, start: Instant) {
        let end = Instant::now();
        self.events
            .lock()
            .expect("recorder")
            .push(Event { what, start, end });
    }

    fn take(&self) -> Vec<Event> {
        let mut events = std::mem::take(&mut *self.events.lock().expect("recorder"));
        events.sort_by_key(|e| e.start);
        events
    }
}

/// Runs real processes and records how long each took.
#[derive(Debug)]
struct TimingRunner(Arc<Recorder>);

#[async_trait]
impl CommandRunner for TimingRunner {
    async fn run(&self, command: &Command) -> Result<CommandOutput> {
        let start = Instant::now();
        let out = SystemRunner.run(command).await;
        self.0.record(format!("$ {}", describe(command)), start);
        out
    }
}

/// `nginx -t`, `php-fpm8.2 (start)`, `kill -HUP`, `sync`...
fn describe(command: &Command) -> String {
    let program = command
        .program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = command
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if program == "kill" || program == "sync" {
        return format!("{program} {}", args.first().map_or("", String::as_str));
    }
    match ["-t", "-v", "-m"]
        .iter()
        .find(|flag| args.iter().any(|a| a == *flag))
    {
        Some(flag) => format!("{program} {flag}"),
        None => format!("{program} (start)"),
    }
}

/// The node's [`Nginx`], timing each `apply`.
#[derive(Debug)]
struct TimedWeb<'a>(&'a Nginx, &'a Recorder);

#[async_trait]
impl WebServer for TimedWeb<'_> {
    fn kind(&self) -> WebServerKind {
        WebServer::kind(self.0)
    }
    fn directive_policy(&self) -> hosting_core::DirectivePolicy {
        WebServer::directive_policy(self.0)
    }
    fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        Nginx::render_site(self.0, site)
    }
    async fn validate(&self, staged_root: &Path) -> Result<()> {
        Nginx::validate(self.0, staged_root).await
    }
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        let start = Instant::now();
        let out = WebServer::apply(self.0, sites).await;
        self.1.record("web.apply".to_owned(), start);
        out
    }
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        WebServer::drift(self.0, sites).await
    }
}

/// The node's [`PhpFpm`], timing each `apply`.
#[derive(Debug)]
struct TimedPhp<'a>(&'a PhpFpm, &'a Recorder);

#[async_trait]
impl PhpRuntime for TimedPhp<'_> {
    async fn installed(&self) -> Result<Vec<PhpInstallation>> {
        PhpRuntime::installed(self.0).await
    }
    fn render_pool(&self, site: &Website) -> Result<RenderedFile> {
        PhpFpm::render_pool(self.0, site)
    }
    async fn validate(&self, version: PhpVersion, staged_root: &Path) -> Result<()> {
        PhpFpm::validate(self.0, version, staged_root).await
    }
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        let start = Instant::now();
        let out = PhpRuntime::apply(self.0, sites).await;
        self.1.record("php.apply".to_owned(), start);
        out
    }
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        PhpRuntime::drift(self.0, sites).await
    }
}

/// The steps of one `apply_node` call, read off its events.
#[derive(Debug, Default, Clone)]
struct Steps {
    /// (step, duration) in the order they ran.
    rows: Vec<(&'static str, Duration)>,
}

impl Steps {
    fn get(&self, step: &str) -> Option<Duration> {
        self.rows.iter().find(|(s, _)| *s == step).map(|(_, d)| *d)
    }
}

const PHP_WRITE: &str = "PHP-FPM: render + plan + write pools";
const PHP_SYNC: &str = "PHP-FPM: sync -f";
const PHP_TEST: &str = "php-fpm -t";
const PHP_SWAP: &str = "PHP-FPM: swap + USR2 (or start)";
const PHP_SOCKETS: &str = "PHP-FPM: wait for every pool's socket";
const WEB_WRITE: &str = "nginx: render + diff + write vhosts";
const WEB_SYNC: &str = "nginx: sync -f";
const WEB_TEST: &str = "nginx -t";
const WEB_SWAP: &str = "nginx: swap + HUP (or start)";
const WEB_HEALTH: &str = "nginx: reload + health check of every site";
const PHP_FINAL: &str = "PHP-FPM: final pass (nothing to change)";

fn steps(events: &[Event]) -> Steps {
    let mut rows = Vec::new();
    let phases: Vec<&Event> = events.iter().filter(|e| !e.what.starts_with('$')).collect();
    let commands_in = |p: &Event| -> Vec<&Event> {
        events
            .iter()
            .filter(|e| e.what.starts_with('$') && e.start >= p.start && e.end <= p.end)
            .collect()
    };
    let side = |phase: &Event,
                test: &str,
                reload: &[&str],
                names: [&'static str; 5],
                rows: &mut Vec<(&'static str, Duration)>| {
        let commands = commands_in(phase);
        let sync = commands.iter().find(|e| e.what.starts_with("$ sync"));
        let tested = commands.iter().find(|e| e.what.ends_with(test));
        let reloaded = commands.iter().find(|e| {
            reload.iter().any(|r| e.what.contains(r)) && tested.is_some_and(|t| e.start >= t.end)
        });
        let (Some(sync), Some(tested), Some(reloaded)) = (sync, tested, reloaded) else {
            rows.push((names[0], phase.took()));
            return;
        };
        rows.push((names[0], sync.start - phase.start));
        rows.push((names[1], sync.took()));
        rows.push((names[2], tested.took()));
        rows.push((names[3], reloaded.end - tested.end));
        rows.push((names[4], phase.end - reloaded.end));
    };
    let mut php_passes = 0;
    for phase in phases {
        match phase.what.as_str() {
            "php.apply" if php_passes == 0 => {
                php_passes += 1;
                side(
                    phase,
                    " -t",
                    &["-USR2", "(start)"],
                    [PHP_WRITE, PHP_SYNC, PHP_TEST, PHP_SWAP, PHP_SOCKETS],
                    &mut rows,
                );
            }
            "php.apply" => rows.push((PHP_FINAL, phase.took())),
            _ => side(
                phase,
                "nginx -t",
                &["-HUP", "nginx (start)"],
                [WEB_WRITE, WEB_SYNC, WEB_TEST, WEB_SWAP, WEB_HEALTH],
                &mut rows,
            ),
        }
    }
    Steps { rows }
}

// ---------------------------------------------------------------------------------------------
// A node under a temporary prefix.

/// Stops the servers of a node and waits until they are gone, also when a benchmark panics:
/// SIGQUIT to the pid in each pid file and to every master pid seen before (a pid file is
/// missing while FPM re-executes itself on a reload), each only while its command line names
/// the node's prefix.
struct Stop {
    pid_files: Vec<PathBuf>,
    seen: Mutex<BTreeSet<String>>,
    prefix: PathBuf,
}

impl Stop {
    /// Remembers the masters now running.
    fn remember(&self) {
        let mut seen = self.seen.lock().expect("pids");
        for file in &self.pid_files {
            if let Ok(pid) = std::fs::read_to_string(file) {
                seen.insert(pid.trim().to_owned());
            }
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.remember();
        let prefix = self.prefix.to_string_lossy().into_owned();
        let ours: Vec<String> = self
            .seen
            .lock()
            .expect("pids")
            .iter()
            .filter(|pid| {
                alive(pid)
                    && std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&prefix))
            })
            .cloned()
            .collect();
        for pid in &ours {
            let _ = std::process::Command::new("kill")
                .arg("-QUIT")
                .arg(pid)
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while ours.iter().any(|p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Node {
    /// First, so the servers stop before their prefix is removed.
    stop: Stop,
    guard: MemoryGuard,
    dir: TempDir,
    layout: HostLayout,
    server_root: PathBuf,
    port: u16,
    recorder: Arc<Recorder>,
    nginx: Nginx,
    php: PhpFpm,
    nginx_binary: PathBuf,
    php_binary: PathBuf,
    users: Vec<SystemUser>,
    uids: Vec<u32>,
}

impl Node {
    async fn new(machine: &Machine) -> Node {
        let dir = TempDir::new();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod prefix");
        let layout = HostLayout::under(dir.path().join("node"));
        for d in [&layout.sites_root, &layout.php_run_dir, &layout.log_dir] {
            std::fs::create_dir_all(d).expect("mkdir layout");
        }
        let recorder = Arc::new(Recorder::default());
        let runner: Arc<dyn CommandRunner> = Arc::new(TimingRunner(recorder.clone()));
        let server_root = dir.path().join("nginx");
        let port = free_port();
        let mut config = NginxConfig::new(layout.clone());
        config.binary = machine.nginx.clone();
        config.ports = Ports {
            http: port,
            https: free_port(),
        };
        config.listen_ipv6 = false;
        config.runner = runner.clone();
        config.management = Management::Supervised {
            server_root: server_root.clone(),
        };
        let nginx = Nginx::new(config).expect("nginx");
        let mut php_config = FpmConfig::new(layout.clone());
        php_config.managed_root = dir.path().join("php");
        php_config.service = FpmService::Supervised;
        let php = PhpFpm::discover(
            runner,
            php_config,
            &DiscoveryConfig {
                system_dir: None,
                prefix_installs: vec![PrefixInstall {
                    fpm_binary: machine.php82.clone(),
                    php_ini: None,
                    scan_dir: None,
                }],
            },
        )
        .await
        .expect("discover PHP 8.2");
        assert_eq!(php.installed().len(), 1, "PHP 8.2");
        let uids = machine.users.iter().map(uid_of).collect();
        Node {
            stop: Stop {
                pid_files: vec![
                    server_root.join("run/nginx.pid"),
                    layout.php_run_dir.join("php8.2-fpm.pid"),
                ],
                seen: Mutex::default(),
                prefix: dir.path().to_owned(),
            },
            guard: MemoryGuard::start(
                layout.php_run_dir.join("php8.2-fpm.pid"),
                dir.path().to_owned(),
            ),
            dir,
            layout,
            server_root,
            port,
            recorder,
            nginx,
            php,
            nginx_binary: machine.nginx.clone(),
            php_binary: machine.php82.clone(),
            users: machine.users.clone(),
            uids,
        }
    }

    /// Sites `ids` with their directories and an `index.php` on disk, owned by the test users
    /// in turn.
    fn sites(&self, ids: std::ops::RangeInclusive<i64>) -> Vec<Website> {
        ids.map(|id| {
            let user = id as usize % self.users.len();
            let site = web_sites::php_site(id, self.users[user].clone(), WebServerKind::Nginx);
            let paths = self.layout.site(&site);
            for d in [&paths.document_root, &paths.tmp_dir, &paths.session_dir] {
                std::fs::create_dir_all(d).expect("mkdir site");
            }
            let index = paths.document_root.join("index.php");
            std::fs::write(&index, "<?php echo 'ok';\n").expect("index.php");
            for path in [
                &paths.home,
                &paths.document_root,
                &paths.tmp_dir,
                &paths.session_dir,
                &index,
            ] {
                std::os::unix::fs::chown(path, Some(self.uids[user]), Some(self.uids[user]))
                    .expect("chown");
            }
            std::fs::set_permissions(&paths.home, std::fs::Permissions::from_mode(0o711))
                .expect("chmod home");
            site
        })
        .collect()
    }

    async fn apply(&self, previous: &[Website], desired: &[Website]) -> Result<Duration> {
        let web = TimedWeb(&self.nginx, &self.recorder);
        let php = TimedPhp(&self.php, &self.recorder);
        let start = Instant::now();
        let applied = apply_node(&web, &php, previous, desired).await;
        let took = start.elapsed();
        self.stop.remember();
        applied.map(|_| took)
    }

    /// `WebServer::apply` alone, timed like [`Node::apply`].
    async fn web_apply(&self, desired: &[Website]) -> Result<Duration> {
        let start = Instant::now();
        let applied = TimedWeb(&self.nginx, &self.recorder).apply(desired).await;
        let took = start.elapsed();
        self.stop.remember();
        applied.map(|_| took)
    }

    fn nginx_pid(&self) -> String {
        read_pid(&self.server_root.join("run/nginx.pid"))
    }

    fn fpm_pid(&self) -> String {
        read_pid(&self.layout.php_run_dir.join("php8.2-fpm.pid"))
    }

    /// `nginx -t` on the live tree, by hand, with the arguments the SDK uses.
    fn nginx_test(&self) -> Duration {
        let start = Instant::now();
        let out = std::process::Command::new(&self.nginx_binary)
            .arg("-t")
            .arg("-c")
            .arg(self.server_root.join("managed/live/nginx.conf"))
            .arg("-p")
            .arg(format!("{}/", self.server_root.display()))
            .arg("-e")
            .arg(self.server_root.join("logs/error.log"))
            .output()
            .expect("nginx -t");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    /// `kill -HUP` to the master, until every worker is a new one.
    fn nginx_reload(&self) -> Duration {
        let master = self.nginx_pid();
        let old = live_children(&master);
        let start = Instant::now();
        signal("-HUP", &master);
        let deadline = start + Duration::from_secs(120);
        loop {
            let now = live_children(&master);
            if now.len() >= old.len().max(1) && !now.iter().any(|p| old.contains(p)) {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "nginx did not reload");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `php-fpm -t` on the live tree, by hand.
    fn fpm_test(&self) -> Duration {
        let start = Instant::now();
        let out = std::process::Command::new(&self.php_binary)
            .arg("-t")
            .arg("-y")
            .arg(self.php.live_main_config(PhpVersion::V8_2))
            .output()
            .expect("php-fpm -t");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "php-fpm -t: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    /// `kill -USR2` to the master, until FPM logs that it is ready again.
    fn fpm_reload(&self) -> Duration {
        let log = self.layout.log_dir.join("php8.2-fpm.log");
        let before = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
        let start = Instant::now();
        signal("-USR2", &self.fpm_pid());
        let deadline = start + Duration::from_secs(120);
        loop {
            let text = std::fs::read(&log).unwrap_or_default();
            if String::from_utf8_lossy(text.get(before..).unwrap_or_default())
                .contains("ready to handle connections")
            {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "php-fpm did not reload");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `HEAD /` for every site in turn, as the SDK's health check asks: each runs the site's
    /// `index.php` in its pool. Per-probe times.
    async fn probe_every_site(&self, sites: &[Website]) -> Vec<Duration> {
        let mut times = Vec::with_capacity(sites.len());
        for site in sites {
            let start = Instant::now();
            let status = head(self.port, site.domain.as_str())
                .await
                .unwrap_or_else(|e| panic!("HEAD / on {}: {e}", site.domain));
            times.push(start.elapsed());
            assert_eq!(status, 200, "HEAD / on {}", site.domain);
        }
        times
    }

    /// RSS (MiB) and open descriptors of a process.
    fn footprint(pid: &str) -> String {
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or("?".to_owned(), |kib| format!("{:.0} MiB", kib / 1024.0));
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
        format!(
            "RSS {rss}, {fds} open files, {} children",
            live_children(pid).len()
        )
    }
}

/// The status of `HEAD /` for `host` on 127.0.0.1:`port` (HTTP/1.0, as the health check).
async fn head(port: u16, host: &str) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no answer in 30 s"))??;
    String::from_utf8_lossy(&raw)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not HTTP"))
}

/// The private memory (MiB) of one process: what it does not share with its master.
fn private_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let v = l
                        .strip_prefix("Private_Clean:")
                        .or_else(|| l.strip_prefix("Private_Dirty:"))?;
                    v.split_whitespace().next()?.parse::<f64>().ok()
                })
                .sum::<f64>()
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Keeps this benchmark from exhausting the machine: while MemAvailable is below the limit, it
/// kills the PHP-FPM workers of this node (children of its master, by pid) and stops the
/// master. Workers started in every pool at once cost memory in proportion to the number of
/// pools, and at 10,000 pools they exhausted 24 GiB.
struct MemoryGuard {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tripped: Arc<std::sync::atomic::AtomicBool>,
}

/// MemAvailable below which the guard stops PHP-FPM.
const MEMORY_FLOOR_MIB: u64 = 6 * 1024;

impl MemoryGuard {
    fn start(pid_file: PathBuf, prefix: PathBuf) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let tripped = Arc::new(AtomicBool::new(false));
        let (stopping, tripping) = (stop.clone(), tripped.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                if available_mib() < MEMORY_FLOOR_MIB
                    && let Ok(master) = std::fs::read_to_string(&pid_file)
                {
                    let master = master.trim().to_owned();
                    let ours = std::fs::read(format!("/proc/{master}/cmdline")).is_ok_and(|c| {
                        String::from_utf8_lossy(&c).contains(&*prefix.to_string_lossy())
                    });
                    if ours {
                        let workers = live_children(&master);
                        for worker in &workers {
                            let _ = std::process::Command::new("kill")
                                .arg("-KILL")
                                .arg(worker)
                                .status();
                        }
                        let _ = std::process::Command::new("kill")
                            .arg("-QUIT")
                            .arg(&master)
                            .status();
                        tripping.store(true, Ordering::SeqCst);
                        println!(
                            "memory guard: MemAvailable under {MEMORY_FLOOR_MIB} MiB: killed {} php-fpm workers and stopped the master",
                            workers.len()
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self { stop, tripped }
    }

    fn tripped(&self) -> bool {
        self.tripped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib / 1024)
}

/// The proportional set size (MiB) of `pid` and its live children together: the memory they
/// really use, shared pages split among them.
fn pss_mib(pid: &str) -> f64 {
    let pss = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Pss:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    let kib: f64 = pss(pid) + live_children(pid).iter().map(|c| pss(c)).sum::<f64>();
    kib / 1024.0
}

fn read_pid(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_owned()
}

fn signal(signal: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .arg(signal)
        .arg(pid)
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

fn uid_of(user: &SystemUser) -> u32 {
    let out = std::process::Command::new("id")
        .arg("-u")
        .arg(user.as_str())
        .output()
        .expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric uid")
}

/// Whether `pid` is a process that has not exited (a zombie counts as gone).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            != Some("Z")
    })
}

/// The live (not zombie) children of `parent`, from /proc.
fn live_children(parent: &str) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let mut fields = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest.split_whitespace())
                    .into_iter()
                    .flatten();
                let state = fields.next();
                state != Some("Z") && fields.next() == Some(parent)
            })
        })
        .collect()
}

fn open_files_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/")
                })
        })
        .unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------

async fn run_size(machine: &Machine, scale: &Scale, n: usize) -> Option<Duration> {
    println!(
        "\n## {n} new PHP sites ({})",
        web_sites::settle(scale.settle)
    );
    let node = Node::new(machine).await;
    let setup = Instant::now();
    let first = node.sites(1..=1);
    let batch = node.sites(2..=(n as i64 + 1));
    let all: Vec<Website> = first.iter().chain(&batch).cloned().collect();
    println!(
        "site directories and index.php files for {} sites: {}",
        all.len(),
        secs(setup.elapsed())
    );

    pieces(&node, &all).await;

    let cold = node.apply(&[], &first).await.expect("first site");
    node.recorder.take();
    println!("servers started by an apply of one site: {}", secs(cold));

    let mut result = None;
    {
        let applied = node.apply(&first, &all).await;
        let events = node.recorder.take();
        let steps = steps(&events);
        println!("\n| step inside apply_node (+{n} sites) | time |");
        println!("|---|---|");
        for (step, took) in &steps.rows {
            println!("| {step} | {} |", secs(*took));
        }
        let applied = match applied {
            Ok(_) if std::env::var_os("HOSTING_BENCH_WEB_SIMULATE_FAILURE").is_some() => Err(
                hosting_core::Error::Conflict("failure simulated".to_owned()),
            ),
            other => other,
        };
        match applied {
            Ok(total) => {
                println!("| **apply_node total** | **{}** |", secs(total));
                result = Some(total);
                applied_node(&node, &all, &events, &steps, total).await;
                if n == scale.change_node {
                    single_changes(&node, all.clone(), scale.changes).await;
                }
            }
            Err(e) => {
                println!("| **apply_node failed** (rolled back) | {e} |");
                println!("\nevents of the failed apply_node, in order:");
                for event in &events {
                    println!("    {} {}", event.what, secs(event.took()));
                }
                if node.guard.tripped() {
                    println!(
                        "the memory guard stopped PHP-FPM during this apply; nothing more is measured"
                    );
                } else {
                    large_node(&node, &all).await;
                }
            }
        }
    }
    if n >= scale.per_site_check_from {
        per_site_logs(&node, &all).await;
    }
    let stop = Instant::now();
    drop(node);
    println!(
        "servers stopped and prefix removed: {}",
        secs(stop.elapsed())
    );
    result
}

/// The batch alone on a fresh node: `apply_node` of `n` new sites onto a node running one.
async fn batch_only(machine: &Machine, n: usize) -> Result<Duration> {
    let node = Node::new(machine).await;
    let first = node.sites(1..=1);
    let all: Vec<Website> = first
        .iter()
        .cloned()
        .chain(node.sites(2..=(n as i64 + 1)))
        .collect();
    node.apply(&[], &first).await?;
    node.recorder.take();
    let took = node.apply(&first, &all).await;
    let steps = steps(&node.recorder.take());
    if let Ok(took) = took {
        println!(
            "repeat on a fresh node: apply_node {} (health check {})",
            secs(took),
            secs(steps.get(WEB_HEALTH).unwrap_or_default())
        );
    }
    took
}

/// After a successful batch: footprints, probes, and the servers' own test and reload of the
/// same final tree.
async fn applied_node(
    node: &Node,
    all: &[Website],
    events: &[Event],
    steps: &Steps,
    total: Duration,
) {
    println!(
        "nginx master: {}; php-fpm master: {}",
        Node::footprint(&node.nginx_pid()),
        Node::footprint(&node.fpm_pid())
    );
    println!(
        "memory (PSS): nginx {:.0} MiB, php-fpm {:.0} MiB",
        pss_mib(&node.nginx_pid()),
        pss_mib(&node.fpm_pid())
    );
    let warm = node.probe_every_site(all).await;
    let nginx_t = node.nginx_test();
    let nginx_hup = node.nginx_reload();
    let fpm_t = node.fpm_test();
    let fpm_usr2 = node.fpm_reload();
    // FPM's reload stopped every worker: now each probe has to start one.
    let cold = node.probe_every_site(all).await;
    println!("\n| same final tree, by hand | time |");
    println!("|---|---|");
    println!("| nginx -t | {} |", secs(nginx_t));
    println!(
        "| kill -HUP until every worker is new | {} |",
        secs(nginx_hup)
    );
    println!("| php-fpm -t | {} |", secs(fpm_t));
    println!("| kill -USR2 until FPM is ready | {} |", secs(fpm_usr2));
    for (label, times) in [
        ("workers still idle from the apply", warm),
        ("after FPM's reload, each pool starts a worker", cold),
    ] {
        let sum: Duration = times.iter().sum();
        let summary = stats::summarize(times);
        println!(
            "| HEAD / on every site in turn ({label}) | {} (p50 {:.1} ms, p99 {:.1} ms) |",
            secs(sum),
            summary.p50_us / 1e3,
            summary.p99_us / 1e3
        );
    }
    let web_apply = events
        .iter()
        .find(|e| e.what == "web.apply")
        .map(Event::took)
        .unwrap_or_default();
    compare_nginx(web_apply, steps, nginx_t + nginx_hup);
    let own = nginx_t + nginx_hup + fpm_t + fpm_usr2;
    println!(
        "whole node: SDK apply_node {} vs both servers' own -t + reload {} = {:.2}x",
        secs(total),
        secs(own),
        total.as_secs_f64() / own.as_secs_f64()
    );
}

fn compare_nginx(web_apply: Duration, steps: &Steps, own: Duration) {
    let tail = steps.get(WEB_TEST).unwrap_or_default()
        + steps.get(WEB_SWAP).unwrap_or_default()
        + steps.get(WEB_HEALTH).unwrap_or_default();
    println!(
        "nginx side: SDK web.apply {} vs nginx -t + HUP {} = {:.2}x; SDK -t + swap + reload + health {} = {:.2}x",
        secs(web_apply),
        secs(own),
        web_apply.as_secs_f64() / own.as_secs_f64(),
        secs(tail),
        tail.as_secs_f64() / own.as_secs_f64(),
    );
}

/// How many pools are asked for a worker to measure what one costs at this pool count.
const SPAWN_SAMPLE: usize = 20;

/// A node whose `apply_node` failed (PHP-FPM runs one pool again after the rollback): what
/// can be measured without starting a worker in every pool. PHP-FPM is reloaded by hand onto
/// every pool (no connection, so no worker starts), a few pools are asked for a worker to see
/// what one costs, then PHP-FPM is stopped and the web server's own apply runs against the
/// same sites (their PHP requests then answer 502 from nginx), beside nginx's own test and
/// reload.
async fn large_node(node: &Node, all: &[Website]) {
    // A rollback may have just reloaded PHP-FPM; let that reload finish first.
    let log = node.layout.log_dir.join("php8.2-fpm.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log).is_ok_and(|l| {
        l.lines()
            .last()
            .is_some_and(|l| l.contains("ready to handle connections"))
    }) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tree = ManagedTree::new(
        node.php.config().managed_root.join("8.2"),
        Arc::new(SystemRunner),
    );
    let pools: Vec<RenderedFile> = all
        .iter()
        .map(|s| node.php.render_pool(s).expect("render pool"))
        .collect();
    let staged = tree
        .stage_with(|dir| {
            let mut files = pools.clone();
            files.push(node.php.render_main_config(PhpVersion::V8_2, dir)?);
            Ok(files)
        })
        .await
        .expect("stage every pool");
    tree.activate(&staged).expect("activate every pool");
    let fpm_t = node.fpm_test();
    let fpm_usr2 = node.fpm_reload();
    let master = node.fpm_pid();
    println!("\n| PHP-FPM by hand, every pool | time |");
    println!("|---|---|");
    println!("| php-fpm -t | {} |", secs(fpm_t));
    println!(
        "| kill -USR2 until FPM is ready (no worker running) | {} |",
        secs(fpm_usr2)
    );
    println!(
        "php-fpm master with {} pools: {}, PSS {:.0} MiB",
        all.len(),
        Node::footprint(&master),
        pss_mib(&master)
    );
    let before = live_children(&master);
    let start = Instant::now();
    let mut streams = Vec::new();
    for site in all.iter().take(SPAWN_SAMPLE) {
        let socket = node.layout.php_socket(site.id, PhpVersion::V8_2);
        streams.push(tokio::net::UnixStream::connect(&socket).await);
    }
    let deadline = start + Duration::from_secs(60);
    let workers = loop {
        let now: Vec<String> = live_children(&master)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if now.len() >= SPAWN_SAMPLE || Instant::now() >= deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let spawned = start.elapsed();
    drop(streams);
    let pss: f64 = workers.iter().map(|w| pss_mib(w)).sum::<f64>();
    let private: f64 = workers.iter().map(|w| private_mib(w)).sum::<f64>();
    println!(
        "{} pools asked for a worker at once: {} workers up in {} ({:.0} ms each); per worker PSS {:.1} MiB, private {:.1} MiB",
        SPAWN_SAMPLE,
        workers.len(),
        secs(spawned),
        spawned.as_secs_f64() * 1e3 / workers.len().max(1) as f64,
        pss / workers.len().max(1) as f64,
        private / workers.len().max(1) as f64,
    );

    let pid = node.fpm_pid();
    signal("-QUIT", &pid);
    while alive(&pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let web = node.web_apply(all).await;
    let events = node.recorder.take();
    let steps = steps(&events);
    println!(
        "\n| WebServer::apply alone, PHP-FPM stopped (+{} sites) | time |",
        all.len() - 1
    );
    println!("|---|---|");
    for (step, took) in &steps.rows {
        println!("| {step} | {} |", secs(*took));
    }
    let web_apply = match web {
        Ok(took) => {
            println!("| **WebServer::apply total** | **{}** |", secs(took));
            took
        }
        Err(e) => {
            println!("| **WebServer::apply failed** | {e} |");
            return;
        }
    };
    println!(
        "nginx master: {}, PSS {:.0} MiB with workers",
        Node::footprint(&node.nginx_pid()),
        pss_mib(&node.nginx_pid())
    );
    let nginx_t = node.nginx_test();
    let nginx_hup = node.nginx_reload();
    println!("\n| same final tree, by hand | time |");
    println!("|---|---|");
    println!("| nginx -t | {} |", secs(nginx_t));
    println!(
        "| kill -HUP until every worker is new | {} |",
        secs(nginx_hup)
    );
    compare_nginx(web_apply, &steps, nginx_t + nginx_hup);
}

/// The steps timed one by one through the public API, on scratch trees.
async fn pieces(node: &Node, sites: &[Website]) {
    let scratch = node.dir.path().join("scratch");
    let recorder = Arc::new(Recorder::default());
    let runner: Arc<dyn CommandRunner> = Arc::new(TimingRunner(recorder.clone()));

    let start = Instant::now();
    let vhosts: Vec<RenderedFile> = sites
        .iter()
        .flat_map(|s| node.nginx.render_site(s).expect("render vhost"))
        .collect();
    let render_vhosts = start.elapsed();
    let start = Instant::now();
    let pools: Vec<RenderedFile> = sites
        .iter()
        .map(|s| node.php.render_pool(s).expect("render pool"))
        .collect();
    let render_pools = start.elapsed();

    let web_tree = ManagedTree::new(scratch.join("nginx"), runner.clone());
    let start = Instant::now();
    let staged_web = web_tree.stage(&vhosts).await.expect("stage vhosts");
    let stage_vhosts = start.elapsed();
    let sync_vhosts = recorder.take().iter().map(Event::took).sum::<Duration>();

    let php_tree = ManagedTree::new(scratch.join("php"), runner.clone());
    let start = Instant::now();
    let staged_php = php_tree
        .stage_with(|dir| {
            let mut files = pools.clone();
            files.push(node.php.render_main_config(PhpVersion::V8_2, dir)?);
            Ok(files)
        })
        .await
        .expect("stage pools");
    let stage_pools = start.elapsed();
    let sync_pools = recorder.take().iter().map(Event::took).sum::<Duration>();

    // A complete nginx tree (main config included) for `nginx -t`.
    let full = scratch.join("nginx-full");
    node.nginx
        .stage(&full, sites)
        .expect("stage a complete tree");
    let start = Instant::now();
    node.nginx.validate(&full).await.expect("nginx -t");
    let nginx_t = start.elapsed();
    let start = Instant::now();
    node.php
        .validate(PhpVersion::V8_2, &staged_php.dir)
        .await
        .expect("php-fpm -t");
    let fpm_t = start.elapsed();

    let start = Instant::now();
    web_tree.activate(&staged_web).expect("swap");
    let swap = start.elapsed();

    println!("\n| piece, timed alone ({} sites) | time |", sites.len());
    println!("|---|---|");
    println!(
        "| render vhosts (`Nginx::render_site`) | {} |",
        secs(render_vhosts)
    );
    println!(
        "| render pools (`PhpFpm::render_pool`) | {} |",
        secs(render_pools)
    );
    println!(
        "| stage vhosts (`ManagedTree::stage`): write | {} |",
        secs(stage_vhosts - sync_vhosts)
    );
    println!("| stage vhosts: `sync -f` | {} |", secs(sync_vhosts));
    println!(
        "| stage pools (`ManagedTree::stage_with`): write | {} |",
        secs(stage_pools - sync_pools)
    );
    println!("| stage pools: `sync -f` | {} |", secs(sync_pools));
    println!("| `nginx -t` (`Nginx::validate`) | {} |", secs(nginx_t));
    println!("| `php-fpm -t` (`PhpFpm::validate`) | {} |", secs(fpm_t));
    println!("| swap (`ManagedTree::activate`) | {} |", secs(swap));
    let _ = std::fs::remove_dir_all(&scratch);
}

/// One site's PHP `post_max_size` set to `mib`, which changes its vhost and its pool.
fn with_post_max_size(site: &Website, mib: u16) -> Website {
    let mut site = site.clone();
    let php = &site.settings.php;
    let post = PhpBytes::from_mib(std::num::NonZeroU16::new(mib).expect("non-zero"));
    site.settings.php = PhpSettings::new(
        php.memory_limit(),
        php.max_execution_time(),
        php.upload_max_filesize(),
        post,
        php.extensions().clone(),
    )
    .expect("settings");
    site
}

async fn single_changes(node: &Node, mut current: Vec<Website>, changes: usize) {
    let mut totals = Vec::new();
    let mut failures: Vec<(Duration, String)> = Vec::new();
    let mut all_steps: Vec<Steps> = Vec::new();
    for i in 0..changes {
        let k = (i * 37) % current.len();
        let mib = if current[k].settings.php.post_max_size().bytes() == 64 << 20 {
            128
        } else {
            64
        };
        let mut desired = current.clone();
        desired[k] = with_post_max_size(&current[k], mib);
        let start = Instant::now();
        let applied = node.apply(&current, &desired).await;
        let events = node.recorder.take();
        match applied {
            Ok(took) => {
                all_steps.push(steps(&events));
                totals.push(took);
                current = desired;
            }
            // The SDK refused its own change and put the node back: a result, not a crash.
            Err(e) => failures.push((start.elapsed(), e.to_string())),
        }
    }
    let mut own = Vec::new();
    for _ in 0..changes {
        own.push(node.nginx_test() + node.nginx_reload() + node.fpm_test() + node.fpm_reload());
    }
    let ours = stats::summarize(totals);
    let base = stats::summarize(own);
    println!(
        "\n| one site changed on a {}-site node ({} of {changes} changes applied) | p50 | p99 |",
        current.len(),
        ours.n
    );
    println!("|---|---|---|");
    println!(
        "| apply_node, render to reloaded | {} | {} |",
        secs(Duration::from_secs_f64(ours.p50_us / 1e6)),
        secs(Duration::from_secs_f64(ours.p99_us / 1e6))
    );
    println!(
        "| servers' own: nginx -t + HUP + php-fpm -t + USR2 | {} | {} |",
        secs(Duration::from_secs_f64(base.p50_us / 1e6)),
        secs(Duration::from_secs_f64(base.p99_us / 1e6))
    );
    for (took, error) in &failures {
        println!(
            "a change failed after {} and was rolled back: {error}",
            secs(*took)
        );
    }
    println!("\n| step of a single change | median |");
    println!("|---|---|");
    let names: Vec<&'static str> = all_steps
        .first()
        .map(|s| s.rows.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    for name in names {
        let summary = stats::summarize(all_steps.iter().filter_map(|s| s.get(name)).collect());
        println!(
            "| {name} | {} |",
            secs(Duration::from_secs_f64(summary.p50_us / 1e6))
        );
    }
}

/// The same sites with per-site logs, handed to `nginx -t`.
async fn per_site_logs(node: &Node, sites: &[Website]) {
    let mut config = NginxConfig::new(node.layout.clone());
    config.binary = node.nginx_binary.clone();
    config.log_mode = LogMode::PerSite;
    let nginx = Nginx::new(config).expect("nginx");
    let staged = node.dir.path().join("per-site-logs");
    nginx.stage(&staged, sites).expect("stage");
    let start = Instant::now();
    let verdict = nginx.validate(&staged).await;
    let took = start.elapsed();
    let verdict = match verdict {
        Ok(()) => "passes".to_owned(),
        Err(e) => e
            .to_string()
            .lines()
            .find(|l| l.contains("emerg") || l.contains("failed"))
            .unwrap_or("failed")
            .to_owned(),
    };
    println!(
        "\nper-site logs, {} sites, nginx -t ({}): {verdict}",
        sites.len(),
        secs(took)
    );
}
