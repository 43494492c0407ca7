//! PostgreSQL customer databases hardened (#19), on the real server `scripts/test.sh` starts
//! (skipped without it, failing under CI=true). Each test logs in as the customer with a plain
//! sqlx connection of its own (never the backend's `can_connect`) and looks at the server: its
//! statement log, `pg_stat_statements`, `pg_stat_activity` and catalogs.
//!
//! Closing `postgres` and `template1` is global, and every backend's `connect` does it; the one
//! test that opens them again to watch `connect` close them holds [`SERVER`] alone.
#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::str::FromStr;

use hosting_core::conformance::unique_suffix;
use hosting_core::types::{DbName, DbUserName, Password};
use hosting_core::{DatabaseBackend, DatabaseLimits, DatabaseOptions, Error};
use hosting_db::customer::{CustomerServerConfig, PostgresBackend};
use hosting_tests::{POSTGRES_URL, env_or_skip, server_url};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};
use tokio::sync::{Mutex, RwLock};

/// Every test holds this shared; the one that opens the system databases again holds it alone.
static SERVER: RwLock<()> = RwLock::const_new(());

/// The server's statement log (`log_statement = all`).
const POSTGRES_LOG: &str = "HOSTING_TEST_POSTGRES_LOG";

/// `too_many_connections`, `query_canceled`, `insufficient_privilege`.
const TOO_MANY_CONNECTIONS: &str = "53300";
const QUERY_CANCELED: &str = "57014";
const INSUFFICIENT_PRIVILEGE: &str = "42501";

fn db(prefix: &str) -> DbName {
    DbName::from_str(&format!("{prefix}_{}", unique_suffix())).expect("db name")
}

fn user(prefix: &str) -> DbUserName {
    DbUserName::from_str(&format!("{prefix}_{}", unique_suffix())).expect("user name")
}

fn password(raw: &str) -> Password {
    Password::from_str(raw).expect("password")
}

/// A password no log could hold by chance.
fn distinctive(label: &str) -> String {
    format!("Pw-{label}-{}-Zq", unique_suffix())
}

/// The SQLSTATE of a database error.
fn code<T>(result: &Result<T, sqlx::Error>) -> Option<String> {
    match result {
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Asserts that the server refused (not a network error).
fn refused<T>(result: Result<T, sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(_)) => {}
        Err(other) => panic!("{what}: expected the server to refuse, got {other}"),
        Ok(_) => panic!("{what}: expected the server to refuse, but it let it through"),
    }
}

/// A plain session as `user` into `database` on the server of `url`.
async fn login(
    url: &str,
    user: &str,
    password: &str,
    database: &str,
) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?
        .username(user)
        .password(password)
        .database(database);
    PgConnection::connect_with(&options).await
}

/// A superuser session into `database`.
async fn admin(url: &str, database: &str) -> PgConnection {
    let options = PgConnectOptions::from_str(url)
        .expect("url")
        .database(database);
    PgConnection::connect_with(&options)
        .await
        .expect("the superuser connects")
}

async fn run(conn: &mut PgConnection, sql: impl Into<String>) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql.into()))
        .execute(conn)
        .await
        .map(drop)
}

async fn backend(url: &str) -> PostgresBackend {
    PostgresBackend::connect(CustomerServerConfig::new(url))
        .await
        .expect("connect PostgresBackend")
}

/// A database and a customer granted on it.
async fn granted(backend: &PostgresBackend, prefix: &str, pw: &Password) -> (DbName, DbUserName) {
    let (db, user) = (db(prefix), user(prefix));
    backend
        .create_database(&db, &DatabaseOptions::default())
        .await
        .expect("create database");
    backend.create_user(&user, pw).await.expect("create user");
    backend.grant_all(&user, &db).await.expect("grant");
    (db, user)
}

async fn drop_both(backend: &PostgresBackend, db: &DbName, user: &DbUserName) {
    backend.drop_user(user).await.expect("drop user");
    backend.drop_database(db).await.expect("drop database");
}

/// A non-superuser admin role (CREATEDB, CREATEROLE), made by the superuser and dropped with
/// everything granted to it.
struct LimitedAdmin {
    superuser_url: String,
    name: String,
    url: String,
}

