//! NGINX: one `sites/site<ID>.conf` per site, PHP through FastCGI to the site's FPM socket.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hosting_core::model::Website;
use hosting_core::system::SystemRunner;
use hosting_core::types::{PhpBytes, WebServerKind};
use hosting_core::web::RenderedFile;
use hosting_core::{Command, CommandRunner, DirectivePolicy, HostLayout, Result};
use serde::Serialize;

use crate::apply::{HEALTH_HOST, Managed, Run, SERVICE_SNIPPET, SERVICE_TEST, generation_of};
use crate::context::{LogMode, Ports, SiteContext, check_layout, config_path};
use crate::policy::NGINX_POLICY;
use crate::service::{Management, ServiceParts, check_service_name};
use crate::stage::{rendered, run_check, running_as_root, write_tree};
use crate::templates::{NGINX_MAIN, NGINX_SERVICE, NGINX_SERVICE_TEST, NGINX_SITE, Templates};

/// How an [`Nginx`] backend is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NginxConfig {
    /// Where the node keeps site files, sockets, logs and certificates.
    pub layout: HostLayout,
    /// A directory of operator templates; a file named like an embedded template
    /// (`nginx-site.conf.j2`, `nginx-main.conf.j2`, `nginx-service.conf.j2`,
    /// `nginx-service-test.conf.j2`) replaces it.
    pub template_overrides: Option<PathBuf>,
    /// The nginx binary, by path or by name in `PATH`.
    pub binary: PathBuf,
    /// The ports sites listen on.
    pub ports: Ports,
    /// Also listen on IPv6 (`[::]:port`).
    pub listen_ipv6: bool,
    /// Runs the binary.
    pub runner: Arc<dyn CommandRunner>,
    /// Who runs nginx: the SDK under a server root, or the distro's service.
    pub management: Management<NginxService>,
    /// Where the sites log; see [`LogMode`] for why [`LogMode::Shared`] is the default. As a
    /// service, [`LogMode::Shared`] means the distro's own logs (`access_log` and `error_log` of
    /// its main configuration).
    pub log_mode: LogMode,
    /// `worker_rlimit_nofile`: the open-files limit nginx sets in each worker. A worker needs
    /// one descriptor per connection, two for a request passed to PHP (client and FastCGI),
    /// plus every open log file; with `worker_connections 1024` that is over 2,048, more than
    /// the usual 1,024 soft limit the master inherits. Must not exceed the node's hard limit:
    /// above it nginx logs an alert at every worker start and keeps the inherited limit. It
    /// does not raise the master's own limit, which opens the log files (see [`LogMode`]).
    /// Supervised only: as a service, the distro's main configuration sets it.
    pub worker_rlimit_nofile: NonZeroU32,
}

/// The distro's nginx service ([`Management::Service`]); [`Default`] gives Debian's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NginxService {
    /// The distro's main configuration (`/etc/nginx/nginx.conf`), tested as a whole
    /// (`nginx -t -c MAIN`) after every swap and before the reload. Never written.
    pub main_config: PathBuf,
    /// The directory of the distro's `load_module` snippets (`/etc/nginx/modules-enabled`),
    /// which the test configuration of a staged generation includes, as the main one does.
    pub modules_dir: PathBuf,
    /// The MIME types file (`/etc/nginx/mime.types`) of the test configuration.
    pub mime_types: PathBuf,
    /// The one file the SDK writes into the distro's configuration
    /// (`/etc/nginx/conf.d/hosting-sdk.conf`): a directory the main configuration includes
    /// inside `http { }`, as Debian's does with `conf.d/*.conf`.
    pub include_file: PathBuf,
    /// The service (`nginx`): `service nginx reload`, or `start` when it does not run.
    pub service: String,
    /// The pid file of the service's master (`/run/nginx.pid`): whether it runs, and whose
    /// workers a reload retires.
    pub pid_file: PathBuf,
    /// The SDK's managed tree (`/var/lib/hosting/nginx`): `live -> generations/<n>`.
    pub managed_root: PathBuf,
}

