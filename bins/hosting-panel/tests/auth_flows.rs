//! Logging in over HTTP: passwords, throttling and lockout, refresh-token rotation and replay,
//! logout, TOTP enrolment and login with codes and recovery codes, a tenant that requires a
//! second factor, and API tokens limited to some permissions.
#![allow(clippy::expect_used)]

mod common;

use chrono::Utc;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Store, TestPanel};
use hosting_core::auth::TotpSecret;
use reqwest::Method;
use serde_json::json;

// Each body below runs on SQLite, PostgreSQL and MariaDB: `name::{sqlite,postgres,mariadb}`.
common::on_every_store!(
    login_me_refresh_replay_and_logout,
    login_throttle_answers_429_with_retry_after,
    repeated_failures_slow_the_account_down,
    totp_enrol_confirm_login_recovery_and_disable,
    a_tenant_that_requires_2fa_only_lets_its_users_enrol,
    api_tokens_are_limited_to_their_permissions,
    suspending_a_user_or_changing_its_password_ends_its_sessions,
);

/// The authenticator's code `offset_steps` steps from now.
fn code(secret: &TotpSecret, offset_steps: i64) -> String {
    let now = Utc::now().timestamp() + offset_steps * 30;
    secret.code_at(u64::try_from(now).expect("after 1970"))
}

/// Waits until the current 30-second TOTP step has at least 15 s left, so that the codes a
/// test computes for "one step back", "now" and "one step ahead" keep naming the same steps
/// through the few requests that use them.
async fn early_in_a_step() {
    let into = Utc::now().timestamp().rem_euclid(30);
    if into > 15 {
        let wait = u64::try_from(30 - into).expect("under 30") + 1;
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
}

async fn login_me_refresh_replay_and_logout(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let login = panel
        .login_answer(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect(200);
    assert_eq!(login.body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(login.body["second_factor_enrolment_required"], false);
    let access = login.body["access_token"].as_str().expect("access");
    let refresh = login.body["refresh_token"].as_str().expect("refresh");
    assert!(refresh.starts_with("hsr_"));

    let me = panel.get("/api/v1/auth/me", access).await.expect(200);
    assert_eq!(me.body["grant"], "session");
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["user"]["email"], ADMIN_EMAIL);

    // Wrong password and unknown account: the same 401, with the challenge header.
    for (email, password) in [
        (ADMIN_EMAIL, "wrong-password-1"),
        ("nobody@panel.example", "wrong-password-1"),
    ] {
        let answer = panel.login_answer(email, password).await.expect(401);
        answer.expect_client_error("wrong credentials");
        assert_eq!(answer.code(), "unauthenticated");
        assert_eq!(
            answer.body["error"]["message"],
            "not authenticated: wrong e-mail, password or code"
        );
        assert_eq!(
            answer
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }

    // Refresh rotates; presenting a used refresh token revokes the whole session.
    let rotated = panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": refresh})),
        )
        .await
        .expect(200);
    let refresh2 = rotated.body["refresh_token"].as_str().expect("refresh2");
    assert_ne!(refresh2, refresh);
    let replay = panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": refresh})),
        )
        .await
        .expect(401);
    assert_eq!(replay.code(), "unauthenticated");
    panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": refresh2})),
        )
        .await
        .expect(401);
    // The replay also ended the user's other sessions and access tokens.
    panel.get("/api/v1/auth/me", access).await.expect(401);
    let access = panel.admin().await;
    let audit = panel
        .get("/api/v1/audit?limit=500", &access)
        .await
        .expect(200);
    assert!(
        audit.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["action"] == "auth.refresh" && e["outcome"] == "denied"),
        "the replay is audited"
    );

    // Logout ends the session: its access and refresh tokens stop working.
    let session = panel
        .login_answer(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect(200);
    let access = session.body["access_token"].as_str().expect("access");
    let refresh = session.body["refresh_token"].as_str().expect("refresh");
    panel
        .send(Method::POST, "/api/v1/auth/logout", Some(access), None)
        .await
        .expect(204);
    panel.get("/api/v1/auth/me", access).await.expect(401);
    panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": refresh})),
        )
        .await
        .expect(401);
    // Malformed refresh tokens are 401, not 500.
    for bad in ["", "hsk_abc", "x".repeat(5000).as_str()] {
        let answer = panel
            .send(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                Some(&json!({"refresh_token": bad})),
            )
            .await;
        assert_eq!(answer.status.as_u16(), 401, "{}", answer.text);
    }
}

