//! Discovery and validation against the real PHP-FPM binaries: Debian's php-fpm8.2 and
//! PHP 8.4 from trixie at its own prefix (both set up by scripts/lib/servers.sh).
#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hosting_core::model::PhpSettings;
use hosting_core::php::PhpInstallation;
use hosting_core::types::{PhpExtension, PhpVersion};
use hosting_core::{Error, HostLayout};
use hosting_php::{
    DiscoveryConfig, FpmConfig, MAIN_CONFIG, POOL_TEMPLATE, PhpFpm, PrefixInstall, ProcessManager,
    discover,
};

use common::{
    PHP_FPM_82, PHP_FPM_84_BIN, PHP_FPM_84_INI, PHP_FPM_84_SCAN_DIR, TempDir, env_or_skip,
    renderer, runner, site, system_users, variants,
};

/// PHP 8.2 as a plain binary (no php.ini or scan dir of its own).
fn php82() -> Option<PrefixInstall> {
    Some(PrefixInstall {
        fpm_binary: env_or_skip(PHP_FPM_82)?.into(),
        php_ini: None,
        scan_dir: None,
    })
}

/// PHP 8.4 from trixie: its binary, php.ini and scan dir.
fn php84() -> Option<PrefixInstall> {
    Some(PrefixInstall {
        fpm_binary: env_or_skip(PHP_FPM_84_BIN)?.into(),
        php_ini: Some(env_or_skip(PHP_FPM_84_INI)?.into()),
        scan_dir: Some(env_or_skip(PHP_FPM_84_SCAN_DIR)?.into()),
    })
}

fn prefixes(installs: Vec<PrefixInstall>) -> DiscoveryConfig {
    DiscoveryConfig {
        system_dir: None,
        prefix_installs: installs,
    }
}

/// What the binary itself prints on its first `-v` line, asked without the SDK.
fn banner(install: &PrefixInstall) -> String {
    let mut command = std::process::Command::new(&install.fpm_binary);
    if let Some(ini) = &install.php_ini {
        command.arg("-c").arg(ini);
    }
    if let Some(dir) = &install.scan_dir {
        command.env("PHP_INI_SCAN_DIR", dir);
    }
    let out = command.arg("-v").output().expect("run php-fpm -v");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .expect("a first line")
        .to_owned()
}

fn ext(name: &str) -> PhpExtension {
    name.parse().expect("extension")
}

fn assert_reported_as_it_says(found: &PhpInstallation, install: &PrefixInstall, minor: &str) {
    let banner = banner(install);
    assert!(
        banner.starts_with(&format!("PHP {} ", found.full_version)),
        "discovered {} but the binary says {banner:?}",
        found.full_version
    );
    assert_eq!(found.version.as_str(), minor);
    assert!(found.full_version.starts_with(&format!("{minor}.")));
    assert_eq!(found.fpm_binary, install.fpm_binary);
    assert_eq!(found.php_ini, install.php_ini);
    assert_eq!(found.scan_dir, install.scan_dir);
    // Built into every PHP 8.
    for name in ["core", "json", "pcre", "spl"] {
        assert!(
            found.extensions.contains(&ext(name)),
            "{name} missing from {:?}",
            found.extensions
        );
    }
    assert!(
        found.extensions.windows(2).all(|w| w[0] < w[1]),
        "sorted and unique"
    );
}

#[tokio::test]
async fn debian_php_82_is_found_in_the_system_directory() {
    let Some(install) = php82() else { return };
    let dir = install.fpm_binary.parent().expect("a directory").to_owned();
    assert_eq!(
        install.fpm_binary.file_name().and_then(|n| n.to_str()),
        Some("php-fpm8.2"),
        "{PHP_FPM_82} must name a Debian php-fpm8.2"
    );
    let found = discover(
        runner().as_ref(),
        &DiscoveryConfig {
            system_dir: Some(dir),
            prefix_installs: vec![],
        },
    )
    .await
    .expect("discover");
    let php82 = found
        .iter()
        .find(|i| i.version == PhpVersion::V8_2)
        .expect("8.2 found");
    assert_reported_as_it_says(php82, &install, "8.2");
    // Debian enables it in conf.d; `Zend OPcache` is reported as `opcache`.
    assert!(php82.extensions.contains(&ext("opcache")));
}

