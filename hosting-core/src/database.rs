//! Customer databases on one database server.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{InvalidValue, Result};
use crate::types::{Charset, Collation, DbEngine, DbName, DbUserName, Password};

/// How a new database stores text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseOptions {
    /// Character set (`utf8mb4`) or encoding (`UTF8`); the server default when `None`.
    pub charset: Option<Charset>,
    /// Collation (`utf8mb4_unicode_ci`) or locale (`C.UTF-8`); the server default when `None`.
    pub collation: Option<Collation>,
}

/// Limits on one customer login, so one tenant cannot starve the server for the others. They are
/// plan settings: a tenant's [`Quotas`](crate::model::Quotas) carry them and every login of the
/// tenant gets them. An engine applies those it has (see each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DatabaseLimitsInput")]
pub struct DatabaseLimits {
    max_connections: u32,
    statement_timeout_seconds: u32,
    temp_file_limit_mb: u32,
    max_queries_per_hour: u32,
    max_connections_per_hour: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DatabaseLimitsInput {
    max_connections: u32,
    statement_timeout_seconds: u32,
    temp_file_limit_mb: u32,
    max_queries_per_hour: u32,
    max_connections_per_hour: u32,
}

impl Default for DatabaseLimitsInput {
    fn default() -> Self {
        let d = DatabaseLimits::default();
        Self {
            max_connections: d.max_connections,
            statement_timeout_seconds: d.statement_timeout_seconds,
            temp_file_limit_mb: d.temp_file_limit_mb,
            max_queries_per_hour: d.max_queries_per_hour,
            max_connections_per_hour: d.max_connections_per_hour,
        }
    }
}

impl TryFrom<DatabaseLimitsInput> for DatabaseLimits {
    type Error = InvalidValue;

    fn try_from(i: DatabaseLimitsInput) -> std::result::Result<Self, InvalidValue> {
        Self::new(
            i.max_connections,
            i.statement_timeout_seconds,
            i.temp_file_limit_mb,
            i.max_queries_per_hour,
            i.max_connections_per_hour,
        )
    }
}

impl DatabaseLimits {
    /// Most sessions one login may hold at once, by default: a tenant filling its own slots
    /// leaves the server's others free.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 15;
    /// Longest statement by default, in seconds.
    pub const DEFAULT_STATEMENT_TIMEOUT_SECONDS: u32 = 300;
    /// Most temporary-file space per session by default, in MiB (PostgreSQL).
    pub const DEFAULT_TEMP_FILE_LIMIT_MB: u32 = 1024;

    /// Checked constructor. `max_connections` is 1..=1000, `statement_timeout_seconds`
    /// 1..=86400, `temp_file_limit_mb` 1..=1048576; the hourly limits are 0 (none) or more.
    pub fn new(
        max_connections: u32,
        statement_timeout_seconds: u32,
        temp_file_limit_mb: u32,
        max_queries_per_hour: u32,
        max_connections_per_hour: u32,
    ) -> std::result::Result<Self, InvalidValue> {
        let field = |name: &str| format!("database_limits.{name}");
        if !(1..=1000).contains(&max_connections) {
            return Err(InvalidValue::new(
                field("max_connections"),
                "must be 1 to 1000",
            ));
        }
        if !(1..=86_400).contains(&statement_timeout_seconds) {
            return Err(InvalidValue::new(
                field("statement_timeout_seconds"),
                "must be 1 to 86400",
            ));
        }
        if !(1..=1_048_576).contains(&temp_file_limit_mb) {
            return Err(InvalidValue::new(
                field("temp_file_limit_mb"),
                "must be 1 to 1048576",
            ));
        }
        Ok(Self {
            max_connections,
            statement_timeout_seconds,
            temp_file_limit_mb,
            max_queries_per_hour,
            max_connections_per_hour,
        })
    }

    /// Most sessions at once (PostgreSQL `CONNECTION LIMIT`, MySQL/MariaDB
    /// `MAX_USER_CONNECTIONS`).
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }
    /// Longest statement in seconds (PostgreSQL `statement_timeout`, MariaDB
    /// `MAX_STATEMENT_TIME`; MySQL has no per-account setting).
    pub fn statement_timeout_seconds(&self) -> u32 {
        self.statement_timeout_seconds
    }
    /// Most temporary-file space per session in MiB (PostgreSQL `temp_file_limit`; MySQL and
    /// MariaDB have no per-account setting).
    pub fn temp_file_limit_mb(&self) -> u32 {
        self.temp_file_limit_mb
    }
    /// Most statements per hour, 0 for none (MySQL/MariaDB `MAX_QUERIES_PER_HOUR`).
    pub fn max_queries_per_hour(&self) -> u32 {
        self.max_queries_per_hour
    }
    /// Most new sessions per hour, 0 for none (MySQL/MariaDB `MAX_CONNECTIONS_PER_HOUR`).
    pub fn max_connections_per_hour(&self) -> u32 {
        self.max_connections_per_hour
    }
}

