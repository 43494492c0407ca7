//! Web servers. The issue that brings the NGINX, Apache and OpenLiteSpeed renderers refines
//! this trait; its shape (pure render, validate the staged tree with the real binary, atomic
//! apply, reload) is fixed by the apply path in DESIGN.md.

use std::fmt::Debug;
use std::path::Path;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::Website;
use crate::types::{ConfinedPath, WebServerKind};

/// A generated file, relative to the server's configuration root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Where it goes, under the configuration root.
    pub path: ConfinedPath,
    /// Its full contents.
    pub contents: String,
}

/// A web server that serves websites from generated configuration.
///
/// # Contract
/// - `render_site` is pure and deterministic: the same site gives the same bytes.
/// - `validate` runs the real server's own check on a whole staged tree.
/// - `apply` is atomic: when it fails, the live tree is byte-identical to before and the
///   running server was not reloaded.
#[async_trait]
pub trait WebServer: Debug + Send + Sync {
    /// Which server this is.
    fn kind(&self) -> WebServerKind;
    /// The files that make up `site`'s virtual host.
    fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>>;
    /// Checks a staged configuration tree with the real server binary.
    async fn validate(&self, staged_root: &Path) -> Result<()>;
    /// Renders, stages, validates, swaps and reloads the given sites in one batch.
    async fn apply(&self, sites: &[Website]) -> Result<()>;
    /// Removes every file of the given sites and reloads.
    async fn remove(&self, sites: &[Website]) -> Result<()>;
    /// Asks the running server to reload gracefully.
    async fn reload(&self) -> Result<()>;
}
