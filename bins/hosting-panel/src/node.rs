//! The node the panel runs on: nginx (and Apache, when configured) and PHP-FPM supervised
//! under `DATA_DIR/node`, the customer-database servers from the configuration, the sites'
//! directories and Unix accounts.
//!
//! Built the way `hostctl node` builds a prefix-mode node, so both drive the same backends the
//! same way. A piece that is not installed is not attached, and the API says what to install
//! when a request needs it; nothing stands in for a missing server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hosting_core::accounts::{LocalAccounts, SharedAccount};
use hosting_core::panel::{DatabaseServer, NodeBackends};
use hosting_core::process::{
    Skipped, StopSignal, Stopped, SupervisedServer, php_fpm_servers, stop_servers,
};
use hosting_core::site_files::LocalSiteFiles;
use hosting_core::system::SystemRunner;
use hosting_core::{CommandRunner, DatabaseBackend, HostLayout, NodeAccounts, WebServer};
use hosting_db::customer::{CustomerServerConfig, MySqlBackend, PostgresBackend};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, PhpFpm, PrefixInstall, discover};
use hosting_web::{Apache, ApacheConfig, Management, Nginx, NginxConfig, Ports};

use crate::app::{DatabaseEndpoint, NodeNotes};
use crate::config::{DatabaseServerConfig, NodeConfig};
use crate::server::StartError;

/// Every path of the local node under the data directory.
#[derive(Debug, Clone)]
pub struct NodePaths {
    /// `DATA_DIR/node`.
    pub root: PathBuf,
    /// Sites, sockets, logs, certificates: `DATA_DIR/node/{sites,run,log,certs}`.
    pub layout: HostLayout,
    /// nginx's server root: `DATA_DIR/node/nginx`.
    pub nginx_root: PathBuf,
    /// Apache's server root: `DATA_DIR/node/apache`.
    pub apache_root: PathBuf,
    /// PHP-FPM's managed trees: `DATA_DIR/node/php`.
    pub php_root: PathBuf,
}

impl NodePaths {
    /// The paths under `data_dir`.
    pub fn under(data_dir: &Path) -> Self {
        let root = data_dir.join("node");
        Self {
            layout: HostLayout::under(&root),
            nginx_root: root.join("nginx"),
            apache_root: root.join("apache"),
            php_root: root.join("php"),
            root,
        }
    }
}

/// The local node's backends and what the API may say about it.
#[derive(Debug)]
pub struct LocalNode {
    /// What the panel drives.
    pub backends: NodeBackends,
    /// Database endpoints and install hints.
    pub notes: NodeNotes,
}

fn start_error(what: &str, e: impl std::fmt::Display) -> StartError {
    StartError::new(format!("{what}: {e}"))
}