impl Default for NginxService {
    fn default() -> Self {
        Self {
            main_config: PathBuf::from("/etc/nginx/nginx.conf"),
            modules_dir: PathBuf::from("/etc/nginx/modules-enabled"),
            mime_types: PathBuf::from("/etc/nginx/mime.types"),
            include_file: PathBuf::from("/etc/nginx/conf.d/hosting-sdk.conf"),
            service: "nginx".to_owned(),
            pid_file: PathBuf::from("/run/nginx.pid"),
            managed_root: PathBuf::from("/var/lib/hosting/nginx"),
        }
    }
}

/// The default [`NginxConfig::worker_rlimit_nofile`]: 8 x `worker_connections` (1,024), room
/// for every connection proxied to PHP and the log files of a few thousand sites in
/// [`LogMode::PerSite`], and below the 20,000 hard cap of our test nodes.
const DEFAULT_WORKER_RLIMIT_NOFILE: NonZeroU32 = NonZeroU32::MIN.saturating_add(8_191);

impl NginxConfig {
    /// Defaults for `layout`: embedded templates, `nginx` from `PATH`, ports 80 and 443 on
    /// IPv4 and IPv6, real processes, supervised under `/var/lib/hosting/nginx`,
    /// [`LogMode::Shared`], `worker_rlimit_nofile 8192`.
    pub fn new(layout: HostLayout) -> Self {
        Self {
            layout,
            template_overrides: None,
            binary: PathBuf::from("nginx"),
            ports: Ports::default(),
            listen_ipv6: true,
            runner: Arc::new(SystemRunner),
            management: Management::Supervised {
                server_root: PathBuf::from("/var/lib/hosting/nginx"),
            },
            log_mode: LogMode::default(),
            worker_rlimit_nofile: DEFAULT_WORKER_RLIMIT_NOFILE,
        }
    }
}

/// Renders and validates NGINX configuration.
#[derive(Debug)]
pub struct Nginx {
    config: NginxConfig,
    templates: Templates,
}

/// The site context plus what only nginx needs.
#[derive(Serialize)]
struct NginxSite<'a> {
    #[serde(flatten)]
    site: SiteContext<'a>,
    listen_ipv6: bool,
    /// The PHP pool's `post_max_size`, so nginx does not refuse uploads PHP would take; `None`
    /// for static sites and when a tenant's or the operator's directive sets it.
    client_max_body_size: Option<PhpBytes>,
}

/// The context of a service generation's http-level part.
#[derive(Serialize)]
struct NginxServiceSnippet {
    managed_root: String,
    sites_dir: String,
    generation: String,
    health_host: &'static str,
    http_port: u16,
}

/// The context of a service generation's test configuration.
#[derive(Serialize)]
struct NginxServiceTest {
    managed_root: String,
    generation: String,
    modules_dir: String,
    mime_types: String,
    snippet: String,
}

#[derive(Serialize)]
struct NginxMain {
    root: String,
    sites_dir: String,
    /// The generation (the name of the directory holding `sites_dir`), for the health check.
    generation: String,
    health_host: &'static str,
    worker_user: Option<&'static str>,
    worker_rlimit_nofile: u32,
    http_port: u16,
}

impl Nginx {
    /// The main configuration file in a staged tree.
    pub const MAIN_CONFIG: &'static str = "nginx.conf";

    /// Checks the layout and the service's paths and compiles the templates (overrides
    /// included).
    pub fn new(config: NginxConfig) -> Result<Self> {
        check_layout(&config.layout)?;
        if let Management::Service(service) = &config.management {
            config_path("managed_root", &service.managed_root)?;
            config_path("modules_dir", &service.modules_dir)?;
            config_path("mime_types", &service.mime_types)?;
            config_path("include_file", &service.include_file)?;
            check_service_name("service", &service.service)?;
        }
        let templates = Templates::load(
            &[NGINX_SITE, NGINX_MAIN, NGINX_SERVICE, NGINX_SERVICE_TEST],
            config.template_overrides.as_deref(),
        )?;
        Ok(Self { config, templates })
    }

