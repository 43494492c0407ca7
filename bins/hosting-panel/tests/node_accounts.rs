//! The operator's side of node accounts, over the REST API on a real node (nginx, as root):
//! the node reports `isolation: "accounts"`; the operator adopts an existing account for a
//! tenant (audited; never a system account, never twice), the tenant's site runs as it, another
//! tenant cannot name it, and deleting the site keeps it (the panel did not create it). The
//! operator's directives go live, are shown as such, survive a tenant's settings update, and
//! are refused to the tenant.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestPanel};
use hosting_tests::{TempDir, TestUids, env_or_skip, free_port, http_get_with_head, root_or_skip};
use reqwest::Method;
use serde_json::json;

fn uid_of(account: &str) -> Option<u32> {
    let out = std::process::Command::new("getent")
        .args(["passwd", account])
        .output()
        .expect("getent");
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)?
        .parse()
        .ok()
}

/// An account below uid 1000 whose name is a valid `SystemUser` (so only its uid refuses it).
fn system_account() -> String {
    std::fs::read_to_string("/etc/passwd")
        .expect("passwd")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid: u32 = f.get(2)?.parse().ok()?;
            (uid > 0 && uid < 1000 && f[0].parse::<hosting_core::types::SystemUser>().is_ok())
                .then(|| f[0].to_owned())
        })
        .next()
        .expect("a system account")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_adopts_accounts_and_keeps_the_escape_hatch() {
    let Some(nginx) = env_or_skip("HOSTING_TEST_NGINX") else {
        return;
    };
    let Some(users) = env_or_skip("HOSTING_TEST_SYSTEM_USERS") else {
        return;
    };
    if !root_or_skip() {
        return;
    }
    let existing = users
        .split(',')
        .nth(1)
        .expect("a second test user")
        .trim()
        .to_owned();
    let uids = TestUids::claim();
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = dir.path().join("data");
    let port = free_port();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\nadmin_email = {ADMIN_EMAIL:?}\n\
         shutdown_grace_secs = 5\nlogin_attempts_per_minute = 1000\n\
         [node]\nnginx = {nginx:?}\nhttp_port = {port}\nhttps_port = {}\n\
         php_system_dir = \"\"\nuid_range = {:?}\n",
        free_port(),
        uids.range().to_string(),
        data = data.display().to_string(),
    );
    let config = hosting_panel::Config::from_toml(&toml, Path::new("/")).expect("config");
    let server = hosting_panel::start(&config, Some(ADMIN_PASSWORD.parse().expect("password")))
        .await
        .expect("start");
    let _stop = StopNode(data.clone());
    let panel = TestPanel {
        base: format!("http://{}", server.local_addr()),
        client: reqwest::Client::new(),
        server,
        dir,
    };
    let node = panel.server.node.id.0;
    let operator = panel.admin().await;
    let shown = panel
        .get(&format!("/api/v1/nodes/{node}"), &operator)
        .await
        .expect(200);
    assert_eq!(shown.body["isolation"], "accounts", "{}", shown.text);

    let owner = panel.tenant(&operator, "owner").await;
    let other = panel.tenant(&operator, "other").await;
    let admin_id = panel
        .tenant_user(
            &operator,
            owner,
            "admin",
            "boss@owner.example",
            "owner-password-1",
        )
        .await;
    let boss = panel.login("boss@owner.example", "owner-password-1").await;
    let other_id = panel
        .tenant_user(
            &operator,
            other,
            "admin",
            "boss@other.example",
            "other-password-1",
        )
        .await;
    let rival = panel.login("boss@other.example", "other-password-1").await;

    // Adoption: the operator only, never a system account, never twice.
    let adopt = |name: &str, tenant: i64| json!({"name": name, "tenant_id": tenant});
    let accounts = format!("/api/v1/nodes/{node}/accounts");
    panel
        .post(&accounts, &boss, &adopt(&existing, owner))
        .await
        .expect(403);
    let system = panel
        .post(&accounts, &operator, &adopt(&system_account(), owner))
        .await;
    system.expect_client_error("a system account");
    assert_eq!(system.field(), Some("name"), "{}", system.text);
    assert!(system.text.contains("system account"), "{}", system.text);
    let adopted = panel
        .post(&accounts, &operator, &adopt(&existing, owner))
        .await
        .expect(201);
    assert_eq!(adopted.body["origin"], "adopted", "{}", adopted.text);
    assert_eq!(adopted.body["tenant_id"], owner, "{}", adopted.text);
    panel
        .post(&accounts, &operator, &adopt(&existing, other))
        .await
        .expect(409);
    let audit = panel.list_all("/api/v1/audit", &operator).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "node.adopt_account" && e["outcome"] == "success"),
        "adoption is audited"
    );

    // The owner's site runs as the adopted account; the rival cannot name it.
    let site = |domain: &str, owner_id: i64| {
        json!({
            "owner_id": owner_id, "domain": domain, "node_id": node, "web_server": "nginx",
            "php_version": null, "system_user": existing, "document_root": "public",
        })
    };
    let refused = panel
        .post("/api/v1/websites", &rival, &site("rival.example", other_id))
        .await;
    refused.expect_client_error("another tenant's adopted account");
    assert_eq!(refused.field(), Some("system_user"), "{}", refused.text);
    let created = panel
        .post(
            "/api/v1/websites",
            &boss,
            &site("adopted.example", admin_id),
        )
        .await
        .expect(201);
    let id = created.body["website"]["id"].as_i64().expect("id");
    let home = panel.dir.path().join(format!("data/node/sites/site{id}"));
    let meta = std::fs::metadata(&home).expect("home");
    assert_eq!(
        Some(meta.uid()),
        uid_of(&existing),
        "the home is the account's"
    );
    assert_eq!(meta.mode() & 0o777, 0o750, "the home is 0750");
    std::fs::write(home.join("public/index.html"), "adopted").expect("index");
    std::fs::set_permissions(
        home.join("public/index.html"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");

    // Operator directives: refused to the tenant, live for the operator, kept by updates.
    let path = format!("/api/v1/websites/{id}/operator-directives");
    let directives = json!({"directives": [{"name": "add_header", "args": ["X-Operator", "yes"]}]});
    panel
        .send(Method::PUT, &path, Some(&boss), Some(&directives))
        .await
        .expect(403);
    let set = panel
        .send(Method::PUT, &path, Some(&operator), Some(&directives))
        .await
        .expect(200);
    assert_eq!(
        set.body["settings"]["operator_directives"][0]["name"], "add_header",
        "{}",
        set.text
    );
    let (status, head, body) = http_get_with_head(port, "adopted.example", "/")
        .await
        .expect("GET");
    assert_eq!((status, body.as_str()), (200, "adopted"));
    assert!(
        head.to_ascii_lowercase().contains("x-operator: yes"),
        "{head}"
    );
    let updated = panel
        .send(
            Method::PATCH,
            &format!("/api/v1/websites/{id}"),
            Some(&boss),
            Some(&json!({"settings": {"gzip": true}})),
        )
        .await
        .expect(200);
    assert_eq!(
        updated.body["settings"]["operator_directives"],
        set.body["settings"]["operator_directives"],
        "a tenant's settings update keeps the operator's directives"
    );
    let smuggled = panel
        .send(
            Method::PATCH,
            &format!("/api/v1/websites/{id}"),
            Some(&boss),
            Some(&json!({"settings": {"operator_directives": []}})),
        )
        .await;
    smuggled.expect_client_error("operator_directives in a tenant's body");
    let audit = panel.list_all("/api/v1/audit", &operator).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "website.operator_directives" && e["outcome"] == "success"),
        "operator directives are audited"
    );

    // Deleting the site keeps the adopted account.
    panel
        .send(
            Method::DELETE,
            &format!("/api/v1/websites/{id}"),
            Some(&boss),
            None,
        )
        .await
        .expect(204);
    assert!(
        uid_of(&existing).is_some(),
        "{existing} is the operator's and stays"
    );
    let listed = panel.list_all(&accounts, &operator).await;
    assert!(
        listed.iter().any(|a| a["name"] == existing.as_str()),
        "still recorded"
    );
}

/// Stops the node's supervised servers (they outlive the panel by design).
struct StopNode(std::path::PathBuf);

impl Drop for StopNode {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_hosting-panel"))
            .args(["node", "stop", "--data-dir"])
            .arg(&self.0)
            .status();
    }
}
