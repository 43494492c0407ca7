//! Customer databases and logins on a PostgreSQL server.

use std::time::Duration;

use async_trait::async_trait;
use hosting_core::types::{DbEngine, DbName, DbUserName, Password};
use hosting_core::{
    DatabaseBackend, DatabaseLimits, DatabaseOptions, DbCapabilities, Error, Result, ServerHealth,
};
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, ConnectOptions, Postgres};

use super::{CustomerServerConfig, invalid, password_statement_error, scram, single_connection};

const BACKEND: &str = "postgres";

/// Refusals a customer probe reports as `Ok(false)`: `invalid_password`,
/// `invalid_authorization_specification` (unknown role, `NOLOGIN`), `insufficient_privilege`
/// (no `CONNECT` on the database) and `invalid_catalog_name` (no such database).
const REFUSED: &[&str] = &["28P01", "28000", "42501", "3D000"];
/// `duplicate_database`.
const DUPLICATE_DATABASE: &str = "42P04";
/// `duplicate_object`, raised for an existing role.
const DUPLICATE_OBJECT: &str = "42710";
/// `invalid_catalog_name`: the database does not exist.
const UNDEFINED_DATABASE: &str = "3D000";
/// `undefined_object`, raised for a missing role.
const UNDEFINED_OBJECT: &str = "42704";
/// What `CREATE DATABASE` raises for options the server cannot use: an encoding that does
/// not fit the locale (`invalid_parameter_value`), an unknown locale (`wrong_object_type`) or an
/// unknown encoding (`undefined_object`).
const BAD_OPTIONS: &[&str] = &["22023", "42809", "42704"];
/// `dependent_objects_still_exist`.
const DEPENDENT_OBJECTS: &str = "2BP01";

/// Roles that are not customers: anything with more power than a plain login, and the admin.
const PROTECTED_ROLE: &str = "(rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication \
                              OR rolbypassrls OR rolname = current_user)";

/// Databases the server's `PUBLIC` (every login) may connect to: no ACL means the default,
/// which grants `CONNECT` to `PUBLIC`; grantee 0 in an ACL is `PUBLIC`.
const OPEN_TO_PUBLIC: &str = "(d.datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) a \
                              WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT'))";

/// The advisory lock that serializes closing the system databases, so backends registering
/// at the same moment do not update the same catalog rows together.
const CLOSE_LOCK: i64 = 0x686f_7374_696e_6701;

/// How often, and how long apart, `terminate_sessions` looks whether the sessions ended.
const SESSION_END_POLLS: u32 = 100;
const SESSION_END_POLL: Duration = Duration::from_millis(50);

/// A [`DatabaseBackend`] on PostgreSQL.
///
/// Each customer database is created from `template0` with `CONNECT` revoked from `PUBLIC`, so
/// only the logins granted on it (and the admin) can open it; each customer login is a plain
/// `LOGIN` role with no other attribute. Passwords reach the server only as SCRAM-SHA-256
/// verifiers computed here.
///
/// Limits ([`DatabaseBackend::set_limits`]): `CONNECTION LIMIT` and `temp_file_limit` are out
/// of the customer's reach, but `statement_timeout` is only the default of its sessions: a
/// customer may lower or raise it for its own session with `SET`, so it guards against runaway
/// statements, not against a customer who wants long ones.
#[derive(Debug)]
pub struct PostgresBackend {
    pool: PgPool,
    connect_timeout: Duration,
    admin_database: String,
    admin_is_superuser: bool,
    version: String,
}

/// What a role name stands for on the server.
enum Role {
    Missing,
    Customer,
    Protected,
}