impl LimitedAdmin {
    /// `grants` are extra statements run for it, `{}` standing for its quoted name.
    async fn create(superuser_url: &str, grants: &[&str]) -> Self {
        // A backend closes postgres and template1 first, which this admin could not do.
        backend(superuser_url).await.close().await;
        let name = format!("adm_{}", unique_suffix());
        let secret = format!("adm-{}", unique_suffix());
        let mut conn = admin(superuser_url, "postgres").await;
        run(
            &mut conn,
            format!(
                "CREATE ROLE \"{name}\" LOGIN CREATEDB CREATEROLE PASSWORD '{secret}'; \
                 GRANT CONNECT ON DATABASE postgres TO \"{name}\""
            ),
        )
        .await
        .expect("create the limited admin");
        for grant in grants {
            run(&mut conn, grant.replace("{}", &format!("\"{name}\"")))
                .await
                .expect("grant to the limited admin");
        }
        conn.close().await.expect("close");
        // The superuser's URL with this role's credentials: same host, port, database, options.
        let location = superuser_url
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .map(|(_, location)| location)
            .expect("the test URL has credentials");
        let url = format!("postgres://{name}:{secret}@{location}");
        login(&url, &name, &secret, "postgres")
            .await
            .expect("the limited admin connects")
            .close()
            .await
            .expect("close");
        Self {
            superuser_url: superuser_url.to_owned(),
            name,
            url,
        }
    }

    /// All it may do to end sessions and set limits.
    const FULL: &'static [&'static str] = &[
        "GRANT pg_signal_backend TO {}",
        "GRANT SET ON PARAMETER temp_file_limit TO {}",
    ];

    async fn drop(self) {
        let mut conn = admin(&self.superuser_url, "postgres").await;
        run(
            &mut conn,
            format!("DROP OWNED BY \"{0}\"; DROP ROLE \"{0}\"", self.name),
        )
        .await
        .expect("drop the limited admin");
        conn.close().await.expect("close");
    }
}

/// `pg_stat_statements`, installed once per run.
static STATEMENTS: Mutex<bool> = Mutex::const_new(false);

/// Every statement text `pg_stat_statements` holds.
async fn recorded_statements(url: &str) -> Vec<String> {
    let mut conn = admin(url, "postgres").await;
    {
        let mut installed = STATEMENTS.lock().await;
        if !*installed {
            run(
                &mut conn,
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            )
            .await
            .expect("install pg_stat_statements");
            *installed = true;
        }
    }
    let texts = sqlx::query_scalar("SELECT query FROM pg_stat_statements")
        .fetch_all(&mut conn)
        .await
        .expect("read pg_stat_statements");
    conn.close().await.expect("close");
    texts
}

