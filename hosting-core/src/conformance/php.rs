//! The [`PhpRuntime`] contract. Our PHP-FPM backend runs all of it against real PHP-FPM 8.2 and
//! 8.4 masters it supervises under a temporary prefix; a plugin runs the same functions.
//!
//! | function | what the runtime must guarantee |
//! |---|---|
//! | [`installed_versions_are_the_renderable_ones`] | `installed` lists each version once, with its own full version; `render_pool` accepts exactly those versions and refuses every other with [`Error::Invalid`] on `php_version`, never falling back |
//! | [`render_pool_is_deterministic`] | the same site gives the same pool file, byte for byte, whatever was rendered before; a static site has no pool ([`Error::Invalid`]) |
//! | [`pools_derive_from_the_site_id`] | the pool's file name holds no domain and survives renaming the site; its name and socket are the site's [`HostLayout`] ones; it runs as the site's system user; no two sites share a pool file |
//! | [`apply_makes_the_set_live`] | as for web servers ([`super::web`]); static sites are skipped |
//! | [`apply_refuses_a_missing_version`] | applying a site on a version that is not installed fails with [`Error::Invalid`] and changes nothing |
//! | [`apply_is_atomic`] | a pool the real `php-fpm -t` refuses fails the apply with [`Error::Validation`] and leaves the live pools byte-identical |
//! | [`remove_leaves_nothing_behind`] | a site left out loses its pool, and nothing else changes |
//! | [`drift_is_reported`] | a pool file changed behind the runtime's back shows up in `drift`; the next apply repairs it |
//! | [`a_failed_version_spares_the_others`] | a version whose master cannot start (its test passes) is reported by `apply_versions` with its sites and its pools are not live, while every other version's pools are; `apply` fails; mended, the next `apply_versions` starts it |
//!
//! The live functions take the same [`Snapshot`] and [`Tamper`] closures as the web suite, and
//! each applies a complete set, so run them one at a time per runtime. A runtime may report
//! pool paths under a directory of its own (`8.2/pool.d/site1.conf`).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use crate::conformance::web::{
    Snapshot, Tamper, Target, check_apply_is_atomic, check_apply_makes_the_set_live,
    check_drift_is_reported, check_remove_leaves_nothing_behind, sample_site,
};
use crate::error::{Error, Result};
use crate::layout::HostLayout;
use crate::model::{PhpSettings, Website, WebsiteId};
use crate::php::PhpRuntime;
use crate::types::{ConfinedPath, PhpVersion, SystemUser, WebServerKind};
use crate::web::{ApplyReport, Drift, RenderedFile};

/// For each of `versions`, two PHP sites (default settings, and tighter limits), then one static
/// site the runtime must skip; ids from 201, owned by `users` in turn. `users` must exist on the
/// node: PHP-FPM refuses a pool whose user does not.
///
/// # Panics
/// When `users` is empty.
pub fn sample_sites(versions: &[PhpVersion], users: &[SystemUser]) -> Vec<Website> {
    assert!(!users.is_empty(), "sample_sites needs at least one user");
    let user = |i: usize| &users[i % users.len()];
    let size = |s: &str| s.parse().expect("a fixed, valid size");
    let tight = PhpSettings::new(size("128M"), 30, size("16M"), size("32M"), BTreeSet::new())
        .expect("fixed, valid PHP settings");
    let mut sites = Vec::new();
    for version in versions {
        let v = version.as_str().replace('.', "");
        for (label, settings) in [
            ("default", PhpSettings::default()),
            ("tight", tight.clone()),
        ] {
            let n = sites.len();
            let mut site = sample_site(
                201 + n as i64,
                &format!("{label}-php{v}.suite.example.com"),
                WebServerKind::Nginx,
                Some(*version),
                user(n),
            );
            site.settings.php = settings;
            sites.push(site);
        }
    }
    let n = sites.len();
    sites.push(sample_site(
        201 + n as i64,
        "static.php-suite.example.com",
        WebServerKind::Nginx,
        None,
        user(n),
    ));
    sites
}

// ---------------------------------------------------------------------------------------------
// Render

/// Runs every render function on `sites` (the PHP ones must use installed versions);
/// `site` is any one PHP site, tried on every version.
pub async fn render_contract(runtime: &dyn PhpRuntime, layout: &HostLayout, sites: &[Website]) {
    let site = sites
        .iter()
        .find(|s| s.php_version.is_some())
        .expect("the render contract needs a PHP site");
    installed_versions_are_the_renderable_ones(runtime, site).await;
    render_pool_is_deterministic(runtime, sites);
    pools_derive_from_the_site_id(runtime, layout, sites);
}

