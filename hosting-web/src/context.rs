//! The typed context every site template renders from: what a site's settings and the node's
//! layout mean for a virtual host, decided once here so the three servers agree.

use std::collections::BTreeSet;
use std::path::Path;

use hosting_core::directives::DirectivePolicy;
use hosting_core::model::{Ssl, Website, WebsiteStatus};
use hosting_core::types::{DomainName, IpNetwork, PhpVersion, WebServerKind};
use hosting_core::{Error, HostLayout, Result};
use serde::Serialize;

use crate::policy::{Directive, operator_directives, tenant_directives};
use crate::templates::word_problem;

/// The ports a node's web server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Plain HTTP (80).
    pub http: u16,
    /// HTTPS (443).
    pub https: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            http: 80,
            https: 443,
        }
    }
}

/// Where a web server writes the sites' access and error logs.
///
/// The default is [`LogMode::Shared`], because per-site files do not survive scale. NGINX and
/// Apache open every log file named in the configuration when they load it (`nginx -t` too),
/// in the master, and every worker inherits them; during a graceful reload the old and the new
/// configuration hold theirs at once. Two files per site therefore cost two descriptors per
/// site in every server process: about 500 sites already fail under the common 1,024
/// open-files soft limit, and 10,000 sites (20,000 descriptors) cannot run at all under a hard
/// cap of 20,000, which root cannot raise on some hosts. NGINX cannot spread per-site error
/// logs lazily either: `error_log` takes no variables, so each one is a file opened at load
/// time. The shared mode costs two descriptors whatever the number of sites, and keeps the
/// site in every line, so per-site views can be cut from it (by a log shipper or the panel).
/// Choose [`LogMode::PerSite`] on small nodes where separate files per site are wanted and
/// the open-files limit of the server's processes covers two per site plus connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LogMode {
    /// One access log for every site, `SERVER_ROOT/logs/access.log`, in the `vhost_combined`
    /// format: Apache's combined format headed by the site's server name and port
    /// (`$server_name:$server_port` in NGINX, `%v:%{local}p` in Apache; the server name is the
    /// first name of the server block or virtual host that answered, always one of the
    /// site's own names). Errors go to the server's main error log,
    /// `SERVER_ROOT/logs/error.log`, where NGINX names the `server` and `host` of each
    /// request's error and Apache writes the virtual host's name (`%v`) in every line.
    #[default]
    Shared,
    /// One access log and one error log per site, at the layout's paths
    /// ([`HostLayout::site`]): two open descriptors per site in every server process.
    PerSite,
}

/// Everything a site template may use. Strings are validated types or paths checked by
/// [`config_path`]; nothing here is free text.
#[derive(Debug, Serialize)]
pub(crate) struct SiteContext<'a> {
    /// `site<ID>`: names files, the OpenLiteSpeed virtual host and its FastCGI app.
    pub name: String,
    /// Every name the site answers to: the domain, then the aliases.
    pub names: Vec<&'a DomainName>,
    /// The names that serve the site (the others redirect); never empty.
    pub serving_names: Vec<&'a DomainName>,
    /// The `www.` redirects between the site's own names.
    pub redirects: Vec<Redirect<'a>>,
    /// The site's home directory.
    pub home: String,
    /// The document root.
    pub document_root: String,
    /// Whether the site writes its own log files (`per_site`) or the server's shared ones
    /// (`shared`).
    pub log_mode: LogMode,
    /// The site's own access log, written in [`LogMode::PerSite`] only.
    pub access_log: String,
    /// The site's own error log, written in [`LogMode::PerSite`] only.
    pub error_log: String,
    /// PHP through FastCGI; `None` for a static site.
    pub php: Option<Php>,
    /// HTTPS; `None` for plain HTTP.
    pub tls: Option<Tls>,
    /// The plain HTTP port.
    pub http_port: u16,
    /// The HTTPS port.
    pub https_port: u16,
    /// Compress responses.
    pub gzip: bool,
    /// Cache lifetime of static files, in seconds.
    pub cache_ttl_secs: Option<u32>,
    /// Send the standard security headers.
    pub security_headers: bool,
    /// When not empty, only these networks are served.
    pub allowed_ips: &'a BTreeSet<IpNetwork>,
    /// These networks are refused.
    pub blocked_ips: &'a BTreeSet<IpNetwork>,
    /// The tenant's directives the server's policy accepts, in order, site paths absolute.
    pub extra_directives: Vec<Directive>,
    /// The operator's directives, in order, as they are.
    pub operator_directives: Vec<Directive>,
    /// The site is suspended: its names answer 403 with a short page, and nothing else.
    pub suspended: bool,
}

/// One name that answers with a permanent redirect to another of the site's names.
#[derive(Debug, Serialize)]
pub(crate) struct Redirect<'a> {
    /// The redirected name.
    pub from: &'a DomainName,
    /// `from` as a regular expression that matches only itself (dots as `[.]`), unanchored.
    pub from_pattern: String,
    /// Scheme, canonical name and non-default port, without a path: `https://www.example.com`.
    pub target: String,
}

/// The site's FastCGI endpoint.
#[derive(Debug, Serialize)]
pub(crate) struct Php {
    /// Which version serves it.
    pub version: PhpVersion,
    /// The pool's socket, from the layout.
    pub socket: String,
}

