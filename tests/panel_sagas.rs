//! The `Panel` service's website sagas on real servers: nginx and PHP-FPM 8.2 started by the SDK
//! under a temporary prefix, customer databases on the MariaDB that `scripts/test.sh` starts,
//! the panel's records on SQLite.
//!
//! - a website created with a database serves PHP 8.2 over HTTP, runs as its own user and
//!   connects to its database with the credentials the panel returned once; switching it to
//!   PHP 8.4 and deleting it leave nothing behind (no pool, vhost, database, login or files);
//! - a failure injected at each step of the create saga (database, files, PHP pools, vhost,
//!   and the final record update, failed inside SQLite by a trigger) leaves no partial site behind: no record, database, login, directory, pool or vhost, and
//!   the neighbouring site keeps answering.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use hosting_core::auth::{Keyring, SigningKey};
use hosting_core::auth_store::AuthStore;
use hosting_core::jobs::JobStore;
use hosting_core::model::{
    DatabaseSettings, NewNode, NewTenant, NewUser, NewWebsite, NodeRole, Role, Website,
    WebsiteChanges, WebsiteSettings, WebsiteStatus,
};
use hosting_core::panel::{Actor, AuthSettings, DatabaseServer, NodeBackends, Panel, PanelParts};
use hosting_core::php::{PhpInstallation, PhpRuntime};
use hosting_core::site_files::{LocalSiteFiles, SiteFiles};
use hosting_core::system::SystemRunner;
use hosting_core::types::{DbEngine, DbName, DbUserName, Password, PhpVersion, WebServerKind};
use hosting_core::{
    ApplyReport, Caller, DatabaseBackend, DatabaseOptions, DbCapabilities, Drift, Error,
    HostLayout, Operator, PanelStore, RenderedFile, Result, SystemClock, WebServer,
};
use hosting_db::customer::{CustomerServerConfig, MySqlBackend};
use hosting_db::{SqlStore, StoreOptions};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, PhpFpm, PrefixInstall};
use hosting_tests::{
    MARIADB_URL, TempDir, env_or_skip, free_port, fresh_sqlite, http_get, server_url,
};
use hosting_web::{Management, Nginx, NginxConfig, Ports};
use sqlx::Connection;

/// Which saga step fails next (each flag fails one call, then clears itself).
#[derive(Debug, Default)]
struct Faults {
    database: AtomicBool,
    files: AtomicBool,
    php: AtomicBool,
    web: AtomicBool,
}

fn tripped(flag: &AtomicBool) -> bool {
    flag.swap(false, Ordering::SeqCst)
}

fn injected(what: &str) -> Error {
    Error::backend("injected", format!("injected {what} failure"))
}

#[derive(Debug)]
struct FaultyWeb(Arc<dyn WebServer>, Arc<Faults>);

#[async_trait]
impl WebServer for FaultyWeb {
    fn kind(&self) -> WebServerKind {
        self.0.kind()
    }
    fn render_site(&self, site: &Website) -> Result<Vec<RenderedFile>> {
        self.0.render_site(site)
    }
    async fn validate(&self, staged_root: &Path) -> Result<()> {
        self.0.validate(staged_root).await
    }
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        if tripped(&self.1.web) {
            return Err(injected("vhost"));
        }
        self.0.apply(sites).await
    }
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        self.0.drift(sites).await
    }
}

#[derive(Debug)]
struct FaultyPhp(Arc<PhpFpm>, Arc<Faults>);

#[async_trait]
impl PhpRuntime for FaultyPhp {
    async fn installed(&self) -> Result<Vec<PhpInstallation>> {
        PhpRuntime::installed(self.0.as_ref()).await
    }
    fn render_pool(&self, site: &Website) -> Result<RenderedFile> {
        PhpRuntime::render_pool(self.0.as_ref(), site)
    }
    async fn validate(&self, version: PhpVersion, staged_root: &Path) -> Result<()> {
        PhpRuntime::validate(self.0.as_ref(), version, staged_root).await
    }
    async fn apply(&self, sites: &[Website]) -> Result<ApplyReport> {
        if tripped(&self.1.php) {
            return Err(injected("pool"));
        }
        self.0.apply(sites).await
    }
    async fn drift(&self, sites: &[Website]) -> Result<Vec<Drift>> {
        self.0.drift(sites).await
    }
}

