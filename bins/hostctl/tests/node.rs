//! `hostctl node` end to end: the real binary against real nginx or Apache in front of real
//! PHP-FPM 8.2 (Debian) and 8.4 (trixie), all started by hostctl under a temporary prefix.
//!
//! One life of a node, per web server: apply two sites (8.2 and 8.4) without `system_user`, and
//! both answer with their PHP version, each as the fresh account hostctl created for it (uid in
//! the test's own range, home `0750` in `www-data`); `drift` is clean; a hand-edited live file is
//! drift (exit 3) naming the file, and `apply` repairs it; a PHP version change shows in `plan`,
//! `apply --dry-run` prints the diff and changes nothing, `apply` switches it; `remove --site`
//! takes a site's vhost, pool, home and account away while the other keeps answering; an invalid
//! state file exits 2 naming `domain` and changes nothing; `stop` leaves no process behind.
//!
//! The panel's account rules (nginx): a system account, an existing account hostctl did not
//! create, an unknown one and a tenant directive outside the policy are refused naming the field,
//! before anything changes; sites share an account hostctl created, another runs as an adopted
//! account with an operator directive (an `access_log` no tenant may write) that takes effect;
//! the shared account goes with its last site, the adopted one stays. Without root (hostctl run
//! as a test user) every site runs as that user and a named other account is refused.
//!
//! The servers are stopped and every account the test made is removed even when a step fails.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use hosting_tests::{TempDir, env_or_skip, free_port};
use serde_json::Value;
use support::{TestAccounts, getent, hostctl, text};

/// The real binaries and users this machine provides, or `None` (skipped / failing in CI).
struct Machine {
    nginx: String,
    apache: String,
    php82: String,
    php84_bin: String,
    php84_ini: String,
    php84_scan_dir: String,
    users: Vec<String>,
}

fn machine() -> Option<Machine> {
    let users: Vec<String> = env_or_skip("HOSTING_TEST_SYSTEM_USERS")?
        .split(',')
        .map(|u| u.trim().to_owned())
        .collect();
    assert!(users.len() >= 2, "two test users are needed");
    Some(Machine {
        nginx: env_or_skip("HOSTING_TEST_NGINX")?,
        apache: env_or_skip("HOSTING_TEST_APACHE")?,
        php82: env_or_skip("HOSTING_TEST_PHP_FPM_82")?,
        php84_bin: env_or_skip("HOSTING_TEST_PHP_FPM_84_BIN")?,
        php84_ini: env_or_skip("HOSTING_TEST_PHP_FPM_84_INI")?,
        php84_scan_dir: env_or_skip("HOSTING_TEST_PHP_FPM_84_SCAN_DIR")?,
        users,
    })
}

/// Asserts the exit code, showing everything hostctl printed when it differs.
#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Stops whatever hostctl started under the root when dropped, even after a failed assertion.
struct StopServers(PathBuf);

impl Drop for StopServers {
    fn drop(&mut self) {
        let _ = hostctl([
            OsStr::new("node"),
            OsStr::new("stop"),
            OsStr::new("--root"),
            self.0.as_os_str(),
        ]);
    }
}

/// How a site in a state file gets its account.
#[derive(Debug, Clone, Copy)]
enum Account<'a> {
    /// No `system_user`: one of its own.
    Own,
    /// `system_user = NAME`.
    Named(&'a str),
    /// `system_user = NAME`, `adopt_account = true`.
    Adopted(&'a str),
}

/// A site in a state file: id, PHP version, account.
type SiteSpec<'a> = (i64, &'a str, Account<'a>);

/// One node under a temporary prefix, driven only through the binary.
struct Node<'m> {
    /// First, so the servers stop before the accounts and the prefix are removed.
    _stop: StopServers,
    accounts: TestAccounts,
    dir: TempDir,
    machine: &'m Machine,
    web: &'static str,
    port: u16,
    https_port: u16,
}

