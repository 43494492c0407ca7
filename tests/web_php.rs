//! End to end on real servers: nginx or Apache in front of real PHP-FPM 8.2 (Debian) and 8.4
//! (trixie), all started and reloaded by the SDK under a temporary prefix.
//!
//! - a site serves a PHP page that prints PHP_VERSION and the pool's user;
//! - a second site under another user cannot read the first site's files through PHP;
//! - PHP routes through the front controller, dotfiles are refused, ACME challenges answer on a
//!   redirected name, and the www redirect keeps the path and query;
//! - switching a site between 8.2 and 8.4, both ways, while a client requests it in a loop,
//!   gives the client no error;
//! - a broken extra directive or override template fails the apply, the old config stays byte
//!   for byte, and the other sites keep answering;
//! - an apply killed at each step (fault injection through the process seam) converges on the
//!   next run, with no site lost.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use hosting_core::model::{
    ExtraDirectives, NodeId, ServerDirective, TenantId, UserId, Website, WebsiteId,
    WebsiteSettings, WebsiteStatus,
};
use hosting_core::node::apply_node;
use hosting_core::php::PhpRuntime;
use hosting_core::system::SystemRunner;
use hosting_core::types::{PhpVersion, SystemUser, WebServerKind};
use hosting_core::{Command, CommandOutput, CommandRunner, Error, HostLayout, Result, WebServer};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, PhpFpm, PrefixInstall};
use hosting_tests::{TempDir, env_or_skip, free_port, http_get, http_get_with_head};
use hosting_web::{Apache, ApacheConfig, Management, Nginx, NginxConfig, Ports};

/// The real binaries and users this machine provides, or `None` (skipped / failing in CI).
struct Machine {
    nginx: PathBuf,
    apache: PathBuf,
    php82: PrefixInstall,
    php84: PrefixInstall,
    users: Vec<SystemUser>,
}

fn machine() -> Option<Machine> {
    let users: Vec<SystemUser> = env_or_skip("HOSTING_TEST_SYSTEM_USERS")?
        .split(',')
        .map(|u| u.trim().parse().expect("valid test user"))
        .collect();
    assert!(users.len() >= 2, "two test users are needed");
    Some(Machine {
        nginx: env_or_skip("HOSTING_TEST_NGINX")?.into(),
        apache: env_or_skip("HOSTING_TEST_APACHE")?.into(),
        php82: PrefixInstall {
            fpm_binary: env_or_skip("HOSTING_TEST_PHP_FPM_82")?.into(),
            php_ini: None,
            scan_dir: None,
        },
        php84: PrefixInstall {
            fpm_binary: env_or_skip("HOSTING_TEST_PHP_FPM_84_BIN")?.into(),
            php_ini: Some(env_or_skip("HOSTING_TEST_PHP_FPM_84_INI")?.into()),
            scan_dir: Some(env_or_skip("HOSTING_TEST_PHP_FPM_84_SCAN_DIR")?.into()),
        },
        users,
    })
}

/// Runs real processes, except that the first command matching `fails` reports failure
/// without running: an apply interrupted at that step.
#[derive(Debug)]
struct FaultyRunner {
    fails: fn(&Command) -> bool,
    tripped: AtomicBool,
}

#[async_trait]
impl CommandRunner for FaultyRunner {
    async fn run(&self, command: &Command) -> Result<CommandOutput> {
        if (self.fails)(command) && !self.tripped.swap(true, Ordering::SeqCst) {
            return Ok(CommandOutput {
                code: Some(1),
                stdout: String::new(),
                stderr: "injected fault".to_owned(),
            });
        }
        SystemRunner.run(command).await
    }
}

