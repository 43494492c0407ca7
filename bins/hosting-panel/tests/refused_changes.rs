//! A change the node refuses leaves nothing behind and never touches another tenant, over the
//! REST API, on a node with the real nginx and PHP-FPM 8.2 (the panel runs as root, as CI does).
//!
//! Two tenants each have a client with one site. The operator gave A's site a
//! `client_max_body_size` of its own (an operator directive); A's client then asks for its own
//! `client_max_body_size`, which the directive policy allows and `nginx -t` refuses as a
//! duplicate. The refusal must be A's alone: a 422 naming the field and the rule, with no node
//! path or other tenant's name in it; A's record, the live configuration and what both sites
//! serve are as before; B's change right after succeeds. Then A's stored state breaks under it
//! (an operator include the operator later breaks): B's next change still succeeds, A is set
//! aside (status `failed`, no longer served), and A's next change after the repair brings it
//! back.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Answer, TestPanel};
use hosting_tests::{TempDir, TestUids, env_or_skip, free_port, http_get_with_head, root_or_skip};
use reqwest::Method;
use serde_json::{Value, json};

/// Stops the node's supervised servers (they outlive the panel by design).
struct StopNode(PathBuf);

impl Drop for StopNode {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
            .arg("node")
            .arg("stop")
            .arg("--data-dir")
            .arg(&self.0)
            .status();
    }
}

struct Node {
    panel: TestPanel,
    _accounts: TestUids,
    port: u16,
    node_id: i64,
    data: PathBuf,
}

async fn node() -> Option<(Node, StopNode)> {
    let nginx = env_or_skip("HOSTING_TEST_NGINX")?;
    let php82 = env_or_skip("HOSTING_TEST_PHP_FPM_82")?;
    if !root_or_skip() {
        return None;
    }
    let accounts = TestUids::claim();
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = dir.path().join("data");
    let port = free_port();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n\
         data_dir = {data:?}\n\
         admin_email = {ADMIN_EMAIL:?}\n\
         shutdown_grace_secs = 5\n\
         login_attempts_per_minute = 1000\n\
         [node]\n\
         nginx = {nginx:?}\n\
         http_port = {port}\n\
         https_port = {}\n\
         uid_range = {:?}\n\
         php_system_dir = \"\"\n\
         [[node.php_prefixes]]\n\
         fpm_binary = {php82:?}\n",
        free_port(),
        accounts.range().to_string(),
        data = data.display().to_string(),
    );
    let config = hosting_panel::Config::from_toml(&toml, Path::new("/")).expect("test config");
    let server = hosting_panel::start(&config, Some(ADMIN_PASSWORD.parse().expect("password")))
        .await
        .expect("start the panel");
    let stop = StopNode(data.clone());
    let panel = TestPanel {
        base: format!("http://{}", server.local_addr()),
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("client"),
        server,
        dir,
    };
    let node_id = panel.server.node.id.0;
    Some((
        Node {
            panel,
            _accounts: accounts,
            port,
            node_id,
            data,
        },
        stop,
    ))
}

/// A client of its own tenant, with one static site serving `index.html`.
struct Client {
    token: String,
    site: i64,
    domain: String,
}

async fn client(node: &Node, operator: &str, slug: &str) -> Client {
    let panel = &node.panel;
    let tenant = panel.tenant(operator, slug).await;
    let email = format!("client@{slug}.example");
    let owner = panel
        .tenant_user(operator, tenant, "client", &email, "client-password-1")
        .await;
    let token = panel.login(&email, "client-password-1").await;
    let domain = format!("{slug}.refused.example");
    let created = panel
        .post(
            "/api/v1/websites",
            &token,
            &json!({
                "owner_id": owner,
                "domain": domain,
                "node_id": node.node_id,
                "web_server": "nginx",
                "php_version": null,
                "document_root": "public",
            }),
        )
        .await
        .expect(201);
    let site = created.body["website"]["id"].as_i64().expect("id");
    let index = node
        .data
        .join(format!("node/sites/site{site}/public/index.html"));
    std::fs::write(&index, format!("site of {slug}")).expect("index.html");
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    Client {
        token,
        site,
        domain,
    }
}

impl Node {
    async fn patch(&self, who: &Client, body: &Value) -> Answer {
        self.panel
            .send(
                Method::PATCH,
                &format!("/api/v1/websites/{}", who.site),
                Some(&who.token),
                Some(body),
            )
            .await
    }

    async fn operator_directives(&self, operator: &str, site: i64, directives: Value) -> Answer {
        self.panel
            .send(
                Method::PUT,
                &format!("/api/v1/websites/{site}/operator-directives"),
                Some(operator),
                Some(&json!({ "directives": directives })),
            )
            .await
    }

    /// A client's record as it reads it, without `updated_at` (a restore writes the row).
    async fn record(&self, who: &Client) -> Value {
        let mut record = self
            .panel
            .get(&format!("/api/v1/websites/{}", who.site), &who.token)
            .await
            .expect(200)
            .body;
        record
            .as_object_mut()
            .expect("a website object")
            .remove("updated_at");
        record
    }

