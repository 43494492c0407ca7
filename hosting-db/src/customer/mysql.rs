//! Customer databases and logins on a MySQL or MariaDB server.

use std::time::Duration;

use async_trait::async_trait;
use hosting_core::types::{DbEngine, DbName, DbUserName, Password};
use hosting_core::{
    DatabaseBackend, DatabaseLimits, DatabaseOptions, DbCapabilities, Error, Result, ServerHealth,
};
use sqlx::mysql::{MySqlDatabaseError, MySqlPool};
use sqlx::{AssertSqlSafe, ConnectOptions, MySql};

use super::{CustomerServerConfig, UserHost, invalid, password_statement_error, single_connection};

const BACKEND: &str = "mysql";

/// Refusals a customer probe reports as `Ok(false)`: access denied to the database (1044),
/// wrong user or password (1045), unknown database (1049), no password given (1698), account
/// locked (3118 on MySQL, 4151 on MariaDB).
const REFUSED: &[u16] = &[1044, 1045, 1049, 1698, 3118, 4151];
/// `ER_DB_CREATE_EXISTS`.
const DB_CREATE_EXISTS: u16 = 1007;
/// `ER_DB_DROP_EXISTS`: the database to drop does not exist.
const DB_DROP_EXISTS: u16 = 1008;
/// `ER_CANNOT_USER`: `CREATE USER` of an existing or `DROP USER` of a missing account.
const CANNOT_USER: u16 = 1396;
/// `ER_NONEXISTING_GRANT`: nothing to revoke.
const NONEXISTING_GRANT: u16 = 1141;
/// `ER_NO_SUCH_THREAD`: the session ended before it could be killed.
const NO_SUCH_THREAD: u16 = 1094;
/// Unknown character set (1115), unknown collation (1273), collation not valid for the
/// character set (1253).
const BAD_OPTIONS: &[u16] = &[1115, 1273, 1253];

/// Removes `NO_BACKSLASH_ESCAPES` from the session's SQL mode, so string literals are read
/// with the backslash escapes [`string_literal`] writes, whatever the server's default.
const ENABLE_BACKSLASH_ESCAPES: &str = "SET SESSION sql_mode = TRIM(BOTH ',' FROM \
     REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))";

/// A [`DatabaseBackend`] on MySQL or MariaDB (told apart by `SELECT VERSION()`).
///
/// Customer accounts are `'user'@'host'` with the host from
/// [`CustomerServerConfig::user_host`]; grants are database-level (`` `db`.* ``) with the
/// pattern characters `_` and `%` escaped, so a grant on `shop_a` never reaches `shopxa`.
/// Dropping a database also revokes the grants on it, which MySQL would otherwise keep for a
/// later database of the same name.
///
/// `database_size` is the data and index bytes of the database's tables as the server's
/// statistics report them: 0 for a database without tables (the server offers no portable way
/// to measure the directory itself).
#[derive(Debug)]
pub struct MySqlBackend {
    pool: MySqlPool,
    connect_timeout: Duration,
    user_host: UserHost,
    admin_user: String,
    admin_database: Option<String>,
    engine: DbEngine,
    version: String,
}

/// What an account name stands for on the server, at the configured host.
enum Account {
    Missing,
    Customer,
    Protected,
}

