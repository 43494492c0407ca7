//! How a web server is run: by the SDK under its own root, or as the distro's service with one
//! include file the SDK owns.

use std::path::{Path, PathBuf};

use hosting_core::{Command, Error, Result};

use crate::context::config_path;

/// Who runs the web server, and so which files the SDK writes around the sites.
///
/// `S` is the server's service settings ([`NginxService`](crate::NginxService),
/// [`ApacheService`](crate::ApacheService)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Management<S> {
    /// The SDK runs the server itself, with a main configuration it renders, under a root it
    /// owns: `ROOT/managed/live -> generations/<n>`, `ROOT/run`, `ROOT/logs`, `ROOT/tmp`.
    /// Started with the live main configuration, reloaded with a signal (prefix installs,
    /// tests, a node dedicated to the SDK).
    Supervised {
        /// The server root.
        server_root: PathBuf,
    },
    /// The distro's service runs the server with the distro's main configuration, which stays
    /// the operator's: the SDK writes one include file (once, and again only when its content
    /// differs) that pulls in `MANAGED_ROOT/live/hosting.conf`, the http-level part of the
    /// live generation, and it never edits any other file of the distro. Reloaded and started
    /// through the service (`service NAME reload|start`).
    Service(S),
}

/// A service name for `service NAME reload`: a lower-case letter or digit, then letters,
/// digits and `. _ @ -`, as init scripts and unit names are spelt.
pub(crate) fn check_service_name(field: &str, name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: field.to_owned().into(),
            reason: format!("{name:?} is not a service name (letters, digits and . _ @ -)").into(),
        })
    }
}

/// The service settings every server shares, borrowed from its own service config.
#[derive(Debug, Clone)]
pub(crate) struct ServiceParts<'a> {
    /// The service's name for `service NAME ...`.
    pub name: &'a str,
    /// The pid file the service's master writes.
    pub pid_file: &'a Path,
    /// The include file the SDK owns in the distro's configuration.
    pub include_file: &'a Path,
    /// The managed tree's root.
    pub managed_root: &'a Path,
    /// Tests the distro's whole configuration, with the live generation included.
    pub system_test: Command,
    /// The server's include directive for a path, as the include file holds it.
    pub include_line: fn(&str) -> String,
}

/// The include file's content: a comment saying who owns it and one include of `target`,
/// written with `include` (the server's include line for a path).
pub(crate) fn include_contents(
    server: &str,
    managed_root: &Path,
    include: fn(&str) -> String,
    target: &Path,
) -> Result<String> {
    let root = config_path("managed_root", managed_root)?;
    let target = config_path("include", target)?;
    Ok(format!(
        "# Written by hosting-web: the {server} sites the hosting SDK manages under {root}.\n\
         # The SDK rewrites this file when its content differs; delete it (and reload) to take\n\
         # those sites off this server.\n{}\n",
        include(&target)
    ))
}

/// Whether `path` holds exactly `contents`.
pub(crate) fn holds(path: &Path, contents: &str) -> bool {
    std::fs::read(path).is_ok_and(|found| found == contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_plain_words() {
        for good in ["nginx", "apache2", "php8.2-fpm", "apache2@site"] {
            assert!(check_service_name("service", good).is_ok(), "{good}");
        }
        for bad in ["", "-nginx", "../nginx", "nginx reload", "Nginx", "a/b"] {
            assert!(check_service_name("service", bad).is_err(), "{bad:?}");
        }
    }
}
