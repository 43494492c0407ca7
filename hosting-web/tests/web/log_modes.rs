//! The two log modes: the shared one (the default) renders exactly the per-site output without
//! the sites' log lines; its snapshots; the real `nginx -t` running out of descriptors with
//! per-site logs where shared logs pass; and real NGINX and Apache writing the site's name
//! into the shared access and error logs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hosting_core::model::Website;
use hosting_core::types::WebServerKind;
use hosting_core::{Error, HostLayout};
use hosting_web::{Apache, ApacheConfig, LogMode, Nginx, NginxConfig, Ports};

use crate::support::{
    Running, SiteBuilder, TempDir, fetch, fixtures, free_port, node_for, server_binary,
    snapshot_layout,
};

fn nginx_with(layout: &HostLayout, mode: LogMode) -> Nginx {
    let mut config = NginxConfig::new(layout.clone());
    config.log_mode = mode;
    Nginx::new(config).expect("nginx")
}

fn apache_with(layout: &HostLayout, mode: LogMode) -> Apache {
    let mut config = ApacheConfig::new(layout.clone());
    config.log_mode = mode;
    Apache::new(config).expect("apache")
}

/// Every file of `site` in `mode`, headed by its path (as the fixture snapshots are).
fn render(kind: WebServerKind, layout: &HostLayout, mode: LogMode, site: &Website) -> String {
    let files = match kind {
        WebServerKind::Nginx => nginx_with(layout, mode).render_site(site),
        _ => apache_with(layout, mode).render_site(site),
    }
    .expect("render");
    files
        .iter()
        .map(|f| format!("=== {} ===\n{}", f.path, f.contents))
        .collect()
}

/// Whether `line` names a log file of its own (a directive the shared mode leaves out;
/// `access_log off`, which the health probe's location uses, names none).
fn is_log_line(line: &str) -> bool {
    let line = line.trim_start();
    line != "access_log off;\n"
        && line != "access_log off;"
        && ["access_log ", "error_log ", "ErrorLog ", "CustomLog "]
            .iter()
            .any(|d| line.starts_with(d))
}

#[test]
fn shared_logs_are_the_default() {
    let layout = snapshot_layout();
    assert_eq!(NginxConfig::new(layout.clone()).log_mode, LogMode::Shared);
    assert_eq!(ApacheConfig::new(layout).log_mode, LogMode::Shared);
    assert_eq!(LogMode::default(), LogMode::Shared);
}

#[test]
fn shared_mode_renders_the_per_site_output_without_its_log_lines() {
    let layout = snapshot_layout();
    for kind in [WebServerKind::Nginx, WebServerKind::Apache] {
        for (name, site) in fixtures(kind) {
            let per_site = render(kind, &layout, LogMode::PerSite, &site);
            let shared = render(kind, &layout, LogMode::Shared, &site);
            let paths = layout.site(&site);
            for path in [&paths.access_log, &paths.error_log] {
                let path = path.to_str().expect("utf-8");
                assert!(per_site.contains(path), "{kind} {name}: {path} missing");
                assert!(!shared.contains(path), "{kind} {name}: {path} in\n{shared}");
            }
            assert!(
                !shared.lines().any(is_log_line),
                "{kind} {name}: a log directive in the shared form\n{shared}"
            );
            let stripped: String = per_site
                .split_inclusive('\n')
                .filter(|line| !is_log_line(line))
                .collect();
            assert_eq!(shared, stripped, "{kind} {name}");
        }
    }
}

#[test]
fn shared_log_fixtures_match_their_snapshots() {
    let layout = snapshot_layout();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for kind in [WebServerKind::Nginx, WebServerKind::Apache] {
            for (name, site) in fixtures(kind) {
                if [
                    "static-http",
                    "php8.2-http",
                    "php8.4-https",
                    "aliases-to-www",
                ]
                .contains(&name.as_str())
                {
                    insta::assert_snapshot!(
                        format!("{kind}__shared-logs-{name}"),
                        render(kind, &layout, LogMode::Shared, &site)
                    );
                }
            }
        }
    });
}

