//! Credentials end when they should (issue #20), through the HTTP API of a running panel: a
//! deletion, suspension (user or tenant), role change, password change or refresh replay ends
//! the user's access tokens on the very next request, in every panel process on the store; a
//! password change takes API tokens with it unless kept; the account's anchors (password,
//! second factor, API tokens) ask for the current password; a token cannot mint a token; a
//! tenant that starts requiring 2FA stops its users' tokens minted without it; and the audit
//! log names the credential that acted, a role change's old and new role and a new token's id.
//! Each test makes the attack, then checks that it failed.
#![allow(clippy::expect_used)]

mod common;

use chrono::Utc;
use common::{Store, TestPanel};
use hosting_core::auth::TotpSecret;
use reqwest::Method;
use serde_json::{Value, json};

common::on_every_store!(
    a_deleted_admins_access_token_is_dead,
    a_suspended_user_or_tenant_ends_its_tokens_at_once,
    a_demoted_admin_acts_with_its_new_role_at_once,
    a_password_change_ends_access_and_api_tokens,
    a_refresh_replay_ends_the_users_access_tokens,
    minting_needs_a_session_and_the_current_password,
    second_factor_changes_need_the_current_password,
    tokens_minted_without_2fa_stop_when_the_tenant_requires_it,
    the_audit_log_names_the_credential_role_change_and_token,
);

const PASSWORD: &str = "tenant-password-1";

/// A login's access token, refresh token and session id.
struct Login {
    access: String,
    refresh: String,
    session: i64,
}

async fn login(panel: &TestPanel, email: &str, password: &str) -> Login {
    let answer = panel.login_answer(email, password).await.expect(200);
    Login {
        access: answer.body["access_token"]
            .as_str()
            .expect("access")
            .to_owned(),
        refresh: answer.body["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
        session: answer.body["session"].as_i64().expect("session"),
    }
}

async fn refresh(panel: &TestPanel, token: &str) -> reqwest::StatusCode {
    panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": token})),
        )
        .await
        .status
}

async fn patch(panel: &TestPanel, path: &str, token: &str, body: &Value) -> common::Answer {
    panel
        .send(Method::PATCH, path, Some(token), Some(body))
        .await
}

async fn put(panel: &TestPanel, path: &str, token: &str, body: &Value) -> common::Answer {
    panel.send(Method::PUT, path, Some(token), Some(body)).await
}

/// Mints an API token for the holder of `access` (whose password is `password`).
async fn mint(
    panel: &TestPanel,
    access: &str,
    password: &str,
    permissions: Value,
) -> (i64, String) {
    let answer = panel
        .post(
            "/api/v1/tokens",
            access,
            &json!({"name": "script", "permissions": permissions, "current_password": password}),
        )
        .await
        .expect(201);
    (
        answer.body["token"]["id"].as_i64().expect("id"),
        answer.body["secret"].as_str().expect("secret").to_owned(),
    )
}

/// A tenant with two admins and a client; returns (tenant, admin 1, admin 2, client) ids.
async fn tenant_with_two_admins(panel: &TestPanel, slug: &str) -> (i64, i64, i64, i64) {
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, slug).await;
    let a1 = panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            &format!("a1@{slug}.example"),
            PASSWORD,
        )
        .await;
    let a2 = panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            &format!("a2@{slug}.example"),
            PASSWORD,
        )
        .await;
    let client = panel
        .tenant_user(
            &operator,
            tenant,
            "client",
            &format!("c@{slug}.example"),
            PASSWORD,
        )
        .await;
    (tenant, a1, a2, client)
}

/// The attack of the report: an admin deleted by another keeps its access token and uses it
/// to reset a user's password and to suspend its deleter. Both are refused at once.
async fn a_deleted_admins_access_token_is_dead(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let (_, a1, a2, client) = tenant_with_two_admins(&panel, "deleted").await;
    let deleter = login(&panel, "a1@deleted.example", PASSWORD).await;
    let doomed = login(&panel, "a2@deleted.example", PASSWORD).await;
    panel
        .get("/api/v1/auth/me", &doomed.access)
        .await
        .expect(200);
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{a2}"),
            Some(&deleter.access),
            None,
        )
        .await
        .expect(204);

    let reset = put(
        &panel,
        &format!("/api/v1/users/{client}/password"),
        &doomed.access,
        &json!({"password": "taken-over-password-1"}),
    )
    .await
    .expect(401);
    assert_eq!(reset.code(), "unauthenticated");
    patch(
        &panel,
        &format!("/api/v1/users/{a1}"),
        &doomed.access,
        &json!({"status": "suspended"}),
    )
    .await
    .expect(401);
    assert_eq!(refresh(&panel, &doomed.refresh).await.as_u16(), 401);
    // Nothing changed: the client's password and the deleter's account are as they were.
    login(&panel, "c@deleted.example", PASSWORD).await;
    panel
        .get("/api/v1/auth/me", &deleter.access)
        .await
        .expect(200);
}