#[tokio::test]
async fn php_84_at_a_prefix_is_asked_with_its_own_ini_and_scan_dir() {
    let Some(install) = php84() else { return };
    let found = discover(runner().as_ref(), &prefixes(vec![install.clone()]))
        .await
        .expect("discover");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_reported_as_it_says(&found[0], &install, "8.4");
    // Loaded from the scan dir: without PHP_INI_SCAN_DIR these would be missing.
    for name in ["pdo_mysql", "pdo_pgsql", "mysqli", "opcache"] {
        assert!(
            found[0].extensions.contains(&ext(name)),
            "{name}: {:?}",
            found[0].extensions
        );
    }
}

#[tokio::test]
async fn both_versions_side_by_side_and_no_8_3() {
    let (Some(a), Some(b)) = (php82(), php84()) else {
        return;
    };
    let fpm = PhpFpm::discover(
        runner(),
        FpmConfig::new(HostLayout::under("/srv/hosting")),
        &prefixes(vec![b, a]),
    )
    .await
    .expect("discover");
    let versions: Vec<_> = fpm.installed().iter().map(|i| i.version).collect();
    assert_eq!(versions, [PhpVersion::V8_2, PhpVersion::V8_4], "sorted");
    let err = fpm
        .find(PhpVersion::V8_3)
        .expect_err("8.3 is not installed");
    assert!(
        matches!(&err, Error::Invalid { field, reason } if field == "php_version" && reason.contains("8.3")),
        "{err}"
    );
    assert!(err.to_string().contains("8.3"), "{err}");
}

/// A copy of a prefix install's layout, `opt/php/8.4/{sbin/php-fpm, etc/php.ini, etc/conf.d}`,
/// whose binary is really PHP 8.2.
fn mislabelled_prefix(dir: &Path, real_82: &Path) -> PrefixInstall {
    let prefix = dir.join("opt/php/8.4");
    std::fs::create_dir_all(prefix.join("sbin")).expect("mkdir sbin");
    std::fs::create_dir_all(prefix.join("etc/conf.d")).expect("mkdir conf.d");
    std::os::unix::fs::symlink(real_82, prefix.join("sbin/php-fpm")).expect("symlink");
    std::fs::write(prefix.join("etc/php.ini"), "memory_limit = 128M\n").expect("php.ini");
    PrefixInstall {
        fpm_binary: prefix.join("sbin/php-fpm"),
        php_ini: Some(prefix.join("etc/php.ini")),
        scan_dir: Some(prefix.join("etc/conf.d")),
    }
}

#[tokio::test]
async fn a_prefix_named_8_4_holding_php_8_2_is_reported_as_8_2() {
    let Some(real) = php82() else { return };
    let dir = TempDir::new("mislabelled");
    let install = mislabelled_prefix(dir.path(), &real.fpm_binary);
    assert!(
        install
            .fpm_binary
            .to_string_lossy()
            .contains("/opt/php/8.4/")
    );
    let found = discover(runner().as_ref(), &prefixes(vec![install.clone()]))
        .await
        .expect("discover");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_reported_as_it_says(&found[0], &install, "8.2");
    // Asked with its own (empty) scan dir, not Debian's conf.d: no opcache.
    assert!(!found[0].extensions.contains(&ext("opcache")));
    let fpm = PhpFpm::new(
        runner(),
        FpmConfig::new(HostLayout::under("/srv/hosting")),
        found,
    )
    .expect("runtime");
    assert!(
        fpm.find(PhpVersion::V8_4).is_err(),
        "never a fallback to the path's version"
    );
}