impl MySqlBackend {
    /// Connects the admin pool to the server in `config`, checks that the admin login may
    /// create databases and accounts and grant, and records the server version and engine.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that is not `mysql://` or `mariadb://`,
    /// [`Error::PermissionDenied`] when the login lacks CREATE, DROP, CREATE USER or GRANT
    /// OPTION globally, [`Error::Backend`] when the server is unreachable.
    pub async fn connect(config: CustomerServerConfig) -> Result<Self> {
        let options = config
            .mysql_options()?
            // sqlx would log every statement, and some carry passwords.
            .disable_statement_logging();
        let pool = config
            .pool_options::<MySql>()
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql(ENABLE_BACKSLASH_ESCAPES)
                        .execute(conn)
                        .await
                        .map(drop)
                })
            })
            .connect_with(options)
            .await
            .map_err(backend)?;
        let (version, current_user, admin_database, sql_mode): (
            String,
            String,
            Option<String>,
            String,
        ) = sqlx::query_as(
            "SELECT CAST(VERSION() AS CHAR), CAST(CURRENT_USER() AS CHAR), \
                    CAST(DATABASE() AS CHAR), CAST(@@SESSION.sql_mode AS CHAR)",
        )
        .fetch_one(&pool)
        .await
        .map_err(backend)?;
        if sql_mode.split(',').any(|m| m == "NO_BACKSLASH_ESCAPES") {
            return Err(Error::backend(
                BACKEND,
                "could not turn off NO_BACKSLASH_ESCAPES",
            ));
        }
        let (admin_user, admin_host) = current_user
            .rsplit_once('@')
            .ok_or_else(|| Error::backend(BACKEND, "CURRENT_USER() has no host part"))?;
        let may_manage: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ? \
               AND Create_priv = 'Y' AND Drop_priv = 'Y' AND Create_user_priv = 'Y' \
               AND Grant_priv = 'Y'",
        )
        .bind(admin_user)
        .bind(admin_host)
        .fetch_one(&pool)
        .await
        .map_err(backend)?;
        if may_manage == 0 {
            return Err(Error::denied(format!(
                "{current_user} needs CREATE, DROP, CREATE USER and GRANT OPTION on *.*"
            )));
        }
        let engine = if version.contains("MariaDB") {
            DbEngine::MariaDb
        } else {
            DbEngine::MySql
        };
        tracing::debug!(%version, %engine, %current_user, "connected for customer databases");
        Ok(Self {
            pool,
            connect_timeout: config.connect_timeout,
            user_host: config
                .user_hosts
                .and_then(|h| h.into_iter().next())
                .unwrap_or_default(),
            admin_user: admin_user.to_owned(),
            admin_database,
            engine,
            version,
        })
    }

    /// The server's `VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1` or `8.4.3`.
    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// Closes the admin pool; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn database_exists(&self, name: &DbName) -> Result<bool> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
        )
        .bind(name.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(count > 0)
    }

    async fn existing_database(&self, name: &DbName) -> Result<()> {
        if self.database_exists(name).await? {
            Ok(())
        } else {
            Err(Error::not_found("database"))
        }
    }

    async fn account(&self, user: &DbUserName) -> Result<Account> {
        if user.as_str() == self.admin_user {
            return Ok(Account::Protected);
        }
        let protected: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(Super_priv = 'Y' OR Grant_priv = 'Y' OR Create_user_priv = 'Y' \
                    AS SIGNED) \
             FROM mysql.user WHERE User = ? AND Host = ?",
        )
        .bind(user.as_str())
        .bind(self.user_host.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(match protected {
            None => Account::Missing,
            Some(0) => Account::Customer,
            Some(_) => Account::Protected,
        })
    }

    /// `Ok` for an existing customer account; `NotFound` or `PermissionDenied` otherwise.
    async fn customer(&self, user: &DbUserName) -> Result<()> {
        match self.account(user).await? {
            Account::Customer => Ok(()),
            Account::Missing => Err(Error::not_found("database user")),
            Account::Protected => Err(Error::denied(format!(
                "{user} is the admin login or has global privileges; it is not managed here"
            ))),
        }
    }

    /// `'user'@'host'` for the configured host.
    fn account_name(&self, user: &DbUserName) -> Result<String> {
        Ok(format!(
            "{}@{}",
            string_literal("database_user", user.as_str())?,
            string_literal(UserHost::FIELD, self.user_host.as_str())?
        ))
    }

    /// Ends the sessions of `user` (with `database` as their current database, when given).
    async fn kill_sessions(&self, user: &DbUserName, database: Option<&DbName>) -> Result<()> {
        let ids: Vec<u64> = sqlx::query_scalar(
            "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST \
             WHERE USER = ? AND (? IS NULL OR DB = ?) AND ID <> CONNECTION_ID()",
        )
        .bind(user.as_str())
        .bind(database.map(DbName::as_str))
        .bind(database.map(DbName::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        for id in ids {
            match self.execute(format!("KILL CONNECTION {id}")).await {
                Err(e) if number(&e) == Some(NO_SUCH_THREAD) => {}
                other => other.map_err(backend)?,
            }
        }
        Ok(())
    }

    /// Revokes every database-level grant on `name`, whether written as a literal name or as
    /// an escaped pattern, so a database created with this name again starts unreachable.
    async fn revoke_database_grants(&self, name: &DbName) -> Result<()> {
        let grants: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT CAST(User AS CHAR), CAST(Host AS CHAR), CAST(Db AS CHAR) \
             FROM mysql.db WHERE Db = ? OR Db = ?",
        )
        .bind(name.as_str())
        .bind(escape_grant_pattern(name.as_str()))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        for (user, host, pattern) in grants {
            // `pattern` is quoted exactly as stored: REVOKE matches it textually. MariaDB does
            // not take both privileges in one statement.
            let target = format!(
                "ON {}.* FROM {}@{}",
                quote_ident(&pattern),
                string_literal("user", &user)?,
                string_literal("host", &host)?
            );
            for privileges in ["ALL PRIVILEGES", "GRANT OPTION"] {
                match self.execute(format!("REVOKE {privileges} {target}")).await {
                    Err(e) if number(&e) == Some(NONEXISTING_GRANT) => {}
                    other => other.map_err(backend)?,
                }
            }
        }
        Ok(())
    }

    async fn execute(&self, sql: String) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map(drop)
    }
}

