//! `LocalAccounts` and `SharedAccount` on this machine with the real shadow tools: accounts
//! are created locked, without a shell or home, in the node's uid range; removing one kills
//! what runs as it and deletes what it left in shared temporary directories. Needs root
//! (`SKIPPED: needs root` otherwise, a failure under `CI=true`).
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![cfg(feature = "system")]
#![allow(clippy::expect_used)] // a failed expectation fails the test

mod accounts_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accounts_support::{TempDir, TestAccounts, getent, needs_root, run, unique_name};
use async_trait::async_trait;
use hosting_core::accounts::{LocalAccounts, SharedAccount};
use hosting_core::system::SystemRunner;
use hosting_core::{
    Command, CommandOutput, CommandRunner, Error, Isolation, NodeAccounts, Result, UnixAccount,
};

#[tokio::test]
async fn created_accounts_are_locked_without_shell_or_home_and_in_the_range() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let name = unique_name("hca");
    let account = t.create(&name).await;

    assert!(t.range.contains(account.uid), "uid {}", account.uid);
    assert!(t.range.contains(account.gid), "gid {}", account.gid);
    let passwd = getent("passwd", name.as_str()).expect("in passwd");
    assert_eq!(passwd[2], account.uid.to_string());
    assert_eq!(passwd[3], account.gid.to_string());
    assert_eq!(passwd[5], "/nonexistent");
    assert_eq!(passwd[6], "/usr/sbin/nologin");
    assert!(!std::path::Path::new("/nonexistent").exists());
    let shadow = getent("shadow", name.as_str()).expect("in shadow");
    assert!(
        shadow[1] == "!" || shadow[1] == "*",
        "no password, locked: {:?}",
        shadow[1]
    );
    let subordinate = |file| std::fs::read_to_string(file).unwrap_or_default();
    for file in ["/etc/subuid", "/etc/subgid"] {
        assert!(
            !subordinate(file)
                .lines()
                .any(|l| l.starts_with(&format!("{name}:"))),
            "no subordinate ids in {file}"
        );
    }
    let groups = run("id", &["-G", name.as_str()]);
    assert_eq!(
        String::from_utf8_lossy(&groups.stdout).trim(),
        account.gid.to_string(),
        "no supplementary group"
    );
    assert_eq!(t.accounts.isolation(), Isolation::Accounts);
    assert_eq!(t.accounts.uid_range(), t.range);
    assert_eq!(
        t.accounts.find(&name).await.expect("find"),
        Some(account.clone())
    );
    assert_eq!(
        t.accounts.find(&unique_name("hcnone")).await.expect("find"),
        None
    );

    let again = t.accounts.create(&name).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(
        t.accounts.find(&name).await.expect("find"),
        Some(account),
        "unchanged"
    );
}

#[tokio::test]
async fn a_taken_group_name_is_already_exists_and_creates_nothing() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let name = unique_name("hcg");
    t.remember(&name);
    assert!(run("groupadd", &[name.as_str()]).status.success());
    let created = t.accounts.create(&name).await;
    assert!(
        matches!(created, Err(Error::AlreadyExists { .. })),
        "{created:?}"
    );
    assert_eq!(getent("passwd", name.as_str()), None);
}

