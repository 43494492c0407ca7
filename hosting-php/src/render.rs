//! Pure rendering of pool and master configs from embedded (or operator) minijinja templates.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use hosting_core::php::PhpInstallation;
use hosting_core::types::{PhpBytes, PhpVersion};
use hosting_core::{Error, RenderedFile, Result, model::Website};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, Output, State, UndefinedBehavior};
use serde::Serialize;

use crate::config::{FpmConfig, ProcessManager, STATUS_PATH};

/// The pool template's file name (embedded, or in the operator's template directory).
pub const POOL_TEMPLATE: &str = "pool.conf.j2";
/// The master config template's file name.
pub const MAIN_TEMPLATE: &str = "php-fpm.conf.j2";
/// The master config's file name inside a version's directory.
pub const MAIN_CONFIG: &str = "php-fpm.conf";
/// The pool directory inside a version's directory.
pub const POOL_DIR: &str = "pool.d";

const EMBEDDED: [(&str, &str); 2] = [
    (POOL_TEMPLATE, include_str!("../templates/pool.conf.j2")),
    (MAIN_TEMPLATE, include_str!("../templates/php-fpm.conf.j2")),
];

/// The parsed templates, each remembered with where it came from for error messages.
#[derive(Debug)]
pub(crate) struct Templates {
    env: Environment<'static>,
    origins: Vec<(&'static str, String)>,
}

fn template_error(origin: &str, reason: impl ToString) -> Error {
    Error::Invalid {
        field: Cow::Owned(format!("template {origin}")),
        reason: Cow::Owned(reason.to_string()),
    }
}

impl Templates {
    /// The embedded templates, each replaced by a same-named file in `override_dir`. A `*.j2`
    /// file there that names no template is refused, so a misspelt override is not ignored.
    pub(crate) fn load(override_dir: Option<&Path>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_formatter(write_checked);
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| template_error("syntax", e))?;
        env.set_syntax(syntax);
        let mut overrides = match override_dir {
            Some(dir) => read_overrides(dir)?,
            None => Vec::new(),
        };
        let mut origins = Vec::new();
        for (name, embedded) in EMBEDDED {
            let (origin, source) = match overrides.iter().position(|(n, _, _)| *n == name) {
                Some(i) => {
                    let (_, path, source) = overrides.swap_remove(i);
                    (path.display().to_string(), source)
                }
                None => (format!("{name} (embedded)"), embedded.to_owned()),
            };
            env.add_template_owned(name, source)
                .map_err(|e| template_error(&origin, e))?;
            origins.push((name, origin));
        }
        Ok(Self { env, origins })
    }

    fn render(&self, name: &str, context: &impl Serialize) -> Result<String> {
        let origin = self
            .origins
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(name, |(_, o)| o.as_str());
        self.env
            .get_template(name)
            .and_then(|t| t.render(Value::from(Serde(context))))
            .map_err(|e| template_error(origin, e))
    }
}

/// The `*.j2` files in `dir`, each of which must be named like an embedded template.
fn read_overrides(dir: &Path) -> Result<Vec<(&'static str, PathBuf, String)>> {
    let unreadable = |path: &Path, e: std::io::Error| {
        template_error(&path.display().to_string(), format!("cannot read it: {e}"))
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let path = entry.map_err(|e| unreadable(dir, e))?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if !file.ends_with(".j2") {
            continue;
        }
        let Some(&(name, _)) = EMBEDDED.iter().find(|(name, _)| *name == file) else {
            return Err(template_error(
                &path.display().to_string(),
                format!("names no template; overrides are {POOL_TEMPLATE} and {MAIN_TEMPLATE}"),
            ));
        };
        let source = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
        found.push((name, path, source));
    }
    Ok(found)
}

/// What a rendered value may hold besides ASCII letters and digits: nothing that ends an ini
/// line, starts a comment (`;`) or section (`[`), quotes, or assigns (`=`).
const VALUE_PUNCTUATION: &str = "._-/:+@,";

