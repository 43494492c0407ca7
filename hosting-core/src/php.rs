//! PHP runtimes: one FPM pool per site, per PHP version.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::error::Result;
use crate::model::Website;
use crate::types::{PhpExtension, PhpVersion};
use crate::web::{ApplyReport, Drift, RenderedFile};

/// A PHP installation found on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhpInstallation {
    /// The version the binary reports (asked from it, not guessed from the path).
    pub version: PhpVersion,
    /// The full version string, e.g. `8.2.36`.
    pub full_version: String,
    /// The FPM binary.
    pub fpm_binary: PathBuf,
    /// The php.ini passed with `-c`, when the installation needs one.
    pub php_ini: Option<PathBuf>,
    /// The ini scan directory (`PHP_INI_SCAN_DIR`) for this installation only.
    pub scan_dir: Option<PathBuf>,
    /// Loaded extensions, as `php-fpm -m` lists them (lower-cased).
    pub extensions: Vec<PhpExtension>,
}

/// Runs PHP for websites, one pool per site.
///
/// # Contract
/// - `installed` reports only what is really there; asking for a version that is not installed
///   is an error, never a fallback to another version.
/// - `render_pool` is pure and deterministic; the pool's name and socket derive from the site
///   id and PHP version ([`crate::HostLayout`]), and the pool runs as the site's system user.
/// - `apply` takes the complete desired set of sites (sites without a PHP version are skipped;
///   one site may appear with two versions during a switch, see [`crate::node`]), validates
///   each affected version with the real binary before reloading it, and is atomic like
///   [`crate::WebServer::apply`].
#[async_trait]
pub trait PhpRuntime: Debug + Send + Sync {
    /// The installed PHP versions.
    async fn installed(&self) -> Result<Vec<PhpInstallation>>;
    /// The pool file for `site` (which must have a PHP version).
    fn render_pool(&self, site: &Website) -> Result<RenderedFile>;
    /// Checks a staged pool directory for one version with the real binary.
    async fn validate(&self, version: PhpVersion, staged_root: &Path) -> Result<()>;
    /// Makes the pools of `sites` the live set.
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport>;
    /// Differences between the live pools and what `sites` render to.
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>>;
}
