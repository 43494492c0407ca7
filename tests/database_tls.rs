//! TLS to the database servers, against the servers `scripts/test.sh` starts with TLS on (a
//! throwaway CA in `HOSTING_TEST_DB_CA` signed their certificate for `127.0.0.1` and
//! `localhost`). Skipped without them, failing under CI=true.
//!
//! Each test proves encryption on the server's side: PostgreSQL's `pg_stat_ssl` for the
//! sessions of a tagged `application_name`, and on MariaDB accounts made `REQUIRE SSL`, which
//! the server refuses to let in over cleartext. A TCP relay on this machine's own non-loopback
//! address stands in for a remote server, to test the default for one.
#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hosting_core::conformance::unique_suffix;
use hosting_core::types::{DbName, DbUserName, Password};
use hosting_core::{DatabaseBackend, DatabaseOptions, Error, PanelStore};
use hosting_db::customer::{CustomerServerConfig, MySqlBackend, PostgresBackend, UserHost};
use hosting_db::{SqlStore, StoreOptions};
use hosting_tests::{MARIADB_URL, POSTGRES_URL, TempDir, env_or_skip, fresh_database, server_url};
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

/// The CA file that signed both test servers' certificates.
const DB_CA: &str = "HOSTING_TEST_DB_CA";

/// The server URL in `var` and the CA file, or `None` (skipped) when either is missing.
fn server_and_ca(var: &str) -> Option<(String, String)> {
    let url = server_url(var)?;
    let ca = env_or_skip(DB_CA)?;
    Some((url, ca))
}

/// `url` with `params` added to its query.
fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// The error and every source under it, one line: what an operator reads.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Asserts that `err` is a failed TLS handshake over the certificate, not anything else.
fn assert_certificate_refused(err: &dyn std::error::Error, expected: &str) {
    let text = chain(err);
    assert!(
        text.contains("invalid peer certificate") && text.contains(expected),
        "expected the server's certificate refused for {expected}: {text}"
    );
}

/// A self-signed CA that signed nothing the servers hold, made with the openssl CLI.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let (key, cert) = (dir.join("other-ca.key"), dir.join("other-ca.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=unrelated test CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {out:?}");
    cert
}

/// A tag for `application_name`, so a test finds its own PostgreSQL sessions.
fn app_tag() -> String {
    format!("tls_test_{}", unique_suffix())
}

/// How many PostgreSQL sessions carry `tag`, and how many of those are encrypted.
async fn pg_sessions(plain_url: &str, tag: &str) -> (i64, i64) {
    let mut observer = PgConnection::connect(plain_url).await.expect("observer");
    let counts = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind(tag)
    .fetch_one(&mut observer)
    .await
    .expect("pg_stat_ssl");
    observer.close().await.expect("close observer");
    counts
}

/// Whether this PostgreSQL session is encrypted, as the server sees it.
async fn pg_session_encrypted(conn: &mut PgConnection) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pg_stat_ssl")
}

/// The cipher of this MariaDB session, empty when it is cleartext.
async fn mariadb_cipher(conn: &mut MySqlConnection) -> String {
    let (_, cipher): (String, String) = sqlx::query_as("SHOW STATUS LIKE 'Ssl_cipher'")
        .fetch_one(conn)
        .await
        .expect("Ssl_cipher");
    cipher
}

/// An all-privileges MariaDB account at 127.0.0.1 that the server lets in over TLS only,
/// dropped again by [`TlsOnlyAccount::drop_with`].
struct TlsOnlyAccount {
    name: String,
    password: String,
}

impl TlsOnlyAccount {
    async fn create(plain_url: &str) -> Self {
        let account = Self {
            name: format!("tlsonly_{}", unique_suffix()),
            password: format!("pw{}", unique_suffix()),
        };
        let mut admin = MySqlConnection::connect(plain_url).await.expect("admin");
        for sql in [
            format!(
                "CREATE USER '{}'@'127.0.0.1' IDENTIFIED BY '{}' REQUIRE SSL",
                account.name, account.password
            ),
            format!(
                "GRANT ALL PRIVILEGES ON *.* TO '{}'@'127.0.0.1' WITH GRANT OPTION",
                account.name
            ),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .expect("create the TLS-only account");
        }
        admin.close().await.expect("close admin");
        account
    }