/// Builds the local node from `config` under `data_dir`. Finds nginx and PHP-FPM (each binary
/// asked what it is) and connects to the customer-database servers; a database server that
/// does not answer is left out with a warning, so the panel still starts.
pub async fn local_node(config: &NodeConfig, data_dir: &Path) -> Result<LocalNode, StartError> {
    let paths = NodePaths::under(data_dir);
    for dir in [
        &paths.root,
        &paths.layout.sites_root,
        &paths.layout.php_run_dir,
        &paths.layout.log_dir,
        &paths.layout.cert_dir,
    ] {
        #[allow(
            clippy::disallowed_methods,
            reason = "the panel's own node directories under its data directory"
        )]
        std::fs::create_dir_all(dir)
            .map_err(|e| start_error(&format!("cannot create {}", dir.display()), e))?;
    }
    let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
    let mut notes = NodeNotes::default();

    let mut web: Vec<Arc<dyn WebServer>> = Vec::new();
    let mut missing_web = Vec::new();
    match config.nginx.as_ref().filter(|p| p.exists()) {
        Some(binary) => {
            let mut nginx = NginxConfig::new(paths.layout.clone());
            nginx.binary = binary.clone();
            nginx.ports = Ports {
                http: config.http_port,
                https: config.https_port,
            };
            nginx.listen_ipv6 = false;
            nginx.runner = runner.clone();
            nginx.management = Management::Supervised {
                server_root: paths.nginx_root.clone(),
            };
            web.push(Arc::new(
                Nginx::new(nginx).map_err(|e| start_error("nginx", e))?,
            ));
            tracing::info!(binary = %binary.display(), port = config.http_port, "nginx attached");
        }
        None => {
            let why = match &config.nginx {
                Some(p) => format!("node.nginx names {}, which does not exist", p.display()),
                None => "no nginx was found at /usr/sbin/nginx".to_owned(),
            };
            missing_web.push(format!(
                "{why}: install it (Debian: apt-get install nginx) or set node.nginx / \
                 HOSTING_PANEL_NODE_NGINX to its binary"
            ));
        }
    }
    match config.apache.as_ref() {
        Some(binary) if binary.exists() => {
            let mut apache = ApacheConfig::new(paths.layout.clone());
            apache.binary = binary.clone();
            apache.ports = Ports {
                http: config.apache_http_port,
                https: config.apache_https_port,
            };
            apache.runner = runner.clone();
            apache.management = Management::Supervised {
                server_root: paths.apache_root.clone(),
            };
            web.push(Arc::new(
                Apache::new(apache).map_err(|e| start_error("apache", e))?,
            ));
            tracing::info!(binary = %binary.display(), port = config.apache_http_port, "Apache attached");
        }
        Some(binary) => missing_web.push(format!(
            "node.apache names {}, which does not exist: install it (Debian: apt-get install \
             apache2) or fix node.apache",
            binary.display()
        )),
        None => missing_web.push(
            "Apache is not configured: install it (Debian: apt-get install apache2) and set \
             node.apache = \"/usr/sbin/apache2\""
                .to_owned(),
        ),
    }
    if web.is_empty() {
        tracing::warn!(
            "{}; this node serves no websites until one is configured",
            missing_web.join("; ")
        );
    }
    notes.missing_web_server = Some(format!(
        "{}; then restart the panel",
        missing_web.join("; ")
    ));

    let discovery = DiscoveryConfig {
        system_dir: config.php_system_dir.clone(),
        prefix_installs: config
            .php_prefixes
            .iter()
            .map(|p| PrefixInstall {
                fpm_binary: p.fpm_binary.clone(),
                php_ini: p.php_ini.clone(),
                scan_dir: p.scan_dir.clone(),
            })
            .collect(),
    };
    let installations = discover(runner.as_ref(), &discovery)
        .await
        .map_err(|e| start_error("PHP-FPM discovery", e))?;
    let versions: Vec<&str> = installations.iter().map(|i| i.version.as_str()).collect();
    tracing::info!(versions = ?versions, "PHP-FPM found");
    notes.missing_php = Some(
        "install the PHP-FPM version the site needs (Debian 12: apt-get install php8.2-fpm; \
         other versions as a build listed in node.php_prefixes), then restart the panel"
            .to_owned(),
    );
    let mut fpm = FpmConfig::new(paths.layout.clone());
    fpm.managed_root = paths.php_root.clone();
    fpm.service = FpmService::Supervised;
    let unprivileged = unprivileged_user(runner.as_ref()).await?;
    if let Some(user) = unprivileged.clone() {
        // Without root, FPM cannot hand a socket to www-data, and nginx's workers run as
        // this same user anyway: the pools' sockets belong to it.
        tracing::info!(
            user = user.as_str(),
            "not running as root: pools run as this user"
        );
        fpm.web_user = user;
    }
    let php = Arc::new(
        PhpFpm::new(runner.clone(), fpm, installations).map_err(|e| start_error("php-fpm", e))?,
    );

    let mut databases = Vec::new();
    let mut missing = Vec::new();
    for (kind, server) in [
        (CustomerServer::MariaDb, config.mariadb.as_ref()),
        (CustomerServer::Postgres, config.postgres.as_ref()),
    ] {
        let name = kind.config_key();
        let Some(server) = server else {
            missing.push(format!("node.{name}_url is not set"));
            continue;
        };
        match connect(kind, server).await {
            Ok(backend) => {
                notes.databases.push(DatabaseEndpoint {
                    engine: backend.engine(),
                    host: server.host.clone(),
                    port: server.port,
                });
                databases.push(DatabaseServer {
                    engine: backend.engine(),
                    backend,
                    host: server.host.clone(),
                    port: server.port,
                });
            }
            Err(e) => {
                tracing::warn!(server = name, error = %e, "customer-database server not attached");
                missing.push(format!(
                    "node.{name}_url is set but the server did not answer when the panel started"
                ));
            }
        }
    }
    notes.missing_database = Some(format!(
        "{}; configure it and restart the panel",
        missing.join("; ")
    ));

    let files = LocalSiteFiles::new(paths.layout.clone(), runner.clone());
    let (files, accounts): (LocalSiteFiles, Arc<dyn NodeAccounts>) = match unprivileged {
        None => (
            files
                .with_web_group(WEB_GROUP)
                .map_err(|e| start_error("the web server's group", e))?,
            Arc::new(LocalAccounts::new(runner, config.uid_range)),
        ),
        Some(user) => {
            tracing::warn!(
                user = user.as_str(),
                allow_shared_account = config.allow_shared_account,
                "not running as root: no separate Unix accounts (isolation: none), every \
                 website runs as this user; websites of a second tenant are refused unless \
                 node.allow_shared_account is set"
            );
            let shared = SharedAccount::current(runner, config.allow_shared_account)
                .await
                .map_err(|e| start_error("the panel's own account", e))?;
            (files, Arc::new(shared))
        }
    };

    Ok(LocalNode {
        backends: NodeBackends {
            web,
            php,
            databases,
            files: Arc::new(files),
            accounts,
        },
        notes,
    })
}

