//! System mode on this machine's real services, as root: the distro's nginx (and, separately,
//! Apache, since both want port 80) and PHP-FPM 8.2, started with `service X start`, with
//! their configuration left the operator's.
//!
//! For each web server, once through the library and once through `hostctl node` in system
//! mode: two PHP 8.2 sites answer on 127.0.0.1:80 with PHP_VERSION and their pool's user (through
//! hostctl: one as the account hostctl created for it, home `0750` in `www-data`, one as an
//! adopted test user); a broken operator directive fails the apply and leaves the live trees
//! byte-identical and the sites answering (through hostctl, a tenant directive outside the
//! policy is refused before anything happens, exit 2); a whole distro configuration that
//! refuses a generation (injected through the process seam) is swapped back before the reload;
//! services that are down are started by the apply, and a stopped one is drift; removing the
//! sites takes the pool include away, and the created account and its site's files with it
//! (the adopted account stays). Throughout, the operator's own files (nginx.conf,
//! sites-enabled/default, apache2.conf, ports.conf, 000-default.conf, php-fpm.conf, www.conf)
//! stay byte-identical; at the end the services are stopped and everything the SDK wrote is
//! gone, even when a step fails (a drop guard).
//!
//! These tests change machine-wide state, so they run one at a time, in this process (a
//! mutex) and across processes (a lock file). Gated on `HOSTING_TEST_SYSTEM_SERVICES`, which
//! `scripts/with-servers.sh` sets when it runs as root with the packages installed.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hosting_core::model::{
    NodeId, ServerDirective, TenantId, UserId, Website, WebsiteId, WebsiteSettings, WebsiteStatus,
};
use hosting_core::node::apply_node;
use hosting_core::php::PhpRuntime;
use hosting_core::system::SystemRunner;
use hosting_core::types::{PhpVersion, SystemUser, WebServerKind};
use hosting_core::{Command, CommandOutput, CommandRunner, Error, HostLayout, Result, WebServer};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, InitScript, PhpFpm};
use hosting_tests::{TempDir, env_or_skip};
use hosting_web::{
    Apache, ApacheConfig, ApacheService, Management, Nginx, NginxConfig, NginxService, Ports,
};
use support::{TestAccounts, getent, hostctl, text};

/// One test at a time in this process; [`machine_lock`] does the same across processes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Site ids no real node on a test machine uses: their homes are `/srv/www/site<ID>`.
const HOSTCTL_SITES: [i64; 2] = [97_001, 97_002];

const INDEX_PHP: &str = "<?php echo PHP_VERSION, ' ', posix_getpwuid(posix_geteuid())['name'];\n";

/// The web server under test and the distro's files around it.
#[derive(Debug, Clone, Copy)]
struct Distro {
    kind: WebServerKind,
    /// `web_server` in a state file.
    name: &'static str,
    service: &'static str,
    pid_file: &'static str,
    /// The SDK's include file.
    include: &'static str,
    /// The operator's files, which must never change.
    operator_files: &'static [&'static str],
    /// The directory the include file is added to (its listing is back as it was at the end).
    include_dir: &'static str,
}

const NGINX: Distro = Distro {
    kind: WebServerKind::Nginx,
    name: "nginx",
    service: "nginx",
    pid_file: "/run/nginx.pid",
    include: "/etc/nginx/conf.d/hosting-sdk.conf",
    operator_files: &[
        "/etc/nginx/nginx.conf",
        "/etc/nginx/sites-enabled/default",
        "/etc/nginx/mime.types",
    ],
    include_dir: "/etc/nginx/conf.d",
};

const APACHE: Distro = Distro {
    kind: WebServerKind::Apache,
    name: "apache",
    service: "apache2",
    pid_file: "/run/apache2/apache2.pid",
    include: "/etc/apache2/sites-enabled/zzz-hosting-sdk.conf",
    operator_files: &[
        "/etc/apache2/apache2.conf",
        "/etc/apache2/ports.conf",
        "/etc/apache2/sites-enabled/000-default.conf",
    ],
    include_dir: "/etc/apache2/sites-enabled",
};