#[async_trait]
impl DatabaseBackend for MySqlBackend {
    fn engine(&self) -> DbEngine {
        self.engine
    }

    fn capabilities(&self) -> DbCapabilities {
        DbCapabilities::default()
    }

    async fn create_database(&self, name: &DbName, options: &DatabaseOptions) -> Result<()> {
        tracing::debug!(database = %name, "creating MySQL database");
        let exists = || Error::AlreadyExists {
            entity: "database",
            detail: format!("database {name}"),
        };
        if self.database_exists(name).await? {
            return Err(exists());
        }
        // Grants left over from an earlier database of this name would open the new one.
        self.revoke_database_grants(name).await?;
        let mut sql = format!("CREATE DATABASE {}", quote_ident(name.as_str()));
        if let Some(charset) = &options.charset {
            sql.push_str(" CHARACTER SET ");
            sql.push_str(&quote_ident(charset.as_str()));
        }
        if let Some(collation) = &options.collation {
            sql.push_str(" COLLATE ");
            sql.push_str(&quote_ident(collation.as_str()));
        }
        self.execute(sql).await.map_err(|e| match number(&e) {
            Some(DB_CREATE_EXISTS) => exists(),
            Some(n) if BAD_OPTIONS.contains(&n) => invalid(
                "database_options",
                "the server does not know this character set or collation, or they do not fit \
                 together",
            ),
            _ => backend(e),
        })
    }

    async fn drop_database(&self, name: &DbName) -> Result<()> {
        tracing::debug!(database = %name, "dropping MySQL database");
        if self.admin_database.as_deref() == Some(name.as_str()) {
            return Err(Error::denied(format!(
                "{name} is the admin login's own database"
            )));
        }
        self.existing_database(name).await?;
        // MySQL keeps grants on a dropped database; they would open a new one of this name.
        self.revoke_database_grants(name).await?;
        self.execute(format!("DROP DATABASE {}", quote_ident(name.as_str())))
            .await
            .map_err(|e| match number(&e) {
                Some(DB_DROP_EXISTS) => Error::not_found("database"),
                _ => backend(e),
            })
    }

