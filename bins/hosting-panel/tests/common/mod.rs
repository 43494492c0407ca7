//! A real panel server on 127.0.0.1:0 over a fresh store (SQLite in a temporary directory, or
//! a fresh database on the test PostgreSQL or MariaDB server), and a small HTTP client for it.
//! Nothing about HTTP is mocked: every request goes through a socket.
#![allow(clippy::expect_used, dead_code)]

use std::sync::Arc;

use hosting_core::panel::Panel;
use hosting_panel::{Config, Server};
use hosting_tests::{MARIADB_URL, POSTGRES_URL, TempDir, fresh_database, server_url};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The operator admin's login in every test server.
pub const ADMIN_EMAIL: &str = "admin@panel.example";
/// Its password.
pub const ADMIN_PASSWORD: &str = "operator-password-1";

/// The store engine a test's panel runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// A SQLite file in the panel's temporary directory.
    Sqlite,
    /// A fresh database on the server in `HOSTING_TEST_POSTGRES_URL`.
    Postgres,
    /// A fresh database on the server in `HOSTING_TEST_MARIADB_URL`.
    MariaDb,
}

impl Store {
    /// The environment variable naming this engine's server (`None` for SQLite).
    fn server_var(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some(POSTGRES_URL),
            Self::MariaDb => Some(MARIADB_URL),
        }
    }

    /// Whether this engine's server is here (SQLite always is). When its URL variable is not
    /// set, the harness reports the test as SKIPPED and this is `false`.
    ///
    /// # Panics
    /// Under `CI=true` when the server's variable is not set (see [`server_url`]): a CI run
    /// never passes by skipping.
    pub fn available(self) -> bool {
        self.server_var()
            .is_none_or(|var| server_url(var).is_some())
    }

    /// The `database_url` for [`TestPanel::start_with`]: `None` for SQLite (the default, a
    /// file in the panel's temporary directory), otherwise a fresh database of its own on the
    /// engine's server.
    ///
    /// # Panics
    /// When the server's variable is not set (ask [`Store::available`] first).
    pub async fn database_url(self) -> Option<String> {
        let var = self.server_var()?;
        let admin_url = server_url(var).unwrap_or_else(|| panic!("{var} is not set"));
        Some(fresh_database(&admin_url).await)
    }
}

/// Turns each `async fn name(store: Store)` named into a module `name` holding three tests,
/// `name::sqlite`, `name::postgres` and `name::mariadb`, each running the body over its own
/// fresh store. Without a server's URL variable its test reports SKIPPED (and fails under
/// `CI=true`).
#[allow(unused_macros)] // not every test file runs its bodies on every store
macro_rules! on_every_store {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use crate::common::Store;

            async fn run(store: Store) {
                if store.available() {
                    super::$name(store).await;
                }
            }

            #[tokio::test]
            async fn sqlite() {
                run(Store::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                run(Store::Postgres).await;
            }

            #[tokio::test]
            async fn mariadb() {
                run(Store::MariaDb).await;
            }
        }
    )+};
}
#[allow(unused_imports)] // as above
pub(crate) use on_every_store;

/// A running panel and a client for it.
pub struct TestPanel {
    pub base: String,
    pub client: reqwest::Client,
    pub server: Server,
    pub dir: TempDir,
}

/// An answer: status, headers and the body as JSON (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    /// The `field` of an error body.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    /// Panics unless the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status}, got {}: {}",
            self.status,
            self.text
        );
        self
    }

    /// Panics unless this is a JSON error with a stable snake_case code and a 4xx status.
    #[track_caller]
    pub fn expect_client_error(&self, context: &str) {
        assert!(
            self.status.is_client_error(),
            "{context}: expected a 4xx, got {}: {}",
            self.status,
            self.text
        );
        let code = self.code();
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{context}: no stable error code in {}",
            self.text
        );
        assert!(
            self.body["error"]["message"].is_string(),
            "{context}: no message in {}",
            self.text
        );
        let content_type = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{context}: content-type {content_type:?}"
        );
    }
}

