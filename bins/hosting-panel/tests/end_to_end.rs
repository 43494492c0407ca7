//! End to end through the REST API, on real servers: the panel's local node runs the real
//! nginx and PHP-FPM 8.2 (supervised under the data dir) and creates customer databases on the
//! MariaDB that `scripts/test.sh` starts.
//!
//! The operator logs in, creates a tenant and its admin; the admin creates a client; the client
//! creates a website with a MariaDB database and no `system_user`: the panel creates the site's
//! Unix account (nologin, from the test's uid range). The site answers over HTTP with PHP 8.2,
//! as that account, and connects to its database with the credentials the API returned once.
//! Then the client rotates the database password (the old one stops working, the new one
//! works), the tenant admin suspends (403 and a short page) and resumes the site (the client
//! may not), and the client deletes it: no site, database, login, file or account remains.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestPanel};
use hosting_core::DatabaseBackend;
use hosting_db::customer::{CustomerServerConfig, MySqlBackend};
use hosting_tests::{
    MARIADB_URL, TempDir, TestUids, env_or_skip, free_port, http_get, root_or_skip, server_url,
};
use serde_json::{Value, json};

/// A panel whose local node has real nginx, PHP 8.2 and MariaDB, or `None` (skipped; failing
/// under CI=true).
async fn panel_with_real_node() -> Option<(TestPanel, u16, TestUids)> {
    let nginx = env_or_skip("HOSTING_TEST_NGINX")?;
    let php82 = env_or_skip("HOSTING_TEST_PHP_FPM_82")?;
    if !root_or_skip() {
        return None;
    }
    let accounts = TestUids::claim();
    let mariadb = server_url(MARIADB_URL)?;
    let dir = TempDir::new();
    // nginx's workers and the site's PHP user walk down to the site's home.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let http_port = free_port();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n\
         data_dir = {data:?}\n\
         admin_email = {ADMIN_EMAIL:?}\n\
         shutdown_grace_secs = 5\n\
         login_attempts_per_minute = 1000\n\
         [node]\n\
         nginx = {nginx:?}\n\
         http_port = {http_port}\n\
         https_port = {https_port}\n\
         php_system_dir = \"\"\n\
         mariadb_url = {mariadb:?}\n\
         uid_range = {range:?}\n\
         [[node.php_prefixes]]\n\
         fpm_binary = {php82:?}\n",
        data = dir.path().join("data").display().to_string(),
        https_port = free_port(),
        range = accounts.range().to_string(),
    );
    let config =
        hosting_panel::Config::from_toml(&toml, std::path::Path::new("/")).expect("config");
    let server = hosting_panel::start(&config, Some(ADMIN_PASSWORD.parse().expect("password")))
        .await
        .expect("start the panel");
    let base = format!("http://{}", server.local_addr());
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client");
    Some((
        TestPanel {
            base,
            client,
            server,
            dir,
        },
        http_port,
        accounts,
    ))
}

/// Stops the node's supervised servers (they outlive the panel by design).
struct StopNode(std::path::PathBuf);

impl Drop for StopNode {
    fn drop(&mut self) {
        let Ok(entries) = walk(&self.0) else {
            return;
        };
        for pid_file in entries {
            if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                let _ = std::process::Command::new("kill")
                    .arg("-QUIT")
                    .arg(pid.trim())
                    .status();
            }
        }
    }
}

