//! The first start is all or nothing, and the operator can always get back in on the machine.
//!
//! A start that fails at any step (configuration, store, node, listener) leaves a store on
//! which the next good start is a first start (it creates the admin and prints the password
//! once), or, when the first start had finished before, leaves it unchanged. The failure is
//! one line on stderr. `hosting-panel admin reset-password` (SQLite and PostgreSQL) sets a new
//! password beside a serving panel and ends the user's sessions; `admin create` adds an
//! operator admin.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hosting_tests::{POSTGRES_URL, TempDir, free_port, fresh_database, server_url};
use serde_json::{Value, json};

const EMAIL: &str = "root@panel.example";

/// `hosting-panel ARGS` with the test's environment: no node servers, the data directory
/// `data`, `env` on top.
fn panel(args: &[&str], data: &Path, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hosting-panel"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("HOSTING_PANEL_ADMIN_EMAIL", EMAIL)
        .env("HOSTING_PANEL_NODE_NGINX", "")
        .env("HOSTING_PANEL_NODE_PHP_SYSTEM_DIR", "")
        .env_remove("HOSTING_PANEL_ADMIN_PASSWORD")
        .env_remove("HOSTING_PANEL_DATABASE_URL")
        .env_remove("RUST_BACKTRACE");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A serving panel, stopped with SIGTERM when dropped.
struct Serving {
    child: Child,
    port: u16,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Serving {
    async fn start(data: &Path, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut child = panel(
            &["serve", "--listen", &format!("127.0.0.1:{port}")],
            data,
            env,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hosting-panel");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("the panel exited at start: {status}");
            }
            if client
                .get(format!("http://127.0.0.1:{port}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(Instant::now() < deadline, "the panel did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            port,
            stdout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the panel; returns everything it printed on stdout.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "exit status {status}");
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).expect("stdout");
        out
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The password a first start printed, if it printed one.
fn printed_password(stdout: &str) -> Option<String> {
    stdout
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// A first start: serves, prints the generated password once; returns it.
async fn first_start(data: &Path, env: &[(&str, String)]) -> String {
    let mut serving = Serving::start(data, env).await;
    let mut line = String::new();
    serving.stdout.read_line(&mut line).expect("first line");
    let password = printed_password(&line).expect("a first start prints the password");
    assert_eq!(login(&serving, &password).await.0, 200);
    let rest = serving.stop();
    assert!(!rest.contains(&password), "printed twice: {rest}");
    password
}

/// A later start: serves, prints nothing, and `password` still logs in.
async fn later_start(data: &Path, env: &[(&str, String)], password: &str) {
    let serving = Serving::start(data, env).await;
    assert_eq!(login(&serving, password).await.0, 200, "the old password");
    let out = serving.stop();
    assert!(out.trim().is_empty(), "a later start printed: {out}");
}

async fn login(serving: &Serving, password: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(serving.url("/api/v1/auth/login"))
        .json(&json!({"email": EMAIL, "password": password}))
        .send()
        .await
        .expect("login");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Runs a start that must fail; checks that it says why in one line and printed no password.
fn failing_start(data: &Path, env: &[(&str, String)], listen: u16, why: &str) {
    let Output {
        status,
        stdout,
        stderr,
    } = panel(
        &["serve", "--listen", &format!("127.0.0.1:{listen}")],
        data,
        env,
    )
    .env("HOSTING_PANEL_LOG_LEVEL", "error")
    .output()
    .expect("run hosting-panel");
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(!status.success(), "{why}: the start succeeded");
    assert!(
        printed_password(&stdout).is_none(),
        "{why}: a failed start printed a password: {stdout}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{why}: one error line: {stderr}");
    assert!(
        !stderr.contains("stack backtrace") && !stderr.contains("Caused by"),
        "{why}: {stderr}"
    );
    assert!(lines[0].contains(why), "{why}: {stderr}");
}

/// A start that fails: its environment, the port it is told to listen on, and what its error
/// line names.
type Failure = (Vec<(&'static str, String)>, u16, &'static str);

/// Each way a start can fail. `data` is the data directory; `blocked` a port something else
/// listens on.
fn failures(data: &Path, blocked: u16) -> Vec<Failure> {
    let port = free_port();
    vec![
        (
            vec![("HOSTING_PANEL_MAX_BODY_BYTES", "lots".to_owned())],
            port,
            "HOSTING_PANEL_MAX_BODY_BYTES",
        ),
        (
            vec![(
                "HOSTING_PANEL_DATABASE_URL",
                // Its directory cannot be made: a file stands where it goes.
                format!("sqlite:{}/not-a-dir/panel.db", data.display()),
            )],
            port,
            "opening the panel store",
        ),
        (
            // The node's directory cannot be made: a file stands where it goes.
            Vec::new(),
            port,
            "/data/node: ",
        ),
        (Vec::new(), blocked, "cannot listen"),
    ]
}

/// Puts a file where the node's directory goes, for the "node" failure, and takes it away.
fn block_node_dir(data: &Path, blocked: bool) {
    let node = data.join("node");
    if blocked {
        if node.is_dir() {
            std::fs::rename(&node, data.join("node.away")).expect("move the node dir away");
        }
        std::fs::write(&node, "not a directory").expect("block the node dir");
    } else {
        std::fs::remove_file(&node).expect("unblock");
        if data.join("node.away").is_dir() {
            std::fs::rename(data.join("node.away"), &node).expect("move the node dir back");
        }
    }
}

fn run_failures(data: &Path) {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let blocked = blocker.local_addr().expect("addr").port();
    std::fs::create_dir_all(data).expect("data dir");
    std::fs::write(data.join("not-a-dir"), "a file").expect("a file for the store failure");
    for (env, listen, why) in failures(data, blocked) {
        let node = why == "/data/node: ";
        if node {
            block_node_dir(data, true);
        }
        failing_start(data, &env, listen, why);
        if node {
            block_node_dir(data, false);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_at_any_step_leaves_a_first_start() {
    let dir = TempDir::new();
    let data = dir.path().join("data");
    run_failures(&data);
    // Every failure above left the store without an admin: this start is the first one.
    let password = first_start(&data, &[]).await;
    // Failures after a finished first start change nothing: the next start prints nothing
    // and the password still works.
    run_failures(&data);
    later_start(&data, &[], &password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_data_dir_works() {
    let dir = TempDir::new();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env("HOSTING_PANEL_NODE_NGINX", "")
        .env("HOSTING_PANEL_NODE_PHP_SYSTEM_DIR", "")
        .env_remove("HOSTING_PANEL_DATA_DIR")
        .env_remove("HOSTING_PANEL_CONFIG")
        .env_remove("HOSTING_PANEL_DATABASE_URL")
        .env_remove("HOSTING_PANEL_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(printed_password(&line).is_some(), "{line}");
    assert!(dir.path().join("data/panel.db").is_file());
    assert!(dir.path().join("data/node/sites").is_dir());
}

/// Runs `hosting-panel admin ARGS`, feeding `stdin`; returns its stdout.
fn admin(data: &Path, env: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> String {
    let mut child = panel(args, data, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hosting-panel admin");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn reset_password_ends_sessions(env: Vec<(&'static str, String)>) {
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let old = first_start(&data, &env).await;
    let serving = Serving::start(&data, &env).await;
    let (status, tokens) = login(&serving, &old).await;
    assert_eq!(status, 200);
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // Beside the serving panel, on the machine: a generated password, shown once.
    let out = admin(&data, &env, &["admin", "reset-password"], None);
    let new = out
        .split(" is now ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the new password")
        .to_owned();
    let client = reqwest::Client::new();
    let refreshed = client
        .post(serving.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .expect("refresh");
    assert_eq!(refreshed.status().as_u16(), 401, "the old session ended");
    assert_eq!(login(&serving, &old).await.0, 401, "the old password");
    let (status, tokens) = login(&serving, &new).await;
    assert_eq!(status, 200, "the new password");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let audit: Value = client
        .get(serving.url("/api/v1/audit?limit=100"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let items = audit["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "user.reset_password" && e["outcome"] == "success"),
        "audited: {audit}"
    );

    // Chosen on stdin; a user that does not exist is refused and changes nothing.
    admin(
        &data,
        &env,
        &[
            "admin",
            "reset-password",
            "--email",
            EMAIL,
            "--password-stdin",
        ],
        Some("chosen-on-the-machine-1\n"),
    );
    assert_eq!(login(&serving, "chosen-on-the-machine-1").await.0, 200);
    let missing = panel(
        &["admin", "reset-password", "--email", "nobody@panel.example"],
        &data,
        &env,
    )
    .output()
    .expect("run");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("nobody@panel.example"),
        "names the e-mail"
    );

    // Another operator admin, who can log in and act as the operator.
    let out = admin(
        &data,
        &env,
        &["admin", "create", "--email", "second@panel.example"],
        None,
    );
    let second = out
        .split("with password ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the second admin's password")
        .to_owned();
    let response = client
        .post(serving.url("/api/v1/auth/login"))
        .json(&json!({"email": "second@panel.example", "password": second}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status().as_u16(), 200);
    let tokens: Value = response.json().await.expect("json");
    let tenants = client
        .get(serving.url("/api/v1/tenants"))
        .bearer_auth(tokens["access_token"].as_str().expect("access"))
        .send()
        .await
        .expect("tenants");
    assert_eq!(tenants.status().as_u16(), 200, "an operator admin");
    serving.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reset_password_on_sqlite() {
    reset_password_ends_sessions(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reset_password_on_postgres() {
    let Some(admin_url) = server_url(POSTGRES_URL) else {
        return;
    };
    let url = fresh_database(&admin_url).await;
    reset_password_ends_sessions(vec![("HOSTING_PANEL_DATABASE_URL", url)]).await;
}

#[test]
fn admin_commands_need_a_store() {
    let dir = TempDir::new();
    let data: PathBuf = dir.path().join("never-started");
    let output = panel(&["admin", "reset-password"], &data, &[])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("start the panel once"), "{err}");
    assert!(!data.join("panel.db").exists(), "no store was made");
}

/// A first start cut off between creating the admin and storing its password (a crash) left
/// an operator admin nobody can log in to: the next start finishes it and prints a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_left_without_a_password_is_finished_at_the_next_start() {
    use hosting_core::model::{NewTenant, NewUser, Role};
    use hosting_core::{Operator, PanelStore};

    let dir = TempDir::new();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    {
        let url = format!("sqlite:{}", data.join("panel.db").display());
        let store = hosting_db::SqlStore::open(&url, &hosting_db::StoreOptions::default())
            .await
            .expect("store");
        let op = Operator::assume();
        let tenant = store
            .create_tenant(
                &op,
                NewTenant {
                    name: "Operator".parse().expect("name"),
                    slug: "operator".parse().expect("slug"),
                    quotas: Default::default(),
                },
            )
            .await
            .expect("operator tenant");
        store
            .create_user_as_operator(
                &op,
                tenant.id,
                NewUser {
                    role: Role::Admin,
                    email: EMAIL.parse().expect("email"),
                },
            )
            .await
            .expect("an admin without a password");
    }
    let password = first_start(&data, &[]).await;
    later_start(&data, &[], &password).await;
}
