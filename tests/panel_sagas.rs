//! The `Panel` service's website sagas on real servers: nginx and PHP-FPM 8.2 started by the SDK
//! under a temporary prefix, customer databases on the MariaDB that `scripts/test.sh` starts,
//! the panel's records on SQLite, and real Unix accounts (`LocalAccounts`, so the tests need
//! root) in a uid range of each test's own ([`TestUids`], which removes whatever is left in it).
//! Site homes are `0750` in the web server's group (`www-data`), as the panel runs as root.
//!
//! - a website created with a database gets a Unix account of its own, named after its domain,
//!   with a uid in the node's range, recorded for its tenant; it serves PHP 8.2 over HTTP
//!   running as that account and connects to its database with the credentials the panel
//!   returned once; switching it to PHP 8.4 and deleting it leave nothing behind (no pool,
//!   vhost, database, login, files, account, account record, process of its uid or file of its
//!   uid in the shared temporary directory);
//! - a failure injected at each step of the create saga (the account, created before it
//!   fails; database, files, PHP pools, vhost, and the final record update, failed inside
//!   SQLite by a trigger) leaves no partial site behind: no record, database, login, directory,
//!   pool, vhost, Unix account or account record, and the neighbouring site keeps answering;
//! - a second site of the same tenant may name the first one's account: it runs as it, the
//!   account outlives the first site's deletion and goes with the last site using it;
//! - a failed creation whose undo fails too (its database cannot be dropped) stays in the saga
//!   journal, and `Panel::recover` (what the next start runs) finishes undoing it: no record,
//!   database, login, home or account remains and the journal is empty;
//! - another tenant's admin naming that account (or an account of the node the panel did not
//!   create) is `Invalid` on `system_user`, and nothing is created.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use hosting_core::accounts::{LocalAccounts, derived_account_name};
use hosting_core::auth::{Keyring, SigningKey};
use hosting_core::auth_store::AuthStore;
use hosting_core::jobs::JobStore;
use hosting_core::model::{
    AuditOutcome, DatabaseSettings, NewNode, NewTenant, NewUser, NodeRole, Role, TenantId, Website,
    WebsiteChanges, WebsiteRequest, WebsiteSettings, WebsiteStatus,
};
use hosting_core::panel::{Actor, AuthSettings, DatabaseServer, NodeBackends, Panel, PanelParts};
use hosting_core::php::{PhpInstallation, PhpRuntime};
use hosting_core::site_files::{LocalSiteFiles, SiteFiles};
use hosting_core::system::SystemRunner;
use hosting_core::types::{
    DbEngine, DbName, DbUserName, Password, PhpVersion, SystemUser, WebServerKind,
};
use hosting_core::{
    ApplyReport, Caller, DatabaseBackend, DatabaseLimits, DatabaseOptions, DbCapabilities,
    DirectivePolicy, Drift, Error, HostLayout, Isolation, NodeAccounts, Operator, PageRequest,
    PanelStore, RefusedSite, RenderedFile, Result, ServerHealth, SystemClock, UidRange,
    UnixAccount, WebServer,
};
use hosting_db::customer::{CustomerServerConfig, MySqlBackend};
use hosting_db::{SqlStore, StoreOptions};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, PhpFpm, PrefixInstall};
use hosting_tests::{
    MARIADB_URL, TempDir, TestUids, env_or_skip, free_port, fresh_sqlite, http_get, root_or_skip,
    server_url,
};
use hosting_web::{Management, Nginx, NginxConfig, Ports};
use sqlx::{AssertSqlSafe, Connection};

