//! A hostile tenant, over the REST API, on a node with the real nginx, Apache and PHP-FPM 8.2
//! (the panel runs as root, as CI does). Tenant A hosts a site on each web server with a `0600`
//! and a `0644` secret in its home; tenant B owns sites on both servers and tries, through
//! every request field that reaches the node, to name A's accounts, files and sockets and the
//! node's own files.
//!
//! Each attempt is judged on the node, not by its status code alone: no file named after the
//! attempt appears under `/etc`, `/tmp` or `/var`; `/etc` (but the account databases other
//! tests change) and A's home are byte-for-byte as before; B's PHP runs as B's own account and
//! reads neither of A's secrets; B's static files do not serve them through a symlink; the
//! PHP-FPM status page is not reachable; a suspended site answers 403.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Answer, TestPanel};
use hosting_core::DirectivePolicy;
use hosting_core::directives::ArgRule;
use hosting_tests::{TempDir, TestUids, env_or_skip, free_port, http_get, root_or_skip};
use reqwest::Method;
use serde_json::{Value, json};

/// The servers and ports of the node.
struct Node {
    panel: TestPanel,
    _accounts: TestUids,
    nginx_port: u16,
    apache_port: u16,
    node_id: i64,
}

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

async fn node() -> Option<(Node, StopNode)> {
    let nginx = env_or_skip("HOSTING_TEST_NGINX")?;
    let apache = env_or_skip("HOSTING_TEST_APACHE")?;
    let php82 = env_or_skip("HOSTING_TEST_PHP_FPM_82")?;
    if !root_or_skip() {
        return None;
    }
    let accounts = TestUids::claim();
    let dir = TempDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = dir.path().join("data");
    let (nginx_port, apache_port) = (free_port(), free_port());
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n\
         data_dir = {data:?}\n\
         admin_email = {ADMIN_EMAIL:?}\n\
         shutdown_grace_secs = 5\n\
         login_attempts_per_minute = 1000\n\
         [node]\n\
         nginx = {nginx:?}\n\
         http_port = {nginx_port}\n\
         https_port = {}\n\
         apache = {apache:?}\n\
         apache_http_port = {apache_port}\n\
         apache_https_port = {}\n\
         uid_range = {:?}\n\
         php_system_dir = \"\"\n\
         [[node.php_prefixes]]\n\
         fpm_binary = {php82:?}\n",
        free_port(),
        free_port(),
        accounts.range().to_string(),
        data = data.display().to_string(),
    );
    let config =
        hosting_panel::Config::from_toml(&toml, Path::new("/")).expect("hostile test config");
    let server = hosting_panel::start(&config, Some(ADMIN_PASSWORD.parse().expect("password")))
        .await
        .expect("start the panel");
    let stop = StopNode(data);
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
            nginx_port,
            apache_port,
            node_id,
        },
        stop,
    ))
}

/// A tenant with its admin's token and its two sites (nginx, Apache).
struct Tenant {
    admin: String,
    admin_id: i64,
    sites: Vec<Site>,
}

#[derive(Clone)]
struct Site {
    id: i64,
    domain: String,
    server: &'static str,
    account: String,
    home: PathBuf,
}

async fn tenant(node: &Node, operator: &str, slug: &str) -> Tenant {
    let panel = &node.panel;
    let id = panel.tenant(operator, slug).await;
    let email = format!("admin@{slug}.example");
    let admin_id = panel
        .tenant_user(operator, id, "admin", &email, "tenant-password-1")
        .await;
    let admin = panel.login(&email, "tenant-password-1").await;
    let mut sites = Vec::new();
    for server in ["nginx", "apache"] {
        let domain = format!("{server}.{slug}.hostile.example");
        let created = panel
            .post(
                "/api/v1/websites",
                &admin,
                &json!({
                    "owner_id": admin_id,
                    "domain": domain,
                    "node_id": node.node_id,
                    "web_server": server,
                    "php_version": "8.2",
                    "document_root": "public",
                }),
            )
            .await
            .expect(201);
        let website = &created.body["website"];
        let id = website["id"].as_i64().expect("id");
        sites.push(Site {
            id,
            domain,
            server,
            account: website["system_user"].as_str().expect("user").to_owned(),
            home: panel.dir.path().join(format!("data/node/sites/site{id}")),
        });
    }
    Tenant {
        admin,
        admin_id,
        sites,
    }
}

