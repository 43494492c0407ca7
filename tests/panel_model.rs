//! Model-based test of tenant isolation and roles through the `Panel` service (the API embedders
//! call and the REST routes wrap): random sequences of calls by the users of two tenants, in
//! all three roles, are checked against a small model of who may see and change what.
//!
//! The model is written from the rules as the product states them, not from `hosting_core::rbac`:
//! an admin manages everything in its tenant; a reseller manages the clients it created and
//! their sites, and its own sites; a client manages its own sites; nobody sees anything of
//! another tenant, and what a user may not see is "not found", never "forbidden".
//!
//! Websites are created, changed and deleted through the `Panel` on a real node, one of each
//! case's own: Unix accounts (`LocalAccounts`, in a uid range of the case's own from
//! [`TestUids`], which removes whatever is left in it, so the test needs root), site homes
//! (`LocalSiteFiles`, `0750` in `www-data`), and nginx and PHP-FPM 8.2 started by the SDK
//! under a temporary prefix (the binaries `scripts/test.sh` names in `HOSTING_TEST_NGINX` and
//! `HOSTING_TEST_PHP_FPM_82`; without them the test is skipped, under `CI=true` it fails).
//!
//! The node effects follow the issue "tenants confined on the node": each site created without
//! `system_user` gets an account of its own, recorded for its tenant; a site may name an
//! account of its tenant only when the caller manages every site already running as it
//! (otherwise `Invalid` on `system_user`, nothing created); an account goes with the last site
//! using it. After every call the store's account records and the model agree, every account's
//! tenant is the tenant of each site running as it, and the machine agrees with both: every
//! recorded account exists (`getent passwd`) with its recorded uid, every account in the case's
//! uid range is recorded, the account of a deleted site is gone unless another site still runs
//! as it, each live site's home exists, owned by its account, group `www-data`, mode `0750`,
//! a deleted site's home is gone, and nginx's and PHP-FPM's live configurations are exactly
//! the model's sites' (a vhost and a pool running as its account each, nothing else);
//! `get_node_account` answers each user for its own tenant's accounts only. At the end of each
//! case every site answers over HTTP from PHP running as its account.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hosting_core::accounts::{LocalAccounts, derived_account_name};
use hosting_core::auth::{Keyring, PasswordPolicy, SigningKey};
use hosting_core::model::{
    NewNode, NewTenant, NewUser, NodeId, NodeRole, Role, TenantId, UserChanges, UserId, UserStatus,
    Website, WebsiteChanges, WebsiteId, WebsiteRequest, WebsiteSettings,
};
use hosting_core::panel::{Actor, AuthSettings, NodeBackends, Panel, PanelParts};
use hosting_core::php::PhpRuntime;
use hosting_core::site_files::LocalSiteFiles;
use hosting_core::system::SystemRunner;
use hosting_core::types::{PhpVersion, SystemUser, WebServerKind};
use hosting_core::{
    Caller, CommandRunner, Error, HostLayout, Operator, PageLimit, PageRequest, PanelStore,
    SystemClock, WebServer,
};
use hosting_db::{SqlStore, StoreOptions};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, PhpFpm, PrefixInstall};
use hosting_tests::{
    TempDir, TestUids, env_or_skip, free_port, fresh_sqlite, http_get, root_or_skip,
};
use hosting_web::{Management, Nginx, NginxConfig, Ports};
use proptest::prelude::*;

/// `getent passwd` (or `group`): every entry's name and id (uid, gid).
fn getent(database: &str) -> BTreeMap<String, u32> {
    let out = std::process::Command::new("getent")
        .arg(database)
        .output()
        .unwrap_or_else(|e| panic!("cannot run getent {database}: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(((*fields.first()?).to_owned(), fields.get(2)?.parse().ok()?))
        })
        .collect()
}

/// The nginx and PHP-FPM 8.2 binaries, when this process may create accounts (root) and has
/// them; otherwise the test is reported as skipped, once.
fn binaries() -> Option<&'static (String, String)> {
    static BINARIES: OnceLock<Option<(String, String)>> = OnceLock::new();
    BINARIES
        .get_or_init(|| {
            if !root_or_skip() {
                return None;
            }
            Some((
                env_or_skip("HOSTING_TEST_NGINX")?,
                env_or_skip("HOSTING_TEST_PHP_FPM_82")?,
            ))
        })
        .as_ref()
}

