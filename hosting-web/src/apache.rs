//! Apache 2.4: one `sites/site<ID>.conf` per site, PHP through mod_proxy_fcgi to the site's
//! FPM socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hosting_core::model::Website;
use hosting_core::system::SystemRunner;
use hosting_core::types::WebServerKind;
use hosting_core::web::RenderedFile;
use hosting_core::{Command, CommandRunner, HostLayout, Result};
use serde::Serialize;

use crate::apply::{HEALTH_HOST, Supervised, generation_of};
use crate::context::{LogMode, Ports, SiteContext, check_layout, config_path};
use crate::stage::{rendered, run_check, running_as_root, write_tree};
use crate::templates::{APACHE_MAIN, APACHE_SITE, Templates};

/// How an [`Apache`] backend is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApacheConfig {
    /// Where the node keeps site files, sockets, logs and certificates.
    pub layout: HostLayout,
    /// A directory of operator templates; a file named like an embedded template
    /// (`apache-site.conf.j2`, `apache-main.conf.j2`) replaces it.
    pub template_overrides: Option<PathBuf>,
    /// The Apache binary, by path or by name in `PATH`.
    pub binary: PathBuf,
    /// The ports sites listen on; the main configuration `Listen`s on both.
    pub ports: Ports,
    /// Where the `mod_*.so` files are (`/usr/lib/apache2/modules` on Debian).
    pub modules_dir: PathBuf,
    /// The MIME types file for `TypesConfig`.
    pub mime_types: PathBuf,
    /// Runs the binary.
    pub runner: Arc<dyn CommandRunner>,
    /// Where the SDK runs this server: its managed tree, pid file, logs and temporary files.
    pub server_root: PathBuf,
    /// Where the sites log; see [`LogMode`] for why [`LogMode::Shared`] is the default.
    pub log_mode: LogMode,
}

impl ApacheConfig {
    /// Defaults for `layout`: embedded templates, `apache2` from `PATH`, ports 80 and 443,
    /// Debian's module directory and `/etc/mime.types`, real processes, [`LogMode::Shared`].
    pub fn new(layout: HostLayout) -> Self {
        Self {
            layout,
            template_overrides: None,
            binary: PathBuf::from("apache2"),
            ports: Ports::default(),
            modules_dir: PathBuf::from("/usr/lib/apache2/modules"),
            mime_types: PathBuf::from("/etc/mime.types"),
            runner: Arc::new(SystemRunner),
            server_root: PathBuf::from("/var/lib/hosting/apache"),
            log_mode: LogMode::default(),
        }
    }
}

/// Renders and validates Apache 2.4 configuration.
#[derive(Debug)]
pub struct Apache {
    config: ApacheConfig,
    templates: Templates,
}

#[derive(Serialize)]
struct ApacheMain {
    root: String,
    sites_dir: String,
    /// The generation (the name of the directory holding `sites_dir`), for the health check.
    generation: String,
    health_host: &'static str,
    worker_user: Option<&'static str>,
    log_mode: LogMode,
    modules_dir: String,
    mime_types: String,
    http_port: u16,
    https_port: u16,
}

impl Apache {
    /// The main configuration file in a staged tree.
    pub const MAIN_CONFIG: &'static str = "apache2.conf";

    /// Checks the layout and paths and compiles the templates (overrides included).
    pub fn new(config: ApacheConfig) -> Result<Self> {
        check_layout(&config.layout)?;
        config_path("modules_dir", &config.modules_dir)?;
        config_path("mime_types", &config.mime_types)?;
        let templates = Templates::load(
            &[APACHE_SITE, APACHE_MAIN],
            config.template_overrides.as_deref(),
        )?;
        Ok(Self { config, templates })
    }

    /// [`WebServerKind::Apache`].
    pub fn kind(&self) -> WebServerKind {
        WebServerKind::Apache
    }

    /// `sites/site<ID>.conf` for `site`. Pure: the same site always gives the same bytes.
    pub fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        let context = SiteContext::new(
            site,
            &self.config.layout,
            self.config.ports,
            WebServerKind::Apache,
            self.config.log_mode,
        )?;
        let path = format!("sites/{}.conf", context.name);
        let contents = self.templates.render(APACHE_SITE.0, &context)?;
        Ok(vec![rendered(&path, contents)?])
    }

    /// Writes a complete tree under `staged_root` (new or empty): [`Self::MAIN_CONFIG`], which
    /// keeps the pid, mutexes and server log under `staged_root`, loads the modules the sites
    /// use and includes `sites/*.conf`, and every site's files. Runs as `www-data` when this
    /// process is root.
    pub fn stage(&self, staged_root: &Path, sites: &[Website]) -> Result<()> {
        let mut files =
            vec![self.main_config(staged_root, &staged_root.join("sites"), running_as_root())?];
        for site in sites {
            files.extend(self.render_site(site)?);
        }
        write_tree("apache", staged_root, &["sites", "logs", "run"], &files)
    }

    /// The main configuration: runtime files (pid, logs, temporary files) under `root`, sites
    /// included from `sites_dir`.
    pub(crate) fn main_config(
        &self,
        root: &Path,
        sites_dir: &Path,
        as_root: bool,
    ) -> Result<RenderedFile> {
        let contents = self.templates.render(
            APACHE_MAIN.0,
            &ApacheMain {
                root: config_path("staged_root", root)?,
                sites_dir: config_path("sites_dir", sites_dir)?,
                worker_user: as_root.then_some("www-data"),
                log_mode: self.config.log_mode,
                generation: generation_of(sites_dir)?,
                health_host: HEALTH_HOST,
                modules_dir: config_path("modules_dir", &self.config.modules_dir)?,
                mime_types: config_path("mime_types", &self.config.mime_types)?,
                http_port: self.config.ports.http,
                https_port: self.config.ports.https,
            },
        )?;
        rendered(Self::MAIN_CONFIG, contents)
    }

    /// Runs `apache2 -t` on the tree [`Self::stage`] wrote under `staged_root`.
    pub async fn validate(&self, staged_root: &Path) -> Result<()> {
        let command = Command::new(&self.config.binary)
            .arg("-t")
            .arg("-f")
            .arg(staged_root.join(Self::MAIN_CONFIG));
        run_check(
            self.config.runner.as_ref(),
            format!("{} -t", self.config.binary.display()),
            &command,
        )
        .await
    }
}

