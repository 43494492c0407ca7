//! OpenLiteSpeed: per site a virtual host configuration, its server-level declaration, and the
//! listener maps that route its names to it. No OpenLiteSpeed binary runs here, so this output
//! is proven by snapshots and structure tests only (see the crate README).

use std::path::{Path, PathBuf};

use hosting_core::model::Website;
use hosting_core::types::WebServerKind;
use hosting_core::web::RenderedFile;
use hosting_core::{DirectivePolicy, Error, HostLayout, Result};

use crate::context::{LogMode, Ports, SiteContext, check_layout};
use crate::policy::OPENLITESPEED_POLICY;
use crate::stage::rendered;
use crate::templates::{OLS_MAP, OLS_VHCONF, OLS_VHOST, Templates};

/// How an [`OpenLiteSpeed`] backend is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenLiteSpeedConfig {
    /// Where the node keeps site files, sockets, logs and certificates.
    pub layout: HostLayout,
    /// A directory of operator templates; a file named like an embedded template
    /// (`openlitespeed-vhconf.conf.j2`, `openlitespeed-vhost.conf.j2`,
    /// `openlitespeed-map.conf.j2`) replaces it.
    pub template_overrides: Option<PathBuf>,
    /// The listener ports (used in redirects to a non-default HTTPS port).
    pub ports: Ports,
}

impl OpenLiteSpeedConfig {
    /// Defaults for `layout`: embedded templates, ports 80 and 443.
    pub fn new(layout: HostLayout) -> Self {
        Self {
            layout,
            template_overrides: None,
            ports: Ports::default(),
        }
    }
}

/// Renders OpenLiteSpeed configuration. Paths are relative to `$SERVER_ROOT/conf`.
#[derive(Debug)]
pub struct OpenLiteSpeed {
    config: OpenLiteSpeedConfig,
    templates: Templates,
}

impl OpenLiteSpeed {
    /// Checks the layout and compiles the templates (overrides included).
    pub fn new(config: OpenLiteSpeedConfig) -> Result<Self> {
        check_layout(&config.layout)?;
        let templates = Templates::load(
            &[OLS_VHCONF, OLS_VHOST, OLS_MAP],
            config.template_overrides.as_deref(),
        )?;
        Ok(Self { config, templates })
    }

    /// [`WebServerKind::OpenLiteSpeed`].
    pub fn kind(&self) -> WebServerKind {
        WebServerKind::OpenLiteSpeed
    }

    /// [`OPENLITESPEED_POLICY`]: what a tenant may add to its virtual host.
    pub fn directive_policy(&self) -> DirectivePolicy {
        OPENLITESPEED_POLICY
    }

    /// The files of `site`, relative to `$SERVER_ROOT/conf`:
    /// - `vhosts/site<ID>/vhconf.conf`: the virtual host itself;
    /// - `sites/site<ID>.conf`: its `virtualhost` declaration, for `httpd_config.conf` to
    ///   `include $SERVER_ROOT/conf/sites/*.conf`;
    /// - `listeners/http/site<ID>.conf` (and `listeners/https/...` with TLS): its `map` line,
    ///   for each listener block to include.
    ///
    /// Pure: the same site always gives the same bytes.
    pub fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        let context = SiteContext::new(
            site,
            &self.config.layout,
            self.config.ports,
            WebServerKind::OpenLiteSpeed,
            // No OpenLiteSpeed runs here to prove a shared form; its vhosts keep their own.
            LogMode::PerSite,
            &OPENLITESPEED_POLICY,
        )?;
        let name = &context.name;
        let map = self.templates.render(OLS_MAP.0, &context)?;
        let mut files = vec![
            rendered(
                &format!("vhosts/{name}/vhconf.conf"),
                self.templates.render(OLS_VHCONF.0, &context)?,
            )?,
            rendered(
                &format!("sites/{name}.conf"),
                self.templates.render(OLS_VHOST.0, &context)?,
            )?,
        ];
        if context.tls.is_some() {
            files.push(rendered(
                &format!("listeners/https/{name}.conf"),
                map.clone(),
            )?);
        }
        files.push(rendered(&format!("listeners/http/{name}.conf"), map)?);
        Ok(files)
    }

    /// Always [`Error::Unsupported`]: there is no OpenLiteSpeed binary to test a tree with.
    pub async fn validate(&self, _staged_root: &Path) -> Result<()> {
        Err(Error::Unsupported {
            operation: "validate",
            backend: "openlitespeed",
        })
    }
}
