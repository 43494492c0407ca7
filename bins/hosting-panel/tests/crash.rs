//! No half-made website: the real `hosting-panel` binary (root, SQLite store, a local node with
//! the real nginx, PHP-FPM 8.2 (and 8.4 when the test servers offer it) and MariaDB customer
//! databases) is killed with SIGKILL in the middle of every step of a website's creation
//! (account, record, database, files, deploy, activate), an update, a PHP switch, a suspension,
//! a deletion and a node apply; then started again, and the store and the node must agree.
//!
//! How a step is hit: every saga step is logged at INFO as `saga step` (saga, website, domain,
//! step) after the journal row for it is written and before it runs. The test reads the
//! panel's stderr through a pipe and sends SIGKILL the moment the line it waits for appears, so
//! the kill lands while that step runs (or just after; either must recover). No failpoint
//! exists in the binary.
//!
//! "Agree" means, after the restart and its start-up apply: no website is `provisioning`; a
//! `failed` one carries a reason; every `active` site answers its probe through the node's
//! nginx (and its PHP, for a PHP site) and a suspended one answers 403; no domain without a
//! record is served; no home, Unix account, PHP socket or customer database/login exists
//! without its site; the saga journal is empty.
//!
//! The case: 30 creations in flight, SIGKILL, restart: the same holds, and a website
//! left `provisioning` by a panel without a journal (its row removed by hand) is recorded
//! `failed` with a reason, then retried (active, served) and deleted (nothing left).
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hosting_core::DatabaseBackend;
use hosting_db::customer::{CustomerServerConfig, MySqlBackend};
use hosting_tests::{
    MARIADB_URL, TempDir, TestUids, env_or_skip, free_port, http_get_with_head, root_or_skip,
    server_url,
};
use serde_json::{Value, json};

const ADMIN_EMAIL: &str = "root@crash.example";
const ADMIN_PASSWORD: &str = "operator-password-1";
const TENANT_EMAIL: &str = "admin@crash.example";
const TENANT_PASSWORD: &str = "tenant-password-1";

/// The panel binary over one data directory, started and SIGKILLed again and again.
struct Crashing {
    dir: TempDir,
    config: PathBuf,
    port: u16,
    http_port: u16,
    child: Option<Child>,
    lines: Option<mpsc::Receiver<String>>,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    /// The operator's access token and when it was issued.
    operator: Mutex<Option<(String, Instant)>>,
    /// A prefix every customer database of this test carries.
    db_tag: String,
    _accounts: TestUids,
}

/// Stops the node's supervised servers (they outlive the panel by design).
impl Drop for Crashing {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
            .args(["node", "stop", "--config"])
            .arg(&self.config)
            .status();
    }
}