/// A suspended user's access token, refresh token and API token stop on the next request; a
/// suspended tenant's users' too. Resuming does not bring the access tokens back.
async fn a_suspended_user_or_tenant_ends_its_tokens_at_once(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let (tenant, _, _, client) = tenant_with_two_admins(&panel, "suspend").await;
    let admin = login(&panel, "a1@suspend.example", PASSWORD).await;
    let user = login(&panel, "c@suspend.example", PASSWORD).await;
    let (_, api) = mint(&panel, &user.access, PASSWORD, json!(["websites_read"])).await;
    panel.get("/api/v1/websites", &api).await.expect(200);

    patch(
        &panel,
        &format!("/api/v1/users/{client}"),
        &admin.access,
        &json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    panel
        .get("/api/v1/websites", &user.access)
        .await
        .expect(401);
    panel.get("/api/v1/websites", &api).await.expect(401);
    assert_eq!(refresh(&panel, &user.refresh).await.as_u16(), 401);

    patch(
        &panel,
        &format!("/api/v1/users/{client}"),
        &admin.access,
        &json!({"status": "active"}),
    )
    .await
    .expect(200);
    panel
        .get("/api/v1/websites", &user.access)
        .await
        .expect(401);
    // The API token follows its owner's current status: it works again.
    panel.get("/api/v1/websites", &api).await.expect(200);

    // The whole tenant: every user's access token and API token stop at once.
    let user = login(&panel, "c@suspend.example", PASSWORD).await;
    let other_admin = login(&panel, "a2@suspend.example", PASSWORD).await;
    patch(
        &panel,
        &format!("/api/v1/tenants/{tenant}"),
        &operator,
        &json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    for token in [&user.access, &other_admin.access, &admin.access, &api] {
        panel.get("/api/v1/auth/me", token).await.expect(401);
    }
    assert_eq!(refresh(&panel, &other_admin.refresh).await.as_u16(), 401);
}

/// An admin demoted to client keeps neither its admin access token nor admin rights through
/// its API token: the token acts with the user's current role.
async fn a_demoted_admin_acts_with_its_new_role_at_once(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let (_, _, a2, client) = tenant_with_two_admins(&panel, "demote").await;
    let boss = login(&panel, "a1@demote.example", PASSWORD).await;
    let demoted = login(&panel, "a2@demote.example", PASSWORD).await;
    let (_, api) = mint(
        &panel,
        &demoted.access,
        PASSWORD,
        json!(["users_read", "users_write"]),
    )
    .await;
    let me = panel.get("/api/v1/auth/me", &api).await.expect(200);
    assert_eq!(me.body["role"], "admin");

    patch(
        &panel,
        &format!("/api/v1/users/{a2}"),
        &boss.access,
        &json!({"role": "client"}),
    )
    .await
    .expect(200);
    // The admin access token is dead, not merely demoted.
    let reset = put(
        &panel,
        &format!("/api/v1/users/{client}/password"),
        &demoted.access,
        &json!({"password": "taken-over-password-1"}),
    )
    .await
    .expect(401);
    assert_eq!(reset.code(), "unauthenticated");
    // The API token acts as a client now: it cannot manage the tenant's users.
    let me = panel.get("/api/v1/auth/me", &api).await.expect(200);
    assert_eq!(me.body["role"], "client");
    let answer = put(
        &panel,
        &format!("/api/v1/users/{client}/password"),
        &api,
        &json!({"password": "taken-over-password-1"}),
    )
    .await;
    assert!(
        matches!(answer.status.as_u16(), 403 | 404),
        "a client's token may not reset another user's password: {}",
        answer.text
    );
    login(&panel, "c@demote.example", PASSWORD).await;
    // Logging in again gives the new role.
    let again = login(&panel, "a2@demote.example", PASSWORD).await;
    let me = panel
        .get("/api/v1/auth/me", &again.access)
        .await
        .expect(200);
    assert_eq!(me.body["role"], "client");
}

/// Changing one's password needs the current one; it ends every session's access token at once
/// and the API tokens unless `keep_api_tokens`.
async fn a_password_change_ends_access_and_api_tokens(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let (_, _, _, client) = tenant_with_two_admins(&panel, "passwd").await;
    let email = "c@passwd.example";
    let thief = login(&panel, email, PASSWORD).await;
    let owner = login(&panel, email, PASSWORD).await;
    let (_, api) = mint(&panel, &owner.access, PASSWORD, json!(["websites_read"])).await;
    let path = format!("/api/v1/users/{client}/password");

    // A stolen access token alone cannot change the password.
    let missing = put(
        &panel,
        &path,
        &thief.access,
        &json!({"password": "new-password-2"}),
    )
    .await
    .expect(422);
    assert_eq!(missing.field(), Some("current_password"));
    let wrong = put(
        &panel,
        &path,
        &thief.access,
        &json!({"password": "new-password-2", "current_password": "guessed-password-1"}),
    )
    .await
    .expect(403);
    assert_eq!(wrong.code(), "reauthentication_failed");
    login(&panel, email, PASSWORD).await;

    // The owner changes it: the thief's copy of a session and the API token end at once.
    put(
        &panel,
        &path,
        &owner.access,
        &json!({"password": "new-password-2", "current_password": PASSWORD}),
    )
    .await
    .expect(204);
    for token in [&thief.access, &owner.access, &api] {
        panel.get("/api/v1/auth/me", token).await.expect(401);
    }
    assert_eq!(refresh(&panel, &thief.refresh).await.as_u16(), 401);

    // With keep_api_tokens the API tokens stay; the sessions still end.
    let owner = login(&panel, email, "new-password-2").await;
    let (_, kept) = mint(
        &panel,
        &owner.access,
        "new-password-2",
        json!(["websites_read"]),
    )
    .await;
    put(
        &panel,
        &path,
        &owner.access,
        &json!({"password": "new-password-3", "current_password": "new-password-2",
                "keep_api_tokens": true}),
    )
    .await
    .expect(204);
    panel
        .get("/api/v1/auth/me", &owner.access)
        .await
        .expect(401);
    panel.get("/api/v1/websites", &kept).await.expect(200);
}

/// A copied refresh token presented after its owner used it ends every session of the user,
/// and the access tokens already handed out stop on their next request.
async fn a_refresh_replay_ends_the_users_access_tokens(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    tenant_with_two_admins(&panel, "replay").await;
    let email = "c@replay.example";
    let laptop = login(&panel, email, PASSWORD).await;
    let phone = login(&panel, email, PASSWORD).await;
    let rotated = panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": laptop.refresh})),
        )
        .await
        .expect(200);
    let fresh = rotated.body["access_token"].as_str().expect("access");
    panel.get("/api/v1/auth/me", fresh).await.expect(200);
    // The thief presents the copy it stole.
    assert_eq!(refresh(&panel, &laptop.refresh).await.as_u16(), 401);
    for token in [fresh, laptop.access.as_str(), phone.access.as_str()] {
        panel.get("/api/v1/auth/me", token).await.expect(401);
    }
    assert_eq!(refresh(&panel, &phone.refresh).await.as_u16(), 401);
}

/// An API token cannot mint another (a child that outlives its parent); a session mints only
/// with the current password.
async fn minting_needs_a_session_and_the_current_password(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    tenant_with_two_admins(&panel, "mint").await;
    let admin = login(&panel, "a1@mint.example", PASSWORD).await;
    let (parent_id, parent) = mint(
        &panel,
        &admin.access,
        PASSWORD,
        json!(["tokens_write", "websites_read"]),
    )
    .await;

    let child = panel
        .post(
            "/api/v1/tokens",
            &parent,
            &json!({"name": "child", "permissions": ["websites_read"],
                    "current_password": PASSWORD}),
        )
        .await
        .expect(403);
    assert_eq!(child.code(), "permission_denied");
    let wrong = panel
        .post(
            "/api/v1/tokens",
            &admin.access,
            &json!({"name": "x", "permissions": ["websites_read"],
                    "current_password": "guessed-password-1"}),
        )
        .await
        .expect(403);
    assert_eq!(wrong.code(), "reauthentication_failed");
    let missing = panel
        .post(
            "/api/v1/tokens",
            &admin.access,
            &json!({"name": "x", "permissions": ["websites_read"]}),
        )
        .await
        .expect(422);
    assert_eq!(missing.field(), Some("current_password"));
    let tokens = panel.list_all("/api/v1/tokens", &admin.access).await;
    assert_eq!(tokens.len(), 1, "only the parent exists: {tokens:?}");
    assert_eq!(tokens[0]["id"], parent_id);

    // Revoking the parent leaves nothing behind that it made.
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{parent_id}"),
            Some(&admin.access),
            None,
        )
        .await
        .expect(204);
    panel.get("/api/v1/websites", &parent).await.expect(401);
}

