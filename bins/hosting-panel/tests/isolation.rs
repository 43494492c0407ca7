//! Tenant isolation over HTTP: two tenants with an admin, a reseller and clients each. Reads
//! and writes across tenants (and outside a reseller's or client's own scope) are 404, so ids
//! cannot be probed; lists hold only what the caller may see. Also: website creation on a
//! node without a web server is a clear 4xx naming what to install.
#![allow(clippy::expect_used)]

mod common;

use common::{Store, TestPanel};
use hosting_core::Caller;
use hosting_core::model::{NewWebsite, Role, TenantId, UserId, WebsiteSettings};
use reqwest::Method;
use serde_json::{Value, json};

// Each body below runs on SQLite, PostgreSQL and MariaDB: `name::{sqlite,postgres,mariadb}`.
common::on_every_store!(
    tenants_cannot_see_or_touch_each_other,
    websites_need_a_node_that_runs_their_web_server,
);

struct Tenant {
    id: i64,
    admin: String,
    reseller: String,
    client: String,
    client_id: i64,
    reseller_id: i64,
    reseller_client_id: i64,
    website: i64,
    token: i64,
}

async fn tenant(panel: &TestPanel, operator: &str, slug: &str) -> Tenant {
    let id = panel.tenant(operator, slug).await;
    let password = "tenant-password-1";
    let admin_id = panel
        .tenant_user(
            operator,
            id,
            "admin",
            &format!("admin@{slug}.example"),
            password,
        )
        .await;
    let admin = panel
        .login(&format!("admin@{slug}.example"), password)
        .await;
    let reseller_id = panel
        .user(
            &admin,
            "reseller",
            &format!("reseller@{slug}.example"),
            password,
        )
        .await;
    let client_id = panel
        .user(
            &admin,
            "client",
            &format!("client@{slug}.example"),
            password,
        )
        .await;
    let reseller = panel
        .login(&format!("reseller@{slug}.example"), password)
        .await;
    let reseller_client_id = panel
        .user(
            &reseller,
            "client",
            &format!("rclient@{slug}.example"),
            password,
        )
        .await;
    let client = panel
        .login(&format!("client@{slug}.example"), password)
        .await;
    // Website records straight into the store: this node has no web server to deploy to.
    let caller = Caller {
        tenant: TenantId(id),
        user: UserId(admin_id),
        role: Role::Admin,
    };
    let site = panel
        .panel()
        .store()
        .create_website(
            &caller,
            NewWebsite {
                owner_id: UserId(client_id),
                domain: format!("{slug}.example.com").parse().expect("domain"),
                aliases: Vec::new(),
                node_id: panel.server.node.id,
                web_server: "nginx".parse().expect("kind"),
                php_version: None,
                system_user: format!("{slug}site").parse().expect("user"),
                document_root: "public".parse().expect("root"),
                settings: WebsiteSettings::default(),
            },
        )
        .await
        .expect("website record");
    let token = panel
        .post(
            "/api/v1/tokens",
            &admin,
            &json!({"name": "ci", "permissions": ["websites_read"],
                    "current_password": password}),
        )
        .await
        .expect(201);
    Tenant {
        id,
        admin,
        reseller,
        client,
        client_id,
        reseller_id,
        reseller_client_id,
        website: site.id.0,
        token: token.body["token"]["id"].as_i64().expect("token id"),
    }
}

