//! The [`PanelStore`] contract. Run every function against a fresh, empty store
//! (or one shared only with other suite functions: names are made unique per call).

use std::collections::BTreeSet;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::IntoDeserializer;

use crate::conformance::unique_suffix;
use crate::database::DatabaseLimits;
use crate::error::Error;
use crate::model::{
    AccountOrigin, AlertRuleSpec, AuditOutcome, Comparison, DatabaseSettings, ExtraDirectives,
    MetricKind, NewAuditEntry, NewNode, NewNodeAccount, NewOperation, NewTenant, NewUser,
    NewWebsite, Node, NodeAccount, NodeAccountId, NodeId, NodeRole, NotifyChannel, Operation,
    OperationAccount, OperationId, OperationKind, OperationState, PhpSettings, Quotas, Role,
    SagaStep, ServerDirective, Ssl, SslProvider, Tenant, TenantChanges, TenantId, TenantStatus,
    Threshold, User, UserChanges, UserStatus, Website, WebsiteChanges, WebsiteId, WebsiteSettings,
    WebsiteStatus, WwwRedirect,
};
use crate::page::{PageLimit, PageRequest};
use crate::rbac::{self, Caller, Operator};
use crate::store::PanelStore;
use crate::types::{
    DomainName, IpNetwork, PhpBytes, PhpVersion, PluginName, SystemUser, WebServerKind,
};

/// Every function of this suite, in order. Backends call this, or the functions one by one so
/// each shows as its own test.
pub async fn run_all(store: &dyn PanelStore) {
    tenants_crud(store).await;
    nodes_crud(store).await;
    users_crud(store).await;
    websites_crud(store).await;
    settings_round_trip(store).await;
    plugin_web_servers_round_trip(store).await;
    deployments_set_the_status(store).await;
    domains_are_unique_across_tenants(store).await;
    pagination_walks_every_row_once(store).await;
    cross_tenant_access_is_refused(store).await;
    roles_scope_what_is_visible(store).await;
    concurrent_creates_of_one_domain_have_one_winner(store).await;
    referenced_rows_cannot_be_deleted(store).await;
    tenant_limits_are_enforced(store).await;
    alert_rules_crud(store).await;
    audit_log_is_scoped(store).await;
    node_accounts_crud(store).await;
    node_account_names_and_uids_are_unique_per_node(store).await;
    node_accounts_are_scoped_to_their_tenant(store).await;
    node_accounts_go_with_their_tenant_and_keep_their_node(store).await;
    hostile_values_never_reach_the_store(store).await;
    the_saga_journal_keeps_changes_in_flight(store).await;
    failure_reasons_are_kept_scoped_and_cleared(store).await;
}

fn parse<T: FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("suite value {s:?} must parse: {e:?}"))
}

fn page(limit: u32) -> PageRequest {
    PageRequest::first(PageLimit::try_from(limit).unwrap_or_default())
}

fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn assert_denied<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::PermissionDenied(_)) => {}
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

fn assert_exists<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("{what}: expected AlreadyExists, got {other:?}"),
    }
}

/// A tenant with an admin, two resellers each with a client, a client of the admin, and a
/// web node, all freshly created.
pub struct World {
    /// The tenant.
    pub tenant: Tenant,
    /// Its admin.
    pub admin: User,
    /// A reseller created by the admin.
    pub reseller_a: User,
    /// Another reseller created by the admin.
    pub reseller_b: User,
    /// A client created by `reseller_a`.
    pub client_of_a: User,
    /// A client created by `reseller_b`.
    pub client_of_b: User,
    /// A client created by the admin.
    pub client_of_admin: User,
    /// A web node.
    pub node: Node,
    /// Unique suffix used in every name of this world.
    pub tag: String,
}

impl World {
    /// Creates a fresh world in `store`.
    pub async fn create(store: &dyn PanelStore) -> World {
        let op = Operator::assume();
        let tag = unique_suffix();
        let tenant = store
            .create_tenant(
                &op,
                NewTenant {
                    name: parse(&format!("Tenant {tag}")),
                    slug: parse(&format!("t-{tag}")),
                    quotas: Quotas {
                        max_websites: Some(100),
                        max_databases: None,
                        max_storage_mb: Some(10_240),
                        ..Quotas::default()
                    },
                },
            )
            .await
            .expect("create tenant");
        let admin = store
            .create_user_as_operator(
                &op,
                tenant.id,
                NewUser {
                    role: Role::Admin,
                    email: parse(&format!("admin-{tag}@example.com")),
                },
            )
            .await
            .expect("create admin");
        let as_admin = caller(&admin);
        let new_user = |role, name: &str| NewUser {
            role,
            email: parse(&format!("{name}-{tag}@example.com")),
        };
        let reseller_a = store
            .create_user(&as_admin, new_user(Role::Reseller, "reseller-a"))
            .await
            .expect("create reseller a");
        let reseller_b = store
            .create_user(&as_admin, new_user(Role::Reseller, "reseller-b"))
            .await
            .expect("create reseller b");
        let client_of_a = store
            .create_user(&caller(&reseller_a), new_user(Role::Client, "client-a"))
            .await
            .expect("reseller creates client");
        let client_of_b = store
            .create_user(&caller(&reseller_b), new_user(Role::Client, "client-b"))
            .await
            .expect("reseller creates client");
        let client_of_admin = store
            .create_user(&as_admin, new_user(Role::Client, "client-admin"))
            .await
            .expect("admin creates client");
        let node = store
            .create_node(
                &op,
                NewNode {
                    name: parse(&format!("web-{tag}")),
                    address: parse("127.0.0.1:8443"),
                    roles: BTreeSet::from([NodeRole::Web, NodeRole::Database]),
                },
            )
            .await
            .expect("create node");
        World {
            tenant,
            admin,
            reseller_a,
            reseller_b,
            client_of_a,
            client_of_b,
            client_of_admin,
            node,
            tag,
        }
    }