/// `nginx -t` under an open-files limit of 256, through a wrapper script as the binary.
fn nginx_limited(dir: &Path, real: &Path, layout: &HostLayout, mode: LogMode) -> Nginx {
    let wrapper = dir.join(format!("nginx-256-{mode:?}"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n 256 || exit 99\nexec '{}' \"$@\"\n",
            real.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut config = NginxConfig::new(layout.clone());
    config.binary = wrapper;
    config.log_mode = mode;
    Nginx::new(config).expect("nginx")
}

/// The scale problem the shared mode exists for: two log files per site exhaust the
/// descriptors of `nginx -t` (and of every nginx process) while shared logs need two in all.
#[tokio::test]
async fn per_site_logs_run_nginx_out_of_descriptors_and_shared_logs_do_not() {
    let Some(binary) = server_binary("HOSTING_TEST_NGINX") else {
        return;
    };
    let dir = TempDir::new("log-descriptors");
    let sites: Vec<Website> = (1..=300)
        .map(|id| SiteBuilder::new(id, &format!("s{id}.example.com"), WebServerKind::Nginx).build())
        .collect();
    let layout = node_for(dir.path(), &sites);

    let shared = nginx_limited(dir.path(), &binary, &layout, LogMode::Shared);
    let staged = dir.path().join("shared");
    shared.stage(&staged, &sites).expect("stage");
    shared
        .validate(&staged)
        .await
        .expect("300 sites with shared logs pass under 256 descriptors");

    let per_site = nginx_limited(dir.path(), &binary, &layout, LogMode::PerSite);
    let staged = dir.path().join("per-site");
    per_site.stage(&staged, &sites).expect("stage");
    match per_site.validate(&staged).await {
        Err(Error::Validation { output, .. }) => {
            assert!(output.contains("Too many open files"), "{output}");
        }
        other => panic!("600 log files under 256 descriptors: {other:?}"),
    }
}

#[tokio::test]
async fn every_fixture_passes_the_real_servers_with_per_site_logs() {
    for kind in [WebServerKind::Nginx, WebServerKind::Apache] {
        let var = match kind {
            WebServerKind::Nginx => "HOSTING_TEST_NGINX",
            _ => "HOSTING_TEST_APACHE",
        };
        let Some(binary) = server_binary(var) else {
            continue;
        };
        let dir = TempDir::new("per-site-validate");
        let sites: Vec<Website> = fixtures(kind).into_iter().map(|(_, s)| s).collect();
        let layout = node_for(dir.path(), &sites);
        let staged = dir.path().join("staged");
        let verdict = match kind {
            WebServerKind::Nginx => {
                let mut config = NginxConfig::new(layout);
                config.binary = binary;
                config.log_mode = LogMode::PerSite;
                let nginx = Nginx::new(config).expect("nginx");
                nginx.stage(&staged, &sites).expect("stage");
                nginx.validate(&staged).await
            }
            _ => {
                let mut config = ApacheConfig::new(layout);
                config.binary = binary;
                config.log_mode = LogMode::PerSite;
                let apache = Apache::new(config).expect("apache");
                apache.stage(&staged, &sites).expect("stage");
                apache.validate(&staged).await
            }
        };
        verdict.unwrap_or_else(|e| panic!("{kind} refused per-site logs: {e}"));
    }
}

/// Waits until `file` has a line satisfying `wanted` (servers write logs asynchronously).
fn wait_for_line(file: &Path, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| wanted(l)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no such line in {}:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A static site with an index page on a node under `dir`. Asking it for a dotfile is refused,
/// an error both servers log.
fn static_site(dir: &Path, kind: WebServerKind) -> (Website, HostLayout) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let site = SiteBuilder::new(7, "logged.example.com", kind)
        .aliases(&["alias.example.com"])
        .build();
    let layout = node_for(dir, std::slice::from_ref(&site));
    let root = layout.site(&site).document_root;
    std::fs::write(root.join("index.html"), "hello\n").expect("index");
    (site, layout)
}

#[test]
fn nginx_writes_the_site_into_the_shared_logs() {
    let Some(binary) = server_binary("HOSTING_TEST_NGINX") else {
        return;
    };
    let dir = TempDir::new("nginx-shared-logs");
    let (site, layout) = static_site(dir.path(), WebServerKind::Nginx);
    let port = free_port();
    let mut config = NginxConfig::new(layout);
    config.binary = binary.clone();
    config.ports = Ports {
        http: port,
        https: free_port(),
    };
    config.listen_ipv6 = false;
    let nginx = Nginx::new(config).expect("nginx");
    let root = dir.path().join("staged");
    nginx
        .stage(&root, std::slice::from_ref(&site))
        .expect("stage");
    let status = std::process::Command::new(&binary)
        .arg("-c")
        .arg(root.join(Nginx::MAIN_CONFIG))
        .arg("-p")
        .arg(format!("{}/", root.display()))
        .arg("-e")
        .arg(root.join("logs/error.log"))
        .status()
        .expect("start nginx");
    assert!(status.success(), "nginx did not start");
    let _running = Running {
        pid_file: root.join("run/nginx.pid"),
        signal: "-QUIT",
    };

    assert_eq!(fetch(port, "alias.example.com", "/").status, 200);
    assert_eq!(fetch(port, "logged.example.com", "/.env").status, 403);
    let access = root.join("logs/access.log");
    let line = wait_for_line(&access, |l| l.contains("\"GET / HTTP/1.0\" 200"));
    assert!(
        line.starts_with(&format!("logged.example.com:{port} 127.0.0.1 - - [")),
        "{line}"
    );
    let error = wait_for_line(&root.join("logs/error.log"), |l| {
        l.contains("access forbidden by rule")
    });
    assert!(error.contains("server: logged.example.com"), "{error}");
    assert!(
        !layout_logs_exist(dir.path()),
        "no per-site log file is created in the shared mode"
    );
}

#[test]
fn apache_writes_the_site_into_the_shared_logs() {
    let Some(binary) = server_binary("HOSTING_TEST_APACHE") else {
        return;
    };
    let dir = TempDir::new("apache-shared-logs");
    let (site, layout) = static_site(dir.path(), WebServerKind::Apache);
    let port = free_port();
    let mut config = ApacheConfig::new(layout);
    config.binary = binary.clone();
    config.ports = Ports {
        http: port,
        https: free_port(),
    };
    let apache = Apache::new(config).expect("apache");
    let root = dir.path().join("staged");
    apache
        .stage(&root, std::slice::from_ref(&site))
        .expect("stage");
    let status = std::process::Command::new(&binary)
        .arg("-f")
        .arg(root.join(Apache::MAIN_CONFIG))
        .arg("-k")
        .arg("start")
        .status()
        .expect("start apache");
    assert!(status.success(), "apache did not start");
    let _running = Running {
        pid_file: root.join("run/apache2.pid"),
        signal: "-TERM",
    };

    assert_eq!(fetch(port, "alias.example.com", "/").status, 200);
    assert_eq!(fetch(port, "logged.example.com", "/.env").status, 403);
    let access = root.join("logs/access.log");
    let line = wait_for_line(&access, |l| l.contains("\"GET / HTTP/1.0\" 200"));
    assert!(
        line.starts_with(&format!("logged.example.com:{port} 127.0.0.1 - - [")),
        "{line}"
    );
    let error = wait_for_line(&root.join("logs/error.log"), |l| l.contains("AH01630"));
    assert!(error.contains("[logged.example.com]"), "{error}");
    assert!(
        !layout_logs_exist(dir.path()),
        "no per-site log file is created in the shared mode"
    );
}

/// Whether the node's log directory under `dir` holds any file.
fn layout_logs_exist(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("node/log")).is_ok_and(|mut entries| entries.next().is_some())
}