/// `installed` lists each version once, with a full version of that version (`8.2.x`);
/// `site` on each installed version renders, and on every other version is refused with
/// [`Error::Invalid`] naming `php_version`, never rendered for another version.
pub async fn installed_versions_are_the_renderable_ones(runtime: &dyn PhpRuntime, site: &Website) {
    let installed = runtime.installed().await.expect("installed");
    assert!(!installed.is_empty(), "the suite needs an installed PHP");
    let mut versions = BTreeSet::new();
    for install in &installed {
        assert!(
            versions.insert(install.version),
            "PHP {} is listed twice",
            install.version.as_str()
        );
        assert!(
            install
                .full_version
                .starts_with(&format!("{}.", install.version.as_str())),
            "PHP {} reports the full version {}",
            install.version.as_str(),
            install.full_version
        );
    }
    for version in PhpVersion::ALL {
        let mut on = site.clone();
        on.php_version = Some(version);
        match (versions.contains(&version), runtime.render_pool(&on)) {
            (true, Ok(_)) => {}
            (true, Err(e)) => panic!(
                "PHP {} is installed, yet site {} cannot render on it: {e}",
                version.as_str(),
                site.id
            ),
            (false, Err(Error::Invalid { field, .. })) if field == "php_version" => {}
            (false, other) => panic!(
                "PHP {} is not installed: rendering site {} on it must be Error::Invalid on \
                 php_version, never a fallback; got {other:?}",
                version.as_str(),
                site.id
            ),
        }
    }
}

fn pool(runtime: &dyn PhpRuntime, site: &Website) -> RenderedFile {
    runtime
        .render_pool(site)
        .unwrap_or_else(|e| panic!("site {} ({}) must render a pool: {e}", site.id, site.domain))
}

/// The same site gives the same pool, byte for byte, whatever was rendered before it; a static
/// site has no pool ([`Error::Invalid`]).
pub fn render_pool_is_deterministic(runtime: &dyn PhpRuntime, sites: &[Website]) {
    let php: Vec<&Website> = sites.iter().filter(|s| s.php_version.is_some()).collect();
    assert!(!php.is_empty(), "the render contract needs PHP sites");
    let forward: Vec<RenderedFile> = php.iter().map(|s| pool(runtime, s)).collect();
    let mut backward: Vec<RenderedFile> = php.iter().rev().map(|s| pool(runtime, s)).collect();
    backward.reverse();
    for ((site, first), second) in php.iter().zip(&forward).zip(&backward) {
        assert!(
            first == second,
            "site {}'s pool renders differently the second time (render_pool must be pure)",
            site.id
        );
    }
    let mut static_site = php[0].clone();
    static_site.php_version = None;
    match runtime.render_pool(&static_site) {
        Err(Error::Invalid { .. }) => {}
        other => panic!("a static site has no pool: expected Error::Invalid, got {other:?}"),
    }
}

/// Whether `text` holds `word` not as part of a longer name.
fn mentions_word(text: &str, word: &str) -> bool {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(name_char)
            && !text[at + word.len()..]
                .chars()
                .next()
                .is_some_and(name_char)
    })
}

