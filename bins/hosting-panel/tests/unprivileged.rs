//! The README's quick start, as a newcomer runs it: `hosting-panel serve` as an ordinary user
//! (no root), with the machine's nginx and PHP-FPM 8.2 found by default, serves a PHP site
//! created through the API, run as that same user; after the panel stops the site still
//! serves, and `hosting-panel node stop` stops the node's servers.
//!
//! Without root, PHP-FPM cannot give a pool's socket to another account and nginx's workers
//! cannot change user, so everything runs as the one user; these tests prove that set-up works
//! end to end. They need root themselves only to start the panel as one of the test accounts.
//!
//! `the_readme_main_command_from_a_fresh_clone` runs the README's main command word for word
//! (read from README.md) in a fresh `git clone`, as an ordinary user with the default data
//! directory `./data`: it builds the release panel from scratch, so it takes minutes.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hosting_tests::{TempDir, env_or_skip, free_port, http_get};
use serde_json::{Value, json};

/// Stops the panel (SIGTERM) and the node's servers it started (their pid files), also when
/// the test fails half-way.
struct Running {
    panel: Child,
    data: PathBuf,
}

impl Running {
    /// Stops the panel with SIGTERM and waits for it; the node's servers keep running.
    fn stop_panel(&mut self) {
        if !matches!(self.panel.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.panel.id().to_string())
            .status();
        let _ = self.panel.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_panel();
        for pid_file in ["node/nginx/run/nginx.pid", "node/run/php8.2-fpm.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.data.join(pid_file)) {
                let _ = Command::new("kill").arg("-QUIT").arg(pid.trim()).status();
            }
        }
    }
}

/// The test accounts, nginx and PHP-FPM 8.2 (skipped without them, failed under CI=true).
fn machine() -> Option<Vec<String>> {
    let users = env_or_skip("HOSTING_TEST_SYSTEM_USERS")?;
    env_or_skip("HOSTING_TEST_NGINX")?;
    env_or_skip("HOSTING_TEST_PHP_FPM_82")?;
    Some(users.split(',').map(|u| u.trim().to_owned()).collect())
}

fn chown(user: &str, path: &Path) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {}", path.display());
}

