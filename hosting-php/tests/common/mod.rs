//! Shared test support: real binaries from the environment, sites and pool variants.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hosting_core::HostLayout;
use hosting_core::model::{
    NodeId, PhpSettings, TenantId, UserId, Website, WebsiteId, WebsiteSettings, WebsiteStatus,
};
use hosting_core::php::PhpInstallation;
use hosting_core::system::SystemRunner;
use hosting_core::types::{PhpVersion, SystemUser, WebServerKind};
use hosting_php::{FpmConfig, PhpFpm, ProcessManager};

/// The binary of PHP-FPM 8.2 (a Debian system install).
pub const PHP_FPM_82: &str = "HOSTING_TEST_PHP_FPM_82";
/// The PHP 8.4 binary from trixie, run from the host.
pub const PHP_FPM_84_BIN: &str = "HOSTING_TEST_PHP_FPM_84_BIN";
/// Its php.ini.
pub const PHP_FPM_84_INI: &str = "HOSTING_TEST_PHP_FPM_84_INI";
/// Its ini scan directory.
pub const PHP_FPM_84_SCAN_DIR: &str = "HOSTING_TEST_PHP_FPM_84_SCAN_DIR";
/// Comma-separated Unix users that exist on this machine, for pools to run as.
pub const SYSTEM_USERS: &str = "HOSTING_TEST_SYSTEM_USERS";

/// Whether this run is CI, where a missing variable is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The value of `var`, or `None` after printing `SKIPPED: VAR is not set`.
///
/// # Panics
/// Under `CI=true` when the variable is missing: CI must run every real-binary test.
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if in_ci() => panic!(
            "{var} is not set and CI=true: real PHP-FPM tests must run in CI (scripts/test.sh sets it)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: {var} is not set; run ./scripts/with-servers.sh cargo test -p hosting-php"
            );
            None
        }
    }
}

/// The runner every test uses: real processes.
pub fn runner() -> Arc<SystemRunner> {
    Arc::new(SystemRunner)
}

/// The test users from [`SYSTEM_USERS`].
pub fn system_users() -> Option<Vec<SystemUser>> {
    let raw = env_or_skip(SYSTEM_USERS)?;
    let users: Vec<SystemUser> = raw
        .split(',')
        .map(|u| {
            u.trim()
                .parse()
                .expect("HOSTING_TEST_SYSTEM_USERS holds valid user names")
        })
        .collect();
    assert!(!users.is_empty(), "{SYSTEM_USERS} is empty");
    Some(users)
}

/// A website with PHP `php`, running as `user`.
pub fn site(id: i64, php: Option<PhpVersion>, user: &SystemUser, settings: PhpSettings) -> Website {
    Website {
        id: WebsiteId(id),
        tenant_id: TenantId(1),
        owner_id: UserId(1),
        domain: "shop.example.com".parse().expect("domain"),
        aliases: vec![],
        node_id: NodeId(1),
        web_server: WebServerKind::Nginx,
        php_version: php,
        system_user: user.clone(),
        document_root: "public_html".parse().expect("document root"),
        status: WebsiteStatus::Active,
        settings: WebsiteSettings {
            php: settings,
            ..WebsiteSettings::default()
        },
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// The process managers every pool variant is rendered with.
pub fn process_managers() -> Vec<(&'static str, ProcessManager)> {
    vec![
        ("ondemand", ProcessManager::default()),
        (
            "dynamic",
            ProcessManager::dynamic(20, 4, 2, 6).expect("valid dynamic pm"),
        ),
        ("static", ProcessManager::fixed(8).expect("valid static pm")),
    ]
}

/// The per-site PHP settings every pool variant is rendered with.
pub fn settings_variants() -> Vec<(&'static str, PhpSettings)> {
    let size = |s: &str| s.parse().expect("size");
    let extensions: BTreeSet<_> = ["opcache", "pdo_mysql", "json"]
        .iter()
        .map(|e| e.parse().expect("extension"))
        .collect();
    vec![
        ("defaults", PhpSettings::default()),
        (
            "extensions",
            PhpSettings::new(size("128M"), 30, size("8M"), size("16M"), extensions)
                .expect("valid settings"),
        ),
        (
            "large-limits",
            PhpSettings::new(size("1T"), 86_400, size("2G"), size("1T"), BTreeSet::new())
                .expect("valid settings"),
        ),
    ]
}

/// One pool to render: its label, process manager and site.
pub struct Variant {
    /// `ondemand-8.2-defaults` and so on.
    pub label: String,
    /// The runtime-level process manager.
    pub pm: ProcessManager,
    /// The site, with a unique id.
    pub site: Website,
}

/// Every process manager × PHP 8.0-8.4 × settings variant, with unique site ids and the
/// sites spread over `users`.
pub fn variants(users: &[SystemUser]) -> Vec<Variant> {
    let mut out = Vec::new();
    for (pm_label, pm) in process_managers() {
        for version in PhpVersion::ALL {
            for (settings_label, settings) in settings_variants() {
                let id = 100 + out.len() as i64;
                let user = &users[out.len() % users.len()];
                out.push(Variant {
                    label: format!("{pm_label}-{}-{settings_label}", version.as_str()),
                    pm,
                    site: site(id, Some(version), user, settings),
                });
            }
        }
    }
    out
}

/// An installation of every supported version, loading what the variants need: the data a
/// node would report, so pools of versions this machine lacks can be rendered (not run).
pub fn every_version() -> Vec<PhpInstallation> {
    PhpVersion::ALL
        .iter()
        .map(|&version| PhpInstallation {
            version,
            full_version: format!("{}.0", version.as_str()),
            fpm_binary: PathBuf::from(format!("/usr/sbin/php-fpm{}", version.as_str())),
            php_ini: None,
            scan_dir: None,
            extensions: ["core", "json", "opcache", "pdo", "pdo_mysql"]
                .iter()
                .map(|e| e.parse().expect("extension"))
                .collect(),
        })
        .collect()
}

/// A renderer for every version (see [`every_version`]) with `pm` and `layout`.
pub fn renderer(layout: HostLayout, pm: ProcessManager) -> PhpFpm {
    let mut config = FpmConfig::new(layout);
    config.process_manager = pm;
    PhpFpm::new(runner(), config, every_version()).expect("renderer")
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty, world-traversable directory (pool users must reach the site dirs).
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "hosting-php-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
