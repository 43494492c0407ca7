//! Guessing and flooding through the HTTP API, as a hostile customer would: each test runs the
//! attack, then checks the defence held. Second-factor codes share one budget per user that
//! grows its waits and is kept in the store (two panel processes on one PostgreSQL store
//! agree); anonymous password failures cannot lock the owner out of a source it logged in
//! from, and unknown accounts are answered byte for byte like known ones; a client's own
//! forwarding headers cannot move its throttle; one tenant's password writes cannot starve
//! another tenant's login; a read-only token hammering a forbidden endpoint gets 429s and a
//! few audit rows carrying a count; another tenant's e-mail address reveals nothing.
//!
//! Timing is measured in `benches/`, never asserted here.
#![allow(clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Answer, Store, TestPanel};
use hosting_core::auth::TotpSecret;
use reqwest::Method;
use serde_json::{Value, json};

/// Runs each `async fn name(store: Store)` on SQLite and PostgreSQL, where the attempt budgets
/// live in the store.
macro_rules! on_sqlite_and_postgres {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use crate::common::Store;

            #[tokio::test]
            async fn sqlite() {
                super::$name(Store::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                if Store::Postgres.available() {
                    super::$name(Store::Postgres).await;
                }
            }
        }
    )+};
}

on_sqlite_and_postgres!(
    second_factor_guesses_share_one_budget_that_backs_off,
    anonymous_failures_do_not_lock_the_owner_out,
    unknown_and_known_accounts_get_identical_answers,
    client_forwarding_headers_cannot_move_the_throttle,
    denied_calls_are_limited_and_audited_as_bursts,
    another_tenants_email_reveals_nothing,
);

/// Budgets spent fast: three free code guesses, then waits of 8 s, 16 s, ...; three free
/// passwords, then 30 s (long enough that no wait ends while a debug build hashes).
const TIGHT: &str = "second_factor_attempts = 3\nsecond_factor_backoff_secs = 8\n\
                     login_attempts_per_minute = 3\nlogin_backoff_secs = 30\n\
                     trusted_proxies = [\"127.0.0.1\"]\n";

/// The authenticator's code `offset_steps` steps from now.
fn code(secret: &TotpSecret, offset_steps: i64) -> String {
    let now = Utc::now().timestamp() + offset_steps * 30;
    secret.code_at(u64::try_from(now).expect("after 1970"))
}