impl PostgresBackend {
    /// Connects the admin pool to the server in `config`, checks that the admin login may do
    /// everything the backend needs, records the server version, and closes the `postgres` and
    /// `template1` databases to every login but the admin (`REVOKE CONNECT … FROM PUBLIC`, logged
    /// at info), so customers cannot read their catalogs or store data there.
    ///
    /// A non-superuser admin needs CREATEDB and CREATEROLE, membership in `pg_signal_backend`
    /// (to end customer sessions), `SET` on the parameter `temp_file_limit` (PostgreSQL 15+),
    /// and, while the system databases are still open, ownership of them.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that is not `postgres://` or `postgresql://`,
    /// [`Error::PermissionDenied`] when the login lacks one of the rights above (the message
    /// names the statement a superuser runs to grant it),
    /// [`Error::Backend`] when the server is unreachable.
    pub async fn connect(config: CustomerServerConfig) -> Result<Self> {
        let options = config
            .postgres_options()?
            // sqlx would log every statement, and some carry passwords.
            .disable_statement_logging()
            // Passwords are escaped for this setting; the server must not read backslashes.
            .options([("standard_conforming_strings", "on")]);
        let pool = config
            .pool_options::<Postgres>()
            .connect_with(options)
            .await
            .map_err(backend)?;
        let (version, admin_role, admin_database, conforming, superuser, may_create, may_signal): (
            String,
            String,
            String,
            String,
            bool,
            bool,
            bool,
        ) = sqlx::query_as(
            "SELECT version(), current_user::text, current_database()::text, \
                    current_setting('standard_conforming_strings'), rolsuper, \
                    rolsuper OR (rolcreaterole AND rolcreatedb), \
                    rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'USAGE') \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&pool)
        .await
        .map_err(backend)?;
        if conforming != "on" {
            return Err(Error::backend(
                BACKEND,
                "the server ignored standard_conforming_strings = on",
            ));
        }
        if !may_create {
            return Err(Error::denied(format!(
                "PostgreSQL role {admin_role} needs SUPERUSER or CREATEROLE and CREATEDB"
            )));
        }
        let admin = quote_ident(&admin_role);
        if !may_signal {
            return Err(Error::denied(format!(
                "PostgreSQL role {admin_role} may not end customer sessions (after a password \
                 rotation, a lock or a deletion); as a superuser run: \
                 GRANT pg_signal_backend TO {admin}"
            )));
        }
        if !superuser && !may_set_temp_file_limit(&pool).await? {
            return Err(Error::denied(format!(
                "PostgreSQL role {admin_role} may not set temp_file_limit on customer logins; \
                 on PostgreSQL 15 or later, as a superuser run: \
                 GRANT SET ON PARAMETER temp_file_limit TO {admin} \
                 (before 15, only a superuser admin can)"
            )));
        }
        close_system_databases(&pool, &admin_role).await?;
        tracing::debug!(%version, %admin_role, "connected to PostgreSQL for customer databases");
        Ok(Self {
            pool,
            connect_timeout: config.connect_timeout,
            admin_database,
            admin_is_superuser: superuser,
            version,
        })
    }

    /// The server's `version()` string, e.g. `PostgreSQL 15.18 (Debian …) on x86_64…`.
    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// Closes the admin pool; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn database_exists(&self, name: &str) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn role(&self, user: &DbUserName) -> Result<Role> {
        let protected: Option<bool> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {PROTECTED_ROLE} FROM pg_roles WHERE rolname = $1"
        )))
        .bind(user.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(match protected {
            None => Role::Missing,
            Some(true) => Role::Protected,
            Some(false) => Role::Customer,
        })
    }

    /// `Ok` for an existing customer login; `NotFound` or `PermissionDenied` otherwise.
    async fn customer(&self, user: &DbUserName) -> Result<()> {
        match self.role(user).await? {
            Role::Customer => Ok(()),
            Role::Missing => Err(Error::not_found("database user")),
            Role::Protected => Err(Error::denied(format!(
                "{user} is the admin login or has admin attributes; it is not managed here"
            ))),
        }
    }

    async fn existing_database(&self, name: &DbName) -> Result<()> {
        if self.database_exists(name.as_str()).await? {
            Ok(())
        } else {
            Err(Error::not_found("database"))
        }
    }

    /// Runs `sql` (several statements allowed, run as one transaction) in `database` on a new
    /// admin session.
    async fn in_database(&self, database: &str, sql: String) -> Result<()> {
        let options = (*self.pool.connect_options()).clone().database(database);
        let pool = single_connection::<Postgres>(options, self.connect_timeout)
            .await
            .map_err(backend)?;
        let result = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await;
        pool.close().await;
        result.map(drop).map_err(backend)
    }

    /// Ends the sessions of `user` (in `database` only, when given) and waits until they are
    /// gone, so a caller's next step never meets one. Sessions opened meanwhile (with a new
    /// password) are left alone.
    async fn terminate_sessions(&self, user: &DbUserName, database: Option<&DbName>) -> Result<()> {
        let signalled: Vec<(i32, bool)> = sqlx::query_as(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = $1 AND ($2::text IS NULL OR datname = $2) \
               AND pid <> pg_backend_pid()",
        )
        .bind(user.as_str())
        .bind(database.map(DbName::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let pids: Vec<i32> = signalled.into_iter().map(|(pid, _)| pid).collect();
        if pids.is_empty() {
            return Ok(());
        }
        for _ in 0..SESSION_END_POLLS {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                    .bind(&pids)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend)?;
            if left == 0 {
                return Ok(());
            }
            tokio::time::sleep(SESSION_END_POLL).await;
        }
        Err(Error::backend(
            BACKEND,
            format!("sessions of {user} were told to end but were still there after 5 seconds"),
        ))
    }

    /// Runs `ALTER ROLE` on a customer login, then ends its sessions when `end_sessions`.
    async fn alter_customer(
        &self,
        user: &DbUserName,
        change: &str,
        end_sessions: bool,
    ) -> Result<()> {
        self.customer(user).await?;
        self.execute(format!(
            "ALTER ROLE {} {change}",
            quote_ident(user.as_str())
        ))
        .await
        .map_err(backend)?;
        if end_sessions {
            self.terminate_sessions(user, None).await?;
        }
        Ok(())
    }

    /// Runs a statement that carries a password. With a superuser admin the server is told not
    /// to log it, even when it fails. Callers turn errors into [`password_statement_error`]s.
    async fn run_with_password(&self, sql: String) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.admin_is_superuser {
            sqlx::raw_sql(
                "SET LOCAL log_statement = 'none'; \
                 SET LOCAL log_min_error_statement = 'panic'; \
                 SET LOCAL log_min_duration_statement = -1",
            )
            .execute(&mut *tx)
            .await?;
        }
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        tx.commit().await
    }

    async fn execute(&self, sql: String) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map(drop)
    }
}