/// Fails `grant_all`: the database and the login exist by then, so both must be undone.
#[derive(Debug)]
struct FaultyDb(Arc<MySqlBackend>, Arc<Faults>);

#[async_trait]
impl DatabaseBackend for FaultyDb {
    fn engine(&self) -> DbEngine {
        self.0.engine()
    }
    fn capabilities(&self) -> DbCapabilities {
        self.0.capabilities()
    }
    async fn create_database(&self, name: &DbName, options: &DatabaseOptions) -> Result<()> {
        self.0.create_database(name, options).await
    }
    async fn drop_database(&self, name: &DbName) -> Result<()> {
        self.0.drop_database(name).await
    }
    async fn list_databases(&self) -> Result<Vec<DbName>> {
        self.0.list_databases().await
    }
    async fn database_size(&self, name: &DbName) -> Result<u64> {
        self.0.database_size(name).await
    }
    async fn create_user(&self, user: &DbUserName, password: &Password) -> Result<()> {
        self.0.create_user(user, password).await
    }
    async fn drop_user(&self, user: &DbUserName) -> Result<()> {
        self.0.drop_user(user).await
    }
    async fn list_users(&self) -> Result<Vec<DbUserName>> {
        self.0.list_users().await
    }
    async fn rotate_password(&self, user: &DbUserName, password: &Password) -> Result<()> {
        self.0.rotate_password(user, password).await
    }
    async fn grant_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        if tripped(&self.1.database) {
            return Err(injected("grant"));
        }
        self.0.grant_all(user, database).await
    }
    async fn revoke_all(&self, user: &DbUserName, database: &DbName) -> Result<()> {
        self.0.revoke_all(user, database).await
    }
    async fn can_connect(
        &self,
        user: &DbUserName,
        password: &Password,
        database: &DbName,
    ) -> Result<bool> {
        self.0.can_connect(user, password, database).await
    }
}

/// Creates the directories, then fails: what was created must be removed again.
#[derive(Debug)]
struct FaultyFiles(LocalSiteFiles, Arc<Faults>);

#[async_trait]
impl SiteFiles for FaultyFiles {
    async fn prepare(&self, site: &Website) -> Result<()> {
        self.0.prepare(site).await?;
        if tripped(&self.1.files) {
            return Err(injected("files"));
        }
        Ok(())
    }
    async fn remove(&self, site: &Website) -> Result<()> {
        self.0.remove(site).await
    }
}

/// A panel over SQLite with one node: nginx + PHP-FPM 8.2 and 8.4 under a prefix, MariaDB.
struct World {
    _stop: Stop,
    _dir: TempDir,
    _store_dir: TempDir,
    panel: Panel,
    store: Arc<SqlStore>,
    faults: Arc<Faults>,
    admin: Actor,
    node: hosting_core::model::NodeId,
    nginx: Arc<Nginx>,
    php: Arc<PhpFpm>,
    mariadb: Arc<MySqlBackend>,
    layout: HostLayout,
    port: u16,
    user: hosting_core::types::SystemUser,
    prefix: String,
    /// The store's SQLite URL, for injecting a failure into the database itself.
    store_url: String,
}

/// Stops the servers started under the prefix, even when a test fails half-way.
struct Stop(Vec<std::path::PathBuf>);

impl Drop for Stop {
    fn drop(&mut self) {
        for pid_file in &self.0 {
            if let Ok(pid) = std::fs::read_to_string(pid_file) {
                let _ = std::process::Command::new("kill")
                    .arg("-QUIT")
                    .arg(pid.trim())
                    .status();
            }
        }
    }
}