/// Waits until the panel at `base` is ready, failing early when it exits.
async fn wait_ready(base: &str, panel: &mut Child, within: Duration, log: &Path) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    while !client
        .get(format!("{base}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if let Some(status) = panel.try_wait().expect("wait") {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("the panel exited ({status}) before it was ready:\n{log}");
        }
        assert!(Instant::now() < deadline, "the panel did not become ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The README's "Host your first PHP site" through the API: log in as the first admin, create
/// `hello.localhost` on the local node running as `user`, put an `index.php` in it, and read
/// the page from the node's nginx. Returns the site's id.
async fn host_first_php_site(
    base: &str,
    password: &str,
    user: &str,
    data: &Path,
    http_port: u16,
) -> i64 {
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "admin@panel.localhost", "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("tokens");
    let token = login["access_token"].as_str().expect("access token");
    let me = login["user"]["id"].as_i64().expect("user id");
    let nodes: Value = client
        .get(format!("{base}/api/v1/nodes"))
        .bearer_auth(token)
        .send()
        .await
        .expect("nodes")
        .json()
        .await
        .expect("json");
    let node = nodes["items"][0]["id"].as_i64().expect("the local node");
    assert_eq!(nodes["items"][0]["isolation"], "none", "{nodes}");
    assert_eq!(nodes["items"][0]["shared_account"], user, "{nodes}");
    let created = client
        .post(format!("{base}/api/v1/websites"))
        .bearer_auth(token)
        .json(&json!({
            "owner_id": me,
            "domain": "hello.localhost",
            "node_id": node,
            "web_server": "nginx",
            "php_version": "8.2",
            "document_root": "public"
        }))
        .send()
        .await
        .expect("create");
    let status = created.status();
    let body: Value = created.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["website"]["system_user"], user, "{body}");
    let id = body["website"]["id"].as_i64().expect("site id");
    second_tenant_is_refused(&client, base, token, node).await;

    let index = data.join(format!("node/sites/site{id}/public/index.php"));
    std::fs::write(
        &index,
        "<?php echo PHP_VERSION, ' ', posix_getpwuid(posix_geteuid())['name'];\n",
    )
    .expect("index.php");
    let (status, page) = http_get(http_port, "hello.localhost", "/")
        .await
        .expect("GET the site");
    assert_eq!(status, 200, "{page}");
    assert!(page.starts_with("8.2."), "{page}");
    assert!(
        page.ends_with(&format!(" {user}")),
        "PHP runs as the panel's user: {page}"
    );
    id
}

/// Without root every site runs as the panel's user, so a second tenant's website is refused
/// (422 naming `system_user`) while `node.allow_shared_account` is off.
async fn second_tenant_is_refused(client: &reqwest::Client, base: &str, token: &str, node: i64) {
    let post = |path: &str, token: &str, body: Value| {
        client
            .post(format!("{base}/api/v1{path}"))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    let tenant: Value = post("/tenants", token, json!({"name": "Other", "slug": "other"}))
        .await
        .expect("tenant")
        .json()
        .await
        .expect("json");
    let tenant = tenant["id"].as_i64().expect("tenant id");
    let admin: Value = post(
        &format!("/tenants/{tenant}/users"),
        token,
        json!({"email": "boss@other.example", "role": "admin", "password": "other-password-1"}),
    )
    .await
    .expect("admin")
    .json()
    .await
    .expect("json");
    let admin_id = admin["user"]["id"].as_i64().expect("admin id");
    let login: Value = post(
        "/auth/login",
        token,
        json!({"email": "boss@other.example", "password": "other-password-1"}),
    )
    .await
    .expect("login")
    .json()
    .await
    .expect("tokens");
    let other = login["access_token"].as_str().expect("access token");
    let refused = post(
        "/websites",
        other,
        json!({
            "owner_id": admin_id,
            "domain": "other.localhost",
            "node_id": node,
            "web_server": "nginx",
            "php_version": null,
            "document_root": "public"
        }),
    )
    .await
    .expect("create");
    let status = refused.status();
    let body: Value = refused.json().await.expect("json");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "system_user", "{body}");
}

/// After the panel stopped, the site still serves; `hosting-panel node stop` (run by `user`
/// in `cwd` with `args`) stops nginx and PHP-FPM, and then nothing answers.
async fn node_outlives_the_panel_until_stopped(
    running: &mut Running,
    user: &str,
    binary: &Path,
    cwd: &Path,
    args: &[&str],
    http_port: u16,
) {
    running.stop_panel();
    let (status, page) = http_get(http_port, "hello.localhost", "/")
        .await
        .expect("the site after the panel stopped");
    assert_eq!(status, 200, "sites outlive the panel: {page}");
    let output = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(binary)
        .args(["node", "stop"])
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("hosting-panel node stop");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("stopped nginx"), "{said}");
    assert!(said.contains("stopped php-fpm 8.2"), "{said}");
    assert!(
        http_get(http_port, "hello.localhost", "/").await.is_err(),
        "nginx still answers after node stop"
    );
    for pid_file in ["node/nginx/run/nginx.pid", "node/run/php8.2-fpm.pid"] {
        let alive = std::fs::read_to_string(running.data.join(pid_file))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_some_and(hosting_core::process::alive);
        assert!(!alive, "{pid_file} still names a live process");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_user_runs_the_panel_and_hosts_a_php_site() {
    let Some(users) = machine() else {
        return;
    };
    let user = users.get(1).expect("a second test user").clone();
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let binary = dir.path().join("hosting-panel");
    std::fs::copy(env!("CARGO_BIN_EXE_hosting-panel"), &binary).expect("copy the binary");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    chown(&user, dir.path());

    let port = free_port();
    let http_port = free_port();
    let password = "walkthrough-password-1";
    let log = dir.path().join("panel.log");
    let mut panel = Command::new("runuser")
        .args(["-u", &user, "--", "env"])
        .arg(format!("HOSTING_PANEL_ADMIN_PASSWORD={password}"))
        .arg(format!("HOSTING_PANEL_NODE_HTTP_PORT={http_port}"))
        .arg(format!("HOSTING_PANEL_NODE_HTTPS_PORT={}", free_port()))
        .arg(&binary)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the panel as an ordinary user");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &mut panel, Duration::from_secs(60), &log).await;
    let mut running = Running {
        panel,
        data: data.clone(),
    };
    host_first_php_site(&base, password, &user, &data, http_port).await;
    let data_arg = data.to_str().expect("utf-8 path");
    node_outlives_the_panel_until_stopped(
        &mut running,
        &user,
        &binary,
        dir.path(),
        &["--data-dir", data_arg],
        http_port,
    )
    .await;
}

/// The README's main command, split into words: the line of its "The two commands" block that
/// runs the panel.
fn readme_main_command(readme: &str) -> Vec<String> {
    let section = readme
        .split("## The two commands")
        .nth(1)
        .expect("the README has a 'The two commands' section");
    section
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("cargo run"))
        .expect("the main command is a `cargo run` line")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A toolchain the test account can run: the running cargo's own toolchain, hard-linked (it is
/// only read), so nothing under root's home has to be opened to it. Returns its `bin`.
fn toolchain_for(dir: &Path) -> PathBuf {
    let cargo = Path::new(env!("CARGO"));
    let root = cargo
        .parent()
        .and_then(Path::parent)
        .expect("cargo lives in TOOLCHAIN/bin");
    let copy = dir.join("toolchain");
    std::fs::create_dir(&copy).expect("toolchain dir");
    let status = Command::new("cp")
        .arg("-al")
        .arg(root.join("bin"))
        .arg(root.join("lib"))
        .arg(&copy)
        .status()
        .expect("cp -al");
    assert!(status.success(), "link the toolchain");
    copy.join("bin")
}

/// A cargo home for the test account holding the crates this machine already downloaded,
/// copied (cargo writes there), so the build needs the registry only for what is missing.
fn cargo_home_for(dir: &Path) -> PathBuf {
    let ours = std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"),
        PathBuf::from,
    );
    let home = dir.join("cargo-home");
    std::fs::create_dir(&home).expect("cargo home");
    if ours.join("registry").is_dir() {
        let status = Command::new("cp")
            .arg("-a")
            .arg(ours.join("registry"))
            .arg(&home)
            .status()
            .expect("cp -a");
        assert!(status.success(), "copy the registry cache");
    }
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_main_command_from_a_fresh_clone() {
    let Some(users) = machine() else {
        return;
    };
    let user = users.first().expect("a test user").clone();
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace");
    let clone = dir.path().join("hosting-sdk");
    let status = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(&workspace)
        .arg(&clone)
        .status()
        .expect("git clone");
    assert!(status.success(), "git clone");
    let toolchain = toolchain_for(dir.path());
    let cargo_home = cargo_home_for(dir.path());
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    for path in [&clone, &cargo_home, &home] {
        chown(&user, path);
    }
    let readme = std::fs::read_to_string(clone.join("README.md")).expect("README.md");
    let command = readme_main_command(&readme);
    assert_eq!(
        command[..5],
        ["cargo", "run", "--release", "-p", "hosting-panel"],
        "{command:?}"
    );

    // Ports of its own, so it runs beside other tests; everything else is the default.
    let port = free_port();
    let http_port = free_port();
    let log = dir.path().join("panel.log");
    let stdout_file = dir.path().join("panel.out");
    let mut panel = Command::new("runuser")
        .args(["-u", &user, "--", "env", "-i"])
        .arg(format!(
            "PATH={}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            toolchain.display()
        ))
        .arg(format!("HOME={}", home.display()))
        .arg(format!("CARGO_HOME={}", cargo_home.display()))
        .arg(format!("HOSTING_PANEL_LISTEN=127.0.0.1:{port}"))
        .arg(format!("HOSTING_PANEL_NODE_HTTP_PORT={http_port}"))
        .arg(format!("HOSTING_PANEL_NODE_HTTPS_PORT={}", free_port()))
        .args(&command)
        .current_dir(&clone)
        .stdout(std::fs::File::create(&stdout_file).expect("stdout file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("run the README's command as an ordinary user");
    let base = format!("http://127.0.0.1:{port}");
    // A release build from scratch on a busy 2-core machine.
    wait_ready(&base, &mut panel, Duration::from_secs(40 * 60), &log).await;
    let data = clone.join("data");
    let mut running = Running {
        panel,
        data: data.clone(),
    };
    // The password is printed right after the listener serves: wait for the line.
    let deadline = Instant::now() + Duration::from_secs(30);
    let printed = loop {
        let printed = std::fs::read_to_string(&stdout_file).expect("stdout");
        if printed.contains("reset-password") || Instant::now() > deadline {
            break printed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        printed.matches("with password ").count(),
        1,
        "the password is printed once: {printed}"
    );
    let password = printed
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the password")
        .to_owned();
    assert!(
        data.join("panel.db").is_file(),
        "the default ./data in the clone"
    );
    host_first_php_site(&base, &password, &user, &data, http_port).await;
    let binary = clone.join("target/release/hosting-panel");
    node_outlives_the_panel_until_stopped(&mut running, &user, &binary, &clone, &[], http_port)
        .await;
}