/// Which saga step fails next (each flag fails one call, then clears itself).
#[derive(Debug, Default)]
struct Faults {
    account: AtomicBool,
    database: AtomicBool,
    files: AtomicBool,
    php: AtomicBool,
    web: AtomicBool,
    /// Fails `drop_database`, so an undo fails.
    drop: AtomicBool,
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
    fn directive_policy(&self) -> DirectivePolicy {
        self.0.directive_policy()
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
    async fn refused_sites(&self, sites: &[Website]) -> Result<Vec<RefusedSite>> {
        self.0.refused_sites(sites).await
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
        if tripped(&self.1.drop) {
            return Err(injected("drop database"));
        }
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
    async fn lock_user(&self, user: &DbUserName) -> Result<()> {
        self.0.lock_user(user).await
    }
    async fn unlock_user(&self, user: &DbUserName) -> Result<()> {
        self.0.unlock_user(user).await
    }
    async fn set_limits(&self, user: &DbUserName, limits: &DatabaseLimits) -> Result<()> {
        self.0.set_limits(user, limits).await
    }
    async fn health(&self) -> Result<ServerHealth> {
        self.0.health().await
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
    async fn disk_usage(&self, site: &Website) -> Result<u64> {
        self.0.disk_usage(site).await
    }
}

/// Creates the account, then fails: the saga must remove the account it asked for.
#[derive(Debug)]
struct FaultyAccounts(LocalAccounts, Arc<Faults>);

#[async_trait]
impl NodeAccounts for FaultyAccounts {
    fn isolation(&self) -> Isolation {
        self.0.isolation()
    }
    fn uid_range(&self) -> UidRange {
        self.0.uid_range()
    }
    async fn find(&self, name: &SystemUser) -> Result<Option<UnixAccount>> {
        self.0.find(name).await
    }
    async fn create(&self, name: &SystemUser) -> Result<UnixAccount> {
        let account = self.0.create(name).await?;
        if tripped(&self.1.account) {
            return Err(injected("account"));
        }
        Ok(account)
    }
    async fn remove(&self, account: &UnixAccount) -> Result<()> {
        self.0.remove(account).await
    }
}

/// A panel over SQLite with one node: nginx + PHP-FPM 8.2 and 8.4 under a prefix, MariaDB,
/// site homes in `www-data`, and Unix accounts from the test's own uids.
struct World {
    _stop: Stop,
    _dir: TempDir,
    _store_dir: TempDir,
    panel: Panel,
    store: Arc<SqlStore>,
    faults: Arc<Faults>,
    admin: Actor,
    /// The admin of a second tenant.
    other_admin: Actor,
    /// The hosting operator (an admin of the operator's tenant).
    operator: Actor,
    node: hosting_core::model::NodeId,
    nginx: Arc<Nginx>,
    php: Arc<PhpFpm>,
    mariadb: Arc<MySqlBackend>,
    layout: HostLayout,
    port: u16,
    prefix: String,
    /// The store's SQLite URL, for injecting a failure into the database itself.
    store_url: String,
    /// The shared temporary directory the node's accounts clean on removal (the test's own:
    /// the machine's `/tmp` is walked by other tests at the same time, see the report).
    shared_tmp: PathBuf,
    /// Last: the servers are told to stop first, then every account left is removed.
    uids: TestUids,
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
    if !root_or_skip() {
        return None;
    }
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
    let shared_tmp = root.join("shared-tmp");
    std::fs::create_dir(&shared_tmp).expect("mkdir shared tmp");
    std::fs::set_permissions(&shared_tmp, std::fs::Permissions::from_mode(0o1777))
        .expect("chmod shared tmp");
    let uids = TestUids::claim();
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
    let other_tenant = store
        .create_tenant(
            &op,
            NewTenant {
                name: "Globex".parse().expect("name"),
                slug: "globex".parse().expect("slug"),
                quotas: Default::default(),
            },
        )
        .await
        .expect("second tenant");
    let other_admin = store
        .create_user_as_operator(
            &op,
            other_tenant.id,
            NewUser {
                role: Role::Admin,
                email: "admin@globex.example".parse().expect("email"),
            },
        )
        .await
        .expect("second admin");
    let operator_admin = store
        .create_user_as_operator(
            &op,
            operator.id,
            NewUser {
                role: Role::Admin,
                email: "ops@operator.example".parse().expect("email"),
            },
        )
        .await
        .expect("operator admin");
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
                LocalSiteFiles::new(layout.clone(), runner.clone())
                    .with_web_group("www-data")
                    .expect("web group"),
                faults.clone(),
            )),
            accounts: Arc::new(FaultyAccounts(
                LocalAccounts::new(runner, uids.range())
                    .with_shared_temp_dirs([shared_tmp.clone()]),
                faults.clone(),
            )),
        },
    );
    let admin_of = |tenant: TenantId, user| {
        Actor::trusted(
            Caller {
                tenant,
                user,
                role: Role::Admin,
            },
            None,
        )
    };
    Some(World {
        _stop: stop,
        _dir: dir,
        _store_dir: store_dir,
        panel,
        store,
        faults,
        admin: admin_of(tenant.id, admin.id),
        other_admin: admin_of(other_tenant.id, other_admin.id),
        operator: admin_of(operator.id, operator_admin.id),
        node: node.id,
        nginx,
        php,
        mariadb,
        layout,
        port,
        prefix: format!("ps{}{name}", std::process::id()),
        store_url: url,
        shared_tmp,
        uids,
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
    /// Site `n` of `actor`, which leaves its account to the panel.
    fn request(&self, actor: &Actor, n: u32, database: bool) -> WebsiteRequest {
        let mut settings = WebsiteSettings::default();
        if database {
            settings.database = Some(DatabaseSettings {
                engine: DbEngine::MariaDb,
                name: format!("{}_{n}", self.prefix).parse().expect("db name"),
                charset: "utf8mb4".parse().expect("charset"),
                collation: "utf8mb4_unicode_ci".parse().expect("collation"),
            });
        }
        WebsiteRequest {
            owner_id: actor.caller().user,
            domain: format!("site{n}.{}.example.com", self.prefix)
                .parse()
                .expect("domain"),
            aliases: vec![],
            node_id: self.node,
            web_server: WebServerKind::Nginx,
            php_version: Some(PhpVersion::V8_2),
            system_user: None,
            document_root: "public".parse().expect("document root"),
            settings,
        }
    }

    /// Site `n` of the first tenant's admin.
    fn new_site(&self, n: u32, database: bool) -> WebsiteRequest {
        self.request(&self.admin, n, database)
    }

    /// The account the panel derives for `request` (its first choice).
    fn derived_account(request: &WebsiteRequest) -> SystemUser {
        derived_account_name(&request.domain, 0).expect("derived name")
    }

    /// The node's account records: (name, uid, tenant), by id.
    async fn account_records(&self) -> Vec<(String, u32, TenantId)> {
        self.store
            .list_node_accounts(&Operator::assume(), self.node, PageRequest::default())
            .await
            .expect("list node accounts")
            .items
            .into_iter()
            .map(|a| (a.name.as_str().to_owned(), a.uid, a.tenant_id))
            .collect()
    }

    /// Every website record on the node, across tenants.
    async fn node_site_ids(&self) -> Vec<hosting_core::model::WebsiteId> {
        self.store
            .list_node_websites(&Operator::assume(), self.node, PageRequest::default())
            .await
            .expect("list node websites")
            .items
            .into_iter()
            .map(|s| s.id)
            .collect()
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
            .filter(|d| d.contains(&self.prefix))
            .collect();
        let users = self
            .mariadb
            .list_users()
            .await
            .expect("users")
            .into_iter()
            .map(|u| u.as_str().to_owned())
            .filter(|u| u.contains(&self.prefix))
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

/// `getent passwd NAME`'s uid and gid, or `None` when the machine has no such account.
fn passwd(name: &str) -> Option<(u32, u32)> {
    let out = std::process::Command::new("getent")
        .args(["passwd", name])
        .output()
        .expect("run getent");
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields: Vec<&str> = line.trim().split(':').collect();
    Some((
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
    ))
}

/// Whether a process runs with `uid` as its real or effective uid.
fn runs_as(uid: u32) -> bool {
    ["-U", "-u"].iter().any(|selector| {
        std::process::Command::new("pgrep")
            .args([*selector, &uid.to_string()])
            .output()
            .expect("run pgrep")
            .status
            .success()
    })
}

/// Everything under `dir` (itself included) owned by `uid`, never following a symlink.
fn owned_by(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() == uid {
            found.push(path.clone());
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            todo.extend(entries.flatten().map(|e| e.path()));
        }
    }
    found
}

/// A page that prints the PHP version and the name and uid PHP runs as.
const WHOAMI: &str = "<?php $me = posix_getpwuid(posix_geteuid());\n\
                      echo PHP_VERSION, ' ', $me['name'], ' ', $me['uid'];\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_with_a_database_serves_php_switches_version_and_is_deleted_without_a_trace() {
    let Some(w) = world("life").await else {
        return;
    };
    let request = w.new_site(1, true);
    let account = World::derived_account(&request);
    let created = w
        .panel
        .create_website(&w.admin, request)
        .await
        .expect("create");
    assert_eq!(created.website.status, WebsiteStatus::Active);
    let site = created.website.clone();
    assert_eq!(
        site.system_user, account,
        "an account of its own, named after the domain"
    );
    let (uid, gid) = passwd(account.as_str()).expect("the account exists");
    assert!(
        w.uids.range().contains(uid) && w.uids.range().contains(gid),
        "uid {uid} and gid {gid} in the node's range {}",
        w.uids.range()
    );
    assert_eq!(
        w.account_records().await,
        vec![(account.to_string(), uid, w.admin.caller().tenant)],
        "recorded for the site's tenant"
    );
    let home = std::fs::metadata(w.layout.site(&site).home).expect("home");
    let www_data = std::process::Command::new("getent")
        .args(["group", "www-data"])
        .output()
        .expect("getent group");
    let www_data: u32 = String::from_utf8_lossy(&www_data.stdout)
        .split(':')
        .nth(2)
        .expect("gid field")
        .parse()
        .expect("gid");
    assert_eq!(
        (home.uid(), home.gid(), home.mode() & 0o7777),
        (uid, www_data, 0o750),
        "the home is the account's, in the web server's group, closed to others"
    );

    let db = created.database.clone().expect("credentials");
    w.write_page(
        &site,
        "index.php",
        &format!(
            "<?php $db = new PDO('mysql:host={};port={};dbname={}', '{}', '{}');\n\
             $me = posix_getpwuid(posix_geteuid());\n\
             echo PHP_VERSION, ' ', $me['name'], ' ', $me['uid'], ' ',\n\
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
        body.ends_with(&format!(" {account} {uid} {}", db.database)),
        "PHP runs as the site's own account: {body}"
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
    assert!(body.contains(&format!(" {account} {uid} ")), "{body}");
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
    assert!(runs_as(uid), "a PHP worker runs as the account");
    // What the site's PHP could leave in a shared temporary directory.
    let left = w.shared_tmp.join("upload.tmp");
    std::fs::write(&left, "x").expect("write");
    std::os::unix::fs::chown(&left, Some(uid), Some(gid)).expect("chown");

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
    assert_eq!(passwd(account.as_str()), None, "the account is gone");
    assert_eq!(w.uids.accounts(), vec![], "no account left in the range");
    assert_eq!(w.account_records().await, vec![], "no account record left");
    assert!(!runs_as(uid), "no process of the account is left");
    assert_eq!(
        owned_by(&w.layout.sites_root, uid),
        Vec::<PathBuf>::new(),
        "nothing of the account's uid is left where the site's home was"
    );
    assert!(
        !left.exists(),
        "its file in the shared temporary directory is gone"
    );
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
    let records = w.account_records().await;
    assert_eq!(
        records.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec![neighbour.system_user.as_str()]
    );
    let accounts = w.uids.accounts();
    assert_eq!(
        accounts.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        vec![neighbour.system_user.as_str()]
    );

    let record = AtomicBool::new(false);
    let steps: [(&str, &AtomicBool); 6] = [
        ("account", &w.faults.account),
        ("database", &w.faults.database),
        ("files", &w.faults.files),
        ("deploy", &w.faults.php),
        ("deploy", &w.faults.web),
        ("record", &record),
    ];
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
        let account = World::derived_account(&new);
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
        assert_eq!(
            passwd(account.as_str()),
            None,
            "no account {account} after a failed {step}"
        );
        assert_eq!(
            w.uids.accounts(),
            accounts,
            "accounts after a failed {step}"
        );
        assert_eq!(
            w.account_records().await,
            records,
            "account records after a failed {step}"
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
    assert_eq!(failed, 6, "every failed create is audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_account_of_the_tenant_is_shared_and_goes_with_its_last_site() {
    let Some(w) = world("share").await else {
        return;
    };
    let first = w
        .panel
        .create_website(&w.admin, w.new_site(1, false))
        .await
        .expect("first site")
        .website;
    let account = first.system_user.clone();
    let (uid, _) = passwd(account.as_str()).expect("the first site's account");
    let mut request = w.new_site(2, false);
    request.system_user = Some(account.clone());
    let unused = World::derived_account(&request);
    let second = w
        .panel
        .create_website(&w.admin, request)
        .await
        .expect("a second site naming the tenant's account")
        .website;
    assert_eq!(second.system_user, account);
    assert_eq!(
        passwd(unused.as_str()),
        None,
        "no account of its own was made"
    );
    assert_eq!(
        w.account_records().await,
        vec![(account.to_string(), uid, w.admin.caller().tenant)],
        "still one account, the tenant's"
    );
    for site in [&first, &second] {
        w.write_page(site, "index.php", WHOAMI);
        let (status, body) = w.get(site, "/").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.ends_with(&format!(" {account} {uid}")),
            "site {} runs as {account}: {body}",
            site.id
        );
    }

    w.panel
        .delete_website(&w.admin, first.id)
        .await
        .expect("delete the first site");
    assert_eq!(
        passwd(account.as_str()),
        Some((uid, passwd(account.as_str()).expect("kept").1)),
        "the account stays while the second site uses it"
    );
    assert_eq!(
        w.account_records().await,
        vec![(account.to_string(), uid, w.admin.caller().tenant)]
    );
    let (status, body) = w.get(&second, "/").await;
    assert_eq!(status, 200, "the second site still serves: {body}");
    assert!(body.ends_with(&format!(" {account} {uid}")), "{body}");

    w.panel
        .delete_website(&w.admin, second.id)
        .await
        .expect("delete the second site");
    assert_eq!(passwd(account.as_str()), None, "gone with its last site");
    assert_eq!(w.account_records().await, vec![]);
    assert_eq!(w.uids.accounts(), vec![]);
    assert!(!runs_as(uid), "no process of the account is left");
}

/// A customer may drop its own database (MariaDB's ALL includes DROP): the site stays
/// deletable, and its login goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_whose_customer_dropped_its_database_is_still_deleted() {
    let Some(w) = world("dropped").await else {
        return;
    };
    let created = w
        .panel
        .create_website(&w.admin, w.new_site(1, true))
        .await
        .expect("create");
    let db = created.database.expect("credentials");
    let mut customer = customer_session(&db).await.expect("the customer logs in");
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE `{}`", db.database)))
        .execute(&mut customer)
        .await
        .expect("the customer drops its own database");
    customer.close().await.expect("close");
    w.panel
        .delete_website(&w.admin, created.website.id)
        .await
        .expect("the site is deleted all the same");
    assert!(w.sites().await.is_empty(), "no record is left");
    let logins = w.mariadb.list_users().await.expect("logins");
    assert!(!logins.contains(&db.user), "the login {} is gone", db.user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_cannot_name_an_account_and_nothing_is_created() {
    let Some(w) = world("cross").await else {
        return;
    };
    let theirs = w
        .panel
        .create_website(&w.admin, w.new_site(1, false))
        .await
        .expect("the first tenant's site")
        .website;
    let records = w.account_records().await;
    assert_eq!(records.len(), 1);
    w.write_page(&theirs, "index.php", WHOAMI);
    let (status, body) = w.get(&theirs, "/").await;
    assert_eq!(status, 200, "{body}");

    // An account of the node the panel did not create (made here, in the node's range, so
    // only the panel's record of it is missing).
    let stranger: SystemUser = format!("{}x", w.prefix).parse().expect("name");
    LocalAccounts::new(Arc::new(SystemRunner), w.uids.range())
        .create(&stranger)
        .await
        .expect("an account outside the panel");
    let accounts = w.uids.accounts();
    let names: [SystemUser; 2] = [theirs.system_user.clone(), stranger];
    for (n, named) in (2u32..).zip(names) {
        let mut request = w.request(&w.other_admin, n, true);
        request.system_user = Some(named.clone());
        let own = World::derived_account(&request);
        let err = w
            .panel
            .create_website(&w.other_admin, request)
            .await
            .expect_err("another tenant's account is refused");
        match &err {
            Error::Invalid { field, .. } => {
                assert_eq!(field.as_ref(), "system_user", "{err}");
            }
            other => panic!("naming {named}: expected Invalid on system_user, got {other:?}"),
        }
        assert_eq!(
            w.node_site_ids().await,
            vec![theirs.id],
            "no site record after naming {named}"
        );
        assert_eq!(w.account_records().await, records, "after naming {named}");
        assert_eq!(w.uids.accounts(), accounts, "after naming {named}");
        assert_eq!(
            passwd(own.as_str()),
            None,
            "no account made for the request"
        );
        assert_eq!(
            w.customer_db_objects().await,
            (vec![], vec![]),
            "no database after naming {named}"
        );
    }
    let audit = w
        .panel
        .list_audit(&w.other_admin, Default::default())
        .await
        .expect("audit")
        .items;
    let creates: Vec<AuditOutcome> = audit
        .iter()
        .filter(|e| e.action == "website.create")
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        creates,
        vec![AuditOutcome::Failed; 2],
        "both refusals are audited: {audit:?}"
    );
    let (status, body) = w.get(&theirs, "/").await;
    assert_eq!(status, 200, "the first tenant's site still answers: {body}");
}

/// A customer session with the credentials the panel handed out.
async fn customer_session(
    db: &hosting_core::panel::DatabaseCredentials,
) -> std::result::Result<sqlx::MySqlConnection, sqlx::Error> {
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .host(&db.host)
        .port(db.port)
        .username(db.user.as_str())
        .password(db.password.expose())
        .database(db.database.as_str());
    sqlx::MySqlConnection::connect_with(&options).await
}

/// Whether the session still answers a query.
async fn answers(session: &mut sqlx::MySqlConnection) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT CAST(1 AS SIGNED)")
        .fetch_one(session)
        .await
        .is_ok()
}

/// The MariaDB error number of a failed login or statement.
fn mysql_error_number(err: &sqlx::Error) -> Option<u16> {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(sqlx::mysql::MySqlDatabaseError::number),
        _ => None,
    }
}

fn assert_quota(result: Result<impl std::fmt::Debug>, quota: &str) {
    match result {
        Err(Error::QuotaExceeded { quota: q, .. }) => assert_eq!(q, quota),
        other => panic!("expected {quota} to be exceeded, got {other:?}"),
    }
}

/// Every tenant limit of the model holds in the Panel: websites, databases, storage and the
/// per-login limits; names live under the tenant's prefix, so another tenant asking for the
/// same name gets its own database and learns nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_plan_is_enforced() {
    let Some(w) = world("plan").await else {
        return;
    };
    let acme = w.admin.caller().tenant;
    let limits = DatabaseLimits::new(2, 30, 64, 0, 0).expect("limits");
    let quotas = hosting_core::model::Quotas {
        max_websites: Some(2),
        max_databases: Some(1),
        max_storage_mb: None,
        database_limits: limits,
    };
    let set_quotas = |quotas| hosting_core::model::TenantChanges {
        quotas: Some(quotas),
        ..Default::default()
    };
    w.panel
        .update_tenant(&w.operator, acme, set_quotas(quotas))
        .await
        .expect("the operator sets the plan");

    let created = w
        .panel
        .create_website(&w.admin, w.new_site(1, true))
        .await
        .expect("the first site with a database");
    let db = created.database.expect("credentials");
    let asked = format!("{}_1", w.prefix);
    let name = db.database.as_str();
    assert!(
        name.starts_with(&format!("acme{acme}_")) && name.ends_with(&asked),
        "the database is named under the tenant's prefix: {name}"
    );
    assert_eq!(
        db.user.as_str(),
        name,
        "the login is named like its database"
    );

    // max_connections: two sessions, and the third is refused by the server itself.
    let mut first = customer_session(&db).await.expect("first session");
    let mut second = customer_session(&db).await.expect("second session");
    let third = customer_session(&db).await;
    assert_eq!(
        third.as_ref().err().and_then(mysql_error_number),
        Some(1226),
        "MAX_USER_CONNECTIONS refuses the third session: {third:?}"
    );
    // Another tenant still gets in while this one holds all its slots.
    let globex = w
        .panel
        .create_website(&w.other_admin, {
            let mut request = w.request(&w.other_admin, 9, true);
            if let Some(database) = &mut request.settings.database {
                database.name = asked.parse().expect("name");
            }
            request
        })
        .await
        .expect("another tenant asks for the same name");
    let theirs = globex.database.expect("credentials");
    assert_ne!(theirs.database, db.database, "each tenant has its own name");
    let mut other = customer_session(&theirs)
        .await
        .expect("the other tenant logs in while the first holds every slot it may");
    assert!(answers(&mut other).await && answers(&mut first).await && answers(&mut second).await);
    for session in [first, second, other] {
        session.close().await.expect("close");
    }

    // max_databases: a second database is refused and nothing is created.
    assert_quota(
        w.panel.create_website(&w.admin, w.new_site(2, true)).await,
        "quotas.max_databases",
    );
    assert_eq!(w.sites().await.len(), 1, "no record is left");
    let (dbs, _) = w.customer_db_objects().await;
    assert!(
        !dbs.iter().any(|d| d.ends_with(&format!("{}_2", w.prefix))),
        "no database is left: {dbs:?}"
    );
    // max_websites: a second site without a database fits, a third does not.
    let second_site = w
        .panel
        .create_website(&w.admin, w.new_site(2, false))
        .await
        .expect("a second site without a database");
    assert_quota(
        w.panel.create_website(&w.admin, w.new_site(3, false)).await,
        "quotas.max_websites",
    );

    // max_storage_mb: the files of the tenant's sites count.
    w.panel
        .update_tenant(
            &w.operator,
            acme,
            set_quotas(hosting_core::model::Quotas {
                max_websites: None,
                max_databases: None,
                max_storage_mb: Some(1),
                database_limits: limits,
            }),
        )
        .await
        .expect("a storage quota");
    let home = w.layout.site(&second_site.website).home;
    std::fs::write(home.join("big.bin"), vec![7u8; 2 * 1024 * 1024]).expect("write 2 MiB");
    assert_quota(
        w.panel.create_website(&w.admin, w.new_site(3, false)).await,
        "quotas.max_storage_mb",
    );
    std::fs::remove_file(home.join("big.bin")).expect("remove");

    // New limits reach the existing logins: four sessions now.
    w.panel
        .update_tenant(
            &w.operator,
            acme,
            set_quotas(hosting_core::model::Quotas {
                database_limits: DatabaseLimits::new(4, 30, 64, 0, 0).expect("limits"),
                ..Default::default()
            }),
        )
        .await
        .expect("wider limits");
    let mut sessions = Vec::new();
    for n in 0..4 {
        sessions.push(
            customer_session(&db)
                .await
                .unwrap_or_else(|e| panic!("session {n} under the wider limit: {e}")),
        );
    }
    for session in sessions {
        session.close().await.expect("close");
    }
}

/// Suspending a site or its tenant locks the site's database login and ends its sessions;
/// resuming lets it in again; a new password ends the sessions of the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_locks_the_database_login() {
    let Some(w) = world("lock").await else {
        return;
    };
    let created = w
        .panel
        .create_website(&w.admin, w.new_site(1, true))
        .await
        .expect("create");
    let id = created.website.id;
    let db = created.database.expect("credentials");
    let status = |status| WebsiteChanges {
        status: Some(status),
        ..Default::default()
    };

    let mut live = customer_session(&db).await.expect("log in");
    w.panel
        .update_website(&w.admin, id, status(WebsiteStatus::Suspended))
        .await
        .expect("suspend the site");
    assert!(!answers(&mut live).await, "the live session ended");
    assert!(
        customer_session(&db).await.is_err(),
        "a suspended site's login is refused"
    );
    w.panel
        .update_website(&w.admin, id, status(WebsiteStatus::Active))
        .await
        .expect("resume the site");
    let mut live = customer_session(&db).await.expect("log in after resuming");

    let tenant = |status| hosting_core::model::TenantChanges {
        status: Some(status),
        ..Default::default()
    };
    let acme = w.admin.caller().tenant;
    w.panel
        .update_tenant(
            &w.operator,
            acme,
            tenant(hosting_core::model::TenantStatus::Suspended),
        )
        .await
        .expect("suspend the tenant");
    assert!(!answers(&mut live).await, "the tenant's live session ended");
    assert!(
        customer_session(&db).await.is_err(),
        "a suspended tenant's login is refused"
    );
    w.panel
        .update_tenant(
            &w.operator,
            acme,
            tenant(hosting_core::model::TenantStatus::Active),
        )
        .await
        .expect("resume the tenant");
    let mut live = customer_session(&db)
        .await
        .expect("log in after the tenant resumes");

    let rotated = w
        .panel
        .rotate_database_password(&w.admin, id)
        .await
        .expect("rotate");
    assert!(
        !answers(&mut live).await,
        "the session of the old password ended"
    );
    assert!(
        customer_session(&db).await.is_err(),
        "the old password is refused"
    );
    let session = customer_session(&rotated)
        .await
        .expect("the new password works");
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_that_fails_is_finished_by_the_next_recovery() {
    let Some(w) = world("recover").await else {
        return;
    };
    w.faults.web.store(true, Ordering::SeqCst);
    w.faults.drop.store(true, Ordering::SeqCst);
    let new = w.new_site(1, true);
    let account = World::derived_account(&new);
    let err = w
        .panel
        .create_website(&w.admin, new)
        .await
        .expect_err("the injected failure");
    assert!(
        matches!(err, Error::StepFailed { step: "deploy", .. }),
        "{err:?}"
    );
    assert!(
        !w.faults.drop.load(Ordering::SeqCst),
        "the undo's drop failed"
    );
    let (databases, _) = w.customer_db_objects().await;
    assert_eq!(databases.len(), 1, "the database outlived the failed undo");
    let op = Operator::assume();
    let journal = w
        .store
        .list_operations(&op, PageRequest::default())
        .await
        .expect("journal")
        .items;
    assert_eq!(journal.len(), 1, "the unfinished undo is kept: {journal:?}");
    let report = w.panel.recover(&op).await.expect("recover");
    assert_eq!(report.undone, 1, "{report:?}");
    assert!(report.failed.is_empty() && report.left == 0, "{report:?}");
    assert_eq!(w.customer_db_objects().await, (vec![], vec![]));
    assert!(w.sites().await.is_empty());
    assert_eq!(passwd(account.as_str()), None, "no account {account}");
    assert!(
        std::fs::read_dir(&w.layout.sites_root)
            .expect("sites root")
            .flatten()
            .next()
            .is_none(),
        "no home"
    );
    assert!(
        w.store
            .list_operations(&op, PageRequest::default())
            .await
            .expect("journal")
            .items
            .is_empty(),
        "the journal is empty"
    );
    let again = w.panel.recover(&op).await.expect("recover again");
    assert_eq!(again, hosting_core::panel::Recovery::default());
}
