//! The desired-state file: TOML, parsed straight into the SDK's validated types at the boundary.
//!
//! Every value that ends up in a server configuration is one of hosting-core's newtypes
//! (`DomainName`, `PhpVersion`, `SystemUser`, `ConfinedPath`, `WebsiteSettings`, ...), whose
//! `Deserialize` runs the same checks as their parsers, so a bad value is refused here, with
//! the field's name, before anything is rendered or touched. A site's `extra_directives` must
//! also pass the node's web server's directive policy, as they must in the panel; the
//! operator's own directives (`operator_directives`) are taken as written, since the state
//! file is the operator's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hosting_core::accounts::derived_account_name;
use hosting_core::model::{
    ExtraDirectives, NodeId, TenantId, UserId, Website, WebsiteId, WebsiteSettings, WebsiteStatus,
    check_domains,
};
use hosting_core::types::{ConfinedPath, DomainName, PhpVersion, SystemUser, WebServerKind};
use hosting_core::{DirectivePolicy, UidRange};
use hosting_web::{APACHE_POLICY, NGINX_POLICY, Ports};
use serde::{Deserialize, Serialize};

use crate::error::invalid;

/// The tenant, owner and node every site of a state file is recorded under. A state file
/// describes one machine, not a panel: there is no tenant or user table behind it, and the
/// renderers never read these ids. `0` is never assigned by a panel store, so a record made by
/// `hostctl` cannot be mistaken for a panel's.
pub const LOCAL_TENANT: TenantId = TenantId(0);
/// See [`LOCAL_TENANT`].
pub const LOCAL_OWNER: UserId = UserId(0);
/// See [`LOCAL_TENANT`].
pub const LOCAL_NODE: NodeId = NodeId(0);

/// The creation and change time of every site: the Unix epoch. Nothing renders them, and fixed
/// values keep the recorded state a pure function of the state file, so `plan` compares like
/// with like and re-applying an unchanged file records identical bytes.
pub const TIMESTAMP: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// Where the servers come from and where their files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Everything under `--root`: hostctl starts and supervises nginx/Apache and every PHP-FPM
    /// master itself (tests, developer machines, unprivileged nodes).
    Prefix,
    /// Debian's paths (`/srv/www`, `/run/php`, `/var/log/hosting`, `/etc/hosting/certs`) and
    /// Debian's own nginx or apache2 and `phpX.Y-fpm` services, reloaded (or started) through
    /// their init scripts; the distro's configuration stays the operator's, with one include
    /// file per server added. The web server's generations live under `--root` (use
    /// `/var/lib/hosting`), the PHP pools under `/etc/hosting/php`.
    System,
}

impl Mode {
    /// `prefix` or `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Prefix => "prefix",
            Mode::System => "system",
        }
    }
}

/// One extra PHP-FPM installation at its own prefix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhpInstallEntry {
    /// Its FPM binary.
    pub fpm_binary: PathBuf,
    /// The php.ini passed with `-c`.
    pub php_ini: Option<PathBuf>,
    /// Its ini scan directory (`PHP_INI_SCAN_DIR`, set for its own commands only).
    pub scan_dir: Option<PathBuf>,
}

/// A web server hostctl runs itself: the built-in ones it can validate and supervise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeServer {
    /// NGINX.
    Nginx,
    /// Apache.
    Apache,
}

impl NodeServer {
    /// `nginx` or `apache`, as [`WebServerKind`] shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeServer::Nginx => "nginx",
            NodeServer::Apache => "apache",
        }
    }

    /// The directives a site's `extra_directives` may use on this server: the panel's rules.
    pub fn directive_policy(self) -> DirectivePolicy {
        match self {
            NodeServer::Nginx => NGINX_POLICY,
            NodeServer::Apache => APACHE_POLICY,
        }
    }
}