    /// The pid of the running master, when its pid file names it: this binary, and supervised
    /// a command line under the server root ([`hosting_core::process::inspect`]).
    pub fn running_master(&self) -> Option<u32> {
        crate::apply::master_pid(self)
    }

    /// [`WebServerKind::Nginx`].
    pub fn kind(&self) -> WebServerKind {
        WebServerKind::Nginx
    }

    /// [`NGINX_POLICY`]: what a tenant may add to its site's `server` block.
    pub fn directive_policy(&self) -> DirectivePolicy {
        NGINX_POLICY
    }

    /// `sites/site<ID>.conf` for `site`. Pure: the same site always gives the same bytes.
    pub fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        let context = SiteContext::new(
            site,
            &self.config.layout,
            self.config.ports,
            WebServerKind::Nginx,
            self.config.log_mode,
            &NGINX_POLICY,
        )?;
        let sets_body_size = context
            .extra_directives
            .iter()
            .chain(&context.operator_directives)
            .any(|d| d.name == "client_max_body_size");
        let client_max_body_size = match (&context.php, sets_body_size) {
            (Some(_), false) => Some(site.settings.php.post_max_size()),
            _ => None,
        };
        let path = format!("sites/{}.conf", context.name);
        let contents = self.templates.render(
            NGINX_SITE.0,
            &NginxSite {
                site: context,
                listen_ipv6: self.config.listen_ipv6,
                client_max_body_size,
            },
        )?;
        Ok(vec![rendered(&path, contents)?])
    }

    /// Writes a complete tree under `staged_root` (new or empty): [`Self::MAIN_CONFIG`], which
    /// keeps the pid, logs and temporary files under `staged_root` and includes `sites/*.conf`,
    /// and every site's files. Workers run as `www-data` when this process is root.
    pub fn stage(&self, staged_root: &Path, sites: &[Website]) -> Result<()> {
        let mut files =
            vec![self.main_config(staged_root, &staged_root.join("sites"), running_as_root())?];
        for site in sites {
            files.extend(self.render_site(site)?);
        }
        write_tree(
            "nginx",
            staged_root,
            &["sites", "logs", "run", "tmp"],
            &files,
        )
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
            NGINX_MAIN.0,
            &NginxMain {
                root: config_path("staged_root", root)?,
                sites_dir: config_path("sites_dir", sites_dir)?,
                worker_user: as_root.then_some("www-data"),
                worker_rlimit_nofile: self.config.worker_rlimit_nofile.get(),
                http_port: self.config.ports.http,
                generation: generation_of(sites_dir)?,
                health_host: HEALTH_HOST,
            },
        )?;
        rendered(Self::MAIN_CONFIG, contents)
    }

    /// Runs `nginx -t` on the tree [`Self::stage`] wrote under `staged_root`.
    pub async fn validate(&self, staged_root: &Path) -> Result<()> {
        let mut prefix = staged_root.as_os_str().to_owned();
        prefix.push("/");
        let command = Command::new(&self.config.binary)
            .arg("-t")
            .arg("-c")
            .arg(staged_root.join(Self::MAIN_CONFIG))
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(staged_root.join("logs/error.log"));
        run_check(
            self.config.runner.as_ref(),
            format!("{} -t", self.config.binary.display()),
            &command,
        )
        .await
    }
}

