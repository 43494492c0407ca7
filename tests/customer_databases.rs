//! Customer databases on the real servers. Test names start with the engine: `postgres::*` and
//! `mariadb::*` run the `DatabaseBackend` conformance suite, then prove the same promises with
//! plain sqlx logins of their own (never the backend's `can_connect`), against the servers
//! `scripts/test.sh` starts (skipped without them, failing under CI=true).
//!
//! No MySQL server exists on these machines, so `MySqlBackend` runs here on MariaDB only.
#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::ops::Deref;
use std::str::FromStr;

use hosting_core::conformance::{database, unique_suffix};
use hosting_core::types::{Charset, Collation, DbEngine, DbName, DbUserName, Password};
use hosting_core::{DatabaseBackend, DatabaseOptions, Error};
use hosting_db::customer::{CustomerServerConfig, MySqlBackend, PostgresBackend, UserHost};
use hosting_tests::{MARIADB_URL, POSTGRES_URL, server_url};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};
use tokio::sync::RwLock;

/// Tests that create or drop databases hold this shared; the one that compares two listings of
/// the server holds it alone, so no other test changes the server in between.
static SERVER: RwLock<()> = RwLock::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Postgres,
    MariaDb,
}

/// One of the two backends, usable as `&dyn DatabaseBackend`.
enum Backend {
    Postgres(PostgresBackend),
    MySql(MySqlBackend),
}

impl Deref for Backend {
    type Target = dyn DatabaseBackend;

    fn deref(&self) -> &Self::Target {
        match self {
            Backend::Postgres(b) => b,
            Backend::MySql(b) => b,
        }
    }
}

/// A backend on the engine's test server, and the admin URL it was made from.
struct Server {
    engine: Engine,
    url: String,
    backend: Backend,
}

impl Server {
    /// The backend on `engine`'s server with `config`, or `None` when the server is absent.
    async fn start_with(
        engine: Engine,
        config: impl FnOnce(CustomerServerConfig) -> CustomerServerConfig,
    ) -> Option<Self> {
        let var = match engine {
            Engine::Postgres => POSTGRES_URL,
            Engine::MariaDb => MARIADB_URL,
        };
        let url = server_url(var)?;
        let config = config(CustomerServerConfig::new(&url));
        let backend = match engine {
            Engine::Postgres => Backend::Postgres(
                PostgresBackend::connect(config)
                    .await
                    .expect("connect PostgresBackend"),
            ),
            Engine::MariaDb => Backend::MySql(
                MySqlBackend::connect(config)
                    .await
                    .expect("connect MySqlBackend"),
            ),
        };
        Some(Self {
            engine,
            url,
            backend,
        })
    }

    async fn start(engine: Engine) -> Option<Self> {
        Self::start_with(engine, |c| c).await
    }

    async fn close(self) {
        match self.backend {
            Backend::Postgres(b) => b.close().await,
            Backend::MySql(b) => b.close().await,
        }
    }

    /// A new plain sqlx login as `user` into `database`, without the backend.
    async fn login(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<Client, sqlx::Error> {
        match self.engine {
            Engine::Postgres => {
                let options = PgConnectOptions::from_str(&self.url)?
                    .username(user)
                    .password(password)
                    .database(database);
                PgConnection::connect_with(&options)
                    .await
                    .map(Client::Postgres)
            }
            Engine::MariaDb => {
                let options = MySqlConnectOptions::from_str(&self.url)?
                    .username(user)
                    .password(password)
                    .database(database);
                MySqlConnection::connect_with(&options)
                    .await
                    .map(Client::MySql)
            }
        }
    }

    /// The admin login of the URL, as a database user name.
    fn admin_user(&self) -> DbUserName {
        let name = match self.engine {
            Engine::Postgres => PgConnectOptions::from_str(&self.url)
                .expect("url")
                .get_username()
                .to_owned(),
            Engine::MariaDb => MySqlConnectOptions::from_str(&self.url)
                .expect("url")
                .get_username()
                .to_owned(),
        };
        DbUserName::from_str(&name).expect("the admin login is a valid name")
    }

    /// A database and a user granted on it, with `password`.
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
}

/// A plain sqlx connection.
enum Client {
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

impl Client {
    async fn run(&mut self, sql: String) -> Result<(), sqlx::Error> {
        let sql = sqlx::raw_sql(AssertSqlSafe(sql));
        match self {
            Client::Postgres(c) => sql.execute(&mut *c).await.map(drop),
            Client::MySql(c) => sql.execute(&mut *c).await.map(drop),
        }
    }