/// The error is the rule `node.web_server` breaks, so every kind hostctl cannot run is refused
/// by name instead of falling back to nginx.
impl TryFrom<WebServerKind> for NodeServer {
    type Error = String;
    fn try_from(kind: WebServerKind) -> Result<Self, String> {
        match kind {
            WebServerKind::Nginx => Ok(NodeServer::Nginx),
            WebServerKind::Apache => Ok(NodeServer::Apache),
            WebServerKind::Plugin(name) => Err(format!(
                "hostctl node serves nginx and apache; web_server {name} is a plugin, which \
                 hostctl cannot load (a plugin's WebServer is run by the program that embeds \
                 the SDK, see examples/caddy-plugin)"
            )),
            other => Err(format!(
                "{other} is not supported by hostctl node (the SDK renders it but cannot \
                 validate or run it); use nginx or apache"
            )),
        }
    }
}

/// The `[node]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// nginx or Apache.
    pub web_server: WebServerKind,
    /// Prefix or system.
    pub mode: Mode,
    /// The ports every site listens on.
    pub ports: Ports,
    /// nginx also listens on `[::]`.
    pub listen_ipv6: bool,
    /// The nginx binary.
    pub nginx_binary: PathBuf,
    /// The Apache binary.
    pub apache_binary: PathBuf,
    /// Extra PHP installations, in file order.
    pub php: Vec<PhpInstallEntry>,
    /// The uids and gids of the accounts hostctl creates for sites (as root).
    pub uid_range: UidRange,
}

/// How a site's Unix account is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChoice {
    /// No `system_user`: hostctl gives the site an account of its own, named after its domain
    /// (created by `apply` as root; the current user without root).
    Own,
    /// `system_user` without `adopt_account`: an account hostctl created (for another site, or
    /// in this apply), or the current user without root.
    Named,
    /// `system_user` with `adopt_account = true`: an existing account of the operator's (uid
    /// and gid 1000 or above), used as is and never removed by hostctl.
    Adopted,
}

/// One `[[site]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    /// Its position in the file (`site[i]` in messages).
    pub index: usize,
    /// The SDK's website record. Its `system_user` is the named account, or for
    /// [`AccountChoice::Own`] the name derived from the domain until the accounts are resolved
    /// (`crate::accounts::resolve`), which may pick another (`-2`, ... when it is taken).
    pub site: Website,
    /// How its account is chosen.
    pub account: AccountChoice,
}

/// A parsed, checked state file.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredState {
    /// The `[node]` table.
    pub node: NodeSettings,
    /// Every `[[site]]`, sorted by id.
    pub sites: Vec<SiteSpec>,
}

impl DesiredState {
    /// The website records, sorted by id (accounts not resolved yet).
    pub fn websites(&self) -> Vec<Website> {
        self.sites.iter().map(|s| s.site.clone()).collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    node: RawNode,
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    web_server: WebServerKind,
    mode: Mode,
    #[serde(default = "default_http_port")]
    http_port: u16,
    #[serde(default = "default_https_port")]
    https_port: u16,
    listen_ipv6: Option<bool>,
    nginx_binary: Option<PathBuf>,
    apache_binary: Option<PathBuf>,
    #[serde(default)]
    php: Vec<PhpInstallEntry>,
    uid_range: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: i64,
    domain: DomainName,
    #[serde(default)]
    aliases: Vec<DomainName>,
    php_version: Option<PhpVersion>,
    system_user: Option<SystemUser>,
    #[serde(default)]
    adopt_account: bool,
    document_root: Option<ConfinedPath>,
    #[serde(default)]
    settings: WebsiteSettings,
    #[serde(default)]
    operator_directives: ExtraDirectives,
}

fn default_http_port() -> u16 {
    80
}

fn default_https_port() -> u16 {
    443
}

/// The document root when a site names none.
pub const DEFAULT_DOCUMENT_ROOT: &str = "public";

/// Reads and checks the state file at `path`. Every problem is an invalid-input error.
pub fn load(path: &Path) -> anyhow::Result<DesiredState> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "cannot read the state file {}: {e}",
            path.display()
        ))
    })?;
    parse(&text).map_err(|e| invalid(format!("invalid state file {}: {e}", path.display())))
}