async fn world(name: &str) -> Option<World> {
    let user: hosting_core::types::SystemUser = env_or_skip("HOSTING_TEST_SYSTEM_USERS")?
        .split(',')
        .next()
        .expect("a test user")
        .trim()
        .parse()
        .expect("user");
    let nginx_binary = env_or_skip("HOSTING_TEST_NGINX")?;
    let php82 = PrefixInstall {
        fpm_binary: env_or_skip("HOSTING_TEST_PHP_FPM_82")?.into(),
        php_ini: None,
        scan_dir: None,
    };
    let php84 = PrefixInstall {
        fpm_binary: env_or_skip("HOSTING_TEST_PHP_FPM_84_BIN")?.into(),
        php_ini: Some(env_or_skip("HOSTING_TEST_PHP_FPM_84_INI")?.into()),
        scan_dir: Some(env_or_skip("HOSTING_TEST_PHP_FPM_84_SCAN_DIR")?.into()),
    };
    let mariadb_url = server_url(MARIADB_URL)?;

    let dir = TempDir::new();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let layout = HostLayout::under(root.join("node"));
    for d in [&layout.php_run_dir, &layout.log_dir] {
        std::fs::create_dir_all(d).expect("mkdir layout");
    }
    let port = free_port();
    let runner: Arc<dyn hosting_core::CommandRunner> = Arc::new(SystemRunner);
    let mut config = NginxConfig::new(layout.clone());
    config.binary = nginx_binary.into();
    config.ports = Ports {
        http: port,
        https: free_port(),
    };
    config.listen_ipv6 = false;
    config.management = Management::Supervised {
        server_root: root.join("nginx"),
    };
    let nginx = Arc::new(Nginx::new(config).expect("nginx"));
    let mut php_config = FpmConfig::new(layout.clone());
    php_config.managed_root = root.join("php");
    php_config.service = FpmService::Supervised;
    let php = Arc::new(
        PhpFpm::discover(
            runner.clone(),
            php_config,
            &DiscoveryConfig {
                system_dir: None,
                prefix_installs: vec![php82, php84],
            },
        )
        .await
        .expect("discover PHP"),
    );
    let stop = Stop(vec![
        root.join("nginx/run/nginx.pid"),
        layout.php_run_dir.join("php8.2-fpm.pid"),
        layout.php_run_dir.join("php8.4-fpm.pid"),
    ]);
    let mariadb = Arc::new(
        MySqlBackend::connect(CustomerServerConfig::new(mariadb_url.clone()))
            .await
            .expect("MariaDB"),
    );
    let (host, db_port) = host_and_port(&mariadb_url);

    let (store_dir, url) = fresh_sqlite();
    let store = Arc::new(
        SqlStore::open(&url, &StoreOptions::default())
            .await
            .expect("store"),
    );
    let op = Operator::assume();
    let operator = store
        .create_tenant(
            &op,
            NewTenant {
                name: "Operator".parse().expect("name"),
                slug: "operator".parse().expect("slug"),
                quotas: Default::default(),
            },
        )
        .await
        .expect("operator tenant");
    let tenant = store
        .create_tenant(
            &op,
            NewTenant {
                name: "Acme".parse().expect("name"),
                slug: "acme".parse().expect("slug"),
                quotas: Default::default(),
            },
        )
        .await
        .expect("tenant");
    let admin = store
        .create_user_as_operator(
            &op,
            tenant.id,
            NewUser {
                role: Role::Admin,
                email: "admin@acme.example".parse().expect("email"),
            },
        )
        .await
        .expect("admin");
    let node = store
        .create_node(
            &op,
            NewNode {
                name: "local".parse().expect("node name"),
                address: "127.0.0.1".parse().expect("address"),
                roles: BTreeSet::from([NodeRole::Web, NodeRole::Database]),
            },
        )
        .await
        .expect("node");
    let faults = Arc::new(Faults::default());
    let panel = Panel::new(PanelParts {
        store: store.clone() as Arc<dyn PanelStore>,
        auth: store.clone() as Arc<dyn AuthStore>,
        jobs: store.clone() as Arc<dyn JobStore>,
        clock: Arc::new(SystemClock),
        keys: Keyring::new(SigningKey::generate().expect("key")),
        operator_tenant: operator.id,
        auth_settings: AuthSettings::default(),
    });
    panel.attach_node(
        node.id,
        NodeBackends {
            web: vec![Arc::new(FaultyWeb(nginx.clone(), faults.clone()))],
            php: Arc::new(FaultyPhp(php.clone(), faults.clone())),
            databases: vec![DatabaseServer {
                engine: DbEngine::MariaDb,
                backend: Arc::new(FaultyDb(mariadb.clone(), faults.clone())),
                host,
                port: db_port,
            }],
            files: Arc::new(FaultyFiles(
                LocalSiteFiles::new(layout.clone(), runner),
                faults.clone(),
            )),
        },
    );
    let actor = Actor::trusted(
        Caller {
            tenant: tenant.id,
            user: admin.id,
            role: Role::Admin,
        },
        None,
    );
    Some(World {
        _stop: stop,
        _dir: dir,
        _store_dir: store_dir,
        panel,
        store,
        faults,
        admin: actor,
        node: node.id,
        nginx,
        php,
        mariadb,
        layout,
        port,
        user,
        prefix: format!("ps{}{name}", std::process::id()),
        store_url: url,
    })
}

