//! Repeated reads answered from memory are always what a fresh read returns: every write,
//! through the store or the API, is seen by the next read, also while other clients keep
//! reading; one actor's kept answer is never served to another actor; an unchanged answer is a
//! 304 to `If-None-Match`; a second panel process on the same store is refused (SQLite) or
//! its writes are seen (PostgreSQL through its change feed, MariaDB by keeping nothing).
#![allow(clippy::expect_used)]

mod common;

use common::{Store, TestPanel};
use hosting_core::Caller;
use hosting_core::model::{
    NewWebsite, Role, TenantId, UserId, WebsiteChanges, WebsiteId, WebsiteSettings, WebsiteStatus,
};
use hosting_core::rbac::Operator;
use reqwest::Method;
use serde_json::{Value, json};

// Each body below runs on SQLite, PostgreSQL and MariaDB: `name::{sqlite,postgres,mariadb}`.
common::on_every_store!(
    kept_answers_follow_every_write,
    kept_answers_follow_writes_under_concurrent_reads,
    kept_answers_are_never_another_actors,
    unchanged_answers_are_304,
    another_panels_writes_are_seen,
);

/// A tenant with an admin (logged in) and a client; `caller` is the admin.
struct Tenant {
    admin: String,
    client: String,
    client_id: UserId,
    caller: Caller,
}

async fn tenant(panel: &TestPanel, slug: &str) -> Tenant {
    let operator = panel.admin().await;
    let id = panel.tenant(&operator, slug).await;
    let password = "tenant-password-1";
    let admin_email = format!("admin@{slug}.example");
    let admin_id = panel
        .tenant_user(&operator, id, "admin", &admin_email, password)
        .await;
    let admin = panel.login(&admin_email, password).await;
    let client_email = format!("client@{slug}.example");
    let client_id = panel.user(&admin, "client", &client_email, password).await;
    let client = panel.login(&client_email, password).await;
    Tenant {
        admin,
        client,
        client_id: UserId(client_id),
        caller: Caller {
            tenant: TenantId(id),
            user: UserId(admin_id),
            role: Role::Admin,
        },
    }
}

/// A website record straight into the panel's store (this node has no web server to deploy
/// to): a write the API did not make, which the next read must still see.
async fn create_site(panel: &TestPanel, t: &Tenant, owner: UserId, name: &str) -> WebsiteId {
    panel
        .panel()
        .store()
        .create_website(
            &t.caller,
            NewWebsite {
                owner_id: owner,
                domain: format!("{name}.example.com").parse().expect("domain"),
                aliases: Vec::new(),
                node_id: panel.server.node.id,
                web_server: "nginx".parse().expect("kind"),
                php_version: None,
                system_user: name.parse().expect("user"),
                document_root: "public".parse().expect("root"),
                settings: WebsiteSettings::default(),
            },
        )
        .await
        .expect("website record")
        .id
}

fn domains(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["domain"].as_str().expect("domain").to_owned())
        .collect()
}

