//! Customer databases and logins on a MySQL or MariaDB server.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use hosting_core::types::{DbEngine, DbName, DbUserName, Password};
use hosting_core::{
    DatabaseBackend, DatabaseLimits, DatabaseOptions, DbCapabilities, Error, Result, ServerHealth,
};
use sha1::{Digest, Sha1};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool};
use sqlx::{AssertSqlSafe, ConnectOptions, MySql};

use super::{CustomerServerConfig, UserHost, invalid, password_statement_error, single_connection};

const BACKEND: &str = "mysql";
/// The field of [`CustomerServerConfig::user_hosts`] in errors.
const USER_HOSTS: &str = "user_hosts";

/// Refusals a customer probe reports as `Ok(false)`: access denied to the database (1044),
/// wrong user or password (1045), unknown database (1049), no password given (1698), account
/// locked (3118 on MySQL, 4151 on MariaDB).
const REFUSED: &[u16] = &[1044, 1045, 1049, 1698, 3118, 4151];
/// `ER_DB_CREATE_EXISTS`.
const DB_CREATE_EXISTS: u16 = 1007;
/// `ER_DB_DROP_EXISTS`: the database to drop does not exist.
const DB_DROP_EXISTS: u16 = 1008;
/// `ER_CANNOT_USER`: `CREATE USER` of an existing or `ALTER USER` of a missing account.
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
/// A customer login is one account per host of [`CustomerServerConfig::user_hosts`]
/// (`'user'@'host'`), and every operation applies to each of them. A name that has an account
/// at any host, listed or not, is never created: a tenant's login must not shadow an operator's
/// `opsbackup@localhost`. Taking access away (drop, lock, revoke) works on whichever of the
/// accounts exist; giving or changing it needs all of them.
///
/// Passwords reach the server only as their `mysql_native_password` hash (see
/// [`native_password_hash`]), so no server log holds one. Grants are database-level
/// (`` `db`.* ``) with the pattern characters `_` and `%` escaped, so a grant on `shop_a` never
/// reaches `shopxa`. Dropping a database also revokes the grants on it, which MySQL would
/// otherwise keep for a later database of the same name.
///
/// Sessions are ended by user name: the process list does not tell which host's account a
/// session logged in with. So while a name also has an account at a host outside the list (an
/// operator's, made after ours), its sessions are left alone and a warning is logged rather
/// than risk ending the operator's.
///
/// `database_size` is the data and index bytes of the database's tables as the server's
/// statistics report them: 0 for a database without tables (the server offers no portable way
/// to measure the directory itself).
#[derive(Debug)]
pub struct MySqlBackend {
    pool: MySqlPool,
    connect_timeout: Duration,
    user_hosts: Vec<UserHost>,
    admin_user: String,
    admin_database: Option<String>,
    engine: DbEngine,
    version: String,
}

/// A customer login's accounts on the server.
struct Accounts {
    /// The configured hosts at which the name has an account.
    present: Vec<UserHost>,
    /// The name also has an account at a host outside the configured ones.
    elsewhere: bool,
}