/// Parses and checks a state file's text; the error names the field and the rule.
pub fn parse(text: &str) -> Result<DesiredState, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    let node = check_node(raw.node)?;
    let server =
        NodeServer::try_from(node.web_server).map_err(|rule| format!("node.web_server: {rule}"))?;
    let policy = server.directive_policy();
    let mut sites = Vec::with_capacity(raw.site.len());
    let mut ids: BTreeMap<i64, usize> = BTreeMap::new();
    let mut names: BTreeMap<DomainName, usize> = BTreeMap::new();
    for (i, site) in raw.site.into_iter().enumerate() {
        if site.id < 1 {
            return Err(format!("site[{i}].id: must be a positive integer"));
        }
        if let Some(first) = ids.insert(site.id, i) {
            return Err(format!(
                "site[{i}].id: {} is already the id of site[{first}]",
                site.id
            ));
        }
        check_domains(&site.domain, &site.aliases)
            .map_err(|e| format!("site[{i}].{}: {}", e.field, e.rule))?;
        let named = std::iter::once(("domain".to_owned(), &site.domain)).chain(
            site.aliases
                .iter()
                .enumerate()
                .map(|(j, alias)| (format!("aliases[{j}]"), alias)),
        );
        for (field, name) in named {
            if let Some(first) = names.insert(name.clone(), i) {
                return Err(format!(
                    "site[{i}].{field}: {name} is already a name of site[{first}]"
                ));
            }
        }
        let document_root = match site.document_root {
            Some(root) => root,
            None => DEFAULT_DOCUMENT_ROOT
                .parse()
                .map_err(|e| format!("site[{i}].document_root: {e}"))?,
        };
        policy
            .check(site.settings.extra_directives.as_slice())
            .map_err(|e| {
                format!(
                    "site[{i}].settings.{}: {} (the operator's own directives go in the \
                     site's operator_directives)",
                    e.field, e.rule
                )
            })?;
        let (system_user, account) = match (site.system_user, site.adopt_account) {
            (Some(name), false) => (name, AccountChoice::Named),
            (Some(name), true) => (name, AccountChoice::Adopted),
            (None, false) => (first_derived_name(&site.domain, i)?, AccountChoice::Own),
            (None, true) => {
                return Err(format!(
                    "site[{i}].adopt_account: names no account; set system_user to the \
                     existing account to adopt"
                ));
            }
        };
        let mut settings = site.settings;
        settings.operator_directives = site.operator_directives;
        sites.push(SiteSpec {
            index: i,
            site: Website {
                id: WebsiteId(site.id),
                tenant_id: LOCAL_TENANT,
                owner_id: LOCAL_OWNER,
                domain: site.domain,
                aliases: site.aliases,
                node_id: LOCAL_NODE,
                web_server: node.web_server,
                php_version: site.php_version,
                system_user,
                document_root,
                status: WebsiteStatus::Active,
                settings,
                created_at: TIMESTAMP,
                updated_at: TIMESTAMP,
            },
            account,
        });
    }
    sites.sort_by_key(|s| s.site.id);
    Ok(DesiredState { node, sites })
}

/// How many derived names are tried for one site (`name`, `name-2`, ...).
pub const DERIVED_ATTEMPTS: u32 = 32;

/// The first valid account name derived from `domain` (a derived name can be a reserved one,
/// such as `www-data` for `www.data`; the next attempt is not).
fn first_derived_name(domain: &DomainName, i: usize) -> Result<SystemUser, String> {
    (0..DERIVED_ATTEMPTS)
        .find_map(|attempt| derived_account_name(domain, attempt).ok())
        .ok_or_else(|| format!("site[{i}].domain: no account name can be derived from {domain}"))
}

