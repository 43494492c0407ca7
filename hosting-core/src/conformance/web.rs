//! The [`WebServer`] contract. Our NGINX and Apache backends run all of it against real servers,
//! OpenLiteSpeed (which only renders) runs the render part, and a plugin runs the same functions
//! against its own server.
//!
//! The contract, one function each:
//!
//! | function | what the backend must guarantee |
//! |---|---|
//! | [`render_is_deterministic`] | the same site gives the same files, in the same order, byte for byte, whatever was rendered before; every site has at least one file, each path once |
//! | [`file_names_derive_from_the_site_id`] | no path holds a domain; renaming a site keeps its paths; another id gives other paths; no two sites share a path |
//! | [`every_name_is_rendered`] | the site's domain and every alias appear in its files |
//! | [`directive_policy_names_no_node_resource`] | the tenants' allow-list holds nothing of [`NEVER_FOR_TENANTS`] (in any case), names each directive once, and every `*log`, `*_path` or `*file` directive types each argument that could hold a path as [`ArgRule::SitePath`] |
//! | [`directives_outside_the_policy_are_not_rendered`] | a tenant directive the policy refuses (a forbidden name, or an allowed one with the wrong arguments) is not in the site's files; the operator's directives are, as they are |
//! | [`apply_makes_the_set_live`] | after `apply(sites)` drift is empty and every site is reported changed; the same apply again changes nothing and does not reload |
//! | [`apply_is_atomic`] | a set the real server refuses fails with [`Error::Validation`] and leaves the live tree byte-identical: no drift, the refused site not live |
//! | [`refused_sites_names_only_the_refused`] | with a set live, `refused_sites` of that set plus a refused site and a changed good one names the refused site alone (or nothing, for a server that cannot test sites apart) and changes nothing live |
//! | [`remove_leaves_nothing_behind`] | a site left out of the set is reported removed, its files are gone from the live tree, and no other site changes |
//! | [`drift_is_reported`] | a live file changed behind the server's back shows up in `drift`, and the next apply repairs it |
//! | [`a_dead_server_is_started_again`] | after the server was killed with its machine (pid files left behind, possibly naming another live process), an apply of the unchanged set starts it (`reloaded`), and the next finds it running |
//!
//! The first five are pure ([`render_contract`]; [`render_contract_for`] takes a bare render
//! function and [`policy_contract_for`] the policy beside it). The others drive a running server the caller set up (under a temporary prefix,
//! with free ports): each applies a *complete* site set, replacing whatever was live, so run them
//! one at a time per server. [`run_all`] runs everything and leaves the server with no sites.
//!
//! The trait deliberately shows nothing of the files behind a server, so the live functions take
//! what they need from the caller: a [`Snapshot`] of the live files (to prove "byte-identical"
//! beyond what `drift` sees) and a [`Tamper`] that edits one behind the server's back.
//!
//! A backend reports drift and removed files by their rendered path, or by that path under a
//! directory of its own (PHP-FPM says `8.2/pool.d/site1.conf` for `pool.d/site1.conf`); the suite
//! accepts both.
//!
//! [`sample_sites`] is a fixture set every server must be able to serve: static and PHP sites,
//! aliases, `www.` redirects, compression, cache and security headers, IP allow and deny lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use async_trait::async_trait;

use crate::directives::{ArgRule, DirectivePolicy, NEVER_FOR_TENANTS};
use crate::error::{Error, Result};
use crate::model::{
    ExtraDirectives, NodeId, ServerDirective, Ssl, SslProvider, TenantId, UserId, Website,
    WebsiteId, WebsiteSettings, WebsiteStatus, WwwRedirect,
};
use crate::types::{ConfinedPath, DomainName, PhpVersion, SystemUser, WebServerKind};
use crate::web::{ApplyReport, Drift, RenderedFile, WebServer};

/// Every live configuration file behind the server, with its bytes, keyed by a path that stays
/// the same from one apply to the next (e.g. the path through the `live` symlink).
pub type Snapshot<'a> = &'a (dyn Fn() -> BTreeMap<PathBuf, Vec<u8>> + Sync);

/// Changes the live copy of `file`, one of the live `site`'s rendered files, behind the server's
/// back, as a hand edit would (rewrite it, append to it, or delete it).
pub type Tamper<'a> = &'a (dyn Fn(&Website, &RenderedFile) + Sync);

/// A pure render function, for a backend that renders but has no [`WebServer`] (OpenLiteSpeed).
pub type Render<'a> = &'a (dyn Fn(&Website) -> Result<Vec<RenderedFile>> + Sync);

// ---------------------------------------------------------------------------------------------
// Fixtures

