//! `MySqlBackend` hardening on the real MariaDB that `scripts/test.sh` starts (skipped without
//! it, failing under CI=true): no password in any server log, live sessions ended by rotation
//! and locking, per-login limits, accounts at a list of hosts, and a name never shadowing one
//! the panel did not create. Every check logs in as the customer with its own sqlx connection
//! and looks at the server; names are unique so the tests run side by side.
#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hosting_core::conformance::unique_suffix;
use hosting_core::types::{DbName, DbUserName, Password};
use hosting_core::{DatabaseBackend, DatabaseLimits, DatabaseOptions, Error};
use hosting_db::customer::{CustomerServerConfig, MySqlBackend, UserHost};
use hosting_tests::{MARIADB_URL, env_or_skip, server_url, with_database};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::{AssertSqlSafe, Connection};

/// Environment variable naming the directory of the test MariaDB's general, slow and binary
/// logs.
const LOG_DIR: &str = "HOSTING_TEST_MARIADB_LOG_DIR";
/// `ER_USER_LIMIT_REACHED`: the account holds `MAX_USER_CONNECTIONS` sessions.
const USER_LIMIT_REACHED: u16 = 1226;
/// `ER_STATEMENT_TIMEOUT`: `max_statement_time` exceeded.
const STATEMENT_TIMEOUT: u16 = 1969;
/// `ER_ACCOUNT_HAS_BEEN_LOCKED`.
const ACCOUNT_LOCKED: u16 = 4151;

/// The backend on the test server with `config`, and the admin URL.
struct Server {
    url: String,
    backend: MySqlBackend,
}

impl Server {
    async fn start_with(
        config: impl FnOnce(CustomerServerConfig) -> CustomerServerConfig,
    ) -> Option<Self> {
        let url = server_url(MARIADB_URL)?;
        let backend = MySqlBackend::connect(config(CustomerServerConfig::new(&url)))
            .await
            .expect("connect MySqlBackend");
        Some(Self { url, backend })
    }

    async fn start() -> Option<Self> {
        Self::start_with(|c| c).await
    }

    /// A plain sqlx login as `user` over TCP to 127.0.0.1, without the backend.
    async fn login(
        &self,
        user: &DbUserName,
        password: &str,
        database: &DbName,
    ) -> Result<MySqlConnection, sqlx::Error> {
        let options = MySqlConnectOptions::from_str(&self.url)?
            .username(user.as_str())
            .password(password)
            .database(database.as_str());
        MySqlConnection::connect_with(&options).await
    }

    /// The admin's own connection, for looking at the server and for an operator's raw SQL.
    async fn admin(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url)
            .await
            .expect("admin connection")
    }

    /// A database and a login granted on it.
    async fn granted(&self, prefix: &str, password: &Password) -> (DbName, DbUserName) {
        let (db, user) = (db(prefix), user(prefix));
        self.backend
            .create_database(&db, &DatabaseOptions::default())
            .await
            .expect("create database");
        self.backend
            .create_user(&user, password)
            .await
            .expect("create user");
        self.backend.grant_all(&user, &db).await.expect("grant");
        (db, user)
    }

    async fn drop_both(&self, db: &DbName, user: &DbUserName) {
        self.backend.drop_user(user).await.expect("drop user");
        self.backend.drop_database(db).await.expect("drop database");
    }

    async fn close(self) {
        self.backend.close().await;
    }
}

/// The hosts of `user`'s accounts, sorted.
async fn hosts_of(admin: &mut MySqlConnection, user: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT CAST(Host AS CHAR) FROM mysql.user WHERE User = ? ORDER BY Host")
        .bind(user)
        .fetch_all(admin)
        .await
        .expect("mysql.user")
}

async fn run(conn: &mut MySqlConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(drop)
}

async fn select_one(conn: &mut MySqlConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT CAST(1 AS SIGNED)")
        .fetch_one(conn)
        .await
}

fn db(prefix: &str) -> DbName {
    DbName::from_str(&format!("{prefix}_{}", unique_suffix())).expect("db name")
}

fn user(prefix: &str) -> DbUserName {
    DbUserName::from_str(&format!("{prefix}_{}", unique_suffix())).expect("user name")
}

fn password(raw: &str) -> Password {
    Password::from_str(raw).expect("password")
}

