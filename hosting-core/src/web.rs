//! Web servers: pure rendering, validation by the real binary, and an atomic apply.

use std::collections::BTreeMap;
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

/// A site a web server's configuration test refuses, and what the test said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedSite {
    /// The refused site.
    pub site: WebsiteId,
    /// The test that refused it, e.g. `/usr/sbin/nginx -t`.
    pub tool: String,
    /// What the test printed. It names node paths and may name other sites' files: it is for
    /// the operator's log, never for a tenant.
    pub output: String,
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
/// - `apply` finds out whether the server really runs, and starts it when it does not, even
///   when no file changed (after a power loss or a reboot). A pid file counts only when it
///   names the server (`hosting_core::process::inspect` with the `system` feature: its binary,
///   and its root or configuration on its command line), never by `kill -0`; a process a stale
///   pid file names is never signalled. Its health check needs no PHP, so the node's
///   [`crate::node::apply_node`] applies it whatever the PHP runtime did.
/// - `drift` compares the live tree with what the desired set renders to.
/// - `directive_policy` is the allow-list a site's `extra_directives` must pass; `render_site`
///   renders only directives it accepts (site paths made absolute under the site's home) and
///   the operator's directives as they are. No directive it accepts names a file, socket,
///   module, user or upstream of the node outside the site's home.
/// - `refused_sites` attributes a refused set to its sites without making anything live: each
///   site it names is refused by the configuration test on top of what the server last accepted
///   (see [`find_refused`]). A server that cannot test sites apart keeps the default, which names
///   none; a refused apply is then refused as a whole.
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
    /// The sites of `sites` the configuration test refuses, each with the test's output; the
    /// live tree and the running server are left alone. Asked after `apply` failed with
    /// [`Error::Validation`](crate::Error::Validation), so one site's refusal is reported as that
    /// site's and keeps no other site from changing.
    async fn refused_sites(&self, sites: &[Website]) -> Result<Vec<RefusedSite>> {
        let _ = sites;
        Ok(Vec::new())
    }
    /// The server processes this backend runs, each with whether it runs now. A backend that
    /// cannot tell reports none.
    async fn servers(&self) -> Result<Vec<crate::node::ServerState>> {
        Ok(Vec::new())
    }
}

/// The sites of `sites` that `trial` refuses, for a backend that can test any set of site
/// files (staged beside its live tree, with the files around them) and keeps the files it last
/// made live in `live`.
///
/// Each site's live files are the base: the last set the server accepted. The sites whose
/// rendering (`render`) differs from the base are tried on top of it, as many at once as pass:
/// a refused group is halved until each refused site stands alone, and each accepted group
/// stays for the next, so of two changed sites that conflict, the later one is refused. A single
/// refused site costs about twice log2(changed sites) trials. When the base itself is refused
/// (the server no longer accepts what is live), every site is tried from an empty set.
///
/// `trial` fails with [`Error::Validation`](crate::Error::Validation) when the server refuses
/// the files; any other error ends the search.
pub async fn find_refused<Trial: Future<Output = Result<()>>>(
    sites: &[Website],
    render: impl Fn(&Website) -> Result<Vec<RenderedFile>>,
    live: &BTreeMap<crate::types::ConfinedPath, String>,
    mut trial: impl FnMut(Vec<RenderedFile>) -> Trial,
) -> Result<Vec<RefusedSite>> {
    let rendered = sites
        .iter()
        .map(|s| Ok((s.id, render(s)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut accepted: BTreeMap<WebsiteId, Vec<RenderedFile>> = rendered
        .iter()
        .map(|(id, files)| {
            let kept = files
                .iter()
                .filter_map(|f| {
                    live.get(&f.path).map(|contents| RenderedFile {
                        path: f.path.clone(),
                        contents: contents.clone(),
                    })
                })
                .collect();
            (*id, kept)
        })
        .collect();
    let flat = |set: &BTreeMap<WebsiteId, Vec<RenderedFile>>| -> Vec<RenderedFile> {
        set.values().flatten().cloned().collect()
    };
    let mut candidates: Vec<usize> = (0..rendered.len())
        .filter(|&i| accepted.get(&rendered[i].0) != Some(&rendered[i].1))
        .collect();
    match trial(flat(&accepted)).await {
        Ok(()) => {}
        Err(crate::Error::Validation { .. }) => {
            accepted.clear();
            candidates = (0..rendered.len()).collect();
        }
        Err(e) => return Err(e),
    }
    let mut refused = Vec::new();
    let mut pending = vec![candidates];
    while let Some(group) = pending.pop() {
        if group.is_empty() {
            continue;
        }
        let mut tried = accepted.clone();
        for &i in &group {
            tried.insert(rendered[i].0, rendered[i].1.clone());
        }
        match trial(flat(&tried)).await {
            Ok(()) => accepted = tried,
            Err(crate::Error::Validation { tool, output }) if group.len() == 1 => {
                refused.push(RefusedSite {
                    site: rendered[group[0]].0,
                    tool,
                    output,
                });
            }
            Err(crate::Error::Validation { .. }) => {
                let (first, second) = group.split_at(group.len() / 2);
                pending.push(second.to_vec());
                pending.push(first.to_vec());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}
