//! Runtime-level settings every pool shares: the process manager, the web server's account
//! and the hardening defaults. Per-site values come from the site's own settings.

use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hosting_core::types::PhpVersion;
use hosting_core::{HostLayout, InvalidValue};
use serde::{Serialize, Serializer};

/// How FPM keeps worker processes for each pool. Build one with [`ProcessManager::on_demand`],
/// [`ProcessManager::dynamic`] or [`ProcessManager::fixed`], which refuse what FPM would refuse
/// at start-up, so a bad setting fails here and not on a live reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessManager {
    /// Workers start on the first request and exit after idling: the default, because most
    /// sites on a shared node are idle most of the time and cost no memory this way.
    #[non_exhaustive]
    OnDemand {
        /// Most workers at once.
        max_children: u16,
        /// An idle worker exits after this long (whole seconds).
        process_idle_timeout: Duration,
    },
    /// A pool of spare workers kept between `min_spare` and `max_spare`.
    #[non_exhaustive]
    Dynamic {
        /// Most workers at once.
        max_children: u16,
        /// Workers started with the pool.
        start_servers: u16,
        /// Fewest idle workers kept.
        min_spare: u16,
        /// Most idle workers kept.
        max_spare: u16,
    },
    /// A fixed number of workers, always running.
    #[non_exhaustive]
    Static {
        /// The number of workers.
        max_children: u16,
    },
}

/// The longest idle timeout accepted: a day; longer is the same as never stopping.
const MAX_IDLE: Duration = Duration::from_secs(86_400);

fn positive(field: &'static str, n: u16) -> Result<(), InvalidValue> {
    if n == 0 {
        return Err(InvalidValue::new(field, "must be at least 1"));
    }
    Ok(())
}

impl ProcessManager {
    /// `pm = ondemand`: `max_children` >= 1 and a whole-second idle timeout of 1 s to 1 day.
    pub fn on_demand(
        max_children: u16,
        process_idle_timeout: Duration,
    ) -> Result<Self, InvalidValue> {
        positive("pm.max_children", max_children)?;
        if process_idle_timeout.subsec_nanos() != 0
            || process_idle_timeout < Duration::from_secs(1)
            || process_idle_timeout > MAX_IDLE
        {
            return Err(InvalidValue::new(
                "pm.process_idle_timeout",
                "must be whole seconds from 1s to 86400s",
            ));
        }
        Ok(Self::OnDemand {
            max_children,
            process_idle_timeout,
        })
    }

    /// `pm = dynamic`, with FPM's own rules: every count >= 1,
    /// `min_spare <= start_servers <= max_spare <= max_children`.
    pub fn dynamic(
        max_children: u16,
        start_servers: u16,
        min_spare: u16,
        max_spare: u16,
    ) -> Result<Self, InvalidValue> {
        positive("pm.max_children", max_children)?;
        positive("pm.start_servers", start_servers)?;
        positive("pm.min_spare_servers", min_spare)?;
        positive("pm.max_spare_servers", max_spare)?;
        if min_spare > max_spare {
            return Err(InvalidValue::new(
                "pm.min_spare_servers",
                "must not be greater than pm.max_spare_servers",
            ));
        }
        if max_spare > max_children {
            return Err(InvalidValue::new(
                "pm.max_spare_servers",
                "must not be greater than pm.max_children",
            ));
        }
        if !(min_spare..=max_spare).contains(&start_servers) {
            return Err(InvalidValue::new(
                "pm.start_servers",
                "must be between pm.min_spare_servers and pm.max_spare_servers",
            ));
        }
        Ok(Self::Dynamic {
            max_children,
            start_servers,
            min_spare,
            max_spare,
        })
    }

    /// `pm = static` with `max_children` >= 1 workers.
    pub fn fixed(max_children: u16) -> Result<Self, InvalidValue> {
        positive("pm.max_children", max_children)?;
        Ok(Self::Static { max_children })
    }
}