/// The server's error number, when the server refused.
fn number(result: &Result<impl Sized, sqlx::Error>) -> Option<u16> {
    match result {
        Err(sqlx::Error::Database(e)) => e
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// The contents of the general log, the slow log and every binary log, by file.
fn server_logs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the log directory") {
        let path = entry.expect("a log directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let is_log = name == "general.log"
            || name == "slow.log"
            || (name.starts_with("binlog.") && name != "binlog.index");
        if is_log {
            let bytes = std::fs::read(&path).expect("read a log");
            logs.push((path, bytes));
        }
    }
    assert!(logs.len() >= 3, "general, slow and binary logs: {logs:?}");
    logs
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every log holds `text`: the server logs these statements, so a password in one would show.
/// The slow log is written after the client has its answer, hence the wait.
async fn every_log_holds(dir: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = server_logs(dir);
        let general = logs
            .iter()
            .any(|(p, b)| p.ends_with("general.log") && contains(b, text));
        let slow = logs
            .iter()
            .any(|(p, b)| p.ends_with("slow.log") && contains(b, text));
        let bin = logs.iter().any(|(p, b)| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("binlog."))
                && contains(b, text)
        });
        if general && slow && bin {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{text} in general log: {general}, slow log: {slow}, binary log: {bin}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creating and rotating with distinctive and hostile passwords: the customer logs in with
/// each, every log records the statements (their hash), and no log holds a password. The hash
/// is the server's own `PASSWORD()`.
#[tokio::test]
async fn passwords_never_reach_the_server_logs() {
    let Some(server) = Server::start().await else {
        return;
    };
    let Some(dir) = env_or_skip(LOG_DIR) else {
        return;
    };
    // Each password carries an upper-case marker no name, hash or other test's text holds.
    let marker = || format!("ZQX{}", unique_suffix().to_uppercase());
    let makers: [fn(&str) -> String; 4] = [
        |m| format!("{m}-distinctive-create"),
        |m| format!("q'u\"o\\t'e;{m}--"),
        |m| format!("back\\\\slash\\'{m}\\"),
        |m| format!("ünïcødé-€-{m}-✓"),
    ];
    let passwords: Vec<(String, Password)> = makers
        .iter()
        .map(|make| {
            let m = marker();
            let pw = password(&make(&m));
            (m, pw)
        })
        .collect();
    let (_, first) = &passwords[0];
    let (db, login) = server.granted("nolog", first).await;
    server
        .login(&login, first.expose(), &db)
        .await
        .expect("the customer logs in with the created password")
        .close()
        .await
        .expect("close");
    let mut admin = server.admin().await;
    for (_, pw) in &passwords[1..] {
        server
            .backend
            .rotate_password(&login, pw)
            .await
            .expect("rotate");
        server
            .login(&login, pw.expose(), &db)
            .await
            .expect("the customer logs in with the rotated password")
            .close()
            .await
            .expect("close");
        let hash: String = sqlx::query_scalar(
            "SELECT CAST(authentication_string AS CHAR) FROM mysql.user \
             WHERE User = ? AND Host = '127.0.0.1'",
        )
        .bind(login.as_str())
        .fetch_one(&mut admin)
        .await
        .expect("the stored hash");
        every_log_holds(&dir, &hash).await;
    }
    assert!(
        number(&server.login(&login, first.expose(), &db).await).is_some(),
        "the first password no longer works"
    );
    for (path, bytes) in server_logs(&dir) {
        for (m, _) in &passwords {
            assert!(
                !contains(&bytes, m),
                "{} holds a password ({m})",
                path.display()
            );
        }
    }

    // The hash sent is the one MariaDB computes itself.
    let known = user("known");
    server
        .backend
        .create_user(&known, &password("password"))
        .await
        .expect("create");
    let (stored, servers): (String, String) = sqlx::query_as(
        "SELECT CAST(authentication_string AS CHAR), CAST(PASSWORD('password') AS CHAR) \
         FROM mysql.user WHERE User = ? AND Host = 'localhost'",
    )
    .bind(known.as_str())
    .fetch_one(&mut admin)
    .await
    .expect("the stored hash");
    assert_eq!(stored, "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19");
    assert_eq!(stored, servers);
    server.backend.drop_user(&known).await.expect("drop");
    admin.close().await.expect("close");
    server.drop_both(&db, &login).await;
    server.close().await;
}

/// A session that logged in before a rotation ends with it and cannot set a password of its
/// own; the old password is refused, the new one works.
#[tokio::test]
async fn rotation_ends_live_sessions() {
    let Some(server) = Server::start().await else {
        return;
    };
    let (old, new) = (password("rotate-old-secret"), password("rotate-new-secret"));
    let (db, login) = server.granted("rot", &old).await;
    let mut live = server
        .login(&login, old.expose(), &db)
        .await
        .expect("login");
    select_one(&mut live).await.expect("the session works");
    server
        .backend
        .rotate_password(&login, &new)
        .await
        .expect("rotate");
    assert!(
        run(
            &mut live,
            "SET PASSWORD = PASSWORD('chosen-by-the-session')".into()
        )
        .await
        .is_err(),
        "the live session survived the rotation"
    );
    assert!(
        select_one(&mut live).await.is_err(),
        "the live session survived"
    );
    assert!(number(&server.login(&login, old.expose(), &db).await).is_some());
    assert!(number(&server.login(&login, "chosen-by-the-session", &db).await).is_some());
    server
        .login(&login, new.expose(), &db)
        .await
        .expect("the new password works")
        .close()
        .await
        .expect("close");
    server.drop_both(&db, &login).await;
    server.close().await;
}

/// Locking ends live sessions and refuses new ones (twice is fine); unlocking lets the login in
/// again (twice is fine).
#[tokio::test]
async fn lock_ends_sessions_and_unlock_lets_in_again() {
    let Some(server) = Server::start().await else {
        return;
    };
    let pw = password("lock-secret-1");
    let (db, login) = server.granted("lck", &pw).await;
    let mut live = server.login(&login, pw.expose(), &db).await.expect("login");
    select_one(&mut live).await.expect("the session works");
    server.backend.lock_user(&login).await.expect("lock");
    assert!(
        select_one(&mut live).await.is_err(),
        "the live session survived the lock"
    );
    server.backend.lock_user(&login).await.expect("lock again");
    assert_eq!(
        number(&server.login(&login, pw.expose(), &db).await),
        Some(ACCOUNT_LOCKED)
    );
    server.backend.unlock_user(&login).await.expect("unlock");
    server
        .backend
        .unlock_user(&login)
        .await
        .expect("unlock again");
    server
        .login(&login, pw.expose(), &db)
        .await
        .expect("unlocked")
        .close()
        .await
        .expect("close");
    let missing = user("nolck");
    assert!(matches!(
        server.backend.lock_user(&missing).await,
        Err(Error::NotFound { .. })
    ));
    server.drop_both(&db, &login).await;
    server.close().await;
}

/// A login limited to two sessions is refused a third while another tenant's login still gets
/// in, and a statement longer than the login's statement time is interrupted.
#[tokio::test]
async fn limits_hold_one_login_and_leave_room_for_others() {
    let Some(server) = Server::start().await else {
        return;
    };
    let pw = password("limits-secret-1");
    let (db_a, login_a) = server.granted("lima", &pw).await;
    let (db_b, login_b) = server.granted("limb", &pw).await;
    let limits = DatabaseLimits::new(2, 1, 1024, 0, 0).expect("limits");
    server
        .backend
        .set_limits(&login_a, &limits)
        .await
        .expect("set limits");
    let mut first = server
        .login(&login_a, pw.expose(), &db_a)
        .await
        .expect("1st");
    let second = server
        .login(&login_a, pw.expose(), &db_a)
        .await
        .expect("2nd");
    assert_eq!(
        number(&server.login(&login_a, pw.expose(), &db_a).await),
        Some(USER_LIMIT_REACHED),
        "a third session"
    );
    server
        .login(&login_b, pw.expose(), &db_b)
        .await
        .expect("another tenant still gets in")
        .close()
        .await
        .expect("close");

    let started = Instant::now();
    let slept: Result<i64, sqlx::Error> = sqlx::query_scalar("SELECT CAST(SLEEP(3) AS SIGNED)")
        .fetch_one(&mut first)
        .await;
    // MariaDB ends the statement with 1969, or SLEEP returns 1 when interrupted.
    assert!(
        number(&slept) == Some(STATEMENT_TIMEOUT) || matches!(slept, Ok(1)),
        "{slept:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
    first.close().await.expect("close");
    second.close().await.expect("close");
    server.drop_both(&db_a, &login_a).await;
    server.drop_both(&db_b, &login_b).await;
    server.close().await;
}

/// Without `user_hosts`, a server on loopback gets accounts at `localhost`, `127.0.0.1` and
/// `::1`; a remote server is refused before any connection is tried.
#[tokio::test]
async fn user_hosts_default_to_loopback_and_are_required_for_a_remote_server() {
    let remote = tokio::time::timeout(
        Duration::from_secs(5),
        MySqlBackend::connect(
            CustomerServerConfig::new("mysql://u:p@192.0.2.1/x")
                .connect_timeout(Duration::from_secs(60)),
        ),
    )
    .await
    .expect("refused before connecting");
    match remote {
        Err(Error::Invalid { field, reason }) => {
            assert_eq!(field, "user_hosts");
            assert!(reason.contains("web nodes"), "{reason}");
        }
        other => panic!("expected Invalid on user_hosts, got {other:?}"),
    }

    let Some(server) = Server::start().await else {
        return;
    };
    assert_eq!(server.backend.user_hosts(), UserHost::loopback());
    let login = user("dflt");
    server
        .backend
        .create_user(&login, &password("default-hosts-1"))
        .await
        .expect("create");
    let mut admin = server.admin().await;
    assert_eq!(
        hosts_of(&mut admin, login.as_str()).await,
        ["127.0.0.1", "::1", "localhost"]
    );
    assert!(
        server
            .backend
            .list_users()
            .await
            .expect("list")
            .contains(&login)
    );
    server.backend.drop_user(&login).await.expect("drop");
    assert!(hosts_of(&mut admin, login.as_str()).await.is_empty());
    admin.close().await.expect("close");
    server.close().await;
}

/// A name that has an account at any host, even one the panel does not use, is never created
/// again; the refusal names only the name asked for, and the operator's account stays.
#[tokio::test]
async fn a_name_at_any_host_is_never_shadowed() {
    let Some(server) = Server::start().await else {
        return;
    };
    let name = user("opsx");
    let mut admin = server.admin().await;
    run(
        &mut admin,
        format!("CREATE USER '{name}'@'10.9.9.9' ACCOUNT LOCK"),
    )
    .await
    .expect("the operator's account");
    match server
        .backend
        .create_user(&name, &password("shadow-secret-1"))
        .await
    {
        Err(Error::AlreadyExists { detail, .. }) => {
            assert!(detail.contains(name.as_str()), "{detail}");
            assert!(!detail.contains("10.9.9.9"), "{detail}");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(
        !server
            .backend
            .list_users()
            .await
            .expect("list")
            .contains(&name)
    );
    assert!(matches!(
        server.backend.drop_user(&name).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(hosts_of(&mut admin, name.as_str()).await, ["10.9.9.9"]);
    run(&mut admin, format!("DROP USER '{name}'@'10.9.9.9'"))
        .await
        .expect("clean up");
    admin.close().await.expect("close");
    server.close().await;
}

/// When an operator later makes an account of a tenant's name at another host, the tenant's
/// lock and drop leave the operator's session alone (sessions are known by name only) and its
/// account untouched.
#[tokio::test]
async fn an_operators_session_outlives_a_tenants_drop() {
    let host = |h: &str| UserHost::from_str(h).expect("host");
    let Some(server) = Server::start_with(|c| c.user_hosts(vec![host("localhost")])).await else {
        return;
    };
    let name = user("opsy");
    server
        .backend
        .create_user(&name, &password("tenant-secret-1"))
        .await
        .expect("the tenant's login");
    let mut admin = server.admin().await;
    run(
        &mut admin,
        format!("CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY 'operator-secret-1'"),
    )
    .await
    .expect("the operator's account");
    // No database: the operator's account has no grants.
    let options = MySqlConnectOptions::from_str(&with_database(&server.url, ""))
        .expect("url")
        .username(name.as_str())
        .password("operator-secret-1");
    let mut operator = MySqlConnection::connect_with(&options)
        .await
        .expect("the operator logs in");
    server.backend.lock_user(&name).await.expect("lock");
    server.backend.drop_user(&name).await.expect("drop");
    assert_eq!(
        select_one(&mut operator)
            .await
            .expect("the operator's session lives"),
        1
    );
    assert_eq!(hosts_of(&mut admin, name.as_str()).await, ["127.0.0.1"]);
    operator.close().await.expect("close");
    run(&mut admin, format!("DROP USER '{name}'@'127.0.0.1'"))
        .await
        .expect("clean up");
    admin.close().await.expect("close");
    server.close().await;
}

/// A database granted to an anonymous account is open to every login from its hosts: health
/// reports it, and a global grant to one as `*.*`.
#[tokio::test]
async fn health_reports_grants_to_anonymous_accounts() {
    let Some(server) = Server::start().await else {
        return;
    };
    let open = db("anon");
    let mut admin = server.admin().await;
    // 10.9.9.8: no test connects from there, so the anonymous account changes no other login.
    run(&mut admin, "CREATE USER IF NOT EXISTS ''@'10.9.9.8'".into())
        .await
        .expect("anonymous account");
    run(
        &mut admin,
        format!("GRANT SELECT ON `{open}`.* TO ''@'10.9.9.8'"),
    )
    .await
    .expect("grant");
    let health = server.backend.health().await.expect("health");
    assert!(
        health
            .open_to_every_login
            .iter()
            .any(|d| d == open.as_str()),
        "{health:?}"
    );
    run(&mut admin, "GRANT PROCESS ON *.* TO ''@'10.9.9.8'".into())
        .await
        .expect("global grant");
    let health = server.backend.health().await.expect("health");
    assert!(
        health.open_to_every_login.iter().any(|d| d == "*.*"),
        "{health:?}"
    );
    run(&mut admin, "DROP USER ''@'10.9.9.8'".into())
        .await
        .expect("clean up");
    let health = server.backend.health().await.expect("health");
    assert!(
        !health
            .open_to_every_login
            .iter()
            .any(|d| d == open.as_str() || d == "*.*"),
        "{health:?}"
    );
    admin.close().await.expect("close");
    server.close().await;
}
