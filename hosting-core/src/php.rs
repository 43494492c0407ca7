//! PHP runtimes: one FPM pool per site, per PHP version.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Website, WebsiteId};
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

/// What a PHP apply did, version by version ([`PhpRuntime::apply_versions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhpApplyReport {
    /// What went live on the versions that did not fail.
    pub applied: ApplyReport,
    /// The versions whose master could not be started or reloaded on their pools, oldest
    /// first. Their sites get no PHP (the web server answers them with a 502) until an apply
    /// starts the master; the other versions and the static sites are served.
    pub failed: Vec<FailedVersion>,
}

/// A PHP version whose master does not serve its pools after an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedVersion {
    /// The version.
    pub version: PhpVersion,
    /// The sites of the applied set on this version, whose PHP is not served.
    pub sites: Vec<WebsiteId>,
    /// What failed. It names node paths: for the operator's log, never for a tenant.
    pub reason: String,
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
///   [`crate::WebServer::apply`]: when any version fails, the apply fails.
/// - `apply_versions` is `apply` for a node that must keep serving: a refusal of the real
///   binary's test (`php-fpm -t`, [`crate::Error::Validation`]) still fails the whole apply and
///   changes nothing; but a version whose master cannot be started or reloaded (or whose pools
///   do not listen in time) is put back to its previous files and reported in
///   [`PhpApplyReport::failed`] with its sites, while every other version is applied.
/// - Every apply finds out whether each master it relies on really runs: a pid file counts only
///   when it names that version's master (`hosting_core::process::inspect` with the `system`
///   feature: its binary and its configuration on the command line), never by `kill -0`. A
///   master that does not run is started (stale pid and socket files removed first), even when
///   no file changed, and a process a stale pid file names is never signalled.
#[async_trait]
pub trait PhpRuntime: Debug + Send + Sync {
    /// The installed PHP versions.
    async fn installed(&self) -> Result<Vec<PhpInstallation>>;
    /// The pool file for `site` (which must have a PHP version).
    fn render_pool(&self, site: &Website) -> Result<RenderedFile>;
    /// Checks a staged pool directory for one version with the real binary.
    async fn validate(&self, version: PhpVersion, staged_root: &Path) -> Result<()>;
    /// Makes the pools of `sites` the live set, all versions or none.
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport>;
    /// Makes the pools of `sites` the live set version by version: a version whose master
    /// cannot run them is reported, not an error. The default is [`Self::apply`], for a runtime
    /// that cannot tell its versions apart: any failure fails it.
    async fn apply_versions(&self, sites: &[Website]) -> Result<PhpApplyReport> {
        Ok(PhpApplyReport {
            applied: self.apply(sites).await?,
            failed: Vec::new(),
        })
    }
    /// Differences between the live pools and what `sites` render to.
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>>;
    /// The masters this runtime runs, each with whether it runs now. A runtime that cannot
    /// tell reports none.
    async fn servers(&self) -> Result<Vec<crate::node::ServerState>> {
        Ok(Vec::new())
    }
}