/// The formatter for `{{ ... }}`: strings and numbers of [`VALUE_PUNCTUATION`] words only, so
/// no template, embedded or an operator's, can write a line break or a quote from the data.
fn write_checked(out: &mut Output, _: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    let refuse = |why: String| minijinja::Error::new(ErrorKind::InvalidOperation, why);
    let text = match value.kind() {
        ValueKind::String | ValueKind::Number => value.to_string(),
        kind => {
            return Err(refuse(format!(
                "a {kind} cannot be written into a php-fpm config; write strings and numbers"
            )));
        }
    };
    if text.is_empty() {
        return Err(refuse(
            "an empty value cannot be written into a php-fpm config".to_owned(),
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || VALUE_PUNCTUATION.contains(c)))
    {
        return Err(refuse(format!(
            "{c:?} cannot be written into a php-fpm config (values hold letters, digits and {VALUE_PUNCTUATION} only)"
        )));
    }
    out.write_str(&text)?;
    Ok(())
}

/// A path as written into FPM's ini syntax: absolute UTF-8 of letters, digits and `/ . _ - + @`,
/// so it can neither end the line, start a comment or section, nor split `open_basedir` (`:`).
fn ini_path(field: &'static str, path: &Path) -> Result<String> {
    let invalid = |reason: Cow<'static, str>| Error::Invalid {
        field: Cow::Borrowed(field),
        reason,
    };
    let text = path
        .to_str()
        .ok_or_else(|| invalid("must be valid UTF-8".into()))?;
    if !path.is_absolute() {
        return Err(invalid("must be an absolute path".into()));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@".contains(*c)))
    {
        return Err(invalid(
            format!("may only hold letters, digits and / . _ - + @ (it is written into php-fpm's ini syntax), not {c:?}")
                .into(),
        ));
    }
    Ok(text.to_owned())
}

/// A size in units every PHP 8.x parses: PHP knows K, M and G but not T, so `1T` is `1024G`.
fn ini_quantity(size: PhpBytes) -> String {
    let bytes = size.bytes();
    for (shift, unit) in [(30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// What `pool.conf.j2` sees. Fields absent for a process manager are left out, so a template
/// that uses them where they do not apply fails instead of printing nothing.
#[derive(Debug, Serialize)]
struct PoolContext<'a> {
    site_id: i64,
    php_version: &'static str,
    name: &'a str,
    user: &'a str,
    group: &'a str,
    listen: String,
    listen_owner: &'a str,
    listen_group: &'a str,
    listen_mode: &'static str,
    pm: PmContext,
    status_path: &'static str,
    extensions: Vec<&'a str>,
    memory_limit: String,
    max_execution_time: u32,
    upload_max_filesize: String,
    post_max_size: String,
    open_basedir: String,
    upload_tmp_dir: String,
    session_save_path: String,
    sys_temp_dir: String,
    disable_functions: String,
    error_log: String,
}

#[derive(Debug, Serialize)]
struct PmContext {
    kind: &'static str,
    max_children: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_idle_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_servers: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_spare_servers: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_spare_servers: Option<u16>,
}

impl From<ProcessManager> for PmContext {
    fn from(pm: ProcessManager) -> Self {
        let base = |kind, max_children| PmContext {
            kind,
            max_children,
            process_idle_timeout_secs: None,
            start_servers: None,
            min_spare_servers: None,
            max_spare_servers: None,
        };
        match pm {
            ProcessManager::OnDemand {
                max_children,
                process_idle_timeout,
            } => PmContext {
                process_idle_timeout_secs: Some(process_idle_timeout.as_secs()),
                ..base("ondemand", max_children)
            },
            ProcessManager::Dynamic {
                max_children,
                start_servers,
                min_spare,
                max_spare,
            } => PmContext {
                start_servers: Some(start_servers),
                min_spare_servers: Some(min_spare),
                max_spare_servers: Some(max_spare),
                ..base("dynamic", max_children)
            },
            ProcessManager::Static { max_children } => base("static", max_children),
        }
    }
}

/// `site`'s pool for `install`, at `pool.d/site<ID>.conf`.
pub(crate) fn pool(
    templates: &Templates,
    config: &FpmConfig,
    site: &Website,
    version: PhpVersion,
    install: &PhpInstallation,
) -> Result<RenderedFile> {
    let missing: Vec<&str> = site
        .settings
        .php
        .extensions()
        .iter()
        .filter(|e| !install.extensions.contains(e))
        .map(|e| e.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid {
            field: "extensions".into(),
            reason: format!(
                "PHP {} ({}) does not load {}",
                version.as_str(),
                install.fpm_binary.display(),
                missing.join(", ")
            )
            .into(),
        });
    }
    let paths = config.layout.site(site);
    let socket = config.layout.php_socket(site.id, version);
    let home = ini_path("sites_root", &paths.home)?;
    let tmp = ini_path("sites_root", &paths.tmp_dir)?;
    let php = &site.settings.php;
    let context = PoolContext {
        site_id: site.id.0,
        php_version: version.as_str(),
        name: &paths.name,
        user: site.system_user.as_str(),
        group: site.system_user.as_str(),
        listen: ini_path("php_run_dir", &socket)?,
        listen_owner: config.web_user.as_str(),
        listen_group: config.web_user.as_str(),
        listen_mode: "0660",
        pm: config.process_manager.into(),
        status_path: STATUS_PATH,
        extensions: php.extensions().iter().map(|e| e.as_str()).collect(),
        memory_limit: ini_quantity(php.memory_limit()),
        max_execution_time: php.max_execution_time(),
        upload_max_filesize: ini_quantity(php.upload_max_filesize()),
        post_max_size: ini_quantity(php.post_max_size()),
        open_basedir: format!("{home}:{tmp}"),
        upload_tmp_dir: tmp.clone(),
        session_save_path: ini_path("sites_root", &paths.session_dir)?,
        sys_temp_dir: tmp,
        disable_functions: config
            .disable_functions
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(","),
        error_log: ini_path("log_dir", &paths.error_log)?,
    };
    Ok(RenderedFile {
        path: format!("{POOL_DIR}/{}.conf", paths.name).parse()?,
        contents: templates.render(POOL_TEMPLATE, &context)?,
    })
}

#[derive(Debug, Serialize)]
struct MainContext {
    php_version: &'static str,
    pid: String,
    error_log: String,
    rlimit_files: u32,
    pool_dir: String,
}

/// The log of `version`'s master, where it reports each (re)start.
pub(crate) fn master_log(layout: &hosting_core::HostLayout, version: PhpVersion) -> PathBuf {
    layout
        .log_dir
        .join(format!("php{}-fpm.log", version.as_str()))
}

/// The content of the SDK's file in a distro's pool directory: one `include` of the pools in
/// `pool_dir` (the version's live `pool.d`), and a comment saying whose it is.
pub(crate) fn pool_include(version: PhpVersion, pool_dir: &Path) -> Result<String> {
    let dir = ini_path("managed_root", pool_dir)?;
    Ok(format!(
        "; Written by hosting-php: the PHP {} pools the hosting SDK manages. It removes this\n\
         ; file when the version's last pool goes; delete it (and reload) to take them off.\n\
         include={dir}/*.conf\n",
        version.as_str()
    ))
}

/// The master config of `version` whose tree (this file and `pool.d/`) lives at `root`.
pub(crate) fn main_config(
    templates: &Templates,
    config: &FpmConfig,
    version: PhpVersion,
    root: &Path,
) -> Result<RenderedFile> {
    let layout = &config.layout;
    let v = version.as_str();
    let context = MainContext {
        php_version: v,
        pid: ini_path(
            "php_run_dir",
            &layout.php_run_dir.join(format!("php{v}-fpm.pid")),
        )?,
        error_log: ini_path("log_dir", &master_log(layout, version))?,
        rlimit_files: config.rlimit_files.get(),
        pool_dir: ini_path("root", &root.join(POOL_DIR))?,
    };
    Ok(RenderedFile {
        path: MAIN_CONFIG.parse()?,
        contents: templates.render(MAIN_TEMPLATE, &context)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_avoid_the_t_suffix_php_cannot_read() {
        let q = |s: &str| ini_quantity(s.parse().expect("size"));
        assert_eq!(q("1T"), "1024G");
        assert_eq!(q("256M"), "256M");
        assert_eq!(q("1536K"), "1536K");
        assert_eq!(q("1000"), "1000");
    }

    #[test]
    fn paths_that_could_break_the_ini_line_are_refused() {
        for bad in [
            "relative/x",
            "/a b",
            "/a;b",
            "/a:b",
            "/a\nb",
            "/a\"b",
            "/a=b",
            "/a[b]",
        ] {
            let err = ini_path("log_dir", &PathBuf::from(bad)).expect_err(bad);
            assert!(
                matches!(err, Error::Invalid { ref field, .. } if field == "log_dir"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            ini_path("log_dir", Path::new("/srv/a-b_c.d/+x@y")).ok(),
            Some("/srv/a-b_c.d/+x@y".to_owned())
        );
    }

    #[test]
    fn the_pool_include_holds_one_include_of_a_plain_path() {
        let text = pool_include(
            PhpVersion::V8_2,
            Path::new("/etc/hosting/php/8.2/live/pool.d"),
        )
        .expect("render");
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(';')).collect();
        assert_eq!(lines, ["include=/etc/hosting/php/8.2/live/pool.d/*.conf"]);
        assert!(pool_include(PhpVersion::V8_2, Path::new("/etc/hosting php/8.2")).is_err());
        assert!(pool_include(PhpVersion::V8_2, Path::new("/etc/a;b")).is_err());
    }
}
