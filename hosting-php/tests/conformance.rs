//! The PHP runtime conformance suite (`hosting_core::conformance::php`) against real PHP-FPM 8.2
//! (Debian) and 8.4 (trixie, run from the host), both supervised by the SDK under a temporary
//! prefix; and its render part against a renderer that believes 8.2 and 8.4 are installed,
//! which needs no binary.
//!
//! Run with `./scripts/with-servers.sh cargo test -p hosting-php --test conformance`; without the
//! `HOSTING_TEST_*` variables the live test prints `SKIPPED: VAR is not set` (and fails under
//! `CI=true`).
#![allow(clippy::expect_used)] // tests: a failed expectation is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    PHP_FPM_82, PHP_FPM_84_BIN, PHP_FPM_84_INI, PHP_FPM_84_SCAN_DIR, TempDir, env_or_skip,
    every_version, runner, system_users,
};
use hosting_core::HostLayout;
use hosting_core::conformance::{php, web};
use hosting_core::model::Website;
use hosting_core::types::{PhpVersion, SystemUser, WebServerKind};
use hosting_php::{DiscoveryConfig, FpmConfig, FpmService, PhpFpm, PrefixInstall};

const VERSIONS: [PhpVersion; 2] = [PhpVersion::V8_2, PhpVersion::V8_4];

/// Stops every master started under the prefix (SIGQUIT, FPM's graceful stop) and waits until
/// it is gone, even when the suite failed half-way.
struct Masters(PathBuf);

impl Drop for Masters {
    fn drop(&mut self) {
        for version in VERSIONS {
            let pid_file = self.0.join(format!("php{}-fpm.pid", version.as_str()));
            let Ok(pid) = std::fs::read_to_string(&pid_file) else {
                continue;
            };
            let pid = pid.trim().to_owned();
            let _ = std::process::Command::new("kill")
                .arg("-QUIT")
                .arg(&pid)
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            // An exited daemon may linger as a zombie until init reaps it: that counts as gone.
            while Instant::now() < deadline
                && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        != Some("Z")
                })
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Every file of both versions' live trees, with its bytes.
fn snapshot(managed_root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read live file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    for version in VERSIONS {
        walk(&managed_root.join(version.as_str()).join("live"), &mut out);
    }
    out
}

/// A hand edit of a site's live pool: a comment appended.
fn tamper(managed_root: &Path, site: &Website, file: &hosting_core::RenderedFile) {
    let version = site.php_version.expect("a PHP site");
    let path = file
        .path
        .under(&managed_root.join(version.as_str()).join("live"));
    let mut text = std::fs::read_to_string(&path).expect("read the live pool");
    text.push_str("\n; edited by hand\n");
    std::fs::write(&path, text).expect("edit the live pool");
}

/// A PHP 8.2 site whose system user does not exist: it renders, and `php-fpm -t` (as root)
/// refuses its pool.
fn rejected_site() -> Website {
    let user: SystemUser = "hosting-nosuchuser".parse().expect("valid user name");
    let exists = std::process::Command::new("id")
        .arg("-u")
        .arg(user.as_str())
        .output()
        .expect("run id")
        .status
        .success();
    assert!(!exists, "user {user} must not exist for this test");
    web::sample_site(
        250,
        "rejected-php.suite.example.com",
        WebServerKind::Nginx,
        Some(PhpVersion::V8_2),
        &user,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_meets_the_php_runtime_contract() {
    let Some(users) = system_users() else {
        return;
    };
    let (Some(php82), Some(php84), Some(ini84), Some(scan84)) = (
        env_or_skip(PHP_FPM_82),
        env_or_skip(PHP_FPM_84_BIN),
        env_or_skip(PHP_FPM_84_INI),
        env_or_skip(PHP_FPM_84_SCAN_DIR),
    ) else {
        return;
    };
    let dir = TempDir::new("conformance");
    let layout = HostLayout::under(dir.path().join("node"));
    for d in [&layout.sites_root, &layout.php_run_dir, &layout.log_dir] {
        std::fs::create_dir_all(d).expect("mkdir layout");
    }
    let _masters = Masters(layout.php_run_dir.clone());
    let managed_root = dir.path().join("php");
    let mut config = FpmConfig::new(layout.clone());
    config.managed_root = managed_root.clone();
    config.service = FpmService::Supervised;
    let fpm = PhpFpm::discover(
        runner(),
        config,
        &DiscoveryConfig {
            system_dir: None,
            prefix_installs: vec![
                PrefixInstall {
                    fpm_binary: php82.into(),
                    php_ini: None,
                    scan_dir: None,
                },
                PrefixInstall {
                    fpm_binary: php84.into(),
                    php_ini: Some(ini84.into()),
                    scan_dir: Some(scan84.into()),
                },
            ],
        },
    )
    .await
    .expect("discover PHP");
    assert_eq!(fpm.installed().len(), 2, "PHP 8.2 and 8.4 are both here");

    let sites = php::sample_sites(&VERSIONS, &users);
    php::run_all(
        &fpm,
        &layout,
        &sites,
        &rejected_site(),
        &|| snapshot(&managed_root),
        &|site, file| tamper(&managed_root, site, file),
    )
    .await;

    // PHP 8.4's master cannot start: a directory stands where it writes its pid (its test
    // passes). run_all leaves nothing live.
    let blocked = layout.php_run_dir.join("php8.4-fpm.pid");
    let _ = std::fs::remove_file(&blocked);
    std::fs::create_dir(&blocked).expect("block the pid file");
    php::a_failed_version_spares_the_others(&fpm, &sites, PhpVersion::V8_4, || {
        std::fs::remove_dir(&blocked).expect("mend");
    })
    .await;
}

/// Rendering needs no binary: a runtime told that 8.2 and 8.4 are installed must render exactly
/// those and refuse 8.0, 8.1 and 8.3.
#[tokio::test]
async fn php_fpm_meets_the_render_contract() {
    let layout = HostLayout::under("/srv/hosting");
    let installs = every_version()
        .into_iter()
        .filter(|i| VERSIONS.contains(&i.version))
        .collect();
    let fpm = PhpFpm::new(runner(), FpmConfig::new(layout.clone()), installs).expect("runtime");
    let users: Vec<SystemUser> = ["phpowner-a", "phpowner-b"]
        .iter()
        .map(|u| u.parse().expect("valid user name"))
        .collect();
    php::render_contract(&fpm, &layout, &php::sample_sites(&VERSIONS, &users)).await;
}