#[tokio::test]
async fn remove_kills_processes_cleans_shared_temp_and_deletes_the_account() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let name = unique_name("hcr");
    let account = t.create(&name).await;
    let shared = TempDir::new("hosting-core-shared-tmp");
    let missing = shared.path().join("not-here");
    let accounts = t
        .accounts
        .clone()
        .with_shared_temp_dirs([shared.path().to_path_buf(), missing]);

    // What the account leaves in a shared directory, and what someone else keeps there.
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    let own_file = shared.path().join("upload.tmp");
    let own_dir = shared.path().join("cache");
    let others = shared.path().join("someone-else");
    std::fs::write(&own_file, "x").expect("write");
    std::fs::create_dir(&own_dir).expect("mkdir");
    std::fs::write(own_dir.join("entry"), "x").expect("write");
    std::fs::write(&others, "x").expect("write");
    for path in [&own_file, &own_dir, &own_dir.join("entry")] {
        std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid)).expect("chown");
    }

    let mut child = std::process::Command::new("setpriv")
        .arg(format!("--reuid={}", account.uid))
        .arg(format!("--regid={}", account.gid))
        .args(["--clear-groups", "sleep", "300"])
        .spawn()
        .expect("spawn");
    let uid = account.uid.to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !run("pgrep", &["-U", &uid]).status.success() {
        assert!(Instant::now() < deadline, "the process never ran as {uid}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reaped as soon as it dies, so no zombie of the uid lingers.
    let waiter = std::thread::spawn(move || child.wait().expect("wait"));

    accounts.remove(&account).await.expect("remove");

    let status = waiter.join().expect("waiter");
    assert_eq!(status.signal(), Some(9), "killed: {status:?}");
    assert!(!run("pgrep", &["-U", &uid]).status.success());
    assert!(!own_file.exists() && !own_dir.exists());
    assert!(others.exists(), "another account's file stays");
    assert_eq!(getent("passwd", name.as_str()), None);
    assert_eq!(getent("group", name.as_str()), None);

    accounts
        .remove(&account)
        .await
        .expect("an account already gone is not an error");
}

#[tokio::test]
async fn remove_refuses_an_account_outside_the_range_or_renumbered() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let name = unique_name("hco");
    let account = t.create(&name).await;

    for uid in [0, t.range.first() - 1, t.range.last() + 1] {
        let outside = UnixAccount {
            uid,
            ..account.clone()
        };
        let refused = t.accounts.remove(&outside).await;
        assert!(
            matches!(&refused, Err(Error::Invalid { field, .. }) if field == "system_user"),
            "uid {uid}: {refused:?}"
        );
    }
    let other_uid = if account.uid == t.range.last() {
        account.uid - 1
    } else {
        account.uid + 1
    };
    let renumbered = UnixAccount {
        uid: other_uid,
        ..account.clone()
    };
    let refused = t.accounts.remove(&renumbered).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    assert_eq!(
        t.accounts.find(&name).await.expect("find"),
        Some(account),
        "still there"
    );
}

/// The real tools, except that `getent passwd NAME` reports a uid outside every test range.
#[derive(Debug)]
struct MisnumberingGetent(String);

#[async_trait]
impl CommandRunner for MisnumberingGetent {
    async fn run(&self, command: &Command) -> Result<CommandOutput> {
        let mut out = SystemRunner.run(command).await?;
        if command.program.as_os_str() == "getent"
            && command.args.first().is_some_and(|a| a == "passwd")
            && command.args.get(1).is_some_and(|a| *a == *self.0)
            && out.success()
        {
            out.stdout = format!("{}:x:1500:1500::/nonexistent:/usr/sbin/nologin\n", self.0);
        }
        Ok(out)
    }
}

#[tokio::test]
async fn an_account_created_outside_the_range_is_removed_again() {
    if !needs_root() {
        return;
    }
    let t = TestAccounts::new();
    let name = unique_name("hcm");
    t.remember(&name);
    let accounts = LocalAccounts::new(
        Arc::new(MisnumberingGetent(name.as_str().to_owned())),
        t.range,
    );
    let created = accounts.create(&name).await;
    assert!(matches!(created, Err(Error::Backend { .. })), "{created:?}");
    assert_eq!(getent("passwd", name.as_str()), None);
    assert_eq!(getent("group", name.as_str()), None);
}

/// Runs every command as one account, as the process of a node that is not root would.
#[derive(Debug)]
struct AsAccount(UnixAccount);

#[async_trait]
impl CommandRunner for AsAccount {
    async fn run(&self, command: &Command) -> Result<CommandOutput> {
        let mut wrapped = Command::new("setpriv")
            .arg(format!("--reuid={}", self.0.uid))
            .arg(format!("--regid={}", self.0.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(&command.program);
        for arg in &command.args {
            wrapped = wrapped.arg(arg);
        }
        SystemRunner.run(&wrapped).await
    }
}

#[tokio::test]
async fn a_shared_account_is_the_one_the_node_runs_as() {
    if !needs_root() {
        return;
    }
    let as_root = SharedAccount::current(Arc::new(SystemRunner), false).await;
    assert!(
        matches!(&as_root, Err(Error::Invalid { field, .. }) if field == "system_user"),
        "{as_root:?}"
    );

    let t = TestAccounts::new();
    let node_user = t.create(&unique_name("hcs")).await;
    let other = t.create(&unique_name("hcs")).await;
    let shared = SharedAccount::current(Arc::new(AsAccount(node_user.clone())), true)
        .await
        .expect("current account");
    assert_eq!(
        shared.isolation(),
        Isolation::None {
            account: node_user.name.clone(),
            tenants_may_share: true
        }
    );
    assert_eq!(
        shared.find(&node_user.name).await.expect("find"),
        Some(node_user.clone())
    );
    assert_eq!(
        shared.find(&other.name).await.expect("find"),
        Some(other.clone()),
        "other accounts as getent says"
    );
    assert!(matches!(
        shared.create(&unique_name("hcs")).await,
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        shared.remove(&other).await,
        Err(Error::Unsupported { .. })
    ));
}
