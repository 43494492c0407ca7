//! Customer databases: PostgreSQL and MySQL/MariaDB implementations of
//! [`DatabaseBackend`](hosting_core::DatabaseBackend).
//!
//! Both backends connect with one admin login (a PostgreSQL superuser or a role with CREATEROLE
//! and CREATEDB; a MySQL/MariaDB account with all privileges and GRANT OPTION), keep a small
//! pool of admin connections, and create one login per customer. They never manage the admin
//! login itself, nor system databases.
//!
//! DDL cannot take bind parameters on either engine, so identifiers are quoted and passwords
//! escaped by each engine's rules in the backend modules (with unit tests for every escaper);
//! statements carrying a password are never logged and their errors lose the server's message.

mod mysql;
mod postgres;
mod scram;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use hosting_core::Error;
use hosting_core::error::InvalidValue;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::pool::{Pool, PoolOptions};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Database};

pub use mysql::MySqlBackend;
pub use postgres::PostgresBackend;

/// How a customer-database backend reaches its server.
///
/// `Debug` masks the admin password, so a config can be logged.
#[derive(Clone)]
pub struct CustomerServerConfig {
    admin_url: String,
    max_connections: u32,
    connect_timeout: Duration,
    user_hosts: Option<Vec<UserHost>>,
}

impl CustomerServerConfig {
    /// Admin connections kept open by default.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
    /// How long a new connection may take by default before the server counts as unreachable.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A config for the admin login in `admin_url` (`postgres://…` or `mysql://…`), with the
    /// default pool size, connect timeout and user hosts (see [`Self::user_hosts`]).
    pub fn new(admin_url: impl Into<String>) -> Self {
        Self {
            admin_url: admin_url.into(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            user_hosts: None,
        }
    }

    /// Keeps at most `max` admin connections open (at least one).
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Gives up on a new connection (admin or customer probe) after `timeout`.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The hosts customer accounts are created for on MySQL/MariaDB (`'user'@'host'`, one
    /// account per host): the web nodes' addresses for a remote server. Without this setting a
    /// server on loopback or a Unix socket gets `localhost`, `127.0.0.1` and `::1`, and a remote
    /// one is refused. Duplicates count once; an empty list is refused. Every operation on a
    /// login applies to its account at each of these hosts. PostgreSQL ignores it: there,
    /// `pg_hba.conf` decides where a login may come from.
    #[must_use]
    pub fn user_hosts(mut self, hosts: Vec<UserHost>) -> Self {
        self.user_hosts = Some(hosts);
        self
    }

    /// The admin URL, when its scheme is one of `schemes` (the driver would take others too).
    fn admin_url_with_scheme(&self, schemes: &[&str]) -> Result<&str, Error> {
        match self.admin_url.split_once("://") {
            Some((scheme, _)) if schemes.contains(&scheme) => Ok(&self.admin_url),
            _ => Err(invalid(
                "admin_url",
                format!("must start with {}://", schemes.join(":// or ")),
            )),
        }
    }

    /// The admin connection options for PostgreSQL, from the URL under the TLS policy
    /// (customer probes clone them, so they inherit it).
    fn postgres_options(&self) -> Result<PgConnectOptions, Error> {
        self.admin_url_with_scheme(&["postgres", "postgresql"])
            .and_then(|url| crate::tls::postgres_options(url, "admin_url"))
    }

    /// The admin connection options for MySQL/MariaDB, from the URL under the TLS policy.
    fn mysql_options(&self) -> Result<MySqlConnectOptions, Error> {
        self.admin_url_with_scheme(&["mysql", "mariadb"])
            .and_then(|url| crate::tls::mysql_options(url, "admin_url"))
    }

    fn pool_options<DB: Database>(&self) -> PoolOptions<DB> {
        PoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
    }
}

impl fmt::Debug for CustomerServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerServerConfig")
            .field("admin_url", &redact_url(&self.admin_url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_hosts", &self.user_hosts)
            .finish()
    }
}

/// `url` without its password and query string (which may carry one): `scheme://user:***@host/db`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    // The last '@' ends the credentials even when an unencoded '@' or '/' sits in the password.
    let (user, location) = match rest.rsplit_once('@') {
        Some((credentials, location)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            (format!("{user}:***@"), location)
        }
        None => (String::new(), rest),
    };
    let location = match location.split_once('?') {
        Some((location, _)) => format!("{location}?***"),
        None => location.to_owned(),
    };
    format!("{scheme}://{user}{location}")
}

/// The host part of MySQL/MariaDB customer accounts (`'user'@'host'`): `%` (any host),
/// `localhost`, an IP address or a host name. Validated because it ends up in DDL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserHost(String);

impl UserHost {
    /// The field name used in errors.
    pub const FIELD: &'static str = "user_host";