async fn kept_answers_follow_every_write(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let t = tenant(&panel, "cachew").await;
    let mut expected = Vec::new();
    for i in 0..6 {
        // Asked twice: the second answer may come from memory, and must equal the first.
        let first = panel.get("/api/v1/websites", &t.admin).await.expect(200);
        let again = panel.get("/api/v1/websites", &t.admin).await.expect(200);
        assert_eq!(first.text, again.text);
        assert_eq!(domains(&first.body), expected);

        let name = format!("cachew{i}");
        let id = create_site(&panel, &t, t.caller.user, &name).await;
        expected.push(format!("{name}.example.com"));
        let after = panel.get("/api/v1/websites", &t.admin).await.expect(200);
        assert_eq!(
            domains(&after.body),
            expected,
            "a created site is listed at once"
        );

        let path = format!("/api/v1/websites/{}", id.0);
        let one = panel.get(&path, &t.admin).await.expect(200);
        assert_eq!(one.body["document_root"], "public");
        panel
            .panel()
            .store()
            .update_website(
                &t.caller,
                id,
                WebsiteChanges {
                    document_root: Some("web/current".parse().expect("root")),
                    ..WebsiteChanges::default()
                },
            )
            .await
            .expect("update");
        let one = panel.get(&path, &t.admin).await.expect(200);
        assert_eq!(
            one.body["document_root"], "web/current",
            "an update is seen at once"
        );

        panel
            .panel()
            .store()
            .set_website_status(&Operator::assume(), id, WebsiteStatus::Suspended)
            .await
            .expect("suspend");
        let one = panel.get(&path, &t.admin).await.expect(200);
        assert_eq!(one.body["status"], "suspended");
    }
    // A deletion through the API: gone from both reads at once.
    let list = panel.get("/api/v1/websites", &t.admin).await.expect(200);
    let last = list.body["items"][5]["id"].as_i64().expect("id");
    let path = format!("/api/v1/websites/{last}");
    panel.get(&path, &t.admin).await.expect(200);
    let gone = panel
        .send(Method::DELETE, &path, Some(&t.admin), None)
        .await;
    // Without a web server the node cannot remove the site's vhost; whatever the answer, the
    // reads that follow must agree with the store.
    let stored = panel
        .panel()
        .store()
        .get_website(&t.caller, WebsiteId(last))
        .await;
    let now = panel.get(&path, &t.admin).await;
    match stored {
        Ok(_) => assert_eq!(now.status.as_u16(), 200, "delete answered {}", gone.text),
        Err(_) => assert_eq!(now.status.as_u16(), 404, "deleted, yet still served"),
    }
    panel.server.shutdown().await;
}

async fn kept_answers_follow_writes_under_concurrent_reads(store: Store) {
    let panel = std::sync::Arc::new(TestPanel::start_on(store, "").await);
    let t = tenant(&panel, "cachec").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (panel, token, stop) = (panel.clone(), t.admin.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                panel.get("/api/v1/websites", &token).await.expect(200);
                reads += 1;
            }
            reads
        }));
    }
    for i in 0..15 {
        let name = format!("cachec{i}");
        create_site(&panel, &t, t.caller.user, &name).await;
        // The write has returned: no reader may now be given an answer without it.
        let list = panel.get("/api/v1/websites", &t.admin).await.expect(200);
        assert_eq!(
            domains(&list.body).len(),
            i + 1,
            "site {i} missing right after its write: {}",
            list.text
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.expect("reader") > 0);
    }
}

async fn kept_answers_are_never_another_actors(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let t = tenant(&panel, "cachea").await;
    create_site(&panel, &t, t.caller.user, "cacheaadmin").await;
    create_site(&panel, &t, t.client_id, "cacheaclient").await;

    let reader = panel
        .post(
            "/api/v1/tokens",
            &t.admin,
            &json!({"name": "reader", "permissions": ["websites_read"],
                    "current_password": "tenant-password-1"}),
        )
        .await
        .expect(201);
    let reader = reader.body["secret"].as_str().expect("secret").to_owned();
    let jobs_only = panel
        .post(
            "/api/v1/tokens",
            &t.admin,
            &json!({"name": "jobs", "permissions": ["jobs_read"],
                    "current_password": "tenant-password-1"}),
        )
        .await
        .expect(201);
    let jobs_only = jobs_only.body["secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    for _ in 0..2 {
        let admin = panel.get("/api/v1/websites", &t.admin).await.expect(200);
        assert_eq!(
            domains(&admin.body),
            ["cacheaadmin.example.com", "cacheaclient.example.com"]
        );
        let client = panel.get("/api/v1/websites", &t.client).await.expect(200);
        assert_eq!(domains(&client.body), ["cacheaclient.example.com"]);
        let token = panel.get("/api/v1/websites", &reader).await.expect(200);
        assert_eq!(token.text, admin.text);
        let refused = panel.get("/api/v1/websites", &jobs_only).await;
        assert_eq!(refused.status.as_u16(), 403, "{}", refused.text);
    }
    let admin_site = panel.get("/api/v1/websites", &t.admin).await.body["items"][0]["id"]
        .as_i64()
        .expect("id");
    let path = format!("/api/v1/websites/{admin_site}");
    panel.get(&path, &t.admin).await.expect(200);
    panel.get(&path, &t.client).await.expect(404);
    panel.server.shutdown().await;
}