#[async_trait]
impl Supervised for Apache {
    const NAME: &'static str = "apache2";
    const MAIN_CONFIG: &'static str = Apache::MAIN_CONFIG;
    const RUNTIME_DIRS: &'static [&'static str] = &["run", "logs"];

    fn server_root(&self) -> &Path {
        &self.config.server_root
    }

    fn runner(&self) -> &dyn CommandRunner {
        self.config.runner.as_ref()
    }

    fn http_port(&self) -> u16 {
        self.config.ports.http
    }

    fn render_site_files(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        self.render_site(site)
    }

    fn render_main(&self, generation: &Path) -> Result<RenderedFile> {
        self.main_config(
            &self.config.server_root,
            &generation.join("sites"),
            running_as_root(),
        )
    }

    async fn test_config(&self, main: &Path) -> Result<()> {
        let command = Command::new(&self.config.binary)
            .arg("-t")
            .arg("-f")
            .arg(main);
        run_check(
            self.config.runner.as_ref(),
            format!("{} -t", self.config.binary.display()),
            &command,
        )
        .await
    }

    fn start_command(&self, live_main: &Path) -> Command {
        Command::new(&self.config.binary)
            .arg("-f")
            .arg(live_main)
            .arg("-k")
            .arg("start")
    }

    fn reload_command(&self, live_main: &Path, _pid: &str) -> Command {
        Command::new(&self.config.binary)
            .arg("-f")
            .arg(live_main)
            .arg("-k")
            .arg("graceful")
    }
}

crate::apply::supervised_web_server!(Apache);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_config_keeps_runtime_files_under_the_root_and_loads_every_module_used() {
        let apache =
            Apache::new(ApacheConfig::new(HostLayout::under("/srv/hosting"))).expect("apache");
        let root = Path::new("/tmp/staged");
        let as_user = apache
            .main_config(root, &root.join("sites"), false)
            .expect("render")
            .contents;
        let as_root = apache
            .main_config(root, &root.join("sites"), true)
            .expect("render")
            .contents;
        assert!(as_root.contains("\nUser www-data\nGroup www-data\n"));
        assert!(!as_user.contains("User "));
        for needle in [
            "ServerRoot \"/tmp/staged\"",
            "DefaultRuntimeDir \"/tmp/staged/run\"",
            "PidFile \"/tmp/staged/run/apache2.pid\"",
            "Mutex file:/tmp/staged/run default",
            "Listen 80\n",
            "Listen 443 https\n",
            "IncludeOptional \"/tmp/staged/sites/*.conf\"",
            "LogFormat \"%v:%{local}p %h %l %u %t ",
            "CustomLog \"/tmp/staged/logs/access.log\" vhost_combined\n",
            "ErrorLogFormat \"[%{u}t] [%-m:%l] [pid %P:tid %T] [%v] ",
        ] {
            assert!(as_user.contains(needle), "missing {needle:?} in\n{as_user}");
        }
        for module in [
            "mpm_event",
            "authz_core",
            "authz_host",
            "dir",
            "mime",
            "proxy",
            "proxy_fcgi",
            "headers",
            "expires",
            "deflate",
            "rewrite",
            "ssl",
            "filter",
            "setenvif",
            "log_config",
            "alias",
        ] {
            let line =
                format!("LoadModule {module}_module /usr/lib/apache2/modules/mod_{module}.so\n");
            assert!(as_user.contains(&line), "missing {line:?}");
        }
    }

    #[test]
    fn per_site_logs_keep_the_default_error_log_format() {
        let mut config = ApacheConfig::new(HostLayout::under("/srv/hosting"));
        config.log_mode = LogMode::PerSite;
        let root = Path::new("/tmp/staged");
        let main = Apache::new(config)
            .expect("apache")
            .main_config(root, &root.join("sites"), false)
            .expect("render")
            .contents;
        assert!(!main.contains("ErrorLogFormat"), "{main}");
        assert!(main.contains("CustomLog \"/tmp/staged/logs/access.log\" vhost_combined\n"));
    }
}