/// Stops every server started under a prefix, even when a test fails half-way: each pid file
/// with the signal that stops that server gracefully and takes its children with it.
struct Stop(Vec<(PathBuf, &'static str)>);

impl Drop for Stop {
    fn drop(&mut self) {
        for (pid_file, signal) in &self.0 {
            if let Ok(pid) = std::fs::read_to_string(pid_file) {
                let _ = std::process::Command::new("kill")
                    .arg(signal)
                    .arg(pid.trim())
                    .status();
            }
        }
    }
}

/// One node under a prefix: a web server and PHP-FPM, both driven by the SDK.
struct Stack {
    /// First, so the servers stop before the prefix holding their pid files is removed.
    _stop: Stop,
    dir: Arc<TempDir>,
    layout: HostLayout,
    kind: WebServerKind,
    port: u16,
    web: Box<dyn WebServer>,
    php: PhpFpm,
    users: Vec<SystemUser>,
}

struct Options {
    runner: Arc<dyn CommandRunner>,
    web_templates: Option<PathBuf>,
    /// Whether dropping the stack stops the servers; a second stack over the same prefix
    /// leaves that to the first.
    owns_servers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runner: Arc::new(SystemRunner),
            web_templates: None,
            owns_servers: true,
        }
    }
}

impl Stack {
    async fn new(kind: WebServerKind) -> Option<Stack> {
        let machine = machine()?;
        let dir = Arc::new(TempDir::new());
        let port = free_port();
        Some(Self::on(&machine, dir, kind, port, Options::default()).await)
    }

    /// A stack over an existing prefix (`dir`, `port`), e.g. after an interrupted apply.
    async fn on(
        machine: &Machine,
        dir: Arc<TempDir>,
        kind: WebServerKind,
        port: u16,
        options: Options,
    ) -> Stack {
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let layout = HostLayout::under(root.join("node"));
        for d in [&layout.sites_root, &layout.php_run_dir, &layout.log_dir] {
            std::fs::create_dir_all(d).expect("mkdir layout");
        }
        let ports = Ports {
            http: port,
            https: free_port(),
        };
        let web: Box<dyn WebServer> = match kind {
            WebServerKind::Nginx => {
                let mut config = NginxConfig::new(layout.clone());
                config.binary = machine.nginx.clone();
                config.ports = ports;
                config.listen_ipv6 = false;
                config.runner = options.runner.clone();
                config.management = Management::Supervised {
                    server_root: root.join("nginx"),
                };
                config.template_overrides = options.web_templates.clone();
                Box::new(Nginx::new(config).expect("nginx"))
            }
            WebServerKind::Apache => {
                let mut config = ApacheConfig::new(layout.clone());
                config.binary = machine.apache.clone();
                config.ports = ports;
                config.runner = options.runner.clone();
                config.management = Management::Supervised {
                    server_root: root.join("apache"),
                };
                config.template_overrides = options.web_templates.clone();
                Box::new(Apache::new(config).expect("apache"))
            }
            other => panic!("no end-to-end stack for {other}"),
        };
        let mut php_config = FpmConfig::new(layout.clone());
        php_config.managed_root = root.join("php");
        php_config.service = FpmService::Supervised;
        let php = PhpFpm::discover(
            options.runner.clone(),
            php_config,
            &DiscoveryConfig {
                system_dir: None,
                prefix_installs: vec![machine.php82.clone(), machine.php84.clone()],
            },
        )
        .await
        .expect("discover PHP");
        assert_eq!(php.installed().len(), 2, "PHP 8.2 and 8.4");
        let stop = Stop(if options.owns_servers {
            vec![
                (root.join("nginx/run/nginx.pid"), "-QUIT"),
                (root.join("apache/run/apache2.pid"), "-TERM"),
                (layout.php_run_dir.join("php8.2-fpm.pid"), "-QUIT"),
                (layout.php_run_dir.join("php8.4-fpm.pid"), "-QUIT"),
            ]
        } else {
            Vec::new()
        });
        Stack {
            dir,
            layout,
            kind,
            port,
            web,
            php,
            users: machine.users.clone(),
            _stop: stop,
        }
    }