#[async_trait]
impl DatabaseBackend for PostgresBackend {
    fn engine(&self) -> DbEngine {
        DbEngine::Postgres
    }

    fn capabilities(&self) -> DbCapabilities {
        DbCapabilities::default()
    }

    async fn create_database(&self, name: &DbName, options: &DatabaseOptions) -> Result<()> {
        tracing::debug!(database = %name, "creating PostgreSQL database");
        let exists = || Error::AlreadyExists {
            entity: "database",
            detail: format!("database {name}"),
        };
        if self.database_exists(name.as_str()).await? {
            return Err(exists());
        }
        let ident = quote_ident(name.as_str());
        let mut sql = format!("CREATE DATABASE {ident} TEMPLATE template0");
        if let Some(charset) = &options.charset {
            sql.push_str(" ENCODING ");
            sql.push_str(&string_literal("charset", charset.as_str())?);
        }
        if let Some(collation) = &options.collation {
            let locale = string_literal("collation", collation.as_str())?;
            sql.push_str(&format!(" LC_COLLATE {locale} LC_CTYPE {locale}"));
        }
        self.execute(sql).await.map_err(|e| match code(&e) {
            Some(c) if c == DUPLICATE_DATABASE => exists(),
            Some(c) if BAD_OPTIONS.contains(&c.as_str()) => invalid(
                "database_options",
                "the server does not know this encoding or locale, or they do not fit together",
            ),
            _ => backend(e),
        })?;
        // Nobody but the owner may connect until a grant; sessions that slipped in between
        // the two statements are ended.
        let lock_down = async {
            self.execute(format!("REVOKE ALL ON DATABASE {ident} FROM PUBLIC"))
                .await?;
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map(drop)
        };
        if let Err(e) = lock_down.await {
            // A database open to every login must not stay behind.
            let _ = self
                .execute(format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"))
                .await;
            return Err(backend(e));
        }
        Ok(())
    }

    async fn drop_database(&self, name: &DbName) -> Result<()> {
        tracing::debug!(database = %name, "dropping PostgreSQL database");
        if name.as_str() == self.admin_database {
            return Err(Error::denied(format!(
                "{name} is the admin login's own database"
            )));
        }
        self.existing_database(name).await?;
        self.execute(format!(
            "DROP DATABASE {} WITH (FORCE)",
            quote_ident(name.as_str())
        ))
        .await
        .map_err(|e| match code(&e).as_deref() {
            Some(UNDEFINED_DATABASE) => Error::not_found("database"),
            _ => backend(e),
        })
    }

    async fn list_databases(&self) -> Result<Vec<DbName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database \
             WHERE NOT datistemplate AND datname <> 'postgres' AND datname <> current_database()",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut names: Vec<DbName> = names.iter().filter_map(|n| n.parse().ok()).collect();
        names.sort();
        Ok(names)
    }

