//! TLS to database servers: one policy for the panel store (`database_url`) and the customer
//! database servers (`admin_url`).
//!
//! A connection that leaves the machine carries the admin password and every customer's data,
//! so it is encrypted and the server's certificate verified unless the operator says otherwise:
//!
//! - **On this machine** (a Unix socket; `localhost`, 127.0.0.0/8 or `::1`): the URL's own mode
//!   stands (sqlx's default is `prefer`/`PREFERRED`); nothing can listen in between.
//! - **Remote, no mode in the URL**: TLS is required and the certificate checked against the
//!   host name or IP address in the URL: PostgreSQL `sslmode=verify-full`, MySQL/MariaDB
//!   `ssl-mode=VERIFY_IDENTITY`. Trusted are the system's roots (add a private CA with
//!   `update-ca-certificates`) plus the CA file in the URL's `sslrootcert=` (PostgreSQL) or
//!   `ssl-ca=` (MySQL/MariaDB).
//! - **Remote, mode in the URL**: `require`/`verify-ca`/`verify-full` (`REQUIRED`, `VERIFY_CA`,
//!   `VERIFY_IDENTITY`) stand: they encrypt, and an operator who weakens verification wrote so.
//!   A mode below that (`disable`, `allow`, `prefer`; `DISABLED`, `PREFERRED`) is **refused**
//!   with [`Error::Invalid`] rather than upgraded or obeyed: obeying sends the password in
//!   cleartext, and silently upgrading would hide from the operator that the configuration
//!   says something else than what runs. The error says what to write instead.
//!
//! Only the URL counts as the operator's word: libpq's `PGSSLMODE` (which sqlx reads as a
//! default) does not lift the requirement for a remote server.

use std::net::IpAddr;
use std::str::FromStr;

use hosting_core::Error;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The PostgreSQL options for `url` under the policy; `field` names the URL in errors.
pub(crate) fn postgres_options(url: &str, field: &'static str) -> Result<PgConnectOptions, Error> {
    apply::<PgConnectOptions>(url, field).map(|(options, _)| options)
}

/// The MySQL/MariaDB options for `url` under the policy; `field` names the URL in errors.
pub(crate) fn mysql_options(url: &str, field: &'static str) -> Result<MySqlConnectOptions, Error> {
    apply::<MySqlConnectOptions>(url, field).map(|(options, _)| options)
}

/// `url` (PostgreSQL) under the policy, for what takes a URL (the store's `Any` pool, the
/// change feed's listener).
/// Whether a MySQL/MariaDB server is reached over a Unix socket or loopback: the rule the TLS
/// policy uses, shared with the customer accounts' default hosts.
pub(crate) fn mysql_on_this_machine(options: &MySqlConnectOptions) -> bool {
    options.on_this_machine()
}

pub(crate) fn postgres_url(url: &str, field: &'static str) -> Result<String, Error> {
    url_under_policy::<PgConnectOptions>(url, field)
}

/// `url` (MySQL/MariaDB, `mysql://`) under the policy, for what takes a URL.
pub(crate) fn mysql_url(url: &str, field: &'static str) -> Result<String, Error> {
    url_under_policy::<MySqlConnectOptions>(url, field)
}

/// What the policy needs to know of a driver's options.
trait Engine: FromStr + Sized {
    /// The query parameter that requires a verified connection.
    const VERIFIED_PARAM: &'static str;
    /// The weak modes as the error names them, and what to write instead.
    const WEAK_ADVICE: &'static str;
    /// Whether the server is on this machine: a Unix socket or a loopback address.
    fn on_this_machine(&self) -> bool;
    /// Whether the mode may send cleartext.
    fn is_weak(&self) -> bool;
    /// Whether the mode requires TLS with the certificate and host checked.
    fn is_verified(&self) -> bool;
    /// The options with TLS required and the certificate and host checked.
    fn verified(self) -> Self;
}