/// Waits until the current 30-second TOTP step has at least 20 s left.
async fn early_in_a_step() {
    let into = Utc::now().timestamp().rem_euclid(30);
    if into > 10 {
        let wait = u64::try_from(30 - into).expect("under 30") + 1;
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

fn retry_after(answer: &Answer) -> u64 {
    answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {answer:?}"))
}

/// A login as a client behind the trusted proxy at 127.0.0.1 whose address is `source`.
async fn login_from(panel: &TestPanel, source: &str, email: &str, password: &str) -> Answer {
    login_with(panel, source, json!({"email": email, "password": password})).await
}

async fn login_with(panel: &TestPanel, source: &str, body: Value) -> Answer {
    let response = panel
        .client
        .post(format!("{}/api/v1/auth/login", panel.base))
        .header("x-forwarded-for", source)
        .json(&body)
        .send()
        .await
        .expect("request");
    TestPanel::answer(response).await
}

/// A tenant admin with a confirmed second factor: its access token and secret.
async fn enrolled(
    panel: &TestPanel,
    slug: &str,
    email: &str,
    password: &str,
) -> (String, TotpSecret) {
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, slug).await;
    panel
        .tenant_user(&operator, tenant, "admin", email, password)
        .await;
    let token = panel.login(email, password).await;
    let enrolment = panel
        .post(
            "/api/v1/auth/2fa/enrol",
            &token,
            &json!({"current_password": password}),
        )
        .await
        .expect(200);
    let secret = TotpSecret::from_base32(enrolment.body["secret"].as_str().expect("secret"))
        .expect("secret");
    early_in_a_step().await;
    panel
        .post(
            "/api/v1/auth/2fa/confirm",
            &token,
            &json!({"code": code(&secret, -1)}),
        )
        .await
        .expect(204);
    (token, secret)
}

async fn disable(panel: &TestPanel, token: &str, code: &str, password: &str) -> Answer {
    panel
        .post(
            "/api/v1/auth/2fa/disable",
            token,
            &json!({"code": code, "current_password": password}),
        )
        .await
}

/// Attack: guess codes at the login's second step and at `POST /auth/2fa/disable` with a
/// stolen session. Check: both spend one budget; once it is spent even the right code is
/// refused (429, Retry-After), and the wait grows with each further guess.
async fn second_factor_guesses_share_one_budget_that_backs_off(store: Store) {
    let panel = TestPanel::start_on(store, TIGHT).await;
    let (email, password) = ("otp@brute.example", "otp-password-1");
    let (token, secret) = enrolled(&panel, "otp", email, password).await;
    let wrong = |right: &str| {
        if right == "000000" {
            "000001"
        } else {
            "000000"
        }
        .to_owned()
    };

    // Two wrong codes at the login, one at disable: the budget of three is spent.
    for _ in 0..2 {
        let answer = login_with(
            &panel,
            "198.51.100.1",
            json!({"email": email, "password": password, "totp_code": wrong(&code(&secret, 0))}),
        )
        .await
        .expect(401);
        assert_eq!(answer.code(), "unauthenticated");
    }
    disable(&panel, &token, &wrong(&code(&secret, 0)), password)
        .await
        .expect(422);

    // The right code is refused now, at the login and at disable alike.
    let refused = disable(&panel, &token, &code(&secret, 0), password)
        .await
        .expect(429);
    let first_wait = retry_after(&refused);
    assert!((1..=8).contains(&first_wait), "{first_wait}");
    login_with(
        &panel,
        "198.51.100.1",
        json!({"email": email, "password": password, "totp_code": code(&secret, 0)}),
    )
    .await
    .expect(429);

    // After the wait one guess is allowed; the next wait is longer.
    tokio::time::sleep(Duration::from_secs(first_wait)).await;
    disable(&panel, &token, &wrong(&code(&secret, 0)), password)
        .await
        .expect(422);
    let refused = disable(&panel, &token, &code(&secret, 0), password)
        .await
        .expect(429);
    let second_wait = retry_after(&refused);
    assert!(second_wait > 8 && second_wait <= 16, "{second_wait}");

    // Once the wait is over the owner's right code works, and clears the budget.
    tokio::time::sleep(Duration::from_secs(second_wait)).await;
    disable(&panel, &token, &code(&secret, 0), password)
        .await
        .expect(204);
}

/// Two panel processes on one PostgreSQL store: guesses at one spend the budget the other
/// checks.
#[tokio::test]
async fn two_panels_on_one_store_share_the_code_budget() {
    if !Store::Postgres.available() {
        return;
    }
    let url = Store::Postgres.database_url().await.expect("postgres url");
    let first = TestPanel::start_with(Some(&url), TIGHT).await;
    let second = TestPanel::start_with(Some(&url), TIGHT).await;
    let (email, password) = ("two@brute.example", "two-password-1");
    let (token, secret) = enrolled(&first, "two", email, password).await;
    for _ in 0..3 {
        disable(&first, &token, "000000", password)
            .await
            .expect(422);
    }
    let refused = login_with(
        &second,
        "198.51.100.1",
        json!({"email": email, "password": password, "totp_code": code(&secret, 0)}),
    )
    .await
    .expect(429);
    assert!(retry_after(&refused) >= 1);
}

/// Attack: anonymous wrong passwords for the owner's account from elsewhere, past the budget.
/// Check: the owner still logs in from a source it logged in from before; a new source is
/// slowed down until the owner's login clears the account's budget.
async fn anonymous_failures_do_not_lock_the_owner_out(store: Store) {
    let panel = TestPanel::start_on(store, TIGHT).await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "owner").await;
    let (email, password) = ("owner@brute.example", "owner-password-1");
    panel
        .tenant_user(&operator, tenant, "admin", email, password)
        .await;
    login_from(&panel, "198.51.100.10", email, password)
        .await
        .expect(200);

    // Ten failures from ten attackers (so no source's own budget stops them first).
    let mut refused = 0;
    for i in 0..10 {
        let answer = login_from(&panel, &format!("203.0.113.{i}"), email, "wrong-password-1").await;
        match answer.status.as_u16() {
            401 => {}
            429 => refused += 1,
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert!(refused > 0, "the account's budget slowed the guessing down");
    // A new source with the right password is slowed down too (it could be a guesser)...
    login_from(&panel, "192.0.2.77", email, password)
        .await
        .expect(429);
    // ... but the owner's known source gets in, and that lifts the account's throttle.
    login_from(&panel, "198.51.100.10", email, password)
        .await
        .expect(200);
    login_from(&panel, "192.0.2.77", email, password)
        .await
        .expect(200);
}

/// The parts of an answer a client can see, without what differs per request: the date, the
/// request id, and the seconds of a wait (which count down between two requests).
fn visible(answer: &Answer) -> (u16, Vec<(String, String)>, String) {
    let seconds = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect()
    };
    let mut headers: Vec<(String, String)> = answer
        .headers
        .iter()
        .filter(|(name, _)| !["date", "x-request-id"].contains(&name.as_str()))
        .map(|(n, v)| {
            let value = v.to_str().unwrap_or("<binary>");
            let value = if n == "retry-after" || n == "content-length" {
                seconds(value)
            } else {
                value.to_owned()
            };
            (n.to_string(), value)
        })
        .collect();
    headers.sort();
    let mut body = answer.body.clone();
    if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("request_id");
    }
    (answer.status.as_u16(), headers, seconds(&body.to_string()))
}

