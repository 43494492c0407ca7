//! The apply path against real PHP-FPM masters (8.2 from Debian, 8.4 from trixie), started and
//! reloaded by the SDK under a temporary prefix: pools come up as their sites' users, a switch
//! between versions keeps the old pool until told otherwise, a rejected config changes nothing
//! live, and drift is reported.
#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{
    PHP_FPM_82, PHP_FPM_84_BIN, PHP_FPM_84_INI, PHP_FPM_84_SCAN_DIR, TempDir, env_or_skip, runner,
    site, system_users,
};
use hosting_core::model::{PhpSettings, Website};
use hosting_core::php::PhpRuntime;
use hosting_core::types::{PhpVersion, SystemUser};
use hosting_core::{Drift, Error, HostLayout};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, POOL_TEMPLATE, PhpFpm, PrefixInstall};

/// Stops every master started under the prefix, even when a test fails half-way.
struct Masters(PathBuf);

impl Drop for Masters {
    fn drop(&mut self) {
        for version in ["8.2", "8.4"] {
            let pid_file = self.0.join(format!("php{version}-fpm.pid"));
            if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                let _ = std::process::Command::new("kill")
                    .arg("-QUIT")
                    .arg(pid.trim())
                    .status();
            }
        }
    }
}

struct Node {
    _dir: TempDir,
    fpm: PhpFpm,
    layout: HostLayout,
    users: Vec<SystemUser>,
    _masters: Masters,
}

/// Both real PHP versions, supervised by the SDK under a fresh prefix; `template_dir` as given.
async fn node(name: &str, template_dir: Option<PathBuf>) -> Option<Node> {
    let users = system_users()?;
    let installs = vec![
        PrefixInstall {
            fpm_binary: env_or_skip(PHP_FPM_82)?.into(),
            php_ini: None,
            scan_dir: None,
        },
        PrefixInstall {
            fpm_binary: env_or_skip(PHP_FPM_84_BIN)?.into(),
            php_ini: Some(env_or_skip(PHP_FPM_84_INI)?.into()),
            scan_dir: Some(env_or_skip(PHP_FPM_84_SCAN_DIR)?.into()),
        },
    ];
    let dir = TempDir::new(name);
    let layout = HostLayout::under(dir.path().join("node"));
    for d in [&layout.sites_root, &layout.php_run_dir, &layout.log_dir] {
        std::fs::create_dir_all(d).expect("mkdir layout");
    }
    let mut config = FpmConfig::new(layout.clone());
    config.managed_root = dir.path().join("php");
    config.service = FpmService::Supervised;
    config.template_dir = template_dir;
    let fpm = PhpFpm::discover(
        runner(),
        config,
        &DiscoveryConfig {
            system_dir: None,
            prefix_installs: installs,
        },
    )
    .await
    .expect("discover");
    assert_eq!(fpm.installed().len(), 2, "8.2 and 8.4 are both here");
    Some(Node {
        _masters: Masters(layout.php_run_dir.clone()),
        _dir: dir,
        fpm,
        layout,
        users,
    })
}

impl Node {
    fn site(&self, id: i64, version: PhpVersion) -> Website {
        site(
            id,
            Some(version),
            &self.users[(id as usize) % self.users.len()],
            PhpSettings::default(),
        )
    }

    fn socket(&self, site: &Website) -> PathBuf {
        self.layout.site(site).php_socket.expect("php site")
    }

    fn master_pid(&self, version: PhpVersion) -> Option<String> {
        let file = self
            .layout
            .php_run_dir
            .join(format!("php{}-fpm.pid", version.as_str()));
        std::fs::read_to_string(file)
            .ok()
            .map(|p| p.trim().to_owned())
    }