    /// Website `id` on PHP `version`, owned by test user `user`, with its files on disk.
    fn site(&self, id: i64, version: Option<PhpVersion>, user: usize) -> Website {
        let site = Website {
            id: WebsiteId(id),
            tenant_id: TenantId(1),
            owner_id: UserId(1),
            domain: format!("site{id}.e2e.example.com").parse().expect("domain"),
            aliases: vec![],
            node_id: NodeId(1),
            web_server: self.kind,
            php_version: version,
            system_user: self.users[user].clone(),
            document_root: "public".parse().expect("root"),
            status: WebsiteStatus::Active,
            settings: WebsiteSettings::default(),
            created_at: chrono_epoch(),
            updated_at: chrono_epoch(),
        };
        let paths = self.layout.site(&site);
        for d in [&paths.document_root, &paths.tmp_dir, &paths.session_dir] {
            std::fs::create_dir_all(d).expect("mkdir site");
        }
        std::fs::write(
            paths.document_root.join("index.php"),
            "<?php echo PHP_VERSION, ' ', posix_getpwuid(posix_geteuid())['name'];\n",
        )
        .expect("index.php");
        std::fs::write(
            paths.home.join("secret.txt"),
            format!("secret of site {id}\n"),
        )
        .expect("secret");
        let uid = uid_of(&site.system_user);
        for path in [
            paths.home.clone(),
            paths.document_root.clone(),
            paths.tmp_dir.clone(),
            paths.session_dir.clone(),
            paths.home.join("secret.txt"),
        ] {
            std::os::unix::fs::chown(&path, Some(uid), Some(uid)).expect("chown");
        }
        // The home is closed to others; the document root stays readable for the web server.
        std::fs::set_permissions(&paths.home, std::fs::Permissions::from_mode(0o711))
            .expect("chmod home");
        std::fs::set_permissions(
            paths.home.join("secret.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod secret");
        site
    }

    async fn get(&self, site: &Website, path: &str) -> (u16, String) {
        http_get(self.port, site.domain.as_str(), path)
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", site.domain))
    }

    fn live_files(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        for tree in [
            "nginx/managed/live",
            "apache/managed/live",
            "php/8.2/live",
            "php/8.4/live",
        ] {
            collect(&self.dir.path().join(tree), &mut out);
        }
        out
    }
}

fn chrono_epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::UNIX_EPOCH
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

fn collect(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.insert(path.clone(), std::fs::read_to_string(&path).expect("read"));
        }
    }
}