/// One website for the suites: `domain`, served by `kind`, PHP `php` (or static), owned by
/// `user`, document root `public`, every setting at its default.
///
/// # Panics
/// When `domain` is not a valid [`DomainName`].
pub fn sample_site(
    id: i64,
    domain: &str,
    kind: WebServerKind,
    php: Option<PhpVersion>,
    user: &SystemUser,
) -> Website {
    Website {
        id: WebsiteId(id),
        tenant_id: TenantId(1),
        owner_id: UserId(1),
        domain: domain_name(domain),
        aliases: Vec::new(),
        node_id: NodeId(1),
        web_server: kind,
        php_version: php,
        system_user: user.clone(),
        document_root: "public".parse().expect("a fixed, valid document root"),
        status: WebsiteStatus::Active,
        settings: WebsiteSettings::default(),
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
    }
}

fn domain_name(raw: &str) -> DomainName {
    raw.parse()
        .unwrap_or_else(|e| panic!("suite domain {raw:?}: {e}"))
}

fn aliases(raw: &[&str]) -> Vec<DomainName> {
    raw.iter().map(|a| domain_name(a)).collect()
}

/// Five sites (ids 1-5) that every web server must serve, with nothing on disk but the node's
/// directories (no TLS, so no certificates are needed), owned by `users` in turn:
///
/// 1. a plain static site;
/// 2. PHP 8.2 with a `www.` alias it redirects to;
/// 3. PHP 8.4 with gzip, a cache lifetime and the security headers;
/// 4. static with two aliases, the `www.` one redirecting to the bare name, and gzip;
/// 5. static, open to 127.0.0.0/8 and 10.0.0.0/8 only, with 192.0.2.0/24 refused.
///
/// PHP sites only point at their pool's socket ([`crate::HostLayout`]); no PHP needs to run for
/// a web server to load them (requests for PHP then fail with 502, which is still an answer).
///
/// # Panics
/// When `users` is empty.
pub fn sample_sites(kind: WebServerKind, users: &[SystemUser]) -> Vec<Website> {
    assert!(!users.is_empty(), "sample_sites needs at least one user");
    let user = |i: usize| &users[i % users.len()];

    let plain = sample_site(1, "plain.suite.example.com", kind, None, user(0));

    let mut php82 = sample_site(
        2,
        "php82.suite.example.com",
        kind,
        Some(PhpVersion::V8_2),
        user(1),
    );
    php82.aliases = aliases(&["www.php82.suite.example.com"]);
    php82.settings.www_redirect = WwwRedirect::ToWww;

    let mut php84 = sample_site(
        3,
        "php84.suite.example.org",
        kind,
        Some(PhpVersion::V8_4),
        user(2),
    );
    php84.settings.gzip = true;
    php84.settings.cache_ttl_secs = Some(3600);
    php84.settings.security_headers = true;

    let mut aliased = sample_site(4, "suite-aliases.example.net", kind, None, user(3));
    aliased.aliases = aliases(&[
        "www.suite-aliases.example.net",
        "shop.suite-aliases.example.net",
    ]);
    aliased.settings.www_redirect = WwwRedirect::ToApex;
    aliased.settings.gzip = true;

    let mut restricted = sample_site(5, "restricted.suite.example.com", kind, None, user(4));
    restricted.settings.allowed_ips = ["127.0.0.0/8", "10.0.0.0/8"]
        .iter()
        .map(|n| n.parse().expect("a fixed, valid network"))
        .collect();
    restricted.settings.blocked_ips =
        BTreeSet::from(["192.0.2.0/24".parse().expect("a fixed, valid network")]);
    restricted.settings.security_headers = true;

    vec![plain, php82, php84, aliased, restricted]
}

/// [`sample_sites`] plus two HTTPS sites (ids 6 and 7): PHP 8.3 with a `www.` alias and the
/// security headers, and a static site with gzip. For the render functions: applying them needs
/// a certificate and key at each site's [`crate::SitePaths`] paths.
pub fn sample_sites_with_tls(kind: WebServerKind, users: &[SystemUser]) -> Vec<Website> {
    let mut sites = sample_sites(kind, users);
    let user = |i: usize| &users[i % users.len()];
    let mut secure = sample_site(
        6,
        "secure.suite.example.com",
        kind,
        Some(PhpVersion::V8_3),
        user(5),
    );
    secure.aliases = aliases(&["www.secure.suite.example.com"]);
    secure.settings.www_redirect = WwwRedirect::ToWww;
    secure.settings.security_headers = true;
    secure.settings.ssl = Ssl::Enabled {
        provider: SslProvider::LetsEncrypt,
        auto_renew: true,
    };
    let mut static_tls = sample_site(7, "static-tls.suite.example.org", kind, None, user(6));
    static_tls.settings.gzip = true;
    static_tls.settings.ssl = Ssl::Enabled {
        provider: SslProvider::Custom,
        auto_renew: false,
    };
    sites.extend([secure, static_tls]);
    sites
}

