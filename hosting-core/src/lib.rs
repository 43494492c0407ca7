//! # hosting-core
//!
//! The domain of the hosting SDK: validated value types, the panel's records, RBAC, the one
//! [`Error`] type, and the traits (ports) that backends implement: [`PanelStore`],
//! [`DatabaseBackend`], [`WebServer`], [`PhpRuntime`] and [`MetricsStore`].
//!
//! This crate performs no IO and depends on no database, template, HTTP or system crate, so a
//! plugin that implements a trait depends on it alone. The one exception is opt-in: the
//! `system` feature adds [`system::SystemRunner`], the process seam the backends share. With the `conformance` feature,
//! [`conformance`] holds the suites every backend runs, ours and third parties' alike.

// Tests build their fixtures by path in directories no tenant can write.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod accounts;
#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "auth")]
pub mod auth_store;
#[cfg(feature = "system")]
pub mod beneath;
pub mod clock;
pub mod database;
pub mod directives;
pub mod error;
pub mod jobs;
pub mod layout;
pub mod metrics;
pub mod model;
pub mod node;
pub mod page;
#[cfg(feature = "panel")]
pub mod panel;
pub mod php;
#[cfg(feature = "system")]
pub mod process;
pub mod rbac;
pub mod site_files;
pub mod store;
pub mod system;
pub mod tracked;
#[cfg(feature = "system")]
pub mod tree;
pub mod types;
pub mod web;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use accounts::{Isolation, NodeAccounts, UidRange, UnixAccount};
pub use clock::{Clock, ManualClock, SystemClock};
pub use database::{
    DatabaseBackend, DatabaseLimits, DatabaseOptions, DbCapabilities, ServerHealth,
};
pub use directives::{AllowedDirective, ArgRule, DirectivePolicy};
pub use error::{Error, InvalidValue, Result};
pub use layout::{HostLayout, SitePaths};
pub use metrics::MetricsStore;
pub use page::{Page, PageLimit, PageRequest};
pub use php::PhpRuntime;
pub use rbac::{Caller, Operator};
pub use store::{PanelStore, StoreInfo};
pub use system::{Command, CommandOutput, CommandRunner};
pub use tracked::{ChangeTracker, Stamp, TrackedStore};
pub use web::{ApplyReport, Drift, RefusedSite, RenderedFile, WebServer};
