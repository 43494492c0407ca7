//! Model-based test of tenant isolation and roles through the `Panel` service (the API embedders
//! call and the REST routes wrap): random sequences of calls by the users of two tenants, in
//! all three roles, are checked against a small model of who may see and change what.
//!
//! The model is written from the rules as the product states them, not from `hosting_core::rbac`:
//! an admin manages everything in its tenant; a reseller manages the clients it created and
//! their sites, and its own sites; a client manages its own sites; nobody sees anything of
//! another tenant, and what a user may not see is "not found", never "forbidden".
//!
//! Website changes are attempted against a node with no backends attached: an allowed change
//! gets past every check and stops at the node (`Conflict`), a refused one is `NotFound`; in
//! both cases the record must be unchanged. Deploying is covered by `panel_sagas.rs`.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hosting_core::auth::{Keyring, PasswordPolicy, SigningKey};
use hosting_core::model::{
    NewNode, NewTenant, NewUser, NewWebsite, NodeId, NodeRole, Role, TenantId, UserChanges, UserId,
    UserStatus, WebsiteChanges, WebsiteId, WebsiteSettings,
};
use hosting_core::panel::{Actor, AuthSettings, Panel, PanelParts};
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_core::{Caller, Error, Operator, PageRequest, PanelStore, SystemClock};
use hosting_db::{SqlStore, StoreOptions};
use hosting_tests::fresh_sqlite;
use proptest::prelude::*;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MSite {
    id: WebsiteId,
    tenant: TenantId,
    owner: UserId,
    gzip: bool,
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
    ]
}

struct World {
    _dir: hosting_tests::TempDir,
    store: Arc<SqlStore>,
    panel: Panel,
    model: Model,
    tenants: [TenantId; 2],
    node: NodeId,
    created: u32,
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
    async fn new() -> World {
        let (dir, url) = fresh_sqlite();
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
        let mut world = World {
            _dir: dir,
            store,
            panel,
            model: Model::default(),
            tenants: [t1.id, t2.id],
            node: node.id,
            created: 0,
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

    async fn seed_site(&mut self, owner: &MUser) {
        self.created += 1;
        let site = self
            .store
            .create_website(
                actor(owner).caller(),
                NewWebsite {
                    owner_id: owner.id,
                    domain: format!("s{}.model.example", self.created)
                        .parse()
                        .expect("domain"),
                    aliases: vec![],
                    node_id: self.node,
                    web_server: WebServerKind::Nginx,
                    php_version: Some(PhpVersion::V8_2),
                    system_user: "hostingt1".parse().expect("user"),
                    document_root: "public".parse().expect("root"),
                    settings: WebsiteSettings::default(),
                },
            )
            .await
            .expect("seed site");
        self.model.sites.insert(
            site.id,
            MSite {
                id: site.id,
                tenant: site.tenant_id,
                owner: site.owner_id,
                gzip: site.settings.gzip,
            },
        );
    }

    fn user(&self, i: usize) -> MUser {
        let users: Vec<&MUser> = self.model.users.values().collect();
        *users[i % users.len()]
    }

    fn site(&self, i: usize) -> MSite {
        let sites: Vec<&MSite> = self.model.sites.values().collect();
        self.model.sites[&sites[i % sites.len()].id]
    }

    /// Every record as the store holds it equals the model, and every user's lists show
    /// exactly what the model lets it see.
    async fn check_everyone(&self) {
        for user in self.model.users.values() {
            let a = actor(user);
            let sites: BTreeSet<WebsiteId> = self
                .panel
                .list_websites(&a, PageRequest::default())
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
                .list_users(&a, PageRequest::default())
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
        }
    }

    async fn run(&mut self, op: Op) {
        match op {
            Op::GetSite(a, s) => {
                let (user, site) = (self.user(a), self.site(s));
                let got = self.panel.get_website(&actor(&user), site.id).await;
                if self.model.manages_site(&user, &site) {
                    let got = got.expect("a managed site is visible");
                    assert_eq!((got.tenant_id, got.owner_id), (site.tenant, site.owner));
                } else {
                    assert_not_found(got, &user, "site");
                }
            }
            Op::ListAll => self.check_everyone().await,
            Op::ToggleGzip(a, s) | Op::DeleteSite(a, s) => {
                let (user, site) = (self.user(a), self.site(s));
                let result = if matches!(op, Op::DeleteSite(..)) {
                    self.panel.delete_website(&actor(&user), site.id).await
                } else {
                    let mut settings = self
                        .store
                        .get_website(&owner_caller(&self.model, &site), site.id)
                        .await
                        .expect("owner reads its site")
                        .settings;
                    settings.gzip = !site.gzip;
                    self.panel
                        .update_website(
                            &actor(&user),
                            site.id,
                            WebsiteChanges {
                                settings: Some(settings),
                                ..WebsiteChanges::default()
                            },
                        )
                        .await
                        .map(|_| ())
                };
                match result {
                    Err(Error::Conflict(why)) if self.model.manages_site(&user, &site) => {
                        assert!(why.contains("no backends"), "{why}");
                    }
                    other if self.model.manages_site(&user, &site) => {
                        panic!("{user:?} manages {site:?} but got {other:?}")
                    }
                    other => assert_not_found(other, &user, "site"),
                }
                let stored = self
                    .store
                    .get_website(&owner_caller(&self.model, &site), site.id)
                    .await
                    .expect("the site is still there");
                assert_eq!(
                    stored.settings.gzip, site.gzip,
                    "a refused change left no trace"
                );
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
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn no_call_crosses_a_tenant_or_reaches_a_siblings_records(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut world = World::new().await;
            world.check_everyone().await;
            for op in ops {
                world.run(op).await;
            }
            world.check_everyone().await;
        });
    }
}