    async fn count(&mut self, sql: &'static str) -> Result<i64, sqlx::Error> {
        match self {
            Client::Postgres(c) => sqlx::query_scalar(sql).fetch_one(&mut *c).await,
            Client::MySql(c) => sqlx::query_scalar(sql).fetch_one(&mut *c).await,
        }
    }

    /// Creates table `t` and fills it with `rows` rows of about 100 bytes.
    async fn fill(&mut self, rows: u32) {
        self.run("CREATE TABLE t (id INTEGER PRIMARY KEY, note VARCHAR(200) NOT NULL)".into())
            .await
            .expect("the customer creates a table");
        let insert = match self {
            Client::Postgres(_) => format!(
                "INSERT INTO t (id, note) SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) AS g"
            ),
            Client::MySql(_) => format!(
                "INSERT INTO t (id, note) WITH RECURSIVE s (n) AS \
                 (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) \
                 SELECT n, REPEAT('x', 100) FROM s"
            ),
        };
        self.run(insert).await.expect("the customer inserts rows");
        assert_eq!(
            self.count("SELECT COUNT(*) FROM t").await.expect("select"),
            i64::from(rows),
            "the customer reads its rows back"
        );
    }

    async fn close(self) {
        let _ = match self {
            Client::Postgres(c) => c.close().await,
            Client::MySql(c) => c.close().await,
        };
    }
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

/// Asserts that the server answered a login or statement with a refusal (not a network error).
fn refused<T>(result: Result<T, sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(_)) => {}
        Err(other) => panic!("{what}: expected the server to refuse, got {other}"),
        Ok(_) => panic!("{what}: expected the server to refuse, but it let the login in"),
    }
}

// ---------------------------------------------------------------------------------------------
// Real-client checks, each run on every engine.

/// A customer creates, fills and reads a table in its own database, and cannot enter another;
/// after `revoke_all` its own database is closed to it as well.
async fn customer_works_in_its_own_database_only(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let pw = password("own-db-secret-1");
    let (db_a, user_a) = server.granted("own", &pw).await;
    let db_b = db("other");
    server
        .backend
        .create_database(&db_b, &DatabaseOptions::default())
        .await
        .expect("create b");

    let mut client = server
        .login(user_a.as_str(), pw.expose(), db_a.as_str())
        .await
        .expect("the customer logs into its database");
    client.fill(10).await;
    if engine == Engine::MariaDb {
        refused(
            client
                .run(format!("CREATE TABLE `{db_b}`.intruder (id INTEGER)"))
                .await,
            "a table in another database",
        );
    }
    client.close().await;
    refused(
        server
            .login(user_a.as_str(), pw.expose(), db_b.as_str())
            .await,
        "the customer into another database",
    );

    server
        .backend
        .revoke_all(&user_a, &db_a)
        .await
        .expect("revoke");
    refused(
        server
            .login(user_a.as_str(), pw.expose(), db_a.as_str())
            .await,
        "the customer after revoke_all",
    );
    server.drop_both(&db_a, &user_a).await;
    server.backend.drop_database(&db_b).await.expect("drop b");
    server.close().await;
}

/// A customer's SECURITY DEFINER function never comes to run as the admin: `revoke_all` (a
/// suspension) leaves the customer's objects its own, so after `grant_all` the function still
/// runs as the customer, and `drop_user` drops them instead of handing them to the admin.
async fn customer_objects_never_pass_to_the_admin(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let pw = password("definer-secret-1");
    let (db, user) = server.granted("def", &pw).await;
    let mut client = server
        .login(user.as_str(), pw.expose(), db.as_str())
        .await
        .expect("login");
    client
        .run(
            "CREATE FUNCTION escalate() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS \
             $$ SELECT CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
             THEN 1 ELSE 0 END::bigint $$"
                .into(),
        )
        .await
        .expect("the customer plants a SECURITY DEFINER function");
    client.close().await;
    server.backend.revoke_all(&user, &db).await.expect("revoke");
    server.backend.grant_all(&user, &db).await.expect("grant");
    let mut client = server
        .login(user.as_str(), pw.expose(), db.as_str())
        .await
        .expect("login again");
    assert_eq!(
        client.count("SELECT escalate()").await.expect("call"),
        0,
        "the function runs as the customer, not as a superuser"
    );
    assert_eq!(
        client
            .count(
                "SELECT COUNT(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner \
                 WHERE p.proname = 'escalate' AND r.rolname = current_user"
            )
            .await
            .expect("owner"),
        1,
        "the customer still owns its function"
    );
    client.close().await;
    server.backend.drop_user(&user).await.expect("drop user");
    let admin = server.admin_user();
    let admin_url = sqlx::postgres::PgConnectOptions::from_str(&server.url)
        .expect("url")
        .database(db.as_str());
    let mut admin_client = Client::Postgres(
        PgConnection::connect_with(&admin_url)
            .await
            .expect("admin login"),
    );
    assert_eq!(
        admin_client
            .count("SELECT COUNT(*) FROM pg_proc WHERE proname = 'escalate'")
            .await
            .expect("count"),
        0,
        "the dropped customer's function is gone, not the admin's ({admin})"
    );
    admin_client.close().await;
    server
        .backend
        .drop_database(&db)
        .await
        .expect("drop database");
    server.close().await;
}

/// `revoke_all` also ends a session that was already inside the database.
async fn revoke_ends_open_sessions(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let pw = password("revoke-secret-1");
    let (db, user) = server.granted("rev", &pw).await;
    let mut held = server
        .login(user.as_str(), pw.expose(), db.as_str())
        .await
        .expect("login");
    held.run("SELECT 1".into())
        .await
        .expect("the session works");
    server.backend.revoke_all(&user, &db).await.expect("revoke");
    assert!(
        held.run("SELECT 1".into()).await.is_err(),
        "the open session was ended"
    );
    server.drop_both(&db, &user).await;
    server.close().await;
}

/// `database_size` grows after the customer creates a table and inserts rows through its own
/// login.
async fn size_grows_with_customer_rows(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let pw = password("size-secret-1");
    let (db, user) = server.granted("size", &pw).await;
    let before = server.backend.database_size(&db).await.expect("size");
    let mut client = server
        .login(user.as_str(), pw.expose(), db.as_str())
        .await
        .expect("login");
    client.fill(1000).await;
    client.close().await;
    let after = server.backend.database_size(&db).await.expect("size");
    assert!(
        after > before,
        "size grew with 1000 rows: {before} -> {after}"
    );
    server.drop_both(&db, &user).await;
    server.close().await;
}

/// After `drop_user` the login is refused and its open sessions are ended.
async fn dropped_user_cannot_log_in(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let pw = password("dropped-secret-1");
    let (db, user) = server.granted("gone", &pw).await;
    let mut held = server
        .login(user.as_str(), pw.expose(), db.as_str())
        .await
        .expect("login before the drop");
    held.run("SELECT 1".into())
        .await
        .expect("the session works");
    server.backend.drop_user(&user).await.expect("drop user");
    refused(
        server.login(user.as_str(), pw.expose(), db.as_str()).await,
        "a dropped user",
    );
    assert!(
        held.run("SELECT 1".into()).await.is_err(),
        "the dropped user's open session was ended"
    );
    server
        .backend
        .drop_database(&db)
        .await
        .expect("drop database");
    server.close().await;
}

/// Passwords full of SQL and quotes log in exactly as typed, also after a rotation, and nothing
/// in them ran as SQL.
async fn hostile_passwords_log_in_exactly(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let db = db("a");
    server
        .backend
        .create_database(&db, &DatabaseOptions::default())
        .await
        .expect("create");
    let hostile = [
        format!("x'; DROP DATABASE {db}; --"),
        r#"q"u\o;t\'e"#.to_owned(),
        r"\\'\'';--".to_owned(),
    ];
    for (i, raw) in hostile.iter().enumerate() {
        let user = user("hp");
        server
            .backend
            .create_user(&user, &password(raw))
            .await
            .expect("create");
        server.backend.grant_all(&user, &db).await.expect("grant");
        let client = server
            .login(user.as_str(), raw, db.as_str())
            .await
            .unwrap_or_else(|e| panic!("the exact password {raw:?} logs in: {e}"));
        client.close().await;
        refused(
            server
                .login(user.as_str(), &raw[..raw.len() - 1], db.as_str())
                .await,
            "the password without its last character",
        );
        let next = &hostile[(i + 1) % hostile.len()];
        server
            .backend
            .rotate_password(&user, &password(next))
            .await
            .expect("rotate");
        refused(
            server.login(user.as_str(), raw, db.as_str()).await,
            "the old password after rotation",
        );
        server
            .login(user.as_str(), next, db.as_str())
            .await
            .unwrap_or_else(|e| panic!("the rotated password {next:?} logs in: {e}"))
            .close()
            .await;
        server.backend.drop_user(&user).await.expect("drop user");
    }
    assert!(
        server
            .backend
            .list_databases()
            .await
            .expect("list")
            .contains(&db),
        "no password ran as SQL"
    );
    server.backend.drop_database(&db).await.expect("drop");
    server.close().await;
}

/// A server whose defaults would read backslashes differently still gets every password
/// exactly: the backend sets its own sessions' rules (PostgreSQL `standard_conforming_strings`,
/// MySQL `NO_BACKSLASH_ESCAPES`). Changes the server's defaults, so it runs alone.
async fn passwords_survive_hostile_server_defaults(engine: Engine) {
    let _alone = SERVER.write().await;
    let Some(url) = server_url(match engine {
        Engine::Postgres => POSTGRES_URL,
        Engine::MariaDb => MARIADB_URL,
    }) else {
        return;
    };
    let (change, restore) = match engine {
        Engine::Postgres => {
            let admin = PgConnectOptions::from_str(&url).expect("url");
            let role = admin.get_username().replace('"', "\"\"");
            (
                format!("ALTER ROLE \"{role}\" SET standard_conforming_strings = off"),
                format!("ALTER ROLE \"{role}\" RESET standard_conforming_strings"),
            )
        }
        Engine::MariaDb => {
            let mut admin = MySqlConnection::connect(&url).await.expect("admin");
            let mode: String = sqlx::query_scalar("SELECT CAST(@@GLOBAL.sql_mode AS CHAR)")
                .fetch_one(&mut admin)
                .await
                .expect("sql_mode");
            admin.close().await.expect("close");
            assert!(
                mode.bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b','),
                "{mode}"
            );
            (
                "SET GLOBAL sql_mode = CONCAT_WS(',', NULLIF(@@GLOBAL.sql_mode, ''), \
                 'NO_BACKSLASH_ESCAPES')"
                    .to_owned(),
                format!("SET GLOBAL sql_mode = '{mode}'"),
            )
        }
    };
    let as_admin = |sql: String| {
        let url = url.clone();
        async move {
            if url.starts_with("postgres") {
                let mut admin = PgConnection::connect(&url).await.expect("admin");
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .expect("admin statement");
                admin.close().await.expect("close");
            } else {
                let mut admin = MySqlConnection::connect(&url).await.expect("admin");
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .expect("admin statement");
                admin.close().await.expect("close");
            }
        }
    };
    as_admin(change).await;
    let server = Server::start(engine).await.expect("server");
    let raw = r"back\slash\\'quote\'";
    let (db, user) = server.granted("bs", &password(raw)).await;
    let login = server.login(user.as_str(), raw, db.as_str()).await;
    server.drop_both(&db, &user).await;
    server.close().await;
    as_admin(restore).await;
    login
        .expect("the exact password logs in under the hostile default")
        .close()
        .await;
}

