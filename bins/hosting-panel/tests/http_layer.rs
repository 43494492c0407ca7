//! The HTTP layer's policies: CORS only for configured origins, and the client address from
//! `X-Forwarded-For` / `Forwarded` only when the peer is a trusted proxy (seen in the audit log).
#![allow(clippy::expect_used)]

mod common;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestPanel};
use serde_json::json;

async fn login_from(panel: &TestPanel, header: (&str, &str)) {
    let response = panel
        .client
        .post(format!("{}/api/v1/auth/login", panel.base))
        .header(header.0, header.1)
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status().as_u16(), 200);
}

async fn last_login_ip(panel: &TestPanel, token: &str) -> serde_json::Value {
    let audit = panel.list_all("/api/v1/audit", token).await;
    audit
        .iter()
        .rev()
        .find(|e| e["action"] == "auth.login" && e["outcome"] == "success")
        .map(|e| e["source_ip"].clone())
        .expect("a login entry")
}

#[tokio::test]
async fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
    let untrusted = TestPanel::start().await;
    login_from(&untrusted, ("x-forwarded-for", "203.0.113.5")).await;
    let token = untrusted.admin().await;
    assert_eq!(last_login_ip(&untrusted, &token).await, "127.0.0.1");

    let behind_proxy = TestPanel::start_with(None, "trusted_proxies = [\"127.0.0.1\"]").await;
    login_from(
        &behind_proxy,
        ("x-forwarded-for", "198.51.100.1, 203.0.113.5"),
    )
    .await;
    let token = behind_proxy.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // The admin() login above came directly from 127.0.0.1 (no header): find ours.
    let audit = behind_proxy.list_all("/api/v1/audit", &token).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "auth.login" && e["source_ip"] == "203.0.113.5"),
        "{audit:?}"
    );
    // Only X-Forwarded-For, the header the proxy appends to, is read: a `Forwarded` header the
    // client wrote itself moves nothing.
    login_from(
        &behind_proxy,
        ("forwarded", "for=\"[2001:db8::9]:1234\";proto=https"),
    )
    .await;
    let audit = behind_proxy.list_all("/api/v1/audit", &token).await;
    assert!(
        !audit.iter().any(|e| e["source_ip"] == "2001:db8::9"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let panel = TestPanel::start_with(
        None,
        "cors_allowed_origins = [\"https://panel.example.com\"]",
    )
    .await;
    let preflight = |origin: &'static str| {
        panel
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/tenants", panel.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://panel.example.com")
        .await
        .expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://panel.example.com")
    );
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // The actual request still needs a token.
    let response = panel
        .client
        .get(format!("{}/api/v1/tenants", panel.base))
        .header("origin", "https://panel.example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
}
