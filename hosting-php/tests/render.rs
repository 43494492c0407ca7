//! Pure rendering: snapshots of every pool variant and the master config, and the errors a
//! renderer must give instead of a wrong file.
#![allow(clippy::expect_used)]

mod common;

use std::path::Path;

use hosting_core::types::{PhpVersion, SystemUser};
use hosting_core::{Error, HostLayout, model::PhpSettings};
use hosting_php::{FpmConfig, MAIN_TEMPLATE, POOL_TEMPLATE, PhpFpm, ProcessManager};

use common::{TempDir, every_version, renderer, runner, site, variants};

fn snapshot_users() -> Vec<SystemUser> {
    ["hostingt1", "hostingt2"]
        .iter()
        .map(|u| u.parse().expect("user"))
        .collect()
}

fn layout() -> HostLayout {
    HostLayout::under("/srv/hosting")
}

#[test]
fn every_pool_variant_matches_its_snapshot() {
    let variants = variants(&snapshot_users());
    assert_eq!(variants.len(), 3 * 5 * 3);
    for v in variants {
        let file = renderer(layout(), v.pm)
            .render_pool(&v.site)
            .expect("render");
        assert_eq!(file.path.as_str(), format!("pool.d/site{}.conf", v.site.id));
        insta::assert_snapshot!(format!("pool-{}", v.label), file.contents);
    }
}

#[test]
fn the_master_config_matches_its_snapshot() {
    let fpm = renderer(layout(), ProcessManager::default());
    for version in PhpVersion::ALL {
        let root = format!("/etc/hosting/php/{}", version.as_str());
        let file = fpm
            .render_main_config(version, Path::new(&root))
            .expect("render");
        assert_eq!(file.path.as_str(), "php-fpm.conf");
        insta::assert_snapshot!(format!("main-{}", version.as_str()), file.contents);
    }
}

#[test]
fn rendering_is_deterministic_and_confined_to_the_site() {
    let users = snapshot_users();
    let fpm = renderer(layout(), ProcessManager::default());
    let s = site(
        42,
        Some(PhpVersion::V8_3),
        &users[0],
        PhpSettings::default(),
    );
    let first = fpm.render_pool(&s).expect("render");
    assert_eq!(fpm.render_pool(&s).expect("render again"), first);
    let text = &first.contents;
    assert!(text.contains("\n[site42]\n"), "{text}");
    assert!(text.contains("listen = /srv/hosting/run/php8.3-site42.sock\n"));
    assert!(text.contains(
        "php_admin_value[open_basedir] = /srv/hosting/sites/site42:/srv/hosting/sites/site42/tmp\n"
    ));
    assert!(!text.contains("shop.example.com"), "no domain in a pool");
    let other = site(
        43,
        Some(PhpVersion::V8_3),
        &users[1],
        PhpSettings::default(),
    );
    let other = fpm.render_pool(&other).expect("render");
    assert!(!other.contents.contains("site42"), "{}", other.contents);
}

#[test]
fn a_static_site_has_no_pool() {
    let fpm = renderer(layout(), ProcessManager::default());
    let s = site(7, None, &snapshot_users()[0], PhpSettings::default());
    let err = fpm.render_pool(&s).expect_err("no PHP, no pool");
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "php_version"),
        "{err}"
    );
}

#[test]
fn a_version_that_is_not_installed_is_refused_not_replaced() {
    let only_82: Vec<_> = every_version()
        .into_iter()
        .filter(|i| i.version == PhpVersion::V8_2)
        .collect();
    let fpm = PhpFpm::new(runner(), FpmConfig::new(layout()), only_82).expect("renderer");
    let s = site(
        8,
        Some(PhpVersion::V8_3),
        &snapshot_users()[0],
        PhpSettings::default(),
    );
    for err in [
        fpm.render_pool(&s).expect_err("8.3 is not installed"),
        fpm.find(PhpVersion::V8_3)
            .expect_err("8.3 is not installed"),
        fpm.render_main_config(PhpVersion::V8_3, Path::new("/etc/x"))
            .expect_err("8.3 is not installed"),
    ] {
        assert!(
            matches!(&err, Error::Invalid { field, reason } if field == "php_version" && reason.contains("8.3")),
            "{err}"
        );
    }
}

#[test]
fn an_extension_the_version_lacks_is_named() {
    let needs: std::collections::BTreeSet<_> = ["pdo_mysql", "imagick"]
        .iter()
        .map(|e| e.parse().expect("extension"))
        .collect();
    let size = |s: &str| s.parse().expect("size");
    let settings =
        PhpSettings::new(size("64M"), 30, size("2M"), size("8M"), needs).expect("settings");
    let s = site(9, Some(PhpVersion::V8_4), &snapshot_users()[0], settings);
    let err = renderer(layout(), ProcessManager::default())
        .render_pool(&s)
        .expect_err("imagick is not loaded");
    assert!(
        matches!(&err, Error::Invalid { field, reason } if field == "extensions" && reason.contains("imagick") && !reason.contains("pdo_mysql")),
        "{err}"
    );
}