/// Stops the masters started under a case's prefix, also when the case fails half-way.
struct Stop(Vec<PathBuf>);

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

/// A user as the model knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MUser {
    id: UserId,
    tenant: TenantId,
    role: Role,
    created_by: Option<UserId>,
    status: UserStatus,
}

/// A website as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MSite {
    id: WebsiteId,
    tenant: TenantId,
    owner: UserId,
    gzip: bool,
    /// The Unix account it runs as.
    account: SystemUser,
}

#[derive(Debug, Default)]
struct Model {
    users: BTreeMap<UserId, MUser>,
    sites: BTreeMap<WebsiteId, MSite>,
}

impl Model {
    /// The product's rule for managing a user.
    fn manages_user(&self, actor: &MUser, target: &MUser) -> bool {
        actor.tenant == target.tenant
            && match actor.role {
                Role::Admin => true,
                Role::Reseller => {
                    target.role == Role::Client && target.created_by == Some(actor.id)
                }
                Role::Client => false,
            }
    }

    fn sees_user(&self, actor: &MUser, target: &MUser) -> bool {
        (actor.tenant == target.tenant && actor.id == target.id) || self.manages_user(actor, target)
    }

    /// The product's rule for managing a site: its owner's current role decides whether a
    /// reseller still reaches it.
    fn manages_site(&self, actor: &MUser, site: &MSite) -> bool {
        let owner = &self.users[&site.owner];
        actor.tenant == site.tenant
            && match actor.role {
                Role::Admin => true,
                Role::Reseller => {
                    site.owner == actor.id
                        || (owner.role == Role::Client && owner.created_by == Some(actor.id))
                }
                Role::Client => site.owner == actor.id,
            }
    }

    /// The accounts the node must have: those the sites run as, each with its tenant (an
    /// account goes with the last site that runs as it).
    fn accounts(&self) -> BTreeMap<SystemUser, TenantId> {
        self.sites
            .values()
            .map(|s| (s.account.clone(), s.tenant))
            .collect()
    }

    /// The product's rule for naming an existing account: one of the actor's tenant, with
    /// every site already running as it managed by the actor.
    fn may_name(&self, actor: &MUser, account: &SystemUser) -> bool {
        let users: Vec<&MSite> = self
            .sites
            .values()
            .filter(|s| s.account == *account)
            .collect();
        !users.is_empty()
            && users
                .iter()
                .all(|s| s.tenant == actor.tenant && self.manages_site(actor, s))
    }

    fn may_create(&self, actor: &MUser, role: Role) -> bool {
        match actor.role {
            Role::Admin => true,
            Role::Reseller => role == Role::Client,
            Role::Client => false,
        }
    }
}

/// One call; indices pick among the users and sites that exist at that moment.
#[derive(Debug, Clone)]
enum Op {
    GetSite(usize, usize),
    ToggleGzip(usize, usize),
    DeleteSite(usize, usize),
    GetUser(usize, usize),
    /// Every user lists sites and users.
    ListAll,
    SetStatus(usize, usize, bool),
    SetRole(usize, usize, Role),
    CreateUser(usize, Role),
    GetTenant(usize, bool),
    ListAudit(usize),
    /// A user creates a site of its own with an account of its own.
    CreateSite(usize),
    /// A user creates a site of its own naming the account another site runs as.
    CreateNamed(usize, usize),
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..64;
    prop_oneof![
        (i(), i()).prop_map(|(a, s)| Op::GetSite(a, s)),
        (i(), i()).prop_map(|(a, s)| Op::ToggleGzip(a, s)),
        (i(), i()).prop_map(|(a, s)| Op::DeleteSite(a, s)),
        (i(), i()).prop_map(|(a, u)| Op::GetUser(a, u)),
        Just(Op::ListAll),
        (i(), i(), any::<bool>()).prop_map(|(a, u, s)| Op::SetStatus(a, u, s)),
        (i(), i(), role()).prop_map(|(a, u, r)| Op::SetRole(a, u, r)),
        (i(), role()).prop_map(|(a, r)| Op::CreateUser(a, r)),
        (i(), any::<bool>()).prop_map(|(a, own)| Op::GetTenant(a, own)),
        i().prop_map(Op::ListAudit),
        i().prop_map(Op::CreateSite),
        (i(), i()).prop_map(|(a, s)| Op::CreateNamed(a, s)),
    ]
}

