//! The operator's work across tenants, and the answers a client needs to react correctly:
//! - the operator lists and deletes a tenant's users (acting as its admin, audited in the
//!   tenant), then deletes the tenant; nobody else may;
//! - deleting a user answers 204 and the user's login stops working;
//! - an expired access token is told apart (`token_expired`, RFC 6750 `invalid_token`) from a
//!   bad one, so a client knows that a refresh helps.
#![allow(clippy::expect_used)]

mod common;

use common::TestPanel;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_empties_and_deletes_a_tenant_and_nobody_else_may() {
    let panel = TestPanel::start().await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "gone").await;
    let boss_id = panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "boss@gone.example",
            "boss-password-1",
        )
        .await;
    let boss = panel.login("boss@gone.example", "boss-password-1").await;
    let client_id = panel
        .user(&boss, "client", "jo@gone.example", "client-password-1")
        .await;

    // A tenant admin is not the operator: the tenant-wide routes are refused.
    panel
        .get(&format!("/api/v1/tenants/{tenant}/users"), &boss)
        .await
        .expect(403);
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}/users/{client_id}"),
            Some(&boss),
            None,
        )
        .await
        .expect(403);

    let users = panel
        .list_all(&format!("/api/v1/tenants/{tenant}/users"), &operator)
        .await;
    let mut ids: Vec<i64> = users.iter().filter_map(|u| u["id"].as_i64()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![boss_id, client_id]);

    // The tenant's own admin deletes a user it manages: 204, and the login is gone.
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{client_id}"),
            Some(&boss),
            None,
        )
        .await
        .expect(204);
    panel
        .login_answer("jo@gone.example", "client-password-1")
        .await
        .expect(401);

    // A tenant with a user cannot go; the operator removes the user first.
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}"),
            Some(&operator),
            None,
        )
        .await
        .expect(409);
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}/users/{boss_id}"),
            Some(&operator),
            None,
        )
        .await
        .expect(204);
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}"),
            Some(&operator),
            None,
        )
        .await
        .expect(204);
    panel
        .get(&format!("/api/v1/tenants/{tenant}"), &operator)
        .await
        .expect(404);

    let audit = panel.list_all("/api/v1/audit", &operator).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "tenant.act_in" && e["outcome"] == "success"),
        "acting in a tenant is audited"
    );
    assert!(
        audit.iter().any(|e| e["action"] == "user.delete"
            && e["tenant_id"] == tenant
            && e["outcome"] == "success"),
        "the deletion is audited in the tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_says_so_and_a_bad_one_does_not() {
    let panel = TestPanel::start_with(None, "access_ttl_secs = 4\n").await;
    let token = panel.admin().await;
    panel.get("/api/v1/auth/me", &token).await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    let expired = panel.get("/api/v1/auth/me", &token).await.expect(401);
    assert_eq!(expired.code(), "token_expired", "{}", expired.text);
    let challenge = expired
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.contains("invalid_token"),
        "RFC 6750 challenge: {challenge}"
    );

    let mut forged = token.clone();
    forged.push('x');
    let bad = panel.get("/api/v1/auth/me", &forged).await.expect(401);
    assert_eq!(bad.code(), "unauthenticated", "{}", bad.text);
}