#[tokio::test]
async fn the_same_version_twice_keeps_the_first_found() {
    let Some(real) = php82() else { return };
    let dir = TempDir::new("twice");
    let second = mislabelled_prefix(dir.path(), &real.fpm_binary);
    let found = discover(runner().as_ref(), &prefixes(vec![real.clone(), second]))
        .await
        .expect("discover");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].fpm_binary, real.fpm_binary);
}

#[tokio::test]
async fn binaries_that_are_missing_or_not_fpm_are_skipped() {
    let Some(real) = php82() else { return };
    let dir = TempDir::new("not-fpm");
    // A real PHP binary that is not FPM: the CLI, when installed beside it.
    let cli = PathBuf::from("/usr/bin/php8.2");
    let mut installs = vec![
        PrefixInstall {
            fpm_binary: dir.path().join("missing/php-fpm"),
            php_ini: None,
            scan_dir: None,
        },
        PrefixInstall {
            php_ini: Some(dir.path().join("no-such.ini")),
            ..real.clone()
        },
    ];
    if cli.exists() {
        installs.push(PrefixInstall {
            fpm_binary: cli,
            php_ini: None,
            scan_dir: None,
        });
    }
    let found = discover(runner().as_ref(), &prefixes(installs))
        .await
        .expect("discover");
    assert!(found.is_empty(), "{found:?}");
}

/// A layout under `dir` with every directory php-fpm -t opens.
fn staged_layout(dir: &Path) -> HostLayout {
    let layout = HostLayout::under(dir.join("node"));
    for d in [&layout.sites_root, &layout.php_run_dir, &layout.log_dir] {
        std::fs::create_dir_all(d).expect("mkdir layout");
    }
    layout
}

/// Writes `files` into a fresh staged tree with `fpm`'s master config for `version`.
fn stage(fpm: &PhpFpm, version: PhpVersion, root: &Path, pools: &[hosting_core::RenderedFile]) {
    std::fs::create_dir_all(root.join(hosting_php::POOL_DIR)).expect("mkdir pool.d");
    let main = fpm.render_main_config(version, root).expect("main config");
    std::fs::write(root.join(main.path.as_str()), main.contents).expect("write main");
    for pool in pools {
        std::fs::write(root.join(pool.path.as_str()), &pool.contents).expect("write pool");
    }
}

/// The real runtimes this machine has, each with the given config.
async fn real_runtimes(config: &FpmConfig) -> Vec<PhpFpm> {
    let mut out = Vec::new();
    for install in [php82(), php84()].into_iter().flatten() {
        let fpm = PhpFpm::discover(runner(), config.clone(), &prefixes(vec![install]))
            .await
            .expect("discover");
        assert_eq!(fpm.installed().len(), 1);
        out.push(fpm);
    }
    out
}

#[tokio::test]
async fn every_snapshot_variant_passes_the_real_php_fpm_test() {
    let Some(users) = system_users() else { return };
    let dir = TempDir::new("variants");
    let layout = staged_layout(dir.path());
    let pools: Vec<_> = variants(&users)
        .into_iter()
        .map(|v| {
            renderer(layout.clone(), v.pm)
                .render_pool(&v.site)
                .expect("render")
        })
        .collect();
    // A missing binary was reported as skipped (or failed under CI) by real_runtimes.
    for fpm in &real_runtimes(&FpmConfig::new(layout.clone())).await {
        let version = fpm.installed()[0].version;
        let root = dir.path().join(format!("staged-{}", version.as_str()));
        stage(fpm, version, &root, &pools);
        fpm.validate(version, &root)
            .await
            .unwrap_or_else(|e| panic!("PHP {} rejected the variants: {e}", version.as_str()));
    }
}