/// A second factor is enrolled and removed only with the current password (a stolen access
/// token cannot add the thief's authenticator or remove the owner's).
async fn second_factor_changes_need_the_current_password(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    tenant_with_two_admins(&panel, "twofa").await;
    let user = login(&panel, "c@twofa.example", PASSWORD).await;
    let enrol = |password: &'static str| {
        let access = user.access.clone();
        let panel = &panel;
        async move {
            panel
                .post(
                    "/api/v1/auth/2fa/enrol",
                    &access,
                    &json!({"current_password": password}),
                )
                .await
        }
    };
    let wrong = enrol("guessed-password-1").await.expect(403);
    assert_eq!(wrong.code(), "reauthentication_failed");
    let missing = panel
        .post("/api/v1/auth/2fa/enrol", &user.access, &json!({}))
        .await
        .expect(422);
    assert_eq!(missing.field(), Some("current_password"));
    let enrolment = enrol(PASSWORD).await.expect(200);
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().expect("secret"))
        .expect("secret");
    let now = u64::try_from(Utc::now().timestamp()).expect("after 1970");
    panel
        .post(
            "/api/v1/auth/2fa/confirm",
            &user.access,
            &json!({"code": secret.code_at(now)}),
        )
        .await
        .expect(204);

    let next = secret.code_at(now + 30);
    let wrong = panel
        .post(
            "/api/v1/auth/2fa/disable",
            &user.access,
            &json!({"code": next, "current_password": "guessed-password-1"}),
        )
        .await
        .expect(403);
    assert_eq!(wrong.code(), "reauthentication_failed");
    // Still enrolled: a login without a code is asked for one.
    let answer = panel
        .login_answer("c@twofa.example", PASSWORD)
        .await
        .expect(401);
    assert_eq!(answer.code(), "second_factor_required");
    panel
        .post(
            "/api/v1/auth/2fa/disable",
            &user.access,
            &json!({"code": next, "current_password": PASSWORD}),
        )
        .await
        .expect(204);
    login(&panel, "c@twofa.example", PASSWORD).await;
}

