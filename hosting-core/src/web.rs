//! Web servers: pure rendering, validation by the real binary, and an atomic apply.

use std::fmt::Debug;
use std::path::Path;

use async_trait::async_trait;

use crate::directives::DirectivePolicy;
use crate::error::Result;
use crate::model::{Website, WebsiteId};
use crate::types::{ConfinedPath, WebServerKind};

/// A generated file, relative to the backend's managed configuration directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Where it goes, under the managed directory.
    pub path: ConfinedPath,
    /// Its full contents.
    pub contents: String,
}

/// What an apply changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Sites whose files were added or changed.
    pub changed: Vec<WebsiteId>,
    /// Files that were removed because their site is no longer in the desired set.
    pub removed: Vec<ConfinedPath>,
    /// Whether the running server was reloaded (false when nothing changed).
    pub reloaded: bool,
}

/// How a live file differs from what the database implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// A file the desired state needs is missing.
    Missing(ConfinedPath),
    /// A file exists but its contents differ (hand-edited, or left from an interrupted apply).
    Modified(ConfinedPath),
    /// A file exists that no desired site renders.
    Unexpected(ConfinedPath),
}

/// A web server that serves websites from generated configuration.
///
/// # Contract
/// - `render_site` is pure and deterministic: the same site gives the same bytes; file names
///   derive from the site id, never the domain.
/// - `validate` runs the real server's own configuration test on a whole staged tree.
/// - `apply` takes the *complete* desired set of sites for this node: it renders all of them,
///   stages the new tree beside the live one, validates it once, swaps it in atomically and
///   reloads once. When any step fails, the live tree is byte-identical to before, the running
///   server was not reloaded, and the error names the tool and its output.
/// - `drift` compares the live tree with what the desired set renders to.
/// - `directive_policy` is the allow-list a site's `extra_directives` must pass; `render_site`
///   renders only directives it accepts (site paths made absolute under the site's home) and
///   the operator's directives as they are. No directive it accepts names a file, socket,
///   module, user or upstream of the node outside the site's home.
///
/// `hosting_core::conformance::web` checks the parts of this that need no running server.
#[async_trait]
pub trait WebServer: Debug + Send + Sync {
    /// Which server this is.
    fn kind(&self) -> WebServerKind;
    /// The directives a tenant may add to a site's server block.
    fn directive_policy(&self) -> DirectivePolicy;
    /// The files that make up `site`'s virtual host.
    fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>>;
    /// Checks a staged configuration tree with the real server binary.
    async fn validate(&self, staged_root: &Path) -> Result<()>;
    /// Makes `sites` the live set: render, stage, validate, swap, reload.
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport>;
    /// Differences between the live tree and what `sites` render to.
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>>;
}