impl Default for ProcessManager {
    /// Ondemand with Debian's default of 5 workers and a 10 s idle timeout.
    fn default() -> Self {
        Self::OnDemand {
            max_children: 5,
            process_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// A Unix account or group name as FPM writes it into `listen.owner`/`listen.group`:
/// `[a-z_][a-z0-9_-]{0,31}`. Unlike [`hosting_core::types::SystemUser`] it may name a system
/// account, because the web server runs as one (`www-data`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixName(String);

impl UnixName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UnixName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "web_user",
                "must be 1 to 32 characters of a-z, 0-9, '_' and '-', starting with a-z or '_'",
            ))
        }
    }
}

impl fmt::Display for UnixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for UnixName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A PHP function name for `disable_functions`: `[a-z_][a-z0-9_]{0,63}` (PHP matches them
/// case-insensitively, so one spelling is kept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionName(String);

impl FunctionName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for FunctionName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "disable_functions",
                "each must be 1 to 64 characters of a-z, 0-9 and '_', not starting with a digit",
            ))
        }
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Functions that start processes: off by default, because a site's PHP must not run commands
/// as its user outside `open_basedir`.
pub const DEFAULT_DISABLED_FUNCTIONS: [&str; 7] = [
    "exec",
    "passthru",
    "shell_exec",
    "system",
    "proc_open",
    "popen",
    "pcntl_exec",
];

/// The URL path each pool answers FPM status on, for monitoring.
pub const STATUS_PATH: &str = "/fpm-status";

/// How the FPM masters of each version are run and reloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FpmService {
    /// The SDK runs each version's master itself: it starts it with the live master config
    /// when none is running, reloads it with `SIGUSR2` and stops it with `SIGQUIT` when its
    /// last pool goes (prefix installs, tests, developer machines).
    Supervised,
    /// The distro's init system runs each version's master with the distro's configuration,
    /// which stays the operator's: the SDK adds one file to the version's pool directory,
    /// holding only `include=MANAGED_ROOT/X.Y/live/pool.d/*.conf`, while the version has
    /// pools, and reloads through the init script (`service phpX.Y-fpm reload`, or `start`).
    InitScript(InitScript),
}

/// The file the SDK owns in each version's distro pool directory: last in the directory's
/// order, after the distro's own `www.conf`.
pub const POOL_INCLUDE_FILE: &str = "zz-hosting-sdk.conf";

/// Where a distro keeps each version's FPM service; [`Default`] gives Debian's layout, which
/// Ubuntu and the sury.org packages share.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InitScript {
    /// `/etc/php`: version X.Y's FPM configuration is `ROOT/X.Y/fpm/php-fpm.conf`, its pool
    /// directory `ROOT/X.Y/fpm/pool.d`.
    pub config_root: PathBuf,
    /// `/run/php`: version X.Y's master writes its pid to `RUN/phpX.Y-fpm.pid`.
    pub run_dir: PathBuf,
}

impl Default for InitScript {
    fn default() -> Self {
        Self {
            config_root: PathBuf::from("/etc/php"),
            run_dir: PathBuf::from("/run/php"),
        }
    }
}

impl InitScript {
    /// `phpX.Y-fpm`, the init script's name.
    pub fn service(&self, version: PhpVersion) -> String {
        format!("php{}-fpm", version.as_str())
    }

    /// The distro's master configuration of `version`, which the SDK never writes.
    pub fn main_config(&self, version: PhpVersion) -> PathBuf {
        self.fpm_dir(version).join("php-fpm.conf")
    }

    /// The SDK's include file in `version`'s pool directory ([`POOL_INCLUDE_FILE`]).
    pub fn include_file(&self, version: PhpVersion) -> PathBuf {
        self.fpm_dir(version).join("pool.d").join(POOL_INCLUDE_FILE)
    }

    /// The pid file of `version`'s master.
    pub fn pid_file(&self, version: PhpVersion) -> PathBuf {
        self.run_dir
            .join(format!("php{}-fpm.pid", version.as_str()))
    }

    fn fpm_dir(&self, version: PhpVersion) -> PathBuf {
        self.config_root.join(version.as_str()).join("fpm")
    }
}

