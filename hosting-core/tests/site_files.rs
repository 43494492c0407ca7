//! `LocalSiteFiles` with a web group on this machine: a site's home is `0750` in the web
//! server's group, so another site's account cannot enter it while the web server reads the
//! document root; an older `0711` home is corrected; nothing is created or changed through a
//! symlink. Needs root (`SKIPPED: needs root` otherwise, a failure under `CI=true`).
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![cfg(feature = "system")]
#![allow(clippy::expect_used)] // a failed expectation fails the test

mod accounts_support;

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use accounts_support::{TempDir, TestAccounts, getent, needs_root, run_as, unique_name};
use hosting_core::model::{
    NodeId, TenantId, UserId, Website, WebsiteId, WebsiteSettings, WebsiteStatus,
};
use hosting_core::site_files::{LocalSiteFiles, SiteFiles};
use hosting_core::system::SystemRunner;
use hosting_core::types::{SystemUser, WebServerKind};
use hosting_core::{Error, HostLayout, UnixAccount};

fn site(id: i64, user: &SystemUser, document_root: &str) -> Website {
    Website {
        id: WebsiteId(id),
        tenant_id: TenantId(1),
        owner_id: UserId(1),
        domain: "shop.example.com".parse().expect("domain"),
        aliases: vec![],
        node_id: NodeId(1),
        web_server: WebServerKind::Nginx,
        php_version: None,
        system_user: user.clone(),
        document_root: document_root.parse().expect("document root"),
        status: WebsiteStatus::Active,
        settings: WebsiteSettings::default(),
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// (uid, gid, mode without the file type) of `path`, not following a symlink.
fn access(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).expect("metadata");
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

fn www_data() -> (u32, u32) {
    let user = getent("passwd", "www-data").expect("www-data account");
    (user[2].parse().expect("uid"), user[3].parse().expect("gid"))
}

fn files(root: &Path) -> (HostLayout, LocalSiteFiles) {
    let layout = HostLayout::under(root);
    let files = LocalSiteFiles::new(layout.clone(), Arc::new(SystemRunner))
        .with_web_group("www-data")
        .expect("group name");
    (layout, files)
}

/// A file owned by `account`, mode 0644.
fn write_owned(path: &Path, account: &UnixAccount) {
    std::fs::write(path, "secret\n").expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid)).expect("chown");
}

#[tokio::test]
async fn another_site_cannot_enter_a_home_the_web_server_reads() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let owner = t.create(&unique_name("hcf")).await;
    let neighbour = t.create(&unique_name("hcf")).await;
    let root = TempDir::new("hosting-core-site-files");
    let (layout, files) = files(root.path());
    let (web_uid, web_gid) = www_data();
    let site = site(1, &owner.name, "public_html");
    let paths = layout.site(&site);

    files.prepare(&site).await.expect("prepare");

    assert_eq!(access(&paths.home), (owner.uid, web_gid, 0o750));
    assert_eq!(access(&paths.document_root), (owner.uid, owner.gid, 0o755));
    assert_eq!(access(&paths.tmp_dir), (owner.uid, owner.gid, 0o700));
    assert_eq!(access(&paths.session_dir), (owner.uid, owner.gid, 0o700));
    let leftovers: Vec<_> = std::fs::read_dir(&layout.sites_root)
        .expect("sites root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, vec!["site1"], "no staging directory left");

    let secret = paths.home.join("wp-config.php");
    let page = paths.document_root.join("index.html");
    write_owned(&secret, &owner);
    write_owned(&page, &owner);
    let home = paths.home.to_str().expect("utf-8");
    let secret = secret.to_str().expect("utf-8");
    let page = page.to_str().expect("utf-8");

    for (what, out) in [
        (
            "list the home",
            run_as(neighbour.uid, neighbour.gid, "ls", &[home]),
        ),
        (
            "read a file in it",
            run_as(neighbour.uid, neighbour.gid, "cat", &[secret]),
        ),
        (
            "read the document root",
            run_as(neighbour.uid, neighbour.gid, "cat", &[page]),
        ),
    ] {
        assert!(!out.status.success(), "another site's account could {what}");
    }
    let served = run_as(web_uid, web_gid, "cat", &[page]);
    assert!(
        served.status.success(),
        "the web server reads the document root: {served:?}"
    );
    assert_eq!(served.stdout, b"secret\n");
    assert!(
        run_as(owner.uid, owner.gid, "cat", &[secret])
            .status
            .success()
    );

    files.prepare(&site).await.expect("prepare again");
    assert_eq!(access(&paths.home), (owner.uid, web_gid, 0o750));
}

