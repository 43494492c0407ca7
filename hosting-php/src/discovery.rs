//! Finding the PHP-FPM installations on a node by asking each binary what it is.
//!
//! A path says nothing reliable: `/opt/php/8.4/sbin/php-fpm` may well be 8.2. Every candidate
//! is run with `-v` and `-m` (with its own `-c` php.ini and `PHP_INI_SCAN_DIR`, set on that one
//! command), and reported as the version it prints.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use hosting_core::php::PhpInstallation;
use hosting_core::types::{PhpExtension, PhpVersion};
use hosting_core::{Command, CommandRunner, Error, Result};

/// Where to look for PHP-FPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The directory of Debian's `php-fpmX.Y` binaries (`/usr/sbin`); `None` skips them.
    pub system_dir: Option<PathBuf>,
    /// Builds kept at other prefixes (`/opt/plesk/php/X.Y`, `/opt/cpanel/ea-phpXY`, `/opt/remi`).
    /// They are asked after the system binaries, in order.
    pub prefix_installs: Vec<PrefixInstall>,
}

impl Default for DiscoveryConfig {
    /// Debian's `/usr/sbin` and no prefix installs.
    fn default() -> Self {
        Self {
            system_dir: Some(PathBuf::from("/usr/sbin")),
            prefix_installs: Vec::new(),
        }
    }
}

/// A PHP build at its own prefix, with its own php.ini and ini scan directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixInstall {
    /// Its FPM binary.
    pub fpm_binary: PathBuf,
    /// The php.ini passed with `-c`.
    pub php_ini: Option<PathBuf>,
    /// The `PHP_INI_SCAN_DIR` for this binary's commands only (exported globally it would be
    /// read by every other PHP too).
    pub scan_dir: Option<PathBuf>,
}

/// `binary [-c INI] ARGS` with `PHP_INI_SCAN_DIR` set for this call only.
pub(crate) fn fpm_command(
    binary: &Path,
    php_ini: Option<&Path>,
    scan_dir: Option<&Path>,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Command {
    let mut command = Command::new(binary);
    if let Some(ini) = php_ini {
        command = command.arg("-c").arg(ini);
    }
    for arg in args {
        command = command.arg(arg);
    }
    if let Some(dir) = scan_dir {
        command = command.env("PHP_INI_SCAN_DIR", dir);
    }
    command
}

/// Every PHP-FPM 8.0-8.4 installation found, sorted by version.
///
/// Candidates are Debian's `php-fpm8.0` .. `php-fpm8.4` in `system_dir` that exist, then the
/// prefix installs in order. A candidate that cannot be run, is not an FPM binary, or reports a
/// version outside 8.0-8.4 is skipped with a warning; when two report the same minor version
/// the first is kept and the other skipped with a warning. Errors only when a candidate's
/// existence cannot be checked at all (e.g. permission denied on the directory).
pub async fn discover(
    runner: &dyn CommandRunner,
    config: &DiscoveryConfig,
) -> Result<Vec<PhpInstallation>> {
    let mut candidates = Vec::new();
    if let Some(dir) = &config.system_dir {
        for version in PhpVersion::ALL {
            let binary = dir.join(format!("php-fpm{}", version.as_str()));
            if exists(&binary)? {
                candidates.push(PrefixInstall {
                    fpm_binary: binary,
                    php_ini: None,
                    scan_dir: None,
                });
            }
        }
    }
    candidates.extend(config.prefix_installs.iter().cloned());

    let mut found: Vec<PhpInstallation> = Vec::new();
    for candidate in &candidates {
        let binary = candidate.fpm_binary.display().to_string();
        match probe(runner, candidate).await? {
            Err(reason) => tracing::warn!(%binary, "skipping PHP-FPM candidate: {reason}"),
            Ok(install) => {
                if let Some(first) = found.iter().find(|i| i.version == install.version) {
                    tracing::warn!(
                        %binary,
                        kept = %first.fpm_binary.display(),
                        "skipping PHP-FPM {}: another installation of {} was found first",
                        install.full_version,
                        install.version.as_str(),
                    );
                } else {
                    found.push(install);
                }
            }
        }
    }
    found.sort_by_key(|i| i.version);
    Ok(found)
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists()
        .map_err(|e| Error::backend("php-fpm", format!("cannot check {}: {e}", path.display())))
}

/// Asks one candidate for its version and modules. The outer error means the candidate could
/// not be checked; the inner one is the reason it is skipped.
async fn probe(
    runner: &dyn CommandRunner,
    candidate: &PrefixInstall,
) -> Result<Result<PhpInstallation, String>> {
    if !exists(&candidate.fpm_binary)? {
        return Ok(Err("the binary does not exist".to_owned()));
    }
    for (what, path) in [
        ("php.ini", &candidate.php_ini),
        ("scan dir", &candidate.scan_dir),
    ] {
        if let Some(path) = path
            && !exists(path)?
        {
            return Ok(Err(format!("its {what} {} does not exist", path.display())));
        }
    }
    let run = |arg: &'static str| {
        let command = fpm_command(
            &candidate.fpm_binary,
            candidate.php_ini.as_deref(),
            candidate.scan_dir.as_deref(),
            [arg],
        );
        async move { runner.run(&command).await }
    };
    let version = match run("-v").await {
        Ok(out) if out.success() => out.stdout,
        Ok(out) => return Ok(Err(format!("`-v` failed: {}", out.stderr.trim()))),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let banner = match parse_banner(&version) {
        Some(banner) => banner,
        None => return Ok(Err("`-v` printed no `PHP X.Y.Z (sapi)` line".to_owned())),
    };
    if banner.sapi != "fpm-fcgi" {
        return Ok(Err(format!(
            "not an FPM binary (its SAPI is {})",
            banner.sapi
        )));
    }
    let Ok(php_version) = banner.minor.parse::<PhpVersion>() else {
        return Ok(Err(format!(
            "it is PHP {}; only 8.0 to 8.4 are supported",
            banner.full
        )));
    };
    let modules = match run("-m").await {
        Ok(out) if out.success() => out.stdout,
        Ok(out) => return Ok(Err(format!("`-m` failed: {}", out.stderr.trim()))),
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(Ok(PhpInstallation {
        version: php_version,
        full_version: banner.full,
        fpm_binary: candidate.fpm_binary.clone(),
        php_ini: candidate.php_ini.clone(),
        scan_dir: candidate.scan_dir.clone(),
        extensions: parse_modules(&modules),
    }))
}

/// What `php-fpm -v` says about itself.
#[derive(Debug, PartialEq, Eq)]
struct Banner {
    /// `8.2.36`
    full: String,
    /// `8.2`
    minor: String,
    /// `fpm-fcgi`
    sapi: String,
}

/// Finds `PHP 8.2.36 (fpm-fcgi) ...`, skipping any warning lines PHP printed first.
fn parse_banner(output: &str) -> Option<Banner> {
    output.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "PHP" {
            return None;
        }
        let release = words.next()?;
        let full: String = release
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        // Only digits and dots are left, so two non-empty parts are numbers.
        let mut parts = full.split('.');
        let (major, minor) = (parts.next()?, parts.next()?);
        if major.is_empty() || minor.is_empty() {
            return None;
        }
        let sapi = words.next()?.strip_prefix('(')?.strip_suffix(')')?;
        Some(Banner {
            minor: format!("{major}.{minor}"),
            full: full.trim_end_matches('.').to_owned(),
            sapi: sapi.to_owned(),
        })
    })
}