impl Engine for PgConnectOptions {
    const VERIFIED_PARAM: &'static str = "sslmode=verify-full";
    const WEAK_ADVICE: &'static str = "sslmode disable, allow and prefer may send the password \
        in cleartext to a remote server; leave sslmode out (verify-full is then used) or set \
        verify-full, verify-ca or require, and name a private CA with sslrootcert=PATH";

    fn on_this_machine(&self) -> bool {
        // sqlx takes a host starting with '/' as the socket's directory.
        self.get_socket().is_some()
            || self.get_host().starts_with('/')
            || is_loopback(self.get_host())
    }

    fn is_weak(&self) -> bool {
        matches!(
            self.get_ssl_mode(),
            PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer
        )
    }

    fn is_verified(&self) -> bool {
        matches!(self.get_ssl_mode(), PgSslMode::VerifyFull)
    }

    fn verified(self) -> Self {
        self.ssl_mode(PgSslMode::VerifyFull)
    }
}

impl Engine for MySqlConnectOptions {
    const VERIFIED_PARAM: &'static str = "ssl-mode=VERIFY_IDENTITY";
    const WEAK_ADVICE: &'static str = "ssl-mode DISABLED and PREFERRED may send the password in \
        cleartext to a remote server; leave ssl-mode out (VERIFY_IDENTITY is then used) or set \
        VERIFY_IDENTITY, VERIFY_CA or REQUIRED, and name a private CA with ssl-ca=PATH";

    fn on_this_machine(&self) -> bool {
        self.get_socket().is_some() || is_loopback(self.get_host())
    }

    fn is_weak(&self) -> bool {
        matches!(
            self.get_ssl_mode(),
            MySqlSslMode::Disabled | MySqlSslMode::Preferred
        )
    }

    fn is_verified(&self) -> bool {
        matches!(self.get_ssl_mode(), MySqlSslMode::VerifyIdentity)
    }

    fn verified(self) -> Self {
        self.ssl_mode(MySqlSslMode::VerifyIdentity)
    }
}

/// The options for `url` under the policy, and whether the policy raised the mode.
fn apply<E: Engine>(url: &str, field: &'static str) -> Result<(E, bool), Error> {
    // The driver's message may quote the URL, password included.
    let options = E::from_str(url).map_err(|_| invalid(field, "is not a valid URL"))?;
    if options.on_this_machine() {
        Ok((options, false))
    } else if !sets_ssl_mode(url) {
        Ok((options.verified(), true))
    } else if options.is_weak() {
        Err(invalid(field, E::WEAK_ADVICE))
    } else {
        Ok((options, false))
    }
}

fn url_under_policy<E: Engine>(url: &str, field: &'static str) -> Result<String, Error> {
    let (_, raised) = apply::<E>(url, field)?;
    if !raised {
        return Ok(url.to_owned());
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let raised_url = format!("{url}{separator}{}", E::VERIFIED_PARAM);
    // The driver must read the mode we wrote; a '#' fragment, say, would hide it.
    match E::from_str(&raised_url) {
        Ok(options) if options.is_verified() => Ok(raised_url),
        _ => Err(invalid(
            field,
            "could not require TLS in this URL; set the TLS mode in it explicitly",
        )),
    }
}

/// Whether the URL's query sets the TLS mode (both drivers read `sslmode` and `ssl-mode`).
fn sets_ssl_mode(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        key == "sslmode" || key == "ssl-mode"
    })
}

