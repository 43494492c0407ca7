//! The web-server conformance suite (`hosting_core::conformance::web`): all of it against a real
//! NGINX and a real Apache, each started, reloaded and stopped by the SDK under a temporary prefix
//! on free ports; the render part against OpenLiteSpeed, which has no binary on these machines.
//!
//! The binaries come from `HOSTING_TEST_NGINX` and `HOSTING_TEST_APACHE`
//! (`./scripts/with-servers.sh cargo test -p hosting-web --test conformance`); without them the
//! live tests print `SKIPPED: VAR is not set`, and fail under `CI=true`.
#![allow(clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hosting_core::conformance::web;
use hosting_core::model::Website;
use hosting_core::types::{SystemUser, WebServerKind};
use hosting_core::{HostLayout, RenderedFile, WebServer};
use hosting_web::{
    Apache, ApacheConfig, Management, Nginx, NginxConfig, OpenLiteSpeed, OpenLiteSpeedConfig, Ports,
};

/// Site owners. No web server checks that they exist; PHP-FPM would.
fn users() -> Vec<SystemUser> {
    ["webowner-a", "webowner-b", "webowner-c"]
        .iter()
        .map(|u| u.parse().expect("valid user name"))
        .collect()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The binary named by `var`, or `None` after printing `SKIPPED: VAR is not set`.
///
/// # Panics
/// Under `CI=true` when the variable is missing: CI must run the suite on real servers.
fn binary_or_skip(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if in_ci() => panic!(
            "{var} is not set and CI=true: the conformance suite must run on real servers \
             (scripts/lib/servers.sh sets it)"
        ),
        _ => {
            eprintln!("SKIPPED: {var} is not set");
            None
        }
    }
}

/// A TCP port that was free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A fresh directory under the system temp dir (mode 0755, so the servers' workers reach the
/// document roots), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "hosting-web-conformance-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops the server whose pid file this is with `signal` (nginx: QUIT, Apache: TERM) and
/// waits until the process is gone, even when the test failed half-way.
struct Stop {
    pid_file: PathBuf,
    signal: &'static str,
}

impl Drop for Stop {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(&self.pid_file) else {
            return;
        };
        let pid = pid.trim().to_owned();
        let _ = std::process::Command::new("kill")
            .arg(self.signal)
            .arg(&pid)
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        // A daemon that exited may linger as a zombie until init reaps it: that counts as gone.
        while Instant::now() < deadline
            && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    != Some("Z")
            })
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A node under `dir` with the directories the servers open and each site's document root.
fn node(dir: &Path, sites: &[Website]) -> HostLayout {
    let layout = HostLayout::under(dir.join("node"));
    for d in [
        &layout.sites_root,
        &layout.php_run_dir,
        &layout.log_dir,
        &layout.cert_dir,
    ] {
        std::fs::create_dir_all(d).expect("node dir");
    }
    for site in sites {
        let root = layout.site(site).document_root;
        std::fs::create_dir_all(&root).expect("document root");
        std::fs::write(root.join("index.html"), format!("site {}\n", site.id)).expect("index");
    }
    layout
}

/// Every file under `dir` (following the `live` symlink) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read live file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// A hand edit of a live file: a comment appended (valid in every server's syntax).
fn tamper(live: &Path, file: &RenderedFile) {
    let path = file.path.under(live);
    let mut text = std::fs::read_to_string(&path).expect("read the live file");
    text.push_str("\n# edited by hand\n");
    std::fs::write(&path, text).expect("edit the live file");
}

/// The whole suite against `server`, whose managed tree is live at `live` and whose master
/// writes `pid_file`.
async fn run_suite(
    server: &dyn WebServer,
    live: &Path,
    pid_file: &Path,
    sites: &[Website],
    rejected: &Website,
) {
    web::run_all(server, sites, rejected, &|| snapshot(live), &|_, file| {
        tamper(live, file)
    })
    .await;
    // A power loss: master and workers killed, the pid file left naming a live `sleep`.
    let sleeps: Mutex<Vec<Child>> = Mutex::new(Vec::new());
    web::a_dead_server_is_started_again(server, sites, &|| {
        power_loss(pid_file);
        let sleep = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep");
        std::fs::write(pid_file, format!("{}\n", sleep.id())).expect("pid file");
        sleeps.lock().expect("sleeps").push(sleep);
    })
    .await;
    for mut sleep in sleeps.into_inner().expect("sleeps") {
        let untouched = sleep.try_wait().expect("try_wait").is_none();
        let _ = sleep.kill();
        let _ = sleep.wait();
        assert!(
            untouched,
            "the process the stale pid file named was signalled"
        );
    }
    server.apply(&[]).await.expect("remove every site");
}

