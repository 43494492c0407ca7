//! Customer databases on one database server.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{Charset, Collation, DbEngine, DbName, DbUserName, Password};

/// How a new database stores text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseOptions {
    /// Character set (`utf8mb4`) or encoding (`UTF8`); the server default when `None`.
    pub charset: Option<Charset>,
    /// Collation (`utf8mb4_unicode_ci`) or locale (`C.UTF-8`); the server default when `None`.
    pub collation: Option<Collation>,
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
    /// Replaces a login's password.
    async fn rotate_password(&self, user: &DbUserName, password: &Password) -> Result<()>;

    /// Grants `user` all privileges on `database`, and on nothing else.
    async fn grant_all(&self, user: &DbUserName, database: &DbName) -> Result<()>;
    /// Takes back what `grant_all` gave.
    async fn revoke_all(&self, user: &DbUserName, database: &DbName) -> Result<()>;

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