    async fn list_databases(&self) -> Result<Vec<DbName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
             WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
               AND NOT (schema_name <=> DATABASE())",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut names: Vec<DbName> = names.iter().filter_map(|n| n.parse().ok()).collect();
        names.sort();
        Ok(names)
    }

    async fn database_size(&self, name: &DbName) -> Result<u64> {
        self.existing_database(name).await?;
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        if self.engine == DbEngine::MySql {
            // MySQL 8 caches table statistics for a day by default.
            sqlx::raw_sql("SET SESSION information_schema_stats_expiry = 0")
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        // Data and indexes; `data_free` is left out because with a shared tablespace every
        // table reports the free space of the whole tablespace.
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
             FROM information_schema.tables WHERE table_schema = ?",
        )
        .bind(name.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)
    }

    async fn create_user(&self, user: &DbUserName, password: &Password) -> Result<()> {
        tracing::debug!(%user, host = %self.user_host, "creating MySQL account");
        let exists = || Error::AlreadyExists {
            entity: "database user",
            detail: format!("user {user}"),
        };
        match self.account(user).await? {
            Account::Missing => {}
            Account::Customer => return Err(exists()),
            Account::Protected => {
                return Err(Error::denied(format!(
                    "{user} is the admin login or has global privileges; it is not managed here"
                )));
            }
        }
        let sql = format!(
            "CREATE USER {} IDENTIFIED BY {}",
            self.account_name(user)?,
            string_literal("password", password.expose())?
        );
        self.execute(sql).await.map_err(|e| match number(&e) {
            Some(CANNOT_USER) => exists(),
            _ => password_statement_error(BACKEND, &e),
        })
    }

    async fn drop_user(&self, user: &DbUserName) -> Result<()> {
        tracing::debug!(%user, host = %self.user_host, "dropping MySQL account");
        self.customer(user).await?;
        self.execute(format!("DROP USER {}", self.account_name(user)?))
            .await
            .map_err(|e| match number(&e) {
                Some(CANNOT_USER) => Error::not_found("database user"),
                _ => backend(e),
            })?;
        // Dropping an account does not end its sessions. They are found by user name: the
        // process list does not say which host's account a session logged in with.
        self.kill_sessions(user, None).await
    }

    async fn list_users(&self) -> Result<Vec<DbUserName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(User AS CHAR) FROM mysql.user \
             WHERE Host = ? AND User <> ? \
               AND Super_priv = 'N' AND Grant_priv = 'N' AND Create_user_priv = 'N'",
        )
        .bind(self.user_host.as_str())
        .bind(&self.admin_user)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut names: Vec<DbUserName> = names.iter().filter_map(|n| n.parse().ok()).collect();
        names.sort();
        Ok(names)
    }

    async fn rotate_password(&self, user: &DbUserName, password: &Password) -> Result<()> {
        tracing::debug!(%user, host = %self.user_host, "rotating MySQL password");
        self.customer(user).await?;
        let sql = format!(
            "ALTER USER {} IDENTIFIED BY {}",
            self.account_name(user)?,
            string_literal("password", password.expose())?
        );
        self.execute(sql).await.map_err(|e| match number(&e) {
            Some(CANNOT_USER) => Error::not_found("database user"),
            _ => password_statement_error(BACKEND, &e),
        })
    }

    async fn grant_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        tracing::debug!(%user, %database, "granting MySQL database");
        self.customer(user).await?;
        self.existing_database(database).await?;
        self.execute(format!(
            "GRANT ALL PRIVILEGES ON {}.* TO {}",
            quote_ident(&escape_grant_pattern(database.as_str())),
            self.account_name(user)?
        ))
        .await
        .map_err(backend)
    }

    async fn revoke_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        tracing::debug!(%user, %database, "revoking MySQL database");
        self.customer(user).await?;
        self.existing_database(database).await?;
        match self
            .execute(format!(
                "REVOKE ALL PRIVILEGES ON {}.* FROM {}",
                quote_ident(&escape_grant_pattern(database.as_str())),
                self.account_name(user)?
            ))
            .await
        {
            Err(e) if number(&e) == Some(NONEXISTING_GRANT) => {}
            other => other.map_err(backend)?,
        }
        // A session keeps the privileges of its current database until it switches.
        self.kill_sessions(user, Some(database)).await
    }

    async fn lock_user(&self, _user: &DbUserName) -> Result<()> {
        Err(Error::backend(BACKEND, "lock_user: in progress"))
    }

    async fn unlock_user(&self, _user: &DbUserName) -> Result<()> {
        Err(Error::backend(BACKEND, "unlock_user: in progress"))
    }

    async fn set_limits(&self, _user: &DbUserName, _limits: &DatabaseLimits) -> Result<()> {
        Err(Error::backend(BACKEND, "set_limits: in progress"))
    }

    async fn health(&self) -> Result<ServerHealth> {
        Err(Error::backend(BACKEND, "health: in progress"))
    }

    async fn can_connect(
        &self,
        user: &DbUserName,
        password: &Password,
        database: &DbName,
    ) -> Result<bool> {
        let options = (*self.pool.connect_options())
            .clone()
            .username(user.as_str())
            .password(password.expose())
            .database(database.as_str());
        let pool = match single_connection::<MySql>(options, self.connect_timeout).await {
            Ok(pool) => pool,
            Err(e) if number(&e).is_some_and(|n| REFUSED.contains(&n)) => return Ok(false),
            Err(e) => return Err(backend(e)),
        };
        let probe = sqlx::query_scalar::<_, i64>("SELECT CAST(1 AS SIGNED)")
            .fetch_one(&pool)
            .await;
        pool.close().await;
        probe.map(|one| one == 1).map_err(backend)
    }
}

