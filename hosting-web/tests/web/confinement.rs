//! Tenants confined to their own sites: a tenant directive outside the server's policy is not
//! rendered (the operator's are), and on real servers a link to another owner's files is not
//! followed, a suspended site answers only its 403 page and the health check, and a tenant's
//! password protection keeps the site's IP rules and leaves the SDK's paths open.

use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use hosting_core::model::{Website, WebsiteStatus};
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_core::{HostLayout, WebServer};
use hosting_web::{
    APACHE_POLICY, Apache, ApacheConfig, Management, NGINX_POLICY, Nginx, NginxConfig,
    OPENLITESPEED_POLICY, Ports,
};

use crate::support::{
    KINDS, Running, SiteBuilder, TempDir, fetch, fetch_with, free_port, needs_root,
    operator_directive, refused_directive, render_all, server_binary, snapshot_layout,
    valid_directives,
};

/// The account a tenant's files belong to, and another tenant's (no account needs to exist:
/// the servers compare numeric owners).
const TENANT: u32 = 20_001;
const OTHER: u32 = 20_002;

#[test]
fn a_tenant_directive_outside_the_policy_is_not_rendered_and_operator_directives_are() {
    let layout = snapshot_layout();
    for kind in KINDS {
        let (refused, refused_args) = refused_directive(kind);
        let (operator, operator_args) = operator_directive(kind);
        let mut tenant = valid_directives(kind).to_vec();
        tenant.insert(1, refused_directive(kind));
        let site = SiteBuilder::new(5, "tenant.example.com", kind)
            .directives(&tenant)
            .operator_directives(&[operator_directive(kind)])
            .build();
        let text = render_all(kind, &layout, &site);
        assert!(
            !text.contains(refused_args[0]),
            "{kind}: {refused} was rendered:\n{text}"
        );
        let operator_line = format!("{operator} {}", operator_args.join(" "));
        assert!(
            text.contains(&operator_line),
            "{kind}: no {operator_line:?}"
        );
        // The accepted ones keep their order, their site paths made absolute under the home.
        let home = layout.site(&site).home;
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let mut at = 0;
        for (name, args) in valid_directives(kind) {
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    if a.contains('/') {
                        home.join(a).display().to_string()
                    } else {
                        (*a).to_owned()
                    }
                })
                .collect();
            let mut line = format!("{name} {}", args.join(" "));
            if kind == WebServerKind::Nginx {
                line.push(';');
            }
            let found = lines[at..]
                .iter()
                .position(|l| *l == line)
                .unwrap_or_else(|| panic!("{kind}: {line:?} missing or out of order:\n{text}"));
            at += found + 1;
        }
        assert!(
            text.find("# Operator directives") > text.find("# Extra directives"),
            "{kind}: operator directives come after the tenant's"
        );
    }
}

/// Every allowed directive has its row in the README's tables, so the documentation cannot
/// fall behind the policies.
#[test]
fn the_readme_documents_every_allowed_directive() {
    let readme = include_str!("../../README.md");
    for policy in [NGINX_POLICY, APACHE_POLICY] {
        for allowed in policy.allowed() {
            let row = format!("\n| `{}` |", allowed.name);
            assert!(
                readme.contains(&row),
                "README.md has no row for {}",
                allowed.name
            );
        }
    }
    for allowed in OPENLITESPEED_POLICY.allowed() {
        assert!(
            readme.contains(&format!("`{}`", allowed.name)),
            "{}",
            allowed.name
        );
    }
}

#[test]
fn each_server_reports_its_own_policy() {
    let layout = snapshot_layout();
    let nginx = Nginx::new(NginxConfig::new(layout.clone())).expect("nginx");
    let apache = Apache::new(ApacheConfig::new(layout.clone())).expect("apache");
    let ols = hosting_web::OpenLiteSpeed::new(hosting_web::OpenLiteSpeedConfig::new(layout))
        .expect("ols");
    assert_eq!(WebServer::directive_policy(&nginx), NGINX_POLICY);
    assert_eq!(WebServer::directive_policy(&apache), APACHE_POLICY);
    assert_eq!(ols.directive_policy(), OPENLITESPEED_POLICY);
}