/// The `[PHP Modules]` section of `php-fpm -m`, lower-cased, as extension names. Names that
/// are no valid [`PhpExtension`] (`cgi-fcgi`) are left out.
fn parse_modules(output: &str) -> Vec<PhpExtension> {
    let mut in_php_modules = false;
    let mut found = BTreeSet::new();
    for line in output.lines().map(str::trim) {
        if line.starts_with('[') {
            in_php_modules = line == "[PHP Modules]";
            continue;
        }
        if !in_php_modules || line.is_empty() {
            continue;
        }
        let name = line.to_ascii_lowercase();
        let name = match name.as_str() {
            "zend opcache" => "opcache",
            other => other,
        };
        if let Ok(extension) = name.parse::<PhpExtension>() {
            found.insert(extension);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PHP_82_V: &str = "PHP 8.2.36 (fpm-fcgi) (built: May  8 2026 07:20:38)\n\
        Copyright (c) The PHP Group\n\
        Zend Engine v4.2.36, Copyright (c) Zend Technologies\n\
        \x20   with Zend OPcache v8.2.36, Copyright (c), by Zend Technologies\n";

    #[test]
    fn the_banner_gives_version_and_sapi() {
        let b = parse_banner(PHP_82_V).expect("banner");
        assert_eq!(b.full, "8.2.36");
        assert_eq!(b.minor, "8.2");
        assert_eq!(b.sapi, "fpm-fcgi");
        let cli = parse_banner(
            "PHP Warning:  Module \"x\" is already loaded\nPHP 8.4.0RC1 (cli) (NTS)\n",
        )
        .expect("banner after a warning");
        assert_eq!((cli.full.as_str(), cli.sapi.as_str()), ("8.4.0", "cli"));
        assert_eq!(
            parse_banner("PHP 7.4.33 (fpm-fcgi)").map(|b| b.minor),
            Some("7.4".into())
        );
        assert!(parse_banner("PHP Warning: nothing here").is_none());
        assert!(parse_banner("").is_none());
    }

    #[test]
    fn modules_come_from_the_php_section_only() {
        let out = "[PHP Modules]\ncalendar\ncgi-fcgi\nCore\nPDO\npdo_mysql\nSimpleXML\nZend OPcache\n\n\
                   [Zend Modules]\nZend OPcache\nXdebug\n";
        let names: Vec<_> = parse_modules(out).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            names,
            [
                "calendar",
                "core",
                "opcache",
                "pdo",
                "pdo_mysql",
                "simplexml"
            ]
        );
    }

    proptest! {
        #[test]
        fn parsers_take_any_output(out in "\\PC{0,300}") {
            let _ = parse_banner(&out);
            for e in parse_modules(&format!("[PHP Modules]\n{out}")) {
                prop_assert!(e.as_str().parse::<PhpExtension>().is_ok());
            }
        }
    }
}
