//! The README's quick start, as a newcomer runs it: `hosting-panel serve` as an ordinary user
//! (no root), with the machine's nginx and PHP-FPM 8.2 found by default, serves a PHP site
//! created through the API, run as that same user.
//!
//! Without root, PHP-FPM cannot give a pool's socket to another account and nginx's workers
//! cannot change user, so everything runs as the one user; this test proves that set-up works
//! end to end. It needs root itself only to start the panel as one of the test accounts.
#![allow(clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hosting_tests::{TempDir, env_or_skip, free_port, http_get};
use serde_json::{Value, json};

/// Stops the panel (SIGTERM) and the node's servers it started (their pid files), also when
/// the test fails half-way.
struct Running {
    panel: Child,
    data: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.panel.id().to_string())
            .status();
        let _ = self.panel.wait();
        for pid_file in ["node/nginx/run/nginx.pid", "node/run/php8.2-fpm.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.data.join(pid_file)) {
                let _ = Command::new("kill").arg("-QUIT").arg(pid.trim()).status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_user_runs_the_panel_and_hosts_a_php_site() {
    let Some(users) = env_or_skip("HOSTING_TEST_SYSTEM_USERS") else {
        return;
    };
    if env_or_skip("HOSTING_TEST_NGINX").is_none()
        || env_or_skip("HOSTING_TEST_PHP_FPM_82").is_none()
    {
        return;
    }
    let user = users
        .split(',')
        .nth(1)
        .expect("a second test user")
        .trim()
        .to_owned();
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let binary = dir.path().join("hosting-panel");
    std::fs::copy(env!("CARGO_BIN_EXE_hosting-panel"), &binary).expect("copy the binary");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(dir.path())
        .status()
        .expect("chown");
    assert!(chown.success());

    let port = free_port();
    let http_port = free_port();
    let password = "walkthrough-password-1";
    let panel = Command::new("runuser")
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
        .stderr(Stdio::null())
        .spawn()
        .expect("start the panel as an ordinary user");
    let _running = Running {
        panel,
        data: data.clone(),
    };

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client
        .get(format!("{base}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the panel did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let created = client
        .post(format!("{base}/api/v1/websites"))
        .bearer_auth(token)
        .json(&json!({
            "owner_id": me,
            "domain": "hello.localhost",
            "node_id": node,
            "web_server": "nginx",
            "php_version": "8.2",
            "system_user": user,
            "document_root": "public"
        }))
        .send()
        .await
        .expect("create");
    let status = created.status();
    let body: Value = created.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    let id = body["website"]["id"].as_i64().expect("site id");

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
}