/// A grant on `x_a` does not reach `xxa`: in MySQL grants, `_` would match any character.
async fn grants_match_one_database_exactly(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let stem = format!("w{}", unique_suffix());
    let near = DbName::from_str(&format!("{stem}xa")).expect("name");
    server
        .backend
        .create_database(&near, &DatabaseOptions::default())
        .await
        .expect("create the look-alike first");
    let exact = DbName::from_str(&format!("{stem}_a")).expect("name");
    server
        .backend
        .create_database(&exact, &DatabaseOptions::default())
        .await
        .expect("create");
    let pw = password("wildcard-secret-1");
    let user = user("wild");
    server.backend.create_user(&user, &pw).await.expect("user");
    server
        .backend
        .grant_all(&user, &exact)
        .await
        .expect("grant");
    server
        .login(user.as_str(), pw.expose(), exact.as_str())
        .await
        .expect("login to the granted database")
        .close()
        .await;
    refused(
        server
            .login(user.as_str(), pw.expose(), near.as_str())
            .await,
        "the look-alike database",
    );
    server.drop_both(&exact, &user).await;
    server.backend.drop_database(&near).await.expect("drop");
    server.close().await;
}

/// A database dropped and created again starts closed, even to the login granted on the old
/// one (MySQL keeps grants on dropped databases), and even to grants made by hand beforehand.
async fn recreated_database_starts_unreachable(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let pw = password("again-secret-1");
    let (db, user) = server.granted("again", &pw).await;
    server.backend.drop_database(&db).await.expect("drop");
    server
        .backend
        .create_database(&db, &DatabaseOptions::default())
        .await
        .expect("create again");
    refused(
        server.login(user.as_str(), pw.expose(), db.as_str()).await,
        "the old grantee into the new database",
    );
    assert!(
        !server
            .backend
            .can_connect(&user, &pw, &db)
            .await
            .expect("probe"),
        "the backend agrees"
    );
    server.backend.drop_database(&db).await.expect("drop");

    if engine == Engine::MariaDb {
        // A grant typed by hand, unescaped, on a database that does not exist yet.
        let mut admin = MySqlConnection::connect(&server.url).await.expect("admin");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'127.0.0.1'"
        )))
        .execute(&mut admin)
        .await
        .expect("grant by hand");
        admin.close().await.expect("close");
        server
            .backend
            .create_database(&db, &DatabaseOptions::default())
            .await
            .expect("create");
        refused(
            server.login(user.as_str(), pw.expose(), db.as_str()).await,
            "a hand-made grant from before the database existed",
        );
        server.backend.drop_database(&db).await.expect("drop");
    }
    server.backend.drop_user(&user).await.expect("drop user");
    server.close().await;
}

