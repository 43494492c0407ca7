//! # hosting-php
//!
//! PHP-FPM 8.0-8.4 for the hosting SDK: discovery of the installed versions (Debian's
//! `php-fpmX.Y` and builds at any prefix with their own php.ini and scan dir, each asked for its
//! version), one pool per site named from the site id, a master config per version, and
//! validation of a staged tree with the real `php-fpm -t`.
//!
//! [`PhpFpm`] implements [`PhpRuntime`](hosting_core::PhpRuntime): `apply` stages one tree per
//! version, validates each with that version's own `php-fpm -t`, swaps them in, reloads (or
//! starts, or stops) each master, waits for every pool's socket, and puts everything back when
//! any step fails.
//!
//! Every process call goes through the [`CommandRunner`] seam, argv only.

mod apply;
mod config;
mod discovery;
mod render;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use hosting_core::model::Website;
use hosting_core::php::PhpInstallation;
use hosting_core::types::PhpVersion;
use hosting_core::{CommandRunner, Error, RenderedFile, Result};

pub use config::{
    DEFAULT_DISABLED_FUNCTIONS, FpmConfig, FpmService, FunctionName, InitScript, POOL_INCLUDE_FILE,
    ProcessManager, STATUS_PATH, UnixName,
};
pub use discovery::{DiscoveryConfig, PrefixInstall, discover};
pub use render::{MAIN_CONFIG, MAIN_TEMPLATE, POOL_DIR, POOL_TEMPLATE};

/// PHP-FPM on one node: its installations, its settings and its templates.
#[derive(Debug)]
pub struct PhpFpm {
    runner: Arc<dyn CommandRunner>,
    config: FpmConfig,
    installations: Vec<PhpInstallation>,
    templates: render::Templates,
}

impl PhpFpm {
    /// A runtime over known `installations` (one per version). Loads the templates now, so a
    /// broken operator template is reported here, as `Error::Invalid` naming its file.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        config: FpmConfig,
        mut installations: Vec<PhpInstallation>,
    ) -> Result<Self> {
        installations.sort_by_key(|i| i.version);
        if let Some(pair) = installations
            .windows(2)
            .find(|w| w[0].version == w[1].version)
        {
            return Err(Error::Invalid {
                field: "installations".into(),
                reason: format!(
                    "PHP {} is given twice ({} and {})",
                    pair[0].version.as_str(),
                    pair[0].fpm_binary.display(),
                    pair[1].fpm_binary.display()
                )
                .into(),
            });
        }
        let templates = render::Templates::load(config.template_dir.as_deref())?;
        Ok(Self {
            runner,
            config,
            installations,
            templates,
        })
    }

    /// [`discover`]s the installations, then [`PhpFpm::new`].
    pub async fn discover(
        runner: Arc<dyn CommandRunner>,
        config: FpmConfig,
        discovery: &DiscoveryConfig,
    ) -> Result<Self> {
        let installations = discover(runner.as_ref(), discovery).await?;
        Self::new(runner, config, installations)
    }

    /// The installations, oldest version first.
    pub fn installed(&self) -> &[PhpInstallation] {
        &self.installations
    }

    /// The runtime's settings.
    pub fn config(&self) -> &FpmConfig {
        &self.config
    }

    /// The installation of `version`; an `Error::Invalid` naming it when it is not installed
    /// (never another version in its place).
    pub fn find(&self, version: PhpVersion) -> Result<&PhpInstallation> {
        self.installations
            .iter()
            .find(|i| i.version == version)
            .ok_or_else(|| {
                let installed: Vec<&str> = self
                    .installations
                    .iter()
                    .map(|i| i.version.as_str())
                    .collect();
                Error::Invalid {
                    field: "php_version".into(),
                    reason: format!(
                        "PHP {} is not installed on this node (installed: {})",
                        version.as_str(),
                        if installed.is_empty() {
                            "none".to_owned()
                        } else {
                            installed.join(", ")
                        }
                    )
                    .into(),
                }
            })
    }

    /// `site`'s pool, at `pool.d/site<ID>.conf` in its version's directory. Pure: the same
    /// site, settings and installations give the same bytes.
    ///
    /// Fails with `Error::Invalid` when the site has no PHP (`php_version`), its version is not
    /// installed (`php_version`), or it needs an extension that version does not load
    /// (`extensions`).
    pub fn render_pool(&self, site: &Website) -> Result<RenderedFile> {
        let version = site.php_version.ok_or_else(|| Error::Invalid {
            field: "php_version".into(),
            reason: format!("website {} is a static site and has no PHP pool", site.id).into(),
        })?;
        let install = self.find(version)?;
        render::pool(&self.templates, &self.config, site, version, install)
    }

    /// The master config (`php-fpm.conf`) of `version`, for a tree at `root` holding it and
    /// `pool.d/`: pid and error log under the layout's run and log directories, `rlimit_files`,
    /// and an `include` of `root/pool.d/*.conf`.
    pub fn render_main_config(&self, version: PhpVersion, root: &Path) -> Result<RenderedFile> {
        self.find(version)?;
        render::main_config(&self.templates, &self.config, version, root)
    }

    /// Runs `version`'s own binary as `php-fpm -t -y STAGED/php-fpm.conf` (with its `-c`
    /// php.ini and scan dir). A rejection is `Error::Validation` carrying what php-fpm printed.
    /// As root, php-fpm also checks that every pool's user exists; and it opens (creates) the
    /// master `error_log`, so the layout's log directory must exist.
    pub async fn validate(&self, version: PhpVersion, staged_root: &Path) -> Result<()> {
        let install = self.find(version)?;
        let command = discovery::fpm_command(
            &install.fpm_binary,
            install.php_ini.as_deref(),
            install.scan_dir.as_deref(),
            [
                OsString::from("-t"),
                OsString::from("-y"),
                staged_root.join(MAIN_CONFIG).into_os_string(),
            ],
        );
        self.check(install, &command).await
    }

    /// Runs a configuration test of `install`; a rejection is `Error::Validation` naming the
    /// binary and carrying what it printed.
    async fn check(
        &self,
        install: &PhpInstallation,
        command: &hosting_core::Command,
    ) -> Result<()> {
        let out = self.runner.run(command).await?;
        if out.success() {
            return Ok(());
        }
        let tool = install.fpm_binary.file_name().map_or_else(
            || install.fpm_binary.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let output = [out.stdout.trim(), out.stderr.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Err(Error::Validation { tool, output })
    }
}