impl<'m> Node<'m> {
    fn new(machine: &'m Machine, web: &'static str) -> Self {
        let dir = TempDir::new();
        Node {
            _stop: StopServers(dir.path().join("root")),
            accounts: TestAccounts::new(),
            dir,
            machine,
            web,
            port: free_port(),
            https_port: free_port(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("node.toml")
    }

    fn domain(&self, id: i64) -> String {
        self.accounts.domain(id)
    }

    /// The `[node]` table and the PHP builds.
    fn node_table(&self) -> String {
        self.node_table_with(true)
    }

    /// The `[node]` table; PHP 8.4 only with `php84` (its build lives in root's home).
    fn node_table_with(&self, php84: bool) -> String {
        let m = self.machine;
        let mut table = format!(
            "[node]\nweb_server = \"{}\"\nmode = \"prefix\"\nhttp_port = {}\nhttps_port = {}\n\
             nginx_binary = \"{}\"\napache_binary = \"{}\"\nuid_range = \"{}\"\n\n\
             [[node.php]]\nfpm_binary = \"{}\"\n",
            self.web,
            self.port,
            self.https_port,
            m.nginx,
            m.apache,
            self.accounts.uid_range(),
            m.php82,
        );
        if php84 {
            table.push_str(&format!(
                "\n[[node.php]]\nfpm_binary = \"{}\"\nphp_ini = \"{}\"\nscan_dir = \"{}\"\n",
                m.php84_bin, m.php84_ini, m.php84_scan_dir
            ));
        }
        table
    }

    /// A `[[site]]` block; `extra` goes before its settings.
    fn site_block(&self, (id, php, account): SiteSpec<'_>, domain: &str, extra: &str) -> String {
        let account = match account {
            Account::Own => String::new(),
            Account::Named(name) => format!("system_user = \"{name}\"\n"),
            Account::Adopted(name) => {
                format!("system_user = \"{name}\"\nadopt_account = true\n")
            }
        };
        format!(
            "\n[[site]]\nid = {id}\ndomain = \"{domain}\"\nphp_version = \"{php}\"\n\
             {account}document_root = \"public\"\n{extra}[site.settings]\ngzip = true\n"
        )
    }

    /// Writes the state file; `domain_of` may replace a site's domain.
    fn write_state_with(&self, sites: &[SiteSpec<'_>], domain_of: impl Fn(i64) -> String) {
        let mut toml = self.node_table();
        for site in sites {
            toml.push_str(&self.site_block(*site, &domain_of(site.0), ""));
        }
        std::fs::write(self.state_file(), toml).expect("write state file");
    }

    fn write_state(&self, sites: &[SiteSpec<'_>]) {
        self.write_state_with(sites, |id| self.domain(id));
    }

    /// `hostctl [--json] node COMMAND --state FILE --root DIR EXTRA...`.
    fn run(&self, json: bool, command: &str, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = Vec::new();
        if json {
            args.push(OsStr::new("--json"));
        }
        let (state, root) = (self.state_file(), self.root());
        args.extend([
            OsStr::new("node"),
            OsStr::new(command),
            OsStr::new("--state"),
            state.as_os_str(),
            OsStr::new("--root"),
            root.as_os_str(),
        ]);
        args.extend(extra.iter().map(OsStr::new));
        hostctl(args)
    }

    fn json(&self, command: &str, extra: &[&str], code: i32) -> Value {
        let out = self.run(true, command, extra);
        assert_exit(&out, code);
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
    }

    fn site_home(&self, id: i64) -> PathBuf {
        self.root().join(format!("node/sites/site{id}"))
    }

    fn vhost(&self, id: i64) -> PathBuf {
        self.root()
            .join(format!("{}/managed/live/sites/site{id}.conf", self.web))
    }

    fn pool(&self, version: &str, id: i64) -> PathBuf {
        self.root()
            .join(format!("php/{version}/live/pool.d/site{id}.conf"))
    }

    fn socket(&self, version: &str, id: i64) -> PathBuf {
        self.root()
            .join(format!("node/run/php{version}-site{id}.sock"))
    }

    fn get(&self, id: i64) -> (u16, String) {
        http_get(self.port, &self.domain(id), "/")
            .unwrap_or_else(|e| panic!("GET / on site {id}: {e}"))
    }

    /// Every live generated file and the record, with contents.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for tree in [
            format!("{}/managed/live", self.web),
            "php/8.2/live".to_owned(),
            "php/8.4/live".to_owned(),
        ] {
            collect(&self.root().join(tree), &mut out);
        }
        let record = self.root().join("state/applied.json");
        out.insert(record.clone(), std::fs::read(&record).unwrap_or_default());
        out
    }

    /// Processes (not zombies) whose command line mentions the root.
    fn processes(&self) -> Vec<String> {
        let root = self.root().display().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc") {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| text(&raw).replace('\0', " "))
                .unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .is_none_or(|state| state == "Z" || state == "X")
                })
                .unwrap_or(true);
            if cmdline.contains(&root) && !zombie {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
        found
    }
}

fn collect(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
}

fn uid_of(user: &str) -> u32 {
    let out = std::process::Command::new("id")
        .arg("-u")
        .arg(user)
        .output()
        .expect("id -u");
    text(&out.stdout).trim().parse().expect("numeric uid")
}

/// `GET path` for `host` on 127.0.0.1:`port` over HTTP/1.0: status and body.
fn http_get(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let response = text(&raw);
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

const INDEX_PHP: &str = "<?php echo PHP_VERSION, ' ', posix_getpwuid(posix_geteuid())['name'];\n";

#[track_caller]
fn assert_serves(node: &Node<'_>, id: i64, version: &str, user: &str) {
    let (status, body) = node.get(id);
    assert_eq!(status, 200, "site {id}: {body}");
    assert!(
        body.starts_with(&format!("{version}.")) && body.ends_with(&format!(" {user}")),
        "site {id} should run PHP {version} as {user}: {body}"
    );
}

/// The gid of the web server's group, which site homes are in as root.
fn www_data_gid() -> u32 {
    getent("group", "www-data").expect("www-data")[2]
        .parse()
        .expect("gid")
}

fn a_node_lives_through_hostctl(web: &'static str) {
    let Some(machine) = machine() else {
        return;
    };
    let node = Node::new(&machine, web);
    let (user1, user2) = (node.accounts.account(1), node.accounts.account(2));
    let (user1, user2) = (user1.as_str(), user2.as_str());

    // Site 1 already has content; hostctl must not touch it.
    let docroot1 = node.site_home(1).join("public");
    std::fs::create_dir_all(&docroot1).expect("mkdir");
    std::fs::write(docroot1.join("index.php"), INDEX_PHP).expect("index.php");

    // 1. Two sites, 8.2 and 8.4, without system_user: plan names the accounts to create; the
    //    apply creates them, and both sites answer with their version, as their own account.
    node.write_state(&[(1, "8.2", Account::Own), (2, "8.4", Account::Own)]);
    let out = node.run(false, "plan", &[]);
    assert_exit(&out, 0);
    let shown = text(&out.stdout);
    assert!(shown.contains("isolation: accounts"), "{shown}");
    assert!(
        shown.contains(&format!("account to create: {user1} (site 1)")),
        "{shown}"
    );
    let plan = node.json("plan", &[], 0);
    assert_eq!(plan["accounts"]["isolation"], "accounts", "{plan}");
    assert_eq!(
        plan["accounts"]["create"][1],
        serde_json::json!({"name": user2, "site": 2}),
        "{plan}"
    );
    assert!(getent("passwd", user1).is_none(), "plan creates nothing");
    let out = node.run(false, "apply", &[]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains(&format!("created account {user2} (site 2)")),
        "{}",
        text(&out.stdout)
    );
    let (uid1, uid2) = (
        node.accounts.uid_in_range(user1),
        node.accounts.uid_in_range(user2),
    );
    assert_eq!(
        std::fs::read_to_string(docroot1.join("index.php")).expect("read"),
        INDEX_PHP
    );
    assert_eq!(
        std::fs::metadata(docroot1.join("index.php"))
            .expect("stat")
            .uid(),
        0,
        "existing content is not re-owned"
    );
    assert_eq!(
        std::fs::metadata(node.site_home(1).join("tmp"))
            .expect("tmp created")
            .uid(),
        uid1
    );
    for (id, uid) in [(1, uid1), (2, uid2)] {
        let home = std::fs::metadata(node.site_home(id)).expect("home");
        assert_eq!(
            (home.uid(), home.gid(), home.mode() & 0o7777),
            (uid, www_data_gid(), 0o750),
            "site {id}'s home: its account's, in the web server's group, closed to others"
        );
    }
    for dir in ["public", "tmp", "sessions"] {
        assert_eq!(
            std::fs::metadata(node.site_home(2).join(dir))
                .expect("site dir")
                .uid(),
            uid2,
            "{dir}"
        );
    }
    std::fs::write(node.site_home(2).join("public/index.php"), INDEX_PHP).expect("index.php");
    assert_serves(&node, 1, "8.2", user1);
    assert_serves(&node, 2, "8.4", user2);
    let record: Value = serde_json::from_slice(
        &std::fs::read(node.root().join("state/applied.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(record["accounts"][0]["name"], user1, "{record}");
    assert_eq!(record["accounts"][0]["uid"], uid1, "{record}");

    // 2. No drift; re-planning changes nothing (the accounts are the sites' now).
    assert_exit(&node.run(false, "drift", &[]), 0);
    assert_eq!(node.json("drift", &[], 0)["clean"], true);
    let out = node.run(false, "plan", &[]);
    assert!(
        text(&out.stdout).contains("nothing to change"),
        "{}",
        text(&out.stdout)
    );

    // 3. A hand edit is drift naming the file; apply repairs it.
    let vhost1 = node.vhost(1);
    let original = std::fs::read_to_string(&vhost1).expect("vhost");
    std::fs::write(&vhost1, format!("{original}# hand edit\n")).expect("edit");
    let out = node.run(false, "drift", &[]);
    assert_exit(&out, 3);
    assert!(
        text(&out.stdout).contains(&vhost1.display().to_string()),
        "{}",
        text(&out.stdout)
    );
    let report = node.json("drift", &[], 3);
    assert_eq!(report["files"][0]["path"], "sites/site1.conf", "{report}");
    assert_eq!(report["files"][0]["kind"], "modified", "{report}");
    assert_exit(&node.run(false, "apply", &[]), 0);
    assert_eq!(
        std::fs::read_to_string(&vhost1).expect("vhost"),
        original,
        "repaired"
    );
    assert_exit(&node.run(false, "drift", &[]), 0);

    // 4. A PHP version change: plan shows it, a dry run prints the diff and changes nothing,
    //    apply switches.
    node.write_state(&[(1, "8.2", Account::Own), (2, "8.2", Account::Own)]);
    let out = node.run(false, "plan", &[]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("php_version 8.4 -> 8.2"),
        "{}",
        text(&out.stdout)
    );
    let plan = node.json("plan", &[], 0);
    assert_eq!(plan["sites"][1]["change"], "changed", "{plan}");
    assert_eq!(
        plan["sites"][1]["php_version"],
        serde_json::json!({"from": "8.4", "to": "8.2"})
    );
    assert_eq!(plan["sites"][0]["change"], "unchanged", "{plan}");
    assert_eq!(plan["sites"][1]["system_user"], user2, "{plan}");

    let before = node.snapshot();
    let out = node.run(false, "apply", &["--dry-run"]);
    assert_exit(&out, 0);
    let diff = text(&out.stdout);
    let old_socket = node.socket("8.4", 2).display().to_string();
    let new_socket = node.socket("8.2", 2).display().to_string();
    assert!(
        diff.lines()
            .any(|l| l.starts_with('-') && l.contains(&old_socket)),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains(&new_socket)),
        "{diff}"
    );
    assert!(
        diff.contains(&format!(
            "+++ {} (after apply)",
            node.pool("8.2", 2).display()
        )),
        "{diff}"
    );
    let dry = node.json("apply", &["--dry-run"], 0);
    assert_eq!(dry["dry_run"], true);
    assert!(
        dry["files"].as_array().is_some_and(|f| f.len() >= 3),
        "vhost, new pool, old pool: {dry}"
    );
    assert_eq!(node.snapshot(), before, "a dry run changes nothing");
    assert_serves(&node, 2, "8.4", user2);

    assert_exit(&node.run(false, "apply", &[]), 0);
    assert_serves(&node, 2, "8.2", user2);
    assert_serves(&node, 1, "8.2", user1);
    assert!(!Path::new(&old_socket).exists(), "the 8.4 pool is gone");
    assert_exit(&node.run(false, "drift", &[]), 0);

    // 5. Remove site 2: its vhost and pool go, then its home and its account (no other site
    //    runs as it); site 1 keeps answering.
    let out = node.run(false, "remove", &["--site", "2"]);
    assert_exit(&out, 0);
    let shown = text(&out.stdout);
    assert!(shown.contains("delete its [[site]] block"), "{shown}");
    assert!(
        shown.contains(&format!("removed account {user2} (uid {uid2})")),
        "{shown}"
    );
    assert!(!node.vhost(2).exists());
    assert!(!node.pool("8.2", 2).exists() && !node.pool("8.4", 2).exists());
    assert!(!Path::new(&new_socket).exists());
    assert!(!node.site_home(2).exists(), "its files are deleted");
    assert!(getent("passwd", user2).is_none(), "its account is removed");
    assert!(getent("group", user2).is_none(), "and its group");
    assert_eq!(
        node.accounts.uid_in_range(user1),
        uid1,
        "site 1 keeps its own"
    );
    assert_serves(&node, 1, "8.2", user1);
    let (status, body) = node.get(2);
    assert!(
        !(status == 200 && body.starts_with("8.")),
        "site 2 is no longer served: {status} {body}"
    );
    // The state file still lists it: plan shows it coming back, with a new account, until the
    // operator deletes it.
    let plan = node.json("plan", &[], 0);
    assert_eq!(plan["sites"][1]["change"], "added", "{plan}");
    assert_eq!(plan["accounts"]["create"][0]["site"], 2, "{plan}");
    node.write_state(&[(1, "8.2", Account::Own)]);
    let out = node.run(false, "plan", &[]);
    assert!(
        text(&out.stdout).contains("nothing to change"),
        "{}",
        text(&out.stdout)
    );

    // 6. An invalid state file: exit 2 naming the field, nothing changed.
    let before = node.snapshot();
    node.write_state_with(
        &[(1, "8.2", Account::Own), (3, "8.2", Account::Own)],
        |id| {
            if id == 3 {
                "evil.com; rm -rf /".to_owned()
            } else {
                node.domain(id)
            }
        },
    );
    let out = node.run(false, "apply", &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("domain"),
        "{}",
        text(&out.stderr)
    );
    let error = node.json("apply", &[], 2);
    assert_eq!(error["error"]["kind"], "invalid", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid domain")),
        "{error}"
    );
    assert_eq!(node.snapshot(), before, "nothing changed");
    assert!(!node.site_home(3).exists());
    assert_serves(&node, 1, "8.2", user1);

    // 7. Stop: nothing left running; drift says so.
    assert!(!node.processes().is_empty(), "servers run before stop");
    let out = hostctl([
        OsStr::new("--json"),
        OsStr::new("node"),
        OsStr::new("stop"),
        OsStr::new("--root"),
        node.root().as_os_str(),
    ]);
    assert_exit(&out, 0);
    let stopped: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        stopped["stopped"].as_array().is_some_and(|s| s.len() == 2),
        "the web server and PHP 8.2: {stopped}"
    );
    assert_eq!(node.processes(), Vec::<String>::new(), "no process left");
    assert!(http_get(node.port, &node.domain(1), "/").is_err());
    node.write_state(&[(1, "8.2", Account::Own)]);
    let report = node.json("drift", &[], 3);
    assert_eq!(
        report["not_running"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    // And apply brings it back.
    assert_exit(&node.run(false, "apply", &[]), 0);
    assert_serves(&node, 1, "8.2", user1);
    assert_exit(&node.run(false, "drift", &[]), 0);

    // 8. The last site goes: its home and its account go with it.
    node.write_state(&[]);
    assert_exit(&node.run(false, "apply", &[]), 0);
    assert!(!node.site_home(1).exists());
    assert!(
        getent("passwd", user1).is_none(),
        "the last account is removed"
    );
    let record: Value = serde_json::from_slice(
        &std::fs::read(node.root().join("state/applied.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(record["accounts"], serde_json::json!([]), "{record}");
}

#[test]
fn nginx_node_lives_through_hostctl() {
    a_node_lives_through_hostctl("nginx");
}

#[test]
fn apache_node_lives_through_hostctl() {
    a_node_lives_through_hostctl("apache");
}

/// A system account of this machine that `SystemUser` accepts (uid below 1000, not on its
/// built-in list), such as `systemd-timesync`.
fn system_account() -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let uid: u32 = fields.get(2)?.parse().ok()?;
        let name = *fields.first()?;
        (uid > 0 && uid < 1000 && name.parse::<hosting_core::types::SystemUser>().is_ok())
            .then(|| name.to_owned())
    })
}

/// The panel's account and directive rules, on nginx: refusals before anything changes;
/// sites sharing an account hostctl created; an adopted account, never removed; an operator
/// directive outside the tenant policy that takes effect; an apply that fails after creating
/// accounts keeps track of them, and the next apply reuses or removes them.
#[test]
fn accounts_and_directives_follow_the_panels_rules() {
    let Some(machine) = machine() else {
        return;
    };
    let node = Node::new(&machine, "nginx");
    let adopted = machine.users[0].as_str();
    let shared = node.accounts.account(1);
    let shared = shared.as_str();
    let ghost = format!("ghost{}", node.accounts.tag);

    // 1. Refused naming the field, before anything changes: no root, no account for site 1.
    let system = system_account();
    let mut refused: Vec<(String, &str, String)> = vec![
        (
            format!("system_user = \"{adopted}\"\n"),
            "site[1].system_user: ",
            "is an existing account hostctl did not create".to_owned(),
        ),
        (
            format!("system_user = \"{ghost}\"\n"),
            "site[1].system_user: ",
            "is not an account hostctl created".to_owned(),
        ),
        (
            format!("system_user = \"{ghost}\"\nadopt_account = true\n"),
            "site[1].system_user: ",
            "does not exist".to_owned(),
        ),
        (
            "[site.settings]\nextra_directives = [{ name = \"access_log\", args = [\"/etc/x.log\"] }]\n"
                .to_owned(),
            "site[1].settings.extra_directives[0].name: ",
            "'access_log' is not a directive tenants may use".to_owned(),
        ),
    ];
    if let Some(system) = &system {
        for adopt in ["", "adopt_account = true\n"] {
            refused.push((
                format!("system_user = \"{system}\"\n{adopt}"),
                "site[1].system_user: ",
                format!("{system} (uid "),
            ));
        }
    } else {
        println!("no system account below uid 1000 that SystemUser accepts: case skipped");
    }
    for (extra, field, rule) in &refused {
        let toml = format!(
            "{}{}\n[[site]]\nid = 2\ndomain = \"{}\"\n{extra}",
            node.node_table(),
            node.site_block((1, "8.2", Account::Own), &node.domain(1), ""),
            node.domain(2),
        );
        std::fs::write(node.state_file(), toml).expect("state");
        for command in ["plan", "apply"] {
            let out = node.run(false, command, &[]);
            assert_exit(&out, 2);
            let err = text(&out.stderr);
            assert!(
                err.contains(field) && err.contains(rule.as_str()),
                "{command}: {err}"
            );
        }
        assert!(!node.root().exists(), "nothing was created: {extra}");
        assert!(getent("passwd", shared).is_none(), "no account was created");
    }

    // 2. Site 1 gets an account of its own, site 2 shares it (named, in the same apply), site 3
    //    runs as an adopted account with the operator's own access log.
    let op_log = node.dir.path().join("operator.log");
    // Sites 4 and 5 get accounts of their own; `broken` sites carry an operator directive the
    // server refuses.
    let write_with = |sites: &[i64], broken: &[i64]| {
        let mut toml = node.node_table();
        for &id in sites {
            toml.push_str(&match id {
                1 => node.site_block((1, "8.2", Account::Own), &node.domain(1), ""),
                2 => node.site_block((2, "8.2", Account::Named(shared)), &node.domain(2), ""),
                3 => node.site_block(
                    (3, "8.2", Account::Adopted(adopted)),
                    &node.domain(3),
                    &format!(
                        "operator_directives = [{{ name = \"access_log\", args = [\"{}\"] }}]\n",
                        op_log.display()
                    ),
                ),
                _ => node.site_block(
                    (id, "8.2", Account::Own),
                    &node.domain(id),
                    if broken.contains(&id) {
                        "operator_directives = [{ name = \"not_a_directive\", args = [\"on\"] }]\n"
                    } else {
                        ""
                    },
                ),
            });
        }
        std::fs::write(node.state_file(), toml).expect("state");
    };
    let write = |sites: &[i64]| write_with(sites, &[]);
    write(&[1, 2, 3]);
    let plan = node.json("plan", &[], 0);
    assert_eq!(
        plan["accounts"]["create"],
        serde_json::json!([{"name": shared, "site": 1}]),
        "one account, shared: {plan}"
    );
    assert_exit(&node.run(false, "apply", &[]), 0);
    let shared_uid = node.accounts.uid_in_range(shared);
    for id in [1, 2, 3] {
        std::fs::write(node.site_home(id).join("public/index.php"), INDEX_PHP).expect("index.php");
    }
    assert_serves(&node, 1, "8.2", shared);
    assert_serves(&node, 2, "8.2", shared);
    assert_serves(&node, 3, "8.2", adopted);
    let vhost3 = std::fs::read_to_string(node.vhost(3)).expect("vhost");
    assert!(
        vhost3.contains(&format!("access_log {}", op_log.display())),
        "the operator directive is rendered: {vhost3}"
    );
    let logged = std::fs::read_to_string(&op_log).unwrap_or_default();
    assert!(
        logged.contains("GET / "),
        "the operator's access log took the request: {logged:?}"
    );
    assert_eq!(
        std::fs::metadata(node.site_home(3)).expect("home").uid(),
        uid_of(adopted)
    );

    // 3. Site 1 goes: its home goes, the account stays for site 2.
    write(&[2, 3]);
    let out = node.run(false, "apply", &[]);
    assert_exit(&out, 0);
    assert!(!node.site_home(1).exists(), "{}", text(&out.stdout));
    assert_eq!(node.accounts.uid_in_range(shared), shared_uid);
    assert_serves(&node, 2, "8.2", shared);

    // 4. An apply that fails after creating accounts (sites 4 and 5, a broken operator
    //    directive on 5): the accounts are recorded, the sites pending; 2 and 3 keep answering.
    let (user4, user5) = (node.accounts.account(4), node.accounts.account(5));
    write_with(&[2, 3, 4, 5], &[5]);
    let out = node.run(false, "apply", &[]);
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("not_a_directive"),
        "{}",
        text(&out.stderr)
    );
    let uid4 = node.accounts.uid_in_range(&user4);
    node.accounts.uid_in_range(&user5);
    let record: Value = serde_json::from_slice(
        &std::fs::read(node.root().join("state/applied.json")).expect("record"),
    )
    .expect("json");
    let names: Vec<&str> = record["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, [shared, user4.as_str(), user5.as_str()], "{record}");
    let pending: Vec<i64> = record["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .filter_map(|s| s["id"].as_i64())
        .collect();
    assert_eq!(pending, [4, 5], "{record}");
    assert_serves(&node, 2, "8.2", shared);
    // Site 4 stays and keeps its account (nothing to create); site 5 is dropped: its files and
    // account go.
    write(&[2, 3, 4]);
    let plan = node.json("plan", &[], 0);
    assert_eq!(plan["accounts"]["create"], serde_json::json!([]), "{plan}");
    assert_eq!(
        plan["accounts"]["remove"][0]["name"],
        user5.as_str(),
        "{plan}"
    );
    assert_eq!(plan["accounts"]["delete_files"][0]["site"], 5, "{plan}");
    assert_exit(&node.run(false, "apply", &[]), 0);
    assert!(getent("passwd", &user5).is_none());
    assert!(!node.site_home(5).exists());
    assert_eq!(node.accounts.uid_in_range(&user4), uid4);
    std::fs::write(node.site_home(4).join("public/index.php"), INDEX_PHP).expect("index.php");
    assert_serves(&node, 4, "8.2", &user4);

    // 5. Sites 2, 3 and 4 go: the shared account goes with its last site, and site 4's; the
    //    adopted account and its site's files stay.
    write(&[]);
    let plan = node.json("plan", &[], 0);
    let field = |list: &str, key: &str| {
        plan["accounts"][list]
            .as_array()
            .map(|f| f.iter().map(|f| f[key].clone()).collect::<Vec<_>>())
    };
    assert_eq!(
        field("remove", "name"),
        Some(vec![Value::from(shared), Value::from(user4.as_str())]),
        "{plan}"
    );
    assert_eq!(
        field("delete_files", "site"),
        Some(vec![Value::from(2), Value::from(4)]),
        "{plan}"
    );
    assert_exit(&node.run(false, "apply", &[]), 0);
    assert!(getent("passwd", shared).is_none());
    assert!(getent("passwd", &user4).is_none());
    assert!(!node.site_home(2).exists() && !node.site_home(4).exists());
    assert!(
        getent("passwd", adopted).is_some(),
        "an adopted account stays"
    );
    assert!(node.site_home(3).join("public/index.php").exists());
}

/// Without root there are no separate accounts: hostctl, run as a test user, runs every site
/// as that user, says so, and refuses another account.
#[test]
fn without_root_every_site_runs_as_the_current_user() {
    let Some(machine) = machine() else {
        return;
    };
    let id = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id -u");
    if text(&id.stdout).trim() != "0" {
        println!("SKIPPED: needs root to run hostctl as a test user");
        return;
    }
    let user = machine.users[1].as_str();
    let other = machine.users[0].as_str();
    let uid = uid_of(user);
    let node = Node::new(&machine, "nginx");
    std::fs::create_dir(node.root()).expect("root");
    std::os::unix::fs::chown(node.root(), Some(uid), Some(uid)).expect("chown");
    let as_user = |command: &str, json: bool| {
        let (state, root) = (node.state_file(), node.root());
        let mut args: Vec<String> = vec![
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
            env!("CARGO_BIN_EXE_hostctl").to_owned(),
        ];
        if json {
            args.push("--json".to_owned());
        }
        args.extend([
            "node".to_owned(),
            command.to_owned(),
            "--state".to_owned(),
            state.display().to_string(),
            "--root".to_owned(),
            root.display().to_string(),
        ]);
        std::process::Command::new("setpriv")
            .args(args)
            .output()
            .expect("setpriv")
    };

    // PHP 8.4's build lives in root's home, which the user cannot enter: 8.2 only.
    let write = |sites: &[SiteSpec<'_>]| {
        let mut toml = node.node_table_with(false);
        for site in sites {
            toml.push_str(&node.site_block(*site, &node.domain(site.0), ""));
        }
        std::fs::write(node.state_file(), toml).expect("state");
    };
    write(&[(1, "8.2", Account::Named(other))]);
    let out = as_user("plan", false);
    assert_exit(&out, 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("site[0].system_user: ")
            && err.contains(&format!("every site runs as {user}")),
        "{err}"
    );

    write(&[(1, "8.2", Account::Own), (2, "8.2", Account::Named(user))]);
    let out = as_user("plan", false);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains(&format!(
            "isolation: none: hostctl does not run as root, so every site runs as {user}"
        )),
        "{}",
        text(&out.stdout)
    );
    let out = as_user("plan", true);
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["accounts"]["isolation"], "none", "{plan}");
    assert_eq!(plan["accounts"]["account"], user, "{plan}");
    assert_eq!(plan["accounts"]["create"], serde_json::json!([]), "{plan}");

    let out = as_user("apply", false);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("isolation: none"),
        "{}",
        text(&out.stdout)
    );
    for id in [1, 2] {
        let home = std::fs::metadata(node.site_home(id)).expect("home");
        assert_eq!(
            (home.uid(), home.mode() & 0o7777),
            (uid, 0o711),
            "site {id}"
        );
        std::fs::write(node.site_home(id).join("public/index.php"), INDEX_PHP).expect("index.php");
    }
    assert_serves(&node, 1, "8.2", user);
    assert_serves(&node, 2, "8.2", user);

    // Removing a site keeps its files: they are the user's, not an account hostctl made.
    write(&[(1, "8.2", Account::Own)]);
    assert_exit(&as_user("apply", false), 0);
    assert!(node.site_home(2).join("public/index.php").exists());
    assert!(getent("passwd", user).is_some());
    assert_serves(&node, 1, "8.2", user);
}

/// Needs no server: bad command lines and bad state files exit 2 and create nothing.
#[test]
fn usage_errors_and_invalid_state_files_exit_2_and_touch_nothing() {
    let dir = TempDir::new();
    let root = dir.path().join("root");
    let state = dir.path().join("node.toml");

    assert_exit(&hostctl(["node", "plan"]), 2);
    assert_exit(&hostctl(["node", "frobnicate"]), 2);
    let help = hostctl(["node", "--help"]);
    assert_exit(&help, 0);
    assert!(text(&help.stdout).contains("[[site]]"));
    let help = hostctl(["node", "remove", "--help"]);
    assert!(
        text(&help.stdout).contains("never edits the state file"),
        "{}",
        text(&help.stdout)
    );

    let args = |command: &'static str| -> Vec<&OsStr> {
        vec![
            OsStr::new("node"),
            OsStr::new(command),
            OsStr::new("--state"),
            state.as_os_str(),
            OsStr::new("--root"),
            root.as_os_str(),
        ]
    };
    // No file at all.
    let out = hostctl(args("apply"));
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("cannot read the state file"));

    for (body, field) in [
        (
            "[[site]]\nid = 1\ndomain = \"evil.com; rm -rf /\"\nsystem_user = \"shop\"\n",
            "invalid domain",
        ),
        (
            "[[site]]\nid = 1\ndomain = \"a.example.com\"\nsystem_user = \"root\"\n",
            "invalid system_user",
        ),
        (
            "[[site]]\nid = 1\ndomain = \"a.example.com\"\nsystem_user = \"shop\"\nphp_version = \"5.6\"\n",
            "invalid php_version",
        ),
        (
            "[[site]]\nid = 1\ndomain = \"a.example.com\"\nsystem_user = \"shop\"\nbogus = 1\n",
            "bogus",
        ),
    ] {
        std::fs::write(
            &state,
            format!("[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\n\n{body}"),
        )
        .expect("write");
        for command in ["plan", "apply", "drift", "remove"] {
            let mut argv = args(command);
            if command == "remove" {
                argv.extend([OsStr::new("--site"), OsStr::new("1")]);
            }
            let out = hostctl(argv);
            assert_exit(&out, 2);
            assert!(
                text(&out.stderr).contains(field),
                "{command}: {}",
                text(&out.stderr)
            );
        }
    }
    // A plugin's kind is a valid web_server, but not one hostctl runs.
    std::fs::write(
        &state,
        "[node]\nweb_server = \"caddy\"\nmode = \"prefix\"\n\n[[site]]\nid = 1\n\
         domain = \"a.example.com\"\nsystem_user = \"shop\"\n",
    )
    .expect("write");
    for command in ["plan", "apply", "drift"] {
        let out = hostctl(args(command));
        assert_exit(&out, 2);
        assert!(
            text(&out.stderr).contains("web_server caddy is a plugin"),
            "{command}: {}",
            text(&out.stderr)
        );
    }
    assert!(!root.exists(), "nothing was created under the root");

    // Stopping a root where nothing runs is fine.
    let out = hostctl([
        OsStr::new("node"),
        OsStr::new("stop"),
        OsStr::new("--root"),
        root.as_os_str(),
    ]);
    assert_exit(&out, 0);
}