#[test]
fn layout_paths_that_would_break_the_ini_syntax_are_refused() {
    let fpm = renderer(
        HostLayout::under("/srv/my hosting"),
        ProcessManager::default(),
    );
    let s = site(
        10,
        Some(PhpVersion::V8_2),
        &snapshot_users()[0],
        PhpSettings::default(),
    );
    let err = fpm.render_pool(&s).expect_err("a space in a path");
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "sites_root"),
        "{err}"
    );
}

#[test]
fn operator_templates_replace_the_embedded_ones() {
    let dir = TempDir::new("override");
    std::fs::write(
        dir.path().join(POOL_TEMPLATE),
        "[{{ name }}]\nuser = {{ user }}\nlisten = {{ listen }}\npm = {{ pm.kind }}\n",
    )
    .expect("write override");
    let mut config = FpmConfig::new(layout());
    config.template_dir = Some(dir.path().to_owned());
    let fpm = PhpFpm::new(runner(), config, every_version()).expect("renderer");
    let s = site(
        11,
        Some(PhpVersion::V8_1),
        &snapshot_users()[0],
        PhpSettings::default(),
    );
    assert_eq!(
        fpm.render_pool(&s).expect("render").contents,
        "[site11]\nuser = hostingt1\nlisten = /srv/hosting/run/php8.1-site11.sock\npm = ondemand\n"
    );
    // The master template was not overridden: the embedded one is used.
    let main = fpm
        .render_main_config(PhpVersion::V8_1, Path::new("/etc/x"))
        .expect("render");
    assert!(main.contents.contains("[global]"));
}

#[test]
fn a_broken_operator_template_is_named_when_loaded_or_rendered() {
    let dir = TempDir::new("broken");
    let path = dir.path().join(MAIN_TEMPLATE);
    std::fs::write(&path, "[global]\n{% if %}\n").expect("write override");
    let mut config = FpmConfig::new(layout());
    config.template_dir = Some(dir.path().to_owned());
    let err = PhpFpm::new(runner(), config.clone(), every_version()).expect_err("syntax error");
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field.contains(&*path.to_string_lossy())),
        "{err}"
    );

    // Parses, but uses a variable the context does not have: refused at render time.
    std::fs::write(&path, "[global]\npid = {{ no_such_value }}\n").expect("write override");
    let fpm = PhpFpm::new(runner(), config, every_version()).expect("parses");
    let err = fpm
        .render_main_config(PhpVersion::V8_2, Path::new("/etc/x"))
        .expect_err("undefined variable");
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field.contains(&*path.to_string_lossy())),
        "{err}"
    );
}

#[test]
fn pool_fields_of_another_process_manager_are_not_silently_empty() {
    let dir = TempDir::new("pm-fields");
    std::fs::write(
        dir.path().join(POOL_TEMPLATE),
        "[{{ name }}]\npm.start_servers = {{ pm.start_servers }}\n",
    )
    .expect("write override");
    let mut config = FpmConfig::new(layout());
    config.template_dir = Some(dir.path().to_owned());
    let fpm = PhpFpm::new(runner(), config, every_version()).expect("renderer");
    let s = site(
        12,
        Some(PhpVersion::V8_2),
        &snapshot_users()[0],
        PhpSettings::default(),
    );
    let err = fpm
        .render_pool(&s)
        .expect_err("ondemand has no start_servers");
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[test]
fn the_same_version_twice_is_refused() {
    let mut twice = every_version();
    twice.push(twice[2].clone());
    let err = PhpFpm::new(runner(), FpmConfig::new(layout()), twice).expect_err("duplicate");
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "installations"),
        "{err}"
    );
}

#[test]
fn a_misspelt_override_is_refused_not_ignored() {
    let dir = TempDir::new("misspelt");
    let path = dir.path().join("pools.conf.j2");
    std::fs::write(&path, "[{{ name }}]\n").expect("write override");
    std::fs::write(dir.path().join("README"), "not a template\n").expect("write readme");
    let mut config = FpmConfig::new(layout());
    config.template_dir = Some(dir.path().to_owned());
    let err = PhpFpm::new(runner(), config, every_version()).expect_err("unknown template");
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field.contains(&*path.to_string_lossy())),
        "{err}"
    );
}

#[test]
fn a_template_can_only_write_checked_words() {
    let dir = TempDir::new("unchecked");
    let mut config = FpmConfig::new(layout());
    config.template_dir = Some(dir.path().to_owned());
    let s = site(
        13,
        Some(PhpVersion::V8_2),
        &snapshot_users()[0],
        PhpSettings::default(),
    );
    // A map, and a string holding a space, are refused wherever a template puts them.
    for body in ["pm = {{ pm }}\n", "x = {{ name ~ ' ' ~ name }}\n"] {
        std::fs::write(dir.path().join(POOL_TEMPLATE), body).expect("write override");
        let fpm = PhpFpm::new(runner(), config.clone(), every_version()).expect("parses");
        let err = fpm.render_pool(&s).expect_err(body);
        assert!(matches!(err, Error::Invalid { .. }), "{body}: {err}");
    }
}