    /// Every user of the world with a name, admin first.
    pub fn users(&self) -> [(&'static str, &User); 6] {
        [
            ("admin", &self.admin),
            ("reseller_a", &self.reseller_a),
            ("reseller_b", &self.reseller_b),
            ("client_of_a", &self.client_of_a),
            ("client_of_b", &self.client_of_b),
            ("client_of_admin", &self.client_of_admin),
        ]
    }

    /// A new-website request owned by `owner` for `label`.<tag>.example.com.
    pub fn site(&self, owner: &User, label: &str) -> NewWebsite {
        NewWebsite {
            owner_id: owner.id,
            domain: parse(&format!("{label}.{}.example.com", self.tag)),
            aliases: vec![parse(&format!("www.{label}.{}.example.com", self.tag))],
            node_id: self.node.id,
            web_server: WebServerKind::Nginx,
            php_version: Some(PhpVersion::V8_2),
            system_user: parse(&format!("s{}", unique_suffix())),
            document_root: parse("public_html"),
            settings: WebsiteSettings::default(),
        }
    }
}

/// The [`Caller`] for a stored user.
pub fn caller(user: &User) -> Caller {
    Caller {
        tenant: user.tenant_id,
        user: user.id,
        role: user.role,
    }
}

/// Tenants: create, read, list, update, delete; slugs are unique.
pub async fn tenants_crud(store: &dyn PanelStore) {
    let op = Operator::assume();
    let tag = unique_suffix();
    let new = NewTenant {
        name: parse(&format!("Acme {tag}")),
        slug: parse(&format!("acme-{tag}")),
        quotas: Quotas {
            max_websites: Some(5),
            max_databases: Some(2),
            max_storage_mb: None,
            database_limits: DatabaseLimits::new(3, 60, 256, 1000, 50).expect("limits"),
        },
    };
    let created = store.create_tenant(&op, new.clone()).await.expect("create");
    assert_eq!(created.name, new.name);
    assert_eq!(created.slug, new.slug);
    assert_eq!(created.quotas, new.quotas);
    assert_eq!(created.status, TenantStatus::Active);
    assert_eq!(
        store.get_tenant(&op, created.id).await.expect("get"),
        created
    );
    assert_exists(store.create_tenant(&op, new).await, "duplicate slug");

    let changed = store
        .update_tenant(
            &op,
            created.id,
            TenantChanges {
                name: Some(parse(&format!("Acme Ltd {tag}"))),
                status: Some(TenantStatus::Suspended),
                quotas: None,
            },
        )
        .await
        .expect("update");
    assert_eq!(changed.name.as_str(), format!("Acme Ltd {tag}"));
    assert_eq!(changed.status, TenantStatus::Suspended);
    assert_eq!(changed.quotas, created.quotas, "untouched fields stay");
    assert_eq!(
        store.get_tenant(&op, created.id).await.expect("get"),
        changed
    );
    let wider = Quotas {
        database_limits: DatabaseLimits::new(40, 900, 4096, 0, 0).expect("limits"),
        ..created.quotas
    };
    let widened = store
        .update_tenant(
            &op,
            created.id,
            TenantChanges {
                quotas: Some(wider),
                ..TenantChanges::default()
            },
        )
        .await
        .expect("update quotas");
    assert_eq!(widened.quotas, wider, "database limits are stored");

    let listed = store.list_tenants(&op, page(500)).await.expect("list");
    assert!(listed.items.iter().any(|t| t.id == created.id));

    store.delete_tenant(&op, created.id).await.expect("delete");
    assert_not_found(store.get_tenant(&op, created.id).await, "deleted tenant");
    assert_not_found(store.delete_tenant(&op, created.id).await, "delete twice");
    assert_not_found(
        store
            .update_tenant(&op, created.id, TenantChanges::default())
            .await,
        "update deleted tenant",
    );
}

/// Nodes: create, read, list, delete; names are unique.
pub async fn nodes_crud(store: &dyn PanelStore) {
    let op = Operator::assume();
    let tag = unique_suffix();
    let new = NewNode {
        name: parse(&format!("db-{tag}")),
        address: parse("db1.example.net:8443"),
        roles: BTreeSet::from([NodeRole::Database, NodeRole::Backup]),
    };
    let node = store.create_node(&op, new.clone()).await.expect("create");
    assert_eq!(node.name, new.name);
    assert_eq!(node.address, new.address);
    assert_eq!(node.roles, new.roles);
    assert_eq!(store.get_node(&op, node.id).await.expect("get"), node);
    assert_exists(store.create_node(&op, new).await, "duplicate node name");
    let listed = store.list_nodes(&op, page(500)).await.expect("list");
    assert!(listed.items.contains(&node));
    store.delete_node(&op, node.id).await.expect("delete");
    assert_not_found(store.get_node(&op, node.id).await, "deleted node");
}

/// Users: create by role, read, list, update, delete; e-mails are unique.
pub async fn users_crud(store: &dyn PanelStore) {
    let w = World::create(store).await;
    assert_eq!(w.admin.tenant_id, w.tenant.id);
    assert_eq!(w.admin.created_by, None);
    assert_eq!(w.client_of_a.created_by, Some(w.reseller_a.id));
    assert_eq!(w.client_of_a.status, UserStatus::Active);

    let as_admin = caller(&w.admin);
    assert_eq!(
        store
            .get_user(&as_admin, w.client_of_a.id)
            .await
            .expect("get"),
        w.client_of_a
    );
    // Another tenant's e-mail: refused without saying where it is in use.
    match store
        .create_user(
            &as_admin,
            NewUser {
                role: Role::Client,
                email: w.client_of_b.email.clone(),
            },
        )
        .await
    {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "email"),
        other => panic!("duplicate e-mail: expected Invalid on email, got {other:?}"),
    }

    // Resellers create only clients; clients create nobody.
    assert_denied(
        store
            .create_user(
                &caller(&w.reseller_a),
                NewUser {
                    role: Role::Admin,
                    email: parse(&format!("escalate-{}@example.com", w.tag)),
                },
            )
            .await,
        "reseller creating an admin",
    );
    assert_denied(
        store
            .create_user(
                &caller(&w.client_of_a),
                NewUser {
                    role: Role::Client,
                    email: parse(&format!("sub-{}@example.com", w.tag)),
                },
            )
            .await,
        "client creating a user",
    );

    let updated = store
        .update_user(
            &caller(&w.reseller_a),
            w.client_of_a.id,
            UserChanges {
                status: Some(UserStatus::Suspended),
                ..UserChanges::default()
            },
        )
        .await
        .expect("reseller suspends its client");
    assert_eq!(updated.status, UserStatus::Suspended);
    assert_eq!(updated.email, w.client_of_a.email);
    assert_denied(
        store
            .update_user(
                &caller(&w.reseller_a),
                w.client_of_a.id,
                UserChanges {
                    role: Some(Role::Admin),
                    ..UserChanges::default()
                },
            )
            .await,
        "reseller promoting its client to admin",
    );
    assert_not_found(
        store
            .update_user(
                &caller(&w.reseller_a),
                w.client_of_b.id,
                UserChanges {
                    status: Some(UserStatus::Suspended),
                    ..UserChanges::default()
                },
            )
            .await,
        "reseller changing another reseller's client",
    );

    assert_denied(
        store
            .update_user(
                &as_admin,
                w.admin.id,
                UserChanges {
                    role: Some(Role::Client),
                    ..UserChanges::default()
                },
            )
            .await,
        "an admin demoting itself",
    );
    store
        .delete_user(&caller(&w.reseller_b), w.client_of_b.id)
        .await
        .expect("reseller deletes its client");
    assert_not_found(
        store.get_user(&as_admin, w.client_of_b.id).await,
        "deleted user",
    );
}