    async fn database_size(&self, name: &DbName) -> Result<u64> {
        let size: Option<i64> =
            sqlx::query_scalar("SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1")
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| match code(&e).as_deref() {
                    Some(UNDEFINED_DATABASE) => Error::not_found("database"),
                    _ => backend(e),
                })?;
        let size = size.ok_or_else(|| Error::not_found("database"))?;
        u64::try_from(size).map_err(|_| Error::backend(BACKEND, "pg_database_size was negative"))
    }

    async fn create_user(&self, user: &DbUserName, password: &Password) -> Result<()> {
        tracing::debug!(%user, "creating PostgreSQL login");
        let exists = || Error::AlreadyExists {
            entity: "database user",
            detail: format!("user {user}"),
        };
        if !matches!(self.role(user).await?, Role::Missing) {
            return Err(exists());
        }
        let sql = format!(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
             INHERIT PASSWORD {}",
            quote_ident(user.as_str()),
            string_literal("password", &scram::verifier(password.expose())?)?
        );
        self.run_with_password(sql).await.map_err(|e| {
            // The existence check can race with a concurrent create.
            if code(&e).as_deref() == Some(DUPLICATE_OBJECT) {
                exists()
            } else {
                password_statement_error(BACKEND, &e)
            }
        })
    }

    async fn drop_user(&self, user: &DbUserName) -> Result<()> {
        tracing::debug!(%user, "dropping PostgreSQL login");
        self.customer(user).await?;
        let role = quote_ident(user.as_str());
        // No new sessions, then none left.
        self.execute(format!("ALTER ROLE {role} NOLOGIN"))
            .await
            .map_err(backend)?;
        self.terminate_sessions(user, None).await?;
        // Every database where the role owns objects or holds privileges (database grants are
        // recorded as shared dependencies on the database itself).
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT d.datname::text FROM pg_shdepend s \
             JOIN pg_database d ON d.oid = CASE \
                 WHEN s.dbid = 0 AND s.classid = 'pg_database'::regclass THEN s.objid \
                 ELSE s.dbid END \
             WHERE s.refclassid = 'pg_authid'::regclass \
               AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) \
               AND d.datallowconn",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        // Its objects are dropped, never handed to the admin: a SECURITY DEFINER function of
        // the customer's that the (superuser) admin owned would run as the admin.
        if !databases.is_empty() && !self.admin_is_superuser {
            // DROP OWNED needs the role's privileges; the membership goes with the role.
            self.execute(format!("GRANT {role} TO CURRENT_USER"))
                .await
                .map_err(backend)?;
        }
        for database in &databases {
            self.in_database(database, format!("DROP OWNED BY {role}"))
                .await?;
        }
        self.execute(format!("DROP ROLE {role}"))
            .await
            .map_err(|e| match code(&e).as_deref() {
                Some(UNDEFINED_OBJECT) => Error::not_found("database user"),
                Some(DEPENDENT_OBJECTS) => Error::Conflict(format!(
                    "{user} still owns objects in a database that does not allow connections"
                )),
                _ => backend(e),
            })
    }

    async fn list_users(&self) -> Result<Vec<DbUserName>> {
        let names: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT rolname::text FROM pg_roles WHERE rolcanlogin AND NOT {PROTECTED_ROLE}"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut names: Vec<DbUserName> = names.iter().filter_map(|n| n.parse().ok()).collect();
        names.sort();
        Ok(names)
    }

    async fn rotate_password(&self, user: &DbUserName, password: &Password) -> Result<()> {
        tracing::debug!(%user, "rotating PostgreSQL password");
        self.customer(user).await?;
        self.run_with_password(format!(
            "ALTER ROLE {} PASSWORD {}",
            quote_ident(user.as_str()),
            string_literal("password", &scram::verifier(password.expose())?)?
        ))
        .await
        .map_err(|e| password_statement_error(BACKEND, &e))?;
        // A session opened with the old password could otherwise go on, and set its own.
        self.terminate_sessions(user, None).await
    }

    async fn grant_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        tracing::debug!(%user, %database, "granting PostgreSQL database");
        self.customer(user).await?;
        self.existing_database(database).await?;
        let role = quote_ident(user.as_str());
        self.execute(format!(
            "GRANT ALL PRIVILEGES ON DATABASE {} TO {role}",
            quote_ident(database.as_str())
        ))
        .await
        .map_err(backend)?;
        // Since PostgreSQL 15, PUBLIC may no longer create in schema public.
        self.in_database(
            database.as_str(),
            format!(
                "GRANT ALL ON SCHEMA public TO {role}; \
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; \
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"
            ),
        )
        .await
    }

    async fn revoke_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        tracing::debug!(%user, %database, "revoking PostgreSQL database");
        self.customer(user).await?;
        self.existing_database(database).await?;
        let role = quote_ident(user.as_str());
        self.execute(format!(
            "REVOKE ALL PRIVILEGES ON DATABASE {} FROM {role}",
            quote_ident(database.as_str())
        ))
        .await
        .map_err(backend)?;
        // CONNECT is only checked at login: end the sessions already inside.
        self.terminate_sessions(user, Some(database)).await?;
        // What it created there stays its own: without CONNECT it cannot use it, and handing it
        // to the admin would run its SECURITY DEFINER functions as the admin once access
        // returns. `DROP OWNED` would lose the customer's data.
        self.in_database(
            database.as_str(),
            format!(
                "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}; \
                 REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}; \
                 REVOKE ALL ON SCHEMA public FROM {role}"
            ),
        )
        .await
    }

    async fn lock_user(&self, user: &DbUserName) -> Result<()> {
        tracing::debug!(%user, "locking PostgreSQL login");
        // No new sessions first, so none slips in between.
        self.alter_customer(user, "NOLOGIN", true).await
    }

    async fn unlock_user(&self, user: &DbUserName) -> Result<()> {
        tracing::debug!(%user, "unlocking PostgreSQL login");
        self.alter_customer(user, "LOGIN", false).await
    }

    /// `CONNECTION LIMIT`, and `statement_timeout` and `temp_file_limit` as the role's
    /// defaults. The customer cannot change the first and the last (`temp_file_limit` needs a
    /// superuser or `SET` on it), but may `SET statement_timeout` in its own session, higher too.
    async fn set_limits(&self, user: &DbUserName, limits: &DatabaseLimits) -> Result<()> {
        tracing::debug!(%user, ?limits, "setting PostgreSQL login limits");
        let role = quote_ident(user.as_str());
        self.customer(user).await?;
        // Numbers only: nothing here comes from text.
        self.execute(format!(
            "ALTER ROLE {role} CONNECTION LIMIT {}; \
             ALTER ROLE {role} SET statement_timeout = '{}s'; \
             ALTER ROLE {role} SET temp_file_limit = '{}MB'",
            limits.max_connections(),
            limits.statement_timeout_seconds(),
            limits.temp_file_limit_mb()
        ))
        .await
        .map_err(backend)
    }

    async fn health(&self) -> Result<ServerHealth> {
        let mut open: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT d.datname::text FROM pg_database d \
             WHERE d.datallowconn AND d.datname <> 'template0' AND {OPEN_TO_PUBLIC}"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        open.sort();
        Ok(ServerHealth {
            open_to_every_login: open,
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
        let pool = match single_connection::<Postgres>(options, self.connect_timeout).await {
            Ok(pool) => pool,
            Err(e) if code(&e).is_some_and(|c| REFUSED.contains(&c.as_str())) => {
                return Ok(false);
            }
            Err(e) => return Err(backend(e)),
        };
        let probe = sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&pool)
            .await;
        pool.close().await;
        probe.map(|one| one == 1).map_err(backend)
    }
}