/// Attack: tell which accounts exist from the answers to wrong passwords, before and after
/// the throttle starts. Check: a known account and an unknown one get the same status, headers
/// and body at every step (timing is compared in `benches/`).
async fn unknown_and_known_accounts_get_identical_answers(store: Store) {
    let panel = TestPanel::start_on(store, TIGHT).await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "known").await;
    panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "known@brute.example",
            "known-password-1",
        )
        .await;
    for step in 0..5 {
        let known = login_from(
            &panel,
            "203.0.113.1",
            "known@brute.example",
            "wrong-password-1",
        )
        .await;
        let unknown = login_from(
            &panel,
            "203.0.113.2",
            "nobody@brute.example",
            "wrong-password-1",
        )
        .await;
        assert_eq!(visible(&known), visible(&unknown), "step {step}");
        assert!(
            [401, 429].contains(&known.status.as_u16()),
            "step {step}: {}",
            known.text
        );
    }
    // The throttle was reached (the last answers were 429s, for both alike).
    let known = login_from(
        &panel,
        "203.0.113.1",
        "known@brute.example",
        "wrong-password-1",
    )
    .await;
    assert_eq!(known.status.as_u16(), 429, "{}", known.text);
}

/// Attack: behind the trusted proxy, write a different `Forwarded` and `X-Forwarded-For`
/// address into each guess. Check: the throttle keys on the address the proxy appended, so
/// the guesses are refused after the source's budget.
async fn client_forwarding_headers_cannot_move_the_throttle(store: Store) {
    let panel = TestPanel::start_on(store, TIGHT).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let response = panel
            .client
            .post(format!("{}/api/v1/auth/login", panel.base))
            .header("forwarded", format!("for=192.0.2.{i}"))
            // The client wrote the first address; the proxy appended the second.
            .header("x-forwarded-for", format!("192.0.2.{i}, 203.0.113.99"))
            .json(
                &json!({"email": format!("guess{i}@brute.example"), "password": "guess-password"}),
            )
            .send()
            .await
            .expect("request");
        statuses.push(TestPanel::answer(response).await.status.as_u16());
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
}