/// Websites: create, read by id and by domain (primary and alias), list, update, delete.
pub async fn websites_crud(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.client_of_a);
    let new = w.site(&w.client_of_a, "shop");
    let site = store
        .create_website(&me, new.clone())
        .await
        .expect("create");
    assert_eq!(site.tenant_id, w.tenant.id);
    assert_eq!(site.owner_id, w.client_of_a.id);
    assert_eq!(site.domain, new.domain);
    assert_eq!(site.aliases, new.aliases);
    assert_eq!(site.node_id, w.node.id);
    assert_eq!(site.php_version, Some(PhpVersion::V8_2));
    assert_eq!(site.system_user, new.system_user);
    assert_eq!(site.document_root, new.document_root);
    assert_eq!(site.status, WebsiteStatus::Provisioning);
    assert_eq!(site.settings, WebsiteSettings::default());

    assert_eq!(store.get_website(&me, site.id).await.expect("get"), site);
    assert_eq!(
        store
            .get_website_by_domain(&me, &new.domain)
            .await
            .expect("by domain"),
        site
    );
    assert_eq!(
        store
            .get_website_by_domain(&me, &new.aliases[0])
            .await
            .expect("by alias"),
        site
    );
    let listed = store.list_websites(&me, page(50)).await.expect("list");
    assert_eq!(listed.items, vec![site.clone()]);

    let alias: DomainName = parse(&format!("shop-alias.{}.example.com", w.tag));
    assert_denied(
        store
            .update_website(
                &me,
                site.id,
                WebsiteChanges {
                    status: Some(WebsiteStatus::Active),
                    ..WebsiteChanges::default()
                },
            )
            .await,
        "a client changing its site's status",
    );
    store
        .update_website(
            &me,
            site.id,
            WebsiteChanges {
                aliases: Some(vec![alias.clone()]),
                php_version: Some(Some(PhpVersion::V8_4)),
                web_server: Some(WebServerKind::Apache),
                ..WebsiteChanges::default()
            },
        )
        .await
        .expect("update");
    let changed = store
        .update_website(
            &caller(&w.admin),
            site.id,
            WebsiteChanges {
                status: Some(WebsiteStatus::Active),
                ..WebsiteChanges::default()
            },
        )
        .await
        .expect("an admin activates the site");
    assert_eq!(changed.aliases, vec![alias.clone()]);
    assert_eq!(changed.php_version, Some(PhpVersion::V8_4));
    assert_eq!(changed.web_server, WebServerKind::Apache);
    assert_eq!(changed.status, WebsiteStatus::Active);
    assert_eq!(changed.domain, site.domain);
    assert!(changed.updated_at >= site.updated_at);
    assert_eq!(store.get_website(&me, site.id).await.expect("get"), changed);
    assert_not_found(
        store.get_website_by_domain(&me, &new.aliases[0]).await,
        "replaced alias no longer resolves",
    );
    let php_off = store
        .update_website(
            &me,
            site.id,
            WebsiteChanges {
                php_version: Some(None),
                ..WebsiteChanges::default()
            },
        )
        .await
        .expect("turn PHP off");
    assert_eq!(php_off.php_version, None);

    store.delete_website(&me, site.id).await.expect("delete");
    assert_not_found(store.get_website(&me, site.id).await, "deleted site");
    assert_not_found(
        store.get_website_by_domain(&me, &alias).await,
        "deleted site's alias",
    );
    // The freed domain can be used again.
    store
        .create_website(&me, new)
        .await
        .expect("recreate on a freed domain");
}

/// A site served by a plugin's web server keeps that kind through a create, an update and
/// every read, up to the longest plugin name, and can move to a built-in server and back.
pub async fn plugin_web_servers_round_trip(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.admin);
    let caddy: WebServerKind = parse("caddy");
    let mut new = w.site(&w.admin, "plugin");
    new.web_server = caddy;
    let site = store
        .create_website(&me, new.clone())
        .await
        .expect("create a site served by a plugin");
    assert_eq!(site.web_server, caddy);
    assert_eq!(store.get_website(&me, site.id).await.expect("get"), site);
    assert_eq!(
        store
            .get_website_by_domain(&me, &new.domain)
            .await
            .expect("by domain")
            .web_server,
        caddy
    );

    let longest: WebServerKind = parse(&"p".repeat(PluginName::MAX_LEN));
    for kind in [longest, WebServerKind::Nginx, caddy] {
        let changed = store
            .update_website(
                &me,
                site.id,
                WebsiteChanges {
                    web_server: Some(kind),
                    ..WebsiteChanges::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("serve the site by {kind}: {e}"));
        assert_eq!(changed.web_server, kind);
        assert_eq!(
            store
                .get_website(&me, site.id)
                .await
                .expect("get")
                .web_server,
            kind
        );
    }
    store.delete_website(&me, site.id).await.expect("delete");
}

/// The panel's own authority moves a client's new site from provisioning to active, which the
/// client itself may not do; nothing else of the site changes; an unknown id is not found.
pub async fn deployments_set_the_status(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.client_of_a);
    let site = store
        .create_website(&me, w.site(&w.client_of_a, "status"))
        .await
        .expect("a client creates its own site");
    assert_eq!(site.status, WebsiteStatus::Provisioning);
    assert_denied(
        store
            .update_website(
                &me,
                site.id,
                WebsiteChanges {
                    status: Some(WebsiteStatus::Active),
                    ..WebsiteChanges::default()
                },
            )
            .await,
        "a client setting its site's status",
    );
    let op = Operator::assume();
    let active = store
        .set_website_status(&op, site.id, WebsiteStatus::Active)
        .await
        .expect("the panel marks it deployed");
    assert_eq!(active.status, WebsiteStatus::Active);
    let read = store.get_website(&me, site.id).await.expect("get");
    assert_eq!(read.status, WebsiteStatus::Active);
    assert_eq!(
        (read.domain, read.settings, read.php_version),
        (site.domain, site.settings, site.php_version),
        "only the status changed"
    );
    assert_not_found(
        store
            .set_website_status(&op, WebsiteId(i64::MAX), WebsiteStatus::Active)
            .await,
        "an unknown site",
    );
    store.delete_website(&me, site.id).await.expect("delete");
}

/// Every per-site setting survives a write and a read unchanged.
pub async fn settings_round_trip(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.admin);
    let mut new = w.site(&w.admin, "settings");
    new.settings = WebsiteSettings {
        php: PhpSettings::new(
            parse("512M"),
            300,
            parse("100M"),
            parse("128M"),
            BTreeSet::from([parse("intl"), parse("pdo_mysql"), parse("gd")]),
        )
        .expect("valid php settings"),
        database: Some(DatabaseSettings {
            engine: crate::types::DbEngine::MariaDb,
            name: parse(&format!("shop_{}", w.tag)),
            charset: parse("utf8mb4"),
            collation: parse("utf8mb4_unicode_ci"),
        }),
        ssl: Ssl::Enabled {
            provider: SslProvider::LetsEncrypt,
            auto_renew: true,
        },
        gzip: true,
        cache_ttl_secs: Some(86_400),
        security_headers: true,
        allowed_ips: BTreeSet::from([parse::<IpNetwork>("10.0.0.0/8"), parse("2001:db8::/32")]),
        blocked_ips: BTreeSet::from([parse::<IpNetwork>("203.0.113.7")]),
        www_redirect: WwwRedirect::ToWww,
        extra_directives: ExtraDirectives::try_from(vec![
            ServerDirective {
                name: parse("client_max_body_size"),
                args: vec![parse("64m")],
            },
            ServerDirective {
                name: parse("add_header"),
                args: vec![parse("X-Served-By"), parse("hosting-sdk")],
            },
        ])
        .expect("two directives"),
        operator_directives: ExtraDirectives::try_from(vec![ServerDirective {
            name: parse("access_log"),
            args: vec![parse("/var/log/nginx/shop.log")],
        }])
        .expect("one directive"),
    };
    new.php_version = Some(PhpVersion::V8_0);
    new.web_server = WebServerKind::OpenLiteSpeed;
    new.document_root = parse("sites/shop/public");
    let site = store
        .create_website(&me, new.clone())
        .await
        .expect("create");
    assert_eq!(site.settings, new.settings);
    let read = store.get_website(&me, site.id).await.expect("get");
    assert_eq!(read.settings, new.settings);
    assert_eq!(read.document_root, new.document_root);
    assert_eq!(read.web_server, WebServerKind::OpenLiteSpeed);

    let mut next = new.settings.clone();
    next.ssl = Ssl::Disabled;
    next.database = None;
    next.php = PhpSettings::default();
    next.allowed_ips.clear();
    next.www_redirect = WwwRedirect::ToApex;
    next.extra_directives = ExtraDirectives::default();
    let updated = store
        .update_website(
            &me,
            site.id,
            WebsiteChanges {
                settings: Some(next.clone()),
                ..WebsiteChanges::default()
            },
        )
        .await
        .expect("update settings");
    assert_eq!(updated.settings, next);
    assert_eq!(
        store.get_website(&me, site.id).await.expect("get").settings,
        next
    );
}