/// Settings of the PHP-FPM runtime on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpmConfig {
    /// Where sites, sockets and logs live; every path in a pool comes from here.
    pub layout: HostLayout,
    /// The web server's account: owner and group of every pool socket (mode 0660).
    pub web_user: UnixName,
    /// The process manager of every pool.
    pub process_manager: ProcessManager,
    /// `disable_functions` of every pool.
    pub disable_functions: Vec<FunctionName>,
    /// `rlimit_files` of each FPM master: past about 1,000 pools a 1024 limit fails with a
    /// misleading "cannot get uid" error. Must not exceed the node's hard limit: above it the
    /// master refuses to start (`setrlimit ... Operation not permitted`), which `php-fpm -t`
    /// does not catch.
    pub rlimit_files: NonZeroU32,
    /// A directory of operator templates: a file named like an embedded template
    /// (`pool.conf.j2`, `php-fpm.conf.j2`) replaces it.
    pub template_dir: Option<PathBuf>,
    /// Where the generated trees live, one per version (`MANAGED_ROOT/8.2/live/...`).
    pub managed_root: PathBuf,
    /// How the masters are run.
    pub service: FpmService,
}

impl FpmConfig {
    /// The defaults for `layout`: `www-data`, ondemand, [`DEFAULT_DISABLED_FUNCTIONS`],
    /// `rlimit_files = 16384` (65,536 fails to start under the 20,000 hard cap of our test
    /// nodes), embedded templates, trees under `/etc/hosting/php`, masters run by Debian's
    /// init scripts.
    pub fn new(layout: HostLayout) -> Self {
        Self {
            layout,
            web_user: UnixName("www-data".to_owned()),
            process_manager: ProcessManager::default(),
            disable_functions: DEFAULT_DISABLED_FUNCTIONS
                .iter()
                .map(|f| FunctionName((*f).to_owned()))
                .collect(),
            rlimit_files: NonZeroU32::MIN.saturating_add(16_383),
            template_dir: None,
            managed_root: PathBuf::from("/etc/hosting/php"),
            service: FpmService::InitScript(InitScript::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dynamic_accepts_exactly_what_fpm_accepts(
            max in 0u16..40, start in 0u16..40, min in 0u16..40, spare in 0u16..40,
        ) {
            let fpm_ok = max >= 1 && start >= 1 && min >= 1 && spare >= 1
                && min <= start && start <= spare && spare <= max;
            prop_assert_eq!(ProcessManager::dynamic(max, start, min, spare).is_ok(), fpm_ok);
        }

        #[test]
        fn unix_names_never_hold_config_syntax(s in "\\PC{0,40}") {
            if let Ok(n) = s.parse::<UnixName>() {
                prop_assert!(!n.as_str().contains([' ', '=', ';', '"', '[', '\n']));
            }
        }
    }

    #[test]
    fn constructors_refuse_what_fpm_refuses() {
        assert!(ProcessManager::fixed(0).is_err());
        assert!(ProcessManager::fixed(1).is_ok());
        assert!(ProcessManager::on_demand(0, Duration::from_secs(10)).is_err());
        assert!(ProcessManager::on_demand(5, Duration::ZERO).is_err());
        assert!(ProcessManager::on_demand(5, Duration::from_millis(1500)).is_err());
        assert!(ProcessManager::on_demand(5, Duration::from_secs(86_401)).is_err());
        assert_eq!(
            ProcessManager::on_demand(5, Duration::from_secs(10)).ok(),
            Some(ProcessManager::default())
        );
        assert!("www-data".parse::<UnixName>().is_ok());
        assert!("www data".parse::<UnixName>().is_err());
        assert!("exec".parse::<FunctionName>().is_ok());
        assert!("exec,system".parse::<FunctionName>().is_err());
        assert!("Exec".parse::<FunctionName>().is_err());
    }

    #[test]
    fn init_scripts_follow_debians_layout() {
        let init = InitScript::default();
        let v = PhpVersion::V8_2;
        assert_eq!(init.service(v), "php8.2-fpm");
        assert_eq!(
            init.main_config(v),
            PathBuf::from("/etc/php/8.2/fpm/php-fpm.conf")
        );
        assert_eq!(
            init.include_file(v),
            PathBuf::from("/etc/php/8.2/fpm/pool.d/zz-hosting-sdk.conf")
        );
        assert_eq!(init.pid_file(v), PathBuf::from("/run/php/php8.2-fpm.pid"));
    }
}