/// The server's statement log so far, or `None` (after reporting a skip) without it.
fn server_log() -> Option<String> {
    let path = env_or_skip(POSTGRES_LOG)?;
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Through a backend on `admin_url`, creates, logs in, rotates and logs in again with each
/// password in `passwords` (the first of each pair at creation, the second after rotation),
/// then proves none of them is in the
/// server's log or `pg_stat_statements`, while what the backend ran for the logins is.
async fn passwords_stay_out_of_logs(
    superuser_url: &str,
    admin_url: &str,
    passwords: &[(String, String)],
) {
    let backend = backend(admin_url).await;
    let db = db("pwlog");
    backend
        .create_database(&db, &DatabaseOptions::default())
        .await
        .expect("create database");
    let mut users = Vec::new();
    for (first, second) in passwords {
        let user = user("pwlog");
        backend
            .create_user(&user, &password(first))
            .await
            .expect("create user");
        backend.grant_all(&user, &db).await.expect("grant");
        login(admin_url, user.as_str(), first, db.as_str())
            .await
            .unwrap_or_else(|e| panic!("{first:?} logs in as created: {e}"))
            .close()
            .await
            .expect("close");
        backend
            .rotate_password(&user, &password(second))
            .await
            .expect("rotate");
        login(admin_url, user.as_str(), second, db.as_str())
            .await
            .unwrap_or_else(|e| panic!("{second:?} logs in after rotation: {e}"))
            .close()
            .await
            .expect("close");
        refused(
            login(admin_url, user.as_str(), first, db.as_str()).await,
            "the old password after rotation",
        );
        users.push(user);
    }

    let statements = recorded_statements(superuser_url).await;
    for user in &users {
        // What was sent for the login is recorded, as a verifier: the search below is real.
        assert!(
            statements
                .iter()
                .any(|q| q.contains(user.as_str()) && q.contains("SCRAM-SHA-256$4096:")),
            "pg_stat_statements records the CREATE ROLE of {user}, with a verifier"
        );
    }
    let log = server_log();
    if let Some(log) = &log {
        for user in &users {
            assert!(
                log.contains(user.as_str()),
                "the server log records statements about {user}"
            );
        }
    }
    for (first, second) in passwords {
        for secret in [first, second] {
            assert!(
                !statements.iter().any(|q| q.contains(secret.as_str())),
                "pg_stat_statements holds the password {secret:?}"
            );
            if let Some(log) = &log {
                assert!(
                    !log.contains(secret.as_str()),
                    "the server log holds the password {secret:?}"
                );
            }
        }
    }
    for user in &users {
        backend.drop_user(user).await.expect("drop user");
    }
    backend.drop_database(&db).await.expect("drop database");
    backend.close().await;
}

/// Passwords never reach the server's statement log nor `pg_stat_statements`, as created or
/// rotated, hostile ones included, and each logs in exactly as typed (the verifier is right).
#[tokio::test]
async fn passwords_never_reach_the_server_logs() {
    let _shared = SERVER.read().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let hostile = |label: &str| {
        [
            format!("{}'; DROP ROLE x; --", distinctive(label)),
            format!(r#"{}q"u\o;t\'e\\"#, distinctive(label)),
            format!("{}$$dollar$$ $body$", distinctive(label)),
            format!("{} ünïcødé ëß 密码 ", distinctive(label)),
            format!("{}\u{00A0}nbsp and  spaces", distinctive(label)),
        ]
    };
    let pairs: Vec<(String, String)> = hostile("a")
        .into_iter()
        .zip(hostile("b"))
        .chain([(distinctive("plain"), distinctive("rotated"))])
        .collect();
    passwords_stay_out_of_logs(&url, &url, &pairs).await;
}

/// The same with a non-superuser admin, which cannot tell the server not to log a statement.
#[tokio::test]
async fn passwords_never_reach_the_logs_with_a_non_superuser_admin() {
    let _shared = SERVER.read().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let limited = LimitedAdmin::create(&url, LimitedAdmin::FULL).await;
    passwords_stay_out_of_logs(
        &url,
        &limited.url,
        &[
            (distinctive("ns"), distinctive("ns-rotated")),
            (
                format!("{}'\\$$ ü", distinctive("ns-hostile")),
                distinctive("ns-hostile-rotated"),
            ),
        ],
    )
    .await;
    limited.drop().await;
}

/// Rotation, locking and dropping end a login's live sessions: the old session's next
/// statement fails (so it cannot set its own password again); a locked login is refused until
/// unlocked. Locking and unlocking twice is no error. Run with a superuser and a non-superuser
/// admin.
#[tokio::test]
async fn sessions_end_on_rotation_lock_and_drop() {
    let _shared = SERVER.read().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let limited = LimitedAdmin::create(&url, LimitedAdmin::FULL).await;
    for admin_url in [url.as_str(), limited.url.as_str()] {
        let backend = backend(admin_url).await;
        let old = distinctive("old");
        let new = distinctive("new");
        let (db, user) = granted(&backend, "sess", &password(&old)).await;
        let name = user.as_str();

        let mut held = login(&url, name, &old, db.as_str()).await.expect("login");
        run(&mut held, "SELECT 1").await.expect("the session works");
        backend
            .rotate_password(&user, &password(&new))
            .await
            .expect("rotate");
        assert!(
            run(
                &mut held,
                format!("ALTER ROLE \"{name}\" PASSWORD '{old}-again'")
            )
            .await
            .is_err(),
            "the session opened with the old password ended and cannot set its own"
        );
        refused(
            login(&url, name, &old, db.as_str()).await,
            "the old password",
        );

        let mut held = login(&url, name, &new, db.as_str())
            .await
            .expect("login with the new password");
        backend.lock_user(&user).await.expect("lock");
        backend.lock_user(&user).await.expect("lock again");
        assert!(
            run(&mut held, "SELECT 1").await.is_err(),
            "lock_user ended the live session"
        );
        refused(login(&url, name, &new, db.as_str()).await, "a locked login");
        backend.unlock_user(&user).await.expect("unlock");
        backend.unlock_user(&user).await.expect("unlock again");
        let mut held = login(&url, name, &new, db.as_str())
            .await
            .expect("an unlocked login gets in");

        backend.drop_user(&user).await.expect("drop user");
        assert!(
            run(&mut held, "SELECT 1").await.is_err(),
            "drop_user ended the live session"
        );
        refused(
            login(&url, name, &new, db.as_str()).await,
            "a dropped login",
        );
        backend.drop_database(&db).await.expect("drop database");
        backend.close().await;
    }
    limited.drop().await;
}

/// Locking, unlocking and limits refuse the admin and unknown logins.
#[tokio::test]
async fn only_customer_logins_are_locked_or_limited() {
    let _shared = SERVER.read().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let backend = backend(&url).await;
    let admin_user = DbUserName::from_str(
        PgConnectOptions::from_str(&url)
            .expect("url")
            .get_username(),
    )
    .expect("admin name");
    let limits = DatabaseLimits::default();
    assert!(matches!(
        backend.lock_user(&admin_user).await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        backend.unlock_user(&admin_user).await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        backend.set_limits(&admin_user, &limits).await,
        Err(Error::PermissionDenied(_))
    ));
    let missing = user("missing");
    assert!(matches!(
        backend.lock_user(&missing).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        backend.set_limits(&missing, &limits).await,
        Err(Error::NotFound { .. })
    ));
    backend.close().await;
}

/// A non-superuser admin that could not end sessions, or could not set `temp_file_limit`, is
/// refused when the server is registered, with the statement that fixes it.
#[tokio::test]
async fn a_non_superuser_admin_lacking_rights_is_refused_at_connect() {
    let _shared = SERVER.read().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    for (grants, missing) in [
        (
            &["GRANT SET ON PARAMETER temp_file_limit TO {}"][..],
            "GRANT pg_signal_backend TO",
        ),
        (
            &["GRANT pg_signal_backend TO {}"][..],
            "GRANT SET ON PARAMETER temp_file_limit TO",
        ),
    ] {
        let limited = LimitedAdmin::create(&url, grants).await;
        match PostgresBackend::connect(CustomerServerConfig::new(&limited.url)).await {
            Err(Error::PermissionDenied(why)) => {
                assert!(
                    why.contains(missing) && why.contains(&limited.name),
                    "the refusal names the grant: {why}"
                );
            }
            other => panic!("expected PermissionDenied naming {missing}, got {other:?}"),
        }
        limited.drop().await;
    }
}

/// `connect` closes `postgres` and `template1` to every login but the admin; `health` lists
/// every other database every login may open, and not the customers' own.
#[tokio::test]
async fn system_databases_are_closed_and_open_ones_reported() {
    let _alone = SERVER.write().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let mut superuser = admin(&url, "postgres").await;
    let pw = distinctive("sys");
    let customer = user("sys");
    let probe = backend(&url).await;
    probe
        .create_user(&customer, &password(&pw))
        .await
        .expect("create user");
    // As a fresh server is: open to PUBLIC.
    run(
        &mut superuser,
        "GRANT CONNECT ON DATABASE postgres TO PUBLIC; \
         GRANT CONNECT ON DATABASE template1 TO PUBLIC",
    )
    .await
    .expect("open the system databases");
    for system in ["postgres", "template1"] {
        login(&url, customer.as_str(), &pw, system)
            .await
            .unwrap_or_else(|e| panic!("{system} is open before connect: {e}"))
            .close()
            .await
            .expect("close");
    }
    let health = probe.health().await.expect("health");
    for system in ["postgres", "template1"] {
        assert!(
            health.open_to_every_login.iter().any(|d| d == system),
            "health reports {system} while it is open: {health:?}"
        );
    }

    let backend = backend(&url).await;
    for system in ["postgres", "template1"] {
        let attempt = login(&url, customer.as_str(), &pw, system).await;
        assert_eq!(
            code(&attempt).as_deref(),
            Some(INSUFFICIENT_PRIVILEGE),
            "a customer cannot open {system} after connect"
        );
    }
    // The admin (its URL's database is postgres) still gets in.
    admin(&url, "postgres").await.close().await.expect("close");
    backend
        .list_databases()
        .await
        .expect("the backend still works");

    // A database created as a plain CREATE DATABASE is open to every login; the customers' are not.
    let (own_db, own_user) = granted(&backend, "sysown", &password(&pw)).await;
    let open = db("sysopen");
    run(&mut superuser, format!("CREATE DATABASE \"{open}\""))
        .await
        .expect("create an open database");
    let health = backend.health().await.expect("health");
    assert!(
        health.open_to_every_login.contains(&open.to_string()),
        "health reports {open}: {health:?}"
    );
    for closed in ["postgres", "template1", "template0", own_db.as_str()] {
        assert!(
            !health.open_to_every_login.iter().any(|d| d == closed),
            "health does not report {closed}: {health:?}"
        );
    }
    let mut sorted = health.open_to_every_login.clone();
    sorted.sort();
    assert_eq!(sorted, health.open_to_every_login, "sorted");
    run(&mut superuser, format!("DROP DATABASE \"{open}\""))
        .await
        .expect("drop the open database");
    assert!(
        !backend
            .health()
            .await
            .expect("health")
            .open_to_every_login
            .contains(&open.to_string())
    );

    drop_both(&backend, &own_db, &own_user).await;
    probe.drop_user(&customer).await.expect("drop user");
    probe.close().await;
    backend.close().await;
    superuser.close().await.expect("close");
}

/// With `max_connections` 2, a customer's third session is refused while another customer
/// still gets in; `statement_timeout` cancels a long statement; `temp_file_limit` is in force
/// and out of the customer's reach.
#[tokio::test]
async fn limits_keep_one_customer_from_starving_another() {
    let _shared = SERVER.read().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let backend = backend(&url).await;
    let pw = distinctive("lim");
    let (db_a, user_a) = granted(&backend, "lima", &password(&pw)).await;
    let (db_b, user_b) = granted(&backend, "limb", &password(&pw)).await;
    let limits = DatabaseLimits::new(2, 1, 64, 0, 0).expect("limits");
    backend
        .set_limits(&user_a, &limits)
        .await
        .expect("set limits");
    backend
        .set_limits(&user_a, &limits)
        .await
        .expect("set limits again");
    backend
        .set_limits(&user_b, &DatabaseLimits::default())
        .await
        .expect("set limits on b");

    let mut first = login(&url, user_a.as_str(), &pw, db_a.as_str())
        .await
        .expect("first session");
    let second = login(&url, user_a.as_str(), &pw, db_a.as_str())
        .await
        .expect("second session");
    let third = login(&url, user_a.as_str(), &pw, db_a.as_str()).await;
    assert_eq!(
        code(&third).as_deref(),
        Some(TOO_MANY_CONNECTIONS),
        "the third session is refused: {third:?}"
    );
    login(&url, user_b.as_str(), &pw, db_b.as_str())
        .await
        .expect("another customer still gets in")
        .close()
        .await
        .expect("close");

    let slow = run(&mut first, "SELECT pg_sleep(3)").await;
    assert_eq!(
        code(&slow).as_deref(),
        Some(QUERY_CANCELED),
        "statement_timeout cancels a 3 s statement: {slow:?}"
    );
    let temp: String = sqlx::query_scalar("SHOW temp_file_limit")
        .fetch_one(&mut first)
        .await
        .expect("show temp_file_limit");
    assert_eq!(temp, "64MB");
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut first)
        .await
        .expect("show statement_timeout");
    assert_eq!(timeout, "1s");
    assert_eq!(
        code(&run(&mut first, "SET temp_file_limit = -1").await).as_deref(),
        Some(INSUFFICIENT_PRIVILEGE),
        "the customer cannot lift temp_file_limit"
    );
    refused(
        run(
            &mut first,
            format!("ALTER ROLE \"{user_a}\" CONNECTION LIMIT -1"),
        )
        .await,
        "the customer lifting its connection limit",
    );
    first.close().await.expect("close");
    second.close().await.expect("close");

    drop_both(&backend, &db_a, &user_a).await;
    drop_both(&backend, &db_b, &user_b).await;
    backend.close().await;
}

/// Large objects a customer stores in its database go when its login is dropped (after
/// `revoke_all`, the database kept).
#[tokio::test]
async fn large_objects_go_with_their_login() {
    let _shared = SERVER.read().await;
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    let backend = backend(&url).await;
    let pw = distinctive("lo");
    let (db, user) = granted(&backend, "lo", &password(&pw)).await;
    let mut client = login(&url, user.as_str(), &pw, db.as_str())
        .await
        .expect("login");
    let from_bytea: sqlx::postgres::types::Oid =
        sqlx::query_scalar("SELECT lo_from_bytea(0, 'customer data'::bytea)")
            .fetch_one(&mut client)
            .await
            .expect("lo_from_bytea");
    let created: sqlx::postgres::types::Oid = sqlx::query_scalar("SELECT lo_create(0)")
        .fetch_one(&mut client)
        .await
        .expect("lo_create");
    client.close().await.expect("close");

    let mut superuser = admin(&url, db.as_str()).await;
    let owned = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = ANY($1)",
        )
        .bind(vec![from_bytea, created])
    };
    assert_eq!(
        owned().fetch_one(&mut superuser).await.expect("count"),
        2,
        "the customer's large objects exist"
    );
    backend.revoke_all(&user, &db).await.expect("revoke");
    backend.drop_user(&user).await.expect("drop user");
    assert_eq!(
        owned().fetch_one(&mut superuser).await.expect("count"),
        0,
        "no large object of the dropped login is left"
    );
    superuser.close().await.expect("close");
    backend.drop_database(&db).await.expect("drop database");
    backend.close().await;
}