/// A token minted before the tenant required a second factor stops working until its owner
/// enrols one; a session of such a user may only enrol.
async fn tokens_minted_without_2fa_stop_when_the_tenant_requires_it(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let (tenant, _, _, _) = tenant_with_two_admins(&panel, "require").await;
    let user = login(&panel, "c@require.example", PASSWORD).await;
    let (_, api) = mint(&panel, &user.access, PASSWORD, json!(["websites_read"])).await;
    panel.get("/api/v1/websites", &api).await.expect(200);

    put(
        &panel,
        &format!("/api/v1/tenants/{tenant}/require-2fa"),
        &operator,
        &json!({"required": true}),
    )
    .await
    .expect(204);
    panel.get("/api/v1/websites", &api).await.expect(401);
    // The session's access token is enrol-only from now on, without a refresh.
    panel
        .get("/api/v1/websites", &user.access)
        .await
        .expect(403);
    let me = panel.get("/api/v1/auth/me", &user.access).await.expect(200);
    assert_eq!(me.body["second_factor_enrolment_required"], true);

    let enrolment = panel
        .post(
            "/api/v1/auth/2fa/enrol",
            &user.access,
            &json!({"current_password": PASSWORD}),
        )
        .await
        .expect(200);
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().expect("secret"))
        .expect("secret");
    let now = u64::try_from(Utc::now().timestamp()).expect("after 1970");
    panel
        .post(
            "/api/v1/auth/2fa/confirm",
            &user.access,
            &json!({"code": secret.code_at(now)}),
        )
        .await
        .expect(204);
    panel.get("/api/v1/websites", &api).await.expect(200);
    panel
        .get("/api/v1/websites", &user.access)
        .await
        .expect(200);
}