/// `localhost`, 127.0.0.0/8 or `::1` (also written IPv4-mapped, and in URL brackets).
fn is_loopback(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn invalid(field: &'static str, reason: &'static str) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hosts on this machine, as a URL's authority writes them.
    const LOCAL: &[&str] = &[
        "127.0.0.1",
        "127.0.0.1:5433",
        "127.1.2.3",
        "localhost",
        "LocalHost:3307",
        "[::1]",
        "[::1]:5432",
        "[::ffff:127.0.0.1]",
    ];
    /// Hosts elsewhere, including names that only look local.
    const REMOTE: &[&str] = &[
        "db.example.com",
        "db.example.com:6543",
        "10.0.0.5",
        "192.168.1.10:3306",
        "[2001:db8::1]",
        "[::2]",
        "localhost.example.com",
        "mylocalhost",
        "128.0.0.1",
        "0.0.0.0",
    ];

    /// The TLS mode enums have no `PartialEq`.
    fn assert_same<T: std::fmt::Debug>(actual: T, expected: T, url: &str) {
        assert_eq!(format!("{actual:?}"), format!("{expected:?}"), "{url}");
    }

    fn pg(url: &str) -> Result<PgConnectOptions, Error> {
        postgres_options(url, "admin_url")
    }

    fn my(url: &str) -> Result<MySqlConnectOptions, Error> {
        mysql_options(url, "admin_url")
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.255.255.254",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "",
            "localhost.",
            "localhost.evil.com",
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "[::2]",
            "db",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn local_servers_keep_the_urls_mode() {
        for host in LOCAL {
            for (query, mode) in [
                ("", PgSslMode::Prefer),
                ("?sslmode=disable", PgSslMode::Disable),
                ("?sslmode=require", PgSslMode::Require),
                (
                    "?application_name=x&sslmode=verify-full",
                    PgSslMode::VerifyFull,
                ),
            ] {
                let url = format!("postgres://u:p@{host}/db{query}");
                let options = pg(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_same(options.get_ssl_mode(), mode, &url);
                assert_eq!(postgres_url(&url, "database_url").ok(), Some(url.clone()));
            }
            for (query, mode) in [
                ("", MySqlSslMode::Preferred),
                ("?ssl-mode=DISABLED", MySqlSslMode::Disabled),
                ("?sslmode=required", MySqlSslMode::Required),
            ] {
                let url = format!("mysql://u:p@{host}/db{query}");
                let options = my(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_same(options.get_ssl_mode(), mode, &url);
                assert_eq!(mysql_url(&url, "database_url").ok(), Some(url.clone()));
            }
        }
    }

    #[test]
    fn unix_sockets_keep_the_urls_mode() {
        for url in [
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres://u@db.example.com/db?host=/var/run/postgresql",
            "postgres:///db?host=%2Ftmp&sslmode=disable",
        ] {
            let options = pg(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(!options.is_verified(), "{url}");
        }
        for url in [
            "mysql://u@db.example.com/db?socket=/run/mysqld/mysqld.sock",
            "mysql://u@localhost/db?socket=%2Frun%2Fmysqld%2Fmysqld.sock&ssl-mode=DISABLED",
        ] {
            let options = my(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(!options.is_verified(), "{url}");
        }
    }

    #[test]
    fn remote_servers_without_a_mode_verify() {
        for host in REMOTE {
            for query in ["", "?sslrootcert=/etc/db-ca.pem", "?application_name=panel"] {
                let url = format!("postgres://u:p@{host}/db{query}");
                let options = pg(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_same(options.get_ssl_mode(), PgSslMode::VerifyFull, &url);
                let raised = postgres_url(&url, "database_url").unwrap_or_else(|e| panic!("{e}"));
                assert!(raised.ends_with("sslmode=verify-full"), "{raised}");
                assert!(pg(&raised).is_ok_and(|o| o.is_verified()), "{raised}");
            }
            for query in ["", "?ssl-ca=/etc/db-ca.pem", "?charset=utf8mb4"] {
                let url = format!("mysql://u:p@{host}/db{query}");
                let options = my(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_same(options.get_ssl_mode(), MySqlSslMode::VerifyIdentity, &url);
                let raised = mysql_url(&url, "database_url").unwrap_or_else(|e| panic!("{e}"));
                assert!(raised.ends_with("ssl-mode=VERIFY_IDENTITY"), "{raised}");
                assert!(my(&raised).is_ok_and(|o| o.is_verified()), "{raised}");
            }
        }
    }

    #[test]
    fn remote_servers_keep_an_encrypting_mode() {
        for host in REMOTE {
            for (param, mode) in [
                ("sslmode=require", PgSslMode::Require),
                ("ssl-mode=verify-ca", PgSslMode::VerifyCa),
                ("sslmode=verify-full", PgSslMode::VerifyFull),
            ] {
                let url = format!("postgres://u:p@{host}/db?sslrootcert=/ca.pem&{param}");
                let options = pg(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_same(options.get_ssl_mode(), mode, &url);
                assert_eq!(postgres_url(&url, "database_url").ok(), Some(url.clone()));
            }
            for (param, mode) in [
                ("ssl-mode=REQUIRED", MySqlSslMode::Required),
                ("ssl-mode=verify_ca", MySqlSslMode::VerifyCa),
                ("sslmode=VERIFY_IDENTITY", MySqlSslMode::VerifyIdentity),
            ] {
                let url = format!("mysql://u:p@{host}/db?{param}");
                let options = my(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_same(options.get_ssl_mode(), mode, &url);
                assert_eq!(mysql_url(&url, "database_url").ok(), Some(url.clone()));
            }
        }
    }

    #[test]
    fn remote_servers_refuse_a_weak_mode_without_quoting_the_url() {
        for host in REMOTE {
            for mode in ["disable", "allow", "prefer"] {
                let url = format!("postgres://u:s3cret@{host}/db?sslmode={mode}");
                for err in [pg(&url).err(), postgres_url(&url, "admin_url").err()] {
                    let Some(Error::Invalid { field, reason }) = err else {
                        panic!("{url} was accepted");
                    };
                    assert_eq!(field, "admin_url");
                    assert!(reason.contains("cleartext"), "{reason}");
                    assert!(
                        !reason.contains("s3cret") && !reason.contains(host),
                        "{reason}"
                    );
                }
            }
            for mode in ["DISABLED", "preferred"] {
                let url = format!("mysql://u:s3cret@{host}/db?ssl-mode={mode}");
                for err in [my(&url).err(), mysql_url(&url, "admin_url").err()] {
                    let Some(Error::Invalid { field, reason }) = err else {
                        panic!("{url} was accepted");
                    };
                    assert_eq!(field, "admin_url");
                    assert!(!reason.contains("s3cret"), "{reason}");
                }
            }
        }
    }

    #[test]
    fn a_mode_the_driver_would_not_read_is_refused() {
        // The raised mode would land in the fragment, where no driver reads it.
        let err = postgres_url("postgres://u@db.example.com/db#x", "database_url").err();
        assert!(matches!(err, Some(Error::Invalid { .. })), "{err:?}");
    }

    #[test]
    fn bad_urls_are_invalid_without_echoing_them() {
        for url in [
            "postgres://u:s3cret@db:notaport/x",
            "postgres://u@db/x?sslmode=bogus",
        ] {
            let Err(Error::Invalid { reason, .. }) = pg(url) else {
                panic!("{url} was accepted");
            };
            assert!(!reason.contains("s3cret"), "{reason}");
        }
        assert!(my("mysql://u@db/x?ssl-mode=bogus").is_err());
    }

    #[test]
    fn ssl_mode_keys() {
        assert!(sets_ssl_mode("postgres://h/db?sslmode=require"));
        assert!(sets_ssl_mode("postgres://h/db?a=b&ssl-mode=require"));
        assert!(!sets_ssl_mode("postgres://h/db"));
        assert!(!sets_ssl_mode("postgres://h/db?sslrootcert=/x"));
        assert!(!sets_ssl_mode("postgres://h/db?x=sslmode"));
        assert!(!sets_ssl_mode("postgres://h/db?a=b#sslmode=disable"));
    }
}