    /// `url` (a MariaDB URL) with this account's login instead of its own.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let location = rest.rsplit_once('@').map_or(rest, |(_, location)| location);
        format!("{scheme}://{}:{}@{location}", self.name, self.password)
    }

    async fn drop_with(self, plain_url: &str) {
        let mut admin = MySqlConnection::connect(plain_url).await.expect("admin");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP USER '{}'@'127.0.0.1'",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("drop the TLS-only account");
        admin.close().await.expect("close admin");
    }
}

/// Makes every MariaDB account of `user` `REQUIRE SSL`, so only a TLS login gets in.
async fn require_ssl_for(plain_url: &str, user: &DbUserName) {
    let mut admin = MySqlConnection::connect(plain_url).await.expect("admin");
    let hosts: Vec<String> = sqlx::query_scalar("SELECT Host FROM mysql.user WHERE User = ?")
        .bind(user.as_str())
        .fetch_all(&mut admin)
        .await
        .expect("hosts");
    assert!(!hosts.is_empty(), "no account for {user:?}");
    for host in hosts {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "ALTER USER '{}'@'{host}' REQUIRE SSL",
            user.as_str()
        )))
        .execute(&mut admin)
        .await
        .expect("require SSL");
    }
    admin.close().await.expect("close admin");
}

/// A customer database and login on `backend`; `can_connect` as it must be true.
async fn customer_probe(backend: &dyn DatabaseBackend, plain_mariadb_url: Option<&str>) {
    let db = DbName::from_str(&format!("tls_{}", unique_suffix())).expect("db name");
    let user = DbUserName::from_str(&format!("tls_{}", unique_suffix())).expect("user name");
    let password = Password::from_str("Tls-probe-pass-1").expect("password");
    backend
        .create_database(&db, &DatabaseOptions::default())
        .await
        .expect("create database");
    backend
        .create_user(&user, &password)
        .await
        .expect("create user");
    backend.grant_all(&user, &db).await.expect("grant");
    if let Some(url) = plain_mariadb_url {
        require_ssl_for(url, &user).await;
    }
    let probe = backend.can_connect(&user, &password, &db).await;
    backend.drop_user(&user).await.expect("drop user");
    backend.drop_database(&db).await.expect("drop database");
    assert!(
        probe.expect("the customer probe over TLS"),
        "the customer could not log in over TLS"
    );
}

/// A relay from this machine's own non-loopback address to `server` (127.0.0.1), so a URL can
/// name the server as a remote host. `None` (skipped) on a machine without such an address.
async fn remote_alias(server: SocketAddr) -> Option<SocketAddr> {
    // The source address of the default route; connecting a UDP socket sends nothing.
    let probe = std::net::UdpSocket::bind(("0.0.0.0", 0)).expect("udp socket");
    let ip = match probe
        .connect(("192.0.2.200", 9))
        .and_then(|()| probe.local_addr())
    {
        Ok(addr) if !addr.ip().is_loopback() && !addr.ip().is_unspecified() => addr.ip(),
        _ => {
            eprintln!("SKIPPED: no non-loopback address to stand in for a remote server");
            return None;
        }
    };
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind relay");
    let alias = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(server).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    Some(alias)
}

/// `url` split around its `host:port`: what comes before, the address, what comes after.
fn split_address(url: &str) -> (&str, SocketAddr, &str) {
    let at = url.rfind('@').expect("credentials in the URL") + 1;
    let end = url[at..].find('/').map_or(url.len(), |i| at + i);
    let address = url[at..end]
        .parse()
        .expect("the test servers listen on an IP:port");
    (&url[..at], address, &url[end..])
}