/// A domain (primary or alias) belongs to one site in the whole panel.
pub async fn domains_are_unique_across_tenants(store: &dyn PanelStore) {
    let first = World::create(store).await;
    let second = World::create(store).await;
    let mine = first.site(&first.admin, "unique");
    store
        .create_website(&caller(&first.admin), mine.clone())
        .await
        .expect("create");

    // Another tenant takes the same primary domain.
    let mut theirs = second.site(&second.admin, "other");
    theirs.domain = mine.domain.clone();
    theirs.aliases.clear();
    assert_exists(
        store.create_website(&caller(&second.admin), theirs).await,
        "primary domain taken by another tenant",
    );
    // ... or uses it as an alias.
    let mut theirs = second.site(&second.admin, "other2");
    theirs.aliases = vec![mine.aliases[0].clone()];
    assert_exists(
        store.create_website(&caller(&second.admin), theirs).await,
        "alias taken by another tenant's alias",
    );
    // Nothing half-written: the refused site's own domain is still free.
    let retry = second.site(&second.admin, "other2");
    store
        .create_website(&caller(&second.admin), retry)
        .await
        .expect("the refused site left nothing behind");

    // A site cannot list its own domain twice.
    let mut dup = first.site(&first.admin, "dup");
    dup.aliases = vec![dup.domain.clone()];
    match store.create_website(&caller(&first.admin), dup).await {
        Err(Error::Invalid { field, .. }) => assert!(field.starts_with("aliases"), "{field}"),
        other => panic!("alias equal to domain: expected Invalid, got {other:?}"),
    }

    // An update that would steal another site's domain is refused and changes nothing.
    let victim = store
        .create_website(&caller(&second.admin), second.site(&second.admin, "victim"))
        .await
        .expect("create");
    assert_exists(
        store
            .update_website(
                &caller(&second.admin),
                victim.id,
                WebsiteChanges {
                    aliases: Some(vec![mine.domain.clone()]),
                    php_version: Some(Some(PhpVersion::V8_1)),
                    ..WebsiteChanges::default()
                },
            )
            .await,
        "update stealing a domain",
    );
    assert_eq!(
        store
            .get_website(&caller(&second.admin), victim.id)
            .await
            .expect("get"),
        victim,
        "a refused update changes nothing"
    );
}

/// Keyset pages: every row exactly once, in id order, `next_after` `None` at the end.
pub async fn pagination_walks_every_row_once(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.admin);
    let mut created = Vec::new();
    for i in 0..7 {
        let site = store
            .create_website(&me, w.site(&w.client_of_admin, &format!("page{i}")))
            .await
            .expect("create");
        created.push(site.id);
    }
    let mut seen = Vec::new();
    let mut request = page(3);
    let mut pages = 0;
    loop {
        let p = store.list_websites(&me, request).await.expect("list");
        assert!(p.items.len() <= 3);
        pages += 1;
        seen.extend(p.items.iter().map(|s| s.id));
        match p.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert_eq!(seen, created, "every row once, in id order");
    assert!(pages >= 3);
    let mut users = Vec::new();
    let mut request = page(2);
    loop {
        let p = store.list_users(&me, request).await.expect("list users");
        users.extend(p.items.iter().map(|u| u.id));
        match p.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
    }
    let mut expected: Vec<_> = w.users().iter().map(|(_, u)| u.id).collect();
    expected.sort();
    assert_eq!(users, expected);
}

/// Nothing in another tenant can be read, changed or deleted, whatever the role, even with
/// the right ids and domains.
pub async fn cross_tenant_access_is_refused(store: &dyn PanelStore) {
    let home = World::create(store).await;
    let away = World::create(store).await;
    let their_site = store
        .create_website(&caller(&away.admin), away.site(&away.client_of_a, "secret"))
        .await
        .expect("create");
    let their_rule = store
        .create_alert_rule(&caller(&away.admin), rule_spec(&away.tag, None))
        .await
        .expect("create rule");
    // The operator reaches any tenant's website; nobody else does.
    let op = Operator::assume();
    assert_eq!(
        store
            .get_any_website(&op, their_site.id)
            .await
            .expect("the operator reads any website"),
        their_site
    );
    assert_not_found(
        store.get_any_website(&op, WebsiteId(i64::MAX)).await,
        "operator",
    );
    for (name, user) in home.users() {
        let me = caller(user);
        assert_not_found(store.get_website(&me, their_site.id).await, name);
        assert_not_found(
            store.get_website_by_domain(&me, &their_site.domain).await,
            name,
        );
        assert_not_found(
            store
                .update_website(
                    &me,
                    their_site.id,
                    WebsiteChanges {
                        php_version: Some(None),
                        ..WebsiteChanges::default()
                    },
                )
                .await,
            name,
        );
        assert_not_found(store.delete_website(&me, their_site.id).await, name);
        for (_, theirs) in away.users() {
            assert_not_found(store.get_user(&me, theirs.id).await, name);
            assert_not_found(
                store
                    .update_user(
                        &me,
                        theirs.id,
                        UserChanges {
                            status: Some(UserStatus::Suspended),
                            ..UserChanges::default()
                        },
                    )
                    .await,
                name,
            );
            assert_not_found(store.delete_user(&me, theirs.id).await, name);
        }
        // Creating a site owned by a user of another tenant.
        let mut stolen = home.site(user, &format!("steal-{name}").replace('_', "-"));
        stolen.owner_id = away.client_of_a.id;
        assert_not_found(store.create_website(&me, stolen).await, name);

        let sites = store.list_websites(&me, page(500)).await.expect("list");
        assert!(sites.items.iter().all(|s| s.tenant_id == home.tenant.id));
        let users = store.list_users(&me, page(500)).await.expect("list");
        assert!(users.items.iter().all(|u| u.tenant_id == home.tenant.id));
        assert_eq!(store.own_tenant(&me).await.expect("own").id, home.tenant.id);
        if user.role == Role::Admin {
            assert_not_found(store.get_alert_rule(&me, their_rule.id).await, name);
            assert_not_found(store.delete_alert_rule(&me, their_rule.id).await, name);
            let rules = store.list_alert_rules(&me, page(500)).await.expect("list");
            assert!(rules.items.iter().all(|r| r.tenant_id == home.tenant.id));
        }
    }
    // The other tenant's rows are untouched.
    assert_eq!(
        store
            .get_website(&caller(&away.admin), their_site.id)
            .await
            .expect("still there"),
        their_site
    );
}