/// SIGKILLs the master `pid_file` names and all its workers at once (frozen first, so none
/// forks one the kill would miss), and waits until they are gone.
fn power_loss(pid_file: &Path) {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let kill = |signal: &str, pids: &[u32]| {
        let _ = std::process::Command::new("kill")
            .arg(signal)
            .args(pids.iter().map(u32::to_string))
            .status();
    };
    kill("-STOP", &[pid]);
    let mut pids = hosting_core::process::children_of(pid);
    pids.push(pid);
    kill("-KILL", &pids);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| hosting_core::process::alive(*p)) {
        assert!(Instant::now() < deadline, "killed: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_meets_the_web_server_contract() {
    let Some(binary) = binary_or_skip("HOSTING_TEST_NGINX") else {
        return;
    };
    let dir = TempDir::new("nginx");
    let users = users();
    let sites = web::sample_sites(WebServerKind::Nginx, &users);
    let rejected =
        web::site_with_unknown_directive(WebServerKind::Nginx, &users[0], "not_an_nginx_directive");
    let layout = node(dir.path(), &sites);
    let mut config = NginxConfig::new(layout);
    config.binary = binary;
    config.ports = Ports {
        http: free_port(),
        https: free_port(),
    };
    config.listen_ipv6 = false;
    let server_root = dir.path().join("nginx");
    config.management = Management::Supervised {
        server_root: server_root.clone(),
    };
    let _stop = Stop {
        pid_file: server_root.join("run/nginx.pid"),
        signal: "-QUIT",
    };
    let live = server_root.join("managed/live");
    let nginx = Nginx::new(config).expect("nginx");
    run_suite(
        &nginx,
        &live,
        &server_root.join("run/nginx.pid"),
        &sites,
        &rejected,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_meets_the_web_server_contract() {
    let Some(binary) = binary_or_skip("HOSTING_TEST_APACHE") else {
        return;
    };
    let dir = TempDir::new("apache");
    let users = users();
    let sites = web::sample_sites(WebServerKind::Apache, &users);
    let rejected =
        web::site_with_unknown_directive(WebServerKind::Apache, &users[0], "NotAnApacheDirective");
    let layout = node(dir.path(), &sites);
    let mut config = ApacheConfig::new(layout);
    config.binary = binary;
    config.ports = Ports {
        http: free_port(),
        https: free_port(),
    };
    let server_root = dir.path().join("apache");
    config.management = Management::Supervised {
        server_root: server_root.clone(),
    };
    let _stop = Stop {
        pid_file: server_root.join("run/apache2.pid"),
        signal: "-TERM",
    };
    let live = server_root.join("managed/live");
    let apache = Apache::new(config).expect("apache");
    run_suite(
        &apache,
        &live,
        &server_root.join("run/apache2.pid"),
        &sites,
        &rejected,
    )
    .await;
}

/// Rendering needs no binary: NGINX and Apache also render the HTTPS fixtures here.
#[test]
fn nginx_and_apache_meet_the_render_contract_with_tls_sites() {
    let layout = HostLayout::under("/srv/hosting");
    let nginx = Nginx::new(NginxConfig::new(layout.clone())).expect("nginx");
    web::render_contract(
        &nginx,
        &web::sample_sites_with_tls(WebServerKind::Nginx, &users()),
    );
    let apache = Apache::new(ApacheConfig::new(layout)).expect("apache");
    web::render_contract(
        &apache,
        &web::sample_sites_with_tls(WebServerKind::Apache, &users()),
    );
}

/// OpenLiteSpeed renders only (no binary exists here to validate or run it), so it runs the
/// render part of the contract through its render function, and the policy part with its
/// allow-list beside it.
#[test]
fn openlitespeed_meets_the_render_contract() {
    let ols = OpenLiteSpeed::new(OpenLiteSpeedConfig::new(HostLayout::under("/srv/hosting")))
        .expect("openlitespeed");
    let sites = web::sample_sites_with_tls(WebServerKind::OpenLiteSpeed, &users());
    web::render_contract_for(&|site| ols.render_site(site), &sites);
    web::policy_contract_for(
        ols.directive_policy(),
        &|site| ols.render_site(site),
        &sites,
    );
}

/// No tenant directive names a node resource, and none the policy refuses is rendered (part
/// of the render contract above; here on its own, so a failure names it).
#[test]
fn nginx_and_apache_policies_confine_tenants() {
    let layout = HostLayout::under("/srv/hosting");
    let nginx = Nginx::new(NginxConfig::new(layout.clone())).expect("nginx");
    let apache = Apache::new(ApacheConfig::new(layout)).expect("apache");
    for (server, kind) in [
        (&nginx as &dyn WebServer, WebServerKind::Nginx),
        (&apache, WebServerKind::Apache),
    ] {
        web::directive_policy_names_no_node_resource(server);
        web::directives_outside_the_policy_are_not_rendered(
            server,
            &web::sample_sites(kind, &users()),
        );
    }
}