/// The charset and collation asked for are what the server records.
async fn charset_and_collation_are_applied(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let (charset, collation) = match engine {
        Engine::Postgres => ("UTF8", "C"),
        Engine::MariaDb => ("utf8mb4", "utf8mb4_unicode_ci"),
    };
    let options = DatabaseOptions {
        charset: Some(Charset::from_str(charset).expect("charset")),
        collation: Some(Collation::from_str(collation).expect("collation")),
    };
    let db = db("cs");
    server
        .backend
        .create_database(&db, &options)
        .await
        .expect("create with options");
    let recorded: (String, String) = match engine {
        Engine::Postgres => {
            let mut admin = PgConnection::connect(&server.url).await.expect("admin");
            let row = sqlx::query_as(
                "SELECT pg_encoding_to_char(encoding)::text, datcollate::text \
                 FROM pg_database WHERE datname = $1",
            )
            .bind(db.as_str())
            .fetch_one(&mut admin)
            .await
            .expect("pg_database");
            admin.close().await.expect("close");
            row
        }
        Engine::MariaDb => {
            let mut admin = MySqlConnection::connect(&server.url).await.expect("admin");
            let row = sqlx::query_as(
                "SELECT CAST(DEFAULT_CHARACTER_SET_NAME AS CHAR), \
                        CAST(DEFAULT_COLLATION_NAME AS CHAR) \
                 FROM information_schema.schemata WHERE SCHEMA_NAME = ?",
            )
            .bind(db.as_str())
            .fetch_one(&mut admin)
            .await
            .expect("schemata");
            admin.close().await.expect("close");
            row
        }
    };
    assert_eq!(recorded, (charset.to_owned(), collation.to_owned()));
    server.backend.drop_database(&db).await.expect("drop");

    let unknown = DatabaseOptions {
        charset: Some(Charset::from_str("no_such_charset").expect("charset")),
        collation: None,
    };
    match server.backend.create_database(&db, &unknown).await {
        Err(Error::Invalid { .. }) => {}
        other => panic!("an unknown charset: expected Invalid, got {other:?}"),
    }
    assert!(
        !server
            .backend
            .list_databases()
            .await
            .expect("list")
            .contains(&db)
    );
    server.close().await;
}