/// What each role sees and may change inside its tenant matches [`rbac`] exactly.
pub async fn roles_scope_what_is_visible(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let as_admin = caller(&w.admin);
    let mut sites: Vec<(&str, &User, Website)> = Vec::new();
    for (name, owner) in w.users() {
        let site = store
            .create_website(
                &as_admin,
                w.site(owner, &format!("own-{name}").replace('_', "-")),
            )
            .await
            .expect("admin creates a site for anyone in the tenant");
        sites.push((name, owner, site));
    }
    for (actor_name, actor) in w.users() {
        let me = caller(actor);
        let visible: BTreeSet<_> = list_all_sites(store, &me).await;
        for (owner_name, owner, site) in &sites {
            let allowed = rbac::can_manage_site(
                &me,
                &rbac::SiteFacts {
                    tenant: owner.tenant_id,
                    owner: owner.id,
                    owner_role: owner.role,
                    owner_created_by: owner.created_by,
                },
            );
            let what = format!("{actor_name} and the site of {owner_name}");
            assert_eq!(visible.contains(&site.id.0), allowed, "list: {what}");
            let got = store.get_website(&me, site.id).await;
            if allowed {
                assert_eq!(got.expect(&what).id, site.id);
            } else {
                assert_not_found(got, &what);
                assert_not_found(store.get_website_by_domain(&me, &site.domain).await, &what);
            }
            // Creating a site for that owner follows the same rule.
            let new = w.site(
                owner,
                &format!("by-{actor_name}-for-{owner_name}").replace('_', "-"),
            );
            let created = store.create_website(&me, new).await;
            if allowed {
                created.expect(&what);
            } else {
                assert!(
                    matches!(
                        created,
                        Err(Error::NotFound { .. } | Error::PermissionDenied(_))
                    ),
                    "create: {what}: {created:?}"
                );
            }
        }
        let visible_users: BTreeSet<_> = store
            .list_users(&me, page(500))
            .await
            .expect("list users")
            .items
            .iter()
            .map(|u| u.id)
            .collect();
        for (target_name, target) in w.users() {
            let facts = rbac::UserFacts {
                tenant: target.tenant_id,
                id: target.id,
                role: target.role,
                created_by: target.created_by,
            };
            assert_eq!(
                visible_users.contains(&target.id),
                rbac::can_view_user(&me, &facts),
                "{actor_name} listing {target_name}"
            );
        }
        let audit = store.list_audit(&me, page(10)).await;
        if actor.role == Role::Admin {
            audit.expect("admin reads the audit log");
        } else {
            assert_denied(audit, actor_name);
        }
    }
}

async fn list_all_sites(store: &dyn PanelStore, me: &Caller) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    let mut request = page(500);
    loop {
        let p = store.list_websites(me, request).await.expect("list");
        ids.extend(p.items.iter().map(|s| s.id.0));
        match p.next_after {
            Some(after) => request.after = Some(after),
            None => return ids,
        }
    }
}

/// Several creates of the same domain at once: exactly one succeeds, the rest are
/// `AlreadyExists`, and exactly one row exists afterwards.
pub async fn concurrent_creates_of_one_domain_have_one_winner(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.admin);
    let new = w.site(&w.admin, "race");
    let attempts = (0..8).map(|_| store.create_website(&me, new.clone()));
    let results = futures::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one create wins: {results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(Error::AlreadyExists { .. })),
            "losers see AlreadyExists: {r:?}"
        );
    }
    let all = list_all_sites(store, &me).await;
    assert_eq!(all.len(), 1, "one row exists");
}

/// Rows that others reference are not deleted out from under them.
pub async fn referenced_rows_cannot_be_deleted(store: &dyn PanelStore) {
    let op = Operator::assume();
    let w = World::create(store).await;
    let site = store
        .create_website(&caller(&w.admin), w.site(&w.client_of_a, "ref"))
        .await
        .expect("create");
    assert_conflict(
        store.delete_tenant(&op, w.tenant.id).await,
        "tenant with users and sites",
    );
    assert_conflict(store.delete_node(&op, w.node.id).await, "node with sites");
    assert_conflict(
        store.delete_user(&caller(&w.admin), w.client_of_a.id).await,
        "user owning a site",
    );
    assert_conflict(
        store.delete_user(&caller(&w.admin), w.reseller_a.id).await,
        "reseller with clients",
    );
    // Nothing was removed.
    store.get_tenant(&op, w.tenant.id).await.expect("tenant");
    store.get_node(&op, w.node.id).await.expect("node");
    store
        .get_website(&caller(&w.admin), site.id)
        .await
        .expect("site");
}

/// A tenant at its website quota, or suspended, gets no new websites, even under concurrent
/// creates; the refused creates leave nothing behind.
pub async fn tenant_limits_are_enforced(store: &dyn PanelStore) {
    let op = Operator::assume();
    let w = World::create(store).await;
    let me = caller(&w.admin);
    store
        .update_tenant(
            &op,
            w.tenant.id,
            TenantChanges {
                quotas: Some(Quotas {
                    max_websites: Some(3),
                    ..w.tenant.quotas
                }),
                ..TenantChanges::default()
            },
        )
        .await
        .expect("set quota");
    let attempts = (0..6).map(|i| store.create_website(&me, w.site(&w.admin, &format!("q{i}"))));
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 3, "exactly the quota is created: {results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(r, Err(Error::Conflict(_))), "over quota: {r:?}");
    }
    assert_eq!(list_all_sites(store, &me).await.len(), 3);

    store
        .update_tenant(
            &op,
            w.tenant.id,
            TenantChanges {
                status: Some(TenantStatus::Suspended),
                quotas: Some(Quotas::default()),
                ..TenantChanges::default()
            },
        )
        .await
        .expect("suspend");
    assert_denied(
        store
            .create_website(&me, w.site(&w.admin, "suspended"))
            .await,
        "a suspended tenant creating a website",
    );
    assert_eq!(list_all_sites(store, &me).await.len(), 3);
}

fn rule_spec(tag: &str, website: Option<crate::model::WebsiteId>) -> AlertRuleSpec {
    AlertRuleSpec {
        name: parse(&format!("High CPU {tag}")),
        metric: MetricKind::CpuPercent,
        website_id: website,
        comparison: Comparison::Above,
        threshold: Threshold::try_from(90.5).expect("finite"),
        for_secs: 300,
        channels: BTreeSet::from([
            NotifyChannel::Webhook {
                url: parse("https://hooks.example.com/alert?x=1"),
            },
            NotifyChannel::Email {
                to: parse("ops@example.com"),
            },
        ]),
        enabled: true,
    }
}

/// Alert rules: admins create, read, list, replace and delete them; others may not.
pub async fn alert_rules_crud(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.admin);
    let site = store
        .create_website(&me, w.site(&w.admin, "alerts"))
        .await
        .expect("site");
    let spec = rule_spec(&w.tag, Some(site.id));
    let rule = store
        .create_alert_rule(&me, spec.clone())
        .await
        .expect("create");
    assert_eq!(rule.spec, spec);
    assert_eq!(rule.tenant_id, w.tenant.id);
    assert_eq!(store.get_alert_rule(&me, rule.id).await.expect("get"), rule);
    assert_exists(
        store.create_alert_rule(&me, spec.clone()).await,
        "duplicate rule name",
    );
    let mut next = spec.clone();
    next.metric = MetricKind::SiteResponseMs;
    next.comparison = Comparison::Below;
    next.threshold = Threshold::try_from(-1.25).expect("finite");
    next.enabled = false;
    next.channels.clear();
    let replaced = store
        .update_alert_rule(&me, rule.id, next.clone())
        .await
        .expect("replace");
    assert_eq!(replaced.spec, next);
    assert_eq!(
        store
            .list_alert_rules(&me, page(10))
            .await
            .expect("list")
            .items,
        vec![replaced]
    );
    for (name, user) in w.users().into_iter().skip(1) {
        assert_denied(
            store
                .create_alert_rule(&caller(user), rule_spec(name, None))
                .await,
            name,
        );
        assert_denied(store.delete_alert_rule(&caller(user), rule.id).await, name);
    }
    // A rule cannot point at a site the tenant does not have.
    let other = World::create(store).await;
    let foreign = store
        .create_website(&caller(&other.admin), other.site(&other.admin, "foreign"))
        .await
        .expect("site");
    let mut bad = rule_spec(&format!("{}x", w.tag), Some(foreign.id));
    bad.name = parse(&format!("Foreign {}", w.tag));
    assert_not_found(
        store.create_alert_rule(&me, bad).await,
        "rule on another tenant's site",
    );
    store.delete_alert_rule(&me, rule.id).await.expect("delete");
    assert_not_found(store.get_alert_rule(&me, rule.id).await, "deleted rule");
}

