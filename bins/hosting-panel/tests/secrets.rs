//! The panel's secrets on the machine, checked as a website's account would try them: the
//! configuration file (a database server's admin URL), the access-token signing key and the
//! SQLite store (password hashes, second-factor secrets) are readable by the panel's user only;
//! the panel refuses to start when the file or the key is readable by group or others, with the
//! `chmod` to run. Needs root (to read as another account) and a test account.
// The test builds its fixtures by path, as root, where no tenant writes.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hosting_panel::{Config, Flags};
use hosting_tests::{TempDir, env_or_skip, root_or_skip};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Whether `account` can read `path` (through `cat`, as that account).
fn readable_by(account: &str, path: &Path) -> bool {
    std::process::Command::new("runuser")
        .args(["-u", account, "--", "cat"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("runuser")
        .success()
}

fn load(dir: &Path, config: &Path) -> Result<Config, String> {
    let flags = Flags {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        data_dir: Some(dir.join("data")),
        config: Some(config.to_path_buf()),
    };
    Config::load_in(dir, &flags, &|_| None).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_site_account_reads_the_panels_secrets() {
    let Some(users) = env_or_skip("HOSTING_TEST_SYSTEM_USERS") else {
        return;
    };
    if !root_or_skip() {
        return;
    }
    let site_account = users
        .split(',')
        .next()
        .expect("a test user")
        .trim()
        .to_owned();
    let dir = TempDir::new();
    // As a data directory's parent is on a real machine: anyone may pass.
    chmod(dir.path(), 0o755);
    let config = dir.path().join("panel.toml");
    std::fs::write(
        &config,
        "admin_email = \"admin@panel.localhost\"\n\
         [node]\nnginx = \"\"\nphp_system_dir = \"\"\n\
         postgres_url = \"postgres://admin:secret-admin-password@127.0.0.1:1/postgres\"\n",
    )
    .expect("config");

    // A world-readable file with a database URL is refused, naming the fix.
    chmod(&config, 0o644);
    let refused = load(dir.path(), &config).expect_err("a loose secret file");
    assert!(refused.contains("chmod 600"), "{refused}");
    assert!(refused.contains("node.postgres_url"), "{refused}");
    chmod(&config, 0o640);
    load(dir.path(), &config).expect_err("group-readable is loose too");

    chmod(&config, 0o600);
    let loaded = load(dir.path(), &config).expect("a private file");
    let server = hosting_panel::start(&loaded, Some("first-admin-password-1".parse().expect("pw")))
        .await
        .expect("the panel starts");
    let key = loaded.signing_key_file.clone();
    let store = dir.path().join("data").join(
        Path::new(
            hosting_panel::server::sqlite_file(loaded.database_url.expose())
                .expect("the default store is SQLite"),
        )
        .file_name()
        .expect("file name"),
    );
    server.shutdown().await;

    for (what, path) in [
        ("configuration", &config),
        ("signing key", &key),
        ("store", &store),
    ] {
        assert_eq!(mode(path), 0o600, "the {what} {} is 0600", path.display());
        assert!(
            !readable_by(&site_account, path),
            "{site_account} can read the {what} {}",
            path.display()
        );
    }
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", store.display()));
        if side.exists() {
            assert!(!readable_by(&site_account, &side), "{}", side.display());
        }
    }

    // A signing key someone loosened stops the next start, naming the fix.
    chmod(&key, 0o644);
    let refused = hosting_panel::start(&loaded, None)
        .await
        .expect_err("a loose key");
    let refused = format!("{refused:#}");
    assert!(refused.contains("chmod 600"), "{refused}");
}