/// One case's panel, node and model.
struct World {
    /// First: the servers are told to stop before their directory goes.
    _stop: Stop,
    /// The store's SQLite file, the node's layout, servers and shared temporary directory.
    _dir: TempDir,
    store: Arc<SqlStore>,
    panel: Panel,
    /// Where the node's site homes are (fresh for each case: site ids restart at 1).
    layout: HostLayout,
    nginx: Arc<Nginx>,
    php: Arc<PhpFpm>,
    /// nginx's HTTP port.
    port: u16,
    /// The gid of `www-data`, the group of every home.
    www_data: u32,
    /// In each domain, so account names (derived from domains) are the case's own on the
    /// machine.
    tag: String,
    model: Model,
    /// The sites deleted so far and the accounts they ran as.
    deleted: BTreeMap<WebsiteId, SystemUser>,
    tenants: [TenantId; 2],
    node: NodeId,
    created: u32,
    /// Last: whatever accounts the case left are removed after the rest is gone.
    uids: TestUids,
}

fn actor(user: &MUser) -> Actor {
    Actor::trusted(
        Caller {
            tenant: user.tenant,
            user: user.id,
            role: user.role,
        },
        None,
    )
}

impl World {
    async fn new((nginx_binary, php_binary): &(String, String)) -> World {
        let (dir, url) = fresh_sqlite();
        let root = dir.path();
        // nginx's workers (www-data) reach the homes through it.
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
        let www_data = *getent("group").get("www-data").expect("a www-data group");
        let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
        let port = free_port();
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
                    prefix_installs: vec![PrefixInstall {
                        fpm_binary: php_binary.into(),
                        php_ini: None,
                        scan_dir: None,
                    }],
                },
            )
            .await
            .expect("discover PHP 8.2"),
        );
        let stop = Stop(vec![
            root.join("nginx/run/nginx.pid"),
            layout.php_run_dir.join("php8.2-fpm.pid"),
        ]);
        let store = Arc::new(
            SqlStore::open(&url, &StoreOptions::default())
                .await
                .expect("store"),
        );
        let op = Operator::assume();
        let tenant = |slug: &str| NewTenant {
            name: slug.parse().expect("name"),
            slug: slug.parse().expect("slug"),
            quotas: Default::default(),
        };
        let operator = store
            .create_tenant(&op, tenant("operator"))
            .await
            .expect("operator");
        let t1 = store.create_tenant(&op, tenant("one")).await.expect("t1");
        let t2 = store.create_tenant(&op, tenant("two")).await.expect("t2");
        let node = store
            .create_node(
                &op,
                NewNode {
                    name: "web1".parse().expect("node"),
                    address: "127.0.0.1".parse().expect("address"),
                    roles: BTreeSet::from([NodeRole::Web]),
                },
            )
            .await
            .expect("node");
        let panel = Panel::new(PanelParts {
            store: store.clone(),
            auth: store.clone(),
            jobs: store.clone(),
            clock: Arc::new(SystemClock),
            keys: Keyring::new(SigningKey::generate().expect("key")),
            operator_tenant: operator.id,
            auth_settings: AuthSettings {
                // Cheap hashes: this test is about who may do what, not about argon2.
                password_policy: PasswordPolicy {
                    memory_kib: 256,
                    iterations: 1,
                    parallelism: 1,
                },
                ..AuthSettings::default()
            },
        });
        panel.attach_node(
            node.id,
            NodeBackends {
                web: vec![nginx.clone()],
                php: php.clone(),
                databases: Vec::new(),
                files: Arc::new(
                    LocalSiteFiles::new(layout.clone(), runner.clone())
                        .with_web_group("www-data")
                        .expect("web group"),
                ),
                accounts: Arc::new(
                    LocalAccounts::new(runner, uids.range()).with_shared_temp_dirs([shared_tmp]),
                ),
            },
        );
        let mut world = World {
            _stop: stop,
            _dir: dir,
            store,
            panel,
            layout,
            nginx,
            php,
            port,
            www_data,
            tag: format!("u{}", uids.range().first()),
            model: Model::default(),
            deleted: BTreeMap::new(),
            tenants: [t1.id, t2.id],
            node: node.id,
            created: 0,
            uids,
        };
        for tenant in world.tenants {
            let new = world.new_user(Role::Admin);
            let admin = world
                .store
                .create_user_as_operator(&op, tenant, new)
                .await
                .expect("admin");
            let admin = world.remember_user(&admin);
            let reseller = world.seed_user(&admin, Role::Reseller).await;
            world.seed_user(&admin, Role::Client).await;
            world.seed_user(&reseller, Role::Client).await;
            // A client the reseller created, since promoted by the admin: out of the
            // reseller's hands, though it still names the reseller as its creator.
            let promoted = world.seed_user(&reseller, Role::Client).await;
            world
                .store
                .update_user(
                    actor(&admin).caller(),
                    promoted.id,
                    UserChanges {
                        role: Some(Role::Reseller),
                        ..UserChanges::default()
                    },
                )
                .await
                .expect("promote");
            if let Some(user) = world.model.users.get_mut(&promoted.id) {
                user.role = Role::Reseller;
            }
        }
        let users: Vec<MUser> = world.model.users.values().copied().collect();
        for user in users {
            world.seed_site(&user).await;
        }
        world
    }

    fn new_user(&mut self, role: Role) -> NewUser {
        self.created += 1;
        NewUser {
            role,
            email: format!("u{}@model.example", self.created)
                .parse()
                .expect("email"),
        }
    }

    fn remember_user(&mut self, user: &hosting_core::model::User) -> MUser {
        let m = MUser {
            id: user.id,
            tenant: user.tenant_id,
            role: user.role,
            created_by: user.created_by,
            status: user.status,
        };
        self.model.users.insert(m.id, m);
        m
    }

    /// A user created through the store (no password: the model never logs in).
    async fn seed_user(&mut self, creator: &MUser, role: Role) -> MUser {
        let new = self.new_user(role);
        let user = self
            .store
            .create_user(actor(creator).caller(), new)
            .await
            .expect("seed user");
        self.remember_user(&user)
    }

    /// A site of `owner`'s own, running as `account` (`None`: an account of its own).
    fn request(&mut self, owner: &MUser, account: Option<SystemUser>) -> WebsiteRequest {
        self.created += 1;
        WebsiteRequest {
            owner_id: owner.id,
            domain: format!("s{}.{}.example", self.created, self.tag)
                .parse()
                .expect("domain"),
            aliases: vec![],
            node_id: self.node,
            web_server: WebServerKind::Nginx,
            php_version: Some(PhpVersion::V8_2),
            system_user: account,
            document_root: "public".parse().expect("root"),
            settings: WebsiteSettings::default(),
        }
    }

    fn remember_site(&mut self, site: &Website) {
        self.model.sites.insert(
            site.id,
            MSite {
                id: site.id,
                tenant: site.tenant_id,
                owner: site.owner_id,
                gzip: site.settings.gzip,
                account: site.system_user.clone(),
            },
        );
    }

    /// A site created through the `Panel` by its owner, with an account of its own.
    async fn seed_site(&mut self, owner: &MUser) {
        let request = self.request(owner, None);
        let site = self
            .panel
            .create_website(&actor(owner), request)
            .await
            .expect("seed site")
            .website;
        self.remember_site(&site);
    }

    fn user(&self, i: usize) -> MUser {
        let users: Vec<&MUser> = self.model.users.values().collect();
        *users[i % users.len()]
    }

    /// A site of the model, when there is one left.
    fn site(&self, i: usize) -> Option<MSite> {
        let sites: Vec<&MSite> = self.model.sites.values().collect();
        (!sites.is_empty()).then(|| sites[i % sites.len()].clone())
    }

    /// The node's effects equal the model's, on the machine itself: the store's account records
    /// are each site's account for its tenant; each exists (`getent passwd`) with its recorded
    /// uid, and the case's uid range holds exactly the recorded accounts; a deleted site's
    /// account is gone unless a live site still runs as it; each live site's home is its
    /// account's, in `www-data`, mode `0750`, and a deleted site's home is gone; nginx's and
    /// PHP-FPM's live configurations are exactly the model's sites', each pool running as its
    /// site's account.
    async fn check_node(&self) {
        let op = Operator::assume();
        let records = self
            .store
            .list_node_accounts(&op, self.node, all())
            .await
            .expect("list node accounts")
            .items;
        let recorded: BTreeMap<SystemUser, TenantId> = records
            .iter()
            .map(|r| (r.name.clone(), r.tenant_id))
            .collect();
        assert_eq!(recorded.len(), records.len(), "one record per account");
        let accounts = self.model.accounts();
        assert_eq!(
            recorded, accounts,
            "account records: each site's account, for its tenant"
        );
        let sites = self
            .store
            .list_node_websites(&op, self.node, all())
            .await
            .expect("list node websites")
            .items;
        for site in &sites {
            assert_eq!(
                recorded.get(&site.system_user),
                Some(&site.tenant_id),
                "site {} runs as an account of its own tenant",
                site.id
            );
        }
        let ids: BTreeSet<WebsiteId> = sites.iter().map(|s| s.id).collect();
        let model_ids: BTreeSet<WebsiteId> = self.model.sites.keys().copied().collect();
        assert_eq!(ids, model_ids, "the node's sites");

        let passwd = getent("passwd");
        let uids: BTreeMap<&str, u32> = records.iter().map(|r| (r.name.as_str(), r.uid)).collect();
        for (name, uid) in &uids {
            assert_eq!(
                passwd.get(*name),
                Some(uid),
                "the recorded account {name} exists with its recorded uid"
            );
        }
        let in_range: BTreeMap<String, u32> = self.uids.accounts().into_iter().collect();
        let in_range: BTreeMap<&str, u32> =
            in_range.iter().map(|(n, u)| (n.as_str(), *u)).collect();
        assert_eq!(
            in_range,
            uids,
            "the accounts in the node's uid range {} are the recorded ones",
            self.uids.range()
        );
        for (id, account) in &self.deleted {
            if !accounts.contains_key(account) {
                assert_eq!(
                    passwd.get(account.as_str()),
                    None,
                    "the account of deleted site {id}, which no site runs as any more, is gone"
                );
            }
            let home = self.home(*id);
            assert!(
                std::fs::symlink_metadata(&home).is_err(),
                "the home of deleted site {id} is gone: {}",
                home.display()
            );
        }
        for site in self.model.sites.values() {
            let home = self.home(site.id);
            let meta = std::fs::symlink_metadata(&home).unwrap_or_else(|e| {
                panic!("the home of site {}: {}: {e}", site.id, home.display())
            });
            assert!(meta.is_dir(), "{} is a directory", home.display());
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (uids[site.account.as_str()], self.www_data, 0o750),
                "the home of site {} is its account's, in www-data, closed to others",
                site.id
            );
        }

        // The sites as stored, each running as its model account: nginx's and PHP-FPM's live
        // configurations are exactly theirs (a vhost, and a pool whose `user` is the site's
        // account), with nothing missing, changed or left over.
        for site in &sites {
            assert_eq!(
                site.system_user, self.model.sites[&site.id].account,
                "site {} runs as its account",
                site.id
            );
        }
        let drift = WebServer::drift(self.nginx.as_ref(), &sites)
            .await
            .expect("nginx drift");
        assert!(
            drift.is_empty(),
            "nginx serves the model's sites: {drift:?}"
        );
        let drift = PhpRuntime::drift(self.php.as_ref(), &sites)
            .await
            .expect("PHP-FPM drift");
        assert!(
            drift.is_empty(),
            "PHP-FPM runs the model's pools: {drift:?}"
        );
    }

    /// Every site answers over HTTP from its own document root (the page names the site: nginx
    /// answers a name it does not serve with its first vhost), with PHP running as its account.
    async fn check_serving(&self) {
        let op = Operator::assume();
        let sites = self
            .store
            .list_node_websites(&op, self.node, all())
            .await
            .expect("list node websites")
            .items;
        let passwd = getent("passwd");
        for site in &sites {
            let page = self.layout.site(site).document_root.join("index.php");
            std::fs::write(
                &page,
                format!("<?php echo 'site {} ', posix_geteuid();\n", site.id),
            )
            .expect("write page");
            std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o644))
                .expect("chmod page");
            let got = http_get(self.port, site.domain.as_str(), "/")
                .await
                .unwrap_or_else(|e| panic!("GET / on {}: {e}", site.domain));
            let uid = passwd[site.system_user.as_str()];
            assert_eq!(
                got,
                (200, format!("site {} {uid}", site.id)),
                "site {} is served, its PHP running as {}",
                site.id,
                site.system_user
            );
        }
    }

    /// Where the home of site `id` is on the node.
    fn home(&self, id: WebsiteId) -> PathBuf {
        self.layout.sites_root.join(HostLayout::site_name(id))
    }

    /// Every record as the store holds it equals the model, every user's lists show exactly
    /// what the model lets it see, and each user finds exactly its own tenant's accounts.
    async fn check_everyone(&self) {
        let accounts = self.model.accounts();
        for user in self.model.users.values() {
            let a = actor(user);
            let sites: BTreeSet<WebsiteId> = self
                .panel
                .list_websites(&a, all())
                .await
                .expect("list sites")
                .items
                .iter()
                .map(|s| s.id)
                .collect();
            let expected: BTreeSet<WebsiteId> = self
                .model
                .sites
                .values()
                .filter(|s| self.model.manages_site(user, s))
                .map(|s| s.id)
                .collect();
            assert_eq!(sites, expected, "sites listed for {user:?}");
            let users: BTreeSet<UserId> = self
                .panel
                .list_users(&a, all())
                .await
                .expect("list users")
                .items
                .iter()
                .map(|u| u.id)
                .collect();
            let expected: BTreeSet<UserId> = self
                .model
                .users
                .values()
                .filter(|t| self.model.sees_user(user, t))
                .map(|t| t.id)
                .collect();
            assert_eq!(users, expected, "users listed for {user:?}");
            for (name, tenant) in &accounts {
                let got = self
                    .store
                    .get_node_account(a.caller(), self.node, name)
                    .await;
                if *tenant == user.tenant {
                    let got = got.expect("an account of its own tenant");
                    assert_eq!((&got.name, got.tenant_id), (name, *tenant));
                } else {
                    assert_not_found(got, user, "account");
                }
            }
        }
    }

    async fn run(&mut self, op: Op) {
        match op {
            Op::GetSite(a, s) => {
                let user = self.user(a);
                let Some(site) = self.site(s) else {
                    return;
                };
                let got = self.panel.get_website(&actor(&user), site.id).await;
                if self.model.manages_site(&user, &site) {
                    let got = got.expect("a managed site is visible");
                    assert_eq!((got.tenant_id, got.owner_id), (site.tenant, site.owner));
                    assert_eq!(got.system_user, site.account);
                } else {
                    assert_not_found(got, &user, "site");
                }
            }
            Op::ListAll => self.check_everyone().await,
            Op::DeleteSite(a, s) => {
                let user = self.user(a);
                let Some(site) = self.site(s) else {
                    return;
                };
                let result = self.panel.delete_website(&actor(&user), site.id).await;
                let stored = self
                    .store
                    .get_website(&owner_caller(&self.model, &site), site.id)
                    .await;
                if self.model.manages_site(&user, &site) {
                    if let Err(e) = result {
                        panic!("{user:?} manages {site:?} but deleting it failed: {e:?}");
                    }
                    assert_not_found(stored, &user, "deleted site");
                    self.model.sites.remove(&site.id);
                    self.deleted.insert(site.id, site.account.clone());
                } else {
                    assert_not_found(result, &user, "site");
                    stored.expect("a refused delete leaves the site");
                }
            }
            Op::ToggleGzip(a, s) => {
                let user = self.user(a);
                let Some(site) = self.site(s) else {
                    return;
                };
                let mut settings = self
                    .store
                    .get_website(&owner_caller(&self.model, &site), site.id)
                    .await
                    .expect("owner reads its site")
                    .settings;
                settings.gzip = !site.gzip;
                let result = self
                    .panel
                    .update_website(
                        &actor(&user),
                        site.id,
                        WebsiteChanges {
                            settings: Some(settings),
                            ..WebsiteChanges::default()
                        },
                    )
                    .await;
                if self.model.manages_site(&user, &site) {
                    let updated = result
                        .unwrap_or_else(|e| panic!("{user:?} manages {site:?} but got {e:?}"));
                    assert_eq!(updated.settings.gzip, !site.gzip);
                    assert_eq!(updated.system_user, site.account, "the account stays");
                    if let Some(entry) = self.model.sites.get_mut(&site.id) {
                        entry.gzip = !site.gzip;
                    }
                } else {
                    assert_not_found(result, &user, "site");
                }
                let stored = self
                    .store
                    .get_website(&owner_caller(&self.model, &site), site.id)
                    .await
                    .expect("the site is still there");
                assert_eq!(
                    stored.settings.gzip, self.model.sites[&site.id].gzip,
                    "an allowed change is stored, a refused one left no trace"
                );
            }
            Op::CreateSite(a) => {
                let user = self.user(a);
                let request = self.request(&user, None);
                let own = derived_account_name(&request.domain, 0).expect("derived name");
                let site = self
                    .panel
                    .create_website(&actor(&user), request)
                    .await
                    .unwrap_or_else(|e| panic!("{user:?} creating its own site: {e:?}"))
                    .website;
                assert_eq!((site.tenant_id, site.owner_id), (user.tenant, user.id));
                assert_eq!(site.system_user, own, "an account of its own");
                assert!(
                    !self.model.accounts().contains_key(&own),
                    "a new account, no other site's"
                );
                self.remember_site(&site);
            }
            Op::CreateNamed(a, s) => {
                let user = self.user(a);
                let Some(site) = self.site(s) else {
                    return;
                };
                let allowed = self.model.may_name(&user, &site.account);
                let request = self.request(&user, Some(site.account.clone()));
                let result = self.panel.create_website(&actor(&user), request).await;
                if allowed {
                    let created = result
                        .unwrap_or_else(|e| {
                            panic!("{user:?} naming the account of {site:?}: {e:?}")
                        })
                        .website;
                    assert_eq!(created.system_user, site.account);
                    self.remember_site(&created);
                } else {
                    match result {
                        Err(Error::Invalid { field, .. }) if field == "system_user" => {}
                        other => panic!(
                            "{user:?} naming the account of {site:?} must be refused on \
                             system_user: {other:?}"
                        ),
                    }
                }
            }
            Op::GetUser(a, t) => {
                let (user, target) = (self.user(a), self.user(t));
                let got = self.panel.get_user(&actor(&user), target.id).await;
                if self.model.sees_user(&user, &target) {
                    let got = got.expect("a visible user");
                    assert_eq!((got.role, got.status), (target.role, target.status));
                } else {
                    assert_not_found(got, &user, "user");
                }
            }
            Op::SetStatus(a, t, suspend) => {
                let (user, target) = (self.user(a), self.user(t));
                let status = if suspend {
                    UserStatus::Suspended
                } else {
                    UserStatus::Active
                };
                let changes = UserChanges {
                    status: Some(status),
                    ..UserChanges::default()
                };
                let result = self
                    .panel
                    .update_user(&actor(&user), target.id, changes)
                    .await;
                self.expect_user_change(&user, &target, result, None, Some(status));
            }
            Op::SetRole(a, t, role) => {
                let (user, target) = (self.user(a), self.user(t));
                let changes = UserChanges {
                    role: Some(role),
                    ..UserChanges::default()
                };
                let result = self
                    .panel
                    .update_user(&actor(&user), target.id, changes)
                    .await;
                self.expect_user_change(&user, &target, result, Some(role), None);
            }
            Op::CreateUser(a, role) => {
                let user = self.user(a);
                let new = self.new_user(role);
                let pw: hosting_core::types::Password =
                    "model-password-1".parse().expect("password");
                let result = self.panel.create_user(&actor(&user), new, Some(pw)).await;
                if self.model.may_create(&user, role) {
                    let created = result.expect("an allowed create").user;
                    assert_eq!(
                        created.tenant_id, user.tenant,
                        "created in the creator's tenant"
                    );
                    assert_eq!(created.created_by, Some(user.id));
                    self.remember_user(&created);
                } else {
                    assert!(
                        matches!(result, Err(Error::PermissionDenied(_))),
                        "{user:?} creating a {role}: {result:?}"
                    );
                }
            }
            Op::GetTenant(a, own) => {
                let user = self.user(a);
                let other = self.tenants.into_iter().find(|t| *t != user.tenant);
                let id = if own {
                    user.tenant
                } else {
                    other.expect("two tenants")
                };
                let got = self.panel.get_tenant(&actor(&user), id).await;
                if own {
                    assert_eq!(got.expect("own tenant").id, user.tenant);
                } else {
                    assert_not_found(got, &user, "tenant");
                }
            }
            Op::ListAudit(a) => {
                let user = self.user(a);
                let got = self
                    .panel
                    .list_audit(&actor(&user), PageRequest::default())
                    .await;
                if user.role == Role::Admin {
                    let page = got.expect("an admin reads its tenant's log");
                    assert!(
                        page.items.iter().all(|e| e.tenant_id == Some(user.tenant)),
                        "only its own tenant's entries"
                    );
                } else {
                    assert!(matches!(got, Err(Error::PermissionDenied(_))), "{got:?}");
                }
            }
        }
    }

    fn expect_user_change(
        &mut self,
        user: &MUser,
        target: &MUser,
        result: hosting_core::Result<hosting_core::model::User>,
        role: Option<Role>,
        status: Option<UserStatus>,
    ) {
        if !self.model.manages_user(user, target) {
            assert_not_found(result, user, "user");
            return;
        }
        let refused = (user.id == target.id)
            || role.is_some_and(|r| r != target.role && !self.model.may_create(user, r));
        if refused {
            assert!(
                matches!(result, Err(Error::PermissionDenied(_))),
                "{user:?} changing {target:?}: {result:?}"
            );
            return;
        }
        let changed = result.expect("an allowed change");
        let entry = self.model.users.get_mut(&target.id).expect("known user");
        entry.role = role.unwrap_or(entry.role);
        entry.status = status.unwrap_or(entry.status);
        assert_eq!((changed.role, changed.status), (entry.role, entry.status));
    }
}