#[async_trait]
impl Managed for Nginx {
    const NAME: &'static str = "nginx";
    const MAIN_CONFIG: &'static str = Nginx::MAIN_CONFIG;
    const RUNTIME_DIRS: &'static [&'static str] = &["run", "logs", "tmp"];
    const SERVICE_DIRS: &'static [&'static str] = &["tmp"];

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
                system_test: Command::new(&self.config.binary)
                    .arg("-t")
                    .arg("-c")
                    .arg(&service.main_config),
                include_line: |target| format!("include {target};"),
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

    fn render_frame(&self, generation: &Path, _sites: &[Website]) -> Result<Vec<RenderedFile>> {
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
        let managed_root = config_path("managed_root", &service.managed_root)?;
        let generation_name = generation_of(&sites_dir)?;
        let snippet = self.templates.render(
            NGINX_SERVICE.0,
            &NginxServiceSnippet {
                managed_root: managed_root.clone(),
                sites_dir: config_path("sites_dir", &sites_dir)?,
                generation: generation_name.clone(),
                health_host: HEALTH_HOST,
                http_port: self.config.ports.http,
            },
        )?;
        let test = self.templates.render(
            NGINX_SERVICE_TEST.0,
            &NginxServiceTest {
                managed_root,
                generation: generation_name,
                modules_dir: config_path("modules_dir", &service.modules_dir)?,
                mime_types: config_path("mime_types", &service.mime_types)?,
                snippet: config_path("snippet", &generation.join(SERVICE_SNIPPET))?,
            },
        )?;
        Ok(vec![
            rendered(SERVICE_SNIPPET, snippet)?,
            rendered(SERVICE_TEST, test)?,
        ])
    }

    /// Supervised: the generation's main config, as it will run. Service: its test
    /// configuration, with nginx's default prefix, so the distro's relative `load_module`
    /// paths resolve as they do for the service.
    async fn test_staged(&self, generation: &Path) -> Result<()> {
        let command = match &self.config.management {
            Management::Supervised { server_root } => binary_command(
                &self.config.binary,
                server_root,
                &generation.join(Self::MAIN_CONFIG),
            )
            .arg("-t"),
            Management::Service(_) => Command::new(&self.config.binary)
                .arg("-t")
                .arg("-c")
                .arg(generation.join(SERVICE_TEST))
                .arg("-e")
                .arg("stderr"),
        };
        run_check(
            self.config.runner.as_ref(),
            format!("{} -t", self.config.binary.display()),
            &command,
        )
        .await
    }

    fn start_command(&self, root: &Path, live_main: &Path) -> Command {
        binary_command(&self.config.binary, root, live_main)
    }

    /// One `-t` already parsed the tree; `SIGHUP` to the master avoids the extra parse that
    /// `nginx -s reload` does.
    fn reload_command(&self, _live_main: &Path, pid: &str) -> Command {
        Command::new("kill").arg("-HUP").arg(pid)
    }
}

/// `nginx -c MAIN -p ROOT/ -e ROOT/logs/error.log`: nginx supervised under `root`.
fn binary_command(binary: &Path, root: &Path, main: &Path) -> Command {
    let mut prefix = root.as_os_str().to_owned();
    prefix.push("/");
    Command::new(binary)
        .arg("-c")
        .arg(main)
        .arg("-p")
        .arg(prefix)
        .arg("-e")
        .arg(root.join("logs/error.log"))
}