/// `url` with its `host:port` replaced by `alias`.
fn aliased(url: &str, alias: SocketAddr) -> String {
    let (before, _, after) = split_address(url);
    let alias = match alias.ip() {
        IpAddr::V4(_) => alias.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]:{}", alias.port()),
    };
    format!("{before}{alias}{after}")
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn verify_full_with_the_ca_encrypts_admin_and_customer_sessions() {
        let Some((plain, ca)) = server_and_ca(POSTGRES_URL) else {
            return;
        };
        let tag = app_tag();
        let url = with_params(
            &plain,
            &format!("sslmode=verify-full&sslrootcert={ca}&application_name={tag}"),
        );
        let mut conn = PgConnection::connect(&url)
            .await
            .expect("verified TLS login");
        assert!(pg_session_encrypted(&mut conn).await);
        conn.close().await.expect("close");

        let backend = PostgresBackend::connect(CustomerServerConfig::new(&url))
            .await
            .expect("PostgresBackend over verified TLS");
        let (sessions, encrypted) = pg_sessions(&plain, &tag).await;
        assert!(sessions >= 1, "the backend keeps no admin session");
        assert_eq!(encrypted, sessions, "an admin session is in cleartext");
        customer_probe(&backend, None).await;
        backend.close().await;
    }

    #[tokio::test]
    async fn an_unrelated_ca_is_refused() {
        let Some((plain, _)) = server_and_ca(POSTGRES_URL) else {
            return;
        };
        let dir = TempDir::new();
        let other = unrelated_ca(dir.path());
        let url = with_params(
            &plain,
            &format!("sslmode=verify-full&sslrootcert={}", other.display()),
        );
        let err = PostgresBackend::connect(CustomerServerConfig::new(&url).max_connections(1))
            .await
            .expect_err("a server signed by another CA must be refused");
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        assert_certificate_refused(&err, "UnknownIssuer");
        assert!(
            !chain(&err).contains(&plain),
            "the error quotes the URL: {err}"
        );
    }

    #[tokio::test]
    async fn sslmode_require_encrypts() {
        let Some((plain, _)) = server_and_ca(POSTGRES_URL) else {
            return;
        };
        let tag = app_tag();
        let url = with_params(&plain, &format!("sslmode=require&application_name={tag}"));
        let backend = PostgresBackend::connect(CustomerServerConfig::new(&url))
            .await
            .expect("sslmode=require (was: built without TLS support)");
        let (sessions, encrypted) = pg_sessions(&plain, &tag).await;
        assert!(
            sessions >= 1 && encrypted == sessions,
            "{encrypted}/{sessions}"
        );
        backend.close().await;
    }

    #[tokio::test]
    async fn the_panel_store_runs_over_verified_tls() {
        let Some((plain, ca)) = server_and_ca(POSTGRES_URL) else {
            return;
        };
        let tag = app_tag();
        let url = with_params(
            &fresh_database(&plain).await,
            &format!("sslmode=verify-full&sslrootcert={ca}&application_name={tag}"),
        );
        let store = SqlStore::open(&url, &StoreOptions::default())
            .await
            .expect("store over verified TLS");
        assert_eq!(store.info().engine, "postgres");
        let (sessions, encrypted) = pg_sessions(&plain, &tag).await;
        assert!(
            sessions >= 1 && encrypted == sessions,
            "{encrypted}/{sessions}"
        );
        store.close().await;
    }

    /// A server named by a non-loopback address gets verify-full without asking: the test
    /// certificate names 127.0.0.1 only, so the relayed server is refused for its name.
    #[tokio::test]
    async fn a_remote_server_is_verified_by_default() {
        let Some((plain, ca)) = server_and_ca(POSTGRES_URL) else {
            return;
        };
        let Some(alias) = remote_alias(split_address(&plain).1).await else {
            return;
        };
        let remote = aliased(&plain, alias);
        let with_ca = with_params(&remote, &format!("sslrootcert={ca}"));

        let err = PostgresBackend::connect(CustomerServerConfig::new(&with_ca).max_connections(1))
            .await
            .expect_err("verify-full by default: the certificate does not name the relay");
        assert_certificate_refused(&err, "not valid for name");
        let err = SqlStore::open(&with_ca, &StoreOptions::default())
            .await
            .expect_err("the store verifies a remote server too");
        assert_certificate_refused(&err, "not valid for name");

        // Asked for explicitly, require encrypts without checking the name.
        let tag = app_tag();
        let require = with_params(&remote, &format!("sslmode=require&application_name={tag}"));
        let backend = PostgresBackend::connect(CustomerServerConfig::new(&require))
            .await
            .expect("explicit sslmode=require to a remote server");
        let (sessions, encrypted) = pg_sessions(&plain, &tag).await;
        assert!(
            sessions >= 1 && encrypted == sessions,
            "{encrypted}/{sessions}"
        );
        backend.close().await;

        // Cleartext to a remote server is refused before connecting.
        let disable = with_params(&remote, "sslmode=disable");
        let err = PostgresBackend::connect(CustomerServerConfig::new(&disable))
            .await
            .expect_err("sslmode=disable to a remote server");
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "admin_url"),
            "{err:?}"
        );
        let err = SqlStore::open(&disable, &StoreOptions::default())
            .await
            .expect_err("sslmode=disable to a remote store");
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "database_url"),
            "{err:?}"
        );
    }
}

mod mariadb {
    use super::*;