const FPM_SERVICE: &str = "php8.2-fpm";
const FPM_PID: &str = "/run/php/php8.2-fpm.pid";
const FPM_INCLUDE: &str = "/etc/php/8.2/fpm/pool.d/zz-hosting-sdk.conf";
const FPM_FILES: &[&str] = &[
    "/etc/php/8.2/fpm/php-fpm.conf",
    "/etc/php/8.2/fpm/pool.d/www.conf",
];

/// Directories system mode creates when they are missing; the guard removes those it created.
const SYSTEM_DIRS: &[&str] = &["/srv/www", "/var/log/hosting", "/etc/hosting"];

/// Every operator file and the listing of every directory the SDK adds its include file to.
fn operator_state(distro: Distro) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for file in distro.operator_files.iter().chain(FPM_FILES) {
        out.insert(
            (*file).to_owned(),
            std::fs::read(file).unwrap_or_else(|e| panic!("read {file}: {e}")),
        );
    }
    for dir in [distro.include_dir, "/etc/php/8.2/fpm/pool.d"] {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        out.insert(format!("{dir}/ (listing)"), names.join("\n").into_bytes());
    }
    out
}

/// The operator's files of a [`operator_state`] (the listings gain the include files while
/// sites are applied).
fn operator_files(state: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let mut files = state.clone();
    files.retain(|name, _| !name.ends_with("(listing)"));
    files
}

fn running(pid_file: &str) -> bool {
    std::fs::read_to_string(pid_file).is_ok_and(|pid| alive(pid.trim()))
}

fn service(name: &str, action: &str) -> Output {
    std::process::Command::new("service")
        .arg(name)
        .arg(action)
        .output()
        .expect("run service")
}

/// Stops the distro's service `name`. PHP-FPM's master is stopped through its pid file only:
/// Debian's `service php8.2-fpm stop` also ends, after 30 s, every other php-fpm8.2 process on
/// the machine (its init script sweeps by executable), which would take down the masters that
/// other tests of the same run supervise.
fn stop(name: &str) {
    if name != FPM_SERVICE {
        let _ = service(name, "stop");
        return;
    }
    let Some(pid) = std::fs::read_to_string(FPM_PID)
        .ok()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
    else {
        return;
    };
    let _ = std::process::Command::new("kill")
        .arg("-QUIT")
        .arg(&pid)
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alive(&pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(FPM_PID);
}

/// Whether `pid` is a process that has not exited (a zombie has).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Holds the machine for one test and puts it back on drop, whatever happened: stops the
/// services the test started, removes the SDK's include files and the directories the test
/// created.
struct Machine {
    distro: Distro,
    created_dirs: Vec<&'static str>,
    site_homes: Vec<PathBuf>,
    _lock: std::fs::File,
}

/// The machine-wide lock file: concurrent test runs must not share port 80 or the services.
fn machine_lock() -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/lock/hosting-sdk-system-services.lock")
        .expect("open the lock file");
    file.lock().expect("lock");
    file
}