impl Default for DatabaseLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            statement_timeout_seconds: Self::DEFAULT_STATEMENT_TIMEOUT_SECONDS,
            temp_file_limit_mb: Self::DEFAULT_TEMP_FILE_LIMIT_MB,
            max_queries_per_hour: 0,
            max_connections_per_hour: 0,
        }
    }
}

/// What a server's health check found that an operator should fix.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServerHealth {
    /// Databases the panel did not create that every login may connect to (PostgreSQL's
    /// `CONNECT` granted to `PUBLIC`); a customer could read their catalogs or store data there.
    pub open_to_every_login: Vec<String>,
}

/// What a backend can do beyond the required operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DbCapabilities {
    /// `dump` and `restore` are implemented.
    pub dump_restore: bool,
}

/// Creates, isolates and removes customer databases and their logins on one server.
///
/// # Contract
/// - Identifiers are validated types and quoted by the engine's rules; passwords are bound or
///   escaped, never interpolated raw.
/// - `grant_all` gives a user every privilege on its own database and nothing on any other;
///   a new database is not reachable by any customer login until granted.
/// - Creating what exists is [`Error::AlreadyExists`](crate::Error::AlreadyExists); dropping,
///   granting on or measuring what does not exist is [`Error::NotFound`](crate::Error::NotFound).
/// - After `drop_user` the login is refused; after `rotate_password` only the new password works.
///   Both, and `lock_user`, end the login's live sessions.
/// - A password never reaches the server in clear text: the backend sends the engine's verifier
///   (PostgreSQL SCRAM-SHA-256, MySQL/MariaDB password hash), so no server log can hold it.
/// - A backend never manages the login it connects with, nor system databases.
///
/// `hosting_core::conformance::database` checks all of this with real logins.
#[async_trait]
pub trait DatabaseBackend: Debug + Send + Sync {
    /// The engine behind this backend (MariaDB and MySQL are told apart by the server).
    fn engine(&self) -> DbEngine;
    /// Optional capabilities.
    fn capabilities(&self) -> DbCapabilities;

    /// Creates an empty database.
    async fn create_database(&self, name: &DbName, options: &DatabaseOptions) -> Result<()>;
    /// Drops a database and everything in it.
    async fn drop_database(&self, name: &DbName) -> Result<()>;
    /// The customer databases on the server (system databases excluded), sorted.
    async fn list_databases(&self) -> Result<Vec<DbName>>;
    /// Bytes the database takes on disk.
    async fn database_size(&self, name: &DbName) -> Result<u64>;

    /// Creates a login with no privileges.
    async fn create_user(&self, user: &DbUserName, password: &Password) -> Result<()>;
    /// Drops a login; its sessions can no longer log in.
    async fn drop_user(&self, user: &DbUserName) -> Result<()>;
    /// The customer logins on the server, sorted.
    async fn list_users(&self) -> Result<Vec<DbUserName>>;
    /// Replaces a login's password and ends its live sessions, which logged in with the old one.
    async fn rotate_password(&self, user: &DbUserName, password: &Password) -> Result<()>;
    /// Refuses the login's new sessions and ends its live ones (PostgreSQL `NOLOGIN`,
    /// MySQL/MariaDB `ACCOUNT LOCK`). Locking a locked login is not an error.
    async fn lock_user(&self, user: &DbUserName) -> Result<()>;
    /// Lets a locked login in again. Unlocking an unlocked login is not an error.
    async fn unlock_user(&self, user: &DbUserName) -> Result<()>;
    /// Applies `limits` to the login; later sessions get them.
    async fn set_limits(&self, user: &DbUserName, limits: &DatabaseLimits) -> Result<()>;

    /// Grants `user` all privileges on `database`, and on nothing else.
    async fn grant_all(&self, user: &DbUserName, database: &DbName) -> Result<()>;
    /// Takes back what `grant_all` gave.
    async fn revoke_all(&self, user: &DbUserName, database: &DbName) -> Result<()>;

    /// What the server allows that the operator should fix, found without changing anything.
    async fn health(&self) -> Result<ServerHealth>;

    /// Logs in as `user` over the network and opens `database`: `Ok(true)` when the server lets
    /// it in, `Ok(false)` when it refuses. Panels use it for "test connection"; the
    /// conformance suite uses it to prove isolation.
    async fn can_connect(
        &self,
        user: &DbUserName,
        password: &Password,
        database: &DbName,
    ) -> Result<bool>;
}