/// The login the backend connects with is never listed, dropped, re-passworded or granted.
async fn admin_login_is_never_managed(engine: Engine) {
    let _shared = SERVER.read().await;
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let admin = server.admin_user();
    let pw = password("not-the-admin-password");
    assert!(
        !server
            .backend
            .list_users()
            .await
            .expect("list")
            .contains(&admin),
        "the admin is not listed"
    );
    match server.backend.create_user(&admin, &pw).await {
        Err(Error::PermissionDenied(_) | Error::AlreadyExists { .. }) => {}
        other => panic!("create_user(admin): expected a refusal, got {other:?}"),
    }
    let db = db("adm");
    server
        .backend
        .create_database(&db, &DatabaseOptions::default())
        .await
        .expect("create");
    let denied = |what: &str, result: hosting_core::Result<()>| match result {
        Err(Error::PermissionDenied(_)) => {}
        other => panic!("{what}(admin): expected PermissionDenied, got {other:?}"),
    };
    denied("grant_all", server.backend.grant_all(&admin, &db).await);
    denied("revoke_all", server.backend.revoke_all(&admin, &db).await);
    denied(
        "rotate_password",
        server.backend.rotate_password(&admin, &pw).await,
    );
    denied("drop_user", server.backend.drop_user(&admin).await);
    server.backend.drop_database(&db).await.expect("drop");
    server.close().await;
    Server::start(engine)
        .await
        .expect("the admin login still works")
        .close()
        .await;
}

