//! Apache 2.4: one `sites/site<ID>.conf` per site, PHP through mod_proxy_fcgi to the site's
//! FPM socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hosting_core::model::{Ssl, Website};
use hosting_core::system::SystemRunner;
use hosting_core::types::WebServerKind;
use hosting_core::web::RenderedFile;
use hosting_core::{Command, CommandRunner, DirectivePolicy, HostLayout, Result};
use serde::Serialize;

use crate::apply::{HEALTH_HOST, Managed, Run, SERVICE_SNIPPET, SERVICE_TEST, generation_of};
use crate::context::{LogMode, Ports, SiteContext, check_layout, config_path};
use crate::policy::APACHE_POLICY;
use crate::service::{Management, ServiceParts, check_service_name};
use crate::stage::{rendered, run_check, running_as_root, write_tree};
use crate::templates::{APACHE_MAIN, APACHE_SERVICE, APACHE_SERVICE_TEST, APACHE_SITE, Templates};

/// How an [`Apache`] backend is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApacheConfig {
    /// Where the node keeps site files, sockets, logs and certificates.
    pub layout: HostLayout,
    /// A directory of operator templates; a file named like an embedded template
    /// (`apache-site.conf.j2`, `apache-main.conf.j2`, `apache-service.conf.j2`,
    /// `apache-service-test.conf.j2`) replaces it.
    pub template_overrides: Option<PathBuf>,
    /// The Apache binary, by path or by name in `PATH`.
    pub binary: PathBuf,
    /// The ports sites listen on; the supervised main configuration `Listen`s on both, a
    /// service's generation on those its distro configuration does not (see
    /// [`ApacheService::distro_ports`]).
    pub ports: Ports,
    /// Where the `mod_*.so` files are (`/usr/lib/apache2/modules` on Debian).
    pub modules_dir: PathBuf,
    /// The MIME types file for `TypesConfig` (supervised; a service has the distro's).
    pub mime_types: PathBuf,
    /// Runs the binary.
    pub runner: Arc<dyn CommandRunner>,
    /// Who runs Apache: the SDK under a server root, or the distro's service.
    pub management: Management<ApacheService>,
    /// Where the sites log; see [`LogMode`] for why [`LogMode::Shared`] is the default. As a
    /// service, [`LogMode::Shared`] means the distro's own server logs (Debian's
    /// `other_vhosts_access.log` is `vhost_combined` already).
    pub log_mode: LogMode,
}

/// The distro's Apache service ([`Management::Service`]); [`Default`] gives Debian's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApacheService {
    /// The control script that tests the distro's whole configuration with its environment
    /// (`apache2ctl -t`) after every swap and before the reload.
    pub ctl: PathBuf,
    /// The directory of the distro's enabled modules (`/etc/apache2/mods-enabled`): the test
    /// configuration of a staged generation loads `*.load` and `*.conf` from it, as the main
    /// configuration does.
    pub mods_enabled: PathBuf,
    /// The file of the distro's `Listen` lines (`/etc/apache2/ports.conf`), which the test
    /// configuration includes too, so a second `Listen` on a port is refused before the swap.
    pub ports_conf: PathBuf,
    /// The ports [`ports_conf`](Self::ports_conf) listens on: Debian's listens on 80, and on
    /// 443 when the distro configuration loads mod_ssl. A site port equal to one of these gets
    /// no `Listen` of its own (for HTTPS, only when mod_ssl was loaded), since a second
    /// `Listen` on a port is an error.
    pub distro_ports: Ports,
    /// The one file the SDK writes into the distro's configuration
    /// (`/etc/apache2/sites-enabled/zzz-hosting-sdk.conf`): among the sites and last, so the
    /// distro's first site (`000-default`) stays the default virtual host.
    pub include_file: PathBuf,
    /// The service (`apache2`): `service apache2 reload`, or `start` when it does not run.
    pub service: String,
    /// The pid file of the service's parent process (`/run/apache2/apache2.pid`).
    pub pid_file: PathBuf,
    /// The SDK's managed tree (`/var/lib/hosting/apache`): `live -> generations/<n>`.
    pub managed_root: PathBuf,
}

impl Default for ApacheService {
    fn default() -> Self {
        Self {
            ctl: PathBuf::from("apache2ctl"),
            mods_enabled: PathBuf::from("/etc/apache2/mods-enabled"),
            ports_conf: PathBuf::from("/etc/apache2/ports.conf"),
            distro_ports: Ports::default(),
            include_file: PathBuf::from("/etc/apache2/sites-enabled/zzz-hosting-sdk.conf"),
            service: "apache2".to_owned(),
            pid_file: PathBuf::from("/run/apache2/apache2.pid"),
            managed_root: PathBuf::from("/var/lib/hosting/apache"),
        }
    }
}