/// The audit log keeps every field, lists newest-last by id, and each tenant sees its own.
pub async fn audit_log_is_scoped(store: &dyn PanelStore) {
    let op = Operator::assume();
    let home = World::create(store).await;
    let away = World::create(store).await;
    let mine = store
        .append_audit(
            NewAuditEntry::by(
                &caller(&home.admin),
                "website.create",
                "website:1",
                AuditOutcome::Success,
            )
            .from_ip(parse("192.0.2.10"))
            .with_detail("domain shop.example.com"),
        )
        .await
        .expect("append");
    assert_eq!(mine.tenant_id, Some(home.tenant.id));
    assert_eq!(mine.actor_id, Some(home.admin.id));
    assert_eq!(mine.action, "website.create");
    assert_eq!(mine.outcome, AuditOutcome::Success);
    assert_eq!(mine.source_ip, Some(parse("192.0.2.10")));
    assert_eq!(mine.detail, "domain shop.example.com");
    let theirs = store
        .append_audit(NewAuditEntry::by(
            &caller(&away.client_of_a),
            "user.login",
            "user:9",
            AuditOutcome::Denied,
        ))
        .await
        .expect("append");
    let operator = store
        .append_audit(NewAuditEntry::by_operator(
            "tenant.create",
            "tenant:1",
            AuditOutcome::Failed,
        ))
        .await
        .expect("append");
    assert!(operator.id > theirs.id && theirs.id > mine.id);

    let home_log = store
        .list_audit(&caller(&home.admin), page(500))
        .await
        .expect("list");
    assert_eq!(home_log.items, vec![mine.clone()]);
    let mut all = Vec::new();
    let mut request = page(500);
    loop {
        let p = store.list_all_audit(&op, request).await.expect("list all");
        all.extend(p.items);
        match p.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
    }
    for e in [&mine, &theirs, &operator] {
        assert!(all.contains(e), "operator sees {e:?}");
    }
}

/// A web node of its own, named after `tag` and `label`.
async fn extra_node(store: &dyn PanelStore, tag: &str, label: &str) -> Node {
    store
        .create_node(
            &Operator::assume(),
            NewNode {
                name: parse(&format!("{label}-{tag}")),
                address: parse("127.0.0.1:8443"),
                roles: BTreeSet::from([NodeRole::Web]),
            },
        )
        .await
        .expect("create node")
}

/// A created account `name` with uid and gid `uid`.
fn account(tenant: TenantId, node: NodeId, name: &str, uid: u32) -> NewNodeAccount {
    NewNodeAccount {
        tenant_id: tenant,
        node_id: node,
        name: parse(name),
        uid,
        gid: uid,
        origin: AccountOrigin::Created,
    }
}

/// Every account on `node`, walking pages of `size`.
async fn all_node_accounts(store: &dyn PanelStore, node: NodeId, size: u32) -> Vec<NodeAccount> {
    let op = Operator::assume();
    let mut all = Vec::new();
    let mut request = page(size);
    for _ in 0..100 {
        let p = store
            .list_node_accounts(&op, node, request)
            .await
            .expect("list node accounts");
        assert!(p.items.len() <= size as usize);
        all.extend(p.items);
        match p.next_after {
            Some(after) => request.after = Some(after),
            None => return all,
        }
    }
    panic!("pagination of node accounts does not terminate");
}

/// Node accounts: record, read by name (the tenant's users, the operator), list in id-ordered
/// pages, forget; every origin and the whole `u32` range of uids survive the round trip.
pub async fn node_accounts_crud(store: &dyn PanelStore) {
    let op = Operator::assume();
    let w = World::create(store).await;
    let other_node = extra_node(store, &w.tag, "accounts").await;
    let new = NewNodeAccount {
        tenant_id: w.tenant.id,
        node_id: w.node.id,
        name: parse(&format!("a{}", w.tag)),
        uid: u32::MAX,
        gid: u32::MAX - 1,
        origin: AccountOrigin::Adopted,
    };
    let recorded = store
        .record_node_account(&op, new.clone())
        .await
        .expect("record");
    assert_eq!(
        (
            recorded.tenant_id,
            recorded.node_id,
            &recorded.name,
            recorded.uid,
            recorded.gid,
            recorded.origin
        ),
        (
            new.tenant_id,
            new.node_id,
            &new.name,
            new.uid,
            new.gid,
            new.origin
        )
    );
    for (who, user) in w.users() {
        assert_eq!(
            store
                .get_node_account(&caller(user), w.node.id, &new.name)
                .await
                .unwrap_or_else(|e| panic!("{who} reads its tenant's account: {e:?}")),
            recorded
        );
    }
    assert_eq!(
        store
            .find_node_account(&op, w.node.id, &new.name)
            .await
            .expect("find"),
        Some(recorded.clone())
    );
    assert_eq!(
        store
            .find_node_account(&op, other_node.id, &new.name)
            .await
            .expect("find on another node"),
        None,
        "an account belongs to one node"
    );
    assert_not_found(
        store
            .get_node_account(&caller(&w.admin), other_node.id, &new.name)
            .await,
        "the name on another node",
    );
    assert_eq!(
        store
            .find_node_account(&op, w.node.id, &parse(&format!("b{}", w.tag)))
            .await
            .expect("find an unknown name"),
        None
    );

    let mut expected = vec![recorded.clone()];
    for (i, origin) in [
        AccountOrigin::Created,
        AccountOrigin::Shared,
        AccountOrigin::Created,
        AccountOrigin::Adopted,
    ]
    .into_iter()
    .enumerate()
    {
        let uid = 20_000 + u32::try_from(i).expect("small");
        let mut next = account(w.tenant.id, w.node.id, &format!("a{}-{i}", w.tag), uid);
        next.origin = origin;
        let made = store
            .record_node_account(&op, next)
            .await
            .expect("record more");
        assert_eq!(made.origin, origin);
        expected.push(made);
    }
    store
        .record_node_account(
            &op,
            account(w.tenant.id, other_node.id, "elsewhere", 20_000),
        )
        .await
        .expect("an account on another node");
    for size in [1, 2, 500] {
        assert_eq!(
            all_node_accounts(store, w.node.id, size).await,
            expected,
            "pages of {size}: every account of the node once, in id order"
        );
    }

    store
        .delete_node_account(&op, recorded.id)
        .await
        .expect("delete");
    assert_eq!(
        store
            .find_node_account(&op, w.node.id, &new.name)
            .await
            .expect("find"),
        None
    );
    assert_not_found(
        store
            .get_node_account(&caller(&w.admin), w.node.id, &new.name)
            .await,
        "a forgotten account",
    );
    assert_not_found(
        store.delete_node_account(&op, recorded.id).await,
        "delete twice",
    );
    assert_not_found(
        store
            .delete_node_account(&op, NodeAccountId(i64::MAX))
            .await,
        "delete an unknown account",
    );
    assert_eq!(
        all_node_accounts(store, w.node.id, 500).await,
        expected[1..]
    );

    assert_not_found(
        store
            .record_node_account(
                &op,
                account(TenantId(i64::MAX), w.node.id, "orphan", 30_000),
            )
            .await,
        "an unknown tenant",
    );
    assert_not_found(
        store
            .record_node_account(
                &op,
                account(w.tenant.id, NodeId(i64::MAX), "orphan", 30_000),
            )
            .await,
        "an unknown node",
    );
}