/// `line` without ANSI colour sequences.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Crashing {
    async fn new() -> Option<Self> {
        let nginx = env_or_skip("HOSTING_TEST_NGINX")?;
        let php82 = env_or_skip("HOSTING_TEST_PHP_FPM_82")?;
        let mariadb = server_url(MARIADB_URL)?;
        if !root_or_skip() {
            return None;
        }
        let accounts = TestUids::claim();
        let dir = TempDir::new();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let (port, http_port) = (free_port(), free_port());
        let mut prefixes = format!("[[node.php_prefixes]]\nfpm_binary = {php82:?}\n");
        if let (Ok(bin), Ok(ini), Ok(scan)) = (
            std::env::var("HOSTING_TEST_PHP_FPM_84_BIN"),
            std::env::var("HOSTING_TEST_PHP_FPM_84_INI"),
            std::env::var("HOSTING_TEST_PHP_FPM_84_SCAN_DIR"),
        ) {
            prefixes.push_str(&format!(
                "[[node.php_prefixes]]\nfpm_binary = {bin:?}\nphp_ini = {ini:?}\nscan_dir = {scan:?}\n"
            ));
        }
        let toml = format!(
            "listen = \"127.0.0.1:{port}\"\n\
             data_dir = {data:?}\n\
             admin_email = {ADMIN_EMAIL:?}\n\
             shutdown_grace_secs = 5\n\
             login_attempts_per_minute = 1000\n\
             [node]\n\
             nginx = {nginx:?}\n\
             http_port = {http_port}\n\
             https_port = {https_port}\n\
             php_system_dir = \"\"\n\
             mariadb_url = {mariadb:?}\n\
             uid_range = {range:?}\n\
             {prefixes}",
            data = dir.path().join("data").display().to_string(),
            https_port = free_port(),
            range = accounts.range().to_string(),
        );
        let config = dir.path().join("panel.toml");
        std::fs::write(&config, toml).expect("config");
        // It holds the MariaDB admin URL.
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Some(Self {
            dir,
            config,
            port,
            http_port,
            child: None,
            lines: None,
            log: Arc::default(),
            operator: Mutex::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            db_tag: format!("cr{}x", std::process::id()),
            _accounts: accounts,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the binary and waits until it is ready and its start-up jobs have run.
    async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("HOSTING_PANEL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("NO_COLOR", "1")
            .env_remove("HOSTING_PANEL_DATABASE_URL")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hosting-panel");
        let stderr = child.stderr.take().expect("stderr");
        let (send, receive) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = plain(&line);
                log.lock().expect("log").push(line.clone());
                if send.send(line).is_err() {
                    // Nobody waits for a line any more; keep draining the pipe.
                }
            }
        });
        self.child = Some(child);
        self.lines = Some(receive);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                // Let the reader catch up with the panel's last words.
                std::thread::sleep(Duration::from_millis(300));
                panic!("the panel exited at start: {status}\n{}", self.tail());
            }
            if self
                .client
                .get(self.url("/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(Instant::now() < deadline, "not ready\n{}", self.tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.jobs_done().await;
    }

    /// The last lines the panel logged.
    fn tail(&self) -> String {
        let log = self.log.lock().expect("log");
        log[log.len().saturating_sub(40)..].join("\n")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits for a logged line that `wanted` accepts, then SIGKILLs the panel.
    fn kill_at(&mut self, what: &str, mut wanted: impl FnMut(&str) -> bool) {
        let lines = self.lines.as_ref().expect("running");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => break,
                Ok(_) => {}
                Err(_) => panic!("{what}: the line never came\n{}", self.tail()),
            }
        }
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        self.lines = None;
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// The tenant admin's access token, logged in again when it is 4 minutes old (a login
    /// hashes a password, which takes seconds in a debug build).
    async fn tenant_token(&self, cached: &mut Option<(String, Instant)>) -> String {
        match cached {
            Some((token, at)) if at.elapsed() < Duration::from_secs(240) => token.clone(),
            _ => {
                let token = self.login(TENANT_EMAIL, TENANT_PASSWORD).await;
                *cached = Some((token.clone(), Instant::now()));
                token
            }
        }
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status().as_u16(), 200, "login {email}");
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// Every item of a paged list.
    async fn list_all(&self, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            let url = match after {
                Some(a) => format!("{path}?limit=100&after={a}"),
                None => format!("{path}?limit=100"),
            };
            let (status, body) = self.send(reqwest::Method::GET, &url, token, None).await;
            assert_eq!(status, 200, "{url}: {body}");
            items.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["next_after"].as_i64() {
                Some(a) => after = Some(a),
                None => return items,
            }
        }
    }

    /// Waits until no job is queued or running.
    async fn jobs_done(&self) {
        let cached = self.operator.lock().expect("token").clone();
        let operator = match cached {
            Some((token, at)) if at.elapsed() < Duration::from_secs(240) => token,
            _ => {
                let token = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
                *self.operator.lock().expect("token") = Some((token.clone(), Instant::now()));
                token
            }
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let jobs = self.list_all("/api/v1/jobs", &operator).await;
            if jobs
                .iter()
                .all(|j| matches!(j["status"].as_str(), Some("succeeded" | "failed")))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "jobs still run: {jobs:?}\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A request a crash will cut off: sent on its own task, its answer never awaited.
    fn fire(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) {
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        tokio::spawn(async move {
            let _ = request.send().await;
        });
    }

    /// A new website's body; with `database`, a MariaDB database named after `n`.
    fn site_body(&self, node: i64, owner: i64, domain: &str, n: usize, database: bool) -> Value {
        let mut body = json!({
            "owner_id": owner,
            "domain": domain,
            "node_id": node,
            "web_server": "nginx",
            "php_version": "8.2",
            "document_root": "public",
        });
        if database {
            body["settings"] = json!({"database": {
                "engine": "mariadb",
                "name": format!("{}{n}", self.db_tag),
                "charset": "utf8mb4",
                "collation": "utf8mb4_unicode_ci"
            }});
        }
        body
    }

    /// Checks that the store and the node agree (see the module docs); `tried` are every
    /// domain the test ever asked for. Returns the websites.
    async fn agree(&self, token: &str, tried: &BTreeSet<String>, when: &str) -> Vec<Value> {
        let sites = self.list_all("/api/v1/websites", token).await;
        let ids: BTreeSet<i64> = sites
            .iter()
            .map(|s| s["id"].as_i64().expect("id"))
            .collect();
        for site in &sites {
            let domain = site["domain"].as_str().expect("domain");
            let status = site["status"].as_str().expect("status");
            match status {
                "active" => {
                    let (code, head, _) =
                        http_get_with_head(self.http_port, domain, "/.hosting-site")
                            .await
                            .expect("probe");
                    assert!(
                        code == 204
                            && head
                                .to_ascii_lowercase()
                                .contains(&format!("x-hosting-site: {domain}")),
                        "{when}: active {domain} does not answer its probe: {code} {head}"
                    );
                    let id = site["id"].as_i64().expect("id");
                    let public = self.data().join(format!("node/sites/site{id}/public"));
                    std::fs::write(public.join("crash.php"), "<?php echo 'php:' . getmyuid();")
                        .expect("php file");
                    let (code, head, body) =
                        http_get_with_head(self.http_port, domain, "/crash.php")
                            .await
                            .expect("php");
                    assert!(
                        code == 200 && body.starts_with("php:"),
                        "{when}: active {domain} does not run PHP: {code} {head} {body}"
                    );
                }
                "suspended" => {
                    let (code, _, _) = http_get_with_head(self.http_port, domain, "/")
                        .await
                        .expect("suspended");
                    assert_eq!(code, 403, "{when}: suspended {domain}");
                }
                "failed" => assert!(
                    site["failure_reason"]
                        .as_str()
                        .is_some_and(|r| !r.is_empty()),
                    "{when}: failed {domain} has no reason: {site}"
                ),
                other => panic!("{when}: {domain} is {other}\n{}", self.tail()),
            }
        }
        let recorded: BTreeSet<&str> = sites.iter().filter_map(|s| s["domain"].as_str()).collect();
        for domain in tried.iter().filter(|d| !recorded.contains(d.as_str())) {
            if let Ok((code, head, _)) =
                http_get_with_head(self.http_port, domain, "/.hosting-site").await
            {
                assert!(
                    !head
                        .to_ascii_lowercase()
                        .contains(&format!("x-hosting-site: {domain}")),
                    "{when}: {domain} has no record but is served: {code} {head}"
                );
            }
        }
        let homes: BTreeSet<i64> = std::fs::read_dir(self.data().join("node/sites"))
            .expect("sites root")
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix("site")?
                    .parse()
                    .ok()
            })
            .collect();
        assert!(
            homes.is_subset(&ids),
            "{when}: homes {homes:?} without sites ({ids:?})"
        );
        let users: BTreeSet<String> = sites
            .iter()
            .filter_map(|s| s["system_user"].as_str().map(str::to_owned))
            .collect();
        for (account, _) in self._accounts.accounts() {
            assert!(
                users.contains(&account),
                "{when}: account {account} has no site"
            );
        }
        let run = self.data().join("node/run");
        for entry in std::fs::read_dir(&run).expect("run dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_suffix(".sock")
                .and_then(|n| n.rsplit_once("-site"))
                .and_then(|(_, id)| id.parse::<i64>().ok())
            {
                assert!(ids.contains(&id), "{when}: socket {name} without its site");
            }
        }
        let databases: BTreeSet<String> = sites
            .iter()
            .filter_map(|s| {
                s["settings"]["database"]["name"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        let mariadb = MySqlBackend::connect(CustomerServerConfig::new(
            server_url(MARIADB_URL).expect("MariaDB URL"),
        ))
        .await
        .expect("MariaDB");
        for db in mariadb.list_databases().await.expect("databases") {
            if db.as_str().contains(&self.db_tag) {
                assert!(
                    databases.contains(db.as_str()),
                    "{when}: database {db} without its site"
                );
            }
        }
        for user in mariadb.list_users().await.expect("logins") {
            if user.as_str().contains(&self.db_tag) {
                assert!(
                    databases.iter().any(|d| d.starts_with(user.as_str())),
                    "{when}: login {user} without its site"
                );
            }
        }
        assert_eq!(self.journal_rows(), 0, "{when}: the journal is not empty");
        sites
    }

    /// Rows of the saga journal, read from the SQLite file beside the running panel.
    fn journal_rows(&self) -> usize {
        let out = Command::new("sqlite3")
            .arg(self.data().join("panel.db"))
            .arg("SELECT COUNT(*) FROM website_operations")
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("sqlite3: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A logged saga step of `saga` at `step`, for `site` when given (its domain or id).
fn step_line(line: &str, saga: &str, step: &str, site: Option<&str>) -> bool {
    line.contains("saga step")
        && line.contains(&format!("saga={saga} "))
        && line.contains(&format!("step={step}"))
        && site.is_none_or(|s| line.contains(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_at_any_step_of_a_website_change_leaves_store_and_node_in_agreement() {
    let Some(mut panel) = Crashing::new().await else {
        return;
    };
    panel.start().await;
    let operator = panel.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, tenant) = panel
        .send(
            reqwest::Method::POST,
            "/api/v1/tenants",
            &operator,
            Some(&json!({"name": "Crash", "slug": "crash"})),
        )
        .await;
    assert_eq!(status, 201, "{tenant}");
    let tenant_id = tenant["id"].as_i64().expect("tenant");
    let (status, user) = panel
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/tenants/{tenant_id}/users"),
            &operator,
            Some(&json!({"role": "admin", "email": TENANT_EMAIL, "password": TENANT_PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let owner = user["user"]["id"].as_i64().expect("user");
    let node = panel.list_all("/api/v1/nodes", &operator).await[0]["id"]
        .as_i64()
        .expect("node");
    let php84 = std::env::var("HOSTING_TEST_PHP_FPM_84_BIN").is_ok();
    let mut tried = BTreeSet::new();
    let mut cached = None;
    let mut n = 0;

    // Creation, killed at each of its steps.
    for step in [
        "account", "record", "database", "files", "deploy", "activate",
    ] {
        n += 1;
        let token = panel.tenant_token(&mut cached).await;
        let domain = format!("create-{step}.crash.example");
        tried.insert(domain.clone());
        panel.fire(
            reqwest::Method::POST,
            "/api/v1/websites",
            &token,
            Some(panel.site_body(node, owner, &domain, n, true)),
        );
        panel.kill_at(&format!("create at {step}"), |l| {
            step_line(l, "create", step, Some(&domain))
        });
        panel.start().await;
        let token = panel.tenant_token(&mut cached).await;
        panel
            .agree(&token, &tried, &format!("create killed at {step}"))
            .await;
    }

    // Changes to a live website, each killed at each of its steps.
    let changes: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        ("update", "PATCH", Value::Null, vec!["record", "deploy"]),
        (
            "php",
            "POST",
            json!({"php_version": if php84 { Value::from("8.4") } else { Value::Null }}),
            vec!["record", "deploy"],
        ),
        (
            "suspend",
            "POST",
            Value::Null,
            vec!["database", "record", "deploy"],
        ),
        (
            "delete",
            "DELETE",
            Value::Null,
            vec!["deploy", "database", "record", "files", "release"],
        ),
    ];
    for (change, method, body, steps) in changes {
        for step in steps {
            n += 1;
            let token = panel.tenant_token(&mut cached).await;
            let domain = format!("{change}-{step}.crash.example");
            tried.insert(domain.clone());
            let (status, created) = panel
                .send(
                    reqwest::Method::POST,
                    "/api/v1/websites",
                    &token,
                    Some(&panel.site_body(node, owner, &domain, n, true)),
                )
                .await;
            assert_eq!(status, 201, "{created}");
            let id = created["website"]["id"].as_i64().expect("id");
            // A settings update replaces them whole (the database stays as created).
            let mut settings = created["website"]["settings"].clone();
            settings["gzip"] = Value::Bool(true);
            if let Some(fields) = settings.as_object_mut() {
                fields.remove("operator_directives");
            }
            let body = match change {
                "update" => json!({ "settings": settings }),
                _ => body.clone(),
            };
            let (path, saga) = match change {
                "update" => (format!("/api/v1/websites/{id}"), "update"),
                "php" => (format!("/api/v1/websites/{id}/php"), "update"),
                "suspend" => (format!("/api/v1/websites/{id}/suspend"), "update"),
                _ => (format!("/api/v1/websites/{id}"), "delete"),
            };
            let method: reqwest::Method = method.parse().expect("method");
            panel.fire(
                method,
                &path,
                &token,
                (!body.is_null() || change == "php").then_some(body),
            );
            let website = format!("website={id} ");
            panel.kill_at(&format!("{change} at {step}"), |l| {
                step_line(l, saga, step, Some(&website))
            });
            panel.start().await;
            let token = panel.tenant_token(&mut cached).await;
            panel
                .agree(&token, &tried, &format!("{change} killed at {step}"))
                .await;
        }
    }

    // A node apply, killed as it converges.
    let (status, job) = panel
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/nodes/{node}/apply"),
            &operator,
            None,
        )
        .await;
    assert!(status == 202 || status == 200 || status == 201, "{job}");
    panel.kill_at("node apply", |l| step_line(l, "apply", "deploy", None));
    panel.start().await;
    let token = panel.tenant_token(&mut cached).await;
    panel.agree(&token, &tried, "apply killed").await;

    // The case: 30 creations in flight.
    let token = panel.tenant_token(&mut cached).await;
    let mut burst = Vec::new();
    for i in 0..30 {
        n += 1;
        let domain = format!("burst{i}.crash.example");
        tried.insert(domain.clone());
        burst.push(domain.clone());
        panel.fire(
            reqwest::Method::POST,
            "/api/v1/websites",
            &token,
            Some(panel.site_body(node, owner, &domain, n, i % 3 == 0)),
        );
    }
    let mut deployed = 0;
    panel.kill_at("30 creations", move |l| {
        if step_line(l, "create", "activate", None) {
            deployed += 1;
        }
        deployed == 5
    });
    panel.start().await;
    let token = panel.tenant_token(&mut cached).await;
    let sites = panel.agree(&token, &tried, "30 creations killed").await;
    assert!(
        sites
            .iter()
            .any(|s| burst.iter().any(|d| s["domain"] == d.as_str())),
        "some of the 30 creations finished before the kill"
    );

    // A website a panel without a journal left provisioning: failed with a reason, retried,
    // and another deleted.
    let mut left = Vec::new();
    for i in 0..2 {
        n += 1;
        let domain = format!("legacy{i}.crash.example");
        tried.insert(domain.clone());
        panel.fire(
            reqwest::Method::POST,
            "/api/v1/websites",
            &token,
            Some(panel.site_body(node, owner, &domain, n, true)),
        );
        panel.kill_at("legacy", |l| {
            step_line(l, "create", "deploy", Some(&domain))
        });
        let out = Command::new("sqlite3")
            .arg(panel.data().join("panel.db"))
            .arg("DELETE FROM website_operations")
            .output()
            .expect("sqlite3");
        assert!(out.status.success(), "{out:?}");
        panel.start().await;
        left.push(domain);
    }
    let token = panel.tenant_token(&mut cached).await;
    let sites = panel.agree(&token, &tried, "journal lost").await;
    let failed: Vec<&Value> = sites
        .iter()
        .filter(|s| left.iter().any(|d| s["domain"] == d.as_str()))
        .collect();
    assert_eq!(failed.len(), 2, "{sites:?}");
    for site in &failed {
        assert_eq!(site["status"], "failed", "{site}");
    }
    let retried = failed[0]["id"].as_i64().expect("id");
    let (status, answer) = panel
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/websites/{retried}/retry"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["website"]["status"], "active", "{answer}");
    assert!(answer["website"]["failure_reason"].is_null(), "{answer}");
    let deleted = failed[1]["id"].as_i64().expect("id");
    let (status, answer) = panel
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/websites/{deleted}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    let sites = panel
        .agree(&token, &tried, "after the retry and the deletion")
        .await;
    assert!(
        sites
            .iter()
            .any(|s| s["id"] == retried && s["status"] == "active")
    );
    assert!(!sites.iter().any(|s| s["id"] == deleted));
    // Every kind of recovery happened at least once.
    let log = panel.log.lock().expect("log").join("\n");
    for done in ["undone: 1", "deleted: 1", "updates: 1"] {
        assert!(log.contains(done), "no recovery with {done}");
    }
    for line in log
        .lines()
        .filter(|l| l.contains("recovered the website changes"))
    {
        eprintln!("{line}");
    }
}