/// Whether the (non-superuser) admin may set `temp_file_limit`, a superuser-only parameter:
/// PostgreSQL 15 added `GRANT SET ON PARAMETER`; before it, nobody but a superuser may.
async fn may_set_temp_file_limit(pool: &PgPool) -> Result<bool> {
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    if version < 150_000 {
        return Ok(false);
    }
    sqlx::query_scalar("SELECT has_parameter_privilege(current_user, 'temp_file_limit', 'SET')")
        .fetch_one(pool)
        .await
        .map_err(backend)
}

/// Revokes `CONNECT` from `PUBLIC` on `postgres` and `template1` where it is still granted,
/// granting it to the admin first on the database the admin itself uses. Refuses, naming the
/// statements a superuser must run, when the admin is neither superuser nor owner there.
async fn close_system_databases(pool: &PgPool, admin_role: &str) -> Result<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLOSE_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let open: Vec<(String, bool, bool)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT d.datname::text, d.datname = current_database(), \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                OR pg_has_role(current_user, d.datdba, 'USAGE') \
         FROM pg_database d \
         WHERE d.datname IN ('postgres', 'template1') AND {OPEN_TO_PUBLIC} \
         ORDER BY d.datname"
    )))
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    if open.is_empty() {
        return Ok(());
    }
    let admin = quote_ident(admin_role);
    let sql: Vec<String> = open
        .iter()
        .map(|(name, is_admin_database, _)| {
            let db = quote_ident(name);
            let keep_admin = if *is_admin_database {
                format!("GRANT CONNECT ON DATABASE {db} TO {admin}; ")
            } else {
                String::new()
            };
            format!("{keep_admin}REVOKE CONNECT ON DATABASE {db} FROM PUBLIC;")
        })
        .collect();
    let names: Vec<&str> = open.iter().map(|(name, _, _)| name.as_str()).collect();
    if open.iter().any(|(_, _, may)| !may) {
        return Err(Error::denied(format!(
            "every PostgreSQL login may connect to {}, and role {admin_role} may not change \
             that (it is neither superuser nor owner); as a superuser run: {}",
            names.join(" and "),
            sql.join(" ")
        )));
    }
    sqlx::raw_sql(AssertSqlSafe(sql.join(" ")))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    tracing::info!(
        databases = %names.join(", "),
        "revoked CONNECT from PUBLIC: customer logins can no longer open these databases"
    );
    Ok(())
}