impl MySqlBackend {
    /// Connects the admin pool to the server in `config`, checks that the admin login may
    /// create databases and accounts and grant, and records the server version and engine.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that is not `mysql://` or `mariadb://`, and on
    /// `user_hosts` for an empty list or, when it is not set, a server that is not on
    /// loopback or a Unix socket (checked before connecting);
    /// [`Error::PermissionDenied`] when the login lacks CREATE, DROP, CREATE USER or GRANT
    /// OPTION globally, [`Error::Backend`] when the server is unreachable.
    pub async fn connect(config: CustomerServerConfig) -> Result<Self> {
        let options = config.mysql_options()?;
        let user_hosts = user_hosts(config.user_hosts.clone(), &options)?;
        // sqlx would log every statement, and some carry password hashes.
        let options = options.disable_statement_logging();
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
        tracing::debug!(%version, %engine, %current_user, ?user_hosts, "connected for customer databases");
        Ok(Self {
            pool,
            connect_timeout: config.connect_timeout,
            user_hosts,
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

    /// The hosts customer accounts are made at.
    pub fn user_hosts(&self) -> &[UserHost] {
        &self.user_hosts
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

    /// The configured host that is `host` as `mysql.user` holds it.
    fn our_host(&self, host: &str) -> Option<&UserHost> {
        self.user_hosts
            .iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(host))
    }

    /// The accounts with a global privilege, as `'user'@'host'`: never a customer's.
    async fn privileged_accounts(&self) -> Result<HashSet<String>> {
        let grantees: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT CAST(GRANTEE AS CHAR) FROM information_schema.USER_PRIVILEGES \
             WHERE PRIVILEGE_TYPE <> 'USAGE'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(grantees.into_iter().collect())
    }

    /// Where `user` has accounts. `PermissionDenied` for the admin login and for a name with a
    /// global privilege at one of our hosts.
    async fn accounts(&self, user: &DbUserName) -> Result<Accounts> {
        let protected = || {
            Error::denied(format!(
                "{user} is the admin login or has global privileges; it is not managed here"
            ))
        };
        if user.as_str() == self.admin_user {
            return Err(protected());
        }
        let hosts: Vec<String> =
            sqlx::query_scalar("SELECT CAST(Host AS CHAR) FROM mysql.user WHERE User = ?")
                .bind(user.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        let privileged = self.privileged_accounts().await?;
        let mut accounts = Accounts {
            present: Vec::new(),
            elsewhere: false,
        };
        for host in hosts {
            match self.our_host(&host) {
                Some(_) if privileged.contains(&grantee(user.as_str(), &host)) => {
                    return Err(protected());
                }
                Some(ours) => accounts.present.push(ours.clone()),
                None => accounts.elsewhere = true,
            }
        }
        Ok(accounts)
    }

    /// A customer login with an account at one of our hosts at least: enough to take access
    /// away. `NotFound` when it has none.
    async fn existing(&self, user: &DbUserName) -> Result<Accounts> {
        let accounts = self.accounts(user).await?;
        if accounts.present.is_empty() {
            return Err(Error::not_found("database user"));
        }
        Ok(accounts)
    }

    /// A customer login with an account at every one of our hosts: what giving or changing
    /// access needs, so a login never works from some web nodes only. `Conflict` otherwise.
    async fn whole(&self, user: &DbUserName) -> Result<Accounts> {
        let accounts = self.existing(user).await?;
        if accounts.present.len() < self.user_hosts.len() {
            return Err(Error::Conflict(format!(
                "{user} has an account at only some of the configured user hosts; drop it and \
                 create it again"
            )));
        }
        Ok(accounts)
    }

    /// `'user'@'host'`.
    fn account_name(user: &DbUserName, host: &UserHost) -> Result<String> {
        Ok(format!(
            "{}@{}",
            string_literal("database_user", user.as_str())?,
            string_literal(UserHost::FIELD, host.as_str())?
        ))
    }

    /// `'user'@'h1', 'user'@'h2', …` for `hosts`.
    fn account_names(user: &DbUserName, hosts: &[UserHost]) -> Result<String> {
        let names = hosts
            .iter()
            .map(|host| Self::account_name(user, host))
            .collect::<Result<Vec<_>>>()?;
        Ok(names.join(", "))
    }

    /// `IDENTIFIED … '*HASH'` in the engine's syntax: the server gets the hash, never the
    /// password.
    fn identified(&self, password: &Password) -> String {
        let hash = native_password_hash(password.expose());
        match self.engine {
            DbEngine::MariaDb => format!("IDENTIFIED VIA mysql_native_password USING '{hash}'"),
            // MySQL 8.4 loads mysql_native_password only with `mysql_native_password=ON`; 9.x
            // no longer has it. Untested here: no MySQL server exists on the test machines.
            DbEngine::MySql | DbEngine::Postgres => {
                format!("IDENTIFIED WITH mysql_native_password AS '{hash}'")
            }
        }
    }

    /// Ends the sessions of `user` (with `database` as their current database, when given),
    /// unless the name also has an account elsewhere (see [`MySqlBackend`]).
    async fn kill_sessions(
        &self,
        user: &DbUserName,
        database: Option<&DbName>,
        accounts: &Accounts,
    ) -> Result<()> {
        if accounts.elsewhere {
            tracing::warn!(
                %user,
                "sessions not ended: the name also has an account at a host outside user_hosts, \
                 and the process list does not tell which account a session logged in with"
            );
            return Ok(());
        }
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
        tracing::debug!(%user, hosts = ?self.user_hosts, "creating MySQL account");
        // Names only what the caller asked for, never where else the name exists.
        let exists = || Error::AlreadyExists {
            entity: "database user",
            detail: format!("user {user}"),
        };
        let accounts = self.accounts(user).await?;
        if !accounts.present.is_empty() || accounts.elsewhere {
            return Err(exists());
        }
        let identified = self.identified(password);
        let mut created = Vec::new();
        for host in &self.user_hosts {
            let sql = format!(
                "CREATE USER {} {identified}",
                Self::account_name(user, host)?
            );
            if let Err(e) = self.execute(sql).await {
                // Only the accounts this call made are undone: a CANNOT_USER means someone
                // else made this one at the same moment.
                if !created.is_empty() {
                    let undo = format!(
                        "DROP USER IF EXISTS {}",
                        Self::account_names(user, &created)?
                    );
                    if let Err(undo) = self.execute(undo).await {
                        tracing::warn!(%user, error = %undo, "could not undo a partly created login");
                    }
                }
                return Err(match number(&e) {
                    Some(CANNOT_USER) => exists(),
                    _ => password_statement_error(BACKEND, &e),
                });
            }
            created.push(host.clone());
        }
        Ok(())
    }

    async fn drop_user(&self, user: &DbUserName) -> Result<()> {
        tracing::debug!(%user, "dropping MySQL account");
        let accounts = self.existing(user).await?;
        self.execute(format!(
            "DROP USER IF EXISTS {}",
            Self::account_names(user, &accounts.present)?
        ))
        .await
        .map_err(backend)?;
        // Dropping an account does not end its sessions.
        self.kill_sessions(user, None, &accounts).await
    }

    async fn list_users(&self) -> Result<Vec<DbUserName>> {
        let accounts: Vec<(String, String)> = sqlx::query_as(
            "SELECT CAST(User AS CHAR), CAST(Host AS CHAR) FROM mysql.user \
             WHERE User <> '' AND User <> ?",
        )
        .bind(&self.admin_user)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let privileged = self.privileged_accounts().await?;
        let mut customers = BTreeSet::new();
        let mut protected = HashSet::new();
        for (user, host) in accounts {
            if self.our_host(&host).is_none() {
                continue;
            }
            if privileged.contains(&grantee(&user, &host)) {
                protected.insert(user);
            } else {
                customers.insert(user);
            }
        }
        Ok(customers
            .iter()
            .filter(|user| !protected.contains(*user))
            .filter_map(|user| user.parse().ok())
            .collect())
    }

    async fn rotate_password(&self, user: &DbUserName, password: &Password) -> Result<()> {
        tracing::debug!(%user, "rotating MySQL password");
        let accounts = self.whole(user).await?;
        let identified = self.identified(password);
        let specs = self
            .user_hosts
            .iter()
            .map(|host| Ok(format!("{} {identified}", Self::account_name(user, host)?)))
            .collect::<Result<Vec<_>>>()?;
        self.execute(format!("ALTER USER {}", specs.join(", ")))
            .await
            .map_err(|e| match number(&e) {
                Some(CANNOT_USER) => Error::not_found("database user"),
                _ => password_statement_error(BACKEND, &e),
            })?;
        // A live session logged in with the old password; left alone, it could even set a
        // password of its own choosing again.
        self.kill_sessions(user, None, &accounts).await
    }

    async fn grant_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        tracing::debug!(%user, %database, "granting MySQL database");
        self.whole(user).await?;
        self.existing_database(database).await?;
        for host in &self.user_hosts {
            self.execute(format!(
                "GRANT ALL PRIVILEGES ON {}.* TO {}",
                quote_ident(&escape_grant_pattern(database.as_str())),
                Self::account_name(user, host)?
            ))
            .await
            .map_err(backend)?;
        }
        Ok(())
    }

    async fn revoke_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        tracing::debug!(%user, %database, "revoking MySQL database");
        let accounts = self.existing(user).await?;
        self.existing_database(database).await?;
        for host in &accounts.present {
            match self
                .execute(format!(
                    "REVOKE ALL PRIVILEGES ON {}.* FROM {}",
                    quote_ident(&escape_grant_pattern(database.as_str())),
                    Self::account_name(user, host)?
                ))
                .await
            {
                Err(e) if number(&e) == Some(NONEXISTING_GRANT) => {}
                other => other.map_err(backend)?,
            }
        }
        // A session keeps the privileges of its current database until it switches.
        self.kill_sessions(user, Some(database), &accounts).await
    }

    async fn lock_user(&self, user: &DbUserName) -> Result<()> {
        tracing::debug!(%user, "locking MySQL account");
        let accounts = self.existing(user).await?;
        self.execute(format!(
            "ALTER USER {} ACCOUNT LOCK",
            Self::account_names(user, &accounts.present)?
        ))
        .await
        .map_err(|e| match number(&e) {
            Some(CANNOT_USER) => Error::not_found("database user"),
            _ => backend(e),
        })?;
        // The lock refuses new sessions only.
        self.kill_sessions(user, None, &accounts).await
    }

    async fn unlock_user(&self, user: &DbUserName) -> Result<()> {
        tracing::debug!(%user, "unlocking MySQL account");
        self.whole(user).await?;
        self.execute(format!(
            "ALTER USER {} ACCOUNT UNLOCK",
            Self::account_names(user, &self.user_hosts)?
        ))
        .await
        .map_err(|e| match number(&e) {
            Some(CANNOT_USER) => Error::not_found("database user"),
            _ => backend(e),
        })
    }

    /// `MAX_USER_CONNECTIONS`, `MAX_QUERIES_PER_HOUR` and `MAX_CONNECTIONS_PER_HOUR`, and on
    /// MariaDB `MAX_STATEMENT_TIME`. MySQL has no per-account statement time, and neither
    /// engine a per-account temporary-file limit: those two are not applied there.
    ///
    /// The server counts each limit per account, that is per host: a login with accounts at
    /// three hosts may hold `max_connections` sessions through each of them.
    /// `MAX_STATEMENT_TIME` only sets the session's starting `max_statement_time`, which the
    /// session may change itself.
    async fn set_limits(&self, user: &DbUserName, limits: &DatabaseLimits) -> Result<()> {
        tracing::debug!(%user, ?limits, "setting MySQL account limits");
        self.whole(user).await?;
        let mut sql = format!(
            "ALTER USER {} WITH MAX_USER_CONNECTIONS {} MAX_QUERIES_PER_HOUR {} \
             MAX_CONNECTIONS_PER_HOUR {}",
            Self::account_names(user, &self.user_hosts)?,
            limits.max_connections(),
            limits.max_queries_per_hour(),
            limits.max_connections_per_hour(),
        );
        if self.engine == DbEngine::MariaDb {
            sql.push_str(&format!(
                " MAX_STATEMENT_TIME {}",
                limits.statement_timeout_seconds()
            ));
        }
        self.execute(sql).await.map_err(|e| match number(&e) {
            Some(CANNOT_USER) => Error::not_found("database user"),
            _ => backend(e),
        })
    }

    /// MySQL and MariaDB have no `PUBLIC`; what comes closest is the anonymous account
    /// (`''@host`): the server applies its database grants to every login from a matching host
    /// (tested on MariaDB 10.11), and anyone whose name has no account there logs in as it.
    /// Reported are the databases granted to an anonymous account, as the server holds them (a
    /// name or a pattern such as `test\_%`), and `*.*` when one has a global privilege.
    async fn health(&self) -> Result<ServerHealth> {
        let mut open: BTreeSet<String> = sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT CAST(Db AS CHAR) FROM mysql.db WHERE User = ''",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .collect();
        if self
            .privileged_accounts()
            .await?
            .iter()
            .any(|grantee| grantee.starts_with("''@"))
        {
            open.insert("*.*".to_owned());
        }
        Ok(ServerHealth {
            open_to_every_login: open.into_iter().collect(),
        })
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

/// The hosts customer accounts are made at: the configured ones, duplicates dropped, or for a
/// server on this machine the loopback hosts. A remote server without a list is refused: its
/// customers come from the web nodes, which only the operator knows.
fn user_hosts(
    configured: Option<Vec<UserHost>>,
    server: &MySqlConnectOptions,
) -> Result<Vec<UserHost>> {
    match configured {
        Some(hosts) => {
            let mut seen = HashSet::new();
            let hosts: Vec<UserHost> = hosts
                .into_iter()
                .filter(|host| seen.insert(host.clone()))
                .collect();
            if hosts.is_empty() {
                return Err(invalid(USER_HOSTS, "must name at least one host"));
            }
            Ok(hosts)
        }
        None if crate::tls::mysql_on_this_machine(server) => Ok(UserHost::loopback()),
        None => Err(invalid(
            USER_HOSTS,
            format!(
                "must be set for the database server {}, which is not on loopback or a Unix \
                 socket: list the addresses of the web nodes that connect to it",
                server.get_host()
            ),
        )),
    }
}

/// `'user'@'host'` as `information_schema.USER_PRIVILEGES` writes a grantee.
fn grantee(user: &str, host: &str) -> String {
    format!("'{user}'@'{host}'")
}

/// The `mysql_native_password` hash of `password`: `*` and the upper-case hex of
/// SHA1(SHA1(password)), what `PASSWORD()` returns on MariaDB. It is sent instead of the
/// password so no server log holds the password. The hash is still a secret: with it and one
/// recorded login exchange, SHA1(password), enough to log in, can be recovered.
fn native_password_hash(password: &str) -> String {
    let hash = Sha1::digest(Sha1::digest(password.as_bytes()));
    let mut out = String::from("*");
    out.extend(hash.iter().map(|byte| format!("{byte:02X}")));
    out
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
    fn native_password_hash_matches_the_servers() {
        // MariaDB: SELECT PASSWORD('password').
        assert_eq!(
            native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
        let hash = native_password_hash(r"q'u\o;t€");
        assert_eq!(hash.len(), 41);
        assert!(hash.strip_prefix('*').is_some_and(|hex| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        }));
    }

    fn options(url: &str) -> MySqlConnectOptions {
        url.parse().expect("a valid URL")
    }

    #[test]
    fn a_local_server_gets_the_loopback_hosts() {
        for url in [
            "mysql://u:p@127.0.0.1:3306/x",
            "mysql://u:p@127.8.9.1/x",
            "mysql://u:p@localhost/x",
            "mysql://u:p@LocalHost/x",
            "mysql://u:p@[::1]:3306/x",
            "mysql://u:p@db.example/x?socket=/run/mysqld/mysqld.sock",
        ] {
            assert_eq!(
                user_hosts(None, &options(url)).expect(url),
                UserHost::loopback(),
                "{url}"
            );
        }
    }

    #[test]
    fn a_remote_server_needs_a_list() {
        for url in [
            "mysql://u:p@192.0.2.1/x",
            "mysql://u:p@db.example/x",
            "mysql://u:p@[2001:db8::1]/x",
        ] {
            match user_hosts(None, &options(url)) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, USER_HOSTS, "{url}"),
                other => panic!("{url}: expected Invalid, got {other:?}"),
            }
        }
        let host = |h: &str| h.parse::<UserHost>().expect("host");
        let remote = options("mysql://u:p@192.0.2.1/x");
        assert_eq!(
            user_hosts(
                Some(vec![host("10.0.0.5"), host("web1"), host("10.0.0.5")]),
                &remote
            )
            .expect("a list"),
            vec![host("10.0.0.5"), host("web1")]
        );
        assert_eq!(
            user_hosts(Some(vec![UserHost::any()]), &remote).expect("named %"),
            vec![UserHost::any()]
        );
        assert!(matches!(
            user_hosts(Some(Vec::new()), &remote),
            Err(Error::Invalid { .. })
        ));
    }

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