async fn login_throttle_answers_429_with_retry_after(store: Store) {
    let panel = TestPanel::start_on(store, "login_attempts_per_minute = 3").await;
    for _ in 0..3 {
        panel
            .login_answer(ADMIN_EMAIL, "wrong-password-1")
            .await
            .expect(401);
    }
    // The budget is spent: the next guesses wait (the right password from a source that logged
    // in as the user before is not held by it; see brute_force.rs).
    let mut guesses = 0;
    let answer = loop {
        guesses += 1;
        let answer = panel.login_answer(ADMIN_EMAIL, "wrong-password-2").await;
        if answer.status.as_u16() == 429 || guesses == 3 {
            break answer.expect(429);
        }
    };
    answer.expect_client_error("throttled");
    assert_eq!(answer.code(), "rate_limited");
    let retry: u64 = answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
}

/// Ten failures spend the account's (and this source's) budget: the next attempt waits, even
/// with the right password from a source that never logged in as the user. The owner's own
/// sources and the answers for unknown accounts are covered in `brute_force.rs`.
async fn repeated_failures_slow_the_account_down(store: Store) {
    let panel = TestPanel::start_on(
        store,
        "login_attempts_per_minute = 10\nlogin_backoff_secs = 60",
    )
    .await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "locked").await;
    panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "lock@panel.example",
            "lock-password-1",
        )
        .await;
    for _ in 0..10 {
        panel
            .login_answer("lock@panel.example", "wrong-password-1")
            .await
            .expect(401);
    }
    let answer = panel
        .login_answer("lock@panel.example", "lock-password-1")
        .await
        .expect(429);
    assert_eq!(answer.code(), "rate_limited");
    assert!(answer.headers.get("retry-after").is_some());
}

async fn totp_enrol_confirm_login_recovery_and_disable(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "totp").await;
    panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "otp@panel.example",
            "otp-password-1",
        )
        .await;
    let token = panel.login("otp@panel.example", "otp-password-1").await;

    let enrolment = panel
        .post(
            "/api/v1/auth/2fa/enrol",
            &token,
            &json!({"current_password": "otp-password-1"}),
        )
        .await
        .expect(200);
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().expect("secret"))
        .expect("base32 secret");
    assert!(
        enrolment.body["provisioning_uri"]
            .as_str()
            .expect("uri")
            .starts_with("otpauth://totp/")
    );
    let recovery: Vec<String> = enrolment.body["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    // Not active before it is confirmed; a wrong code does not confirm it.
    panel.login("otp@panel.example", "otp-password-1").await;
    let wrong = panel
        .post(
            "/api/v1/auth/2fa/confirm",
            &token,
            &json!({"code": "000000"}),
        )
        .await;
    if wrong.status.as_u16() != 204 {
        wrong.expect_client_error("wrong confirm code");
        assert_eq!(wrong.code(), "invalid");
        assert_eq!(wrong.field(), Some("code"));
    }
    // Each accepted code must be newer than the last one used: one step back, now, one ahead.
    early_in_a_step().await;
    panel
        .post(
            "/api/v1/auth/2fa/confirm",
            &token,
            &json!({"code": code(&secret, -1)}),
        )
        .await
        .expect(204);

    let answer = panel
        .login_answer("otp@panel.example", "otp-password-1")
        .await
        .expect(401);
    assert_eq!(answer.code(), "second_factor_required");
    let login = |extra: serde_json::Value| {
        let mut body = json!({"email": "otp@panel.example", "password": "otp-password-1"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    let answer = panel
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&login(json!({"totp_code": "12345x"}))),
        )
        .await
        .expect(401);
    assert_eq!(answer.code(), "unauthenticated");
    let answer = panel
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&login(json!({"totp_code": code(&secret, 0)}))),
        )
        .await
        .expect(200);
    let token = answer.body["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    // The same code again is a replay.
    panel
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&login(json!({"totp_code": code(&secret, 0)}))),
        )
        .await
        .expect(401);
    // A recovery code works once.
    panel
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&login(json!({"recovery_code": recovery[0]}))),
        )
        .await
        .expect(200);
    panel
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&login(json!({"recovery_code": recovery[0]}))),
        )
        .await
        .expect(401);
    // Enrolling again while one is active is a conflict.
    panel
        .post(
            "/api/v1/auth/2fa/enrol",
            &token,
            &json!({"current_password": "otp-password-1"}),
        )
        .await
        .expect(409);
    // Disable with the next step's code; then a password alone logs in again.
    panel
        .post(
            "/api/v1/auth/2fa/disable",
            &token,
            &json!({"code": code(&secret, 1), "current_password": "otp-password-1"}),
        )
        .await
        .expect(204);
    panel.login("otp@panel.example", "otp-password-1").await;
}