/// Every `*.pid` file under `dir`.
fn walk(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path).unwrap_or_default());
        } else if path.extension().is_some_and(|e| e == "pid") {
            out.push(path);
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hosts_a_php_site_with_a_mariadb_database_through_the_api() {
    let Some((panel, http_port, _accounts)) = panel_with_real_node().await else {
        return;
    };
    let _stop = StopNode(panel.dir.path().join("data"));
    let operator = panel.admin().await;
    let tenant = panel.tenant(&operator, "e2e").await;
    panel
        .tenant_user(
            &operator,
            tenant,
            "admin",
            "boss@e2e.example",
            "boss-password-1",
        )
        .await;
    let boss = panel.login("boss@e2e.example", "boss-password-1").await;
    let client_id = panel
        .user(&boss, "client", "jo@e2e.example", "client-password-1")
        .await;
    let client = panel.login("jo@e2e.example", "client-password-1").await;

    let nodes = panel.list_all("/api/v1/nodes", &client).await;
    let node_id = nodes[0]["id"].as_i64().expect("node id");
    let versions = panel
        .get(&format!("/api/v1/nodes/{node_id}/php-versions"), &client)
        .await
        .expect(200);
    assert!(
        versions.text.contains("\"8.2\""),
        "PHP 8.2 is offered: {}",
        versions.text
    );

    let db_name = format!("e2e{}", std::process::id());
    let created = panel
        .post(
            "/api/v1/websites",
            &client,
            &json!({
                "owner_id": client_id,
                "domain": "shop.e2e.example",
                "node_id": node_id,
                "web_server": "nginx",
                "php_version": "8.2",
                "document_root": "public",
                "settings": {"database": {
                    "engine": "mariadb",
                    "name": db_name,
                    "charset": "utf8mb4",
                    "collation": "utf8mb4_unicode_ci"
                }}
            }),
        )
        .await
        .expect(201);
    let site_id = created.body["website"]["id"].as_i64().expect("site id");
    let system_user = created.body["website"]["system_user"]
        .as_str()
        .expect("the account the panel created")
        .to_owned();
    assert!(
        system_user.starts_with("shop-e2e-example"),
        "named after the domain: {system_user}"
    );
    let passwd = std::process::Command::new("getent")
        .args(["passwd", &system_user])
        .output()
        .expect("getent");
    assert!(passwd.status.success(), "{system_user} exists on the node");
    let passwd = String::from_utf8_lossy(&passwd.stdout).into_owned();
    assert!(
        passwd.trim_end().ends_with(":/usr/sbin/nologin"),
        "{passwd}"
    );
    assert_eq!(
        created.body["website"]["status"], "active",
        "{}",
        created.text
    );
    let db = &created.body["database"];
    let asked = db_name;
    let db_name = db["database"].as_str().expect("database").to_owned();
    assert!(
        db_name.ends_with(&format!("_{asked}")) && db_name != asked,
        "the database is named under the tenant's prefix: {db_name}"
    );
    assert_eq!(
        db["user"].as_str(),
        Some(db_name.as_str()),
        "the login is named like it"
    );
    let page = |db: &Value| {
        format!(
            "<?php try {{ $db = new PDO('mysql:host={};port={};dbname={}', '{}', '{}');\n\
             echo PHP_VERSION, ' ', posix_getpwuid(posix_geteuid())['name'], ' ',\n\
             $db->query('SELECT DATABASE()')->fetchColumn(); }}\n\
             catch (PDOException $e) {{ echo 'DENIED'; }}\n",
            db["host"].as_str().expect("host"),
            db["port"].as_i64().expect("port"),
            db["database"].as_str().expect("database"),
            db["user"].as_str().expect("user"),
            db["password"].as_str().expect("password"),
        )
    };
    let docroot = panel
        .dir
        .path()
        .join(format!("data/node/sites/site{site_id}/public"));
    let index = docroot.join("index.php");
    std::fs::write(&index, page(db)).expect("index.php");
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let (status, body) = http_get(http_port, "shop.e2e.example", "/")
        .await
        .expect("GET the site");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("8.2."), "{body}");
    assert!(
        body.ends_with(&format!(" {system_user} {db_name}")),
        "served as its user, connected to its database: {body}"
    );

    // A new password: the page with the old one is refused, the new one works.
    let rotated = panel
        .post(
            &format!("/api/v1/websites/{site_id}/database/rotate-password"),
            &client,
            &json!({}),
        )
        .await
        .expect(200);
    let (_, body) = http_get(http_port, "shop.e2e.example", "/")
        .await
        .expect("GET");
    assert_eq!(body, "DENIED", "the old password no longer works");
    std::fs::write(&index, page(&rotated.body)).expect("index.php");
    let (_, body) = http_get(http_port, "shop.e2e.example", "/")
        .await
        .expect("GET");
    assert!(body.ends_with(&format!(" {db_name}")), "{body}");

    // Suspension is the tenant admin's decision, not the client's.
    panel
        .post(
            &format!("/api/v1/websites/{site_id}/suspend"),
            &client,
            &json!({}),
        )
        .await
        .expect(403);
    panel
        .post(
            &format!("/api/v1/websites/{site_id}/suspend"),
            &boss,
            &json!({}),
        )
        .await
        .expect(200);
    let (status, body) = http_get(http_port, "shop.e2e.example", "/")
        .await
        .expect("GET");
    assert_eq!(status, 403, "a suspended site answers 403: {body}");
    assert!(body.contains("suspended"), "with a short page: {body}");
    panel
        .post(
            &format!("/api/v1/websites/{site_id}/resume"),
            &boss,
            &json!({}),
        )
        .await
        .expect(200);
    let (status, _) = http_get(http_port, "shop.e2e.example", "/")
        .await
        .expect("GET");
    assert_eq!(status, 200, "served again");

    panel
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/websites/{site_id}"),
            Some(&client),
            None,
        )
        .await
        .expect(204);
    assert!(panel.list_all("/api/v1/websites", &client).await.is_empty());
    assert!(
        panel
            .list_all("/api/v1/databases", &client)
            .await
            .is_empty()
    );
    let (status, _) = http_get(http_port, "shop.e2e.example", "/")
        .await
        .expect("GET");
    assert_eq!(status, 404, "a deleted site is not served");
    assert!(!docroot.exists(), "its files are gone");
    let gone = std::process::Command::new("getent")
        .args(["passwd", &system_user])
        .status()
        .expect("getent");
    assert!(!gone.success(), "its account {system_user} is gone");
    let mariadb = MySqlBackend::connect(CustomerServerConfig::new(
        server_url(MARIADB_URL).expect("MariaDB URL"),
    ))
    .await
    .expect("MariaDB");
    let dbs = mariadb.list_databases().await.expect("databases");
    assert!(
        !dbs.iter().any(|d| d.as_str() == db_name),
        "the database is dropped"
    );
    let users = mariadb.list_users().await.expect("logins");
    assert!(
        !users.iter().any(|u| u.as_str() == db_name),
        "the login is dropped"
    );
    let audit = panel.list_all("/api/v1/audit", &boss).await;
    for action in [
        "website.create",
        "database.rotate_password",
        "website.delete",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == action && e["outcome"] == "success"),
            "{action} is in the tenant's audit log"
        );
    }
}