/// One page holding everything the test can create.
fn all() -> PageRequest {
    PageRequest::first(PageLimit::try_from(PageLimit::MAX).expect("page limit"))
}

/// The caller that owns `site`, to read it back as it is stored.
fn owner_caller(model: &Model, site: &MSite) -> Caller {
    let owner = model.users[&site.owner];
    Caller {
        tenant: owner.tenant,
        user: owner.id,
        role: owner.role,
    }
}

fn assert_not_found<T: std::fmt::Debug>(got: hosting_core::Result<T>, user: &MUser, what: &str) {
    assert!(
        matches!(got, Err(Error::NotFound { .. })),
        "{user:?} must not see this {what}: {got:?}"
    );
}

proptest! {
    // Each case starts nginx and PHP-FPM and creates and removes a dozen accounts (about 6 s
    // on 2 cores): 14 cases keep the test under 2 minutes of the whole run's 30.
    #![proptest_config(ProptestConfig { cases: 14, .. ProptestConfig::default() })]

    #[test]
    fn no_call_crosses_a_tenant_or_reaches_a_siblings_records(ops in prop::collection::vec(op(), 1..40)) {
        let Some(binaries) = binaries() else {
            return Ok(());
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut world = World::new(binaries).await;
            world.check_everyone().await;
            world.check_node().await;
            for op in ops {
                world.run(op).await;
                world.check_node().await;
            }
            world.check_everyone().await;
            world.check_serving().await;
        });
    }
}