impl Node {
    fn port(&self, site: &Site) -> u16 {
        if site.server == "nginx" {
            self.nginx_port
        } else {
            self.apache_port
        }
    }

    async fn get(&self, site: &Site, path: &str) -> (u16, String) {
        http_get(self.port(site), &site.domain, path)
            .await
            .expect("GET a site")
    }

    async fn patch_site(&self, token: &str, site: &Site, body: &Value) -> Answer {
        self.panel
            .send(
                Method::PATCH,
                &format!("/api/v1/websites/{}", site.id),
                Some(token),
                Some(body),
            )
            .await
    }
}

/// `(uid, gid)` of an account, from `getent passwd`.
fn ids(account: &str) -> Option<(u32, u32)> {
    let out = std::process::Command::new("getent")
        .args(["passwd", account])
        .output()
        .expect("getent");
    let line = String::from_utf8(out.stdout).expect("utf-8");
    let fields: Vec<&str> = line.trim().split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// Writes `contents` to `path` owned by `account` with `mode`.
fn plant(path: &Path, contents: &str, account: &str, mode: u32) {
    let (uid, gid) = ids(account).expect("account");
    std::fs::write(path, contents).expect("write");
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Each path's size, mtime, mode, owner and group.
type Snapshot = BTreeMap<PathBuf, (u64, i64, u32, u32, u32)>;

/// Every file under `root` (not following symlinks) with what identifies its state.
fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.insert(
                path,
                (
                    meta.len(),
                    meta.mtime(),
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                ),
            );
        }
    }
    out
}

