//! NGINX: one `sites/site<ID>.conf` per site, PHP through FastCGI to the site's FPM socket.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hosting_core::model::Website;
use hosting_core::system::SystemRunner;
use hosting_core::types::{PhpBytes, WebServerKind};
use hosting_core::web::RenderedFile;
use hosting_core::{Command, CommandRunner, HostLayout, Result};
use serde::Serialize;

use crate::apply::{HEALTH_HOST, Supervised, generation_of};
use crate::context::{LogMode, Ports, SiteContext, check_layout, config_path};
use crate::stage::{rendered, run_check, running_as_root, write_tree};
use crate::templates::{NGINX_MAIN, NGINX_SITE, Templates};

/// How an [`Nginx`] backend is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NginxConfig {
    /// Where the node keeps site files, sockets, logs and certificates.
    pub layout: HostLayout,
    /// A directory of operator templates; a file named like an embedded template
    /// (`nginx-site.conf.j2`, `nginx-main.conf.j2`) replaces it.
    pub template_overrides: Option<PathBuf>,
    /// The nginx binary, by path or by name in `PATH`.
    pub binary: PathBuf,
    /// The ports sites listen on.
    pub ports: Ports,
    /// Also listen on IPv6 (`[::]:port`).
    pub listen_ipv6: bool,
    /// Runs the binary.
    pub runner: Arc<dyn CommandRunner>,
    /// Where the SDK runs this server: its managed tree, pid file, logs and temporary files.
    pub server_root: PathBuf,
    /// Where the sites log; see [`LogMode`] for why [`LogMode::Shared`] is the default.
    pub log_mode: LogMode,
    /// `worker_rlimit_nofile`: the open-files limit nginx sets in each worker. A worker needs
    /// one descriptor per connection, two for a request passed to PHP (client and FastCGI),
    /// plus every open log file; with `worker_connections 1024` that is over 2,048, more than
    /// the usual 1,024 soft limit the master inherits. Must not exceed the node's hard limit:
    /// above it nginx logs an alert at every worker start and keeps the inherited limit. It
    /// does not raise the master's own limit, which opens the log files (see [`LogMode`]).
    pub worker_rlimit_nofile: NonZeroU32,
}

/// The default [`NginxConfig::worker_rlimit_nofile`]: 8 x `worker_connections` (1,024), room
/// for every connection proxied to PHP and the log files of a few thousand sites in
/// [`LogMode::PerSite`], and below the 20,000 hard cap of our test nodes.
const DEFAULT_WORKER_RLIMIT_NOFILE: NonZeroU32 = NonZeroU32::MIN.saturating_add(8_191);

impl NginxConfig {
    /// Defaults for `layout`: embedded templates, `nginx` from `PATH`, ports 80 and 443 on
    /// IPv4 and IPv6, real processes, [`LogMode::Shared`], `worker_rlimit_nofile 8192`.
    pub fn new(layout: HostLayout) -> Self {
        Self {
            layout,
            template_overrides: None,
            binary: PathBuf::from("nginx"),
            ports: Ports::default(),
            listen_ipv6: true,
            runner: Arc::new(SystemRunner),
            server_root: PathBuf::from("/var/lib/hosting/nginx"),
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
    /// for static sites and when an extra directive sets it.
    client_max_body_size: Option<PhpBytes>,
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

    /// Checks the layout and compiles the templates (overrides included).
    pub fn new(config: NginxConfig) -> Result<Self> {
        check_layout(&config.layout)?;
        let templates = Templates::load(
            &[NGINX_SITE, NGINX_MAIN],
            config.template_overrides.as_deref(),
        )?;
        Ok(Self { config, templates })
    }

    /// [`WebServerKind::Nginx`].
    pub fn kind(&self) -> WebServerKind {
        WebServerKind::Nginx
    }

    /// `sites/site<ID>.conf` for `site`. Pure: the same site always gives the same bytes.
    pub fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        let context = SiteContext::new(
            site,
            &self.config.layout,
            self.config.ports,
            WebServerKind::Nginx,
            self.config.log_mode,
        )?;
        let sets_body_size = context
            .extra_directives
            .iter()
            .any(|d| d.name.as_str() == "client_max_body_size");
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
impl Supervised for Nginx {
    const NAME: &'static str = "nginx";
    const MAIN_CONFIG: &'static str = Nginx::MAIN_CONFIG;
    const RUNTIME_DIRS: &'static [&'static str] = &["run", "logs", "tmp"];

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
        let command = self.binary_command(main).arg("-t");
        run_check(
            self.config.runner.as_ref(),
            format!("{} -t", self.config.binary.display()),
            &command,
        )
        .await
    }

    fn start_command(&self, live_main: &Path) -> Command {
        self.binary_command(live_main)
    }

    /// One `-t` already parsed the tree; `SIGHUP` to the master avoids the extra parse that
    /// `nginx -s reload` does.
    fn reload_command(&self, _live_main: &Path, pid: &str) -> Command {
        Command::new("kill").arg("-HUP").arg(pid)
    }
}

impl Nginx {
    /// `nginx -c MAIN -p ROOT/ -e ROOT/logs/error.log`.
    fn binary_command(&self, main: &Path) -> Command {
        let root = &self.config.server_root;
        let mut prefix = root.as_os_str().to_owned();
        prefix.push("/");
        Command::new(&self.config.binary)
            .arg("-c")
            .arg(main)
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(root.join("logs/error.log"))
    }
}

crate::apply::supervised_web_server!(Nginx);

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
}
