//! Every route is behind authentication: the served OpenAPI document is read, and every path
//! (path parameters filled with 1) is asked with every method without credentials. Only the
//! five public endpoints answer anything but 401; unknown paths are 401 too, never 404.
#![allow(clippy::expect_used)]

mod common;

use common::{Store, TestPanel};
use reqwest::Method;

// Each body below runs on SQLite, PostgreSQL and MariaDB: `name::{sqlite,postgres,mariadb}`.
common::on_every_store!(
    every_documented_route_needs_authentication,
    unknown_paths_and_bad_tokens_are_401_not_404,
    public_endpoints_answer_and_authenticated_misses_are_json,
    graceful_shutdown_stops_accepting,
);

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"];

const PUBLIC: [(&str, &str); 5] = [
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/api/v1/openapi.json"),
];

fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('1');
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

#[track_caller]
fn assert_security_headers(answer: &common::Answer, what: &str) {
    let h = &answer.headers;
    let get = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("cache-control"), "no-store", "{what}");
    assert!(
        get("content-security-policy").starts_with("default-src 'none'"),
        "{what}"
    );
    assert!(!get("x-request-id").is_empty(), "{what}: no request id");
    assert!(
        h.get("access-control-allow-origin").is_none(),
        "{what}: CORS is off by default"
    );
}

async fn every_documented_route_needs_authentication(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let doc = panel
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().expect("paths");
    assert!(paths.len() >= 30, "only {} paths documented", paths.len());
    let mut asked = 0;
    for (path, operations) in paths {
        // Every documented operation names the bearer scheme or is one of the public five.
        for (method, operation) in operations.as_object().expect("operations") {
            let public = PUBLIC
                .iter()
                .any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path);
            let security = &operation["security"];
            if public {
                assert_eq!(security, &serde_json::json!([{}]), "{method} {path}");
            } else {
                assert!(security.is_null(), "{method} {path} overrides security");
            }
        }
        let url = fill(path);
        for method in METHODS {
            let m = Method::from_bytes(method.as_bytes()).expect("method");
            let answer = panel.send(m, &url, None, None).await;
            asked += 1;
            let public = PUBLIC.iter().any(|(pm, pp)| *pm == method && *pp == path);
            assert_security_headers(&answer, &format!("{method} {url}"));
            if public {
                assert_ne!(answer.status.as_u16(), 401, "{method} {url} is public");
                continue;
            }
            assert_eq!(
                answer.status.as_u16(),
                401,
                "{method} {url} without credentials: {}",
                answer.text
            );
            assert_eq!(
                answer
                    .headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{method} {url}"
            );
            if method != "HEAD" {
                answer.expect_client_error(&format!("{method} {url}"));
                assert_eq!(answer.code(), "unauthenticated", "{method} {url}");
            }
        }
    }
    assert!(asked >= 7 * 30);
}

async fn unknown_paths_and_bad_tokens_are_401_not_404(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    for path in [
        "/",
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v2/tenants",
        "/api/v1/nope",
        "/api/v1/tenants/1/secrets",
        "/api/v1/auth/login/",
        "/api/v1/openapi.json/",
        "/health/",
        "/admin",
        "/.env",
        "/api/v1/users/1/../../tenants",
        "/api/v1/%2e%2e/tenants",
        "/HEALTH",
    ] {
        for method in METHODS {
            let m = Method::from_bytes(method.as_bytes()).expect("method");
            let answer = panel.send(m, path, None, None).await;
            assert_eq!(
                answer.status.as_u16(),
                401,
                "{method} {path}: {}",
                answer.text
            );
        }
    }
    for token in [
        "garbage",
        "hsk_",
        "hsk_0000000000000000000000000000000000000000000",
        "hsr_0000000000000000000000000000000000000000000",
        "eyJhbGciOiJub25lIn0.eyJ1c2VyIjoxfQ.",
    ] {
        let answer = panel
            .send(Method::GET, "/api/v1/tenants", Some(token), None)
            .await;
        assert_eq!(answer.status.as_u16(), 401, "token {token}");
        answer.expect_client_error(token);
    }
    // A well-formed header with another scheme, or two Authorization headers.
    let response = panel
        .client
        .get(format!("{}/api/v1/tenants", panel.base))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
}

async fn public_endpoints_answer_and_authenticated_misses_are_json(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let health = panel
        .send(Method::GET, "/health", None, None)
        .await
        .expect(200);
    assert_eq!(health.body["status"], "ok");
    let ready = panel
        .send(Method::GET, "/ready", None, None)
        .await
        .expect(200);
    assert_eq!(ready.body["status"], "ok");

    let admin = panel.admin().await;
    // Unknown path, with credentials: 404 JSON.
    let answer = panel.get("/api/v1/nope", &admin).await.expect(404);
    answer.expect_client_error("unknown path");
    assert_eq!(answer.code(), "not_found");
    // Wrong method, with credentials: 405 JSON with Allow.
    let answer = panel
        .send(Method::PUT, "/api/v1/tenants", Some(&admin), None)
        .await
        .expect(405);
    answer.expect_client_error("wrong method");
    assert_eq!(answer.code(), "method_not_allowed");
    let allow = answer
        .headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_security_headers(&answer, "405");
    // The client cannot choose its request id.
    let response = panel
        .client
        .get(format!("{}/health", panel.base))
        .header("x-request-id", "forged")
        .send()
        .await
        .expect("request");
    assert_ne!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("forged")
    );
}

async fn graceful_shutdown_stops_accepting(store: Store) {
    let panel = TestPanel::start_on(store, "").await;
    let base = panel.base.clone();
    let client = panel.client.clone();
    panel
        .send(Method::GET, "/health", None, None)
        .await
        .expect(200);
    let TestPanel { server, dir, .. } = panel;
    tokio::time::timeout(std::time::Duration::from_secs(15), server.shutdown())
        .await
        .expect("shutdown within its grace period");
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "still accepting after shutdown"
    );
    drop(dir);
}