    /// Status, head and body of `/` on `who`'s site.
    async fn served(&self, who: &Client) -> (u16, String) {
        let (status, head, body) = http_get_with_head(self.port, &who.domain, "/")
            .await
            .expect("GET a site");
        // The date moves; the rest of the head is what the site's configuration decides.
        let head: Vec<&str> = head
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .collect();
        (status, format!("{}\n\n{body}", head.join("\n")))
    }

    /// Every file of nginx's live generation, by its path under it.
    fn live_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let live = self.data.join("node/nginx/managed/live");
        let root = std::fs::canonicalize(&live).expect("the live generation");
        let mut out = BTreeMap::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
                let path = entry.path();
                if entry.file_type().expect("file type").is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).expect("read");
                    out.insert(path.strip_prefix(&root).expect("under").to_owned(), bytes);
                }
            }
        }
        out
    }
}

/// What a tenant must never read in an answer: a rooted path, the node's own files, the
/// validator's words, and the other tenant's site.
#[track_caller]
fn tells_nothing_of_the_node(answer: &Answer, other: &Client) {
    let text = &answer.text;
    for leak in [
        "/etc",
        "/tmp",
        "/var",
        "/usr",
        "generations",
        ".conf",
        "[emerg]",
        other.domain.as_str(),
        &format!("site{}", other.site),
    ] {
        assert!(!text.contains(leak), "the answer names {leak:?}: {text}");
    }
    if let Some(message) = answer.body["error"]["message"].as_str() {
        assert!(!message.contains('/'), "a path in the message: {message}");
    }
}

#[tokio::test]
async fn a_refused_change_leaves_nothing_behind_and_never_blocks_another_tenant() {
    let Some((node, _stop)) = node().await else {
        return;
    };
    let operator = node.panel.admin().await;
    let a = client(&node, &operator, "tenant-a").await;
    let b = client(&node, &operator, "tenant-b").await;
    node.operator_directives(
        &operator,
        a.site,
        json!([{"name": "client_max_body_size", "args": ["1m"]}]),
    )
    .await
    .expect(200);

    // A's client asks for what the policy allows and nginx refuses next to the operator's.
    let (record, live, served_a, served_b) = (
        node.record(&a).await,
        node.live_files(),
        node.served(&a).await,
        node.served(&b).await,
    );
    assert_eq!(served_a.0, 200, "{served_a:?}");
    let refused = node
        .patch(
            &a,
            &json!({"settings": {"extra_directives": [
                {"name": "add_header", "args": ["X-Tenant", "a"]},
                {"name": "client_max_body_size", "args": ["10m"]},
            ]}}),
        )
        .await
        .expect(422);
    assert_eq!(refused.code(), "invalid", "{}", refused.text);
    assert_eq!(
        refused.field(),
        Some("settings.extra_directives[1]"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("client_max_body_size"),
        "the rule names the directive: {}",
        refused.text
    );
    tells_nothing_of_the_node(&refused, &b);
    assert_eq!(node.record(&a).await, record, "A's record is as before");
    assert_eq!(
        node.live_files(),
        live,
        "the live configuration is as before"
    );
    assert_eq!(node.served(&a).await, served_a);
    assert_eq!(node.served(&b).await, served_b);

    // B's change on the same node right after goes through.
    let accepted = node
        .patch(
            &b,
            &json!({"settings": {"extra_directives": [
                {"name": "add_header", "args": ["X-Tenant", "b"]},
            ]}}),
        )
        .await
        .expect(200);
    assert_eq!(accepted.body["status"], "active", "{}", accepted.text);
    let (status, text) = node.served(&b).await;
    assert_eq!(status, 200);
    assert!(text.to_ascii_lowercase().contains("x-tenant: b"), "{text}");
    assert_eq!(node.served(&a).await, served_a, "A is served as before");

    // A's stored state breaks under it: the operator's include is broken on the node.
    let snippet = node.panel.dir.path().join("operator-snippet.conf");
    std::fs::write(&snippet, "add_header X-Snippet yes;\n").expect("snippet");
    node.operator_directives(
        &operator,
        a.site,
        json!([{"name": "include", "args": [snippet.display().to_string()]}]),
    )
    .await
    .expect(200);
    std::fs::write(&snippet, "no_such_directive on;\n").expect("break the snippet");
    let accepted = node
        .patch(
            &b,
            &json!({"settings": {"extra_directives": [
                {"name": "add_header", "args": ["X-Tenant", "b2"]},
            ]}}),
        )
        .await
        .expect(200);
    tells_nothing_of_the_node(&accepted, &a);
    let (status, text) = node.served(&b).await;
    assert_eq!(status, 200);
    assert!(text.to_ascii_lowercase().contains("x-tenant: b2"), "{text}");
    assert_eq!(
        node.record(&a).await["status"],
        "failed",
        "A is set aside and says so"
    );
    assert_ne!(
        node.served(&a).await,
        served_a,
        "A's broken configuration is not served"
    );

    // Repaired, A's next change is its retry.
    std::fs::write(&snippet, "add_header X-Snippet yes;\n").expect("repair the snippet");
    let retried = node
        .patch(&a, &json!({"settings": {"gzip": true}}))
        .await
        .expect(200);
    assert_eq!(retried.body["status"], "active", "{}", retried.text);
    let (status, text) = node.served(&a).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-snippet: yes"),
        "{text}"
    );
}