/// The engine and the server version are reported; dump/restore is not offered yet.
async fn engine_and_version_are_reported(engine: Engine) {
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let (expected, version) = match &server.backend {
        Backend::Postgres(b) => (DbEngine::Postgres, b.server_version().to_owned()),
        Backend::MySql(b) => (DbEngine::MariaDb, b.server_version().to_owned()),
    };
    assert_eq!(server.backend.engine(), expected);
    let marker = match engine {
        Engine::Postgres => "PostgreSQL",
        Engine::MariaDb => "MariaDB",
    };
    assert!(version.contains(marker), "{version}");
    assert!(!server.backend.capabilities().dump_restore);
    server.close().await;
}

/// A wrong admin password is a backend error; a URL of the other engine is invalid.
async fn bad_admin_logins_are_reported(engine: Engine) {
    let Some(server) = Server::start(engine).await else {
        return;
    };
    let (scheme_end, at) = (
        server.url.find("://").expect("scheme") + 3,
        server.url.rfind('@').expect("credentials"),
    );
    let user_end = server.url[scheme_end..at]
        .find(':')
        .map_or(at, |i| scheme_end + i);
    let wrong = format!(
        "{}:wrong-password{}",
        &server.url[..user_end],
        &server.url[at..]
    );
    let (bad_login, other_scheme) = match engine {
        Engine::Postgres => (
            PostgresBackend::connect(CustomerServerConfig::new(wrong))
                .await
                .err(),
            PostgresBackend::connect(CustomerServerConfig::new("mysql://u:p@127.0.0.1/x"))
                .await
                .err(),
        ),
        Engine::MariaDb => (
            MySqlBackend::connect(CustomerServerConfig::new(wrong))
                .await
                .err(),
            MySqlBackend::connect(CustomerServerConfig::new("postgres://u:p@127.0.0.1/x"))
                .await
                .err(),
        ),
    };
    assert!(
        matches!(bad_login, Some(Error::Backend { .. })),
        "{bad_login:?}"
    );
    assert!(
        matches!(other_scheme, Some(Error::Invalid { .. })),
        "{other_scheme:?}"
    );
    server.close().await;
}