/// A name, and a uid, names one account per node, whichever tenant asks, also under
/// concurrent records; another node may reuse both. A refused record writes nothing.
pub async fn node_account_names_and_uids_are_unique_per_node(store: &dyn PanelStore) {
    let op = Operator::assume();
    let w = World::create(store).await;
    let other = World::create(store).await;
    let name = format!("u{}", w.tag);
    let first = store
        .record_node_account(&op, account(w.tenant.id, w.node.id, &name, 21_000))
        .await
        .expect("record");
    assert_exists(
        store
            .record_node_account(&op, account(w.tenant.id, w.node.id, &name, 21_001))
            .await,
        "the same name with another uid",
    );
    assert_exists(
        store
            .record_node_account(
                &op,
                account(w.tenant.id, w.node.id, &format!("{name}-2"), 21_000),
            )
            .await,
        "the same uid under another name",
    );
    assert_exists(
        store
            .record_node_account(&op, account(other.tenant.id, w.node.id, &name, 21_002))
            .await,
        "the same name for another tenant",
    );
    assert_eq!(
        all_node_accounts(store, w.node.id, 500).await,
        vec![first.clone()],
        "refused records write nothing"
    );
    let reused = store
        .record_node_account(&op, account(other.tenant.id, other.node.id, &name, 21_000))
        .await
        .expect("another node reuses the name and the uid");
    assert_eq!((reused.name, reused.uid), (first.name, first.uid));

    let race = format!("r{}", w.tag);
    let attempts = (0..8).map(|i| {
        store.record_node_account(&op, account(w.tenant.id, w.node.id, &race, 22_000 + i))
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one record wins: {results:?}"
    );
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(Error::AlreadyExists { .. })),
            "losers see AlreadyExists: {r:?}"
        );
    }
    assert_eq!(all_node_accounts(store, w.node.id, 500).await.len(), 2);
}

/// Another tenant's account is, to a caller, indistinguishable from none; the operator finds
/// it.
pub async fn node_accounts_are_scoped_to_their_tenant(store: &dyn PanelStore) {
    let op = Operator::assume();
    let home = World::create(store).await;
    let away = World::create(store).await;
    let theirs = store
        .record_node_account(
            &op,
            account(
                away.tenant.id,
                home.node.id,
                &format!("x{}", away.tag),
                23_000,
            ),
        )
        .await
        .expect("record");
    for (who, user) in home.users() {
        assert_not_found(
            store
                .get_node_account(&caller(user), home.node.id, &theirs.name)
                .await,
            &format!("{who} reading another tenant's account"),
        );
    }
    assert_eq!(
        store
            .get_node_account(&caller(&away.client_of_a), home.node.id, &theirs.name)
            .await
            .expect("its tenant reads it"),
        theirs
    );
    assert_eq!(
        store
            .find_node_account(&op, home.node.id, &theirs.name)
            .await
            .expect("find"),
        Some(theirs)
    );
}

/// Deleting a tenant forgets its accounts; a node on which the panel keeps accounts is not
/// deleted (`Conflict`) until they are gone.
pub async fn node_accounts_go_with_their_tenant_and_keep_their_node(store: &dyn PanelStore) {
    let op = Operator::assume();
    let tag = unique_suffix();
    let tenant = store
        .create_tenant(
            &op,
            NewTenant {
                name: parse(&format!("Leaving {tag}")),
                slug: parse(&format!("leaving-{tag}")),
                quotas: Quotas::default(),
            },
        )
        .await
        .expect("create tenant");
    let keeper = World::create(store).await;
    let node = extra_node(store, &tag, "leaving").await;
    let gone = store
        .record_node_account(&op, account(tenant.id, node.id, &format!("g{tag}"), 24_000))
        .await
        .expect("record");
    let kept = store
        .record_node_account(
            &op,
            account(keeper.tenant.id, node.id, &format!("k{tag}"), 24_001),
        )
        .await
        .expect("record");
    assert_conflict(store.delete_node(&op, node.id).await, "node with accounts");
    store.get_node(&op, node.id).await.expect("the node stays");

    store
        .delete_tenant(&op, tenant.id)
        .await
        .expect("delete the tenant");
    assert_eq!(
        store
            .find_node_account(&op, node.id, &gone.name)
            .await
            .expect("find"),
        None,
        "the tenant's account is forgotten"
    );
    assert_eq!(
        all_node_accounts(store, node.id, 500).await,
        vec![kept.clone()],
        "other tenants' accounts stay"
    );
    assert_conflict(
        store.delete_node(&op, node.id).await,
        "node with another tenant's account",
    );
    store
        .delete_node_account(&op, kept.id)
        .await
        .expect("forget");
    store
        .delete_node(&op, node.id)
        .await
        .expect("a node without accounts is deleted");
}

/// Hostile strings are refused by the types, so they can never be bound into SQL; and a store
/// holding rows keeps them intact after hostile input is thrown at the boundary.
pub async fn hostile_values_never_reach_the_store(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let me = caller(&w.admin);
    let before = list_all_sites(store, &me).await;
    let hostile_domains = [
        "evil.com; rm -rf /",
        "evil.com\nserver { }",
        "a..b.com",
        "evil.com' OR '1'='1",
        "evil\".com",
        "-evil.com",
        "evil.com.",
        "$(reboot).com",
        "evil.com`id`",
        "evil.com|x",
        "1.2.3.4",
        "evil.com\r\nHost: x",
        "ev il.com",
        "{evil}.com",
        "100%.com",
    ];
    for raw in hostile_domains {
        assert!(DomainName::from_str(raw).is_err(), "{raw:?} must not parse");
        let via_serde: Result<DomainName, serde::de::value::Error> =
            DomainName::deserialize(raw.into_deserializer());
        assert!(via_serde.is_err(), "{raw:?} must not deserialize");
    }
    for raw in ["x'; DROP TABLE users; --", "a\"b", "a`b", "../etc", "mysql"] {
        assert!(SystemUser::from_str(raw).is_err(), "{raw:?}");
        assert!(crate::types::DbName::from_str(raw).is_err(), "{raw:?}");
    }
    assert!(
        SystemUser::from_str("root").is_err(),
        "system accounts are reserved"
    );
    for raw in ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "a\0b"] {
        assert!(
            crate::types::ConfinedPath::from_str(raw).is_err(),
            "{raw:?}"
        );
    }
    assert!(PhpBytes::from_str("128M\nmemory_limit=-1").is_err());
    assert!(crate::types::IniValue::from_str("1\nphp_admin_value[x]=y").is_err());
    assert_eq!(list_all_sites(store, &me).await, before, "nothing changed");
}

