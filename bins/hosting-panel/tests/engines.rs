//! The API on each store engine: the same flows over SQLite, PostgreSQL and MariaDB (the
//! server URLs come from the test harness; without one the test reports SKIPPED, and fails
//! under CI=true).
#![allow(clippy::expect_used)]

mod common;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestPanel};
use hosting_tests::{MARIADB_URL, POSTGRES_URL, fresh_database, server_url};
use reqwest::Method;
use serde_json::json;

/// First start, logins, refresh rotation and replay, API-token permissions, isolation,
/// refused bad input and a restart over the same store.
async fn flows(database_url: Option<&str>) {
    let panel = TestPanel::start_with(database_url, "").await;
    let operator = panel.admin().await;
    let alpha = panel.tenant(&operator, "alpha").await;
    let beta = panel.tenant(&operator, "beta").await;
    panel
        .tenant_user(
            &operator,
            alpha,
            "admin",
            "a@alpha.example",
            "alpha-password-1",
        )
        .await;
    panel
        .tenant_user(
            &operator,
            beta,
            "admin",
            "b@beta.example",
            "beta-password-1",
        )
        .await;
    let a = panel.login("a@alpha.example", "alpha-password-1").await;
    let b = panel.login("b@beta.example", "beta-password-1").await;
    let client = panel
        .user(&a, "client", "c@alpha.example", "client-password-1")
        .await;
    panel
        .get(&format!("/api/v1/users/{client}"), &b)
        .await
        .expect(404);
    panel
        .send(
            Method::PUT,
            &format!("/api/v1/users/{client}/password"),
            Some(&b),
            Some(&json!({"password": "hijacked-password"})),
        )
        .await
        .expect(404);

    // Refresh rotation and replay.
    let login = panel
        .login_answer("a@alpha.example", "alpha-password-1")
        .await
        .expect(200);
    let refresh = login.body["refresh_token"].as_str().expect("refresh");
    let body = json!({"refresh_token": refresh});
    let next = panel
        .send(Method::POST, "/api/v1/auth/refresh", None, Some(&body))
        .await
        .expect(200);
    panel
        .send(Method::POST, "/api/v1/auth/refresh", None, Some(&body))
        .await
        .expect(401);
    let body = json!({"refresh_token": next.body["refresh_token"]});
    panel
        .send(Method::POST, "/api/v1/auth/refresh", None, Some(&body))
        .await
        .expect(401);

    // The replay ended every session of the user, the first login's too.
    panel.get("/api/v1/auth/me", &a).await.expect(401);
    let a = panel.login("a@alpha.example", "alpha-password-1").await;

    // A limited API token.
    let token = panel
        .post(
            "/api/v1/tokens",
            &a,
            &json!({"name": "read", "permissions": ["users_read"],
                    "current_password": "alpha-password-1"}),
        )
        .await
        .expect(201);
    let secret = token.body["secret"].as_str().expect("secret");
    panel.get("/api/v1/users", secret).await.expect(200);
    panel.get("/api/v1/websites", secret).await.expect(403);

    // Bad input changes nothing; quotes are stored verbatim.
    let before = panel.list_all("/api/v1/tenants", &operator).await;
    let answer = panel
        .post(
            "/api/v1/tenants",
            &operator,
            &json!({"name": "x", "slug": "x'; DROP TABLE tenants; --"}),
        )
        .await
        .expect(422);
    assert_eq!(answer.field(), Some("slug"));
    assert_eq!(panel.list_all("/api/v1/tenants", &operator).await, before);
    let name = "O'Brien \"Ltd\"; DROP TABLE tenants; -- \\";
    let created = panel
        .post(
            "/api/v1/tenants",
            &operator,
            &json!({"name": name, "slug": "obrien"}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["name"], name);
    panel
        .post(
            "/api/v1/tenants",
            &operator,
            &json!({"name": "again", "slug": "obrien"}),
        )
        .await
        .expect(409);

    // A restart over the same store and key: no second operator, the same admin, and the
    // sessions issued before still refresh.
    let login = panel
        .login_answer(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect(200);
    let refresh = login.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let TestPanel { server, dir, .. } = panel;
    server.shutdown().await;
    let config = common::test_config(&dir, database_url, "");
    let server = hosting_panel::start(&config, None).await.expect("restart");
    assert!(server.generated_admin_password.is_none());
    let base = format!("http://{}", server.local_addr());
    let client = reqwest::Client::new();
    let answer = TestPanel::answer(
        client
            .post(format!("{base}/api/v1/auth/refresh"))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .expect("refresh"),
    )
    .await
    .expect(200);
    let access = answer.body["access_token"].as_str().expect("access");
    let tenants = TestPanel::answer(
        client
            .get(format!("{base}/api/v1/tenants?limit=500"))
            .bearer_auth(access)
            .send()
            .await
            .expect("tenants"),
    )
    .await
    .expect(200);
    let operators = tenants.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|t| t["slug"] == "operator")
        .count();
    assert_eq!(operators, 1);
    server.shutdown().await;
    drop(dir);
}

#[tokio::test]
async fn sqlite() {
    flows(None).await;
}

#[tokio::test]
async fn postgres() {
    let Some(url) = server_url(POSTGRES_URL) else {
        return;
    };
    flows(Some(&fresh_database(&url).await)).await;
}

#[tokio::test]
async fn mariadb() {
    let Some(url) = server_url(MARIADB_URL) else {
        return;
    };
    flows(Some(&fresh_database(&url).await)).await;
}