/// Every request that reads or changes one of `other`'s records, by id.
fn reaching_into(other: &Tenant) -> Vec<(Method, String, Option<Value>)> {
    let site = other.website;
    let user = other.client_id;
    vec![
        (Method::GET, format!("/api/v1/websites/{site}"), None),
        (
            Method::PATCH,
            format!("/api/v1/websites/{site}"),
            Some(json!({"aliases": ["stolen.example.com"]})),
        ),
        (Method::DELETE, format!("/api/v1/websites/{site}"), None),
        (
            Method::POST,
            format!("/api/v1/websites/{site}/suspend"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/websites/{site}/resume"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/websites/{site}/php"),
            Some(json!({"php_version": null})),
        ),
        (
            Method::POST,
            format!("/api/v1/websites/{site}/web-server"),
            Some(json!({"web_server": "nginx"})),
        ),
        (
            Method::POST,
            format!("/api/v1/websites/{site}/database/rotate-password"),
            None,
        ),
        (Method::GET, format!("/api/v1/users/{user}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{user}"),
            Some(json!({"status": "suspended"})),
        ),
        (
            Method::PUT,
            format!("/api/v1/users/{user}/password"),
            Some(json!({"password": "taken-over-1"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{user}"), None),
        (
            Method::DELETE,
            format!("/api/v1/tokens/{}", other.token),
            None,
        ),
        (Method::GET, format!("/api/v1/tenants/{}", other.id), None),
    ]
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().filter_map(|i| i["id"].as_i64()).collect()
}

async fn tenants_cannot_see_or_touch_each_other(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let a = tenant(&panel, &operator, "alpha").await;
    let b = tenant(&panel, &operator, "beta").await;

    for (name, token) in [
        ("admin", &b.admin),
        ("reseller", &b.reseller),
        ("client", &b.client),
    ] {
        for (method, path, body) in reaching_into(&a) {
            let answer = panel
                .send(method.clone(), &path, Some(token), body.as_ref())
                .await;
            assert_eq!(
                answer.status.as_u16(),
                404,
                "beta's {name}: {method} {path}: {}",
                answer.text
            );
            answer.expect_client_error(&path);
            assert_eq!(answer.code(), "not_found");
        }
        // Lists hold nothing of alpha's.
        let users = ids(&panel.list_all("/api/v1/users", token).await);
        assert!(
            !users.contains(&a.client_id) && !users.contains(&a.reseller_id),
            "{name}"
        );
        let sites = ids(&panel.list_all("/api/v1/websites", token).await);
        assert!(!sites.contains(&a.website), "{name}");
        // Tenant writes are the operator's, for every tenant.
        let answer = panel
            .send(
                Method::PATCH,
                &format!("/api/v1/tenants/{}", a.id),
                Some(token),
                Some(&json!({"name": "mine now"})),
            )
            .await;
        assert!(
            matches!(answer.status.as_u16(), 403 | 404),
            "{name}: {}",
            answer.text
        );
        for path in ["/api/v1/tenants", "/api/v1/nodes"] {
            let answer = panel
                .send(
                    Method::POST,
                    path,
                    Some(token),
                    Some(&json!({"name": "x", "slug": "x", "address": "10.0.0.1", "roles": []})),
                )
                .await;
            assert!(
                matches!(answer.status.as_u16(), 403 | 422),
                "{name} {path}: {}",
                answer.text
            );
        }
    }
    // Beta's admin sees its own tenant, its own audit entries, its own token.
    let own = panel
        .get(&format!("/api/v1/tenants/{}", b.id), &b.admin)
        .await
        .expect(200);
    assert_eq!(own.body["slug"], "beta");
    panel.get("/api/v1/tenants", &b.admin).await.expect(403);
    let audit = panel.list_all("/api/v1/audit", &b.admin).await;
    assert!(!audit.is_empty());
    assert!(audit.iter().all(|e| e["tenant_id"] == b.id), "{audit:?}");
    let tokens = ids(&panel.list_all("/api/v1/tokens", &b.admin).await);
    assert_eq!(tokens, vec![b.token]);

    // Alpha's own people see what their role allows.
    panel
        .get(&format!("/api/v1/websites/{}", a.website), &a.admin)
        .await
        .expect(200);
    panel
        .get(&format!("/api/v1/websites/{}", a.website), &a.client)
        .await
        .expect(200);
    // A reseller sees its own clients, not the admin's.
    panel
        .get(
            &format!("/api/v1/users/{}", a.reseller_client_id),
            &a.reseller,
        )
        .await
        .expect(200);
    for path in [
        format!("/api/v1/users/{}", a.client_id),
        format!("/api/v1/websites/{}", a.website),
    ] {
        panel.get(&path, &a.reseller).await.expect(404);
    }
    // A client sees only itself.
    for path in [
        format!("/api/v1/users/{}", a.reseller_id),
        format!("/api/v1/users/{}", a.reseller_client_id),
    ] {
        panel.get(&path, &a.client).await.expect(404);
    }
    let client_users = ids(&panel.list_all("/api/v1/users", &a.client).await);
    assert_eq!(client_users, vec![a.client_id]);
    // A client cannot create users or change the admin's password.
    let answer = panel
        .post(
            "/api/v1/users",
            &a.client,
            &json!({"role": "client", "email": "new@alpha.example"}),
        )
        .await
        .expect(403);
    assert_eq!(answer.code(), "permission_denied");

    // The records reached for are intact.
    panel
        .get(&format!("/api/v1/users/{}", a.client_id), &a.admin)
        .await
        .expect(200);
    let tokens = ids(&panel.list_all("/api/v1/tokens", &a.admin).await);
    assert_eq!(tokens, vec![a.token]);
    let site = panel
        .get(&format!("/api/v1/websites/{}", a.website), &a.admin)
        .await
        .expect(200);
    assert_eq!(site.body["aliases"], json!([]));
}

async fn websites_need_a_node_that_runs_their_web_server(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let t = tenant(&panel, &operator, "gamma").await;
    let before = panel.list_all("/api/v1/websites", &operator).await;
    let local = panel.server.node.id.0;
    let body = |node: i64, domain: &str| {
        json!({
            "owner_id": t.client_id,
            "domain": domain,
            "node_id": node,
            "web_server": "nginx",
            "php_version": "8.2",
            "system_user": "gammashop",
            "document_root": "public",
        })
    };
    // The local node runs no nginx here (node.nginx = ""): say what to install.
    let answer = panel
        .post(
            "/api/v1/websites",
            &t.admin,
            &body(local, "shop.gamma.example"),
        )
        .await
        .expect(422);
    answer.expect_client_error("no web server");
    assert_eq!(answer.field(), Some("web_server"));
    let message = answer.body["error"]["message"].as_str().expect("message");
    assert!(message.contains("apt-get install nginx"), "{message}");
    assert!(message.contains("node.nginx"), "{message}");
    // A static site on the same node: the same clear refusal.
    let mut static_site = body(local, "static.gamma.example");
    static_site["php_version"] = Value::Null;
    panel
        .post("/api/v1/websites", &t.admin, &static_site)
        .await
        .expect(422);
    // A node recorded without backends attached: a conflict that says so.
    let node = panel
        .post(
            "/api/v1/nodes",
            &operator,
            &json!({"name": "remote-1", "address": "10.0.0.7:8443", "roles": ["web"]}),
        )
        .await
        .expect(201);
    let remote = node.body["id"].as_i64().expect("node id");
    let answer = panel
        .post(
            "/api/v1/websites",
            &t.admin,
            &body(remote, "remote.gamma.example"),
        )
        .await
        .expect(409);
    answer.expect_client_error("no backends");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("no backends attached"),
        "{}",
        answer.text
    );
    // Changing an existing site on a node without nginx is refused the same way, and the
    // record stays as it was.
    let answer = panel
        .send(
            Method::PATCH,
            &format!("/api/v1/websites/{}", t.website),
            Some(&t.admin),
            Some(&json!({"aliases": ["www.gamma.example.com"]})),
        )
        .await
        .expect(422);
    assert!(
        answer.text.contains("apt-get install nginx"),
        "{}",
        answer.text
    );
    let site = panel
        .get(&format!("/api/v1/websites/{}", t.website), &t.admin)
        .await
        .expect(200);
    assert_eq!(site.body["aliases"], json!([]));
    // A site without a database has no password to rotate.
    panel
        .post(
            &format!("/api/v1/websites/{}/database/rotate-password", t.website),
            &t.admin,
            &json!({}),
        )
        .await
        .expect(409);
    assert_eq!(panel.list_all("/api/v1/websites", &operator).await, before);
    // Every user may ask what PHP a node has; here none.
    let php = panel
        .get(&format!("/api/v1/nodes/{local}/php-versions"), &t.client)
        .await
        .expect(200);
    assert_eq!(php.body["items"], json!([]));
    // Applying the local node is a job the worker runs.
    let job = panel
        .send(
            Method::POST,
            &format!("/api/v1/nodes/{local}/apply"),
            Some(&operator),
            None,
        )
        .await
        .expect(202);
    let job_id = job.body["id"].as_i64().expect("job id");
    let mut attempted = Value::Null;
    for _ in 0..100 {
        let job = panel
            .get(&format!("/api/v1/jobs/{job_id}"), &operator)
            .await
            .expect(200);
        if job.body["attempts"].as_i64().unwrap_or(0) >= 1 && job.body["status"] != "running" {
            attempted = job.body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!attempted.is_null(), "the worker never ran the job");
    // The node cannot serve its nginx site: the attempt failed, says why, and is retried.
    assert_eq!(attempted["status"], "queued", "{attempted}");
    assert!(
        attempted["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("nginx")),
        "{attempted}"
    );
    // A tenant admin cannot see the operator's jobs.
    panel
        .get(&format!("/api/v1/jobs/{job_id}"), &t.admin)
        .await
        .expect(404);
}