/// A static site (id 100) carrying the operator directive `directive on`: name a directive your
/// server does not know, and its configuration test refuses the site while rendering succeeds
/// (operator directives are written as they are; a tenant's would be left out by the policy).
/// The `rejected` site of [`apply_is_atomic`].
///
/// # Panics
/// When `directive` is not a valid [`crate::types::DirectiveName`].
pub fn site_with_unknown_directive(
    kind: WebServerKind,
    user: &SystemUser,
    directive: &str,
) -> Website {
    let mut site = sample_site(100, "rejected.suite.example.com", kind, None, user);
    site.settings.operator_directives = ExtraDirectives::try_from(vec![ServerDirective {
        name: directive
            .parse()
            .unwrap_or_else(|e| panic!("directive {directive:?}: {e}")),
        args: vec!["on".parse().expect("a fixed, valid argument")],
    }])
    .expect("one directive is within the limits");
    site
}

// ---------------------------------------------------------------------------------------------
// Render

/// Runs every render function: [`render_is_deterministic`], [`file_names_derive_from_the_site_id`],
/// [`every_name_is_rendered`], [`directive_policy_names_no_node_resource`] and
/// [`directives_outside_the_policy_are_not_rendered`].
pub fn render_contract(server: &dyn WebServer, sites: &[Website]) {
    render_contract_for(&|site| server.render_site(site), sites);
    policy_contract_for(
        server.directive_policy(),
        &|site| server.render_site(site),
        sites,
    );
}

/// The policy part of [`render_contract`] for a backend that renders but has no [`WebServer`]:
/// `policy` is its allow-list, `render` its pure render function.
pub fn policy_contract_for(policy: DirectivePolicy, render: Render<'_>, sites: &[Website]) {
    check_policy(policy);
    check_outside_policy(policy, render, sites);
}

/// [`render_contract`] for a backend that renders but has no [`WebServer`]: `render` is its
/// pure render function (e.g. `&|site| ols.render_site(site)`).
pub fn render_contract_for(render: Render<'_>, sites: &[Website]) {
    check_deterministic(render, sites);
    check_file_names(render, sites);
    check_names_rendered(render, sites);
}

/// The same site gives the same files, in the same order, byte for byte, whatever was rendered
/// before it (no hidden state); every site has at least one file and each path once.
pub fn render_is_deterministic(server: &dyn WebServer, sites: &[Website]) {
    check_deterministic(&|site| server.render_site(site), sites);
}

/// No file path holds the site's domain or an alias; the same site under other names renders to
/// the same paths; the same site under another id renders to other paths; no two sites share a
/// path.
pub fn file_names_derive_from_the_site_id(server: &dyn WebServer, sites: &[Website]) {
    check_file_names(&|site| server.render_site(site), sites);
}

/// The site's domain and every alias appear in its files (as whole names), so the server
/// answers for each of them.
pub fn every_name_is_rendered(server: &dyn WebServer, sites: &[Website]) {
    check_names_rendered(&|site| server.render_site(site), sites);
}

/// The server's allow-list of tenant directives names no node resource: no directive of
/// [`NEVER_FOR_TENANTS`] (compared without case), each name once (the first entry of a name is
/// the one that counts), and every directive whose name ends in `log`, `_path` or `file`
/// (without case) types each argument that could hold a path as [`ArgRule::SitePath`].
pub fn directive_policy_names_no_node_resource(server: &dyn WebServer) {
    check_policy(server.directive_policy());
}

/// Tenant directives the policy refuses are not rendered: `sites[0]` carrying every
/// [`NEVER_FOR_TENANTS`] name and every allowed directive with one argument too many renders
/// none of them, while its operator directive is written as it is.
pub fn directives_outside_the_policy_are_not_rendered(server: &dyn WebServer, sites: &[Website]) {
    check_outside_policy(
        server.directive_policy(),
        &|site| server.render_site(site),
        sites,
    );
}

/// Whether an argument of type `rule` can hold a path (it admits `/`).
fn may_hold_a_path(rule: ArgRule) -> bool {
    match rule {
        ArgRule::HeaderValue | ArgRule::UriPath => true,
        ArgRule::OneOf(words) => words.iter().any(|w| w.contains('/')),
        ArgRule::Size
        | ArgRule::Duration
        | ArgRule::Number { .. }
        | ArgRule::OnOff
        | ArgRule::HeaderName
        | ArgRule::SitePath => false,
    }
}