    #[tokio::test]
    async fn verify_identity_with_the_ca_encrypts_admin_and_customer_sessions() {
        let Some((plain, ca)) = server_and_ca(MARIADB_URL) else {
            return;
        };
        let verified = with_params(&plain, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"));
        let mut conn = MySqlConnection::connect(&verified)
            .await
            .expect("verified TLS login");
        assert!(!mariadb_cipher(&mut conn).await.is_empty(), "no cipher");
        conn.close().await.expect("close");

        let account = TlsOnlyAccount::create(&plain).await;
        let cleartext = with_params(&account.url(&plain), "ssl-mode=DISABLED");
        assert!(
            MySqlConnection::connect(&cleartext).await.is_err(),
            "the TLS-only account got in over cleartext"
        );
        let backend = MySqlBackend::connect(CustomerServerConfig::new(account.url(&verified)))
            .await
            .expect("MySqlBackend over verified TLS as a TLS-only admin");
        customer_probe(&backend, Some(&plain)).await;
        backend.close().await;
        account.drop_with(&plain).await;
    }

    #[tokio::test]
    async fn an_unrelated_ca_is_refused() {
        let Some((plain, _)) = server_and_ca(MARIADB_URL) else {
            return;
        };
        let dir = TempDir::new();
        let other = unrelated_ca(dir.path());
        let url = with_params(
            &plain,
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", other.display()),
        );
        let err = MySqlBackend::connect(CustomerServerConfig::new(&url).max_connections(1))
            .await
            .expect_err("a server signed by another CA must be refused");
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        assert_certificate_refused(&err, "UnknownIssuer");
        assert!(
            !chain(&err).contains(&plain),
            "the error quotes the URL: {err}"
        );
    }

    #[tokio::test]
    async fn ssl_mode_required_encrypts() {
        let Some((plain, _)) = server_and_ca(MARIADB_URL) else {
            return;
        };
        let account = TlsOnlyAccount::create(&plain).await;
        let url = with_params(&account.url(&plain), "ssl-mode=REQUIRED");
        let mut conn = MySqlConnection::connect(&url).await.expect("REQUIRED");
        assert!(!mariadb_cipher(&mut conn).await.is_empty(), "no cipher");
        conn.close().await.expect("close");
        let backend = MySqlBackend::connect(CustomerServerConfig::new(&url))
            .await
            .expect("ssl-mode=REQUIRED as a TLS-only admin");
        backend.close().await;
        account.drop_with(&plain).await;
    }

    #[tokio::test]
    async fn the_panel_store_runs_over_verified_tls() {
        let Some((plain, ca)) = server_and_ca(MARIADB_URL) else {
            return;
        };
        let account = TlsOnlyAccount::create(&plain).await;
        let database = fresh_database(&plain).await;
        let url = with_params(
            &account.url(&database),
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
        );
        let store = SqlStore::open(&url, &StoreOptions::default())
            .await
            .expect("store over verified TLS as a TLS-only account");
        assert_eq!(store.info().engine, "mariadb");
        store.close().await;
        account.drop_with(&plain).await;
    }

    /// As for PostgreSQL: VERIFY_IDENTITY by default for a non-loopback address.
    #[tokio::test]
    async fn a_remote_server_is_verified_by_default() {
        let Some((plain, ca)) = server_and_ca(MARIADB_URL) else {
            return;
        };
        let Some(alias) = remote_alias(split_address(&plain).1).await else {
            return;
        };
        let account = TlsOnlyAccount::create(&plain).await;
        let remote = aliased(&account.url(&plain), alias);
        let config = |url: &str| {
            CustomerServerConfig::new(url)
                .max_connections(1)
                .user_hosts(vec![UserHost::from_str("127.0.0.1").expect("user host")])
        };

        let with_ca = with_params(&remote, &format!("ssl-ca={ca}"));
        let err = MySqlBackend::connect(config(&with_ca))
            .await
            .expect_err("VERIFY_IDENTITY by default: the certificate does not name the relay");
        assert_certificate_refused(&err, "not valid for name");
        let err = SqlStore::open(&with_ca, &StoreOptions::default())
            .await
            .expect_err("the store verifies a remote server too");
        assert_certificate_refused(&err, "not valid for name");

        let required = with_params(&remote, "ssl-mode=REQUIRED");
        let backend = MySqlBackend::connect(config(&required))
            .await
            .expect("explicit REQUIRED to a remote server, as a TLS-only admin");
        backend.close().await;

        let disabled = with_params(&remote, "ssl-mode=DISABLED");
        let err = MySqlBackend::connect(config(&disabled))
            .await
            .expect_err("DISABLED to a remote server");
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "admin_url"),
            "{err:?}"
        );
        account.drop_with(&plain).await;
    }
}
