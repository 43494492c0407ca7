//! The config file: which panel, and the tokens of the last `hostctl login`.
//!
//! It holds bearer secrets, so it is written `0600` (a temporary file then a rename, so a
//! reader never sees half a file) and a warning names it when others can read it. Refreshing
//! rotates the refresh token (a used one presented again ends the session), so two hostctl
//! processes refresh one at a time under a lock file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::Failure;

/// The variable that names the config file.
pub const CONFIG_VAR: &str = "HOSTCTL_CONFIG";

/// What the config file holds. Every key is optional; `access_token` may be set by hand to an
/// API token (`hsk_...`), which is then used as is.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The panel's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Who logged in (for messages and the next `login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The bearer token sent to `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// When the access token expires (informational: the panel decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<DateTime<Utc>>,
    /// Exchanged for new tokens when the panel refuses the access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the login session ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("ConfigFile")
            .field("url", &self.url)
            .field("email", &self.email)
            .field("access_token", &secret(&self.access_token))
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &secret(&self.refresh_token))
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish()
    }
}

impl ConfigFile {
    /// Forgets the login's tokens (the URL and e-mail stay for the next login).
    pub fn forget_tokens(&mut self) {
        self.access_token = None;
        self.access_expires_at = None;
        self.refresh_token = None;
        self.refresh_expires_at = None;
    }
}

/// `$HOSTCTL_CONFIG`, else `$XDG_CONFIG_HOME/hostctl/config.toml`, else
/// `~/.config/hostctl/config.toml`.
pub fn path() -> Result<PathBuf, Failure> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var(CONFIG_VAR) {
        return Ok(PathBuf::from(p));
    }
    // The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
    if let Some(xdg) = var("XDG_CONFIG_HOME").map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("hostctl").join("config.toml"));
    }
    match var("HOME") {
        Some(home) => Ok(PathBuf::from(home)
            .join(".config")
            .join("hostctl")
            .join("config.toml")),
        None => Err(Failure::invalid(format!(
            "no config file: set {CONFIG_VAR} (or HOME)"
        ))),
    }
}

/// The file at `path`; empty when it does not exist.
pub fn load(path: &Path) -> Result<ConfigFile, Failure> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(Failure::io(format!("cannot read {}: {e}", path.display()))),
    };
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} holds tokens and others can read it; run chmod 600 on it",
            path.display()
        );
    }
    toml::from_str(&text).map_err(|e| Failure::invalid(format!("{}: {e}", path.display())))
}

/// Writes `config` to `path`, mode `0600`, replacing the file in one rename.
pub fn save(path: &Path, config: &ConfigFile) -> Result<(), Failure> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Failure::io(format!("cannot {what} {}: {e}", p.display()))
    };
    let text = toml::to_string(config)
        .map_err(|e| Failure::io(format!("cannot write the config file: {e}")))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI's own config directory, the invoking user's"
    )]
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| fail("create", &dir, e))?;
    let name = path
        .file_name()
        .map_or_else(|| "config.toml".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail("write", path, e));
    }
    Ok(())
}

/// An exclusive lock on the config file (on `PATH.lock`), held while a refresh rotates the
/// tokens.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

/// Waits for the config file's lock.
pub fn lock(path: &Path) -> Result<Lock, Failure> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        #[allow(
            clippy::disallowed_methods,
            reason = "the CLI's own config directory, the invoking user's"
        )]
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| Failure::io(format!("cannot open {}: {e}", lock_path.display())))?;
    file.lock()
        .map_err(|e| Failure::io(format!("cannot lock {}: {e}", lock_path.display())))?;
    Ok(Lock(file))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn saved_files_are_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("hostctl-config-{}", std::process::id()));
        let path = dir.join("sub").join("config.toml");
        let config = ConfigFile {
            url: Some("http://127.0.0.1:8080".into()),
            access_token: Some("secret-access".into()),
            refresh_token: Some("hsr_secret".into()),
            ..ConfigFile::default()
        };
        save(&path, &config).expect("save");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(&path).expect("load"), config);
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret"), "{debug}");
        let _lock = lock(&path).expect("lock");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_file_is_empty_and_unknown_keys_are_refused() {
        let missing = Path::new("/nonexistent/hostctl/config.toml");
        assert_eq!(load(missing).expect("load"), ConfigFile::default());
        let dir = std::env::temp_dir().join(format!("hostctl-config-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config.toml");
        fs::write(&path, "urll = \"x\"\n").expect("write");
        let err = load(&path).expect_err("unknown key");
        assert_eq!(err.exit, 2);
        let _ = fs::remove_dir_all(&dir);
    }
}