impl Machine {
    /// Checks that the machine is as a test run needs it (services stopped, nothing of the
    /// SDK's in place) and takes it.
    async fn take(distro: Distro) -> Machine {
        let lock = tokio::task::spawn_blocking(machine_lock)
            .await
            .expect("lock task");
        for (service, pid_file) in [
            (NGINX.service, NGINX.pid_file),
            (APACHE.service, APACHE.pid_file),
            (FPM_SERVICE, FPM_PID),
        ] {
            assert!(
                !running(pid_file),
                "{service} is running ({pid_file}); these tests start and stop it themselves"
            );
        }
        for leftover in [
            NGINX.include,
            APACHE.include,
            FPM_INCLUDE,
            "/etc/hosting/php",
        ] {
            assert!(
                !Path::new(leftover).exists(),
                "{leftover} exists: left by an earlier run or a real install; remove it first"
            );
        }
        let site_homes: Vec<PathBuf> = HOSTCTL_SITES
            .iter()
            .map(|id| PathBuf::from(format!("/srv/www/site{id}")))
            .collect();
        for home in &site_homes {
            assert!(!home.exists(), "{} exists", home.display());
        }
        let created_dirs = SYSTEM_DIRS
            .iter()
            .copied()
            .filter(|d| !Path::new(d).exists())
            .collect();
        Machine {
            distro,
            created_dirs,
            site_homes,
            _lock: lock,
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        for service_name in [self.distro.service, FPM_SERVICE] {
            stop(service_name);
        }
        for include in [self.distro.include, FPM_INCLUDE] {
            let _ = std::fs::remove_file(include);
        }
        for home in &self.site_homes {
            let _ = std::fs::remove_dir_all(home);
        }
        let _ = std::fs::remove_dir_all("/etc/hosting/php");
        for dir in &self.created_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The test users and whether this machine runs these tests at all.
fn users() -> Option<Vec<SystemUser>> {
    env_or_skip("HOSTING_TEST_SYSTEM_SERVICES")?;
    let users: Vec<SystemUser> = env_or_skip("HOSTING_TEST_SYSTEM_USERS")?
        .split(',')
        .map(|u| u.trim().parse().expect("valid test user"))
        .collect();
    assert!(users.len() >= 2, "two test users are needed");
    Some(users)
}

/// Runs real processes, except that the first command whose argv holds `fails` reports failure
/// without running: the distro refusing its whole configuration.
#[derive(Debug)]
struct RefuseOnce {
    fails: PathBuf,
    tripped: AtomicBool,
}

#[async_trait]
impl CommandRunner for RefuseOnce {
    async fn run(&self, command: &Command) -> Result<CommandOutput> {
        let hit = command.args.iter().any(|a| Path::new(a) == self.fails)
            || (self.fails.as_os_str() == "apache2ctl" && command.program == self.fails);
        if hit && !self.tripped.swap(true, Ordering::SeqCst) {
            return Ok(CommandOutput {
                code: Some(1),
                stdout: String::new(),
                stderr: "injected: the distro's configuration is refused".to_owned(),
            });
        }
        SystemRunner.run(command).await
    }
}

/// `GET path` for `host` on 127.0.0.1:80 over HTTP/1.0: status, head and body.
fn http_get(host: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", 80))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let response = text(&raw);
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or((response.as_str(), ""));
    Ok((status, head.to_owned(), body.to_owned()))
}

#[track_caller]
fn assert_serves(domain: &str, user: &str) {
    let (status, head, body) =
        http_get(domain, "/index.php").unwrap_or_else(|e| panic!("GET {domain}: {e}"));
    assert_eq!(status, 200, "{domain}: {head}\n{body}");
    assert!(
        body.starts_with("8.2.") && body.ends_with(&format!(" {user}")),
        "{domain} should run PHP 8.2 as {user}: {body}"
    );
}

/// The generation the server answers the health probe with.
fn served_generation() -> String {
    let (_, head, _) =
        http_get("hosting-health.invalid", "/.hosting-generation").expect("generation probe");
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-hosting-generation:")
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no generation in {head}"))
}

fn collect(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
}

/// Every live file under `trees`, and the include files.
fn live(trees: &[PathBuf], distro: Distro) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for tree in trees {
        collect(&tree.join("live"), &mut out);
    }
    for include in [distro.include, FPM_INCLUDE] {
        if let Ok(bytes) = std::fs::read(include) {
            out.insert(PathBuf::from(include), bytes);
        }
    }
    out
}

fn uid_of(user: &SystemUser) -> u32 {
    let out = std::process::Command::new("id")
        .arg("-u")
        .arg(user.as_str())
        .output()
        .expect("id -u");
    text(&out.stdout).trim().parse().expect("numeric uid")
}

/// The library's node: a web backend as the distro's service and PHP-FPM 8.2 under its init
/// script, every file of the SDK's own under `dir`.
struct LibraryNode {
    layout: HostLayout,
    web_tree: PathBuf,
    php_tree: PathBuf,
    distro: Distro,
}

impl LibraryNode {
    fn new(dir: &Path, distro: Distro) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let layout = HostLayout::under(dir.join("node"));
        for d in [&layout.sites_root, &layout.php_run_dir, &layout.log_dir] {
            std::fs::create_dir_all(d).expect("mkdir layout");
        }
        LibraryNode {
            layout,
            web_tree: dir.join("web"),
            php_tree: dir.join("php"),
            distro,
        }
    }

    fn web(&self, runner: Arc<dyn CommandRunner>) -> Box<dyn WebServer> {
        match self.distro.kind {
            WebServerKind::Nginx => {
                let mut service = NginxService::default();
                service.managed_root = self.web_tree.clone();
                let mut config = NginxConfig::new(self.layout.clone());
                config.binary = PathBuf::from("/usr/sbin/nginx");
                config.ports = Ports::default();
                config.runner = runner;
                config.management = Management::Service(service);
                Box::new(Nginx::new(config).expect("nginx"))
            }
            _ => {
                let mut service = ApacheService::default();
                service.managed_root = self.web_tree.clone();
                let mut config = ApacheConfig::new(self.layout.clone());
                config.binary = PathBuf::from("/usr/sbin/apache2");
                config.ports = Ports::default();
                config.runner = runner;
                config.management = Management::Service(service);
                Box::new(Apache::new(config).expect("apache"))
            }
        }
    }

    async fn php(&self, runner: Arc<dyn CommandRunner>) -> PhpFpm {
        let mut config = FpmConfig::new(self.layout.clone());
        config.managed_root = self.php_tree.clone();
        config.service = FpmService::InitScript(InitScript::default());
        let php = PhpFpm::discover(
            runner,
            config,
            &DiscoveryConfig {
                system_dir: Some(PathBuf::from("/usr/sbin")),
                prefix_installs: Vec::new(),
            },
        )
        .await
        .expect("discover PHP");
        php.find(PhpVersion::V8_2).expect("Debian's PHP 8.2");
        php
    }

    /// Site `id` on PHP 8.2 as `user`, with an index.php that prints the version and user.
    fn site(&self, id: i64, user: &SystemUser) -> Website {
        use std::os::unix::fs::PermissionsExt;
        let site = Website {
            id: WebsiteId(id),
            tenant_id: TenantId(1),
            owner_id: UserId(1),
            domain: format!("site{id}.system.example.com")
                .parse()
                .expect("domain"),
            aliases: vec![],
            node_id: NodeId(1),
            web_server: self.distro.kind,
            php_version: Some(PhpVersion::V8_2),
            system_user: user.clone(),
            document_root: "public".parse().expect("root"),
            status: WebsiteStatus::Active,
            settings: WebsiteSettings::default(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        let paths = self.layout.site(&site);
        for d in [&paths.document_root, &paths.tmp_dir, &paths.session_dir] {
            std::fs::create_dir_all(d).expect("mkdir site");
        }
        std::fs::write(paths.document_root.join("index.php"), INDEX_PHP).expect("index.php");
        let uid = uid_of(user);
        for path in [
            &paths.home,
            &paths.document_root,
            &paths.tmp_dir,
            &paths.session_dir,
        ] {
            std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown");
        }
        std::fs::set_permissions(&paths.home, std::fs::Permissions::from_mode(0o711))
            .expect("chmod home");
        site
    }

    fn live(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        live(
            &[self.web_tree.clone(), self.php_tree.join("8.2")],
            self.distro,
        )
    }
}

/// Through the library: apply, refuse a broken directive, swap back a refused whole
/// configuration, remove.
async fn library(distro: Distro, users: &[SystemUser], dir: &Path) {
    let node = LibraryNode::new(dir, distro);
    let system: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
    let web = node.web(system.clone());
    let php = node.php(system.clone()).await;
    let first = node.site(1, &users[0]);
    let second = node.site(2, &users[1]);
    let desired = [first.clone(), second.clone()];
    apply_node(web.as_ref(), &php, &[], &desired)
        .await
        .expect("apply");
    assert_serves(first.domain.as_str(), users[0].as_str());
    assert_serves(second.domain.as_str(), users[1].as_str());
    let include = std::fs::read_to_string(distro.include).expect("web include");
    assert!(
        include.contains(
            &node
                .web_tree
                .join("live/hosting.conf")
                .display()
                .to_string()
        ),
        "{include}"
    );
    let pools = std::fs::read_to_string(FPM_INCLUDE).expect("pool include");
    assert!(
        pools.contains(&format!(
            "include={}/*.conf",
            node.php_tree.join("8.2/live/pool.d").display()
        )),
        "{pools}"
    );
    assert!(web.drift(&desired).await.expect("drift").is_empty());
    assert!(php.drift(&desired).await.expect("drift").is_empty());
    // The distro's default site still answers names no site serves.
    let (status, head, _) = http_get("unknown.example.net", "/.hosting-site").expect("default");
    assert_ne!(status, 204, "{head}");

    // A broken operator directive (rendered as written, outside the tenant policy): refused
    // by the staged test, nothing live changes.
    let before = node.live();
    let generation = served_generation();
    let mut broken = second.clone();
    let name = match distro.kind {
        WebServerKind::Nginx => "not_a_directive",
        _ => "NotADirective",
    };
    broken.settings.operator_directives = vec![ServerDirective {
        name: name.parse().expect("name"),
        args: vec!["on".parse().expect("arg")],
    }]
    .try_into()
    .expect("directives");
    let err = apply_node(
        web.as_ref(),
        &php,
        &desired,
        &[first.clone(), broken.clone()],
    )
    .await
    .expect_err("a broken directive is refused");
    assert!(
        matches!(&err, Error::Validation { output, .. } if output.contains(name)),
        "{err:?}"
    );
    assert_eq!(node.live(), before, "the live trees are byte-identical");
    assert_eq!(served_generation(), generation);
    assert_serves(first.domain.as_str(), users[0].as_str());
    assert_serves(second.domain.as_str(), users[1].as_str());

    // The distro refuses its whole configuration after the swap: swapped back, the running
    // server is not reloaded (it still serves the same generation).
    let fails = match distro.kind {
        WebServerKind::Nginx => PathBuf::from("/etc/nginx/nginx.conf"),
        _ => PathBuf::from("apache2ctl"),
    };
    let refusing = node.web(Arc::new(RefuseOnce {
        fails,
        tripped: AtomicBool::new(false),
    }));
    let mut gzip = first.clone();
    gzip.settings.gzip = true;
    let err = refusing
        .apply(&[gzip.clone(), second.clone()])
        .await
        .expect_err("refused by the distro");
    assert!(
        matches!(&err, Error::Validation { output, .. } if output.contains("injected")),
        "{err:?}"
    );
    assert_eq!(node.live(), before, "swapped back byte for byte");
    assert_eq!(
        served_generation(),
        generation,
        "the server was not reloaded"
    );
    let refusing_php = node
        .php(Arc::new(RefuseOnce {
            fails: PathBuf::from("/etc/php/8.2/fpm/php-fpm.conf"),
            tripped: AtomicBool::new(false),
        }))
        .await;
    let mut limits = second.clone();
    let php_settings = &second.settings.php;
    limits.settings.php = hosting_core::model::PhpSettings::new(
        php_settings.memory_limit(),
        45,
        php_settings.upload_max_filesize(),
        php_settings.post_max_size(),
        php_settings.extensions().clone(),
    )
    .expect("settings");
    let err = refusing_php
        .apply(&[first.clone(), limits])
        .await
        .expect_err("refused by the distro");
    assert!(
        matches!(&err, Error::Validation { output, .. } if output.contains("injected")),
        "{err:?}"
    );
    assert_eq!(node.live(), before, "PHP swapped back byte for byte");
    assert_serves(second.domain.as_str(), users[1].as_str());

    // Every site goes: the pool include goes with the last pool.
    apply_node(web.as_ref(), &php, &desired, &[])
        .await
        .expect("remove all");
    assert!(!Path::new(FPM_INCLUDE).exists());
    let (status, head, _) = http_get(first.domain.as_str(), "/.hosting-site").expect("get");
    assert_ne!(status, 204, "{head}");
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Through `hostctl node` in system mode: apply (an account hostctl creates, an adopted one),
/// drift, a refused tenant directive, a broken operator directive, remove.
fn through_hostctl(distro: Distro, users: &[SystemUser], dir: &Path) {
    let root = dir.join("root");
    let state = dir.join("node.toml");
    let accounts = TestAccounts::new();
    let domain = |id: i64| accounts.domain(id);
    let [one, two] = HOSTCTL_SITES;
    // Site one gets an account of its own; site two runs as an adopted test user.
    let created = accounts.account(one);
    let adopted = users[1].as_str();
    #[derive(Clone, Copy, PartialEq)]
    enum Directive {
        None,
        Tenant,
        Operator,
    }
    let write_state = |sites: &[i64], directive: Directive| {
        let mut toml = format!(
            "[node]\nweb_server = \"{}\"\nmode = \"system\"\nhttp_port = 80\nhttps_port = 443\n\
             uid_range = \"{}\"\n",
            distro.name,
            accounts.uid_range()
        );
        for id in sites {
            toml.push_str(&format!(
                "\n[[site]]\nid = {id}\ndomain = \"{}\"\nphp_version = \"8.2\"\n",
                domain(*id),
            ));
            if *id == two {
                toml.push_str(&format!(
                    "system_user = \"{adopted}\"\nadopt_account = true\n"
                ));
            }
            match directive {
                Directive::None => {}
                Directive::Tenant => toml.push_str(
                    "[site.settings]\nextra_directives = [{ name = \"not_a_directive\", args = [\"on\"] }]\n",
                ),
                Directive::Operator => toml.push_str(
                    "operator_directives = [{ name = \"not_a_directive\", args = [\"on\"] }]\n",
                ),
            }
        }
        std::fs::write(&state, toml).expect("state file");
    };
    let run = |command: &str, extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("node"),
            OsStr::new(command),
            OsStr::new("--state"),
            state.as_os_str(),
            OsStr::new("--root"),
            root.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        hostctl(args)
    };
    let home = |id: i64| PathBuf::from(format!("/srv/www/site{id}"));

    // The services are down: the apply starts them (`service X start`).
    for name in [distro.service, FPM_SERVICE] {
        stop(name);
    }
    assert!(!running(distro.pid_file) && !running(FPM_PID));
    write_state(&[one, two], Directive::None);
    let out = run("apply", &[]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains(&format!("created account {created} (site {one})")),
        "{}",
        text(&out.stdout)
    );
    assert!(
        running(distro.pid_file) && running(FPM_PID),
        "the apply started both"
    );
    let created_uid = accounts.uid_in_range(&created);
    let www_data: u32 = getent("group", "www-data").expect("www-data")[2]
        .parse()
        .expect("gid");
    for (id, user, uid) in [
        (one, created.as_str(), created_uid),
        (two, adopted, uid_of(&users[1])),
    ] {
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(home(id)).expect("home");
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (uid, www_data, 0o750),
                "site {id}'s home"
            );
        }
        let docroot = home(id).join("public");
        assert!(docroot.is_dir(), "hostctl creates {}", docroot.display());
        std::fs::write(docroot.join("index.php"), INDEX_PHP).expect("index.php");
        assert_serves(&domain(id), user);
    }
    assert!(
        Path::new(&format!("/etc/hosting/php/8.2/live/pool.d/site{one}.conf")).is_file(),
        "system mode keeps its pools in /etc/hosting/php"
    );
    let include = std::fs::read_to_string(distro.include).expect("include");
    assert!(
        include.contains(
            &root
                .join(distro.name)
                .join("live/hosting.conf")
                .display()
                .to_string()
        ),
        "{include}"
    );
    assert_exit(&run("drift", &[]), 0);

    // A stopped PHP-FPM service is drift; the next apply starts it again.
    stop(FPM_SERVICE);
    let out = run("drift", &[]);
    assert_exit(&out, 3);
    assert!(
        text(&out.stdout).contains("not running") && text(&out.stdout).contains(FPM_PID),
        "{}",
        text(&out.stdout)
    );
    assert_exit(&run("apply", &[]), 0);
    assert!(running(FPM_PID));
    assert_serves(&domain(one), &created);
    assert_exit(&run("drift", &[]), 0);

    // A tenant directive outside the web server's policy: refused naming the field, exit 2,
    // before anything is rendered.
    let trees = [
        root.join(distro.name),
        PathBuf::from("/etc/hosting/php/8.2"),
    ];
    let before = live(&trees, distro);
    let record = std::fs::read(root.join("state/applied.json")).expect("record");
    write_state(&[one, two], Directive::Tenant);
    let out = run("apply", &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("site[0].settings.extra_directives[0].name: 'not_a_directive'"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(live(&trees, distro), before, "nothing changed");

    // A broken operator directive is rendered as written: the server's test refuses it, exit
    // 1, nothing live changes, the sites keep answering.
    write_state(&[one, two], Directive::Operator);
    let out = run("apply", &[]);
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("not_a_directive"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        live(&trees, distro),
        before,
        "the live trees are byte-identical"
    );
    assert_eq!(
        std::fs::read(root.join("state/applied.json")).expect("record"),
        record,
        "the record is unchanged"
    );
    assert_serves(&domain(one), &created);
    write_state(&[one, two], Directive::None);

    // Remove one site, then the other: the pool include goes with the last pool; the created
    // account goes with its site's files, the adopted one stays with its site's files.
    assert_exit(&run("remove", &["--site", &two.to_string()]), 0);
    assert_serves(&domain(one), &created);
    let (status, _, _) = http_get(&domain(two), "/.hosting-site").expect("get");
    assert_ne!(status, 204, "site {two} is gone");
    assert!(
        home(two).join("public/index.php").exists(),
        "an adopted account's site keeps its files"
    );
    write_state(&[one], Directive::None);
    let out = run("remove", &["--site", &one.to_string()]);
    assert_exit(&out, 0);
    assert!(!Path::new(FPM_INCLUDE).exists());
    let (status, _, _) = http_get(&domain(one), "/.hosting-site").expect("get");
    assert_ne!(status, 204, "site {one} is gone");
    assert!(!home(one).exists(), "{}", text(&out.stdout));
    assert!(
        getent("passwd", &created).is_none(),
        "the created account is removed"
    );
    assert!(
        getent("passwd", adopted).is_some(),
        "the adopted account stays"
    );
}

async fn system_mode(distro: Distro) {
    let Some(users) = users() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let before = operator_state(distro);
    // Declared before the guard, so the guard (stopping the services) runs while the files
    // they were started with still exist.
    let dir = TempDir::new();
    let machine = Machine::take(distro).await;
    for name in [FPM_SERVICE, distro.service] {
        let out = service(name, "start");
        assert!(
            out.status.success(),
            "service {name} start: {}",
            text(&out.stderr)
        );
    }
    assert!(running(distro.pid_file) && running(FPM_PID));

    let library_dir = dir.path().join("library");
    std::fs::create_dir_all(&library_dir).expect("mkdir");
    library(distro, &users, &library_dir).await;
    assert_eq!(
        operator_files(&operator_state(distro)),
        operator_files(&before)
    );
    tokio::task::block_in_place(|| through_hostctl(distro, &users, dir.path()));
    assert_eq!(
        operator_files(&operator_state(distro)),
        operator_files(&before)
    );

    let created = machine.created_dirs.clone();
    drop(machine);
    assert!(
        !running(distro.pid_file) && !running(FPM_PID),
        "the services are stopped"
    );
    assert_eq!(
        operator_state(distro),
        before,
        "the operator's files and directories are as they were"
    );
    for dir in created {
        assert!(
            !Path::new(dir).exists(),
            "{dir} was created by the test and is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_php_fpm_as_the_distros_services() {
    system_mode(NGINX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_and_php_fpm_as_the_distros_services() {
    system_mode(APACHE).await;
}

/// The pid in `pid_file` and its children, frozen (so none forks one the kill would miss).
fn freeze_service(pid_file: &str) -> Vec<String> {
    let pid = std::fs::read_to_string(pid_file)
        .unwrap_or_else(|e| panic!("{pid_file}: {e}"))
        .trim()
        .to_owned();
    let _ = std::process::Command::new("kill")
        .arg("-STOP")
        .arg(&pid)
        .status();
    let master: u32 = pid.parse().expect("pid");
    let mut pids: Vec<String> = hosting_core::process::children_of(master)
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    pids.push(pid);
    pids
}

/// SIGKILLs the distro's web server and PHP-FPM 8.2, masters and workers at once, found through
/// their pid files (never by name: other tests run nginx and PHP-FPM side by side), and leaves
/// every file as it was.
fn power_loss(distro: Distro) {
    let mut pids = freeze_service(distro.pid_file);
    pids.extend(freeze_service(FPM_PID));
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(p)) {
        assert!(std::time::Instant::now() < deadline, "killed: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Path::new(distro.pid_file).exists() && Path::new(FPM_PID).exists());
}

/// Waits up to 30 s until `domain` serves PHP 8.2 as `user`.
#[track_caller]
fn served_again(domain: &str, user: &str, since: std::time::Instant) {
    let deadline = since + Duration::from_secs(30);
    loop {
        match http_get(domain, "/index.php") {
            Ok((200, _, body)) if body.starts_with("8.2.") && body.ends_with(user) => return,
            other => assert!(
                std::time::Instant::now() < deadline,
                "{domain} does not serve PHP again in time: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `hostctl node apply` in system mode after a power loss: the services' masters and workers
/// SIGKILLed with their pid and socket files left behind; the apply starts them (`service X
/// start`) and every site serves PHP again. Then the same with the pid files naming live
/// `sleep`s, which must not be signalled.
fn power_loss_through_hostctl(distro: Distro, dir: &Path) {
    let root = dir.join("root");
    let state = dir.join("node.toml");
    let accounts = TestAccounts::new();
    let node_table = format!(
        "[node]\nweb_server = \"{}\"\nmode = \"system\"\nhttp_port = 80\nhttps_port = 443\n\
         uid_range = \"{}\"\n",
        distro.name,
        accounts.uid_range()
    );
    let mut toml = node_table.clone();
    for id in HOSTCTL_SITES {
        toml.push_str(&format!(
            "\n[[site]]\nid = {id}\ndomain = \"{}\"\nphp_version = \"8.2\"\n",
            accounts.domain(id),
        ));
    }
    std::fs::write(&state, toml).expect("state file");
    let apply = || {
        hostctl([
            OsStr::new("node"),
            OsStr::new("apply"),
            OsStr::new("--state"),
            state.as_os_str(),
            OsStr::new("--root"),
            root.as_os_str(),
        ])
    };
    assert_exit(&apply(), 0);
    for id in HOSTCTL_SITES {
        let docroot = PathBuf::from(format!("/srv/www/site{id}/public"));
        std::fs::write(docroot.join("index.php"), INDEX_PHP).expect("index.php");
        assert_serves(&accounts.domain(id), &accounts.account(id));
    }

    power_loss(distro);
    let since = std::time::Instant::now();
    assert_exit(&apply(), 0);
    for id in HOSTCTL_SITES {
        served_again(&accounts.domain(id), &accounts.account(id), since);
    }

    power_loss(distro);
    let mut sleeps: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("sleep")
        })
        .collect();
    for (pid_file, sleep) in [distro.pid_file, FPM_PID].into_iter().zip(&sleeps) {
        std::fs::write(pid_file, format!("{}\n", sleep.id())).expect("pid file");
    }
    let since = std::time::Instant::now();
    let out = apply();
    let untouched: Vec<bool> = sleeps
        .iter_mut()
        .map(|s| s.try_wait().expect("try_wait").is_none())
        .collect();
    for sleep in &mut sleeps {
        let _ = sleep.kill();
        let _ = sleep.wait();
    }
    assert_exit(&out, 0);
    assert_eq!(
        untouched,
        [true, true],
        "the processes the stale pid files named were not signalled"
    );
    for id in HOSTCTL_SITES {
        served_again(&accounts.domain(id), &accounts.account(id), since);
    }
    // Every site goes (and the accounts hostctl created with them).
    std::fs::write(&state, node_table).expect("state file");
    assert_exit(&apply(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_php_fpm_services_come_back_after_a_power_loss() {
    if users().is_none() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let before = operator_state(NGINX);
    let dir = TempDir::new();
    let machine = Machine::take(NGINX).await;
    tokio::task::block_in_place(|| power_loss_through_hostctl(NGINX, dir.path()));
    drop(machine);
    assert!(
        !running(NGINX.pid_file) && !running(FPM_PID),
        "the services are stopped"
    );
    assert_eq!(
        operator_state(NGINX),
        before,
        "the operator's files are as they were"
    );
}
