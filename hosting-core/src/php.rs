//! PHP runtimes. The issue that brings PHP-FPM pools refines this trait; one pool per site,
//! named from the site id, and a validate-before-reload apply are fixed by DESIGN.md.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::error::Result;
use crate::model::Website;
use crate::types::{PhpExtension, PhpVersion};
use crate::web::RenderedFile;

/// A PHP installation found on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhpInstallation {
    /// The version the binary reports (asked from it, not guessed from the path).
    pub version: PhpVersion,
    /// The FPM binary.
    pub fpm_binary: PathBuf,
    /// Compiled-in and loaded extensions.
    pub extensions: Vec<PhpExtension>,
}

/// Runs PHP for websites, one pool per site.
///
/// # Contract
/// - `installed` reports only what is really there; asking for a version that is not installed
///   is an error, never a fallback to another version.
/// - `render_pool` is pure and deterministic.
/// - `apply` validates with the real binary before reloading and is atomic like
///   [`crate::WebServer::apply`].
#[async_trait]
pub trait PhpRuntime: Debug + Send + Sync {
    /// The installed PHP versions.
    async fn installed(&self) -> Result<Vec<PhpInstallation>>;
    /// The pool file for `site`.
    fn render_pool(&self, site: &Website) -> Result<RenderedFile>;
    /// Checks a staged pool directory for one version with the real binary.
    async fn validate(&self, version: PhpVersion, staged_root: &Path) -> Result<()>;
    /// Writes, validates and reloads the pools of the given sites in one batch.
    async fn apply(&self, sites: &[Website]) -> Result<()>;
    /// Removes the pools of the given sites and reloads.
    async fn remove(&self, sites: &[Website]) -> Result<()>;
}