fn check_policy(policy: DirectivePolicy) {
    let mut seen = BTreeSet::new();
    for allowed in policy.allowed() {
        let lower = allowed.name.to_ascii_lowercase();
        assert!(
            !NEVER_FOR_TENANTS.contains(&lower.as_str()),
            "the directive policy allows {}, which names a node resource (NEVER_FOR_TENANTS)",
            allowed.name
        );
        assert!(
            seen.insert(lower.clone()),
            "the directive policy lists {} twice; only its first entry would count",
            allowed.name
        );
        assert!(
            !allowed.purpose.trim().is_empty(),
            "the directive policy gives {} no purpose",
            allowed.name
        );
        // A file the server opens while it loads its configuration is opened by its master,
        // as root, following the tenant's symlinks: logs, temp paths, TLS material, pid and
        // lock files may not be a tenant's at all, not even inside the site's home.
        let loaded_at_start = ["log", "temp", "ssl", "pid", "lock", "cache", "dhparam"]
            .iter()
            .any(|w| lower.contains(w));
        assert!(
            !(loaded_at_start
                && allowed
                    .required
                    .iter()
                    .chain(allowed.optional)
                    .any(|r| *r == ArgRule::SitePath)),
            "the directive policy lets {} name a file of the site's home; the server's master \
             opens it as root when it loads its configuration",
            allowed.name
        );
        if lower.ends_with("log") || lower.ends_with("_path") || lower.ends_with("file") {
            for (i, rule) in allowed.required.iter().chain(allowed.optional).enumerate() {
                assert!(
                    !may_hold_a_path(*rule),
                    "the directive policy lets argument {i} of {} be {rule}; a log, path or file \
                     directive takes paths only as ArgRule::SitePath, inside the site's home",
                    allowed.name
                );
            }
        }
    }
}

/// Written into every refused directive, so it shows wherever one was rendered.
const OUTSIDE_MARKER: &str = "conformance-outside-the-policy";
/// The operator directive's name, which must be rendered.
const OPERATOR_MARKER: &str = "conformance_operator_directive";

fn check_outside_policy(policy: DirectivePolicy, render: Render<'_>, sites: &[Website]) {
    let base = sites
        .first()
        .expect("the policy check needs a site to render");
    let arg = |text: &str| {
        text.parse::<crate::types::DirectiveArg>()
            .unwrap_or_else(|e| panic!("argument {text:?}: {e}"))
    };
    let marker = format!("/{OUTSIDE_MARKER}/x");
    let directive = |name: &str, args: usize| ServerDirective {
        name: name
            .parse()
            .unwrap_or_else(|e| panic!("directive {name:?}: {e}")),
        args: (0..args).map(|_| arg(&marker)).collect(),
    };
    // Allowed names with one argument too many, then the forbidden names, within the limit of
    // 50 directives a site may have.
    let mut refused: Vec<ServerDirective> = policy
        .allowed()
        .iter()
        .map(|a| (a.name, a.required.len() + a.optional.len() + 1))
        .filter(|(_, args)| *args <= 16)
        .take(25)
        .map(|(name, args)| directive(name, args))
        .collect();
    refused.extend(
        NEVER_FOR_TENANTS
            .iter()
            .filter(|never| !policy.allowed().iter().any(|a| a.name == **never))
            .map(|never| directive(never, 1)),
    );
    refused.truncate(50);
    for d in &refused {
        assert!(
            policy.check(std::slice::from_ref(d)).is_err(),
            "the policy accepts {d:?}, built to be refused"
        );
    }
    let mut site = base.clone();
    site.settings.extra_directives =
        ExtraDirectives::try_from(refused).expect("at most 50 directives");
    site.settings.operator_directives = ExtraDirectives::try_from(vec![ServerDirective {
        name: OPERATOR_MARKER
            .parse()
            .expect("a fixed, valid directive name"),
        args: vec![arg("on")],
    }])
    .expect("one directive");
    let text: String = rendered(render, &site)
        .iter()
        .map(|f| f.contents.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !text.contains(OUTSIDE_MARKER),
        "site {}: a tenant directive the policy refuses was rendered:\n{text}",
        site.id
    );
    assert!(
        text.contains(OPERATOR_MARKER),
        "site {}: the operator's directive {OPERATOR_MARKER} was not rendered:\n{text}",
        site.id
    );
}

fn rendered(render: Render<'_>, site: &Website) -> Vec<RenderedFile> {
    render(site).unwrap_or_else(|e| panic!("site {} ({}) must render: {e}", site.id, site.domain))
}

fn check_deterministic(render: Render<'_>, sites: &[Website]) {
    assert!(!sites.is_empty(), "the render contract needs sites");
    let forward: Vec<Vec<RenderedFile>> = sites.iter().map(|s| rendered(render, s)).collect();
    let mut backward: Vec<Vec<RenderedFile>> =
        sites.iter().rev().map(|s| rendered(render, s)).collect();
    backward.reverse();
    for ((site, first), second) in sites.iter().zip(&forward).zip(&backward) {
        assert!(
            first == second,
            "site {} renders differently the second time (render must be pure and deterministic)",
            site.id
        );
        assert_eq!(
            rendered(render, &site.clone()),
            *first,
            "site {}: a copy of the site renders differently",
            site.id
        );
        assert!(!first.is_empty(), "site {} renders no file", site.id);
        let mut paths = BTreeSet::new();
        for file in first {
            assert!(
                paths.insert(&file.path),
                "site {} renders {} twice",
                site.id,
                file.path
            );
        }
    }
}

fn names_of(site: &Website) -> impl Iterator<Item = &DomainName> {
    std::iter::once(&site.domain).chain(&site.aliases)
}