/// Host and port of a `mysql://user:pass@host:port/db` URL.
fn host_and_port(url: &str) -> (String, u16) {
    let authority = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("authority");
    let host_port = authority.rsplit('@').next().expect("host");
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "3306"));
    (host.to_owned(), port.parse().expect("port"))
}

impl World {
    fn new_site(&self, n: u32, database: bool) -> NewWebsite {
        let mut settings = WebsiteSettings::default();
        if database {
            settings.database = Some(DatabaseSettings {
                engine: DbEngine::MariaDb,
                name: format!("{}_{n}", self.prefix).parse().expect("db name"),
                charset: "utf8mb4".parse().expect("charset"),
                collation: "utf8mb4_unicode_ci".parse().expect("collation"),
            });
        }
        NewWebsite {
            owner_id: self.admin.caller().user,
            domain: format!("site{n}.{}.example.com", self.prefix)
                .parse()
                .expect("domain"),
            aliases: vec![],
            node_id: self.node,
            web_server: WebServerKind::Nginx,
            php_version: Some(PhpVersion::V8_2),
            system_user: self.user.clone(),
            document_root: "public".parse().expect("document root"),
            settings,
        }
    }

    async fn sites(&self) -> Vec<Website> {
        self.store
            .list_websites(self.admin.caller(), Default::default())
            .await
            .expect("list")
            .items
    }

    /// The database names and logins on MariaDB that belong to this test.
    async fn customer_db_objects(&self) -> (Vec<String>, Vec<String>) {
        let dbs = self
            .mariadb
            .list_databases()
            .await
            .expect("databases")
            .into_iter()
            .map(|d| d.as_str().to_owned())
            .filter(|d| d.starts_with(&self.prefix))
            .collect();
        let users = self
            .mariadb
            .list_users()
            .await
            .expect("users")
            .into_iter()
            .map(|u| u.as_str().to_owned())
            .filter(|u| u.starts_with(&self.prefix))
            .collect();
        (dbs, users)
    }

    /// Makes every change of a website's status fail in SQLite itself (a trigger), so the
    /// saga's last step fails for real, until [`World::drop_trigger`].
    async fn fail_status_updates(&self) {
        let mut db = sqlx::SqliteConnection::connect(&self.store_url)
            .await
            .expect("open the store's file");
        sqlx::query(
            "CREATE TRIGGER fail_status BEFORE UPDATE OF status ON websites \
             BEGIN SELECT RAISE(FAIL, 'injected status failure'); END",
        )
        .execute(&mut db)
        .await
        .expect("create the trigger");
    }

    async fn drop_trigger(&self) {
        let mut db = sqlx::SqliteConnection::connect(&self.store_url)
            .await
            .expect("open the store's file");
        sqlx::query("DROP TRIGGER fail_status")
            .execute(&mut db)
            .await
            .expect("drop the trigger");
    }