#[tokio::test]
async fn hostile_but_valid_values_still_validate() {
    let Some(users) = system_users() else { return };
    let dir = TempDir::new("hostile");
    // Every character a layout path may hold, a huge site id, the largest limits.
    let layout = staged_layout(&dir.path().join("a+b@c.d-e_f"));
    let mut config = FpmConfig::new(layout);
    config.process_manager = ProcessManager::dynamic(u16::MAX, 1, 1, 1).expect("pm");
    config.disable_functions = vec![];
    config.rlimit_files = std::num::NonZeroU32::MIN;
    let size = |s: &str| s.parse().expect("size");
    let extensions: BTreeSet<PhpExtension> = ["core", "opcache"].iter().map(|e| ext(e)).collect();
    let settings =
        PhpSettings::new(size("1T"), 86_400, size("1"), size("1T"), extensions).expect("settings");
    for fpm in real_runtimes(&config).await {
        let version = fpm.installed()[0].version;
        let sites = [
            site(i64::MAX, Some(version), &users[0], settings.clone()),
            site(
                0,
                Some(version),
                users.last().expect("a user"),
                PhpSettings::default(),
            ),
        ];
        let pools: Vec<_> = sites
            .iter()
            .map(|s| fpm.render_pool(s).expect("render"))
            .collect();
        assert!(pools[0].contents.contains(&format!("[site{}]", i64::MAX)));
        let root = dir.path().join(format!("staged-{}", version.as_str()));
        stage(&fpm, version, &root, &pools);
        fpm.validate(version, &root)
            .await
            .unwrap_or_else(|e| panic!("PHP {} rejected: {e}", version.as_str()));
    }
}

#[tokio::test]
async fn an_invalid_pm_from_an_override_template_fails_with_php_fpms_own_words() {
    let Some(users) = system_users() else { return };
    let dir = TempDir::new("bad-pm");
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).expect("mkdir templates");
    let embedded = include_str!("../templates/pool.conf.j2");
    assert!(embedded.contains("pm = {{ pm.kind }}"));
    std::fs::write(
        templates.join(POOL_TEMPLATE),
        embedded.replace("pm = {{ pm.kind }}", "pm = sometimes"),
    )
    .expect("write override");
    let mut config = FpmConfig::new(staged_layout(dir.path()));
    config.template_dir = Some(templates);
    for fpm in real_runtimes(&config).await {
        let install = &fpm.installed()[0];
        let version = install.version;
        let pool = fpm
            .render_pool(&site(5, Some(version), &users[0], PhpSettings::default()))
            .expect("render");
        assert!(pool.contents.contains("\npm = sometimes\n"));
        let root = dir.path().join(format!("staged-{}", version.as_str()));
        stage(&fpm, version, &root, &[pool]);
        let err = fpm
            .validate(version, &root)
            .await
            .expect_err("php-fpm refuses pm = sometimes");
        let expected_tool = install
            .fpm_binary
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        match err {
            Error::Validation { tool, output } => {
                assert_eq!(tool, expected_tool);
                assert_eq!(tool, format!("php-fpm{}", version.as_str()));
                assert!(output.contains("invalid process manager"), "{output}");
                assert!(output.contains("site5.conf"), "{output}");
            }
            other => panic!("expected a validation error, got {other}"),
        }
    }
}

#[tokio::test]
async fn validating_a_version_that_is_not_installed_is_refused() {
    let Some(install) = php82() else { return };
    let fpm = PhpFpm::discover(
        runner(),
        FpmConfig::new(HostLayout::under("/srv/hosting")),
        &prefixes(vec![install]),
    )
    .await
    .expect("discover");
    let dir = TempDir::new("absent");
    let err = fpm
        .validate(PhpVersion::V8_0, dir.path())
        .await
        .expect_err("8.0 is not installed");
    assert!(
        matches!(&err, Error::Invalid { reason, .. } if reason.contains("8.0")),
        "{err}"
    );
    assert!(!dir.path().join(MAIN_CONFIG).exists());
}
