//! A power loss under `hostctl node apply` in prefix mode: three PHP sites served (PHP 8.2 and
//! 8.4 when the machine has the 8.4 build, else all on 8.2) through nginx, then nginx, every
//! PHP-FPM master and all their workers are killed at once with SIGKILL, as a power cut does,
//! leaving their pid and socket files on disk. `hostctl node apply` alone must bring every site
//! back to serving PHP within 30 s.
//!
//! The second test leaves a pid file behind that names a live process that is not the server
//! (after a reboot a pid means nothing): a `sleep` this test started. The apply must start the
//! servers rather than signal it; the `sleep` is still running afterwards (any of the signals
//! a reload or stop sends, HUP, USR2, QUIT or TERM, would have ended it).
//!
//! Processes are found by the node's root on their command line and as children of those,
//! never by name: other tests run nginx and PHP-FPM side by side.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};
use support::{hostctl, text};

use hosting_tests::{Bystander, TempDir, env_or_skip, free_port, power_cut, root_or_skip};
use support::TestAccounts;

/// How long the node may take to serve every site again after the apply starts.
const RECOVERY: Duration = Duration::from_secs(30);

const INDEX_PHP: &str = "<?php echo 'php ', PHP_VERSION;\n";

/// The machine's binaries: nginx, PHP 8.2 and, when built, PHP 8.4 (binary, php.ini, scan dir).
struct Machine {
    nginx: String,
    php82: String,
    php84: Option<(String, String, String)>,
}

fn machine() -> Option<Machine> {
    if !root_or_skip() {
        return None;
    }
    let php84 = match (
        std::env::var("HOSTING_TEST_PHP_FPM_84_BIN"),
        std::env::var("HOSTING_TEST_PHP_FPM_84_INI"),
        std::env::var("HOSTING_TEST_PHP_FPM_84_SCAN_DIR"),
    ) {
        (Ok(bin), Ok(ini), Ok(scan)) => Some((bin, ini, scan)),
        _ => None,
    };
    Some(Machine {
        nginx: env_or_skip("HOSTING_TEST_NGINX")?,
        php82: env_or_skip("HOSTING_TEST_PHP_FPM_82")?,
        php84,
    })
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
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
        // A failed test may leave processes hostctl no longer knows (its pid files replaced).
        power_cut(&self.0);
    }
}

/// One node under a temporary prefix: nginx in front of PHP-FPM, three PHP sites.
struct Node {
    /// First, so the servers stop before the accounts and the prefix are removed.
    _stop: StopServers,
    accounts: TestAccounts,
    dir: TempDir,
    port: u16,
    /// Site id and PHP version.
    sites: Vec<(i64, &'static str)>,
}

impl Node {
    fn new(machine: &Machine) -> Self {
        let dir = TempDir::new();
        let second = if machine.php84.is_some() {
            "8.4"
        } else {
            "8.2"
        };
        let node = Node {
            _stop: StopServers(dir.path().join("root")),
            accounts: TestAccounts::new(),
            dir,
            port: free_port(),
            sites: vec![(1, "8.2"), (2, second), (3, "8.2")],
        };
        let mut toml = format!(
            "[node]\nweb_server = \"nginx\"\nmode = \"prefix\"\nhttp_port = {}\nhttps_port = {}\n\
             nginx_binary = \"{}\"\nuid_range = \"{}\"\n\n[[node.php]]\nfpm_binary = \"{}\"\n",
            node.port,
            free_port(),
            machine.nginx,
            node.accounts.uid_range(),
            machine.php82,
        );
        if let Some((bin, ini, scan)) = &machine.php84 {
            toml.push_str(&format!(
                "\n[[node.php]]\nfpm_binary = \"{bin}\"\nphp_ini = \"{ini}\"\nscan_dir = \"{scan}\"\n"
            ));
        }
        for (id, php) in &node.sites {
            toml.push_str(&format!(
                "\n[[site]]\nid = {id}\ndomain = \"{}\"\nphp_version = \"{php}\"\n\
                 document_root = \"public\"\n",
                node.accounts.domain(*id)
            ));
        }
        std::fs::write(node.state_file(), toml).expect("write state file");
        node
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("node.toml")
    }

    fn apply(&self) -> Output {
        let (state, root) = (self.state_file(), self.root());
        hostctl([
            OsStr::new("node"),
            OsStr::new("apply"),
            OsStr::new("--state"),
            state.as_os_str(),
            OsStr::new("--root"),
            root.as_os_str(),
        ])
    }

    /// Applies the state and gives every site an `index.php`, then waits until each serves it.
    fn serve(&self) {
        assert_ok(&self.apply());
        for (id, _) in &self.sites {
            let docroot = self.root().join(format!("node/sites/site{id}/public"));
            std::fs::write(docroot.join("index.php"), INDEX_PHP).expect("index.php");
        }
        self.wait_until_served(Instant::now() + RECOVERY);
    }