/// `name` with `.renamed` appended: another valid name that keeps `www.` pairs paired.
fn renamed(name: &DomainName) -> DomainName {
    domain_name(&format!("{name}.renamed"))
}

fn paths(files: &[RenderedFile]) -> Vec<&ConfinedPath> {
    files.iter().map(|f| &f.path).collect()
}

fn check_file_names(render: Render<'_>, sites: &[Website]) {
    let mut owners: BTreeMap<ConfinedPath, WebsiteId> = BTreeMap::new();
    for site in sites {
        let files = rendered(render, site);
        for file in &files {
            for name in names_of(site) {
                assert!(
                    !file.path.as_str().contains(name.as_str()),
                    "site {}: file name {} holds the name {name}; file names derive from the site id",
                    site.id,
                    file.path
                );
            }
            if let Some(other) = owners.insert(file.path.clone(), site.id)
                && other != site.id
            {
                panic!("sites {other} and {} both render {}", site.id, file.path);
            }
        }

        let mut other_names = site.clone();
        other_names.domain = renamed(&site.domain);
        other_names.aliases = site.aliases.iter().map(renamed).collect();
        assert_eq!(
            paths(&rendered(render, &other_names)),
            paths(&files),
            "site {}: other names must give the same file names",
            site.id
        );

        let mut other_id = site.clone();
        other_id.id = WebsiteId(site.id.0 + 1_000_000);
        let moved = rendered(render, &other_id);
        for file in &moved {
            assert!(
                !files.iter().any(|f| f.path == file.path),
                "site {} and the same site as {} both render {}",
                site.id,
                other_id.id,
                file.path
            );
        }
    }
}

/// Whether `text` holds `name` as a whole name (not as part of a longer one).
fn mentions(text: &str, name: &str) -> bool {
    let label_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let rest = &text[at + name.len()..];
        let longer_before = before.is_some_and(|c| label_char(c) || c == '.');
        // A dot ending a sentence or a fully qualified name is not another label.
        let longer_after = rest.chars().next().is_some_and(label_char)
            || rest
                .strip_prefix('.')
                .is_some_and(|r| r.chars().next().is_some_and(label_char));
        !longer_before && !longer_after
    })
}

