//! # example-caddy-plugin
//!
//! A [`WebServer`] for Caddy 2.6, written against `hosting-core` alone: the trait, the domain
//! types, [`HostLayout`], the [`ManagedTree`] and the [`CommandRunner`] seam. It passes the same
//! conformance suite (`hosting_core::conformance::web`) as the SDK's own NGINX and Apache
//! backends; `README.md` walks through it as the guide for plugin authors.
//!
//! Per site, one Caddyfile snippet `sites/site<ID>.caddy`; one main `Caddyfile` per generation
//! that sets the global options and imports its own generation's snippets. A tenant's extra
//! directives are written only as far as [`CADDY_POLICY`] accepts them; a suspended site answers
//! every request with a 403 page. Under the server root:
//!
//! ```text
//! ROOT/managed/live -> generations/<n>   Caddyfile + sites/*.caddy of one generation
//! ROOT/run/caddy.pid                     the running caddy
//! ROOT/logs/caddy.out                    what caddy prints
//! ROOT/data, ROOT/config                 caddy's storage and autosave (instead of $HOME)
//! ```
//!
//! An apply renders every site, stages a new generation, runs `caddy validate` on it, swaps the
//! `live` symlink, then `caddy reload`s through the admin API (or starts caddy), and checks that
//! caddy serves the new generation and that every site answers. Any failure before the swap
//! leaves the live tree untouched; a failure after it points `live` back and reloads again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hosting_core::directives::{AllowedDirective, ArgRule, DirectivePolicy};
use hosting_core::model::{Ssl, Website, WebsiteId, WebsiteStatus};
use hosting_core::process::{Identity, clear_stale};
use hosting_core::system::SystemRunner;
use hosting_core::tree::{ManagedTree, Staged};
use hosting_core::types::{ConfinedPath, DomainName, PluginName, WebServerKind};
use hosting_core::{
    ApplyReport, Command, CommandRunner, Drift, Error, HostLayout, RenderedFile, Result, WebServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The name errors carry.
const BACKEND: &str = "caddy";
/// The name the main configuration answers the generation probe on; `.invalid` is never a
/// customer's domain.
const HEALTH_HOST: &str = "hosting-health.invalid";
/// The path of the generation probe.
const GENERATION_PATH: &str = "/.hosting-generation";
/// How long caddy may take to serve a new generation and every site.
const HEALTH_WAIT: Duration = Duration::from_secs(10);
/// Generations kept besides the live one.
const KEEP_GENERATIONS: usize = 2;

/// What a tenant may add to its site's block: directives written on one line each, typed so
/// that none names a file, socket or upstream of the node. (`request_body` and `basicauth`
/// need a block of their own, which a directive line cannot hold.)
pub static CADDY_POLICY: DirectivePolicy = DirectivePolicy::new(&[
    AllowedDirective {
        name: "header",
        required: &[ArgRule::HeaderName, ArgRule::HeaderValue],
        optional: &[],
        repeatable: true,
        purpose: "a response header of the site's own",
    },
    AllowedDirective {
        name: "encode",
        required: &[ArgRule::OneOf(&["gzip", "zstd"])],
        optional: &[ArgRule::OneOf(&["gzip", "zstd"])],
        repeatable: false,
        purpose: "compress responses (gzip, zstd or both, in order of preference)",
    },
]);

/// The body of the page a suspended site answers with (status 403).
const SUSPENDED_PAGE: &str = "<!DOCTYPE html><html><head><title>Site suspended</title></head>\
                              <body><h1>This site is suspended.</h1></body></html>";

/// How a [`Caddy`] backend is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CaddyConfig {
    /// Where the node keeps site files, sockets, logs and certificates.
    pub layout: HostLayout,
    /// The caddy binary, by absolute path or by name in `PATH`.
    pub binary: PathBuf,
    /// What detaches `caddy run` from the process runner: Debian's `start-stop-daemon`, by
    /// absolute path or by name in `PATH`. (`caddy start` leaves its child holding the
    /// runner's output pipes, so the runner would wait for caddy to exit.)
    pub launcher: PathBuf,
    /// The port plain-HTTP sites listen on (caddy's `http_port`).
    pub http_port: u16,
    /// The port HTTPS sites listen on (caddy's `https_port`).
    pub https_port: u16,
    /// The admin API listens on `localhost:admin_port`; `caddy reload` talks to it. Not caddy's
    /// default 2019, so another caddy on the node does not receive our configuration.
    pub admin_port: u16,
    /// Runs every process.
    pub runner: Arc<dyn CommandRunner>,
    /// Where the plugin runs caddy: its managed tree, pid file, output, storage and autosave.
    pub server_root: PathBuf,
}

