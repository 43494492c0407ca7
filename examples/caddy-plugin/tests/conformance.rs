//! The plugin proves itself the way the SDK's own web servers do: by running
//! `hosting_core::conformance::web`. The render part needs no binary; the rest drives a real
//! caddy (`HOSTING_TEST_CADDY`, exported by `./scripts/with-servers.sh`) that the plugin starts,
//! reloads and, through the guard below, stops, all under a temporary prefix on free ports.
//! Without the variable the live test prints `SKIPPED: HOSTING_TEST_CADDY is not set` (and fails
//! under `CI=true`).
#![allow(clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use example_caddy_plugin::{Caddy, CaddyConfig};
use hosting_core::conformance::web;
use hosting_core::model::{Ssl, Website};
use hosting_core::types::{SystemUser, WebServerKind};
use hosting_core::{HostLayout, RenderedFile, WebServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The sites a caddy node serves record the plugin's own kind, `caddy`.
const KIND: WebServerKind = Caddy::KIND;

fn users() -> Vec<SystemUser> {
    ["caddyowner-a", "caddyowner-b"]
        .iter()
        .map(|u| u.parse().expect("valid user name"))
        .collect()
}

/// The caddy binary, or `None` after printing `SKIPPED: HOSTING_TEST_CADDY is not set`.
///
/// # Panics
/// Under `CI=true` when the variable is missing.
fn caddy_or_skip() -> Option<PathBuf> {
    const VAR: &str = "HOSTING_TEST_CADDY";
    match std::env::var_os(VAR) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{VAR} is not set and CI=true: the plugin's suite must run on a real caddy")
        }
        _ => {
            eprintln!("SKIPPED: {VAR} is not set");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "caddy-plugin-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops the caddy whose pid file this is (SIGTERM: a graceful exit) and waits until it is gone,
/// even when the suite failed half-way.
struct Stop(PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(&self.0) else {
            return;
        };
        let pid = pid.trim().to_owned();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        // An exited daemon may linger as a zombie until init reaps it: that counts as gone.
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

fn snapshot(live: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
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
    walk(live, &mut out);
    out
}

fn tamper(live: &Path, file: &RenderedFile) {
    let path = file.path.under(live);
    let mut text = std::fs::read_to_string(&path).expect("read the live file");
    text.push_str("\n# edited by hand\n");
    std::fs::write(&path, text).expect("edit the live file");
}

fn render(site: &Website) -> String {
    let caddy =
        Caddy::new(CaddyConfig::new(HostLayout::under("/srv/hosting"))).expect("caddy backend");
    caddy
        .render_site(site)
        .expect("render")
        .into_iter()
        .map(|f| f.contents)
        .collect()
}

#[test]
fn caddy_meets_the_render_contract() {
    let caddy =
        Caddy::new(CaddyConfig::new(HostLayout::under("/srv/hosting"))).expect("caddy backend");
    web::render_contract(&caddy, &web::sample_sites_with_tls(KIND, &users()));
}

/// The policy part of the render contract on its own: no tenant directive names a node
/// resource, and none the policy refuses is rendered.
#[test]
fn caddy_policy_confines_tenants() {
    let caddy =
        Caddy::new(CaddyConfig::new(HostLayout::under("/srv/hosting"))).expect("caddy backend");
    web::directive_policy_names_no_node_resource(&caddy);
    web::directives_outside_the_policy_are_not_rendered(&caddy, &web::sample_sites(KIND, &users()));
}

#[test]
fn tenant_directives_pass_the_policy_and_operator_directives_are_written_as_they_are() {
    let directive = |name: &str, args: &[&str]| hosting_core::model::ServerDirective {
        name: name.parse().expect("name"),
        args: args.iter().map(|a| a.parse().expect("arg")).collect(),
    };
    let mut site = web::sample_site(8, "tenant.example.com", KIND, None, &users()[0]);
    site.settings.extra_directives = vec![
        directive("header", &["X-Tenant", "yes"]),
        directive("import", &["/etc/caddy/Caddyfile"]),
        directive("encode", &["zstd", "gzip"]),
    ]
    .try_into()
    .expect("directives");
    site.settings.operator_directives = vec![directive("request_header", &["X-Operator", "on"])]
        .try_into()
        .expect("directives");
    let text = render(&site);
    for needle in [
        "\theader X-Tenant yes\n\t# extra directive 1 is left out: the policy does not accept it\n\tencode zstd gzip\n",
        "\trequest_header X-Operator on\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("/etc/caddy"), "{text}");
}

#[test]
fn a_suspended_site_answers_every_request_with_its_403_page() {
    let mut site = web::sample_sites_with_tls(KIND, &users())[5].clone();
    site.status = hosting_core::model::WebsiteStatus::Suspended;
    let text = render(&site);
    for needle in [
        "\nhttp://secure.suite.example.com, http://www.secure.suite.example.com {\n",
        "\nhttps://secure.suite.example.com, https://www.secure.suite.example.com {\n\ttls ",
        "\trespond \"<!DOCTYPE html><html><head><title>Site suspended</title></head><body><h1>This site is suspended.</h1></body></html>\" 403\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    for absent in ["php_fastcgi", "file_server", "root *"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
}

#[test]
fn a_php_site_is_served_through_its_pools_socket_with_compression_and_headers() {
    let sites = web::sample_sites(KIND, &users());
    let php84 = render(&sites[2]);
    for needle in [
        "\nhttp://php84.suite.example.org {\n",
        "\troot * /srv/hosting/sites/site3/public\n",
        "\tphp_fastcgi unix//srv/hosting/run/php8.4-site3.sock\n",
        "\tencode gzip\n",
        "\theader @static Cache-Control \"public, max-age=3600\"\n",
        "\t\tX-Content-Type-Options nosniff\n",
        "\tfile_server\n",
        "\t\toutput file /srv/hosting/log/site3.access.log\n",
    ] {
        assert!(php84.contains(needle), "missing {needle:?} in\n{php84}");
    }
    let redirected = render(&sites[1]);
    assert!(
        redirected.contains(
            "\nhttp://php82.suite.example.com {\n\t@acme path /.well-known/acme-challenge/*\n"
        ),
        "{redirected}"
    );
    assert!(
        redirected.contains("\t\tredir http://www.php82.suite.example.com{uri} permanent\n"),
        "{redirected}"
    );
    let tls = render(&web::sample_sites_with_tls(KIND, &users())[5]);
    assert!(
        tls.contains("\ttls /srv/hosting/certs/site6.crt /srv/hosting/certs/site6.key\n"),
        "{tls}"
    );
    assert!(
        tls.contains("\t\tredir https://{host}{uri} permanent\n"),
        "{tls}"
    );
}

#[test]
fn caddy_names_its_own_kind() {
    assert_eq!(KIND.as_str(), "caddy");
    assert_eq!("caddy".parse::<WebServerKind>(), Ok(KIND));
    assert_ne!(
        KIND,
        WebServerKind::Nginx,
        "a caddy node is not an nginx node"
    );
    let caddy =
        Caddy::new(CaddyConfig::new(HostLayout::under("/srv/hosting"))).expect("caddy backend");
    assert_eq!(caddy.kind(), KIND);
}

#[test]
fn a_site_of_another_server_is_refused() {
    let caddy =
        Caddy::new(CaddyConfig::new(HostLayout::under("/srv/hosting"))).expect("caddy backend");
    let other_plugin = "h2o".parse().expect("a plugin's kind");
    for kind in [WebServerKind::Nginx, WebServerKind::Apache, other_plugin] {
        let site = web::sample_site(9, "other.example.com", kind, None, &users()[0]);
        match caddy.render_site(&site) {
            Err(hosting_core::Error::Invalid { field, .. }) => assert_eq!(field, "web_server"),
            other => panic!("{kind}: expected Invalid, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_meets_the_web_server_contract() {
    let Some(binary) = caddy_or_skip() else {
        return;
    };
    let dir = TempDir::new();
    let users = users();
    let sites = web::sample_sites(KIND, &users);
    let rejected = web::site_with_unknown_directive(KIND, &users[0], "not_a_caddy_directive");

    let layout = HostLayout::under(dir.0.join("node"));
    for d in [&layout.sites_root, &layout.php_run_dir, &layout.log_dir] {
        std::fs::create_dir_all(d).expect("node dir");
    }
    for site in &sites {
        let root = layout.site(site).document_root;
        std::fs::create_dir_all(&root).expect("document root");
        std::fs::write(root.join("index.html"), format!("site {}\n", site.id)).expect("index");
    }
    let mut config = CaddyConfig::new(layout);
    config.binary = binary;
    config.http_port = free_port();
    config.https_port = free_port();
    config.admin_port = free_port();
    config.server_root = dir.0.join("caddy");
    let _stop = Stop(config.server_root.join("run/caddy.pid"));
    let live = config.server_root.join("managed/live");
    let caddy = Caddy::new(config).expect("caddy backend");

    web::run_all(
        &caddy,
        &sites,
        &rejected,
        &|| snapshot(&live),
        &|_, file| tamper(&live, file),
    )
    .await;
}

/// A node under `dir` with the directories caddy opens, each site's document root holding an
/// `index.html`, and a self-signed certificate at every HTTPS site's certificate paths.
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
        let paths = layout.site(site);
        std::fs::create_dir_all(&paths.document_root).expect("document root");
        std::fs::write(
            paths.document_root.join("index.html"),
            format!("site {}\n", site.id),
        )
        .expect("index");
        if matches!(site.settings.ssl, Ssl::Enabled { .. }) {
            let status = std::process::Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
                .args(["-subj", "/CN=test", "-days", "2", "-keyout"])
                .arg(&paths.certificate_key)
                .arg("-out")
                .arg(&paths.certificate)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl req: {status}");
        }
    }
    layout
}

/// A caddy backend under `dir` on free ports, with the guard that stops what it starts.
fn backend(binary: PathBuf, dir: &Path, layout: HostLayout) -> (Caddy, Stop, u16) {
    let mut config = CaddyConfig::new(layout);
    config.binary = binary;
    config.http_port = free_port();
    config.https_port = free_port();
    config.admin_port = free_port();
    config.server_root = dir.join("caddy");
    let stop = Stop(config.server_root.join("run/caddy.pid"));
    let port = config.http_port;
    (Caddy::new(config).expect("caddy backend"), stop, port)
}

#[tokio::test]
async fn every_sample_site_passes_caddy_validate_including_https() {
    let Some(binary) = caddy_or_skip() else {
        return;
    };
    let dir = TempDir::new();
    let mut sites = web::sample_sites_with_tls(KIND, &users());
    // A suspended HTTPS site too: its blocks are of their own.
    let mut suspended = sites[5].clone();
    suspended.id = hosting_core::model::WebsiteId(20);
    suspended.domain = "suspended.suite.example.com".parse().expect("domain");
    suspended.aliases = vec![];
    suspended.status = hosting_core::model::WebsiteStatus::Suspended;
    sites.push(suspended);
    let layout = node(&dir.0, &sites);
    let (caddy, _stop, _) = backend(binary, &dir.0, layout);
    let staged = dir.0.join("staged");
    let mut files = vec![caddy.render_main(&staged).expect("main")];
    for site in &sites {
        files.extend(caddy.render_site(site).expect("render"));
    }
    for file in &files {
        let path = file.path.under(&staged);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &file.contents).expect("write");
    }
    WebServer::validate(&caddy, &staged)
        .await
        .expect("caddy validate accepts every sample site");
}

/// `GET path` for `host` on 127.0.0.1:`port`: status, head and body.
async fn get(port: u16, host: &str, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {text:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// What the rendered blocks do, asked over HTTP from the running caddy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_serves_redirects_challenges_headers_and_hides_dotfiles() {
    let Some(binary) = caddy_or_skip() else {
        return;
    };
    let dir = TempDir::new();
    let sites = web::sample_sites(KIND, &users());
    let layout = node(&dir.0, &sites);
    let aliased = layout.site(&sites[3]).document_root;
    std::fs::create_dir_all(aliased.join(".well-known/acme-challenge")).expect("mkdir");
    std::fs::write(
        aliased.join(".well-known/acme-challenge/token"),
        "challenge\n",
    )
    .expect("token");
    std::fs::write(aliased.join(".env"), "SECRET=1\n").expect("dotfile");
    let php = layout.site(&sites[2]).document_root;
    std::fs::write(php.join("style.css"), "body {}\n").expect("css");
    let (caddy, _stop, port) = backend(binary, &dir.0, layout);
    caddy.apply(&sites).await.expect("apply");

    let (status, _, body) = get(port, "plain.suite.example.com", "/").await;
    assert_eq!((status, body.as_str()), (200, "site 1\n"));
    let (status, head, _) = get(port, "www.suite-aliases.example.net", "/a/b?c=d").await;
    assert_eq!(status, 301, "{head}");
    assert!(
        head.contains(&format!(
            "location: http://suite-aliases.example.net:{port}/a/b?c=d"
        )),
        "{head}"
    );
    let challenge = "/.well-known/acme-challenge/token";
    let (status, _, body) = get(port, "www.suite-aliases.example.net", challenge).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "challenge\n"),
        "on the redirected name"
    );
    let (status, _, _) = get(port, "shop.suite-aliases.example.net", "/.env").await;
    assert_eq!(status, 404, "dotfiles are hidden");
    let (status, head, _) = get(port, "php84.suite.example.org", "/style.css").await;
    assert_eq!(status, 200, "{head}");
    for needle in [
        "cache-control: public, max-age=3600",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(needle), "{needle} in {head}");
    }
    let (status, _, _) = get(port, "restricted.suite.example.com", "/").await;
    assert_eq!(status, 200, "127.0.0.1 is in the allow list");

    // Suspended: every path of every name answers the 403 page, nothing of the site.
    let mut suspended = sites.clone();
    suspended[3].status = hosting_core::model::WebsiteStatus::Suspended;
    caddy.apply(&suspended).await.expect("apply a suspension");
    for host in ["suite-aliases.example.net", "www.suite-aliases.example.net"] {
        for path in ["/", challenge, "/.env"] {
            let (status, head, body) = get(port, host, path).await;
            assert_eq!(status, 403, "{host}{path}: {head}");
            assert!(head.contains("content-type: text/html"), "{head}");
            assert!(body.contains("<h1>This site is suspended.</h1>"), "{body}");
        }
    }
    caddy.apply(&[]).await.expect("remove every site");
}

/// Two caddies of two nodes run side by side (each matched by its own pid file, never by the
/// binary's name), and a pid file left naming a live process that is not this caddy (a reused
/// pid after a reboot) is removed, not signalled: caddy starts and the process lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddies_run_side_by_side_and_a_foreign_pid_is_never_signalled() {
    let Some(binary) = caddy_or_skip() else {
        return;
    };
    let sites: Vec<Website> = web::sample_sites(KIND, &users())
        .into_iter()
        .take(1)
        .collect();
    let (first_dir, second_dir) = (TempDir::new(), TempDir::new());
    let (first, _first_stop, first_port) =
        backend(binary.clone(), &first_dir.0, node(&first_dir.0, &sites));
    first.apply(&sites).await.expect("first caddy");

    let (second, _second_stop, second_port) =
        backend(binary, &second_dir.0, node(&second_dir.0, &sites));
    let mut bystander = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("start sleep");
    let pid_file = second_dir.0.join("caddy/run/caddy.pid");
    std::fs::create_dir_all(pid_file.parent().expect("run dir")).expect("run dir");
    std::fs::write(&pid_file, format!("{}\n", bystander.id())).expect("plant the pid file");
    let applied = second.apply(&sites).await;
    let alive = bystander.try_wait().expect("wait").is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    applied.expect("the second caddy starts beside the first");
    assert!(alive, "the process the stale pid file named was signalled");
    let named = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_ne!(
        named.trim(),
        bystander.id().to_string(),
        "caddy wrote its own"
    );

    for port in [first_port, second_port] {
        let (status, _, body) = get(port, "plain.suite.example.com", "/").await;
        assert_eq!((status, body.as_str()), (200, "site 1\n"), "port {port}");
    }
}