/// Every entry names the credential that acted (`session:N`, `api_token:N`, the strings a
/// logout's and a revocation's targets use); a role change records the old and new role; a new
/// token's entry names its id, as its revocation does.
async fn the_audit_log_names_the_credential_role_change_and_token(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let (_, _, a2, _) = tenant_with_two_admins(&panel, "audit").await;
    let admin = login(&panel, "a1@audit.example", PASSWORD).await;
    let (token_id, api) = mint(
        &panel,
        &admin.access,
        PASSWORD,
        json!(["users_read", "users_write", "audit_read", "tokens_write"]),
    )
    .await;
    patch(
        &panel,
        &format!("/api/v1/users/{a2}"),
        &api,
        &json!({"role": "reseller"}),
    )
    .await
    .expect(200);
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{token_id}"),
            Some(&admin.access),
            None,
        )
        .await
        .expect(204);

    let entries = panel.list_all("/api/v1/audit", &admin.access).await;
    let find = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == "success")
            .cloned()
            .collect::<Vec<_>>()
    };
    let session = format!("session:{}", admin.session);
    let token = format!("api_token:{token_id}");
    let created = find("api_token.create");
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["target"], token.as_str());
    assert_eq!(created[0]["credential"], session.as_str());
    let revoked = find("api_token.revoke");
    assert_eq!(revoked[0]["target"], token.as_str(), "the same target");
    assert_eq!(revoked[0]["credential"], session.as_str());
    let changed = find("user.update");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["credential"], token.as_str(), "the token acted");
    assert_eq!(changed[0]["detail"], "role: admin -> reseller");
    // Logins name no credential: the password acted, and it is no bearer credential.
    let logins = find("auth.login");
    assert!(!logins.is_empty());
    assert!(logins.iter().all(|e| e["credential"].is_null()));
}

/// Two panel processes on one PostgreSQL store: what process A does to a user takes effect at
/// once for the access tokens process B is shown (no per-process state decides who is in).
#[tokio::test]
async fn two_panels_on_one_postgres_store_agree() {
    if !Store::Postgres.available() {
        return;
    }
    let url = Store::Postgres.database_url().await.expect("postgres url");
    let a = TestPanel::start_with(Some(&url), "").await;
    // One signing key, as processes behind one load balancer share it.
    let key = a.dir.path().join("data").join("signing.key");
    let b = TestPanel::start_with(
        Some(&url),
        &format!("signing_key_file = {:?}", key.display().to_string()),
    )
    .await;
    let (_, _, a2, client) = tenant_with_two_admins(&a, "twopanels").await;
    let boss = login(&a, "a1@twopanels.example", PASSWORD).await;

    // A role change through A: B refuses the old access token on its next request.
    let target = login(&a, "a2@twopanels.example", PASSWORD).await;
    b.get("/api/v1/auth/me", &target.access).await.expect(200);
    patch(
        &a,
        &format!("/api/v1/users/{a2}"),
        &boss.access,
        &json!({"role": "client"}),
    )
    .await
    .expect(200);
    b.get("/api/v1/auth/me", &target.access).await.expect(401);

    // A suspension through A.
    let user = login(&b, "c@twopanels.example", PASSWORD).await;
    b.get("/api/v1/auth/me", &user.access).await.expect(200);
    patch(
        &a,
        &format!("/api/v1/users/{client}"),
        &boss.access,
        &json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    b.get("/api/v1/auth/me", &user.access).await.expect(401);
    patch(
        &a,
        &format!("/api/v1/users/{client}"),
        &boss.access,
        &json!({"status": "active"}),
    )
    .await
    .expect(200);

    // A password change through A.
    let user = login(&b, "c@twopanels.example", PASSWORD).await;
    let own = login(&a, "c@twopanels.example", PASSWORD).await;
    b.get("/api/v1/auth/me", &user.access).await.expect(200);
    put(
        &a,
        &format!("/api/v1/users/{client}/password"),
        &own.access,
        &json!({"password": "new-password-2", "current_password": PASSWORD}),
    )
    .await
    .expect(204);
    b.get("/api/v1/auth/me", &user.access).await.expect(401);

    // A logout through A.
    let session = login(&a, "c@twopanels.example", "new-password-2").await;
    b.get("/api/v1/auth/me", &session.access).await.expect(200);
    a.send(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&session.access),
        None,
    )
    .await
    .expect(204);
    b.get("/api/v1/auth/me", &session.access).await.expect(401);
}
