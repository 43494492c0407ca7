//! `hostctl node` end to end: the real binary against real nginx or Apache in front of real
//! PHP-FPM 8.2 (Debian) and 8.4 (trixie), all started by hostctl under a temporary prefix.
//!
//! One life of a node, per web server: apply two sites (8.2 and 8.4) and both answer with their
//! PHP version; `drift` is clean; a hand-edited live file is drift (exit 3) naming the file, and
//! `apply` repairs it; a PHP version change shows in `plan`, `apply --dry-run` prints the diff
//! and changes nothing, `apply` switches it; `remove --site` takes a site's vhost and pool away
//! while the other keeps answering; an invalid state file exits 2 naming `domain` and changes
//! nothing; `stop` leaves no process behind. The servers are stopped even when a step fails.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use hosting_tests::{TempDir, env_or_skip, free_port};
use serde_json::Value;

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

/// Runs the real binary with `args`.
fn hostctl<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    std::process::Command::new(env!("CARGO_BIN_EXE_hostctl"))
        .args(args)
        .output()
        .expect("run hostctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

/// A site in a state file: id, PHP version, index of its test user.
type SiteSpec<'a> = (i64, &'a str, usize);

/// One node under a temporary prefix, driven only through the binary.
struct Node<'m> {
    /// First, so the servers stop before the prefix is removed.
    _stop: StopServers,
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

    fn domain(id: i64) -> String {
        format!("site{id}.hostctl.example.com")
    }

    /// Writes the state file; `domain_of` may replace a site's domain.
    fn write_state_with(&self, sites: &[SiteSpec<'_>], domain_of: impl Fn(i64) -> String) {
        let m = self.machine;
        let mut toml = format!(
            "[node]\nweb_server = \"{}\"\nmode = \"prefix\"\nhttp_port = {}\nhttps_port = {}\n\
             nginx_binary = \"{}\"\napache_binary = \"{}\"\n\n\
             [[node.php]]\nfpm_binary = \"{}\"\n\n\
             [[node.php]]\nfpm_binary = \"{}\"\nphp_ini = \"{}\"\nscan_dir = \"{}\"\n",
            self.web,
            self.port,
            self.https_port,
            m.nginx,
            m.apache,
            m.php82,
            m.php84_bin,
            m.php84_ini,
            m.php84_scan_dir
        );
        for (id, php, user) in sites {
            toml.push_str(&format!(
                "\n[[site]]\nid = {id}\ndomain = \"{}\"\nphp_version = \"{php}\"\n\
                 system_user = \"{}\"\ndocument_root = \"public\"\n[site.settings]\ngzip = true\n",
                domain_of(*id),
                m.users[*user]
            ));
        }
        std::fs::write(self.state_file(), toml).expect("write state file");
    }

    fn write_state(&self, sites: &[SiteSpec<'_>]) {
        self.write_state_with(sites, Self::domain);
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
        http_get(self.port, &Self::domain(id), "/")
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

fn a_node_lives_through_hostctl(web: &'static str) {
    let Some(machine) = machine() else {
        return;
    };
    let (user1, user2) = (machine.users[0].as_str(), machine.users[1].as_str());
    let node = Node::new(&machine, web);

    // Site 1 already has content; hostctl must not touch it.
    let docroot1 = node.site_home(1).join("public");
    std::fs::create_dir_all(&docroot1).expect("mkdir");
    std::fs::write(docroot1.join("index.php"), INDEX_PHP).expect("index.php");

    // 1. Two sites, 8.2 and 8.4: both answer with their version, as their own user.
    node.write_state(&[(1, "8.2", 0), (2, "8.4", 1)]);
    assert_exit(&node.run(false, "apply", &[]), 0);
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
        uid_of(user1)
    );
    let home2 = std::fs::metadata(node.site_home(2)).expect("home created");
    assert_eq!(home2.uid(), uid_of(user2));
    assert_eq!(home2.mode() & 0o777, 0o711);
    for dir in ["public", "tmp", "sessions"] {
        assert_eq!(
            std::fs::metadata(node.site_home(2).join(dir))
                .expect("site dir")
                .uid(),
            uid_of(user2),
            "{dir}"
        );
    }
    std::fs::write(node.site_home(2).join("public/index.php"), INDEX_PHP).expect("index.php");
    assert_serves(&node, 1, "8.2", user1);
    assert_serves(&node, 2, "8.4", user2);

    // 2. No drift.
    assert_exit(&node.run(false, "drift", &[]), 0);
    assert_eq!(node.json("drift", &[], 0)["clean"], true);

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
    node.write_state(&[(1, "8.2", 0), (2, "8.2", 1)]);
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

    // 5. Remove site 2: its vhost and pool go, its files stay, site 1 keeps answering.
    let out = node.run(false, "remove", &["--site", "2"]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("delete its [[site]] block"),
        "{}",
        text(&out.stdout)
    );
    assert!(!node.vhost(2).exists());
    assert!(!node.pool("8.2", 2).exists() && !node.pool("8.4", 2).exists());
    assert!(!Path::new(&new_socket).exists());
    assert!(node.site_home(2).join("public/index.php").exists());
    assert_serves(&node, 1, "8.2", user1);
    let (status, body) = node.get(2);
    assert!(
        !(status == 200 && body.starts_with("8.")),
        "site 2 is no longer served: {status} {body}"
    );
    // The state file still lists it: plan shows it coming back until the operator deletes it.
    let plan = node.json("plan", &[], 0);
    assert_eq!(plan["sites"][1]["change"], "added", "{plan}");
    node.write_state(&[(1, "8.2", 0)]);
    let out = node.run(false, "plan", &[]);
    assert!(
        text(&out.stdout).contains("nothing to change"),
        "{}",
        text(&out.stdout)
    );

    // 6. An invalid state file: exit 2 naming the field, nothing changed.
    let before = node.snapshot();
    node.write_state_with(&[(1, "8.2", 0), (3, "8.2", 1)], |id| {
        if id == 3 {
            "evil.com; rm -rf /".to_owned()
        } else {
            Node::domain(id)
        }
    });
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
    assert!(http_get(node.port, &Node::domain(1), "/").is_err());
    node.write_state(&[(1, "8.2", 0)]);
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
}

#[test]
fn nginx_node_lives_through_hostctl() {
    a_node_lives_through_hostctl("nginx");
}

#[test]
fn apache_node_lives_through_hostctl() {
    a_node_lives_through_hostctl("apache");
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