impl ApacheConfig {
    /// Defaults for `layout`: embedded templates, `apache2` from `PATH`, ports 80 and 443,
    /// Debian's module directory and `/etc/mime.types`, real processes, supervised under
    /// `/var/lib/hosting/apache`, [`LogMode::Shared`].
    pub fn new(layout: HostLayout) -> Self {
        Self {
            layout,
            template_overrides: None,
            binary: PathBuf::from("apache2"),
            ports: Ports::default(),
            modules_dir: PathBuf::from("/usr/lib/apache2/modules"),
            mime_types: PathBuf::from("/etc/mime.types"),
            runner: Arc::new(SystemRunner),
            management: Management::Supervised {
                server_root: PathBuf::from("/var/lib/hosting/apache"),
            },
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

/// The context of a service generation's part.
#[derive(Serialize)]
struct ApacheServiceSnippet {
    managed_root: String,
    sites_dir: String,
    generation: String,
    health_host: &'static str,
    modules_dir: String,
    http_port: u16,
    https_port: u16,
    /// Whether the distro's ports file does not listen on `http_port`.
    listen_http: bool,
    /// Whether a site serves HTTPS.
    tls: bool,
    /// Whether `https_port` is the one the distro's ports file listens on with mod_ssl.
    https_on_distro_port: bool,
}

/// The context of a service generation's test configuration.
#[derive(Serialize)]
struct ApacheServiceTest {
    generation: String,
    server_root: String,
    mods_enabled: String,
    ports_conf: String,
    snippet: String,
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

    /// Checks the layout and paths (the service's too) and compiles the templates (overrides
    /// included).
    pub fn new(config: ApacheConfig) -> Result<Self> {
        check_layout(&config.layout)?;
        config_path("modules_dir", &config.modules_dir)?;
        config_path("mime_types", &config.mime_types)?;
        if let Management::Service(service) = &config.management {
            config_path("managed_root", &service.managed_root)?;
            config_path("mods_enabled", &service.mods_enabled)?;
            config_path("ports_conf", &service.ports_conf)?;
            config_path("include_file", &service.include_file)?;
            check_service_name("service", &service.service)?;
        }
        let templates = Templates::load(
            &[
                APACHE_SITE,
                APACHE_MAIN,
                APACHE_SERVICE,
                APACHE_SERVICE_TEST,
            ],
            config.template_overrides.as_deref(),
        )?;
        Ok(Self { config, templates })
    }

    /// The pid of the running master, when its pid file names it: this binary, and supervised
    /// a command line under the server root ([`hosting_core::process::inspect`]).
    pub fn running_master(&self) -> Option<u32> {
        crate::apply::master_pid(self)
    }

    /// [`WebServerKind::Apache`].
    pub fn kind(&self) -> WebServerKind {
        WebServerKind::Apache
    }

    /// [`APACHE_POLICY`]: what a tenant may add to its site.
    pub fn directive_policy(&self) -> DirectivePolicy {
        APACHE_POLICY
    }

    /// `sites/site<ID>.conf` for `site`. Pure: the same site always gives the same bytes.
    pub fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        let context = SiteContext::new(
            site,
            &self.config.layout,
            self.config.ports,
            WebServerKind::Apache,
            self.config.log_mode,
            &APACHE_POLICY,
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
impl Managed for Apache {
    const NAME: &'static str = "apache2";
    const MAIN_CONFIG: &'static str = Apache::MAIN_CONFIG;
    const RUNTIME_DIRS: &'static [&'static str] = &["run", "logs"];
    const SERVICE_DIRS: &'static [&'static str] = &[];

    fn binary(&self) -> &Path {
        &self.config.binary
    }

    fn run(&self) -> Run<'_> {
        match &self.config.management {
            Management::Supervised { server_root } => Run::Supervised(server_root),
            Management::Service(service) => Run::Service(ServiceParts {
                name: &service.service,
                pid_file: &service.pid_file,
                include_file: &service.include_file,
                managed_root: &service.managed_root,
                system_test: Command::new(&service.ctl).arg("-t"),
                include_line: |target| format!("Include \"{target}\""),
            }),
        }
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

    fn render_frame(&self, generation: &Path, sites: &[Website]) -> Result<Vec<RenderedFile>> {
        let sites_dir = generation.join("sites");
        let service = match &self.config.management {
            Management::Supervised { server_root } => {
                return Ok(vec![self.main_config(
                    server_root,
                    &sites_dir,
                    running_as_root(),
                )?]);
            }
            Management::Service(service) => service,
        };
        let generation_name = generation_of(&sites_dir)?;
        let ports = self.config.ports;
        let snippet = self.templates.render(
            APACHE_SERVICE.0,
            &ApacheServiceSnippet {
                managed_root: config_path("managed_root", &service.managed_root)?,
                sites_dir: config_path("sites_dir", &sites_dir)?,
                generation: generation_name.clone(),
                health_host: HEALTH_HOST,
                modules_dir: config_path("modules_dir", &self.config.modules_dir)?,
                http_port: ports.http,
                https_port: ports.https,
                listen_http: ports.http != service.distro_ports.http,
                tls: sites
                    .iter()
                    .any(|s| matches!(s.settings.ssl, Ssl::Enabled { .. })),
                https_on_distro_port: ports.https == service.distro_ports.https,
            },
        )?;
        let server_root = service
            .mods_enabled
            .parent()
            .unwrap_or(&service.mods_enabled);
        let test = self.templates.render(
            APACHE_SERVICE_TEST.0,
            &ApacheServiceTest {
                generation: generation_name,
                server_root: config_path("server_root", server_root)?,
                mods_enabled: config_path("mods_enabled", &service.mods_enabled)?,
                ports_conf: config_path("ports_conf", &service.ports_conf)?,
                snippet: config_path("snippet", &generation.join(SERVICE_SNIPPET))?,
            },
        )?;
        Ok(vec![
            rendered(SERVICE_SNIPPET, snippet)?,
            rendered(SERVICE_TEST, test)?,
        ])
    }

    /// Supervised: the generation's main config, as it will run. Service: its test
    /// configuration.
    async fn test_staged(&self, generation: &Path) -> Result<()> {
        let main = match &self.config.management {
            Management::Supervised { .. } => generation.join(Self::MAIN_CONFIG),
            Management::Service(_) => generation.join(SERVICE_TEST),
        };
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

    fn start_command(&self, _root: &Path, live_main: &Path) -> Command {
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

crate::apply::managed_web_server!(Apache);

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
            "authz_user",
            "authn_core",
            "authn_file",
            "auth_basic",
            "autoindex",
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

    fn service_frame(ports: Ports, tls: bool) -> (String, String) {
        let mut config = ApacheConfig::new(HostLayout::under("/srv/hosting"));
        config.ports = ports;
        config.management = Management::Service(ApacheService::default());
        let apache = Apache::new(config).expect("apache");
        let mut site = Website {
            id: hosting_core::model::WebsiteId(1),
            tenant_id: hosting_core::model::TenantId(1),
            owner_id: hosting_core::model::UserId(1),
            domain: "tls.example.com".parse().expect("domain"),
            aliases: vec![],
            node_id: hosting_core::model::NodeId(1),
            web_server: WebServerKind::Apache,
            php_version: None,
            system_user: "web1".parse().expect("user"),
            document_root: "public".parse().expect("root"),
            status: hosting_core::model::WebsiteStatus::Active,
            settings: hosting_core::model::WebsiteSettings::default(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        if tls {
            site.settings.ssl = Ssl::Enabled {
                provider: hosting_core::model::SslProvider::LetsEncrypt,
                auto_renew: true,
            };
        }
        let generation = Path::new("/var/lib/hosting/apache/generations/3");
        let files = apache.render_frame(generation, &[site]).expect("render");
        let text = |name: &str| {
            files
                .iter()
                .find(|f| f.path.as_str() == name)
                .map(|f| f.contents.clone())
                .expect("rendered")
        };
        (text(SERVICE_SNIPPET), text(SERVICE_TEST))
    }

    #[test]
    fn a_service_generation_listens_only_where_the_distro_does_not() {
        let listens = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.trim_start().starts_with("Listen "))
                .map(str::to_owned)
                .collect()
        };
        let (plain, test) = service_frame(Ports::default(), false);
        assert!(listens(&plain).is_empty(), "{plain}");
        assert!(
            !plain.contains("ssl_module"),
            "no TLS site, no mod_ssl:\n{plain}"
        );
        assert!(plain.contains("<VirtualHost *:80>\n    ServerName hosting-health.invalid\n"));
        assert!(
            plain.contains(
                "IncludeOptional \"/var/lib/hosting/apache/generations/3/sites/*.conf\"\n"
            )
        );
        for module in ["mpm_", "log_config"] {
            assert!(
                !plain.contains(module),
                "the distro picks {module}:\n{plain}"
            );
        }
        assert!(plain.contains(
            "<IfModule !proxy_fcgi_module>\n    LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so\n</IfModule>\n"
        ));
        for needle in [
            "ServerRoot \"/etc/apache2\"\n",
            "IncludeOptional \"/etc/apache2/mods-enabled/*.load\"\n",
            "IncludeOptional \"/etc/apache2/mods-enabled/*.conf\"\n",
            "Include \"/etc/apache2/ports.conf\"\n",
            "Include \"/var/lib/hosting/apache/generations/3/hosting.conf\"\n",
        ] {
            assert!(test.contains(needle), "missing {needle:?} in\n{test}");
        }

        // On the distro's HTTPS port, Listen only when the distro did not load mod_ssl (its
        // ports file then listens there itself).
        let (tls, _) = service_frame(Ports::default(), true);
        assert_eq!(listens(&tls), ["    Listen 443 https"], "{tls}");
        assert!(tls.contains(
            "<IfModule !ssl_module>\n    Listen 443 https\n    LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n</IfModule>\n"
        ));

        // Other ports are the SDK's own.
        let (own, _) = service_frame(
            Ports {
                http: 8080,
                https: 8443,
            },
            true,
        );
        assert_eq!(listens(&own), ["Listen 8080", "Listen 8443 https"], "{own}");
        assert!(own.contains("<VirtualHost *:8080>\n"));
    }
}
