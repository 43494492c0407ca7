//! The `hosting-panel` binary as an operator runs it: `serve` with flags and environment, the
//! generated admin password printed once on stdout (and never logged), a restart that prints
//! nothing, and a graceful exit on SIGTERM.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hosting_tests::{TempDir, free_port};
use serde_json::json;

fn serve(dir: &TempDir, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("HOSTING_PANEL_ADMIN_EMAIL", "root@panel.example")
        .env("HOSTING_PANEL_NODE_NGINX", "")
        .env("HOSTING_PANEL_NODE_PHP_SYSTEM_DIR", "")
        .env_remove("HOSTING_PANEL_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hosting-panel")
}

async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "the panel did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGTERM and waits for a clean exit; returns stdout and stderr.
fn terminate(mut child: Child) -> (String, String) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).expect("stdout");
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err).expect("stderr");
    }
    (out, err)
}

#[tokio::test]
async fn first_start_prints_the_password_once_and_sigterm_stops_cleanly() {
    let dir = TempDir::new();
    let port = free_port();
    let mut child = serve(&dir, port);
    // The password line comes before the server is ready.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let password = line
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a generated password on stdout")
        .to_owned();
    assert!(line.contains("root@panel.example"), "{line}");
    wait_ready(port).await;
    let client = reqwest::Client::new();
    let login = client
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
        .json(&json!({"email": "root@panel.example", "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status().as_u16(), 200);
    let tokens: serde_json::Value = login.json().await.expect("json");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    child.stdout = Some(stdout.into_inner());
    let (out, err) = terminate(child);
    assert!(!out.contains(&password), "printed twice");
    for secret in [password.as_str(), access.as_str()] {
        assert!(!err.contains(secret), "a secret reached the log:\n{err}");
    }
    assert!(err.contains("panel listening"), "{err}");
    assert!(err.contains("request"), "requests are logged: {err}");

    // The key file is private; a second start prints nothing and logs in with the same
    // password.
    let key = dir.path().join("data/signing.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let child = serve(&dir, port);
    wait_ready(port).await;
    let login = client
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
        .json(&json!({"email": "root@panel.example", "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status().as_u16(), 200);
    let (out, _) = terminate(child);
    assert!(out.trim().is_empty(), "printed on a later start: {out}");
}

#[test]
fn a_bad_configuration_names_its_key() {
    let dir = TempDir::new();
    let output = Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .env("HOSTING_PANEL_MAX_BODY_BYTES", "a lot")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("HOSTING_PANEL_MAX_BODY_BYTES"), "{err}");
}

#[test]
fn openapi_prints_the_document() {
    let output = Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
        .arg("openapi")
        .output()
        .expect("run");
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/websites"]["post"].is_object());
}