/// The customer-database servers a local node may be given, each by its own `node.*_url`.
#[derive(Debug, Clone, Copy)]
enum CustomerServer {
    /// MariaDB or MySQL (`node.mariadb_url`).
    MariaDb,
    /// PostgreSQL (`node.postgres_url`).
    Postgres,
}

impl CustomerServer {
    /// Its configuration key's stem, for messages: `node.{stem}_url`.
    fn config_key(self) -> &'static str {
        match self {
            Self::MariaDb => "mariadb",
            Self::Postgres => "postgres",
        }
    }
}

async fn connect(
    kind: CustomerServer,
    server: &DatabaseServerConfig,
) -> hosting_core::Result<Arc<dyn DatabaseBackend>> {
    let name = kind.config_key();
    let mut config = CustomerServerConfig::new(server.admin_url.expose());
    if !server.user_hosts.is_empty() {
        config = config.user_hosts(server.user_hosts.clone());
    }
    let backend: Arc<dyn DatabaseBackend> = match kind {
        CustomerServer::Postgres => Arc::new(PostgresBackend::connect(config).await?),
        CustomerServer::MariaDb => Arc::new(MySqlBackend::connect(config).await?),
    };
    // The health check runs at every start too, so an operator sees it in the log.
    let health = backend.health().await?;
    if !health.open_to_every_login.is_empty() {
        tracing::warn!(
            server = name,
            databases = ?health.open_to_every_login,
            "every login may connect to these databases, customers' too: revoke CONNECT from \
             PUBLIC on them (GET /api/v1/nodes/{{id}}/database-health reports them)"
        );
    }
    Ok(backend)
}

/// The group nginx's workers (and Debian's web servers) run in: site homes are `0750` with
/// this group, so the web server can enter them and other sites' PHP cannot.
const WEB_GROUP: &str = "www-data";

/// The account this process runs as, when it is not root (read from `/proc/self/status`, the
/// name from `id -un`).
async fn unprivileged_user(
    runner: &dyn CommandRunner,
) -> Result<Option<hosting_php::UnixName>, StartError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| start_error("cannot read /proc/self/status", e))?;
    let effective_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if effective_uid == Some("0") {
        return Ok(None);
    }
    let out = runner
        .run(&hosting_core::Command::new("id").arg("-un"))
        .await
        .map_err(|e| start_error("id -un", e))?;
    let name = out.stdout.trim();
    name.parse()
        .map(Some)
        .map_err(|e| start_error(&format!("the user name {name:?} from id -un"), e))
}

/// Stops the local node's nginx and PHP-FPM masters under `data_dir`, which keep serving the
/// sites after the panel stops (by design: a panel restart must not take sites down). Servers
/// started elsewhere are left alone and reported.
pub async fn stop_local_node(data_dir: &Path) -> Result<(Vec<Stopped>, Vec<Skipped>), StartError> {
    // The servers were started with paths under the data directory as it was configured,
    // which `Config::load` made absolute; resolving symlinks and `..` here would hide them.
    let paths = NodePaths::under(data_dir);
    // A supervised web server keeps its pid in `SERVER_ROOT/run/NAME.pid` (hosting-web).
    let mut servers = vec![
        SupervisedServer {
            name: "nginx".to_owned(),
            pid_file: paths.nginx_root.join("run").join("nginx.pid"),
            stop_signal: StopSignal::Quit,
        },
        SupervisedServer {
            name: "apache".to_owned(),
            pid_file: paths.apache_root.join("run").join("apache2.pid"),
            stop_signal: StopSignal::Term,
        },
    ];
    servers.extend(php_fpm_servers(&paths.layout.php_run_dir));
    stop_servers(&paths.root, &servers, &SystemRunner, NODE_STOP_GRACE)
        .await
        .map_err(|e| start_error("stopping the node's servers", e))
}

/// How long a node server may take to stop gracefully before it is killed.
const NODE_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(15);