async fn a_tenant_that_requires_2fa_only_lets_its_users_enrol(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "strict").await;
    panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "strict@panel.example",
            "strict-password-1",
        )
        .await;
    panel
        .send(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/require-2fa"),
            Some(&operator),
            Some(&json!({"required": true})),
        )
        .await
        .expect(204);
    let login = panel
        .login_answer("strict@panel.example", "strict-password-1")
        .await
        .expect(200);
    assert_eq!(login.body["second_factor_enrolment_required"], true);
    let token = login.body["access_token"].as_str().expect("access");
    let answer = panel.get("/api/v1/websites", token).await.expect(403);
    assert_eq!(answer.code(), "permission_denied");
    let me = panel.get("/api/v1/auth/me", token).await.expect(200);
    assert_eq!(me.body["second_factor_enrolment_required"], true);
    let enrolment = panel
        .post(
            "/api/v1/auth/2fa/enrol",
            token,
            &json!({"current_password": "strict-password-1"}),
        )
        .await
        .expect(200);
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().expect("secret"))
        .expect("secret");
    early_in_a_step().await;
    panel
        .post(
            "/api/v1/auth/2fa/confirm",
            token,
            &json!({"code": code(&secret, 0)}),
        )
        .await
        .expect(204);
    // Logged in again with the factor, everything the role allows works.
    let answer = panel
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(
                &json!({"email": "strict@panel.example", "password": "strict-password-1",
                        "totp_code": code(&secret, 1)}),
            ),
        )
        .await
        .expect(200);
    let token = answer.body["access_token"].as_str().expect("access");
    panel.get("/api/v1/websites", token).await.expect(200);
    // The factor cannot be removed while the tenant requires it.
    panel
        .post(
            "/api/v1/auth/2fa/disable",
            token,
            &json!({"code": code(&secret, 1), "current_password": "strict-password-1"}),
        )
        .await
        .expect(409);
}