/// `GET path` for `host` on 127.0.0.1:`port` over HTTP/1.0: status and body.
async fn serves_php_as_each_sites_user_and_isolates_sites(kind: WebServerKind) {
    let Some(stack) = Stack::new(kind).await else {
        return;
    };
    let first = stack.site(1, Some(PhpVersion::V8_2), 0);
    let second = stack.site(2, Some(PhpVersion::V8_4), 1);
    let desired = [first.clone(), second.clone()];
    apply_node(stack.web.as_ref(), &stack.php, &[], &desired)
        .await
        .expect("apply");

    let (status, body) = stack.get(&first, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("8.2."), "{body}");
    assert!(body.ends_with(&format!(" {}", first.system_user)), "{body}");
    let (status, body) = stack.get(&second, "/index.php").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("8.4."), "{body}");
    assert!(
        body.ends_with(&format!(" {}", second.system_user)),
        "{body}"
    );

    // The second site tries to read the first site's secret through PHP.
    let secret = stack.layout.site(&first).home.join("secret.txt");
    let probe = stack.layout.site(&second).document_root.join("probe.php");
    std::fs::write(
        &probe,
        format!(
            "<?php $r = @file_get_contents('{}'); echo $r === false ? 'DENIED' : 'READ';\n",
            secret.display()
        ),
    )
    .expect("probe");
    let (status, body) = stack.get(&second, "/probe.php").await;
    assert_eq!((status, body.as_str()), (200, "DENIED"));
    // The first site reads its own secret.
    let own = stack.layout.site(&first).document_root.join("own.php");
    std::fs::write(
        &own,
        format!("<?php echo file_get_contents('{}');\n", secret.display()),
    )
    .expect("own");
    let (status, body) = stack.get(&first, "/own.php").await;
    assert_eq!((status, body.as_str()), (200, "secret of site 1\n"));

    // The health check's probe is answered by each site's own block, without PHP; a name no
    // site serves reaches the default block, which does not answer it.
    for site in [&first, &second] {
        let (status, head, _) =
            http_get_with_head(stack.port, site.domain.as_str(), "/.hosting-site")
                .await
                .expect("probe");
        assert_eq!(status, 204, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-hosting-site: {}", site.domain).to_ascii_lowercase()),
            "{head}"
        );
    }
    let (status, head, _) = http_get_with_head(stack.port, "unknown.example.net", "/.hosting-site")
        .await
        .expect("probe");
    assert_ne!(status, 204, "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("x-hosting-site"),
        "{head}"
    );

    assert!(stack.web.drift(&desired).await.expect("drift").is_empty());
    assert!(stack.php.drift(&desired).await.expect("drift").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_php_as_each_sites_user_and_isolates_sites() {
    serves_php_as_each_sites_user_and_isolates_sites(WebServerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_serves_php_as_each_sites_user_and_isolates_sites() {
    serves_php_as_each_sites_user_and_isolates_sites(WebServerKind::Apache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_routes_php_guards_dotfiles_and_redirects_on_real_php() {
    let Some(stack) = Stack::new(WebServerKind::Nginx).await else {
        return;
    };
    let mut site = stack.site(1, Some(PhpVersion::V8_2), 0);
    let apex: hosting_core::types::DomainName = "e2e-redirect.example.org".parse().expect("domain");
    site.domain = format!("www.{apex}").parse().expect("domain");
    site.aliases = vec![apex.clone()];
    site.settings.www_redirect = hosting_core::model::WwwRedirect::ToWww;
    site.settings.cache_ttl_secs = Some(60);
    site.settings.security_headers = true;
    let root = stack.layout.site(&site).document_root;
    std::fs::write(
        root.join("index.php"),
        "<?php echo 'front:', $_SERVER['REQUEST_URI'], ':', $_GET['x'] ?? '';\n",
    )
    .expect("index");
    std::fs::write(root.join(".env"), "SECRET=1\n").expect("dotfile");
    std::fs::create_dir_all(root.join(".well-known/acme-challenge")).expect("acme dir");
    std::fs::write(root.join(".well-known/acme-challenge/token"), "token-body").expect("token");
    std::fs::write(root.join("style.css"), "body {}\n").expect("css");
    apply_node(
        stack.web.as_ref(),
        &stack.php,
        &[],
        std::slice::from_ref(&site),
    )
    .await
    .expect("apply");
    let port = stack.port;
    let get = |host: String, path: &'static str| async move {
        http_get_with_head(port, &host, path).await
    };
    let www = site.domain.to_string();

    let (status, head, body) = get(www.clone(), "/index.php?x=1").await.expect("get");
    assert_eq!(
        (status, body.as_str()),
        (200, "front:/index.php?x=1:1"),
        "{head}"
    );
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    let (status, _, body) = get(www.clone(), "/some/pretty/url").await.expect("get");
    assert_eq!(
        (status, body.as_str()),
        (200, "front:/some/pretty/url:"),
        "front controller"
    );
    let (status, head, _) = get(www.clone(), "/style.css").await.expect("get");
    assert_eq!(status, 200);
    assert!(head.contains("Cache-Control: max-age=60"), "{head}");
    assert_eq!(get(www.clone(), "/.env").await.expect("get").0, 403);
    let (status, _, body) = get(apex.to_string(), "/.well-known/acme-challenge/token")
        .await
        .expect("get");
    assert_eq!(
        (status, body.as_str()),
        (200, "token-body"),
        "ACME on the redirected name"
    );
    let (status, head, _) = get(apex.to_string(), "/page?q=1").await.expect("get");
    assert_eq!(status, 301);
    assert!(
        head.contains(&format!("Location: http://{www}:{}/page?q=1", stack.port)),
        "{head}"
    );
}

async fn switching_php_versions_drops_no_request(kind: WebServerKind) {
    let Some(stack) = Stack::new(kind).await else {
        return;
    };
    let on82 = stack.site(1, Some(PhpVersion::V8_2), 0);
    let mut on84 = on82.clone();
    on84.php_version = Some(PhpVersion::V8_4);
    apply_node(
        stack.web.as_ref(),
        &stack.php,
        &[],
        std::slice::from_ref(&on82),
    )
    .await
    .expect("initial apply");

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, answered) = (stop.clone(), answered.clone());
        let (port, host) = (stack.port, on82.domain.to_string());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match http_get(port, &host, "/").await {
                    Ok((200, body)) if body.starts_with("8.") => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failures.push(format!("{other:?}")),
                }
            }
            failures
        }));
    }
    for (from, to) in [(&on82, &on84), (&on84, &on82), (&on82, &on84)] {
        apply_node(
            stack.web.as_ref(),
            &stack.php,
            std::slice::from_ref(from),
            std::slice::from_ref(to),
        )
        .await
        .expect("switch");
        let want = to.php_version.expect("php").as_str();
        let (status, body) = stack.get(to, "/").await;
        assert_eq!(
            status,
            200,
            "after switching to {want}: {body}; error log: {}",
            std::fs::read_to_string(stack.layout.site(to).error_log).unwrap_or_default()
        );
        assert!(
            body.starts_with(&format!("{want}.")),
            "after switching to {want}: {body}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.expect("client"));
    }
    assert!(
        failures.is_empty(),
        "requests failed during the switch: {failures:?}"
    );
    assert!(
        answered.load(Ordering::SeqCst) > 20,
        "the clients really ran"
    );
    // The old 8.2 pool is gone: its socket no longer exists.
    let old_socket = stack.layout.php_socket(on82.id, PhpVersion::V8_2);
    assert!(!old_socket.exists(), "{} was removed", old_socket.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_switches_php_versions_without_dropping_a_request() {
    switching_php_versions_drops_no_request(WebServerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_switches_php_versions_without_dropping_a_request() {
    switching_php_versions_drops_no_request(WebServerKind::Apache).await;
}

/// An operator directive the server does not know (a tenant's would not be rendered at all).
fn broken_directive(site: &mut Website, name: &str) {
    site.settings.operator_directives = ExtraDirectives::try_from(vec![ServerDirective {
        name: name.parse().expect("directive name"),
        args: vec!["on".parse().expect("arg")],
    }])
    .expect("one directive");
}

async fn a_broken_directive_changes_nothing(kind: WebServerKind, directive: &str) {
    let Some(stack) = Stack::new(kind).await else {
        return;
    };
    let good = stack.site(1, Some(PhpVersion::V8_2), 0);
    apply_node(
        stack.web.as_ref(),
        &stack.php,
        &[],
        std::slice::from_ref(&good),
    )
    .await
    .expect("apply");
    let before = stack.live_files();

    let mut bad = stack.site(2, Some(PhpVersion::V8_4), 1);
    broken_directive(&mut bad, directive);
    let desired = [good.clone(), bad];
    match apply_node(
        stack.web.as_ref(),
        &stack.php,
        std::slice::from_ref(&good),
        &desired,
    )
    .await
    {
        Err(Error::Validation { output, .. }) => {
            assert!(
                output
                    .to_ascii_lowercase()
                    .contains(&directive.to_ascii_lowercase()),
                "{output}"
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(
        stack.live_files(),
        before,
        "old config restored byte for byte"
    );
    let (status, body) = stack.get(&good, "/").await;
    assert_eq!(status, 200, "the other site keeps answering: {body}");
    assert!(
        stack
            .web
            .drift(std::slice::from_ref(&good))
            .await
            .expect("drift")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rejects_a_broken_extra_directive_and_keeps_serving() {
    a_broken_directive_changes_nothing(WebServerKind::Nginx, "this_is_not_a_directive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_rejects_a_broken_extra_directive_and_keeps_serving() {
    a_broken_directive_changes_nothing(WebServerKind::Apache, "ThisIsNotADirective").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_override_template_is_refused_and_the_old_config_stays() {
    let Some(machine) = machine() else {
        return;
    };
    let dir = Arc::new(TempDir::new());
    let port = free_port();
    let stack = Stack::on(
        &machine,
        dir.clone(),
        WebServerKind::Nginx,
        port,
        Options::default(),
    )
    .await;
    let site = stack.site(1, Some(PhpVersion::V8_2), 0);
    apply_node(
        stack.web.as_ref(),
        &stack.php,
        &[],
        std::slice::from_ref(&site),
    )
    .await
    .expect("apply");
    let before = stack.live_files();

    // An operator template that parses as a template but not as nginx configuration.
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).expect("mkdir");
    let embedded = include_str!("../hosting-web/templates/nginx-site.conf.j2");
    std::fs::write(
        templates.join("nginx-site.conf.j2"),
        format!("{embedded}\nnot_an_nginx_directive on;\n"),
    )
    .expect("override");
    let overridden = Stack::on(
        &machine,
        dir.clone(),
        WebServerKind::Nginx,
        port,
        Options {
            web_templates: Some(templates),
            owns_servers: false,
            ..Options::default()
        },
    )
    .await;
    let mut changed = site.clone();
    changed.settings.gzip = true;
    match overridden.web.apply(std::slice::from_ref(&changed)).await {
        Err(Error::Validation { output, .. }) => {
            assert!(output.contains("not_an_nginx_directive"), "{output}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(stack.live_files(), before);
    assert_eq!(stack.get(&site, "/").await.0, 200);
}

/// A step of the apply path, named, and how to recognise its command.
type FaultPoint = (&'static str, fn(&Command) -> bool);

/// Commands at which an apply is cut off, one per step of the path.
fn fault_points() -> Vec<FaultPoint> {
    fn arg(c: &Command, i: usize) -> Option<String> {
        c.args.get(i).map(|a| a.to_string_lossy().into_owned())
    }
    vec![
        ("staging (sync)", |c| c.program.ends_with("sync")),
        ("php-fpm -t", |c| {
            c.program.to_string_lossy().contains("php-fpm") && c.args.iter().any(|a| a == "-t")
        }),
        ("php-fpm reload", |c| {
            c.program.ends_with("kill") && arg(c, 0).as_deref() == Some("-USR2")
        }),
        ("nginx -t", |c| {
            c.program.to_string_lossy().contains("nginx") && c.args.iter().any(|a| a == "-t")
        }),
        ("nginx reload", |c| {
            c.program.ends_with("kill") && arg(c, 0).as_deref() == Some("-HUP")
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_cut_off_at_any_step_converges_on_the_next_run() {
    let Some(machine) = machine() else {
        return;
    };
    for (step, fails) in fault_points() {
        let dir = Arc::new(TempDir::new());
        let port = free_port();
        let stack = Stack::on(
            &machine,
            dir.clone(),
            WebServerKind::Nginx,
            port,
            Options::default(),
        )
        .await;
        let kept = stack.site(1, Some(PhpVersion::V8_2), 0);
        apply_node(
            stack.web.as_ref(),
            &stack.php,
            &[],
            std::slice::from_ref(&kept),
        )
        .await
        .expect("initial apply");

        let mut moved = kept.clone();
        moved.php_version = Some(PhpVersion::V8_4);
        let added = stack.site(2, Some(PhpVersion::V8_2), 1);
        let desired = [moved.clone(), added.clone()];
        let faulty = Stack::on(
            &machine,
            dir.clone(),
            WebServerKind::Nginx,
            port,
            Options {
                runner: Arc::new(FaultyRunner {
                    fails,
                    tripped: AtomicBool::new(false),
                }),
                owns_servers: false,
                ..Options::default()
            },
        )
        .await;
        let cut = apply_node(
            faulty.web.as_ref(),
            &faulty.php,
            std::slice::from_ref(&kept),
            &desired,
        )
        .await;
        // A master that fails one reload is put back on its own and reloaded again by the
        // final step, so that fault ends in a served node; every other one surfaces.
        let cut = match (step, cut) {
            ("php-fpm reload", Ok(report)) => {
                assert!(report.php_failed.is_empty(), "{step}: {report:?}");
                "the reload failed once and was retried".to_owned()
            }
            (_, Ok(report)) => panic!("{step}: the injected fault surfaces: {report:?}"),
            (_, Err(e)) => e.to_string(),
        };
        let (status, body) = stack.get(&kept, "/").await;
        assert_eq!(
            status, 200,
            "{step}: the existing site survived the cut ({cut}): {body}"
        );

        // A restart: drift says what is off, and one more apply converges.
        apply_node(
            stack.web.as_ref(),
            &stack.php,
            std::slice::from_ref(&kept),
            &desired,
        )
        .await
        .unwrap_or_else(|e| panic!("{step}: the next apply converges: {e}"));
        assert!(
            stack.web.drift(&desired).await.expect("drift").is_empty(),
            "{step}"
        );
        assert!(
            stack.php.drift(&desired).await.expect("drift").is_empty(),
            "{step}"
        );
        for site in &desired {
            let (status, body) = stack.get(site, "/").await;
            assert_eq!(status, 200, "{step}: {body}");
            let version = site.php_version.expect("php").as_str();
            assert!(body.starts_with(&format!("{version}.")), "{step}: {body}");
        }
    }
}