async fn unchanged_answers_are_304(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let t = tenant(&panel, "cachee").await;
    create_site(&panel, &t, t.caller.user, "cacheeone").await;
    let url = format!("{}/api/v1/websites", panel.base);
    let get = |etag: Option<&str>| {
        let mut request = panel.client.get(&url).bearer_auth(&t.admin);
        if let Some(tag) = etag {
            request = request.header("if-none-match", tag);
        }
        request.send()
    };
    let first = get(None).await.expect("request");
    assert_eq!(first.status().as_u16(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let again = get(Some(&tag)).await.expect("request");
        assert_eq!(again.status().as_u16(), 304, "If-None-Match: {tag}");
        assert_eq!(again.headers()["etag"].to_str().expect("etag"), etag);
        assert!(again.bytes().await.expect("body").is_empty());
    }
    let other = get(Some("\"something-else\"")).await.expect("request");
    assert_eq!(other.status().as_u16(), 200);

    create_site(&panel, &t, t.caller.user, "cacheetwo").await;
    let changed = get(Some(&etag)).await.expect("request");
    assert_eq!(
        changed.status().as_u16(),
        200,
        "a changed list is sent again"
    );
    assert_ne!(changed.headers()["etag"].to_str().expect("etag"), etag);
    panel.server.shutdown().await;
}

/// Another panel process's writes reach this panel's readers: SQLite refuses a second panel
/// on its file; on PostgreSQL the change feed drops kept answers (also after its connection is
/// killed); on MariaDB nothing is kept, so the next read sees the write.
async fn another_panels_writes_are_seen(store: Store) {
    let Some(url) = store.database_url().await else {
        let first = TestPanel::start().await;
        let file = first.dir.path().join("data").join("panel.db");
        let url = format!("sqlite:{}", file.display());
        let dir = hosting_tests::TempDir::new();
        let config = common::test_config(&dir, Some(&url), "");
        let password = || Some(common::ADMIN_PASSWORD.parse().expect("password"));
        let refused = hosting_panel::start(&config, password())
            .await
            .expect_err("a second panel on one SQLite file");
        assert!(
            refused
                .to_string()
                .contains("another panel process serves the store"),
            "{refused}"
        );
        first.server.shutdown().await;
        let second = hosting_panel::start(&config, password())
            .await
            .expect("the file is free once the first panel stopped");
        second.shutdown().await;
        return;
    };
    let ours = TestPanel::start_with(Some(&url), "").await;
    let theirs = TestPanel::start_with(Some(&url), "").await;
    let t = tenant(&ours, "cacheo").await;
    let mut expected = Vec::new();
    for (i, kill_feed) in [false, true, false].into_iter().enumerate() {
        for _ in 0..2 {
            let warm = ours.get("/api/v1/websites", &t.admin).await.expect(200);
            assert_eq!(domains(&warm.body), expected);
        }
        if kill_feed && store == Store::Postgres {
            terminate_listeners(&url).await;
        }
        let name = format!("cacheo{i}");
        create_site(&theirs, &t, t.caller.user, &name).await;
        expected.push(format!("{name}.example.com"));
        // PostgreSQL delivers the announcement after the commit, so the first reads may
        // still be the kept answer; it must give way within moments, and never come back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let now = ours.get("/api/v1/websites", &t.admin).await.expect(200);
            if domains(&now.body) == expected {
                break;
            }
            assert!(
                store == Store::Postgres && std::time::Instant::now() < deadline,
                "the other panel's write is not seen: {}",
                now.text
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let again = ours.get("/api/v1/websites", &t.admin).await.expect(200);
        assert_eq!(domains(&again.body), expected);
    }
    theirs.server.shutdown().await;
    ours.server.shutdown().await;
}

/// Ends every PostgreSQL connection of `url`'s database that listens, as a failover would.
async fn terminate_listeners(url: &str) {
    let admin = sqlx::PgPool::connect(url).await.expect("admin connection");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&admin)
    .await
    .expect("terminate the listeners");
    assert_eq!(killed, [true, true], "both panels listen");
    admin.close().await;
}
