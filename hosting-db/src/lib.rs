//! # hosting-db
//!
//! The SQL side of the hosting SDK, on sqlx:
//! - [`SqlStore`]: the [`PanelStore`](hosting_core::PanelStore) on SQLite (the embedded
//!   default), PostgreSQL and MySQL/MariaDB, chosen by URL scheme, with per-dialect migrations
//!   applied on open; on PostgreSQL a [`ChangeFeed`] hears every process's commits.
//! - [`customer`]: [`DatabaseBackend`](hosting_core::DatabaseBackend)s that create and isolate
//!   customer databases on PostgreSQL and MySQL/MariaDB servers.
//!
//! Connections to a database server off this machine require verified TLS unless the URL
//! says otherwise (see the `tls` module); a URL that asks for cleartext to one is refused.
//!
//! Depends on hosting-core only; no sqlx type crosses a public trait.

pub mod customer;
mod errors;
mod store;
mod tls;

pub use store::{ChangeFeed, Following, SqlStore, StoreOptions};