crate::apply::managed_web_server!(Nginx);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_drop_to_www_data_only_when_started_by_root() {
        let nginx = Nginx::new(NginxConfig::new(HostLayout::under("/srv/hosting"))).expect("nginx");
        let root = Path::new("/tmp/staged");
        let as_root = nginx
            .main_config(root, &root.join("sites"), true)
            .expect("render")
            .contents;
        let as_user = nginx
            .main_config(root, &root.join("sites"), false)
            .expect("render")
            .contents;
        assert!(as_root.contains("\nuser www-data;\n"));
        assert!(!as_user.lines().any(|l| l.starts_with("user ")));
        for needle in [
            "pid /tmp/staged/run/nginx.pid;",
            "error_log /tmp/staged/logs/error.log;",
            "client_body_temp_path /tmp/staged/tmp/client_body;",
            "scgi_temp_path /tmp/staged/tmp/scgi;",
            "server_names_hash_bucket_size 128;",
            "include /tmp/staged/sites/*.conf;",
            "\nworker_rlimit_nofile 8192;\n",
            "log_format vhost_combined '$server_name:$server_port $remote_addr - ",
            "access_log /tmp/staged/logs/access.log vhost_combined;",
        ] {
            assert!(as_user.contains(needle), "missing {needle:?} in\n{as_user}");
        }
    }

    #[test]
    fn worker_rlimit_nofile_comes_from_the_config() {
        let mut config = NginxConfig::new(HostLayout::under("/srv/hosting"));
        config.worker_rlimit_nofile = NonZeroU32::new(4_096).expect("non-zero");
        let root = Path::new("/tmp/staged");
        let main = Nginx::new(config)
            .expect("nginx")
            .main_config(root, &root.join("sites"), false)
            .expect("render")
            .contents;
        assert!(main.contains("\nworker_rlimit_nofile 4096;\n"), "{main}");
    }

    #[test]
    fn a_staged_root_that_needs_quoting_is_refused() {
        let nginx = Nginx::new(NginxConfig::new(HostLayout::under("/srv/hosting"))).expect("nginx");
        let err = nginx
            .main_config(Path::new("/tmp/has space"), Path::new("/tmp/x"), false)
            .expect_err("refused");
        assert!(
            matches!(err, hosting_core::Error::Invalid { ref field, .. } if field == "staged_root"),
            "{err:?}"
        );
    }

    #[test]
    fn a_service_generation_is_an_http_level_part_and_a_test_config_around_it() {
        let mut config = NginxConfig::new(HostLayout::under("/srv/hosting"));
        config.ports = Ports {
            http: 8080,
            https: 8443,
        };
        config.management = Management::Service(NginxService::default());
        let nginx = Nginx::new(config).expect("nginx");
        let generation = Path::new("/var/lib/hosting/nginx/generations/7");
        let files = nginx.render_frame(generation, &[]).expect("render");
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, [SERVICE_SNIPPET, SERVICE_TEST]);
        let (snippet, test) = (&files[0].contents, &files[1].contents);
        for needle in [
            "    listen 8080;\n    server_name hosting-health.invalid;\n",
            "add_header X-Hosting-Generation 7 always;",
            "\ninclude /var/lib/hosting/nginx/generations/7/sites/*.conf;\n",
        ] {
            assert!(snippet.contains(needle), "missing {needle:?} in\n{snippet}");
        }
        // The distro's main context stays the operator's.
        for absent in ["user ", "pid ", "error_log", "worker_", "events", "http {"] {
            assert!(!snippet.contains(absent), "{absent:?} in\n{snippet}");
        }
        for needle in [
            "include /etc/nginx/modules-enabled/*.conf;\n",
            "pid /var/lib/hosting/nginx/tmp/test.pid;\n",
            "error_log stderr;\n",
            "    include /etc/nginx/mime.types;\n",
            "    access_log off;\n",
            "    client_body_temp_path /var/lib/hosting/nginx/tmp/client_body;\n",
            "    include /var/lib/hosting/nginx/generations/7/hosting.conf;\n",
        ] {
            assert!(test.contains(needle), "missing {needle:?} in\n{test}");
        }
    }

    #[test]
    fn a_service_with_an_unusable_name_or_path_is_refused() {
        let service = NginxService {
            service: "nginx; reboot".to_owned(),
            ..NginxService::default()
        };
        let mut config = NginxConfig::new(HostLayout::under("/srv/hosting"));
        config.management = Management::Service(service);
        let err = Nginx::new(config).expect_err("refused");
        assert!(
            matches!(err, hosting_core::Error::Invalid { ref field, .. } if field == "service"),
            "{err:?}"
        );
        let service = NginxService {
            managed_root: PathBuf::from("/var/lib/hosting nginx"),
            ..NginxService::default()
        };
        let mut config = NginxConfig::new(HostLayout::under("/srv/hosting"));
        config.management = Management::Service(service);
        let err = Nginx::new(config).expect_err("refused");
        assert!(
            matches!(err, hosting_core::Error::Invalid { ref field, .. } if field == "managed_root"),
            "{err:?}"
        );
    }
}