/// For every PHP site: the pool's file name holds neither the domain nor an alias, and renaming
/// the site keeps it; the pool names the site's [`HostLayout::site_name`] and listens on its
/// [`HostLayout::php_socket`] for the version; it runs as the site's system user. Another id
/// gives another pool file; no two sites (on one version) share one.
pub fn pools_derive_from_the_site_id(
    runtime: &dyn PhpRuntime,
    layout: &HostLayout,
    sites: &[Website],
) {
    let mut owners: BTreeMap<(PhpVersion, ConfinedPath), WebsiteId> = BTreeMap::new();
    for site in sites {
        let Some(version) = site.php_version else {
            continue;
        };
        let file = pool(runtime, site);
        for name in std::iter::once(&site.domain).chain(&site.aliases) {
            assert!(
                !file.path.as_str().contains(name.as_str()),
                "site {}: pool file {} holds the name {name}",
                site.id,
                file.path
            );
        }
        let mut renamed = site.clone();
        renamed.domain = format!("{}.renamed", site.domain)
            .parse()
            .expect("a renamed suite domain");
        assert_eq!(
            pool(runtime, &renamed).path,
            file.path,
            "site {}: renaming the site must keep its pool file",
            site.id
        );
        let name = HostLayout::site_name(site.id);
        assert!(
            mentions_word(&file.contents, &name),
            "site {}: the pool is not named {name}",
            site.id
        );
        let socket = layout.php_socket(site.id, version);
        assert!(
            file.contents.contains(&socket.display().to_string()),
            "site {}: the pool does not listen on {}",
            site.id,
            socket.display()
        );
        assert!(
            mentions_word(&file.contents, site.system_user.as_str()),
            "site {}: the pool does not run as {}",
            site.id,
            site.system_user
        );
        let mut moved = site.clone();
        moved.id = WebsiteId(site.id.0 + 1_000_000);
        assert_ne!(
            pool(runtime, &moved).path,
            file.path,
            "site {} and the same site as {} share a pool file",
            site.id,
            moved.id
        );
        if let Some(other) = owners.insert((version, file.path.clone()), site.id)
            && other != site.id
        {
            panic!(
                "sites {other} and {} both render the PHP {} pool {}",
                site.id,
                version.as_str(),
                file.path
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Live

/// Runs the whole suite against a runtime whose installed versions can really run: the render
/// contract, then every live function, ending with every pool removed (so supervised masters
/// stop). `sites` (e.g. [`sample_sites`] for the installed versions) must hold at least two PHP
/// sites; `rejected` is a PHP site on an installed version that renders but that the real
/// `php-fpm -t` refuses (e.g. one whose system user does not exist on the node).
pub async fn run_all(
    runtime: &dyn PhpRuntime,
    layout: &HostLayout,
    sites: &[Website],
    rejected: &Website,
    snapshot: Snapshot<'_>,
    tamper: Tamper<'_>,
) {
    assert!(
        sites.iter().filter(|s| s.php_version.is_some()).count() >= 2,
        "run_all needs at least two PHP sites"
    );
    render_contract(runtime, layout, sites).await;
    apply_makes_the_set_live(runtime, sites).await;
    apply_refuses_a_missing_version(runtime, sites, Some(snapshot)).await;
    apply_is_atomic(runtime, sites, rejected, Some(snapshot)).await;
    drift_is_reported(runtime, sites, tamper).await;
    let (kept, removed) = sites.split_at(sites.len() / 2);
    remove_leaves_nothing_behind(runtime, kept, removed, Some(snapshot)).await;
    remove_leaves_nothing_behind(runtime, &[], sites, Some(snapshot)).await;
}

/// From an empty set, `apply(sites)` reports every PHP site as changed (static ones are
/// skipped) and reloads; `drift` is then empty; the same apply again changes nothing and does
/// not reload.
pub async fn apply_makes_the_set_live(runtime: &dyn PhpRuntime, sites: &[Website]) {
    check_apply_makes_the_set_live(&Php(runtime), sites).await;
}

/// With `sites` live, applying them plus a site on a version that is not installed fails with
/// [`Error::Invalid`] before anything is written: `drift(sites)` stays empty and, when
/// `snapshot` is given, every live file is byte-identical. Passes trivially (with a note) when
/// every supported version is installed.
pub async fn apply_refuses_a_missing_version(
    runtime: &dyn PhpRuntime,
    sites: &[Website],
    snapshot: Option<Snapshot<'_>>,
) {
    let installed: BTreeSet<PhpVersion> = runtime
        .installed()
        .await
        .expect("installed")
        .iter()
        .map(|i| i.version)
        .collect();
    let Some(missing) = PhpVersion::ALL.into_iter().find(|v| !installed.contains(v)) else {
        eprintln!("apply_refuses_a_missing_version: every PHP version is installed; not checked");
        return;
    };
    let base = sites
        .iter()
        .find(|s| s.php_version.is_some())
        .expect("a PHP site");
    let mut stray = base.clone();
    stray.id = WebsiteId(sites.iter().map(|s| s.id.0).max().unwrap_or(0) + 1);
    stray.domain = format!("missing-version.{}", base.domain)
        .parse()
        .expect("a suite domain");
    stray.aliases.clear();
    stray.php_version = Some(missing);

    runtime.apply(sites).await.expect("applying the sites");
    let before = snapshot.map(|s| s());
    let mut with_stray = sites.to_vec();
    with_stray.push(stray);
    match runtime.apply(&with_stray).await {
        Err(Error::Invalid { field, .. }) if field == "php_version" => {}
        other => panic!(
            "a site on PHP {}, which is not installed, must fail the apply with Error::Invalid \
             on php_version; got {other:?}",
            missing.as_str()
        ),
    }
    if let (Some(snapshot), Some(before)) = (snapshot, before) {
        assert!(
            snapshot() == before,
            "a refused apply must leave the live pools byte-identical"
        );
    }
    let drift = runtime.drift(sites).await.expect("drift");
    assert!(drift.is_empty(), "after a refused apply: {drift:?}");
}

/// With `sites` live, applying them plus `rejected` (a pool the real `php-fpm -t` refuses) fails
/// with [`Error::Validation`] and changes nothing; see [`super::web::apply_is_atomic`].
pub async fn apply_is_atomic(
    runtime: &dyn PhpRuntime,
    sites: &[Website],
    rejected: &Website,
    snapshot: Option<Snapshot<'_>>,
) {
    check_apply_is_atomic(&Php(runtime), sites, rejected, snapshot).await;
}

/// With `kept` and `removed` live, `apply(kept)` removes exactly `removed`'s pools; see
/// [`super::web::remove_leaves_nothing_behind`].
pub async fn remove_leaves_nothing_behind(
    runtime: &dyn PhpRuntime,
    kept: &[Website],
    removed: &[Website],
    snapshot: Option<Snapshot<'_>>,
) {
    check_remove_leaves_nothing_behind(&Php(runtime), kept, removed, snapshot).await;
}

/// A pool file changed behind the runtime's back is named by `drift`, and the next apply repairs
/// it; see [`super::web::drift_is_reported`].
pub async fn drift_is_reported(runtime: &dyn PhpRuntime, sites: &[Website], tamper: Tamper<'_>) {
    check_drift_is_reported(&Php(runtime), sites, tamper).await;
}

/// With none of `sites` live (on at least two versions), `broken` a version whose master
/// cannot start although its test passes (the caller made it so), and `mend` undoing that:
/// `apply` fails and `apply_versions` reports exactly `broken`, naming each of its sites, while
/// every site on the other versions is applied (changed, no drift); `broken`'s pools show as
/// missing in `drift`. After `mend`, `apply_versions` reports no failure and nothing drifts.
pub async fn a_failed_version_spares_the_others(
    runtime: &dyn PhpRuntime,
    sites: &[Website],
    broken: PhpVersion,
    mend: impl FnOnce(),
) {
    let on = |broken_side: bool| -> Vec<Website> {
        sites
            .iter()
            .filter(|s| s.php_version.is_some_and(|v| (v == broken) == broken_side))
            .cloned()
            .collect()
    };
    let (failing, spared) = (on(true), on(false));
    assert!(
        !failing.is_empty() && !spared.is_empty(),
        "the check needs sites on PHP {} and on another version",
        broken.as_str()
    );
    assert!(
        runtime.apply(sites).await.is_err(),
        "apply must fail while PHP {}'s master cannot start",
        broken.as_str()
    );
    let report = runtime
        .apply_versions(sites)
        .await
        .expect("apply_versions reports a version that cannot start, it does not fail");
    let failed: Vec<PhpVersion> = report.failed.iter().map(|f| f.version).collect();
    assert_eq!(failed, vec![broken], "{report:?}");
    let mut named = report.failed[0].sites.clone();
    named.sort();
    let mut wanted: Vec<WebsiteId> = failing.iter().map(|s| s.id).collect();
    wanted.sort();
    wanted.dedup();
    assert_eq!(named, wanted, "the failed version names its sites");
    assert!(!report.failed[0].reason.is_empty(), "and says why");
    let drift = runtime.drift(&spared).await.expect("drift");
    assert!(
        drift.iter().all(|d| !matches!(d, Drift::Missing(_))),
        "the other versions' pools are live: {drift:?}"
    );
    for site in &spared {
        assert!(
            report.applied.changed.contains(&site.id),
            "site {} (PHP {}) is applied: {report:?}",
            site.id,
            site.php_version.map_or("-", |v| v.as_str())
        );
    }
    let drift = runtime.drift(&failing).await.expect("drift");
    assert!(
        drift.iter().any(|d| matches!(d, Drift::Missing(_))),
        "the failed version's pools are not live: {drift:?}"
    );
    mend();
    let report = runtime.apply_versions(sites).await.expect("apply_versions");
    assert!(report.failed.is_empty(), "mended: {report:?}");
    let drift = runtime.drift(sites).await.expect("drift");
    assert!(drift.is_empty(), "mended: {drift:?}");
}

struct Php<'a>(&'a dyn PhpRuntime);

#[async_trait]
impl Target for Php<'_> {
    fn what(&self) -> String {
        "the PHP runtime".to_owned()
    }

    fn files(&self, site: &Website) -> Vec<RenderedFile> {
        if site.php_version.is_some() {
            vec![pool(self.0, site)]
        } else {
            Vec::new()
        }
    }

    fn serves(&self, site: &Website) -> bool {
        site.php_version.is_some()
    }

    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        self.0.apply(sites).await
    }

    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        self.0.drift(sites).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sites_cover_every_version_given_and_one_static_site() {
        let users = vec!["owner".parse::<SystemUser>().expect("user")];
        let sites = sample_sites(&[PhpVersion::V8_2, PhpVersion::V8_4], &users);
        assert_eq!(sites.len(), 5);
        assert_eq!(sites.iter().filter(|s| s.php_version.is_none()).count(), 1);
        let ids: BTreeSet<_> = sites.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), 5);
        assert!(mentions_word("[site7]\nuser = bob\n", "site7"));
        assert!(!mentions_word("[site77]\n", "site7"));
        assert!(!mentions_word("user = bobby\n", "bob"));
    }
}