/// The site's certificate files, from the layout.
#[derive(Debug, Serialize)]
pub(crate) struct Tls {
    /// Certificate chain (PEM).
    pub certificate: String,
    /// Private key (PEM).
    pub certificate_key: String,
}

impl<'a> SiteContext<'a> {
    /// The context of `site` on a node laid out as `layout`, for the server `kind`, whose
    /// tenant directives must pass `policy`.
    pub(crate) fn new(
        site: &'a Website,
        layout: &HostLayout,
        ports: Ports,
        kind: WebServerKind,
        log_mode: LogMode,
        policy: &DirectivePolicy,
    ) -> Result<Self> {
        if site.web_server != kind {
            return Err(Error::Invalid {
                field: "web_server".into(),
                reason: format!(
                    "site {} is served by {}, so the {kind} backend does not render it",
                    site.id, site.web_server
                )
                .into(),
            });
        }
        let paths = layout.site(site);
        let settings = &site.settings;
        let tls = match settings.ssl {
            Ssl::Disabled => None,
            Ssl::Enabled { .. } => Some(Tls {
                certificate: config_path("certificate", &paths.certificate)?,
                certificate_key: config_path("certificate_key", &paths.certificate_key)?,
            }),
        };
        let php = match (site.php_version, &paths.php_socket) {
            (Some(version), Some(socket)) => Some(Php {
                version,
                socket: config_path("php_socket", socket)?,
            }),
            _ => None,
        };
        let names = site_names(site);
        let target_base = |to: &DomainName| match (&tls, ports) {
            (Some(_), Ports { https: 443, .. }) => format!("https://{to}"),
            (Some(_), Ports { https, .. }) => format!("https://{to}:{https}"),
            (None, Ports { http: 80, .. }) => format!("http://{to}"),
            (None, Ports { http, .. }) => format!("http://{to}:{http}"),
        };
        let redirects: Vec<Redirect<'a>> = settings
            .www_redirect
            .pairs(&names)
            .into_iter()
            .map(|(from, to)| Redirect {
                from,
                from_pattern: from.as_str().replace('.', "[.]"),
                target: target_base(to),
            })
            .collect();
        let serving_names = names
            .iter()
            .copied()
            .filter(|n| !redirects.iter().any(|r| r.from == *n))
            .collect();
        Ok(Self {
            name: paths.name.clone(),
            names,
            serving_names,
            redirects,
            home: config_path("home", &paths.home)?,
            document_root: config_path("document_root", &paths.document_root)?,
            log_mode,
            access_log: config_path("access_log", &paths.access_log)?,
            error_log: config_path("error_log", &paths.error_log)?,
            php,
            tls,
            http_port: ports.http,
            https_port: ports.https,
            gzip: settings.gzip,
            cache_ttl_secs: settings.cache_ttl_secs,
            security_headers: settings.security_headers,
            allowed_ips: &settings.allowed_ips,
            blocked_ips: &settings.blocked_ips,
            extra_directives: tenant_directives(policy, site, &paths.home),
            operator_directives: operator_directives(site),
            suspended: site.status == WebsiteStatus::Suspended,
        })
    }
}

/// Every name `site` answers to, the domain first, each once.
fn site_names(site: &Website) -> Vec<&DomainName> {
    let mut names: Vec<&DomainName> = Vec::with_capacity(1 + site.aliases.len());
    for name in std::iter::once(&site.domain).chain(&site.aliases) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The first name `site`'s own server block serves (the domain, unless a `www.` redirect sends
/// it to its counterpart): the name the health check asks for.
pub(crate) fn first_serving_name(site: &Website) -> &DomainName {
    let names = site_names(site);
    let redirected = site.settings.www_redirect.pairs(&names);
    names
        .iter()
        .copied()
        .find(|n| !redirected.iter().any(|(from, _)| from == n))
        .unwrap_or(&site.domain)
}

/// `path` as text for a configuration file: absolute, UTF-8, no `.` or `..` components, and
/// only letters, digits and `. _ - / + @`, so it needs no quoting in any server's syntax.
/// `field` names the path in the error.
pub(crate) fn config_path(field: &str, path: &Path) -> Result<String> {
    let refuse = |reason: String| Error::Invalid {
        field: field.to_owned().into(),
        reason: format!("{}: {reason}", path.display()).into(),
    };
    let text = path
        .to_str()
        .ok_or_else(|| refuse("is not valid UTF-8".to_owned()))?;
    if !path.is_absolute() {
        return Err(refuse("must be absolute".to_owned()));
    }
    if text.split('/').any(|part| part == "." || part == "..") {
        return Err(refuse("must not contain '.' or '..' components".to_owned()));
    }
    if let Some(c) = text
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "._-/+@".contains(c)))
    {
        return Err(refuse(format!(
            "{c:?} is not allowed; paths written into server configuration hold letters, digits and . _ - / + @ only"
        )));
    }
    if let Some(why) = word_problem(text) {
        return Err(refuse(why));
    }
    Ok(text.to_owned())
}

/// Checks every directory of `layout` once, so a node with an unusable layout is refused when
/// its backend is built rather than at its first render.
pub(crate) fn check_layout(layout: &HostLayout) -> Result<()> {
    config_path("layout.sites_root", &layout.sites_root)?;
    config_path("layout.php_run_dir", &layout.php_run_dir)?;
    config_path("layout.log_dir", &layout.log_dir)?;
    config_path("layout.cert_dir", &layout.cert_dir)?;
    Ok(())
}