#[tokio::test]
async fn an_older_home_is_corrected_and_its_content_left_alone() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let owner = t.create(&unique_name("hcf")).await;
    let root = TempDir::new("hosting-core-site-files");
    let (layout, files) = files(root.path());
    let (_, web_gid) = www_data();
    let site = site(2, &owner.name, "public/web");
    let paths = layout.site(&site);

    // As an older version left it: 0711 in the account's own group, with a tmp of its own
    // and the first part of the new document root.
    std::fs::create_dir_all(&layout.sites_root).expect("sites root");
    for dir in [&paths.home, &paths.tmp_dir, &paths.home.join("public")] {
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(dir)
            .expect("mkdir");
        std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid)).expect("chown");
    }
    let kept = paths.home.join("kept.txt");
    write_owned(&kept, &owner);

    files.prepare(&site).await.expect("prepare");

    assert_eq!(access(&paths.home), (owner.uid, web_gid, 0o750));
    assert_eq!(access(&kept), (owner.uid, owner.gid, 0o644));
    assert_eq!(
        access(&paths.tmp_dir),
        (owner.uid, owner.gid, 0o711),
        "only the home is corrected"
    );
    assert_eq!(
        access(&paths.document_root),
        (owner.uid, owner.gid, 0o755),
        "made by the account itself"
    );
    assert_eq!(access(&paths.session_dir), (owner.uid, owner.gid, 0o700));
}

#[tokio::test]
async fn nothing_is_created_or_changed_through_a_symlink() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let owner = t.create(&unique_name("hcf")).await;
    let root = TempDir::new("hosting-core-site-files");
    let (layout, files) = files(root.path());
    let elsewhere = root.path().join("elsewhere");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&elsewhere)
        .expect("mkdir");
    std::fs::create_dir_all(&layout.sites_root).expect("sites root");

    // A home that is a symlink.
    let linked = site(3, &owner.name, "public_html");
    std::os::unix::fs::symlink(&elsewhere, layout.site(&linked).home).expect("symlink");
    let refused = files.prepare(&linked).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");

    // A document root whose first part the account replaced by a symlink.
    let nested = site(4, &owner.name, "current/public");
    files
        .prepare(&site(4, &owner.name, "public_html"))
        .await
        .expect("prepare");
    std::os::unix::fs::symlink(&elsewhere, layout.site(&nested).home.join("current"))
        .expect("symlink");
    let refused = files.prepare(&nested).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");

    assert_eq!(access(&elsewhere), (0, 0, 0o700), "the target is untouched");
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("read").count(),
        0,
        "nothing created in it"
    );
}

/// `tmp` swapped for a symlink to a root-owned file: root neither chowns nor chmods the file.
#[tokio::test]
async fn a_symlinked_tmp_leaves_its_target_alone() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let owner = t.create(&unique_name("hcf")).await;
    let root = TempDir::new("hosting-core-site-files");
    let (layout, files) = files(root.path());
    let canary = root.path().join("canary");
    std::fs::write(&canary, "root's").expect("write");
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let site = site(6, &owner.name, "public_html");
    files.prepare(&site).await.expect("prepare");
    let tmp = layout.site(&site).tmp_dir;
    std::fs::remove_dir(&tmp).expect("rmdir");
    std::os::unix::fs::symlink(&canary, &tmp).expect("symlink");

    let refused = files.prepare(&site).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    assert_eq!(access(&canary), (0, 0, 0o600));
    assert_eq!(std::fs::read_to_string(&canary).expect("read"), "root's");
}

#[tokio::test]
async fn without_a_web_group_homes_stay_0711_and_existing_ones_untouched() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let owner = t.create(&unique_name("hcf")).await;
    let root = TempDir::new("hosting-core-site-files");
    let layout = HostLayout::under(root.path());
    let files = LocalSiteFiles::new(layout.clone(), Arc::new(SystemRunner));
    let site = site(5, &owner.name, "public_html");
    let home = layout.site(&site).home;

    files.prepare(&site).await.expect("prepare");
    assert_eq!(access(&home), (owner.uid, owner.gid, 0o711));
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    files.prepare(&site).await.expect("prepare again");
    assert_eq!(access(&home), (owner.uid, owner.gid, 0o755));
}

#[tokio::test]
async fn a_web_group_must_be_a_group_name_on_the_node() {
    for bad in ["", "-x", "www data", "WWW", "a/b"] {
        assert!(
            LocalSiteFiles::new(HostLayout::under("/nonexistent"), Arc::new(SystemRunner))
                .with_web_group(bad)
                .is_err(),
            "{bad:?}"
        );
    }
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let owner = t.create(&unique_name("hcf")).await;
    let root = TempDir::new("hosting-core-site-files");
    let files = LocalSiteFiles::new(HostLayout::under(root.path()), Arc::new(SystemRunner))
        .with_web_group(unique_name("hcnogroup").as_str())
        .expect("group name");
    let refused = files.prepare(&site(6, &owner.name, "public_html")).await;
    assert!(
        matches!(&refused, Err(Error::Invalid { field, .. }) if field == "web_group"),
        "{refused:?}"
    );
}
