//! Hostile and broken input on every endpoint that takes any: each answer is a 4xx with a
//! stable JSON error code (naming the field where there is one), never a 500, and the panel's
//! records are exactly what they were before.
#![allow(clippy::expect_used)]

mod common;

use common::{Answer, Store, TestPanel};
use reqwest::Method;
use serde_json::{Value, json};

// Each body below runs on SQLite, PostgreSQL and MariaDB: `name::{sqlite,postgres,mariadb}`.
common::on_every_store!(
    hostile_bodies_are_4xx_naming_the_field_and_change_nothing,
    unreadable_requests_are_4xx,
    quotes_and_metacharacters_in_valid_values_are_stored_verbatim,
);

/// Everything the operator can list (the audit log is left out: refused changes are audited).
async fn snapshot(panel: &TestPanel, token: &str) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/tenants",
        "/api/v1/users",
        "/api/v1/nodes",
        "/api/v1/tokens",
        "/api/v1/websites",
        "/api/v1/databases",
        "/api/v1/jobs",
    ] {
        out.push((path.to_owned(), panel.list_all(path, token).await));
    }
    out
}

/// A website body that is valid but for what `patch` replaces.
fn website(patch: Value) -> Value {
    let mut body = json!({
        "owner_id": 1,
        "domain": "shop.example.com",
        "aliases": ["www.shop.example.com"],
        "node_id": 1,
        "web_server": "nginx",
        "php_version": "8.2",
        "system_user": "shop",
        "document_root": "public",
    });
    for (k, v) in patch.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

/// `(method, path, body, expected code, expected field)`; `None` skips that check.
type Case = (
    Method,
    &'static str,
    Value,
    Option<&'static str>,
    Option<&'static str>,
);

fn cases() -> Vec<Case> {
    let p = Method::POST;
    vec![
        // Tenants.
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "x", "slug": "a;b"}),
            Some("invalid"),
            Some("slug"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "x", "slug": "a\nb"}),
            Some("invalid"),
            Some("slug"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "x", "slug": ".."}),
            Some("invalid"),
            Some("slug"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "x", "slug": "../etc"}),
            Some("invalid"),
            Some("slug"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "line\nbreak", "slug": "ok"}),
            Some("invalid"),
            Some("name"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "", "slug": "ok"}),
            Some("invalid"),
            Some("name"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "x", "slug": "ok", "admin": true}),
            Some("unknown_field"),
            Some("admin"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": 1, "slug": "ok"}),
            Some("invalid_type"),
            Some("name"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"slug": "ok"}),
            Some("missing_field"),
            Some("name"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "x", "slug": "ok", "quotas": {"max_websites": -1}}),
            Some("invalid"),
            Some("quotas.max_websites"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!({"name": "x", "slug": "ok", "quotas": {"bogus": 1}}),
            Some("unknown_field"),
            Some("quotas.bogus"),
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!([]),
            Some("invalid_type"),
            None,
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!(null),
            Some("invalid_type"),
            None,
        ),
        (
            p.clone(),
            "/api/v1/tenants",
            json!("tenant"),
            Some("invalid_type"),
            None,
        ),
        (
            Method::PATCH,
            "/api/v1/tenants/1",
            json!({"status": "deleted"}),
            Some("invalid"),
            Some("status"),
        ),
        (
            Method::PATCH,
            "/api/v1/tenants/1",
            json!({"slug": "renamed"}),
            Some("unknown_field"),
            Some("slug"),
        ),
        (
            Method::PUT,
            "/api/v1/tenants/1/require-2fa",
            json!({"required": "yes"}),
            Some("invalid_type"),
            Some("required"),
        ),
        (
            Method::PUT,
            "/api/v1/tenants/1/require-2fa",
            json!({}),
            Some("missing_field"),
            Some("required"),
        ),
        (
            p.clone(),
            "/api/v1/tenants/1/users",
            json!({"role": "root", "email": "x@example.com"}),
            Some("invalid"),
            Some("role"),
        ),
        // Websites: hostile domains, paths, users, versions, settings.
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"domain": "evil.example;rm -rf /"})),
            Some("invalid"),
            Some("domain"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"domain": "a.example\nserver_name other.example"})),
            Some("invalid"),
            Some("domain"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"domain": "../etc/passwd"})),
            Some("invalid"),
            Some("domain"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"domain": ".."})),
            Some("invalid"),
            Some("domain"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"domain": "a..example"})),
            Some("invalid"),
            Some("domain"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"domain": "${jndi:ldap}.example"})),
            Some("invalid"),
            Some("domain"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"domain": "ex ample.com"})),
            Some("invalid"),
            Some("domain"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"aliases": ["ok.example", "bad;one.example"]})),
            Some("invalid"),
            Some("aliases[1]"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"aliases": ["x\r\n.example"]})),
            Some("invalid"),
            Some("aliases[0]"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"system_user": "root"})),
            Some("invalid"),
            Some("system_user"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"system_user": "a;b"})),
            Some("invalid"),
            Some("system_user"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"document_root": "../../etc"})),
            Some("invalid"),
            Some("document_root"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"document_root": "/etc"})),
            Some("invalid"),
            Some("document_root"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"document_root": "public/../.."})),
            Some("invalid"),
            Some("document_root"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"document_root": "public\nroot /"})),
            Some("invalid"),
            Some("document_root"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"php_version": "7.4"})),
            Some("invalid"),
            Some("php_version"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"php_version": "8.2; rm -rf /"})),
            Some("invalid"),
            Some("php_version"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"web_server": "nginx;"})),
            Some("invalid"),
            Some("web_server"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"owner_id": "1"})),
            Some("invalid_type"),
            Some("owner_id"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"node_id": 1.5})),
            Some("invalid_type"),
            Some("node_id"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"status": "active"})),
            Some("unknown_field"),
            Some("status"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(
                json!({"settings": {"php": {"memory_limit": "256M\nphp_admin_value[disable_functions] =", "max_execution_time": 30, "upload_max_filesize": "8M", "post_max_size": "8M"}}}),
            ),
            Some("invalid"),
            Some("settings.php.memory_limit"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(
                json!({"settings": {"php": {"memory_limit": "256M", "max_execution_time": 0, "upload_max_filesize": "8M", "post_max_size": "8M"}}}),
            ),
            Some("invalid"),
            Some("settings.php"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(
                json!({"settings": {"php": {"memory_limit": "256M", "max_execution_time": 30, "upload_max_filesize": "64M", "post_max_size": "8M"}}}),
            ),
            Some("invalid"),
            Some("settings.php"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(
                json!({"settings": {"extra_directives": [{"name": "include", "args": ["/etc/shadow;"]}]}}),
            ),
            Some("invalid"),
            Some("settings.extra_directives[0].args[0]"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"settings": {"extra_directives": [{"name": "a b", "args": []}]}})),
            Some("invalid"),
            Some("settings.extra_directives[0].name"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(
                json!({"settings": {"database": {"engine": "mariadb", "name": "x'; DROP DATABASE mysql; --", "charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}}}),
            ),
            Some("invalid"),
            Some("settings.database.name"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(
                json!({"settings": {"database": {"engine": "oracle", "name": "shop", "charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}}}),
            ),
            Some("invalid"),
            Some("settings.database.engine"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(
                json!({"settings": {"database": {"engine": "mariadb", "name": "shop", "charset": "utf8mb4'", "collation": "utf8mb4_unicode_ci"}}}),
            ),
            Some("invalid"),
            Some("settings.database.charset"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"settings": {"allowed_ips": ["10.0.0.1/8"]}})),
            Some("invalid"),
            Some("settings.allowed_ips[0]"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"settings": {"gzip": "yes"}})),
            Some("invalid_type"),
            Some("settings.gzip"),
        ),
        (
            p.clone(),
            "/api/v1/websites",
            website(json!({"settings": {"root": "/"}})),
            Some("unknown_field"),
            Some("settings.root"),
        ),
        (
            Method::PATCH,
            "/api/v1/websites/1",
            json!({"status": "active"}),
            Some("unknown_field"),
            Some("status"),
        ),
        (
            Method::PATCH,
            "/api/v1/websites/1",
            json!({"aliases": ["x;y.example"]}),
            Some("invalid"),
            Some("aliases[0]"),
        ),
        (
            Method::PATCH,
            "/api/v1/websites/1",
            json!({"document_root": ".."}),
            Some("invalid"),
            Some("document_root"),
        ),
        (
            p.clone(),
            "/api/v1/websites/1/php",
            json!({"php_version": "9.9"}),
            Some("invalid"),
            Some("php_version"),
        ),
        (
            p.clone(),
            "/api/v1/websites/1/php",
            json!({}),
            Some("missing_field"),
            Some("php_version"),
        ),
        (
            p.clone(),
            "/api/v1/websites/1/php",
            json!({"php_version": "8.2", "pool": "x"}),
            Some("unknown_field"),
            Some("pool"),
        ),
        (
            p.clone(),
            "/api/v1/websites/1/web-server",
            json!({"web_server": "nginx\n"}),
            Some("invalid"),
            Some("web_server"),
        ),
        (
            p.clone(),
            "/api/v1/websites/1/web-server",
            json!({"web_server": "Apache"}),
            Some("invalid"),
            Some("web_server"),
        ),
        // Users and passwords.
        (
            p.clone(),
            "/api/v1/users",
            json!({"role": "client", "email": "a@b"}),
            Some("invalid"),
            Some("email"),
        ),
        (
            p.clone(),
            "/api/v1/users",
            json!({"role": "client", "email": "x'--@example.com"}),
            Some("invalid"),
            Some("email"),
        ),
        (
            p.clone(),
            "/api/v1/users",
            json!({"role": "client", "email": "a@example.com\nBcc: x@example.com"}),
            Some("invalid"),
            Some("email"),
        ),
        (
            p.clone(),
            "/api/v1/users",
            json!({"role": "client", "email": "a@example.com", "password": "short"}),
            Some("invalid"),
            Some("password"),
        ),
        (
            p.clone(),
            "/api/v1/users",
            json!({"role": "client", "email": "a@example.com", "password": "has a\nnewline"}),
            Some("invalid"),
            Some("password"),
        ),
        (
            p.clone(),
            "/api/v1/users",
            json!({"role": "Admin", "email": "a@example.com"}),
            Some("invalid"),
            Some("role"),
        ),
        (
            p.clone(),
            "/api/v1/users",
            json!({"role": "admin", "email": "a@example.com", "tenant_id": 2}),
            Some("unknown_field"),
            Some("tenant_id"),
        ),
        (
            Method::PUT,
            "/api/v1/users/1/password",
            json!({"password": "a\nbcdefghij"}),
            Some("invalid"),
            Some("password"),
        ),
        (
            Method::PUT,
            "/api/v1/users/1/password",
            json!({"password": 12_345_678}),
            Some("invalid_type"),
            Some("password"),
        ),
        (
            Method::PATCH,
            "/api/v1/users/1",
            json!({"role": "superuser"}),
            Some("invalid"),
            Some("role"),
        ),
        (
            Method::PATCH,
            "/api/v1/users/1",
            json!({"tenant_id": 2}),
            Some("unknown_field"),
            Some("tenant_id"),
        ),
        // API tokens.
        (
            p.clone(),
            "/api/v1/tokens",
            json!({"name": "t", "permissions": ["root"]}),
            Some("invalid"),
            Some("permissions[0]"),
        ),
        (
            p.clone(),
            "/api/v1/tokens",
            json!({"name": "t", "permissions": [], "current_password": common::ADMIN_PASSWORD}),
            Some("invalid"),
            Some("permissions"),
        ),
        (
            p.clone(),
            "/api/v1/tokens",
            json!({"name": "t", "permissions": "websites_read"}),
            Some("invalid_type"),
            Some("permissions"),
        ),
        (
            p.clone(),
            "/api/v1/tokens",
            json!({"name": "", "permissions": ["websites_read"]}),
            Some("invalid"),
            Some("name"),
        ),
        (
            p.clone(),
            "/api/v1/tokens",
            json!({"name": "t", "permissions": ["websites_read"], "expires_at": "tomorrow"}),
            Some("invalid"),
            Some("expires_at"),
        ),
        // Nodes.
        (
            p.clone(),
            "/api/v1/nodes",
            json!({"name": "a b", "address": "10.0.0.1", "roles": ["web"]}),
            Some("invalid"),
            Some("name"),
        ),
        (
            p.clone(),
            "/api/v1/nodes",
            json!({"name": "n", "address": "10.0.0.1:99999", "roles": ["web"]}),
            Some("invalid"),
            Some("address"),
        ),
        (
            p.clone(),
            "/api/v1/nodes",
            json!({"name": "n", "address": "host;rm", "roles": ["web"]}),
            Some("invalid"),
            Some("address"),
        ),
        (
            p.clone(),
            "/api/v1/nodes",
            json!({"name": "n", "address": "10.0.0.1", "roles": ["god"]}),
            Some("invalid"),
            Some("roles[0]"),
        ),
        // Auth bodies.
        (
            p.clone(),
            "/api/v1/auth/login",
            json!({"email": "not-an-email", "password": "whatever-1"}),
            Some("invalid"),
            Some("email"),
        ),
        (
            p.clone(),
            "/api/v1/auth/login",
            json!({"email": "a@example.com", "password": "x".repeat(300)}),
            Some("invalid"),
            Some("password"),
        ),
        (
            p.clone(),
            "/api/v1/auth/login",
            json!({"email": "a@example.com", "password": "whatever-1", "role": "admin"}),
            Some("unknown_field"),
            Some("role"),
        ),
        (
            p.clone(),
            "/api/v1/auth/login",
            json!({"email": "a@example.com", "password": "whatever-1", "totp_code": 123_456}),
            Some("invalid_type"),
            Some("totp_code"),
        ),
        (
            p.clone(),
            "/api/v1/auth/refresh",
            json!({}),
            Some("missing_field"),
            Some("refresh_token"),
        ),
        (
            p.clone(),
            "/api/v1/auth/2fa/confirm",
            json!({"code": 123}),
            Some("invalid_type"),
            Some("code"),
        ),
        (
            p.clone(),
            "/api/v1/auth/2fa/disable",
            json!({"code": "123456", "force": true}),
            Some("unknown_field"),
            Some("force"),
        ),
    ]
}

#[track_caller]
fn check(answer: &Answer, what: &str, code: Option<&str>, field: Option<&str>) {
    assert_ne!(answer.status.as_u16(), 500, "{what}: {}", answer.text);
    answer.expect_client_error(what);
    if let Some(code) = code {
        assert_eq!(answer.code(), code, "{what}: {}", answer.text);
    }
    if let Some(field) = field {
        assert_eq!(answer.field(), Some(field), "{what}: {}", answer.text);
    }
}

async fn hostile_bodies_are_4xx_naming_the_field_and_change_nothing(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let admin = panel.admin().await;
    let before = snapshot(&panel, &admin).await;
    let mut wrong = Vec::new();
    for (method, path, body, code, field) in cases() {
        let what = format!("{method} {path} {body}");
        let answer = panel.send(method, path, Some(&admin), Some(&body)).await;
        let ok = std::panic::catch_unwind(|| check(&answer, &what, code, field));
        if ok.is_err() {
            wrong.push(format!("{what}\n  -> {} {}", answer.status, answer.text));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} unexpected answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        snapshot(&panel, &admin).await,
        before,
        "the records changed"
    );
}

async fn unreadable_requests_are_4xx(store: Store) {
    let panel = TestPanel::start_on(store, "max_body_bytes = 65536\nmax_json_depth = 8").await;
    let admin = panel.admin().await;
    let before = snapshot(&panel, &admin).await;
    let tenant = br#"{"name": "x", "slug": "ok"}"#.to_vec();

    // Media types.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
    ] {
        let answer = panel
            .send_raw(
                Method::POST,
                "/api/v1/tenants",
                Some(&admin),
                ct,
                tenant.clone(),
            )
            .await;
        check(
            &answer,
            &format!("content type {ct:?}"),
            Some("unsupported_media_type"),
            None,
        );
        assert_eq!(answer.status.as_u16(), 415);
    }
    // Broken JSON.
    for (body, code) in [
        (b"".to_vec(), "malformed_json"),
        (b"{".to_vec(), "malformed_json"),
        (
            b"{\"name\": \"x\", \"slug\": \"ok\"} trailing".to_vec(),
            "malformed_json",
        ),
        (vec![0xff, 0xfe, 0x00], "malformed_json"),
        (
            b"{\"name\": \"\xff\xfe\", \"slug\": \"ok\"}".to_vec(),
            "malformed_json",
        ),
        (
            b"{\"name\": \"x\", \"name\": \"y\", \"slug\": \"ok\"}".to_vec(),
            "invalid",
        ),
    ] {
        let answer = panel
            .send_raw(
                Method::POST,
                "/api/v1/tenants",
                Some(&admin),
                Some("application/json"),
                body.clone(),
            )
            .await;
        check(&answer, &String::from_utf8_lossy(&body), Some(code), None);
    }
    // Too deep (8 levels allowed here), in an ignored position too.
    let deep = format!(
        "{{\"name\": \"x\", \"slug\": \"ok\", \"quotas\": {}1{}}}",
        "[".repeat(9),
        "]".repeat(9)
    );
    let answer = panel
        .send_raw(
            Method::POST,
            "/api/v1/tenants",
            Some(&admin),
            Some("application/json"),
            deep.into_bytes(),
        )
        .await;
    check(&answer, "deep", Some("json_too_deep"), None);
    assert_eq!(answer.status.as_u16(), 400);
    let very_deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let answer = panel
        .send_raw(
            Method::POST,
            "/api/v1/websites",
            Some(&admin),
            Some("application/json"),
            very_deep.into_bytes(),
        )
        .await;
    check(&answer, "very deep", None, None);
    // Too large: the declared length, and a body that says nothing about its size.
    let huge = format!(
        "{{\"name\": \"{}\", \"slug\": \"ok\"}}",
        "a".repeat(100_000)
    );
    let answer = panel
        .send_raw(
            Method::POST,
            "/api/v1/tenants",
            Some(&admin),
            Some("application/json"),
            huge.clone().into_bytes(),
        )
        .await;
    check(&answer, "huge", Some("body_too_large"), None);
    assert_eq!(answer.status.as_u16(), 413);
    let answer = panel
        .send_raw(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some("application/json"),
            huge.into_bytes(),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 413, "{}", answer.text);
    // Too large a head: 431.
    let response = panel
        .client
        .get(format!("{}/api/v1/tenants", panel.base))
        .bearer_auth(&admin)
        .header("x-padding", "p".repeat(20_000))
        .send()
        .await
        .expect("request");
    let answer = TestPanel::answer(response).await;
    assert_eq!(answer.status.as_u16(), 431, "{}", answer.text);
    check(&answer, "big head", Some("headers_too_large"), None);

    // Paging and path parameters.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("after=abc", "after"),
        ("after=1.5", "after"),
        ("after=99999999999999999999", "after"),
        ("foo=bar", "foo"),
        ("limit=1&limit=2", "limit"),
        ("after=1;DROP", "after"),
        ("limit=", "limit"),
        ("after=", "after"),
        ("after=&limit=", "after"),
    ] {
        let answer = panel.get(&format!("/api/v1/users?{query}"), &admin).await;
        check(&answer, query, None, Some(field));
        assert_eq!(answer.status.as_u16(), 422, "{query}");
    }
    for path in [
        "/api/v1/users/abc",
        "/api/v1/users/1.5",
        "/api/v1/users/99999999999999999999",
        "/api/v1/users/1%00",
        "/api/v1/users/1;1",
        "/api/v1/websites/%27%20OR%201=1",
        "/api/v1/jobs/-",
    ] {
        let answer = panel.get(path, &admin).await;
        check(&answer, path, Some("invalid"), Some("id"));
    }
    for path in [
        "/api/v1/users/-1",
        "/api/v1/websites/0",
        "/api/v1/tenants/424242",
    ] {
        let answer = panel.get(path, &admin).await.expect(404);
        check(&answer, path, Some("not_found"), None);
    }
    // A query on an endpoint that takes none.
    let answer = panel.get("/api/v1/auth/me?x=1", &admin).await;
    check(&answer, "query", Some("unknown_field"), None);

    // Wrong methods.
    for (method, path) in [
        (Method::PUT, "/api/v1/tenants"),
        (Method::DELETE, "/api/v1/users"),
        (Method::PATCH, "/api/v1/auth/login"),
        (Method::GET, "/api/v1/auth/logout"),
        (Method::POST, "/api/v1/audit"),
        (Method::PUT, "/api/v1/websites/1/php"),
        (Method::GET, "/api/v1/users/1/password"),
        (Method::PATCH, "/api/v1/nodes/1"),
    ] {
        let answer = panel.send(method.clone(), path, Some(&admin), None).await;
        assert_eq!(
            answer.status.as_u16(),
            405,
            "{method} {path}: {}",
            answer.text
        );
        check(&answer, path, Some("method_not_allowed"), None);
    }
    assert_eq!(
        snapshot(&panel, &admin).await,
        before,
        "the records changed"
    );
}

async fn quotes_and_metacharacters_in_valid_values_are_stored_verbatim(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let admin = panel.admin().await;
    let name = "O'Brien \"Ltd\"; DROP TABLE tenants; -- \\ `x` $(id) %s";
    let created = panel
        .post(
            "/api/v1/tenants",
            &admin,
            &json!({"name": name, "slug": "obrien"}),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_i64().expect("id");
    let read = panel
        .get(&format!("/api/v1/tenants/{id}"), &admin)
        .await
        .expect(200);
    assert_eq!(read.body["name"], name);
    // The same slug again: 409, not a 500 from a unique index.
    let answer = panel
        .post(
            "/api/v1/tenants",
            &admin,
            &json!({"name": "again", "slug": "obrien"}),
        )
        .await
        .expect(409);
    check(&answer, "duplicate slug", Some("already_exists"), None);
    let password = "p'a\"s;s\\w%o_r`d -- ";
    let user = panel
        .tenant_user(&admin, id, "admin", "quote@panel.example", password)
        .await;
    assert!(user > 0);
    panel.login("quote@panel.example", password).await;
    let answer = panel
        .post(
            &format!("/api/v1/tenants/{id}/users"),
            &admin,
            &json!({"role": "admin", "email": "QUOTE@panel.example"}),
        )
        .await
        .expect(422);
    // The same answer whichever tenant has the address (see brute_force.rs).
    check(&answer, "duplicate email", Some("invalid"), Some("email"));
}