fn backend(err: sqlx::Error) -> Error {
    Error::backend(BACKEND, err)
}

/// The SQLSTATE of a database error.
fn code(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// `"name"`, with `"` doubled: a PostgreSQL identifier that means exactly `name`.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'value'`, with `'` doubled: a PostgreSQL string constant that means exactly `value` when
/// `standard_conforming_strings` is on (the backend sets and checks it), where backslashes are
/// ordinary characters. PostgreSQL text cannot hold NUL, so that is rejected.
fn string_literal(field: &'static str, value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(invalid(field, "must not contain a NUL character"));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_their_quotes() {
        assert_eq!(quote_ident("shop"), "\"shop\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("\"; DROP ROLE x; --"),
            "\"\"\"; DROP ROLE x; --\""
        );
    }

    #[test]
    fn string_literals_double_quotes_and_keep_backslashes() {
        let lit = |s| string_literal("password", s).expect("no NUL");
        assert_eq!(lit("plain-pass"), "'plain-pass'");
        assert_eq!(lit("x'; DROP DATABASE a; --"), "'x''; DROP DATABASE a; --'");
        assert_eq!(lit(r"q'u\o;t\'e"), r"'q''u\o;t\''e'");
        assert_eq!(lit("$$dollar$$"), "'$$dollar$$'");
        assert_eq!(lit("''"), "''''''");
    }

    #[test]
    fn string_literals_reject_nul() {
        assert!(matches!(
            string_literal("password", "a\0b"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn every_quote_in_a_literal_is_paired() {
        for raw in ["'", "a'b'c", "'''", r"\'", "x'; --"] {
            let lit = string_literal("password", raw).expect("no NUL");
            let inner = &lit[1..lit.len() - 1];
            assert_eq!(inner.replace("''", ""), raw.replace('\'', ""), "{raw:?}");
        }
    }
}