impl CaddyConfig {
    /// Defaults for `layout`: `caddy` and `start-stop-daemon` from `PATH`, ports 80 and 443,
    /// admin API on `localhost:2020`, real processes, server root `/var/lib/hosting/caddy`.
    pub fn new(layout: HostLayout) -> Self {
        Self {
            layout,
            binary: PathBuf::from("caddy"),
            launcher: PathBuf::from("start-stop-daemon"),
            http_port: 80,
            https_port: 443,
            admin_port: 2020,
            runner: Arc::new(SystemRunner),
            server_root: PathBuf::from("/var/lib/hosting/caddy"),
        }
    }
}

/// Caddy as a [`WebServer`].
#[derive(Debug)]
pub struct Caddy {
    config: CaddyConfig,
    tree: ManagedTree,
}

/// A value written into a Caddyfile: letters, digits and `. _ / : = + , @ * -` only, so no value
/// can end a line, open or close a block, start a comment, quote, or hold a `{placeholder}`.
fn word<'a>(field: &'static str, value: &'a str) -> Result<&'a str> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:=+,@*-".contains(c));
    if ok {
        Ok(value)
    } else {
        Err(Error::Invalid {
            field: field.into(),
            reason: format!(
                "{value:?} cannot be written into a Caddyfile: only letters, digits and \
                 . _ / : = + , @ * - are allowed"
            )
            .into(),
        })
    }
}

/// An absolute path written into a Caddyfile, checked by [`word`].
fn config_path(field: &'static str, path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| Error::Invalid {
        field: field.into(),
        reason: format!("{} is not UTF-8", path.display()).into(),
    })?;
    if !path.is_absolute() {
        return Err(Error::Invalid {
            field: field.into(),
            reason: format!("{text} must be absolute").into(),
        });
    }
    word(field, text).map(str::to_owned)
}

/// `name args...` with every word checked by [`word`].
fn directive_line(name: &str, args: &[impl AsRef<str>]) -> Result<String> {
    let mut line = word("directive", name)?.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(word("directive_argument", arg.as_ref())?);
    }
    Ok(line)
}

/// A Caddyfile being written: tab-indented lines.
#[derive(Default)]
struct Caddyfile(String);

impl Caddyfile {
    fn line(&mut self, depth: usize, text: impl AsRef<str>) {
        for _ in 0..depth {
            self.0.push('\t');
        }
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }
}

/// `redirect` for every request except ACME HTTP-01 challenges, which are served from the
/// document root (where the panel's ACME client writes them), so a certificate can be issued or
/// renewed for a redirected name. (`handle` blocks are exclusive and tried in order; a bare
/// `redir` would run before any `handle`.)
fn redirect_except_acme(out: &mut Caddyfile, document_root: &str, redirect: &str) {
    out.line(1, "@acme path /.well-known/acme-challenge/*");
    out.line(1, "handle @acme {");
    out.line(2, format!("root * {document_root}"));
    out.line(2, "file_server");
    out.line(1, "}");
    out.line(1, "handle {");
    out.line(2, redirect);
    out.line(1, "}");
}

/// Static files that get a cache lifetime.
const STATIC_FILES: &str = "*.css *.js *.mjs *.map *.png *.jpg *.jpeg *.gif *.ico *.svg *.webp \
                            *.avif *.woff *.woff2 *.ttf *.otf *.eot *.mp4 *.webm *.pdf";