/// A backend of `kind` supervised under `dir` on free ports (with template `overrides`), and
/// the guard that stops it.
fn supervised(
    kind: WebServerKind,
    binary: &Path,
    dir: &Path,
    layout: HostLayout,
    overrides: Option<PathBuf>,
) -> (Box<dyn WebServer>, Running, u16) {
    let ports = Ports {
        http: free_port(),
        https: free_port(),
    };
    let server_root = dir.join("server");
    match kind {
        WebServerKind::Nginx => {
            let mut config = NginxConfig::new(layout);
            config.binary = binary.to_owned();
            config.ports = ports;
            config.listen_ipv6 = false;
            config.template_overrides = overrides;
            config.management = Management::Supervised {
                server_root: server_root.clone(),
            };
            let running = Running {
                pid_file: server_root.join("run/nginx.pid"),
                signal: "-QUIT",
            };
            let nginx = Nginx::new(config).expect("nginx");
            (Box::new(nginx), running, ports.http)
        }
        _ => {
            let mut config = ApacheConfig::new(layout);
            config.binary = binary.to_owned();
            config.ports = ports;
            config.template_overrides = overrides;
            config.management = Management::Supervised {
                server_root: server_root.clone(),
            };
            let running = Running {
                pid_file: server_root.join("run/apache2.pid"),
                signal: "-TERM",
            };
            let apache = Apache::new(config).expect("apache");
            (Box::new(apache), running, ports.http)
        }
    }
}

fn binary_of(kind: WebServerKind) -> Option<std::path::PathBuf> {
    server_binary(match kind {
        WebServerKind::Nginx => "HOSTING_TEST_NGINX",
        _ => "HOSTING_TEST_APACHE",
    })
}

/// A node under `dir` (readable by the servers' workers) with the directories they open.
fn node(dir: &Path) -> HostLayout {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let layout = HostLayout::under(dir.join("node"));
    for d in [
        &layout.sites_root,
        &layout.log_dir,
        &layout.cert_dir,
        &layout.php_run_dir,
    ] {
        std::fs::create_dir_all(d).expect("node dir");
    }
    layout
}

/// `path` created as a directory owned by `uid`.
fn owned_dir(path: &Path, uid: u32) {
    std::fs::create_dir_all(path).expect("mkdir");
    lchown(path, Some(uid), Some(uid)).expect("chown");
}

/// `path` written with `text`, owned by `uid`.
fn owned_file(path: &Path, text: &str, uid: u32) {
    std::fs::write(path, text).expect("write");
    lchown(path, Some(uid), Some(uid)).expect("chown");
}

/// A symbolic link at `link` to `target`, the link itself owned by `uid`.
fn owned_link(target: &Path, link: &Path, uid: u32) {
    symlink(target, link).expect("symlink");
    lchown(link, Some(uid), Some(uid)).expect("chown the link");
}

/// Five sites of `kind`: the other tenant's (1), and four of the tenant's: a document root
/// replaced by a link to the other tenant's (2), links inside the document root to its own
/// file and to the other tenant's (3), a document root linked to a root-owned directory, as
/// `/etc` is (4), and a document root linked to a release directory of its own (5).
fn symlink_node(dir: &Path, kind: WebServerKind) -> (HostLayout, Vec<Website>) {
    let layout = node(dir);
    let sites: Vec<Website> = [
        "victim.example.com",
        "borrowed-root.example.com",
        "links.example.com",
        "etc-root.example.com",
        "release.example.com",
    ]
    .iter()
    .zip(1..)
    .map(|(domain, id)| SiteBuilder::new(id, domain, kind).build())
    .collect();
    let paths: Vec<_> = sites.iter().map(|s| layout.site(s)).collect();

    owned_dir(&paths[0].home, OTHER);
    owned_dir(&paths[0].document_root, OTHER);
    owned_file(
        &paths[0].document_root.join("secret.html"),
        "VICTIM SECRET\n",
        OTHER,
    );

    owned_dir(&paths[1].home, TENANT);
    owned_link(&paths[0].document_root, &paths[1].document_root, TENANT);

    owned_dir(&paths[2].home, TENANT);
    owned_dir(&paths[2].document_root, TENANT);
    owned_dir(&paths[2].home.join("private"), TENANT);
    owned_file(
        &paths[2].home.join("private/own.html"),
        "OWN FILE\n",
        TENANT,
    );
    owned_link(
        Path::new("../private/own.html"),
        &paths[2].document_root.join("own.html"),
        TENANT,
    );
    owned_link(
        &paths[0].document_root.join("secret.html"),
        &paths[2].document_root.join("theirs.html"),
        TENANT,
    );

    let root_owned = dir.join("root-owned");
    owned_dir(&root_owned, 0);
    owned_file(&root_owned.join("secret.html"), "ROOT FILE\n", 0);
    owned_dir(&paths[3].home, TENANT);
    owned_link(&root_owned, &paths[3].document_root, TENANT);

    owned_dir(&paths[4].home, TENANT);
    owned_dir(&paths[4].home.join("releases/v1"), TENANT);
    owned_file(
        &paths[4].home.join("releases/v1/secret.html"),
        "RELEASE ONE\n",
        TENANT,
    );
    owned_link(
        &paths[4].home.join("releases/v1"),
        &paths[4].document_root,
        TENANT,
    );
    (layout, sites)
}

