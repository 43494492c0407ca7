//! # hosting-panel
//!
//! The hosting SDK's panel over HTTP: a JSON API at `/api/v1` (with its OpenAPI 3.1 document
//! at `/api/v1/openapi.json`), `/health` and `/ready`, as an axum [`Router`](axum::Router) an
//! embedder mounts in its own app, and the server that runs it (`hosting-panel serve`).
//!
//! ```no_run
//! # async fn example(panel: std::sync::Arc<hosting_core::panel::Panel>) -> std::io::Result<()> {
//! use hosting_panel::{Api, ApiSettings};
//!
//! let api = Api::new(panel, ApiSettings::default());
//! let app = axum::Router::new().nest("/panel", api.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
//! # }
//! ```
//!
//! The HTTP layer decides nothing about who may do what: every request but the public five
//! (login, refresh, health, ready, the document) carries a bearer token that
//! [`hosting_core::panel::Panel::authenticate`] turns into an `Actor`, and each handler calls
//! one `Panel` use case with it. Inputs are parsed into hosting-core's validated types at the
//! boundary, so a value that could break out of a config line never reaches a use case.

// Tests build their fixtures by path in directories no tenant can write.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod app;
pub mod config;
pub mod dto;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod node;
mod read_cache;
mod routes;
pub mod server;

pub use app::{Api, ApiSettings, AppState, DatabaseEndpoint, NodeNotes, openapi};
pub use config::{Config, Flags};
pub use error::{ApiError, ErrorBody};
pub use server::{Prepared, Server, StartError, prepare, start};