async fn all_operations(store: &dyn PanelStore, node: NodeId) -> Vec<Operation> {
    let op = Operator::assume();
    let mut out = Vec::new();
    let mut request = page(2);
    loop {
        let found = store
            .list_operations(&op, request)
            .await
            .expect("list operations");
        out.extend(found.items);
        match found.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
    }
    let ids: Vec<i64> = out.iter().map(|o| o.id.0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "operations are listed once each, oldest first");
    out.retain(|o| o.node_id == node);
    out
}

/// The saga journal: a change begun is listed with what it made; each step moves it (website,
/// step and state written together); it outlives the website it names; ending it removes it,
/// and moving or ending an unknown one is `NotFound`.
pub async fn the_saga_journal_keeps_changes_in_flight(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let op = Operator::assume();
    let me = caller(&w.admin);
    let new = w.site(&w.admin, "journal");
    let first = store
        .begin_operation(
            &op,
            NewOperation {
                tenant_id: w.tenant.id,
                user_id: w.admin.id,
                node_id: w.node.id,
                website_id: None,
                kind: OperationKind::Create,
                step: SagaStep::Account,
                state: OperationState {
                    domain: Some(new.domain.clone()),
                    ..OperationState::default()
                },
            },
        )
        .await
        .expect("begin a creation");
    assert_eq!(
        (
            first.kind,
            first.step,
            first.website_id,
            first.tenant_id,
            first.user_id
        ),
        (
            OperationKind::Create,
            SagaStep::Account,
            None,
            w.tenant.id,
            w.admin.id
        )
    );
    assert_eq!(first.state.domain.as_ref(), Some(&new.domain));
    let site = store
        .create_website(&me, new.clone())
        .await
        .expect("create site");
    let state = OperationState {
        domain: Some(new.domain.clone()),
        account: Some(OperationAccount {
            name: new.system_user.clone(),
            made: true,
        }),
        database: Some(DatabaseSettings {
            engine: crate::types::DbEngine::MariaDb,
            name: parse(&format!("t{}_shop", w.tag.replace('-', "_"))),
            charset: parse("utf8mb4"),
            collation: parse("utf8mb4_unicode_ci"),
        }),
        site: Some(Box::new(site.clone())),
    };
    store
        .advance_operation(&op, first.id, Some(site.id), SagaStep::Database, &state)
        .await
        .expect("advance");
    let second = store
        .begin_operation(
            &op,
            NewOperation {
                tenant_id: w.tenant.id,
                user_id: w.admin.id,
                node_id: w.node.id,
                website_id: Some(site.id),
                kind: OperationKind::Delete,
                step: SagaStep::Deploy,
                state: OperationState {
                    site: Some(Box::new(site.clone())),
                    ..OperationState::default()
                },
            },
        )
        .await
        .expect("begin a deletion");
    let listed = all_operations(store, w.node.id).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let moved = &listed[0];
    assert_eq!(moved.id, first.id);
    assert_eq!(
        (moved.step, moved.website_id, &moved.state),
        (SagaStep::Database, Some(site.id), &state),
        "the step, website and state were written together"
    );
    assert!(moved.updated_at >= moved.started_at);
    assert_eq!(listed[1].kind, OperationKind::Delete);
    store.delete_website(&me, site.id).await.expect("delete");
    let after = all_operations(store, w.node.id).await;
    assert_eq!(after.len(), 2, "the journal outlives the website");
    assert_eq!(after[1].state.site.as_deref(), Some(&site));
    store.end_operation(&op, first.id).await.expect("end");
    store.end_operation(&op, second.id).await.expect("end");
    assert!(all_operations(store, w.node.id).await.is_empty());
    assert_not_found(store.end_operation(&op, first.id).await, "ending twice");
    assert_not_found(
        store
            .advance_operation(&op, OperationId(i64::MAX), None, SagaStep::Files, &state)
            .await,
        "moving an unknown change",
    );
}

/// A failure reason is written with the failed status, read only by callers who manage the
/// site, kept by a change that leaves the site failed and cleared by any other status.
pub async fn failure_reasons_are_kept_scoped_and_cleared(store: &dyn PanelStore) {
    let w = World::create(store).await;
    let op = Operator::assume();
    let admin = caller(&w.admin);
    let owner = caller(&w.client_of_a);
    let site = store
        .create_website(&owner, w.site(&w.client_of_a, "failing"))
        .await
        .expect("create");
    let other = store
        .create_website(&owner, w.site(&w.client_of_a, "fine"))
        .await
        .expect("create");
    let ids = [site.id, other.id, WebsiteId(i64::MAX)];
    assert!(
        store
            .website_failures(&owner, &ids)
            .await
            .expect("failures")
            .is_empty()
    );
    let failed = store
        .fail_website(&op, site.id, "its creation was interrupted")
        .await
        .expect("fail");
    assert_eq!(failed.status, WebsiteStatus::Failed);
    let expected = vec![crate::model::WebsiteFailure {
        website_id: site.id,
        reason: "its creation was interrupted".into(),
    }];
    for who in [&owner, &admin, &caller(&w.reseller_a)] {
        assert_eq!(
            store.website_failures(who, &ids).await.expect("failures"),
            expected
        );
    }
    for who in [caller(&w.client_of_b), caller(&w.reseller_b)] {
        assert!(
            store
                .website_failures(&who, &ids)
                .await
                .expect("failures")
                .is_empty(),
            "a caller who does not manage the site sees no reason"
        );
    }
    let stranger = World::create(store).await;
    assert!(
        store
            .website_failures(&caller(&stranger.admin), &ids)
            .await
            .expect("failures")
            .is_empty(),
        "another tenant sees no reason"
    );
    assert_not_found(
        store.fail_website(&op, WebsiteId(i64::MAX), "x").await,
        "an unknown site",
    );
    let restored = store
        .update_website(
            &admin,
            site.id,
            WebsiteChanges {
                status: Some(WebsiteStatus::Failed),
                ..WebsiteChanges::default()
            },
        )
        .await
        .expect("restore a failed record");
    assert_eq!(restored.status, WebsiteStatus::Failed);
    assert_eq!(
        store
            .website_failures(&owner, &ids)
            .await
            .expect("failures"),
        expected,
        "a change that leaves it failed keeps the reason"
    );
    store
        .set_website_status(&op, site.id, WebsiteStatus::Active)
        .await
        .expect("retried");
    assert!(
        store
            .website_failures(&owner, &ids)
            .await
            .expect("failures")
            .is_empty(),
        "another status clears the reason"
    );
    store
        .fail_website(&op, site.id, "again")
        .await
        .expect("fail");
    store
        .update_website(
            &admin,
            site.id,
            WebsiteChanges {
                status: Some(WebsiteStatus::Suspended),
                ..WebsiteChanges::default()
            },
        )
        .await
        .expect("suspend");
    assert!(
        store
            .website_failures(&admin, &ids)
            .await
            .expect("failures")
            .is_empty(),
        "a status written by an update clears it too"
    );
    for id in [site.id, other.id] {
        store.delete_website(&admin, id).await.expect("delete");
    }
}