/// Apache's supervised main configuration with `<Directory />` following every link, as
/// Debian's own `apache2.conf` does (the configuration a service's sites run under).
fn distro_like_apache_main(dir: &Path) -> PathBuf {
    let embedded = include_str!("../../templates/apache-main.conf.j2");
    assert!(embedded.contains("<Directory />\n    Options None\n"));
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).expect("templates dir");
    std::fs::write(
        templates.join("apache-main.conf.j2"),
        embedded.replace(
            "<Directory />\n    Options None\n",
            "<Directory />\n    Options FollowSymLinks\n",
        ),
    )
    .expect("override");
    templates
}

async fn links_to_another_owner_are_not_followed(kind: WebServerKind, follow_at_root: bool) {
    let Some(binary) = binary_of(kind) else {
        return;
    };
    if !needs_root() {
        return;
    }
    let dir = TempDir::new(&format!("{kind}-symlinks"));
    let (layout, sites) = symlink_node(dir.path(), kind);
    let overrides = follow_at_root.then(|| distro_like_apache_main(dir.path()));
    let (server, _running, port) = supervised(kind, &binary, dir.path(), layout, overrides);
    server.apply(&sites).await.expect("apply");

    let served = |host: &str, path: &str, body: &str| {
        let answer = fetch(port, host, path);
        assert_eq!(answer.status, 200, "{kind}: {host}{path}: {answer:?}");
        assert_eq!(answer.body, body, "{kind}: {host}{path}");
    };
    let refused = |host: &str, path: &str| {
        let answer = fetch(port, host, path);
        assert!(
            matches!(answer.status, 403 | 404),
            "{kind}: {host}{path} must be refused: {answer:?}"
        );
        for secret in ["VICTIM SECRET", "ROOT FILE"] {
            assert!(
                !answer.body.contains(secret),
                "{kind}: {host}{path} leaked {secret}"
            );
        }
    };
    served("victim.example.com", "/secret.html", "VICTIM SECRET\n");
    refused("borrowed-root.example.com", "/secret.html");
    served("links.example.com", "/own.html", "OWN FILE\n");
    refused("links.example.com", "/theirs.html");
    refused("etc-root.example.com", "/secret.html");
    served("release.example.com", "/secret.html", "RELEASE ONE\n");
    server.apply(&[]).await.expect("remove every site");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_follows_no_link_to_another_owners_files() {
    links_to_another_owner_are_not_followed(WebServerKind::Nginx, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_follows_no_link_to_another_owners_files() {
    links_to_another_owner_are_not_followed(WebServerKind::Apache, false).await;
}

/// Debian's `<Directory />` follows every link; the site's own `<Directory>` on its home must
/// still refuse a document root linked to another owner's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_follows_no_link_to_another_owners_files_where_the_distro_follows_links() {
    links_to_another_owner_are_not_followed(WebServerKind::Apache, true).await;
}

/// A suspended PHP site with aliases, whose document root holds pages it must not serve.
fn suspended_node(dir: &Path, kind: WebServerKind) -> (HostLayout, Website) {
    let layout = node(dir);
    let site = SiteBuilder::new(3, "paused.example.com", kind)
        .aliases(&["www.paused.example.com", "shop.paused.example.com"])
        .php(Some(PhpVersion::V8_2))
        .directives(valid_directives(kind))
        .status(WebsiteStatus::Suspended)
        .build();
    let root = layout.site(&site).document_root;
    std::fs::create_dir_all(&root).expect("document root");
    std::fs::write(root.join("index.html"), "the site's own page\n").expect("index");
    std::fs::write(root.join("index.php"), "<?php echo 'PHP RAN';\n").expect("php");
    (layout, site)
}

async fn a_suspended_site_answers_403_and_the_health_check(kind: WebServerKind) {
    let Some(binary) = binary_of(kind) else {
        return;
    };
    let dir = TempDir::new(&format!("{kind}-suspended"));
    let (layout, mut site) = suspended_node(dir.path(), kind);
    let (server, _running, port) = supervised(kind, &binary, dir.path(), layout, None);
    // The apply's own health check asks the suspended site's probe path.
    let report = server
        .apply(std::slice::from_ref(&site))
        .await
        .expect("apply");
    assert_eq!(report.changed, [site.id]);

    for host in [
        "paused.example.com",
        "www.paused.example.com",
        "shop.paused.example.com",
    ] {
        for path in ["/", "/index.html", "/index.php", "/.env", "/missing"] {
            let answer = fetch(port, host, path);
            assert_eq!(answer.status, 403, "{kind}: {host}{path}: {answer:?}");
            assert!(
                answer.body.contains("<h1>This site is suspended.</h1>"),
                "{kind}: {host}{path}: {answer:?}"
            );
            assert!(
                answer.head.contains("content-type: text/html")
                    && !answer.body.contains("own page")
                    && !answer.body.contains("PHP RAN"),
                "{kind}: {host}{path}: {answer:?}"
            );
        }
    }
    let probe = fetch(port, "paused.example.com", "/.hosting-site");
    assert_eq!(probe.status, 204, "{kind}: {probe:?}");
    assert!(
        probe
            .head
            .lines()
            .any(|l| l.trim() == "x-hosting-site: paused.example.com"),
        "{kind}: {probe:?}"
    );

    // Lifted: the same site serves its files again.
    site.status = WebsiteStatus::Active;
    server
        .apply(std::slice::from_ref(&site))
        .await
        .expect("apply");
    let answer = fetch(port, "paused.example.com", "/index.html");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "the site's own page\n"),
        "{kind}"
    );
    server.apply(&[]).await.expect("remove every site");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_answers_a_suspended_site_with_403_and_its_health_check() {
    a_suspended_site_answers_403_and_the_health_check(WebServerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_answers_a_suspended_site_with_403_and_its_health_check() {
    a_suspended_site_answers_403_and_the_health_check(WebServerKind::Apache).await;
}

/// Basic authentication in each server's tenant directives.
fn password_directives(kind: WebServerKind) -> &'static [(&'static str, &'static [&'static str])] {
    match kind {
        WebServerKind::Nginx => &[
            ("auth_basic", &["Members"]),
            ("auth_basic_user_file", &["private/htpasswd"]),
        ],
        _ => &[
            ("AuthType", &["Basic"]),
            ("AuthName", &["Members"]),
            ("AuthUserFile", &["private/htpasswd"]),
            ("Require", &["valid-user"]),
        ],
    }
}