    fn live_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for version in ["8.2", "8.4"] {
            let live = self.fpm.config().managed_root.join(version).join("live");
            collect(&live, &mut out);
        }
        out
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

/// The user a pool's worker really runs as: FPM's own status page is not reachable without a
/// web server, so ask the kernel who owns the socket's pool processes through /proc.
fn pool_process_users(pool: &str, master: &str) -> Vec<String> {
    let mut users = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc") {
        let path = entry.expect("entry").path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.starts_with(&format!("php-fpm: pool {pool}")) {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        // Only this test's master's workers: other tests may run a pool of the same name.
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:"));
        if parent.map(str::trim) != Some(master) {
            continue;
        }
        if let Some(uid) = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
        {
            users.push(uid.to_owned());
        }
    }
    users
}

fn uid_of(user: &SystemUser) -> String {
    let out = std::process::Command::new("id")
        .arg("-u")
        .arg(user.as_str())
        .output()
        .expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn pools_start_switch_versions_and_stop_on_the_real_masters() {
    let Some(node) = node("apply", None).await else {
        return;
    };
    let a82 = node.site(1, PhpVersion::V8_2);
    let b84 = node.site(2, PhpVersion::V8_4);

    let report = node
        .fpm
        .apply(&[a82.clone(), b84.clone()])
        .await
        .expect("first apply starts both masters");
    assert!(report.reloaded);
    assert_eq!(report.changed.len(), 2);
    assert!(node.socket(&a82).exists() && node.socket(&b84).exists());
    assert!(node.master_pid(PhpVersion::V8_2).is_some());
    assert!(node.master_pid(PhpVersion::V8_4).is_some());
    assert!(
        node.fpm
            .drift(&[a82.clone(), b84.clone()])
            .await
            .expect("drift")
            .is_empty()
    );

    let again = node
        .fpm
        .apply(&[a82.clone(), b84.clone()])
        .await
        .expect("same state again");
    assert!(!again.reloaded, "nothing changed, nothing reloaded");
    assert!(again.changed.is_empty());

    // Switch site 1 to 8.4 the way the node apply does: both pools, then only the new one.
    let a84 = node.site(1, PhpVersion::V8_4);
    node.fpm
        .apply(&[a82.clone(), a84.clone(), b84.clone()])
        .await
        .expect("transition: both pools of site 1");
    assert!(node.socket(&a82).exists() && node.socket(&a84).exists());
    let done = node
        .fpm
        .apply(&[a84.clone(), b84.clone()])
        .await
        .expect("final: 8.4 only");
    assert!(
        done.removed
            .iter()
            .any(|p| p.as_str() == "8.2/pool.d/site1.conf")
    );
    // The 8.2 master has no pools left and is stopped; its pid file goes with it.
    for _ in 0..200 {
        if node.master_pid(PhpVersion::V8_2).is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        node.master_pid(PhpVersion::V8_2).is_none(),
        "8.2 master stopped"
    );
    assert!(node.socket(&a84).exists() && node.socket(&b84).exists());

    node.fpm.apply(&[]).await.expect("remove everything");
}

#[tokio::test]
async fn a_rejected_config_changes_nothing_live() {
    let Some(good) = node("rejected", None).await else {
        return;
    };
    let site = good.site(7, PhpVersion::V8_2);
    good.fpm
        .apply(std::slice::from_ref(&site))
        .await
        .expect("apply");
    let before = good.live_files();
    let pid = good.master_pid(PhpVersion::V8_2).expect("running");

    // The same node, now rendering through an operator template php-fpm refuses.
    let templates = good._dir.path().join("templates");
    std::fs::create_dir_all(&templates).expect("mkdir");
    let embedded = include_str!("../templates/pool.conf.j2");
    std::fs::write(
        templates.join(POOL_TEMPLATE),
        embedded.replace("pm = {{ pm.kind }}", "pm = sometimes"),
    )
    .expect("write override");
    let mut config = good.fpm.config().clone();
    config.template_dir = Some(templates);
    let broken = PhpFpm::new(runner(), config, good.fpm.installed().to_vec()).expect("loads");
    let mut changed = site.clone();
    changed.settings.php = PhpSettings::new(
        "512M".parse().expect("size"),
        30,
        "8M".parse().expect("size"),
        "8M".parse().expect("size"),
        Default::default(),
    )
    .expect("settings");
    match broken.apply(&[changed]).await {
        Err(Error::Validation { tool, output }) => {
            assert_eq!(tool, "php-fpm8.2");
            assert!(output.contains("invalid process manager"), "{output}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(good.live_files(), before, "live tree byte-identical");
    assert_eq!(
        good.master_pid(PhpVersion::V8_2).as_deref(),
        Some(pid.as_str()),
        "the running master was not touched"
    );
    assert!(good.socket(&site).exists(), "the site's pool still listens");

    // A version that is not installed is refused before anything is written.
    let mut v83 = site.clone();
    v83.php_version = Some(PhpVersion::V8_3);
    match good.fpm.apply(&[v83]).await {
        Err(Error::Invalid { field, reason }) => {
            assert_eq!(field, "php_version");
            assert!(reason.contains("8.3"), "{reason}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(good.live_files(), before);
    good.fpm.apply(&[]).await.expect("stop");
}

#[tokio::test]
async fn drift_names_hand_edits_and_strays_and_apply_repairs_them() {
    let Some(node) = node("drift", None).await else {
        return;
    };
    let site = node.site(3, PhpVersion::V8_2);
    node.fpm
        .apply(std::slice::from_ref(&site))
        .await
        .expect("apply");
    let live = node.fpm.config().managed_root.join("8.2/live/pool.d");
    std::fs::write(live.join("site3.conf"), "; hand edit\n").expect("edit");
    std::fs::write(live.join("site99.conf"), "; stray\n").expect("stray");
    let drift = node
        .fpm
        .drift(std::slice::from_ref(&site))
        .await
        .expect("drift");
    assert!(drift.contains(&Drift::Modified(
        "8.2/pool.d/site3.conf".parse().expect("path")
    )));
    assert!(drift.contains(&Drift::Unexpected(
        "8.2/pool.d/site99.conf".parse().expect("path")
    )));
    node.fpm
        .apply(std::slice::from_ref(&site))
        .await
        .expect("repair");
    let main = node.fpm.config().managed_root.join("8.2/live/php-fpm.conf");
    let pristine = std::fs::read_to_string(&main).expect("main");
    std::fs::write(&main, format!("{pristine}; hand edit\n")).expect("edit main");
    let drift = node
        .fpm
        .drift(std::slice::from_ref(&site))
        .await
        .expect("drift");
    assert!(drift.contains(&Drift::Modified("8.2/php-fpm.conf".parse().expect("path"))));
    node.fpm
        .apply(std::slice::from_ref(&site))
        .await
        .expect("repair the master config");
    assert!(node.fpm.drift(&[site]).await.expect("drift").is_empty());
    node.fpm.apply(&[]).await.expect("stop");
}

#[tokio::test]
async fn pool_workers_run_as_the_sites_user() {
    let Some(node) = node("users", None).await else {
        return;
    };
    let mut site = node.site(4, PhpVersion::V8_2);
    site.settings.php = PhpSettings::default();
    let pm_static = {
        let mut config = node.fpm.config().clone();
        config.process_manager = hosting_php::ProcessManager::fixed(1).expect("static");
        PhpFpm::new(runner(), config, node.fpm.installed().to_vec()).expect("runtime")
    };
    pm_static
        .apply(std::slice::from_ref(&site))
        .await
        .expect("apply");
    let mut uids = Vec::new();
    for _ in 0..200 {
        let master = node.master_pid(PhpVersion::V8_2).expect("master running");
        uids = pool_process_users("site4", &master);
        if !uids.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        uids,
        vec![uid_of(&site.system_user)],
        "a static pool's worker"
    );
    pm_static.apply(&[]).await.expect("stop");
}

/// Whether a pool socket is listening (from the kernel's table, without connecting).
fn listening(socket: &Path) -> bool {
    std::fs::read_to_string("/proc/net/unix").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields
                .get(3)
                .and_then(|f| u32::from_str_radix(f, 16).ok())
                .is_some_and(|f| f & 0x0001_0000 != 0)
                && fields.get(7).is_some_and(|p| Path::new(p) == socket)
        })
    })
}

/// The master of `pid` and its workers.
fn with_workers(pid: u32) -> Vec<u32> {
    let mut pids = hosting_core::process::children_of(pid);
    pids.push(pid);
    pids
}

#[tokio::test]
async fn masters_killed_with_their_machine_are_started_again_and_a_reused_pid_left_alone() {
    let Some(node) = node("killed", None).await else {
        return;
    };
    let sites = [
        node.site(1, PhpVersion::V8_2),
        node.site(2, PhpVersion::V8_4),
    ];
    node.fpm.apply(&sites).await.expect("first apply");
    // A power loss: masters and workers SIGKILLed, pid and socket files left behind.
    let mut killed = Vec::new();
    for version in [PhpVersion::V8_2, PhpVersion::V8_4] {
        let pid = node.fpm.running_master(version).expect("running");
        killed.extend(with_workers(pid));
    }
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .args(killed.iter().map(u32::to_string))
        .status();
    for _ in 0..400 {
        if !killed.iter().any(|p| hosting_core::process::alive(*p)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        sites.iter().all(|s| node.socket(s).exists()),
        "sockets stay"
    );
    assert!(sites.iter().all(|s| !listening(&node.socket(s))));
    // After the reboot 8.2's pid is this test process's, which a reload (USR2) would kill.
    let pid_file = node.layout.php_run_dir.join("php8.2-fpm.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).expect("pid file");
    assert_eq!(node.fpm.running_master(PhpVersion::V8_2), None);

    // Nothing changed in the files, yet the apply starts both masters again.
    let report = node.fpm.apply_versions(&sites).await.expect("apply");
    assert!(report.failed.is_empty(), "{report:?}");
    for site in &sites {
        assert!(
            listening(&node.socket(site)),
            "site {} listens again",
            site.id
        );
    }
    let pid = node.fpm.running_master(PhpVersion::V8_2).expect("8.2 runs");
    assert_ne!(pid, std::process::id());
    assert!(node.fpm.drift(&sites).await.expect("drift").is_empty());

    // PHP 8.4's master dies alone and cannot start again: 8.2 keeps serving, the apply reports
    // 8.4 with its site, and `apply` fails.
    let pid84 = node.fpm.running_master(PhpVersion::V8_4).expect("8.4 runs");
    let killed = with_workers(pid84);
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .args(killed.iter().map(u32::to_string))
        .status();
    for _ in 0..400 {
        if !killed.iter().any(|p| hosting_core::process::alive(*p)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let blocked = node.layout.php_run_dir.join("php8.4-fpm.pid");
    std::fs::remove_file(&blocked).expect("stale pid file");
    std::fs::create_dir(&blocked).expect("block it");
    let report = node.fpm.apply_versions(&sites).await.expect("apply");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].version, PhpVersion::V8_4);
    assert_eq!(report.failed[0].sites, vec![sites[1].id]);
    assert!(listening(&node.socket(&sites[0])), "8.2 still serves");
    assert_eq!(
        node.fpm.running_master(PhpVersion::V8_2),
        Some(pid),
        "not reloaded"
    );
    assert!(
        node.fpm.apply(&sites).await.is_err(),
        "apply fails while 8.4 is down"
    );
    std::fs::remove_dir(&blocked).expect("mend");
    let report = node.fpm.apply_versions(&sites).await.expect("apply");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(sites.iter().all(|s| listening(&node.socket(s))));
    node.fpm.apply(&[]).await.expect("remove everything");
}