/// Attack: tenant A's admins flood password writes. Check: tenant B's login completes while
/// A's writes are still queued (a login waits for at most one write), and A's writes past
/// its share are refused with a retry delay rather than queued.
#[tokio::test]
async fn a_tenants_password_writes_do_not_starve_another_tenants_login() {
    let panel = TestPanel::start_with(
        None,
        "password_writes_per_tenant = 6\npassword_writes_per_source = 6\n",
    )
    .await;
    let operator = panel.admin().await;
    let a = panel.tenant(&operator, "flooder").await;
    let b = panel.tenant(&operator, "victim").await;
    panel
        .tenant_user(&operator, b, "admin", "b@brute.example", "b-password-1")
        .await;
    let target = panel
        .tenant_user(
            &operator,
            a,
            "client",
            "a-target@brute.example",
            "target-pass-1",
        )
        .await;
    let mut admins = Vec::new();
    for i in 0..7 {
        let email = format!("a{i}@brute.example");
        panel
            .tenant_user(&operator, a, "admin", &email, "a-password-1")
            .await;
        admins.push(panel.login(&email, "a-password-1").await);
    }
    let panel = Arc::new(panel);
    let done = Arc::new(AtomicUsize::new(0));
    let mut writes = Vec::new();
    for token in admins {
        let (panel, done) = (panel.clone(), done.clone());
        writes.push(tokio::spawn(async move {
            let answer = panel
                .send(
                    Method::PUT,
                    &format!("/api/v1/users/{target}/password"),
                    Some(&token),
                    Some(&json!({"password": "a-new-password-1"})),
                )
                .await;
            done.fetch_add(1, Ordering::SeqCst);
            answer
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    panel
        .login_answer("b@brute.example", "b-password-1")
        .await
        .expect(200);
    let finished_before_b = done.load(Ordering::SeqCst);
    let mut statuses = Vec::new();
    for write in writes {
        let answer = write.await.expect("write");
        if answer.status.as_u16() == 429 {
            assert!(retry_after(&answer) >= 1);
        }
        statuses.push(answer.status.as_u16());
    }
    assert!(
        statuses.iter().all(|s| [204, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "A's seventh write is past its share: {statuses:?}"
    );
    let admitted = statuses.iter().filter(|s| **s == 204).count();
    assert!(
        finished_before_b < admitted,
        "B's login finished after all {admitted} of A's writes"
    );
}

/// Attack: a read-only API token hammers an endpoint it may not use. Check: past its
/// credential's limit it gets 429s with Retry-After (reaching no use case), and the audit
/// log holds a few rows for the burst, one of them counting the repeats.
async fn denied_calls_are_limited_and_audited_as_bursts(store: Store) {
    let panel = TestPanel::start_on(
        store,
        "rate_limit_per_credential = 20\nrate_limit_window_secs = 3\naudit_denied_burst_secs = 1\n",
    )
    .await;
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "readonly").await;
    panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "ro@brute.example",
            "ro-password-1",
        )
        .await;
    let session = panel.login("ro@brute.example", "ro-password-1").await;
    let token = panel
        .post(
            "/api/v1/tokens",
            &session,
            &json!({"name": "read only", "permissions": ["websites_read"],
                    "current_password": "ro-password-1"}),
        )
        .await
        .expect(201);
    let token = token.body["secret"].as_str().expect("secret").to_owned();
    let hammer = json!({"role": "client", "email": "new@brute.example"});
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let answer = panel.post("/api/v1/users", &token, &hammer).await;
        if answer.status.as_u16() == 429 {
            assert!(retry_after(&answer) >= 1);
        }
        statuses.push(answer.status.as_u16());
    }
    assert!(
        statuses.iter().all(|s| [403, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    // Once the burst is over, the next denial writes the burst's count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    panel
        .post("/api/v1/users", &token, &hammer)
        .await
        .expect(403);
    let denied: Vec<Value> = panel
        .list_all("/api/v1/audit", &operator)
        .await
        .into_iter()
        .filter(|e| e["action"] == "user.create" && e["outcome"] == "denied")
        .collect();
    let forbidden = statuses.iter().filter(|s| **s == 403).count() + 1;
    assert!(
        denied.len() <= 4 && denied.len() < forbidden,
        "{} rows for {forbidden} denials: {denied:?}",
        denied.len()
    );
    assert!(
        denied.iter().any(|e| e["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("denied ") && d.contains(" more times"))),
        "a row counts the burst: {denied:?}"
    );
}

/// Attack: a tenant admin creates a user with another tenant's e-mail address to learn that
/// it exists there. Check: the answer is the same as for a duplicate in its own tenant, and
/// names nothing.
async fn another_tenants_email_reveals_nothing(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let operator = panel.admin().await;
    let a = panel.tenant(&operator, "mine").await;
    let b = panel.tenant(&operator, "theirs").await;
    panel
        .tenant_user(
            &operator,
            a,
            "admin",
            "a-admin@brute.example",
            "a-password-1",
        )
        .await;
    panel
        .tenant_user(&operator, a, "client", "mine@brute.example", "m-password-1")
        .await;
    panel
        .tenant_user(
            &operator,
            b,
            "client",
            "theirs@brute.example",
            "t-password-1",
        )
        .await;
    let admin = panel.login("a-admin@brute.example", "a-password-1").await;
    let create =
        |email: &str| json!({"role": "client", "email": email, "password": "x-password-1"});
    let own = panel
        .post("/api/v1/users", &admin, &create("mine@brute.example"))
        .await
        .expect(422);
    let other = panel
        .post("/api/v1/users", &admin, &create("theirs@brute.example"))
        .await
        .expect(422);
    assert_eq!(own.field(), Some("email"));
    assert_eq!(visible(&own), visible(&other));
    assert!(!other.text.contains("theirs@"), "{}", other.text);
    // The operator's own login is untouched by all of this.
    panel.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}