async fn a_tenants_password_keeps_the_ip_rules_and_the_sdks_paths(kind: WebServerKind) {
    let Some(binary) = binary_of(kind) else {
        return;
    };
    let dir = TempDir::new(&format!("{kind}-password"));
    let layout = node(dir.path());
    let open = SiteBuilder::new(1, "members.example.com", kind)
        .directives(password_directives(kind))
        .build();
    let fenced = SiteBuilder::new(2, "fenced.example.com", kind)
        .directives(password_directives(kind))
        .allow(&["10.0.0.0/8"])
        .build();
    for site in [&open, &fenced] {
        let paths = layout.site(site);
        let challenge = paths.document_root.join(".well-known/acme-challenge");
        std::fs::create_dir_all(&challenge).expect("challenge dir");
        std::fs::write(challenge.join("token"), "challenge\n").expect("token");
        std::fs::write(paths.document_root.join("index.html"), "members\n").expect("index");
        std::fs::create_dir_all(paths.home.join("private")).expect("private");
        // `member`, password `secret` (`openssl passwd -apr1 -salt hostingw secret`).
        std::fs::write(
            paths.home.join("private/htpasswd"),
            "member:$apr1$hostingw$xJ.y2Np0mE7Mwe3vySE8f1\n",
        )
        .expect("htpasswd");
    }
    let (server, _running, port) = supervised(kind, &binary, dir.path(), layout, None);
    server.apply(&[open, fenced]).await.expect("apply");

    let status = |host: &str, path: &str| fetch(port, host, path).status;
    let login = "Authorization: Basic bWVtYmVyOnNlY3JldA==\r\n";
    assert_eq!(status("members.example.com", "/"), 401, "{kind}: a login");
    // The password file is found at its path under the site's home.
    let answer = fetch_with(port, "members.example.com", "/", login);
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "members\n"),
        "{kind}: {answer:?}"
    );
    for headers in ["", login] {
        assert_eq!(
            fetch_with(port, "fenced.example.com", "/", headers).status,
            403,
            "{kind}: 127.0.0.1 is outside the site's IP rules, login or not"
        );
    }
    for host in ["members.example.com", "fenced.example.com"] {
        assert_eq!(status(host, "/.hosting-site"), 204, "{kind}: {host}");
    }
    let answer = fetch(
        port,
        "members.example.com",
        "/.well-known/acme-challenge/token",
    );
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "challenge\n"),
        "{kind}: ACME challenges need no login"
    );
    server.apply(&[]).await.expect("remove every site");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_password_protection_keeps_ip_rules_and_sdk_paths() {
    a_tenants_password_keeps_the_ip_rules_and_the_sdks_paths(WebServerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_password_protection_keeps_ip_rules_and_sdk_paths() {
    a_tenants_password_keeps_the_ip_rules_and_the_sdks_paths(WebServerKind::Apache).await;
}