fn backend(err: sqlx::Error) -> Error {
    Error::backend(BACKEND, err)
}

/// The server's error number of a database error.
fn number(err: &sqlx::Error) -> Option<u16> {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// `` `name` ``, with `` ` `` doubled: an identifier that means exactly `name`.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `name` as a database pattern in `GRANT`/`REVOKE … ON pattern.*`, where `_` and `%` are
/// wildcards and `\` escapes: each of the three is escaped, so the pattern matches only `name`.
fn escape_grant_pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if matches!(c, '\\' | '_' | '%') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `'value'` as a MySQL/MariaDB string literal that means exactly `value`: `\` becomes `\\`
/// and `'` becomes `''`. The admin sessions run without `NO_BACKSLASH_ESCAPES` (see
/// [`ENABLE_BACKSLASH_ESCAPES`]) and with utf8mb4, where no multi-byte character can end in a
/// backslash byte. `''` stays a quote in either SQL mode, so even a wrong mode could not end the
/// literal early. NUL is rejected.
fn string_literal(field: &'static str, value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(invalid(field, "must not contain a NUL character"));
    }
    Ok(format!(
        "'{}'",
        value.replace('\\', "\\\\").replace('\'', "''")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_their_backticks() {
        assert_eq!(quote_ident("shop"), "`shop`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(
            quote_ident("`; DROP DATABASE x; --"),
            "```; DROP DATABASE x; --`"
        );
    }

    #[test]
    fn grant_patterns_escape_wildcards() {
        assert_eq!(escape_grant_pattern("shop_a"), r"shop\_a");
        assert_eq!(escape_grant_pattern("a%b"), r"a\%b");
        assert_eq!(escape_grant_pattern(r"a\b"), r"a\\b");
        assert_eq!(escape_grant_pattern("plain"), "plain");
        assert_eq!(quote_ident(&escape_grant_pattern("a_b")), r"`a\_b`");
    }

    #[test]
    fn string_literals_escape_backslashes_and_quotes() {
        let lit = |s| string_literal("password", s).expect("no NUL");
        assert_eq!(lit("plain-pass"), "'plain-pass'");
        assert_eq!(lit("x'; DROP DATABASE a; --"), "'x''; DROP DATABASE a; --'");
        assert_eq!(lit(r#"q"u\o;t\'e"#), r#"'q"u\\o;t\\''e'"#);
        assert_eq!(lit(r"\"), r"'\\'");
        assert_eq!(lit(r"\'"), r"'\\'''");
        assert_eq!(lit("`tick`%_"), "'`tick`%_'");
    }

    #[test]
    fn string_literals_reject_nul() {
        assert!(matches!(
            string_literal("password", "a\0b"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn a_literal_reads_back_as_its_value() {
        // The reading rules of the server without NO_BACKSLASH_ESCAPES.
        fn read_back(lit: &str) -> Option<String> {
            let inner = lit.strip_prefix('\'')?.strip_suffix('\'')?;
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '\'' => (chars.next()? == '\'').then(|| out.push('\''))?,
                    c => out.push(c),
                }
            }
            Some(out)
        }
        for raw in [
            "'",
            r"\",
            r"\'",
            r"'\",
            "a''b",
            r"q'u\o;t\'e",
            "x'; DROP DATABASE a; --",
        ] {
            let lit = string_literal("password", raw).expect("no NUL");
            assert_eq!(read_back(&lit).as_deref(), Some(raw), "{lit}");
        }
    }
}