    /// Waits until every site answers its PHP, or fails at `deadline` naming what it got.
    #[track_caller]
    fn wait_until_served(&self, deadline: Instant) {
        let mut waiting: BTreeSet<usize> = (0..self.sites.len()).collect();
        let mut last = String::new();
        while !waiting.is_empty() {
            waiting.retain(|i| {
                let (id, php) = self.sites[*i];
                match http_get(self.port, &self.accounts.domain(id), "/index.php") {
                    Ok((200, body)) if body.starts_with(&format!("php {php}.")) => false,
                    Ok((status, body)) => {
                        last = format!("site {id}: {status} {body}");
                        true
                    }
                    Err(e) => {
                        last = format!("site {id}: {e}");
                        true
                    }
                }
            });
            if waiting.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sites {waiting:?} do not serve PHP again in time; last answer: {last}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn nginx_pid_file(&self) -> PathBuf {
        self.root().join("nginx/run/nginx.pid")
    }

    fn php_pid_file(&self, version: &str) -> PathBuf {
        self.root().join(format!("node/run/php{version}-fpm.pid"))
    }

    fn versions(&self) -> BTreeSet<&'static str> {
        self.sites.iter().map(|(_, php)| *php).collect()
    }

    fn sockets(&self) -> Vec<PathBuf> {
        self.sites
            .iter()
            .map(|(id, php)| self.root().join(format!("node/run/php{php}-site{id}.sock")))
            .collect()
    }

    /// SIGKILLs nginx, every PHP-FPM master and all their workers at once, leaving every file
    /// as it was; checks that the pid and socket files are still there.
    fn power_loss(&self) {
        let killed = power_cut(&self.root());
        assert!(
            killed > self.versions().len(),
            "nginx and a master per version were running ({killed} processes killed)"
        );
        let mut left = vec![self.nginx_pid_file()];
        left.extend(self.versions().into_iter().map(|v| self.php_pid_file(v)));
        left.extend(self.sockets());
        for file in left {
            assert!(file.exists(), "{} stays behind", file.display());
        }
        for (id, _) in &self.sites {
            assert!(
                http_get(self.port, &self.accounts.domain(*id), "/index.php").is_err(),
                "nothing answers after the power loss"
            );
        }
    }
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

#[test]
fn after_a_power_loss_the_apply_serves_every_site_again() {
    let Some(machine) = machine() else {
        return;
    };
    let node = Node::new(&machine);
    node.serve();
    node.power_loss();

    let started = Instant::now();
    let out = node.apply();
    assert_ok(&out);
    node.wait_until_served(started + RECOVERY);
    eprintln!(
        "served again {:?} after the apply started",
        started.elapsed()
    );

    // And once more: a second power loss after a recovery is no different.
    node.power_loss();
    let started = Instant::now();
    assert_ok(&node.apply());
    node.wait_until_served(started + RECOVERY);
}

#[test]
fn a_stale_pid_file_naming_another_process_is_not_signalled() {
    let Some(machine) = machine() else {
        return;
    };
    let node = Node::new(&machine);
    node.serve();
    node.power_loss();

    // After the reboot the pids in the files belong to other processes: one unrelated process
    // is named by nginx's pid file, another by a PHP master's.
    let mut for_nginx = Bystander::start();
    let mut for_php = Bystander::start();
    std::fs::write(node.nginx_pid_file(), format!("{}\n", for_nginx.pid())).expect("pid file");
    std::fs::write(node.php_pid_file("8.2"), format!("{}\n", for_php.pid())).expect("pid file");

    let started = Instant::now();
    let out = node.apply();
    assert_ok(&out);
    node.wait_until_served(started + RECOVERY);
    for_nginx.assert_untouched();
    for_php.assert_untouched();
    for (file, other) in [
        (node.nginx_pid_file(), &for_nginx),
        (node.php_pid_file("8.2"), &for_php),
    ] {
        let named: u32 = std::fs::read_to_string(&file)
            .expect("the new server's pid file")
            .trim()
            .parse()
            .expect("a pid");
        assert_ne!(
            named,
            other.pid(),
            "{} names the new server",
            file.display()
        );
    }

    // `hostctl node stop` must not signal it either, once a pid file names it again.
    std::fs::write(node.nginx_pid_file(), format!("{}\n", for_nginx.pid())).expect("pid file");
    let root = node.root();
    let out = hostctl([
        OsStr::new("node"),
        OsStr::new("stop"),
        OsStr::new("--root"),
        root.as_os_str(),
    ]);
    assert_ok(&out);
    for_nginx.assert_untouched();
}

#[test]
fn a_php_version_that_cannot_start_keeps_no_other_site_down() {
    let Some(machine) = machine() else {
        return;
    };
    if machine.php84.is_none() {
        eprintln!("SKIPPED: two PHP versions are needed (HOSTING_TEST_PHP_FPM_84_*)");
        return;
    }
    let node = Node::new(&machine);
    node.serve();
    node.power_loss();

    // PHP 8.4's master cannot start: its pid file cannot be written (`php-fpm -t` passes).
    let blocked = node.php_pid_file("8.4");
    std::fs::remove_file(&blocked).expect("the stale pid file");
    std::fs::create_dir(&blocked).expect("a directory in its place");
    let out = node.apply();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let said = text(&out.stderr);
    assert!(
        said.contains("PHP 8.4 (sites 2)") && said.contains("502"),
        "the failed version and its sites are named: {said}"
    );
    // The web server was applied: the other version's sites serve PHP, the failed one's get
    // a 502 from nginx.
    let others = Node {
        sites: node
            .sites
            .iter()
            .filter(|(_, php)| *php == "8.2")
            .copied()
            .collect(),
        ..node
    };
    others.wait_until_served(Instant::now() + RECOVERY);
    let (status, _) =
        http_get(others.port, &others.accounts.domain(2), "/index.php").expect("nginx answers");
    assert_eq!(status, 502, "the failed version's site");

    // Mended, the next apply starts it.
    std::fs::remove_dir(&blocked).expect("rmdir");
    let node = Node {
        sites: vec![(1, "8.2"), (2, "8.4"), (3, "8.2")],
        ..others
    };
    assert_ok(&node.apply());
    node.wait_until_served(Instant::now() + RECOVERY);
}