    /// `%`: customers may connect from any host (the server's own access rules still apply).
    /// Never a default: an operator names it explicitly.
    pub fn any() -> Self {
        Self("%".to_owned())
    }

    /// Where the customers of a server on this machine come from: `localhost` (the Unix
    /// socket), `127.0.0.1` and `::1` (TCP over loopback, whichever the client resolves).
    pub fn loopback() -> Vec<Self> {
        ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(|h| Self(h.to_owned()))
            .collect()
    }

    /// The validated host text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserHost {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "%" {
            return Ok(Self::any());
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self(ip.to_string()));
        }
        let host = s.to_ascii_lowercase();
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(InvalidValue::new(
                Self::FIELD,
                "must be '%', 'localhost', an IP address or a host name",
            ));
        }
        Ok(Self(host))
    }
}

impl TryFrom<&str> for UserHost {
    type Error = InvalidValue;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A pool holding one connection made with `options`, for work that needs its own session (a
/// customer probe, admin work inside one database). Unlike a bare `connect`, it gives up after
/// `timeout`. Callers close it when done.
async fn single_connection<DB: Database>(
    options: <DB::Connection as Connection>::Options,
    timeout: Duration,
) -> Result<Pool<DB>, sqlx::Error> {
    PoolOptions::<DB>::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
}

/// The error for a failed statement that carried a password: the server's code only, because
/// its message may quote the statement.
fn password_statement_error(backend: &'static str, err: &sqlx::Error) -> Error {
    let code = match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    Error::backend(
        backend,
        match code {
            Some(code) => format!("a statement carrying a password failed with code {code}"),
            None => "a statement carrying a password failed before the server answered".to_owned(),
        },
    )
}

/// An [`Error::Invalid`] for `field`.
fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_host_accepts_any_localhost_ips_and_host_names() {
        for (raw, expected) in [
            ("%", "%"),
            ("localhost", "localhost"),
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("Web-1.Example.COM", "web-1.example.com"),
            ("web1", "web1"),
        ] {
            assert_eq!(
                UserHost::from_str(raw).map(|h| h.0),
                Ok(expected.to_owned())
            );
        }
    }

    #[test]
    fn loopback_hosts_are_valid_user_hosts() {
        for host in UserHost::loopback() {
            assert_eq!(UserHost::from_str(host.as_str()), Ok(host.clone()));
        }
        assert_eq!(UserHost::from_str("%"), Ok(UserHost::any()));
    }

    #[test]
    fn user_host_rejects_anything_that_could_break_out() {
        for raw in [
            "",
            "%%",
            "10.0.%",
            "a'b",
            "a\\b",
            "a b",
            "a\nb",
            "-web",
            "web-",
            "a..b",
            "host@evil",
            "x'; DROP USER root; --",
            &"a".repeat(64),
        ] {
            assert!(UserHost::from_str(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        for url in [
            "postgres://admin:s3cret@db.example:5432/postgres",
            "mysql://admin:s3cr@t/x@db.example/mysql",
            "postgres://admin@db.example/postgres?password=s3cret",
        ] {
            let shown = format!("{:?}", CustomerServerConfig::new(url));
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
        }
        assert_eq!(
            redact_url("postgres://admin:pw@h:5432/db"),
            "postgres://admin:***@h:5432/db"
        );
        assert_eq!(redact_url("mysql://h/db"), "mysql://h/db");
        assert_eq!(redact_url("not a url"), "<not a URL>");
    }

    #[test]
    fn pool_size_is_at_least_one() {
        assert_eq!(
            CustomerServerConfig::new("x")
                .max_connections(0)
                .max_connections,
            1
        );
    }
}