async fn api_tokens_are_limited_to_their_permissions(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let created = panel
        .post(
            "/api/v1/tokens",
            &operator,
            &json!({"name": "read websites", "permissions": ["websites_read"],
                    "current_password": ADMIN_PASSWORD}),
        )
        .await
        .expect(201);
    let secret = created.body["secret"].as_str().expect("secret");
    assert!(secret.starts_with("hsk_"));
    let id = created.body["token"]["id"].as_i64().expect("id");
    assert_eq!(
        created.body["token"]["permissions"],
        json!(["websites_read"])
    );

    panel.get("/api/v1/websites", secret).await.expect(200);
    let me = panel.get("/api/v1/auth/me", secret).await.expect(200);
    assert_eq!(me.body["grant"], "api_token");
    assert_eq!(me.body["permissions"], json!(["websites_read"]));
    for (method, path, body) in [
        (Method::GET, "/api/v1/users", None),
        (Method::GET, "/api/v1/tenants", None),
        (Method::GET, "/api/v1/audit", None),
        (Method::GET, "/api/v1/tokens", None),
        (
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"name": "Nope", "slug": "nope"})),
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "escalate", "permissions": ["tenants_write"],
                        "current_password": ADMIN_PASSWORD})),
        ),
        (
            Method::POST,
            "/api/v1/auth/2fa/enrol",
            Some(json!({"current_password": ADMIN_PASSWORD})),
        ),
    ] {
        let answer = panel
            .send(method.clone(), path, Some(secret), body.as_ref())
            .await;
        assert_eq!(
            answer.status.as_u16(),
            403,
            "{method} {path}: {}",
            answer.text
        );
        answer.expect_client_error(path);
        assert_eq!(answer.code(), "permission_denied");
    }
    // A token cannot mint a token, not even with less than it holds (tests/credentials.rs).
    let tokens = panel
        .post(
            "/api/v1/tokens",
            &operator,
            &json!({"name": "token maker", "permissions": ["tokens_write", "websites_read"],
                    "current_password": ADMIN_PASSWORD}),
        )
        .await
        .expect(201);
    let maker = tokens.body["secret"].as_str().expect("secret");
    for permissions in [json!(["users_write"]), json!(["websites_read"])] {
        panel
            .post(
                "/api/v1/tokens",
                maker,
                &json!({"name": "child", "permissions": permissions,
                        "current_password": ADMIN_PASSWORD}),
            )
            .await
            .expect(403);
    }
    // A token cannot log out (it has no session).
    let answer = panel
        .send(Method::POST, "/api/v1/auth/logout", Some(secret), None)
        .await
        .expect(409);
    answer.expect_client_error("token logout");

    // Revoked: 401 from then on.
    let list = panel.list_all("/api/v1/tokens", &operator).await;
    assert!(list.iter().any(|t| t["id"] == id));
    assert!(list.iter().all(|t| t.get("secret").is_none()));
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&operator),
            None,
        )
        .await
        .expect(204);
    panel.get("/api/v1/websites", secret).await.expect(401);
}

async fn suspending_a_user_or_changing_its_password_ends_its_sessions(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "sessions").await;
    let user = panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "s@panel.example",
            "first-password-1",
        )
        .await;
    let login = panel
        .login_answer("s@panel.example", "first-password-1")
        .await
        .expect(200);
    let refresh = login.body["refresh_token"].as_str().expect("refresh");
    let token = login.body["access_token"].as_str().expect("access");
    // Its own password, with SQL and shell metacharacters.
    let password = "it's \"quoted\"; DROP TABLE users; --";
    panel
        .send(
            Method::PUT,
            &format!("/api/v1/users/{user}/password"),
            Some(token),
            Some(&json!({"password": password, "current_password": "first-password-1"})),
        )
        .await
        .expect(204);
    panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": refresh})),
        )
        .await
        .expect(401);
    panel
        .login_answer("s@panel.example", "first-password-1")
        .await
        .expect(401);
    let admin = panel.login("s@panel.example", password).await;
    let client = panel
        .user(&admin, "client", "c@panel.example", "client-password-1")
        .await;
    let login = panel
        .login_answer("c@panel.example", "client-password-1")
        .await
        .expect(200);
    let refresh = login.body["refresh_token"].as_str().expect("refresh");
    // Suspended by its tenant's admin: no refresh, no login.
    panel
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{client}"),
            Some(&admin),
            Some(&json!({"status": "suspended"})),
        )
        .await
        .expect(200);
    panel
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": refresh})),
        )
        .await
        .expect(401);
    let answer = panel
        .login_answer("c@panel.example", "client-password-1")
        .await;
    assert_eq!(answer.status.as_u16(), 403, "{}", answer.text);
}