fn check_names_rendered(render: Render<'_>, sites: &[Website]) {
    for site in sites {
        let text: String = rendered(render, site)
            .iter()
            .map(|f| f.contents.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        for name in names_of(site) {
            assert!(
                mentions(&text, name.as_str()),
                "site {}: no file names {name}, so the server would not answer for it",
                site.id
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Live

/// Runs the whole suite against a running server: the render contract, then every live function,
/// ending with every site removed. `sites` (at least two, e.g. [`sample_sites`]) must be
/// servable; `rejected` is a site that renders but that the server's own configuration test
/// refuses (e.g. [`site_with_unknown_directive`], through an operator directive).
pub async fn run_all(
    server: &dyn WebServer,
    sites: &[Website],
    rejected: &Website,
    snapshot: Snapshot<'_>,
    tamper: Tamper<'_>,
) {
    assert!(sites.len() >= 2, "run_all needs at least two sites");
    render_contract(server, sites);
    apply_makes_the_set_live(server, sites).await;
    apply_is_atomic(server, sites, rejected, Some(snapshot)).await;
    refused_sites_names_only_the_refused(server, sites, rejected, Some(snapshot)).await;
    drift_is_reported(server, sites, tamper).await;
    let (kept, removed) = sites.split_at(sites.len() / 2);
    remove_leaves_nothing_behind(server, kept, removed, Some(snapshot)).await;
    remove_leaves_nothing_behind(server, &[], sites, Some(snapshot)).await;
}

/// From an empty set, `apply(sites)` reports every site as changed and reloads; `drift` is then
/// empty; the same apply again reports nothing changed and does not reload.
pub async fn apply_makes_the_set_live(server: &dyn WebServer, sites: &[Website]) {
    check_apply_makes_the_set_live(&Web(server), sites).await;
}

/// With `sites` live, applying `sites` plus `rejected` fails with [`Error::Validation`] (the real
/// server refused it), and nothing changed: `drift(sites)` is empty, `rejected`'s files are all
/// missing from the live tree, and, when `snapshot` is given, every live file is byte-identical.
pub async fn apply_is_atomic(
    server: &dyn WebServer,
    sites: &[Website],
    rejected: &Website,
    snapshot: Option<Snapshot<'_>>,
) {
    check_apply_is_atomic(&Web(server), sites, rejected, snapshot).await;
}

/// With `sites` live, `refused_sites` of `sites` (the first one changed: its `gzip` flipped)
/// plus `rejected` names `rejected` alone, or nothing when the server keeps the default (it
/// cannot test sites apart); either way `drift(sites)` stays empty and, when `snapshot` is
/// given, every live file is byte-identical.
pub async fn refused_sites_names_only_the_refused(
    server: &dyn WebServer,
    sites: &[Website],
    rejected: &Website,
    snapshot: Option<Snapshot<'_>>,
) {
    let what = format!("the {} web server", server.kind());
    server
        .apply(sites)
        .await
        .unwrap_or_else(|e| panic!("{what}: applying the good sites: {e}"));
    let before = snapshot.map(|s| s());
    let mut asked = sites.to_vec();
    if let Some(first) = asked.first_mut() {
        first.settings.gzip = !first.settings.gzip;
    }
    asked.push(rejected.clone());
    let refused = server
        .refused_sites(&asked)
        .await
        .unwrap_or_else(|e| panic!("{what}: refused_sites: {e}"));
    let named: Vec<WebsiteId> = refused.iter().map(|r| r.site).collect();
    assert!(
        named.is_empty() || named == [rejected.id],
        "{what}: refused_sites must name site {} alone, named {named:?}",
        rejected.id
    );
    for r in &refused {
        assert!(!r.tool.is_empty(), "{what}: a refusal names its tool");
    }
    let drift = server
        .drift(sites)
        .await
        .unwrap_or_else(|e| panic!("{what}: drift: {e}"));
    assert!(
        drift.is_empty(),
        "{what}: refused_sites changed the live tree: {drift:?}"
    );
    if let (Some(snapshot), Some(before)) = (snapshot, before) {
        assert!(
            snapshot() == before,
            "{what}: refused_sites changed a live file"
        );
    }
}

/// With `kept` and `removed` live, `apply(kept)` reports every file of `removed` as removed and
/// no site as changed; `drift(kept)` is empty (nothing unexpected is left), `drift` of both sets
/// names exactly `removed`'s files as missing, and, when `snapshot` is given, no live file is one
/// of them.
pub async fn remove_leaves_nothing_behind(
    server: &dyn WebServer,
    kept: &[Website],
    removed: &[Website],
    snapshot: Option<Snapshot<'_>>,
) {
    check_remove_leaves_nothing_behind(&Web(server), kept, removed, snapshot).await;
}

/// With `sites` live, `tamper` changes one live file of the first site; `drift(sites)` then
/// names that file, and `apply(sites)` reports the site as changed, reloads, and leaves no drift.
pub async fn drift_is_reported(server: &dyn WebServer, sites: &[Website], tamper: Tamper<'_>) {
    check_drift_is_reported(&Web(server), sites, tamper).await;
}

/// With `sites` live, `crash` kills the server as a power loss does (the caller SIGKILLs its
/// master and workers and leaves its files; it may leave the pid file naming another live
/// process, which the server must not signal: the caller checks that): the next `apply(sites)`,
/// though no file changed, starts the server (`reloaded`, nothing changed or removed, no
/// drift), and the one after finds it running (nothing to do). Not part of [`run_all`]: only
/// the caller knows how to kill its server. Leaves `sites` live.
pub async fn a_dead_server_is_started_again(
    server: &dyn WebServer,
    sites: &[Website],
    crash: &(dyn Fn() + Sync),
) {
    server.apply(sites).await.expect("applying the sites");
    crash();
    let report = server
        .apply(sites)
        .await
        .expect("the apply after a crash starts the server");
    assert!(
        report.reloaded,
        "the server was down: the apply must start it even though no file changed: {report:?}"
    );
    assert!(
        report.changed.is_empty() && report.removed.is_empty(),
        "no file changed: {report:?}"
    );
    let drift = server.drift(sites).await.expect("drift");
    assert!(drift.is_empty(), "after the restart: {drift:?}");
    let again = server.apply(sites).await.expect("apply again");
    assert!(
        !again.reloaded,
        "the server runs again: the next apply has nothing to do: {again:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The live checks, shared with the PHP suite

/// What the live checks need from a backend; implemented for [`WebServer`] here and for
/// [`crate::PhpRuntime`] by the PHP suite.
#[async_trait]
pub(super) trait Target: Sync {
    /// The backend, for messages.
    fn what(&self) -> String;
    /// The files `site` renders to on this backend (none when it does not serve the site).
    fn files(&self, site: &Website) -> Vec<RenderedFile>;
    /// Whether the backend serves `site` at all (a PHP runtime skips static sites).
    fn serves(&self, site: &Website) -> bool;
    /// [`WebServer::apply`].
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport>;
    /// [`WebServer::drift`].
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>>;
}

struct Web<'a>(&'a dyn WebServer);

#[async_trait]
impl Target for Web<'_> {
    fn what(&self) -> String {
        format!("the {} web server", self.0.kind())
    }

    fn files(&self, site: &Website) -> Vec<RenderedFile> {
        self.0
            .render_site(site)
            .unwrap_or_else(|e| panic!("site {} ({}) must render: {e}", site.id, site.domain))
    }

    fn serves(&self, _site: &Website) -> bool {
        true
    }

    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        self.0.apply(sites).await
    }

    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        self.0.drift(sites).await
    }
}

fn drift_path(drift: &Drift) -> &ConfinedPath {
    match drift {
        Drift::Missing(p) | Drift::Modified(p) | Drift::Unexpected(p) => p,
    }
}

/// Whether `reported` (in a drift or removal report) is the rendered file `rendered`: the same
/// path, or that path under a directory of the backend's own.
fn same_file(reported: &ConfinedPath, rendered: &ConfinedPath) -> bool {
    reported == rendered
        || reported
            .as_str()
            .strip_suffix(rendered.as_str())
            .is_some_and(|prefix| prefix.ends_with('/'))
}

fn ids(sites: &[Website]) -> Vec<WebsiteId> {
    sites.iter().map(|s| s.id).collect()
}

fn assert_distinct_ids(sites: &[Website]) {
    let mut seen = BTreeSet::new();
    for site in sites {
        assert!(seen.insert(site.id), "site {} is listed twice", site.id);
    }
}

async fn apply_ok(t: &dyn Target, sites: &[Website], what: &str) -> ApplyReport {
    t.apply(sites).await.unwrap_or_else(|e| {
        panic!(
            "{}: {what}: apply of sites {:?} failed: {e}",
            t.what(),
            ids(sites)
        )
    })
}

async fn drift_ok(t: &dyn Target, sites: &[Website], what: &str) -> Vec<Drift> {
    t.drift(sites)
        .await
        .unwrap_or_else(|e| panic!("{}: {what}: drift failed: {e}", t.what()))
}

async fn assert_no_drift(t: &dyn Target, sites: &[Website], what: &str) {
    let drift = drift_ok(t, sites, what).await;
    assert!(
        drift.is_empty(),
        "{}: {what}: the live tree differs from sites {:?}: {drift:?}",
        t.what(),
        ids(sites)
    );
}

/// `drift` is exactly one `Missing` per file of `files`.
fn assert_exactly_missing(t: &dyn Target, drift: &[Drift], files: &[RenderedFile], what: &str) {
    for file in files {
        assert!(
            drift
                .iter()
                .any(|d| matches!(d, Drift::Missing(p) if same_file(p, &file.path))),
            "{}: {what}: drift does not report {} as missing: {drift:?}",
            t.what(),
            file.path
        );
    }
    for d in drift {
        assert!(
            matches!(d, Drift::Missing(p) if files.iter().any(|f| same_file(p, &f.path))),
            "{}: {what}: unexpected drift {d:?}",
            t.what()
        );
    }
}

fn assert_same_tree(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    what: &str,
) {
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: the live tree must be byte-identical, but these files differ: {changed:?}"
    );
}

pub(super) async fn check_apply_makes_the_set_live(t: &dyn Target, sites: &[Website]) {
    assert_distinct_ids(sites);
    apply_ok(t, &[], "emptying the server first").await;
    let report = apply_ok(t, sites, "first apply").await;
    let served: BTreeSet<WebsiteId> = sites.iter().filter(|s| t.serves(s)).map(|s| s.id).collect();
    assert_eq!(
        report.changed.iter().copied().collect::<BTreeSet<_>>(),
        served,
        "{}: the first apply reports every site it serves as changed",
        t.what()
    );
    assert!(
        report.removed.is_empty(),
        "{}: nothing was live to remove: {:?}",
        t.what(),
        report.removed
    );
    if !served.is_empty() {
        assert!(report.reloaded, "{}: the first apply reloads", t.what());
    }
    assert_no_drift(t, sites, "after the first apply").await;

    let again = apply_ok(t, sites, "the same apply again").await;
    assert_eq!(
        again,
        ApplyReport::default(),
        "{}: applying the live set again changes nothing and does not reload",
        t.what()
    );
    assert_no_drift(t, sites, "after the second apply").await;
}

pub(super) async fn check_apply_is_atomic(
    t: &dyn Target,
    sites: &[Website],
    rejected: &Website,
    snapshot: Option<Snapshot<'_>>,
) {
    assert!(
        !sites.iter().any(|s| s.id == rejected.id),
        "the rejected site must have an id of its own"
    );
    // The refusal must come from the real server, not from rendering.
    let rejected_files = t.files(rejected);
    apply_ok(t, sites, "applying the good sites").await;
    let before = snapshot.map(|s| s());

    let mut with_rejected = sites.to_vec();
    with_rejected.push(rejected.clone());
    match t.apply(&with_rejected).await {
        Err(Error::Validation { tool, output }) => {
            assert!(
                !tool.is_empty(),
                "{}: a validation error names its tool ({output})",
                t.what()
            );
        }
        other => panic!(
            "{}: applying site {} must fail with Error::Validation, got {other:?}",
            t.what(),
            rejected.id
        ),
    }

    if let (Some(snapshot), Some(before)) = (snapshot, before) {
        assert_same_tree(
            &before,
            &snapshot(),
            &format!("{} after a refused apply", t.what()),
        );
    }
    assert_no_drift(t, sites, "after a refused apply").await;
    let drift = drift_ok(t, &with_rejected, "after a refused apply").await;
    assert_exactly_missing(
        t,
        &drift,
        &rejected_files,
        "the refused site must not be live",
    );
}

pub(super) async fn check_remove_leaves_nothing_behind(
    t: &dyn Target,
    kept: &[Website],
    removed: &[Website],
    snapshot: Option<Snapshot<'_>>,
) {
    let all: Vec<Website> = kept.iter().chain(removed).cloned().collect();
    assert_distinct_ids(&all);
    apply_ok(t, &all, "applying every site").await;
    let gone: Vec<RenderedFile> = removed.iter().flat_map(|s| t.files(s)).collect();

    let report = apply_ok(t, kept, "leaving sites out").await;
    for file in &gone {
        assert!(
            report.removed.iter().any(|p| same_file(p, &file.path)),
            "{}: the report does not name {} as removed: {:?}",
            t.what(),
            file.path,
            report.removed
        );
    }
    assert!(
        report.changed.is_empty(),
        "{}: taking sites out changes no other site, yet {:?} changed",
        t.what(),
        report.changed
    );
    if !gone.is_empty() {
        assert!(report.reloaded, "{}: removing files reloads", t.what());
    }

    assert_no_drift(t, kept, "after leaving sites out").await;
    let drift = drift_ok(t, &all, "after leaving sites out").await;
    assert_exactly_missing(t, &drift, &gone, "the left-out sites must not be live");
    if let Some(snapshot) = snapshot {
        let live = snapshot();
        for file in &gone {
            let left: Vec<&PathBuf> = live
                .keys()
                .filter(|p| p.ends_with(file.path.as_str()))
                .collect();
            assert!(
                left.is_empty(),
                "{}: {} of a removed site is still live: {left:?}",
                t.what(),
                file.path
            );
        }
    }
}

pub(super) async fn check_drift_is_reported(t: &dyn Target, sites: &[Website], tamper: Tamper<'_>) {
    let (site, file) = sites
        .iter()
        .find_map(|s| t.files(s).into_iter().next().map(|f| (s, f)))
        .unwrap_or_else(|| panic!("{}: no site in the set has a file to tamper with", t.what()));
    apply_ok(t, sites, "applying the sites").await;
    assert_no_drift(t, sites, "after the apply").await;

    tamper(site, &file);
    let drift = drift_ok(t, sites, "after tampering").await;
    assert!(
        drift.iter().any(|d| same_file(drift_path(d), &file.path)),
        "{}: drift does not name the tampered file {}: {drift:?}",
        t.what(),
        file.path
    );

    let report = apply_ok(t, sites, "repairing the tampered file").await;
    assert!(
        report.changed.contains(&site.id),
        "{}: the repair reports site {} as changed: {report:?}",
        t.what(),
        site.id
    );
    assert!(report.reloaded, "{}: the repair reloads", t.what());
    assert_no_drift(t, sites, "after the repair").await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_names_are_told_from_parts_of_longer_ones() {
        assert!(mentions("server_name example.com;", "example.com"));
        assert!(mentions("http://example.com:8080 {", "example.com"));
        assert!(mentions(
            "map site1 www.example.com, example.com",
            "example.com"
        ));
        assert!(!mentions("server_name www.example.com;", "example.com"));
        assert!(!mentions("server_name example.com.au;", "example.com"));
        assert!(!mentions("server_name myexample.com;", "example.com"));
    }

    #[test]
    fn reported_paths_may_sit_under_a_directory_of_the_backend() {
        let p = |s: &str| s.parse::<ConfinedPath>().expect("path");
        assert!(same_file(&p("sites/site1.conf"), &p("sites/site1.conf")));
        assert!(same_file(
            &p("8.2/pool.d/site1.conf"),
            &p("pool.d/site1.conf")
        ));
        assert!(!same_file(
            &p("8.2/pool.d/site11.conf"),
            &p("pool.d/site1.conf")
        ));
        assert!(!same_file(&p("xsites/site1.conf"), &p("sites/site1.conf")));
    }

    #[test]
    fn sample_sites_are_distinct_and_renaming_keeps_www_pairs() {
        let users = vec!["owner".parse::<SystemUser>().expect("user")];
        let sites = sample_sites_with_tls(WebServerKind::Nginx, &users);
        let ids: BTreeSet<_> = sites.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), sites.len());
        let names: BTreeSet<_> = sites.iter().flat_map(names_of).collect();
        assert_eq!(
            names.len(),
            sites.iter().map(|s| 1 + s.aliases.len()).sum::<usize>()
        );
        let www = domain_name("www.example.com");
        assert_eq!(
            renamed(&www).as_str().strip_prefix("www."),
            Some(renamed(&domain_name("example.com")).as_str())
        );
    }
}