/// The configuration of a test server under `dir`: no web server, no PHP discovery, so the
/// tests never touch the machine's nginx or PHP.
pub fn test_config(dir: &TempDir, database_url: Option<&str>, extra: &str) -> Config {
    let data = dir.path().join("data");
    let url = database_url.map_or(String::new(), |u| format!("database_url = {u:?}\n"));
    // Every login from 127.0.0.1 counts against one address; only the throttle tests lower it.
    let throttle = if extra.contains("login_attempts_per_minute") {
        ""
    } else {
        "login_attempts_per_minute = 1000\n"
    };
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nadmin_email = {ADMIN_EMAIL:?}\n\
         shutdown_grace_secs = 5\n{url}{throttle}{extra}\n\
         [node]\nnginx = \"\"\nphp_system_dir = \"\"\n",
        data.display().to_string()
    );
    Config::from_toml(&toml, std::path::Path::new("/")).expect("test config")
}

impl TestPanel {
    /// A panel over a fresh SQLite store.
    pub async fn start() -> Self {
        Self::start_with(None, "").await
    }

    /// A panel over a fresh store of `store`'s engine, with extra top-level TOML keys (`extra`).
    pub async fn start_on(store: Store, extra: &str) -> Self {
        let database_url = store.database_url().await;
        Self::start_with(database_url.as_deref(), extra).await
    }

    /// A panel with extra top-level TOML keys (`extra`) over `database_url` (default: SQLite
    /// in the temporary directory).
    pub async fn start_with(database_url: Option<&str>, extra: &str) -> Self {
        let dir = TempDir::new();
        let config = test_config(&dir, database_url, extra);
        let server = hosting_panel::start(
            &config,
            Some(ADMIN_PASSWORD.parse().expect("admin password")),
        )
        .await
        .expect("start the panel");
        let base = format!("http://{}", server.local_addr());
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("client");
        Self {
            base,
            client,
            server,
            dir,
        }
    }

    /// The panel behind the server (for setting up records the API cannot create here).
    pub fn panel(&self) -> &Arc<Panel> {
        &self.server.panel
    }

    /// Sends `method path` with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).expect("json"));
        }
        Self::answer(request.send().await.expect("request")).await
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        Self::answer(request.body(body).send().await.expect("request")).await
    }

    /// Turns a response into an [`Answer`].
    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    /// Logs in and returns the whole token answer.
    pub async fn login_answer(&self, email: &str, password: &str) -> Answer {
        self.send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let answer = self.login_answer(email, password).await.expect(200);
        answer.body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// The operator admin's access token.
    pub async fn admin(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a tenant (as the operator) and returns its id.
    pub async fn tenant(&self, operator: &str, slug: &str) -> i64 {
        let answer = self
            .post(
                "/api/v1/tenants",
                operator,
                &json!({"name": format!("Tenant {slug}"), "slug": slug}),
            )
            .await
            .expect(201);
        answer.body["id"].as_i64().expect("tenant id")
    }

    /// Creates a user in `tenant` as the operator and returns its id.
    pub async fn tenant_user(
        &self,
        operator: &str,
        tenant: i64,
        role: &str,
        email: &str,
        password: &str,
    ) -> i64 {
        let answer = self
            .post(
                &format!("/api/v1/tenants/{tenant}/users"),
                operator,
                &json!({"role": role, "email": email, "password": password}),
            )
            .await
            .expect(201);
        answer.body["user"]["id"].as_i64().expect("user id")
    }

    /// Creates a user in the caller's tenant and returns its id.
    pub async fn user(&self, creator: &str, role: &str, email: &str, password: &str) -> i64 {
        let answer = self
            .post(
                "/api/v1/users",
                creator,
                &json!({"role": role, "email": email, "password": password}),
            )
            .await
            .expect(201);
        answer.body["user"]["id"].as_i64().expect("user id")
    }

    /// Every item of a paged list, following `next_after`.
    pub async fn list_all(&self, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            let url = match after {
                Some(a) => format!("{path}?limit=100&after={a}"),
                None => format!("{path}?limit=100"),
            };
            let answer = self.get(&url, token).await.expect(200);
            items.extend(
                answer.body["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .cloned(),
            );
            match answer.body["next_after"].as_i64() {
                Some(a) => after = Some(a),
                None => return items,
            }
        }
    }
}