impl Caddy {
    /// What [`WebServer::kind`] reports, and the [`Website::web_server`] of the sites it takes:
    /// `caddy`, a plugin's own kind, so a panel records caddy sites and tells a caddy node
    /// from an nginx one. Checked when this crate compiles.
    pub const KIND: WebServerKind = match PluginName::new("caddy") {
        Some(name) => WebServerKind::Plugin(name),
        None => panic!("\"caddy\" is a valid plugin name"),
    };
    /// The main configuration file of a generation.
    pub const MAIN_CONFIG: &'static str = "Caddyfile";

    /// Checks that every directory written into a Caddyfile is a plain absolute path.
    pub fn new(config: CaddyConfig) -> Result<Self> {
        let layout = &config.layout;
        for (field, path) in [
            ("sites_root", &layout.sites_root),
            ("php_run_dir", &layout.php_run_dir),
            ("log_dir", &layout.log_dir),
            ("cert_dir", &layout.cert_dir),
            ("server_root", &config.server_root),
        ] {
            config_path(field, path)?;
        }
        let tree = ManagedTree::new(config.server_root.join("managed"), config.runner.clone());
        Ok(Self { config, tree })
    }

    /// `sites/site<ID>.caddy`: the site's blocks. Pure: the same site gives the same bytes.
    pub fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        if site.web_server != Self::KIND {
            return Err(Error::Invalid {
                field: "web_server".into(),
                reason: format!(
                    "site {} is served by {}; this caddy takes the {} sites",
                    site.id,
                    site.web_server,
                    Self::KIND
                )
                .into(),
            });
        }
        let paths = self.config.layout.site(site);
        let settings = &site.settings;
        let mut names: Vec<&DomainName> = Vec::with_capacity(1 + site.aliases.len());
        for name in std::iter::once(&site.domain).chain(&site.aliases) {
            word("domain", name.as_str())?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let redirects = settings.www_redirect.pairs(&names);
        let serving: Vec<&DomainName> = names
            .iter()
            .copied()
            .filter(|n| !redirects.iter().any(|(from, _)| from == n))
            .collect();
        let tls = match settings.ssl {
            Ssl::Disabled => None,
            Ssl::Enabled { .. } => Some(format!(
                "tls {} {}",
                config_path("certificate", &paths.certificate)?,
                config_path("certificate_key", &paths.certificate_key)?
            )),
        };
        let (scheme, port) = match (&tls, self.config.http_port, self.config.https_port) {
            (Some(_), _, 443) => ("https", String::new()),
            (Some(_), _, https) => ("https", format!(":{https}")),
            (None, 80, _) => ("http", String::new()),
            (None, http, _) => ("http", format!(":{http}")),
        };
        let addresses = |names: &[&DomainName], scheme: &str| {
            names
                .iter()
                .map(|n| format!("{scheme}://{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };

        let mut out = Caddyfile::default();
        out.line(
            0,
            format!(
                "# {}: generated by example-caddy-plugin from the panel's records. Edits are",
                paths.name
            ),
        );
        out.line(
            0,
            "# overwritten; customise the site through its settings (extra directives) instead.",
        );
        if site.status == WebsiteStatus::Suspended {
            // Every request for every name gets the 403 page: no file is served, no PHP runs.
            let https = tls.as_ref().map(|tls| ("https", Some(tls)));
            for (scheme, tls) in std::iter::once(("http", None)).chain(https) {
                out.blank();
                out.line(
                    0,
                    "# Suspended: every request is answered 403 with a short page.",
                );
                out.line(0, format!("{} {{", addresses(&names, scheme)));
                if let Some(tls) = tls {
                    out.line(1, tls);
                }
                out.line(1, "header Content-Type \"text/html; charset=utf-8\"");
                out.line(1, format!("respond \"{SUSPENDED_PAGE}\" 403"));
                out.line(0, "}");
            }
            return Ok(vec![RenderedFile {
                path: format!("sites/{}.caddy", paths.name).parse()?,
                contents: out.0,
            }]);
        }
        let document_root = config_path("document_root", &paths.document_root)?;
        for (from, to) in &redirects {
            out.blank();
            out.line(0, format!("# {from} redirects to {to}."));
            out.line(0, format!("{scheme}://{from} {{"));
            let redirect = format!("redir {scheme}://{to}{port}{{uri}} permanent");
            match &tls {
                Some(tls) => {
                    out.line(1, tls);
                    out.line(1, redirect);
                }
                None => redirect_except_acme(&mut out, &document_root, &redirect),
            }
            out.line(0, "}");
        }
        if tls.is_some() {
            out.blank();
            out.line(
                0,
                "# Plain HTTP answers ACME challenges and redirects everything else to HTTPS.",
            );
            out.line(0, format!("{} {{", addresses(&names, "http")));
            let redirect = format!("redir https://{{host}}{port}{{uri}} permanent");
            redirect_except_acme(&mut out, &document_root, &redirect);
            out.line(0, "}");
        }

        out.blank();
        out.line(0, format!("{} {{", addresses(&serving, scheme)));
        if let Some(tls) = &tls {
            out.line(1, tls);
        }
        out.line(1, format!("root * {document_root}"));
        if !settings.allowed_ips.is_empty() {
            let allowed: Vec<String> = settings.allowed_ips.iter().map(|n| n.to_string()).collect();
            out.line(1, format!("@denied not remote_ip {}", allowed.join(" ")));
            out.line(1, "respond @denied 403");
        }
        if !settings.blocked_ips.is_empty() {
            let blocked: Vec<String> = settings.blocked_ips.iter().map(|n| n.to_string()).collect();
            out.line(1, format!("@blocked remote_ip {}", blocked.join(" ")));
            out.line(1, "respond @blocked 403");
        }
        out.line(1, "@hidden {");
        out.line(2, r"path_regexp /\.");
        out.line(2, "not path /.well-known/*");
        out.line(1, "}");
        out.line(1, "respond @hidden 404");
        if settings.gzip {
            out.line(1, "encode gzip");
        }
        if let Some(ttl) = settings.cache_ttl_secs {
            out.line(1, format!("@static path {STATIC_FILES}"));
            out.line(
                1,
                format!("header @static Cache-Control \"public, max-age={ttl}\""),
            );
        }
        if settings.security_headers {
            out.line(1, "header {");
            out.line(2, "X-Content-Type-Options nosniff");
            out.line(2, "X-Frame-Options SAMEORIGIN");
            out.line(2, "Referrer-Policy strict-origin-when-cross-origin");
            if tls.is_some() {
                out.line(2, "Strict-Transport-Security \"max-age=31536000\"");
            }
            out.line(1, "}");
        }
        if let Some(socket) = &paths.php_socket {
            out.line(
                1,
                format!("php_fastcgi unix/{}", config_path("php_socket", socket)?),
            );
        }
        out.line(1, "file_server");
        out.line(1, "log {");
        out.line(
            2,
            format!(
                "output file {}",
                config_path("access_log", &paths.access_log)?
            ),
        );
        out.line(1, "}");
        let extra = settings.extra_directives.as_slice();
        if !extra.is_empty() {
            out.line(
                1,
                "# Extra directives from the site's settings, as the directive policy accepts them.",
            );
            for (i, directive) in extra.iter().enumerate() {
                // Site paths become absolute under the home; a directive stored before the
                // policy refused it is left out, and the file says so.
                match CADDY_POLICY.rendered_args(directive, &paths.home) {
                    Some(args) => out.line(1, directive_line(directive.name.as_str(), &args)?),
                    None => out.line(
                        1,
                        format!("# extra directive {i} is left out: the policy does not accept it"),
                    ),
                }
            }
        }
        let operator = settings.operator_directives.as_slice();
        if !operator.is_empty() {
            out.line(
                1,
                "# Operator directives: the hosting operator's own, written as they are.",
            );
            for directive in operator {
                let args: Vec<&str> = directive.args.iter().map(|a| a.as_str()).collect();
                out.line(1, directive_line(directive.name.as_str(), &args)?);
            }
        }
        out.line(0, "}");

        Ok(vec![RenderedFile {
            path: format!("sites/{}.caddy", paths.name).parse()?,
            contents: out.0,
        }])
    }

    /// The main `Caddyfile` of the generation at `generation`: global options (admin API,
    /// ports, no automatic HTTPS, storage under the server root), the generation probe, and an
    /// import of the generation's own `sites/*.caddy`.
    pub fn render_main(&self, generation: &Path) -> Result<RenderedFile> {
        let config = &self.config;
        let name = generation_name(generation)?;
        let mut out = Caddyfile::default();
        out.line(
            0,
            format!(
                "# Generated by example-caddy-plugin: the main configuration of generation {name}."
            ),
        );
        out.line(0, "{");
        out.line(1, format!("admin localhost:{}", config.admin_port));
        out.line(1, "auto_https off");
        out.line(1, format!("http_port {}", config.http_port));
        out.line(1, format!("https_port {}", config.https_port));
        out.line(
            1,
            format!(
                "storage file_system {}",
                config_path("server_root", &config.server_root.join("data"))?
            ),
        );
        out.line(0, "}");
        out.blank();
        out.line(
            0,
            "# Tells the plugin's health check which generation is being served.",
        );
        out.line(0, format!("http://{HEALTH_HOST} {{"));
        out.line(1, format!("header X-Hosting-Generation {name}"));
        out.line(1, format!("respond {GENERATION_PATH} 204"));
        out.line(0, "}");
        out.blank();
        out.line(
            0,
            format!(
                "import {}/*.caddy",
                config_path("generation", &generation.join("sites"))?
            ),
        );
        Ok(RenderedFile {
            path: Self::MAIN_CONFIG.parse()?,
            contents: out.0,
        })
    }

    /// `caddy` with its storage and autosave under the server root instead of `$HOME`.
    fn caddy(&self, program: &Path) -> Command {
        let root = &self.config.server_root;
        Command::new(program)
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_CONFIG_HOME", root.join("config"))
    }

    /// Runs `caddy validate --config STAGED/Caddyfile --adapter caddyfile`; a refusal is
    /// [`Error::Validation`] carrying caddy's error.
    pub async fn validate(&self, staged_root: &Path) -> Result<()> {
        let command = self
            .caddy(&self.config.binary)
            .arg("validate")
            .arg("--config")
            .arg(staged_root.join(Self::MAIN_CONFIG))
            .arg("--adapter")
            .arg("caddyfile");
        self.checked(command, "caddy validate").await
    }

    /// Runs `command`; a non-zero exit is [`Error::Validation`] naming `tool` with caddy's
    /// `Error:` lines (or everything it printed).
    async fn checked(&self, command: Command, tool: &str) -> Result<()> {
        let out = self.config.runner.run(&command).await?;
        if out.success() {
            return Ok(());
        }
        let printed = format!("{}\n{}", out.stderr.trim(), out.stdout.trim());
        let errors: Vec<&str> = printed.lines().filter(|l| l.starts_with("Error")).collect();
        Err(Error::Validation {
            tool: tool.to_owned(),
            output: if errors.is_empty() {
                printed.trim().to_owned()
            } else {
                errors.join("\n")
            },
        })
    }

    fn pid_file(&self) -> PathBuf {
        self.config.server_root.join("run").join("caddy.pid")
    }

    /// The running caddy's pid, when its pid file names this server: caddy's binary, started
    /// with a path under this server's root (never a bare `kill -0`, which after a reboot may
    /// find any process under a reused pid). A pid file naming anything else is removed, so
    /// that the start that follows is not refused and nothing foreign is ever signalled.
    async fn running_pid(&self) -> Result<Option<String>> {
        let identity = Identity::new(&self.config.binary, &self.config.server_root);
        let found = clear_stale(&self.pid_file(), &identity)?;
        Ok(found.server().map(|pid| pid.to_string()))
    }

    /// Makes the running caddy load the live configuration, or starts caddy on it.
    async fn reload_or_start(&self, running: bool) -> Result<()> {
        let live_main = self.tree.live().join(Self::MAIN_CONFIG);
        if running {
            let command = self
                .caddy(&self.config.binary)
                .arg("reload")
                .arg("--config")
                .arg(&live_main)
                .arg("--adapter")
                .arg("caddyfile")
                .arg("--address")
                .arg(format!("localhost:{}", self.config.admin_port));
            return self.checked(command, "caddy reload").await;
        }
        let root = &self.config.server_root;
        let binary = find_program("binary", &self.config.binary)?;
        let launcher = find_program("launcher", &self.config.launcher)?;
        let command = self
            .caddy(&launcher)
            .arg("--start")
            .arg("--background")
            .arg("--pidfile")
            .arg(self.pid_file())
            .arg("--output")
            .arg(root.join("logs").join("caddy.out"))
            .arg("--chdir")
            .arg(root)
            // Matched by this server's pid file alone (a stale one was removed above): `--exec`
            // would match any caddy on the machine and refuse to start beside it.
            .arg("--startas")
            .arg(binary)
            .arg("--")
            .arg("run")
            .arg("--config")
            .arg(&live_main)
            .arg("--adapter")
            .arg("caddyfile")
            .arg("--pidfile")
            .arg(self.pid_file());
        self.checked(command, "starting caddy").await
    }

    /// Caddy serves `generation`, then every site answers an HTTP request for its domain.
    async fn check_health(&self, generation: &str, sites: &[Website]) -> Result<()> {
        let port = self.config.http_port;
        let deadline = tokio::time::Instant::now() + HEALTH_WAIT;
        loop {
            match probe(port, HEALTH_HOST, GENERATION_PATH).await {
                Ok(head) if header(&head, "x-hosting-generation") == Some(generation) => break,
                _ if tokio::time::Instant::now() >= deadline => {
                    let output = std::fs::read_to_string(
                        self.config.server_root.join("logs").join("caddy.out"),
                    )
                    .unwrap_or_default();
                    let last: Vec<&str> = output.lines().rev().take(5).collect();
                    return Err(Error::backend(
                        BACKEND,
                        format!(
                            "caddy does not serve generation {generation}; its last output: {}",
                            last.into_iter().rev().collect::<Vec<_>>().join("\n")
                        ),
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        for site in sites {
            loop {
                match probe(port, site.domain.as_str(), "/").await {
                    Ok(_) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(Error::backend(
                            BACKEND,
                            format!("{} does not answer after the reload: {e}", site.domain),
                        ));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
                }
            }
        }
        Ok(())
    }

    /// Points `live` back at the previous generation and makes caddy load it again.
    async fn restore(&self, staged: &Staged) {
        if self.tree.roll_back(staged).is_err() || staged.previous.is_none() {
            return;
        }
        if let Ok(Some(_)) = self.running_pid().await {
            let _ = self.reload_or_start(true).await;
        }
    }

    /// Every site's files by path, refusing a site listed twice.
    fn site_files(&self, sites: &[Website]) -> Result<BTreeMap<ConfinedPath, (WebsiteId, String)>> {
        let mut files = BTreeMap::new();
        for site in sites {
            for file in self.render_site(site)? {
                if files
                    .insert(file.path.clone(), (site.id, file.contents))
                    .is_some()
                {
                    return Err(Error::Invalid {
                        field: "sites".into(),
                        reason: format!("website {} is listed twice", site.id).into(),
                    });
                }
            }
        }
        Ok(files)
    }
}

/// The generation's name: its directory's name (a number).
fn generation_name(generation: &Path) -> Result<String> {
    generation
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::Invalid {
            field: "generation".into(),
            reason: format!("{} has no name", generation.display()).into(),
        })
}

/// `program` as an absolute path: as given, or found in `PATH` (and the sbin directories, where
/// Debian keeps `start-stop-daemon`).
fn find_program(field: &'static str, program: &Path) -> Result<PathBuf> {
    if program.is_absolute() {
        return Ok(program.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::Invalid {
            field: field.into(),
            reason: format!("{} is not in PATH", program.display()).into(),
        })
}

/// The value of header `name` (lower-case) in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The response head of `HEAD path` for `host` on 127.0.0.1:`port`.
async fn probe(port: u16, host: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("HEAD {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    let head = String::from_utf8_lossy(&raw).into_owned();
    if head.starts_with("HTTP/") {
        Ok(head)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an HTTP answer",
        ))
    }
}

#[async_trait]
impl WebServer for Caddy {
    fn kind(&self) -> WebServerKind {
        Self::KIND
    }

    fn directive_policy(&self) -> DirectivePolicy {
        CADDY_POLICY
    }

    fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        Caddy::render_site(self, site)
    }

    async fn validate(&self, staged_root: &Path) -> Result<()> {
        Caddy::validate(self, staged_root).await
    }

    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        let root = &self.config.server_root;
        for dir in ["run", "logs", "data", "config"] {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::backend(BACKEND, format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let desired = self.site_files(sites)?;
        let mut live = self.tree.read_live()?;
        let live_main = live.remove(&Self::MAIN_CONFIG.parse::<ConfinedPath>()?);
        let current_main = match self.tree.current()? {
            Some(dir) => Some(self.render_main(&dir)?.contents),
            None => None,
        };
        let mut changed: Vec<WebsiteId> = desired
            .iter()
            .filter(|(path, (_, contents))| live.get(*path) != Some(contents))
            .map(|(_, (id, _))| *id)
            .collect();
        changed.sort();
        changed.dedup();
        let removed: Vec<ConfinedPath> = live
            .keys()
            .filter(|p| !desired.contains_key(*p))
            .cloned()
            .collect();
        let running = self.running_pid().await?.is_some();
        if changed.is_empty()
            && removed.is_empty()
            && live_main.is_some()
            && live_main == current_main
            && running
        {
            return Ok(ApplyReport::default());
        }

        let staged = self
            .tree
            .stage_with(|generation| {
                let mut files: Vec<RenderedFile> = desired
                    .iter()
                    .map(|(path, (_, contents))| RenderedFile {
                        path: path.clone(),
                        contents: contents.clone(),
                    })
                    .collect();
                files.push(self.render_main(generation)?);
                Ok(files)
            })
            .await?;
        if let Err(e) = self.validate(&staged.dir).await {
            self.tree.discard(&staged)?;
            return Err(e);
        }
        self.tree.activate(&staged)?;
        let generation = generation_name(&staged.dir)?;
        let served = match self.reload_or_start(running).await {
            Ok(()) => self.check_health(&generation, sites).await,
            Err(e) => Err(e),
        };
        if let Err(e) = served {
            self.restore(&staged).await;
            return Err(e);
        }
        self.tree.prune(KEEP_GENERATIONS)?;
        Ok(ApplyReport {
            changed,
            removed,
            reloaded: true,
        })
    }

    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        let mut desired: BTreeMap<ConfinedPath, String> = self
            .site_files(sites)?
            .into_iter()
            .map(|(path, (_, contents))| (path, contents))
            .collect();
        if let Some(dir) = self.tree.current()? {
            let main = self.render_main(&dir)?;
            desired.insert(main.path, main.contents);
        }
        let mut live = self.tree.read_live()?;
        let mut drift = Vec::new();
        for (path, contents) in desired {
            match live.remove(&path) {
                None => drift.push(Drift::Missing(path)),
                Some(found) if found != contents => drift.push(Drift::Modified(path)),
                Some(_) => {}
            }
        }
        drift.extend(live.into_keys().map(Drift::Unexpected));
        Ok(drift)
    }
}