/// MySQL/MariaDB logins are one account per configured host: `'u'@'localhost'` alone cannot
/// come in over TCP from 127.0.0.1 (the test server skips name resolution), a login made with
/// `localhost` and `127.0.0.1` can. Each backend lists only names with an account at one of its
/// hosts; giving access needs the account at every host, taking it away works on what exists.
async fn user_host_decides_where_logins_come_from(engine: Engine) {
    let _shared = SERVER.read().await;
    let host = |h: &str| UserHost::from_str(h).expect("host");
    let Some(local) = Server::start_with(engine, |c| c.user_hosts(vec![host("localhost")])).await
    else {
        return;
    };
    let Some(both) = Server::start_with(engine, |c| {
        c.user_hosts(vec![
            host("localhost"),
            host("127.0.0.1"),
            host("localhost"),
        ])
    })
    .await
    else {
        return;
    };
    let Some(loopback) =
        Server::start_with(engine, |c| c.user_hosts(vec![host("127.0.0.1")])).await
    else {
        return;
    };
    let pw = password("host-secret-1");
    let (db_l, user_l) = local.granted("hl", &pw).await;
    let (db_b, user_b) = both.granted("hb", &pw).await;
    refused(
        local
            .login(user_l.as_str(), pw.expose(), db_l.as_str())
            .await,
        "an account for localhost over TCP",
    );
    both.login(user_b.as_str(), pw.expose(), db_b.as_str())
        .await
        .expect("a login for localhost and 127.0.0.1 over TCP")
        .close()
        .await;
    let mut admin = MySqlConnection::connect(&both.url).await.expect("admin");
    let hosts: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(Host AS CHAR) FROM mysql.user WHERE User = ? ORDER BY Host",
    )
    .bind(user_b.as_str())
    .fetch_all(&mut admin)
    .await
    .expect("hosts");
    assert_eq!(
        hosts,
        ["127.0.0.1", "localhost"],
        "one account per distinct host"
    );
    admin.close().await.expect("close");

    let listed = local.backend.list_users().await.expect("list");
    assert!(
        listed.contains(&user_l) && listed.contains(&user_b),
        "{listed:?}"
    );
    let listed = loopback.backend.list_users().await.expect("list");
    assert!(
        listed.contains(&user_b) && !listed.contains(&user_l),
        "{listed:?}"
    );
    match loopback.backend.drop_user(&user_l).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("another host's account: expected NotFound, got {other:?}"),
    }
    // `user_l` lacks the 127.0.0.1 account: `both` does not give it access, but takes it away.
    match both.backend.grant_all(&user_l, &db_b).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("a login missing a host: expected Conflict, got {other:?}"),
    }
    both.drop_both(&db_l, &user_l).await;
    both.drop_both(&db_b, &user_b).await;
    local.close().await;
    both.close().await;
    loopback.close().await;
}

// ---------------------------------------------------------------------------------------------
// The test matrix.

/// Options for the conformance suite: the server's defaults.
fn defaults() -> DatabaseOptions {
    DatabaseOptions::default()
}

macro_rules! engine {
    ($engine:ident = $kind:expr; conformance: $($suite:ident),+; checks: $($check:ident),+ $(,)?) => {
        mod $engine {
            use super::*;

            $(
                #[tokio::test]
                async fn $suite() {
                    let _shared = SERVER.read().await;
                    let Some(server) = Server::start($kind).await else {
                        return;
                    };
                    database::$suite(&*server.backend, &defaults()).await;
                    server.close().await;
                }
            )+

            #[tokio::test]
            async fn hostile_names_are_rejected() {
                let _alone = SERVER.write().await;
                let Some(server) = Server::start($kind).await else {
                    return;
                };
                database::hostile_names_are_rejected(&*server.backend).await;
                server.close().await;
            }

            $(
                #[tokio::test]
                async fn $check() {
                    super::$check($kind).await;
                }
            )+
        }
    };
}

engine!(postgres = Engine::Postgres;
    conformance:
        databases_lifecycle,
        users_are_isolated,
        rotated_password_replaces_the_old,
        hostile_passwords_work_exactly;
    checks:
        customer_objects_never_pass_to_the_admin,
        customer_works_in_its_own_database_only,
        revoke_ends_open_sessions,
        size_grows_with_customer_rows,
        dropped_user_cannot_log_in,
        hostile_passwords_log_in_exactly,
        grants_match_one_database_exactly,
        recreated_database_starts_unreachable,
        charset_and_collation_are_applied,
        admin_login_is_never_managed,
        engine_and_version_are_reported,
        bad_admin_logins_are_reported,
        passwords_survive_hostile_server_defaults,
);

engine!(mariadb = Engine::MariaDb;
    conformance:
        databases_lifecycle,
        users_are_isolated,
        rotated_password_replaces_the_old,
        hostile_passwords_work_exactly;
    checks:
        customer_works_in_its_own_database_only,
        revoke_ends_open_sessions,
        size_grows_with_customer_rows,
        dropped_user_cannot_log_in,
        hostile_passwords_log_in_exactly,
        grants_match_one_database_exactly,
        recreated_database_starts_unreachable,
        charset_and_collation_are_applied,
        admin_login_is_never_managed,
        engine_and_version_are_reported,
        bad_admin_logins_are_reported,
        passwords_survive_hostile_server_defaults,
        user_host_decides_where_logins_come_from,
);