fn check_node(raw: RawNode) -> Result<NodeSettings, String> {
    NodeServer::try_from(raw.web_server).map_err(|rule| format!("node.web_server: {rule}"))?;
    if raw.http_port == 0 {
        return Err("node.http_port: must be 1 to 65535".to_owned());
    }
    if raw.https_port == 0 {
        return Err("node.https_port: must be 1 to 65535".to_owned());
    }
    if raw.http_port == raw.https_port {
        return Err("node.https_port: must differ from node.http_port".to_owned());
    }
    for (key, path) in [
        ("nginx_binary", &raw.nginx_binary),
        ("apache_binary", &raw.apache_binary),
    ] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(format!("node.{key}: must not be empty"));
        }
    }
    for (i, php) in raw.php.iter().enumerate() {
        for (key, path) in [
            ("fpm_binary", Some(&php.fpm_binary)),
            ("php_ini", php.php_ini.as_ref()),
            ("scan_dir", php.scan_dir.as_ref()),
        ] {
            if path.is_some_and(|p| !p.is_absolute()) {
                return Err(format!("node.php[{i}].{key}: must be an absolute path"));
            }
        }
    }
    Ok(NodeSettings {
        web_server: raw.web_server,
        mode: raw.mode,
        ports: Ports {
            http: raw.http_port,
            https: raw.https_port,
        },
        listen_ipv6: raw.listen_ipv6.unwrap_or(raw.mode == Mode::System),
        nginx_binary: raw
            .nginx_binary
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx")),
        apache_binary: raw
            .apache_binary
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/apache2")),
        php: raw.php,
        uid_range: match raw.uid_range {
            Some(range) => range
                .parse()
                .map_err(|e: hosting_core::InvalidValue| format!("node.uid_range: {}", e.rule))?,
            None => UidRange::DEFAULT,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [node]
        web_server = "nginx"
        mode = "prefix"
        http_port = 8080
        https_port = 8443

        [[node.php]]
        fpm_binary = "/opt/php/8.4/sbin/php-fpm"
        php_ini = "/opt/php/8.4/php.ini"

        [[site]]
        id = 2
        domain = "Shop.Example.com"
        aliases = ["www.shop.example.com"]
        php_version = "8.2"
        system_user = "shop"
        document_root = "public_html"
        [site.settings]
        gzip = true
        www_redirect = "to_apex"

        [[site]]
        id = 1
        domain = "static.example.com"
    "#;

    fn error_of(text: &str) -> String {
        parse(text).expect_err("refused")
    }

    fn with_site(site: &str) -> String {
        format!("[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\n\n[[site]]\n{site}")
    }

    #[test]
    fn a_good_file_becomes_checked_website_records() {
        let state = parse(GOOD).expect("parses");
        assert_eq!(state.node.ports.http, 8080);
        assert!(!state.node.listen_ipv6, "prefix mode defaults to IPv4 only");
        assert_eq!(state.node.nginx_binary, PathBuf::from("/usr/sbin/nginx"));
        assert_eq!(state.node.php.len(), 1);
        assert_eq!(state.node.uid_range, UidRange::DEFAULT);
        let ids: Vec<i64> = state.sites.iter().map(|s| s.site.id.0).collect();
        assert_eq!(ids, [1, 2], "sorted by id");
        assert_eq!(state.sites[1].index, 0, "the position in the file");
        let shop = &state.sites[1].site;
        assert_eq!(shop.domain.as_str(), "shop.example.com", "lower-cased");
        assert_eq!(shop.php_version, Some(PhpVersion::V8_2));
        assert_eq!(shop.document_root.as_str(), "public_html");
        assert!(shop.settings.gzip);
        assert_eq!(shop.web_server, WebServerKind::Nginx);
        assert_eq!(
            (shop.tenant_id, shop.owner_id, shop.node_id),
            (LOCAL_TENANT, LOCAL_OWNER, LOCAL_NODE)
        );
        assert_eq!(shop.status, WebsiteStatus::Active);
        assert_eq!(shop.created_at, TIMESTAMP);
        assert_eq!(state.sites[1].account, AccountChoice::Named);
        let plain = &state.sites[0].site;
        assert_eq!(plain.php_version, None);
        assert_eq!(plain.document_root.as_str(), DEFAULT_DOCUMENT_ROOT);
        assert_eq!(plain.settings, WebsiteSettings::default());
        assert_eq!(state.sites[0].account, AccountChoice::Own);
        assert_eq!(
            plain.system_user.as_str(),
            "static-example-com",
            "derived from the domain until resolved"
        );
    }

    #[test]
    fn accounts_are_derived_named_or_adopted() {
        let state = parse(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\nuid_range = \"30000-30099\"\n\
             [[site]]\nid = 1\ndomain = \"www.data\"\n\
             [[site]]\nid = 2\ndomain = \"b.example.com\"\nsystem_user = \"legacy\"\nadopt_account = true\n",
        )
        .expect("parses");
        assert_eq!(state.node.uid_range, "30000-30099".parse().expect("range"));
        assert_eq!(
            state.sites[0].site.system_user.as_str(),
            "www-data-2",
            "www-data is reserved: the next derived name"
        );
        assert_eq!(state.sites[1].account, AccountChoice::Adopted);
        let err = error_of(&with_site(
            "id = 1\ndomain = \"a.example.com\"\nadopt_account = true",
        ));
        assert!(err.starts_with("site[0].adopt_account:"), "{err}");
        let err = error_of(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\nuid_range = \"100-200\"\n",
        );
        assert!(
            err.starts_with("node.uid_range: must start at 1000"),
            "{err}"
        );
        let err =
            error_of("[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\nuid_range = \"20000\"\n");
        assert!(err.starts_with("node.uid_range:"), "{err}");
    }

    #[test]
    fn extra_directives_pass_the_web_servers_policy_and_operator_directives_are_the_operators() {
        let err = error_of(&with_site(
            "id = 1\ndomain = \"a.example.com\"\n[site.settings]\nextra_directives = [\
             { name = \"client_max_body_size\", args = [\"64m\"] },\
             { name = \"access_log\", args = [\"/etc/x.log\"] }]",
        ));
        assert!(
            err.starts_with(
                "site[0].settings.extra_directives[1].name: 'access_log' is not a directive"
            ),
            "{err}"
        );
        let err = error_of(&with_site(
            "id = 1\ndomain = \"a.example.com\"\n[site.settings]\nextra_directives = [\
             { name = \"client_max_body_size\", args = [\"lots\"] }]",
        ));
        assert!(
            err.starts_with("site[0].settings.extra_directives[0].args[0]: must be a size"),
            "{err}"
        );
        // Apache's policy for an Apache node.
        let err = error_of(
            "[node]\nweb_server = \"apache\"\nmode = \"prefix\"\n[[site]]\nid = 1\n\
             domain = \"a.example.com\"\n[site.settings]\nextra_directives = [\
             { name = \"client_max_body_size\", args = [\"64m\"] }]",
        );
        assert!(
            err.starts_with("site[0].settings.extra_directives[0].name"),
            "{err}"
        );
        // Operator directives are the operator's, outside the policy.
        let state = parse(&with_site(
            "id = 1\ndomain = \"a.example.com\"\n\
             operator_directives = [{ name = \"access_log\", args = [\"/var/log/x.log\"] }]\n\
             [site.settings]\nextra_directives = [{ name = \"client_max_body_size\", args = [\"64m\"] }]",
        ))
        .expect("parses");
        let settings = &state.sites[0].site.settings;
        assert_eq!(settings.operator_directives.as_slice().len(), 1);
        assert_eq!(
            settings.operator_directives.as_slice()[0].name.as_str(),
            "access_log"
        );
        assert_eq!(settings.extra_directives.as_slice().len(), 1);
        // Never inside settings, where a tenant's settings would be.
        let err = error_of(&with_site(
            "id = 1\ndomain = \"a.example.com\"\n[site.settings]\n\
             operator_directives = [{ name = \"access_log\", args = [\"/var/log/x.log\"] }]",
        ));
        assert!(err.contains("operator_directives"), "{err}");
    }

    #[test]
    fn values_that_could_break_out_of_a_config_are_refused_naming_the_field() {
        for (site, field) in [
            (
                "id = 1\ndomain = \"evil.com; rm -rf /\"\nsystem_user = \"u\"",
                "domain",
            ),
            (
                "id = 1\ndomain = \"a.example.com\"\nsystem_user = \"root\"",
                "system_user",
            ),
            (
                "id = 1\ndomain = \"a.example.com\"\nsystem_user = \"u\"\ndocument_root = \"../etc\"",
                "path",
            ),
            (
                "id = 1\ndomain = \"a.example.com\"\nsystem_user = \"u\"\nphp_version = \"7.4\"",
                "php_version",
            ),
            (
                "id = 1\ndomain = \"a.example.com\"\nsystem_user = \"u\"\n[site.settings]\nallowed_ips = [\"10.0.0.1/8\"]",
                "ip",
            ),
        ] {
            let err = error_of(&with_site(site));
            assert!(err.contains(&format!("invalid {field}")), "{field}: {err}");
        }
    }

    #[test]
    fn structural_mistakes_are_refused_naming_the_key() {
        let err = error_of(&with_site(
            "id = 1\ndomain = \"a.example.com\"\nsystem_user = \"u\"\ncolour = \"red\"",
        ));
        assert!(err.contains("colour"), "{err}");
        let err = error_of(&with_site("id = 1\nsystem_user = \"u\""));
        assert!(err.contains("domain"), "{err}");
        let err = error_of("[node]\nweb_server = \"openlitespeed\"\nmode = \"prefix\"\n");
        assert!(err.contains("node.web_server"), "{err}");
        let err = error_of("[node]\nweb_server = \"Caddy\"\nmode = \"prefix\"\n");
        assert!(err.contains("web_server"), "{err}");
        let err = error_of("[node]\nweb_server = \"nginx\"\nmode = \"cloud\"\n");
        assert!(err.contains("mode"), "{err}");
        let err = error_of(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\nhttp_port = 8080\nhttps_port = 8080\n",
        );
        assert!(err.contains("node.https_port"), "{err}");
        let err = error_of(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\n[[node.php]]\nfpm_binary = \"php-fpm\"\n",
        );
        assert!(err.contains("node.php[0].fpm_binary"), "{err}");
    }

    #[test]
    fn a_plugin_web_server_is_refused_by_name() {
        let err = error_of("[node]\nweb_server = \"caddy\"\nmode = \"prefix\"\n");
        assert!(
            err.contains("node.web_server: hostctl node serves nginx and apache; web_server caddy is a plugin"),
            "{err}"
        );
        let kind: WebServerKind = "caddy".parse().expect("a plugin's kind");
        assert!(NodeServer::try_from(kind).is_err());
        for (kind, server) in [
            (WebServerKind::Nginx, NodeServer::Nginx),
            (WebServerKind::Apache, NodeServer::Apache),
        ] {
            assert_eq!(NodeServer::try_from(kind), Ok(server));
            assert_eq!(server.as_str(), kind.as_str());
        }
    }

    #[test]
    fn ids_and_names_are_unique_across_sites() {
        let two = |a: &str, b: &str| format!("{}\n[[site]]\n{b}", with_site(a));
        let err = error_of(&two(
            "id = 1\ndomain = \"a.example.com\"\nsystem_user = \"u\"",
            "id = 1\ndomain = \"b.example.com\"\nsystem_user = \"u\"",
        ));
        assert!(err.contains("site[1].id"), "{err}");
        let err = error_of(&two(
            "id = 1\ndomain = \"a.example.com\"\nsystem_user = \"u\"",
            "id = 2\ndomain = \"b.example.com\"\naliases = [\"A.example.com\"]\nsystem_user = \"u\"",
        ));
        assert!(err.contains("site[1].aliases[0]"), "{err}");
        let err = error_of(&with_site(
            "id = 1\ndomain = \"a.example.com\"\naliases = [\"a.example.com\"]\nsystem_user = \"u\"",
        ));
        assert!(err.contains("site[0].aliases[0]"), "{err}");
        let err = error_of(&with_site(
            "id = 0\ndomain = \"a.example.com\"\nsystem_user = \"u\"",
        ));
        assert!(err.contains("site[0].id"), "{err}");
    }
}