    /// The vhost and pool files of the live trees.
    fn live_configs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for tree in [
            "nginx/managed/live/sites",
            "php/8.2/live/pool.d",
            "php/8.4/live/pool.d",
        ] {
            let dir = self._dir.path().join(tree);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    out.push(format!("{tree}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        out.sort();
        out
    }

    fn write_page(&self, site: &Website, name: &str, body: &str) {
        let root = self.layout.site(site).document_root;
        let path = root.join(name);
        std::fs::write(&path, body).expect("write page");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    async fn get(&self, site: &Website, path: &str) -> (u16, String) {
        http_get(self.port, site.domain.as_str(), path)
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", site.domain))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_with_a_database_serves_php_switches_version_and_is_deleted_without_a_trace() {
    let Some(w) = world("life").await else {
        return;
    };
    let created = w
        .panel
        .create_website(&w.admin, w.new_site(1, true))
        .await
        .expect("create");
    assert_eq!(created.website.status, WebsiteStatus::Active);
    let db = created.database.clone().expect("credentials");
    let site = created.website.clone();
    w.write_page(
        &site,
        "index.php",
        &format!(
            "<?php $db = new PDO('mysql:host={};port={};dbname={}', '{}', '{}');\n\
             echo PHP_VERSION, ' ', posix_getpwuid(posix_geteuid())['name'], ' ',\n\
             $db->query('SELECT DATABASE()')->fetchColumn();\n",
            db.host,
            db.port,
            db.database,
            db.user,
            db.password.expose()
        ),
    );
    let (status, body) = w.get(&site, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("8.2."), "{body}");
    assert!(
        body.ends_with(&format!(" {} {}", w.user, db.database)),
        "{body}"
    );

    let switched = w
        .panel
        .update_website(
            &w.admin,
            site.id,
            WebsiteChanges {
                php_version: Some(Some(PhpVersion::V8_4)),
                ..WebsiteChanges::default()
            },
        )
        .await
        .expect("switch to 8.4");
    assert_eq!(switched.php_version, Some(PhpVersion::V8_4));
    let (status, body) = w.get(&site, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("8.4."), "{body}");
    assert!(
        w.nginx
            .drift(std::slice::from_ref(&switched))
            .await
            .expect("drift")
            .is_empty()
    );
    assert!(
        w.php
            .drift(std::slice::from_ref(&switched))
            .await
            .expect("drift")
            .is_empty()
    );

    w.panel
        .delete_website(&w.admin, site.id)
        .await
        .expect("delete");
    assert!(w.sites().await.is_empty());
    assert_eq!(w.customer_db_objects().await, (vec![], vec![]));
    assert!(
        !w.layout.site(&site).home.exists(),
        "the site's files are gone"
    );
    assert_eq!(w.live_configs(), Vec::<String>::new());
    let (status, _) = w.get(&site, "/").await;
    assert_eq!(
        status, 404,
        "the default server answers a deleted site's name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_create_step_leaves_no_partial_site_behind() {
    let Some(w) = world("fail").await else {
        return;
    };
    let neighbour = w
        .panel
        .create_website(&w.admin, w.new_site(1, false))
        .await
        .expect("neighbour")
        .website;
    w.write_page(&neighbour, "index.php", "<?php echo 'neighbour';\n");
    let configs = w.live_configs();
    assert_eq!(configs.len(), 2, "{configs:?}");

    let steps: [(&str, &AtomicBool); 4] = [
        ("database", &w.faults.database),
        ("files", &w.faults.files),
        ("deploy", &w.faults.php),
        ("deploy", &w.faults.web),
    ];
    let record = AtomicBool::new(false);
    let steps: [(&str, &AtomicBool); 5] =
        [steps[0], steps[1], steps[2], steps[3], ("record", &record)];
    for (n, (step, flag)) in (2u32..).zip(steps) {
        flag.store(true, Ordering::SeqCst);
        // The last step (marking the site active) fails inside the database itself.
        let trigger = step == "record";
        if trigger {
            flag.store(false, Ordering::SeqCst);
            w.fail_status_updates().await;
        }
        let new = w.new_site(n, true);
        let domain = new.domain.clone();
        let err = w
            .panel
            .create_website(&w.admin, new)
            .await
            .expect_err("the injected failure");
        match &err {
            Error::StepFailed { step: failed, .. } => assert_eq!(failed, &step, "{err}"),
            other => panic!("expected a failed {step} step, got {other:?}"),
        }
        assert!(!flag.load(Ordering::SeqCst), "the fault fired");
        if trigger {
            w.drop_trigger().await;
        }
        let sites = w.sites().await;
        assert_eq!(
            sites.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![neighbour.id],
            "no record of {domain} after a failed {step}"
        );
        assert_eq!(
            w.customer_db_objects().await,
            (vec![], vec![]),
            "no database or login after a failed {step}"
        );
        let homes: Vec<String> = std::fs::read_dir(&w.layout.sites_root)
            .expect("sites root")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(homes, vec![format!("site{}", neighbour.id)], "after {step}");
        assert_eq!(
            w.live_configs(),
            configs,
            "live configs after a failed {step}"
        );
        let (status, body) = w.get(&neighbour, "/").await;
        assert_eq!((status, body.as_str()), (200, "neighbour"), "after {step}");
    }
    let audit = w
        .panel
        .list_audit(&w.admin, Default::default())
        .await
        .expect("audit");
    let failed = audit
        .items
        .iter()
        .filter(|e| e.action == "website.create" && e.outcome.to_string() == "failed")
        .count();
    assert_eq!(failed, 5, "every failed create is audited");
}