/// Files the account databases of other tests' `useradd`/`userdel` change: `passwd`,
/// `group`, `shadow`, `gshadow`, `subuid`, `subgid`, their backups (`passwd-`), locks
/// (`passwd.lock`, `.pwd.lock`) and temporary copies (`gshadow.12905`, `passwd+`).
fn volatile(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name == ".pwd.lock" || name == "mtab" || name == "ld.so.cache" {
        return true;
    }
    ["passwd", "group", "shadow", "gshadow", "subuid", "subgid"]
        .iter()
        .any(|db| {
            name.strip_prefix(db).is_some_and(|rest| {
                rest.is_empty()
                    || ["-", "+", ".lock", ".edit"].contains(&rest)
                    || rest
                        .strip_prefix('.')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
        })
}

/// Paths under `/etc`, `/tmp` and `/var` whose name holds `marker` (what an attack names).
fn files_named(marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = ["/etc", "/tmp", "/var"].iter().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.to_string_lossy().contains(marker) {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !path.starts_with("/proc") {
                stack.push(path);
            }
        }
    }
    found
}

/// What must not change while B attacks.
struct Untouched {
    etc: Snapshot,
    homes: Vec<(PathBuf, Snapshot)>,
}

impl Untouched {
    fn take(a: &Tenant) -> Self {
        let etc = snapshot(Path::new("/etc"))
            .into_iter()
            .filter(|(p, _)| !volatile(p))
            .collect();
        let homes = a
            .sites
            .iter()
            .map(|s| (s.home.clone(), snapshot(&s.home)))
            .collect();
        Self { etc, homes }
    }

    #[track_caller]
    fn check(&self, attempt: &str, marker: &str) {
        let created = files_named(marker);
        assert!(
            created.is_empty(),
            "{attempt}: the node has files it names: {created:?}"
        );
        let etc: BTreeMap<_, _> = snapshot(Path::new("/etc"))
            .into_iter()
            .filter(|(p, _)| !volatile(p))
            .collect();
        let changed: Vec<_> = etc
            .iter()
            .filter(|(p, v)| self.etc.get(*p) != Some(v))
            .map(|(p, _)| p)
            .chain(self.etc.keys().filter(|p| !etc.contains_key(*p)))
            .collect();
        assert!(changed.is_empty(), "{attempt}: /etc changed: {changed:?}");
        for (home, before) in &self.homes {
            assert_eq!(
                &snapshot(home),
                before,
                "{attempt}: tenant A's home {} changed",
                home.display()
            );
        }
    }
}

/// A valid argument for `rule`, varied by `n`.
fn argument(rule: ArgRule, n: usize) -> String {
    match rule {
        ArgRule::Size => ["1k", "64m", "2G", "512"][n % 4].to_owned(),
        ArgRule::Duration => ["30s", "5m", "1h", "250ms"][n % 4].to_owned(),
        ArgRule::Number { min, max } => (min + (n as u64 % (max - min + 1))).to_string(),
        ArgRule::OnOff => ["on", "off"][n % 2].to_owned(),
        ArgRule::OneOf(words) => words[n % words.len()].to_owned(),
        ArgRule::HeaderName => format!("X-Hostile-{n}"),
        ArgRule::HeaderValue => format!("value-{n}"),
        ArgRule::UriPath => format!("/errors/{n}.html"),
        ArgRule::SitePath => format!("private/file{n}"),
    }
}

/// One request per allowed directive, each with generated arguments.
fn allowed_directives(policy: DirectivePolicy) -> Vec<Value> {
    policy
        .allowed()
        .iter()
        .enumerate()
        .map(|(n, d)| {
            let args: Vec<String> = d
                .required
                .iter()
                .chain(d.optional)
                .map(|rule| argument(*rule, n))
                .collect();
            json!({"name": d.name, "args": args})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_tenant_cannot_reach_another_tenants_site_or_the_node() {
    let Some((node, _stop)) = node().await else {
        return;
    };
    let panel = &node.panel;
    let operator = panel.admin().await;
    let a = tenant(&node, &operator, "alpha").await;
    let b = tenant(&node, &operator, "bravo").await;
    let marker = format!("hostile{}", std::process::id());

    // A's secrets, and a page that tells who runs PHP and what it can read.
    for site in &a.sites {
        plant(
            &site.home.join("secret600.txt"),
            "A-SECRET-600",
            &site.account,
            0o600,
        );
        plant(
            &site.home.join("public/secret644.txt"),
            "A-SECRET-644",
            &site.account,
            0o644,
        );
    }
    let probe = |targets: &[PathBuf]| {
        let reads: String = targets
            .iter()
            .map(|t| {
                format!(
                    "echo @file_get_contents('{}') === false ? 'DENIED' : 'READ', ' ';\n",
                    t.display()
                )
            })
            .collect();
        format!("<?php echo posix_geteuid(), ' ';\n{reads}")
    };
    let targets: Vec<PathBuf> = a
        .sites
        .iter()
        .flat_map(|s| {
            [
                s.home.join("secret600.txt"),
                s.home.join("public/secret644.txt"),
            ]
        })
        .collect();
    for site in &b.sites {
        plant(
            &site.home.join("public/probe.php"),
            &probe(&targets),
            &site.account,
            0o644,
        );
    }
    let untouched = Untouched::take(&a);

    // Accounts: A's, a system account, root, one the panel did not create.
    let system_account = std::fs::read_to_string("/etc/passwd")
        .expect("passwd")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid: u32 = f.get(2)?.parse().ok()?;
            (uid > 0 && uid < 1000 && f[0].parse::<hosting_core::types::SystemUser>().is_ok())
                .then(|| f[0].to_owned())
        })
        .next()
        .expect("a system account that parses as a SystemUser");
    let websites_before = panel.list_all("/api/v1/websites", &operator).await.len();
    for (n, user) in [
        a.sites[0].account.clone(),
        system_account,
        "root".to_owned(),
        "hostingt1".to_owned(),
        "nobody".to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = panel
            .post(
                "/api/v1/websites",
                &b.admin,
                &json!({
                    "owner_id": b.admin_id,
                    "domain": format!("steal{n}.{marker}.example"),
                    "node_id": node.node_id,
                    "web_server": "nginx",
                    "php_version": "8.2",
                    "system_user": user,
                    "document_root": "public",
                }),
            )
            .await;
        answer.expect_client_error(&format!("system_user {user}"));
        assert_eq!(answer.field(), Some("system_user"), "{}", answer.text);
        untouched.check(&format!("system_user {user}"), &marker);
    }
    assert_eq!(
        panel.list_all("/api/v1/websites", &operator).await.len(),
        websites_before,
        "no website was created"
    );

    // Directives that name node files, on each server, on create and on update.
    let file = |n: usize| format!("/etc/{marker}-{n}.log");
    let refused: Vec<(&str, Vec<Value>)> = vec![
        (
            "nginx",
            vec![
                json!({"name": "access_log", "args": [file(1)]}),
                json!({"name": "error_log", "args": [file(2)]}),
                json!({"name": "include", "args": ["/etc/nginx/mime.types"]}),
                json!({"name": "root", "args": ["/etc"]}),
                json!({"name": "alias", "args": ["/etc/"]}),
                json!({"name": "client_body_temp_path", "args": [format!("/tmp/{marker}-t")]}),
                json!({"name": "proxy_pass", "args": ["http://127.0.0.1:1"]}),
                json!({"name": "fastcgi_param", "args": ["PHP_ADMIN_VALUE", "open_basedir=/"]}),
                json!({"name": "auth_basic_user_file", "args": ["/etc/shadow"]}),
                json!({"name": "auth_basic_user_file", "args": ["../../etc/shadow"]}),
                json!({"name": "load_module", "args": ["/tmp/x.so"]}),
                json!({"name": "user", "args": ["root"]}),
                json!({"name": "pid", "args": [file(3)]}),
            ],
        ),
        (
            "apache",
            vec![
                json!({"name": "ErrorLog", "args": [file(4)]}),
                json!({"name": "CustomLog", "args": [file(5), "combined"]}),
                json!({"name": "Include", "args": ["/etc/apache2/apache2.conf"]}),
                json!({"name": "Alias", "args": ["/x", "/etc"]}),
                json!({"name": "ScriptAlias", "args": ["/cgi/", "/usr/lib/cgi-bin/"]}),
                json!({"name": "SetEnv", "args": ["PHP_ADMIN_VALUE", "open_basedir=/"]}),
                json!({"name": "AuthUserFile", "args": ["/etc/shadow"]}),
                json!({"name": "LoadModule", "args": ["x", "/tmp/x.so"]}),
            ],
        ),
    ];
    for (server, directives) in &refused {
        let site = b.sites.iter().find(|s| s.server == *server).expect("site");
        for directive in directives {
            let answer = node
                .patch_site(
                    &b.admin,
                    site,
                    &json!({"settings": {"extra_directives": [directive]}}),
                )
                .await;
            answer.expect_client_error(&format!("{server} {directive}"));
            assert!(
                answer
                    .field()
                    .is_some_and(|f| f.starts_with("settings.extra_directives[0]")),
                "{server} {directive}: {}",
                answer.text
            );
            untouched.check(&format!("{server} {directive}"), &marker);
        }
    }

    // Every directive the policy allows, with generated arguments, goes live and names nothing.
    for (server, policy) in [
        ("nginx", hosting_web::NGINX_POLICY),
        ("apache", hosting_web::APACHE_POLICY),
    ] {
        let site = b.sites.iter().find(|s| s.server == server).expect("site");
        for directive in allowed_directives(policy) {
            let answer = node
                .patch_site(
                    &b.admin,
                    site,
                    &json!({"settings": {"extra_directives": [directive]}}),
                )
                .await;
            assert_eq!(
                answer.status.as_u16(),
                200,
                "{server} {directive}: {}",
                answer.text
            );
            untouched.check(&format!("allowed {server} {directive}"), &marker);
        }
        node.patch_site(&b.admin, site, &json!({"settings": {}}))
            .await
            .expect(200);
    }

    // Other fields that reach a configuration file.
    let site = &b.sites[0];
    for (body, field) in [
        (json!({"document_root": "../../etc"}), "document_root"),
        (json!({"document_root": "/etc"}), "document_root"),
        (json!({"document_root": "public/../../x"}), "document_root"),
        (json!({"aliases": ["a;b.example"]}), "aliases[0]"),
        (
            json!({"aliases": ["evil.example\nroot /etc"]}),
            "aliases[0]",
        ),
        (json!({"aliases": ["..example"]}), "aliases[0]"),
        (
            json!({"settings": {"php": {"memory_limit": "1M\nphp_admin_value[open_basedir]=/", "max_execution_time": 30, "upload_max_filesize": "1M", "post_max_size": "1M"}}}),
            "settings.php.memory_limit",
        ),
        (
            json!({"settings": {"allowed_ips": ["127.0.0.1; include /etc"]}}),
            "settings.allowed_ips[0]",
        ),
        (
            json!({"settings": {"operator_directives": [{"name": "root", "args": ["/etc"]}]}}),
            "settings",
        ),
    ] {
        let answer = node.patch_site(&b.admin, site, &body).await;
        answer.expect_client_error(&format!("{body}"));
        assert!(
            answer.field().is_some_and(|f| f.starts_with(field)),
            "{body}: {}",
            answer.text
        );
        untouched.check(&format!("{body}"), &marker);
    }
    let answer = node
        .patch_site(&b.admin, site, &json!({"aliases": [a.sites[0].domain]}))
        .await;
    answer.expect_client_error("A's domain as B's alias");
    let (_, body) = node.get(&a.sites[0], "/secret644.txt").await;
    assert_eq!(body, "A-SECRET-644", "A's domain still serves A's site");

    // Operator-only doors stay shut to a tenant admin.
    panel
        .send(
            Method::PUT,
            &format!("/api/v1/websites/{}/operator-directives", site.id),
            Some(&b.admin),
            Some(&json!({"directives": [{"name": "root", "args": ["/etc"]}]})),
        )
        .await
        .expect(403);
    panel
        .post(
            &format!("/api/v1/nodes/{}/accounts", node.node_id),
            &b.admin,
            &json!({"name": a.sites[0].account, "tenant_id": 1}),
        )
        .await
        .expect(403);
    untouched.check("operator doors", &marker);

    // An .htaccess cannot loosen B's PHP or hand its requests to another pool: Apache reads
    // none, and nginx never did.
    for site in &b.sites {
        let a_socket = node
            .panel
            .dir
            .path()
            .join(format!("data/node/run/php8.2-site{}.sock", a.sites[0].id));
        plant(
            &site.home.join("public/.htaccess"),
            &format!(
                "SetEnv PHP_ADMIN_VALUE \"open_basedir=/\"\nSetEnv PHP_VALUE \"open_basedir=/\"\n\
                 <Files \"steal.php\">\nSetHandler \"proxy:unix:{}|fcgi://localhost\"\n</Files>\n\
                 Options +Indexes\n",
                a_socket.display()
            ),
            &site.account,
            0o644,
        );
        plant(
            &site.home.join("public/ini.php"),
            "<?php echo ini_get('open_basedir');\n",
            &site.account,
            0o644,
        );
        plant(
            &site.home.join("public/steal.php"),
            "<?php echo 'RAN-AS-', posix_geteuid();\n",
            &site.account,
            0o644,
        );
        let (status, body) = node.get(site, "/ini.php").await;
        assert_eq!(status, 200, "{}: {body}", site.domain);
        assert!(
            body.starts_with(&site.home.display().to_string()),
            "{}: open_basedir stays the site's: {body}",
            site.domain
        );
        let (uid, _) = ids(&site.account).expect("B's account");
        let (_, body) = node.get(site, "/steal.php").await;
        assert_eq!(
            body,
            format!("RAN-AS-{uid}"),
            "{}: steal.php runs in B's own pool",
            site.domain
        );
        let (_, body) = node.get(site, "/").await;
        assert!(!body.contains("Index of"), "{}: {body}", site.domain);
    }
    untouched.check(".htaccess", &marker);

    // B's PHP runs as B's account and reads none of A's files.
    for site in &b.sites {
        let (status, body) = node.get(site, "/probe.php").await;
        assert_eq!(status, 200, "{}: {body}", site.domain);
        let (uid, _) = ids(&site.account).expect("B's account");
        let mut words = body.split_whitespace();
        assert_eq!(words.next(), Some(uid.to_string().as_str()), "{body}");
        assert!(words.all(|w| w == "DENIED"), "{}: {body}", site.domain);
    }

    // A symlink in B's document root does not serve A's file, nor does a document root that
    // is itself a symlink.
    for site in &b.sites {
        let (uid, gid) = ids(&site.account).expect("account");
        for (n, target) in targets.iter().enumerate() {
            let link = site.home.join(format!("public/steal{n}.txt"));
            std::os::unix::fs::symlink(target, &link).expect("symlink");
            std::os::unix::fs::lchown(&link, Some(uid), Some(gid)).expect("lchown");
            let (status, body) = node.get(site, &format!("/steal{n}.txt")).await;
            assert!(
                !body.contains("A-SECRET"),
                "{}: {status} {body}",
                site.domain
            );
        }
        let other = site.home.join("elsewhere");
        std::fs::rename(site.home.join("public"), &other).expect("move public");
        let a_docroot = a.sites[0].home.join("public");
        std::os::unix::fs::symlink(&a_docroot, site.home.join("public")).expect("symlink");
        std::os::unix::fs::lchown(site.home.join("public"), Some(uid), Some(gid)).expect("lchown");
        let (status, body) = node.get(site, "/secret644.txt").await;
        assert!(
            !body.contains("A-SECRET"),
            "{}: {status} {body}",
            site.domain
        );
        std::fs::remove_file(site.home.join("public")).expect("unlink");
        std::fs::rename(&other, site.home.join("public")).expect("move back");
    }

    // PHP-FPM's status page is not reachable from outside.
    for site in &b.sites {
        for path in [
            "/fpm-status",
            "/fpm-status?full",
            "/probe.php/fpm-status",
            "/status",
        ] {
            let (_, body) = node.get(site, path).await;
            assert!(
                !body.contains("process manager") && !body.contains("accepted conn"),
                "{} {path}: {body}",
                site.domain
            );
        }
    }

    // A suspended site answers 403 with a short page.
    for site in &b.sites {
        panel
            .post(
                &format!("/api/v1/websites/{}/suspend", site.id),
                &b.admin,
                &json!({}),
            )
            .await
            .expect(200);
        let (status, body) = node.get(site, "/probe.php").await;
        assert_eq!(status, 403, "{}: {body}", site.domain);
        assert!(body.to_lowercase().contains("suspended"), "{body}");
    }
    untouched.check("the whole attack", &marker);

    // Deleting B's sites removes B's accounts; A's stay.
    for site in &b.sites {
        panel
            .send(
                Method::DELETE,
                &format!("/api/v1/websites/{}", site.id),
                Some(&b.admin),
                None,
            )
            .await
            .expect(204);
        assert!(ids(&site.account).is_none(), "{} is removed", site.account);
        assert!(!site.home.exists(), "{} is removed", site.home.display());
    }
    for site in &a.sites {
        assert!(ids(&site.account).is_some(), "{} stays", site.account);
    }
    let accounts = panel
        .list_all(
            &format!("/api/v1/nodes/{}/accounts", node.node_id),
            &operator,
        )
        .await;
    let names: Vec<&str> = accounts.iter().filter_map(|a| a["name"].as_str()).collect();
    let mut expected: Vec<&str> = a.sites.iter().map(|s| s.account.as_str()).collect();
    expected.sort_unstable();
    let mut names = names;
    names.sort_unstable();
    assert_eq!(names, expected, "the node keeps A's accounts only");
}
