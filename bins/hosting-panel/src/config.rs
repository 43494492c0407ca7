//! The panel server's configuration: built-in defaults, then a TOML file, then environment
//! variables `HOSTING_PANEL_<KEY>`, then command-line flags; each source overrides the one
//! before it, key by key. Every value is parsed into a typed field here, so a bad value stops
//! the server at start-up with the key (or variable) and the rule it broke.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hosting_core::UidRange;
use hosting_core::types::{EmailAddress, IpNetwork, NodeName};
use hosting_db::customer::UserHost;
use serde::Deserialize;

/// The prefix of every environment variable the server reads.
pub const ENV_PREFIX: &str = "HOSTING_PANEL_";
/// The variable holding the first admin's password (read once, at first start, never stored).
pub const ADMIN_PASSWORD_ENV: &str = "HOSTING_PANEL_ADMIN_PASSWORD";
/// The variable naming the configuration file.
pub const CONFIG_ENV: &str = "HOSTING_PANEL_CONFIG";

/// A configuration that cannot be used, with the key or variable at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A string that must not reach a log: database URLs carry passwords. `Debug` shows the URL
/// without its credentials and query.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL's scheme (`sqlite`, `postgres`, `mysql`), for logs.
    pub fn scheme(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }

    /// The host and port of a `scheme://user:pass@host:port/db` URL, when it names them.
    pub fn host_port(&self) -> Option<(String, Option<u16>)> {
        let (_, rest) = self.0.split_once("://")?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let location = authority.rsplit_once('@').map_or(authority, |(_, l)| l);
        if let Some(v6) = location.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return Some((host.to_owned(), port));
        }
        match location.rsplit_once(':') {
            Some((host, port)) => Some((host.to_owned(), port.parse().ok())),
            None if location.is_empty() => None,
            None => Some((location.to_owned(), None)),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once("://") {
            Some((scheme, rest)) => {
                let location = rest.rsplit_once('@').map_or(rest, |(_, l)| l);
                let location = location.split('?').next().unwrap_or_default();
                write!(f, "{scheme}://***@{location}")
            }
            None => write!(f, "{}:***", self.scheme()),
        }
    }
}

/// How much the server logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Start-up, requests and jobs (the default).
    #[default]
    Info,
    /// Everything the libraries say.
    Debug,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(Self::Error),
            "warn" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            _ => Err("must be one of error, warn, info, debug".to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A CORS origin: `http://host[:port]` or `https://host[:port]`, nothing after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// The origin as browsers send it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Origin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or("must start with http:// or https://")?;
        let ok = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be scheme://host[:port] with no path, query or spaces".to_owned())
        }
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A PHP-FPM build at its own prefix (hosting-php's `PrefixInstall`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhpPrefix {
    /// Its FPM binary.
    pub fpm_binary: PathBuf,
    /// The php.ini it runs with (`-c`).
    #[serde(default)]
    pub php_ini: Option<PathBuf>,
    /// Its `PHP_INI_SCAN_DIR`.
    #[serde(default)]
    pub scan_dir: Option<PathBuf>,
}

/// A customer-database server the local node offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseServerConfig {
    /// The admin URL the panel creates databases and logins with.
    pub admin_url: SecretUrl,
    /// The host customers' sites connect to.
    pub host: String,
    /// The port customers' sites connect to.
    pub port: u16,
    /// MariaDB/MySQL: the hosts customer accounts are created for (the web nodes' addresses);
    /// empty: the backend's default (`localhost`, `127.0.0.1`, `::1` for a server on this
    /// machine; a remote server needs them listed).
    pub user_hosts: Vec<UserHost>,
}

/// The node the panel runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Its name in the panel's records.
    pub name: NodeName,
    /// The nginx binary; `None`: no nginx on this node.
    pub nginx: Option<PathBuf>,
    /// The port the sites are served on.
    pub http_port: u16,
    /// The port HTTPS sites are served on.
    pub https_port: u16,
    /// The Apache binary (`/usr/sbin/apache2`); `None` (the default): no Apache on this node.
    /// Sites choose nginx or Apache; Apache listens on its own ports beside nginx.
    pub apache: Option<PathBuf>,
    /// The port Apache serves its sites on.
    pub apache_http_port: u16,
    /// The port Apache serves its HTTPS sites on.
    pub apache_https_port: u16,
    /// Where Debian's `php-fpmX.Y` binaries are looked for; `None` skips them.
    pub php_system_dir: Option<PathBuf>,
    /// PHP builds at other prefixes.
    pub php_prefixes: Vec<PhpPrefix>,
    /// A MariaDB (or MySQL) server for customer databases.
    pub mariadb: Option<DatabaseServerConfig>,
    /// A PostgreSQL server for customer databases.
    pub postgres: Option<DatabaseServerConfig>,
    /// The uids and gids of the accounts the panel creates for sites (as root).
    pub uid_range: UidRange,
    /// Without root every site runs as the panel's own user: whether websites of more than one
    /// tenant may then share this node (they can read each other's files).
    pub allow_shared_account: bool,
}

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Where the panel keeps its files (store, signing key, node trees).
    pub data_dir: PathBuf,
    /// The panel store.
    pub database_url: SecretUrl,
    /// The access-token signing key.
    pub signing_key_file: PathBuf,
    /// Peers whose `X-Forwarded-For` header is believed, read right to left past every
    /// trusted hop (`Forwarded` is never read).
    pub trusted_proxies: Vec<IpNetwork>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest request head (all header names and values).
    pub max_header_bytes: usize,
    /// Deepest JSON nesting accepted in a body.
    pub max_json_depth: usize,
    /// Access-token lifetime.
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime.
    pub refresh_ttl_secs: u64,
    /// Password attempts per source address, and per account from sources that never logged
    /// in as its user, before each further attempt waits (1 s, doubling up to 15 min; the
    /// count is forgotten after an hour without attempts).
    pub login_attempts_per_minute: u32,
    /// Second-factor codes a user may try (login, confirm, disable together) before each further try waits.
    pub second_factor_attempts: u32,
    /// The first wait after `login_attempts_per_minute` password attempts; it doubles per
    /// attempt, up to 15 minutes.
    pub login_backoff_secs: u64,
    /// The first wait after `second_factor_attempts`; it doubles per try, up to an hour.
    pub second_factor_backoff_secs: u64,
    /// Password writes (new hashes) waiting or running at once per tenant.
    pub password_writes_per_tenant: u32,
    /// Password writes waiting or running at once per source address.
    pub password_writes_per_source: u32,
    /// Requests per credential (session or API token) in `rate_limit_window_secs`.
    pub rate_limit_per_credential: u32,
    /// Requests per tenant in `rate_limit_window_secs`.
    pub rate_limit_per_tenant: u32,
    /// The window of the per-credential and per-tenant request limits.
    pub rate_limit_window_secs: u64,
    /// Denied calls of one credential and action within this long are one audit entry with a count.
    pub audit_denied_burst_secs: u64,
    /// Passwords hashed at once; each slot keeps argon2's 19 MiB.
    pub password_hashing_slots: u32,
    /// MiB of serialized answers kept for repeated reads; 0 keeps none.
    pub read_cache_mib: u32,
    /// Origins allowed to call the API from a browser; empty: CORS off.
    pub cors_allowed_origins: Vec<Origin>,
    /// The first admin's e-mail.
    pub admin_email: EmailAddress,
    /// The longest a request may take before the client gets a 408.
    pub request_timeout_secs: u64,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace_secs: u64,
    /// How much is logged.
    pub log_level: LogLevel,
    /// The local node.
    pub node: NodeConfig,
}

/// Values given on the command line (they win over every other source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--config`.
    pub config: Option<PathBuf>,
}

/// One source's values; `None` leaves the key to a lower source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    signing_key_file: Option<PathBuf>,
    trusted_proxies: Option<Vec<IpNetwork>>,
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_json_depth: Option<usize>,
    access_ttl_secs: Option<u64>,
    refresh_ttl_secs: Option<u64>,
    login_attempts_per_minute: Option<u32>,
    second_factor_attempts: Option<u32>,
    login_backoff_secs: Option<u64>,
    second_factor_backoff_secs: Option<u64>,
    password_writes_per_tenant: Option<u32>,
    password_writes_per_source: Option<u32>,
    rate_limit_per_credential: Option<u32>,
    rate_limit_per_tenant: Option<u32>,
    rate_limit_window_secs: Option<u64>,
    audit_denied_burst_secs: Option<u64>,
    password_hashing_slots: Option<u32>,
    read_cache_mib: Option<u32>,
    cors_allowed_origins: Option<Vec<Origin>>,
    admin_email: Option<EmailAddress>,
    request_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    log_level: Option<LogLevel>,
    node: Option<NodeLayer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeLayer {
    name: Option<NodeName>,
    nginx: Option<String>,
    http_port: Option<u16>,
    https_port: Option<u16>,
    apache: Option<String>,
    apache_http_port: Option<u16>,
    apache_https_port: Option<u16>,
    php_system_dir: Option<String>,
    php_prefixes: Option<Vec<PhpPrefix>>,
    mariadb_url: Option<String>,
    mariadb_host: Option<String>,
    mariadb_port: Option<u16>,
    mariadb_user_hosts: Option<Vec<String>>,
    postgres_url: Option<String>,
    postgres_host: Option<String>,
    postgres_port: Option<u16>,
    uid_range: Option<String>,
    allow_shared_account: Option<bool>,
}

macro_rules! over {
    ($high:expr, $low:expr, { $($field:ident),+ $(,)? }) => {{
        let (high, low) = ($high, $low);
        Self { $($field: high.$field.or(low.$field),)+ }
    }};
}

impl NodeLayer {
    fn over(self, low: NodeLayer) -> NodeLayer {
        over!(self, low, {
            name, nginx, http_port, https_port, apache, apache_http_port, apache_https_port,
            php_system_dir, php_prefixes, mariadb_url,
            mariadb_host, mariadb_port, mariadb_user_hosts, postgres_url, postgres_host, postgres_port, uid_range,
            allow_shared_account,
        })
    }
}

impl Layer {
    /// `self` where it has a value, else `low`.
    fn over(self, low: Layer) -> Layer {
        let node = match (self.node, low.node) {
            (Some(h), Some(l)) => Some(h.over(l)),
            (h, l) => h.or(l),
        };
        let mut merged = over!(Layer { node: None, ..self }, Layer { node: None, ..low }, {
            listen, data_dir, database_url, signing_key_file, trusted_proxies, max_body_bytes,
            max_header_bytes, max_json_depth, access_ttl_secs, refresh_ttl_secs,
            login_attempts_per_minute, password_hashing_slots, read_cache_mib,
            second_factor_attempts, login_backoff_secs, second_factor_backoff_secs, password_writes_per_tenant,
            password_writes_per_source, rate_limit_per_credential, rate_limit_per_tenant,
            rate_limit_window_secs, audit_denied_burst_secs,
            cors_allowed_origins, admin_email, request_timeout_secs,
            shutdown_grace_secs, log_level, node,
        });
        merged.node = node;
        merged
    }
}

/// Every key, as written in the file, with its environment variable.
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "signing_key_file",
    "trusted_proxies",
    "max_body_bytes",
    "max_header_bytes",
    "max_json_depth",
    "access_ttl_secs",
    "refresh_ttl_secs",
    "login_attempts_per_minute",
    "password_hashing_slots",
    "second_factor_attempts",
    "login_backoff_secs",
    "second_factor_backoff_secs",
    "password_writes_per_tenant",
    "password_writes_per_source",
    "rate_limit_per_credential",
    "rate_limit_per_tenant",
    "rate_limit_window_secs",
    "audit_denied_burst_secs",
    "read_cache_mib",
    "cors_allowed_origins",
    "admin_email",
    "request_timeout_secs",
    "shutdown_grace_secs",
    "log_level",
    "node.name",
    "node.nginx",
    "node.http_port",
    "node.https_port",
    "node.apache",
    "node.apache_http_port",
    "node.apache_https_port",
    "node.php_system_dir",
    "node.php_prefixes",
    "node.mariadb_url",
    "node.mariadb_host",
    "node.mariadb_port",
    "node.mariadb_user_hosts",
    "node.postgres_url",
    "node.postgres_host",
    "node.postgres_port",
    "node.uid_range",
    "node.allow_shared_account",
];

/// The environment variable of a key: `node.http_port` -> `HOSTING_PANEL_NODE_HTTP_PORT`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Parses one environment value for `key`, as a TOML document `key = value` would be, but
/// without quotes for strings and with comma-separated lists.
fn env_layer(env: &dyn Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
    let mut doc = toml::Table::new();
    for key in KEYS {
        let var = env_var(key);
        let Some(raw) = env(&var) else {
            continue;
        };
        let value = env_value(key, &raw).map_err(|e| ConfigError::new(format!("{var}: {e}")))?;
        let (table, name) = match key.split_once('.') {
            Some((table, name)) => {
                let entry = doc
                    .entry(table.to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match entry {
                    toml::Value::Table(t) => (t, name),
                    _ => return Err(ConfigError::new(format!("{var}: cannot be set"))),
                }
            }
            None => (&mut doc, *key),
        };
        table.insert(name.to_owned(), value);
    }
    toml::Value::Table(doc)
        .try_into::<Layer>()
        .map_err(|e| ConfigError::new(format!("environment: {}", e.message())))
}

/// The TOML value an environment string stands for.
fn env_value(key: &str, raw: &str) -> Result<toml::Value, String> {
    let number = |raw: &str| -> Result<toml::Value, String> {
        raw.trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "must be a whole number".to_owned())
    };
    let list = |raw: &str| {
        toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        )
    };
    match key {
        "max_body_bytes"
        | "max_header_bytes"
        | "max_json_depth"
        | "access_ttl_secs"
        | "refresh_ttl_secs"
        | "login_attempts_per_minute"
        | "second_factor_attempts"
        | "login_backoff_secs"
        | "second_factor_backoff_secs"
        | "password_writes_per_tenant"
        | "password_writes_per_source"
        | "rate_limit_per_credential"
        | "rate_limit_per_tenant"
        | "rate_limit_window_secs"
        | "audit_denied_burst_secs"
        | "password_hashing_slots"
        | "read_cache_mib"
        | "request_timeout_secs"
        | "shutdown_grace_secs"
        | "node.http_port"
        | "node.https_port"
        | "node.apache_http_port"
        | "node.apache_https_port"
        | "node.mariadb_port"
        | "node.postgres_port" => number(raw),
        "trusted_proxies" | "cors_allowed_origins" | "node.mariadb_user_hosts" => Ok(list(raw)),
        "node.allow_shared_account" => match raw.trim() {
            "true" => Ok(toml::Value::Boolean(true)),
            "false" => Ok(toml::Value::Boolean(false)),
            _ => Err("must be true or false".to_owned()),
        },
        "node.php_prefixes" => {
            // A TOML inline array of tables, e.g.
            // [{fpm_binary = "/opt/php/8.4/sbin/php-fpm", php_ini = "/opt/php/8.4/php.ini"}]
            let doc: toml::Table = format!("v = {raw}").parse().map_err(|e: toml::de::Error| {
                format!("must be a TOML array of tables: {}", e.message())
            })?;
            doc.get("v")
                .cloned()
                .ok_or_else(|| "must be a TOML array of tables".to_owned())
        }
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}

/// The file's values, or an empty layer when there is no file.
fn file_layer(path: Option<&Path>) -> Result<Layer, ConfigError> {
    let Some(path) = path else {
        return Ok(Layer::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?;
    let layer: Layer = toml::from_str(&text)
        .map_err(|e| ConfigError::new(format!("{}: {}", path.display(), e.message().trim_end())))?;
    refuse_loose_secrets(path, &layer)?;
    Ok(layer)
}

/// A configuration file that holds a database server's URL (a password, often a superuser's)
/// must be readable by its owner only, as sshd and PostgreSQL insist on for their keys: every
/// site's account on the machine could read it otherwise.
fn refuse_loose_secrets(path: &Path, layer: &Layer) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let node = layer.node.as_ref();
    let secrets: Vec<&str> = [
        ("database_url", layer.database_url.as_ref()),
        (
            "node.mariadb_url",
            node.and_then(|n| n.mariadb_url.as_ref()),
        ),
        (
            "node.postgres_url",
            node.and_then(|n| n.postgres_url.as_ref()),
        ),
    ]
    .into_iter()
    .filter(|(_, url)| url.is_some_and(|u| !u.starts_with("sqlite:")))
    .map(|(key, _)| key)
    .collect();
    if secrets.is_empty() {
        return Ok(());
    }
    let mode = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(ConfigError::new(format!(
            "{} holds {} and is readable by group or others (mode {:o}): run chmod 600 {}",
            path.display(),
            secrets.join(", "),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

/// The data directory when none is configured, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// `path` against `cwd` when it is relative, without `.` components.
fn absolute(cwd: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        cwd.join(path).components().collect()
    }
}

/// A `sqlite:` URL whose file is relative, with the file made absolute against `cwd`; any
/// other URL (another engine, an in-memory database) as it is.
fn absolute_sqlite_url(cwd: &Path, url: String) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return url;
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (file, query) = rest
        .split_once('?')
        .map_or((rest, None), |(f, q)| (f, Some(q)));
    if file.is_empty() || file.starts_with(':') || Path::new(file).is_absolute() {
        return url;
    }
    let file = absolute(cwd, PathBuf::from(file));
    match query {
        Some(query) => format!("sqlite:{}?{query}", file.display()),
        None => format!("sqlite:{}", file.display()),
    }
}

/// An optional path where `""` turns the feature off and no value takes `default`.
fn optional_path(value: Option<String>, default: Option<PathBuf>) -> Option<PathBuf> {
    match value {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => default,
    }
}

fn database_server(
    prefix: &str,
    url: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    default_port: u16,
    schemes: &[&str],
    user_hosts: Option<Vec<String>>,
) -> Result<Option<DatabaseServerConfig>, ConfigError> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let url = SecretUrl(url);
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::new(format!(
            "node.{prefix}_url: must start with {}://",
            schemes.join(":// or ")
        )));
    }
    let (url_host, url_port) = url.host_port().unwrap_or(("127.0.0.1".to_owned(), None));
    let host = host.unwrap_or(url_host);
    if host.is_empty()
        || host
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-.:".contains(c)))
    {
        return Err(ConfigError::new(format!(
            "node.{prefix}_host: must be a host name or IP address"
        )));
    }
    let user_hosts = user_hosts
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            raw.parse::<UserHost>()
                .map_err(|e| ConfigError::new(format!("node.{prefix}_user_hosts[{i}]: {}", e.rule)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(DatabaseServerConfig {
        admin_url: url,
        host,
        port: port.or(url_port).unwrap_or(default_port),
        user_hosts,
    }))
}

impl Config {
    /// Builds the configuration from `flags`, the environment (`env` looks a variable up),
    /// the file (`--config`, else `HOSTING_PANEL_CONFIG`, else `DATA_DIR/panel.toml` when it
    /// exists) and the defaults.
    ///
    /// Every relative path (flags, variables, file, the default `./data`, a `sqlite:` URL) is
    /// made absolute against the working directory here, once, before anything derives a path
    /// from it: the node's servers run with other working directories.
    pub fn load(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let cwd = std::env::current_dir()
            .map_err(|e| ConfigError::new(format!("cannot read the working directory: {e}")))?;
        Self::load_in(&cwd, flags, env)
    }

    /// [`Config::load`] with relative paths taken from `cwd`.
    pub fn load_in(
        cwd: &Path,
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env_layer = env_layer(env)?;
        let early_data_dir = flags
            .data_dir
            .clone()
            .or_else(|| env_layer.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let file = match (&flags.config, env(CONFIG_ENV)) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(path)) if !path.is_empty() => Some(PathBuf::from(path)),
            _ => Some(absolute(cwd, early_data_dir.join("panel.toml"))).filter(|p| p.is_file()),
        }
        .map(|path| absolute(cwd, path));
        let file_layer = file_layer(file.as_deref())?;
        let flag_layer = Layer {
            listen: flags.listen,
            data_dir: flags.data_dir.clone(),
            ..Layer::default()
        };
        let merged = flag_layer.over(env_layer).over(file_layer);
        Self::from_layer(merged, cwd)
    }

    /// Parses a configuration file's text alone (with defaults for the rest), relative paths
    /// taken from `cwd`.
    pub fn from_toml(text: &str, cwd: &Path) -> Result<Self, ConfigError> {
        let layer: Layer =
            toml::from_str(text).map_err(|e| ConfigError::new(e.message().trim_end()))?;
        Self::from_layer(layer, cwd)
    }

    fn from_layer(layer: Layer, cwd: &Path) -> Result<Self, ConfigError> {
        if !cwd.is_absolute() {
            return Err(ConfigError::new(format!(
                "the working directory {} is not absolute",
                cwd.display()
            )));
        }
        let data_dir = absolute(
            cwd,
            layer
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        );
        let node = layer.node.unwrap_or_default();
        let default_nginx = Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists());
        let node = NodeConfig {
            name: match node.name {
                Some(name) => name,
                None => "local"
                    .parse()
                    .map_err(|e| ConfigError::new(format!("node.name: {e}")))?,
            },
            nginx: optional_path(node.nginx, default_nginx).map(|p| absolute(cwd, p)),
            http_port: node.http_port.unwrap_or(8081),
            https_port: node.https_port.unwrap_or(8443),
            apache: optional_path(node.apache, None).map(|p| absolute(cwd, p)),
            apache_http_port: node.apache_http_port.unwrap_or(8082),
            apache_https_port: node.apache_https_port.unwrap_or(8444),
            php_system_dir: optional_path(node.php_system_dir, Some(PathBuf::from("/usr/sbin")))
                .map(|p| absolute(cwd, p)),
            php_prefixes: node
                .php_prefixes
                .unwrap_or_default()
                .into_iter()
                .map(|p| PhpPrefix {
                    fpm_binary: absolute(cwd, p.fpm_binary),
                    php_ini: p.php_ini.map(|p| absolute(cwd, p)),
                    scan_dir: p.scan_dir.map(|p| absolute(cwd, p)),
                })
                .collect(),
            mariadb: database_server(
                "mariadb",
                node.mariadb_url,
                node.mariadb_host,
                node.mariadb_port,
                3306,
                &["mysql", "mariadb"],
                node.mariadb_user_hosts,
            )?,
            uid_range: match node.uid_range {
                Some(raw) => raw
                    .parse()
                    .map_err(|e| ConfigError::new(format!("node.{e}")))?,
                None => UidRange::DEFAULT,
            },
            allow_shared_account: node.allow_shared_account.unwrap_or(false),
            postgres: database_server(
                "postgres",
                node.postgres_url,
                node.postgres_host,
                node.postgres_port,
                5432,
                &["postgres", "postgresql"],
                None,
            )?,
        };
        let database_url = match layer.database_url {
            Some(url) => absolute_sqlite_url(cwd, url),
            None => format!("sqlite:{}", data_dir.join("panel.db").display()),
        };
        let config = Config {
            listen: layer
                .listen
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            signing_key_file: layer
                .signing_key_file
                .map_or_else(|| data_dir.join("signing.key"), |p| absolute(cwd, p)),
            database_url: SecretUrl(database_url),
            trusted_proxies: layer.trusted_proxies.unwrap_or_default(),
            max_body_bytes: layer.max_body_bytes.unwrap_or(1024 * 1024),
            max_header_bytes: layer.max_header_bytes.unwrap_or(16 * 1024),
            max_json_depth: layer.max_json_depth.unwrap_or(32),
            access_ttl_secs: layer.access_ttl_secs.unwrap_or(300),
            refresh_ttl_secs: layer.refresh_ttl_secs.unwrap_or(30 * 24 * 3600),
            login_attempts_per_minute: layer.login_attempts_per_minute.unwrap_or(10),
            second_factor_attempts: layer.second_factor_attempts.unwrap_or(5),
            login_backoff_secs: layer.login_backoff_secs.unwrap_or(1),
            second_factor_backoff_secs: layer.second_factor_backoff_secs.unwrap_or(30),
            password_writes_per_tenant: layer.password_writes_per_tenant.unwrap_or(4),
            password_writes_per_source: layer.password_writes_per_source.unwrap_or(4),
            rate_limit_per_credential: layer.rate_limit_per_credential.unwrap_or(300),
            rate_limit_per_tenant: layer.rate_limit_per_tenant.unwrap_or(1500),
            rate_limit_window_secs: layer.rate_limit_window_secs.unwrap_or(10),
            audit_denied_burst_secs: layer.audit_denied_burst_secs.unwrap_or(60),
            password_hashing_slots: layer.password_hashing_slots.unwrap_or(1),
            read_cache_mib: layer.read_cache_mib.unwrap_or(16),
            cors_allowed_origins: layer.cors_allowed_origins.unwrap_or_default(),
            admin_email: match layer.admin_email {
                Some(email) => email,
                None => "admin@panel.localhost"
                    .parse()
                    .map_err(|e| ConfigError::new(format!("admin_email: {e}")))?,
            },
            request_timeout_secs: layer.request_timeout_secs.unwrap_or(120),
            shutdown_grace_secs: layer.shutdown_grace_secs.unwrap_or(30),
            log_level: layer.log_level.unwrap_or_default(),
            data_dir,
            node,
        };
        config.check()?;
        Ok(config)
    }

    /// Rules that involve more than one value's type.
    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_header_bytes", self.max_header_bytes as u64),
            ("max_json_depth", self.max_json_depth as u64),
            ("access_ttl_secs", self.access_ttl_secs),
            ("refresh_ttl_secs", self.refresh_ttl_secs),
            (
                "login_attempts_per_minute",
                u64::from(self.login_attempts_per_minute),
            ),
            (
                "password_hashing_slots",
                u64::from(self.password_hashing_slots),
            ),
            (
                "second_factor_attempts",
                u64::from(self.second_factor_attempts),
            ),
            ("login_backoff_secs", self.login_backoff_secs),
            (
                "second_factor_backoff_secs",
                self.second_factor_backoff_secs,
            ),
            (
                "password_writes_per_tenant",
                u64::from(self.password_writes_per_tenant),
            ),
            (
                "password_writes_per_source",
                u64::from(self.password_writes_per_source),
            ),
            (
                "rate_limit_per_credential",
                u64::from(self.rate_limit_per_credential),
            ),
            (
                "rate_limit_per_tenant",
                u64::from(self.rate_limit_per_tenant),
            ),
            ("rate_limit_window_secs", self.rate_limit_window_secs),
            ("audit_denied_burst_secs", self.audit_denied_burst_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("node.http_port", u64::from(self.node.http_port)),
            ("node.https_port", u64::from(self.node.https_port)),
            (
                "node.apache_http_port",
                u64::from(self.node.apache_http_port),
            ),
            (
                "node.apache_https_port",
                u64::from(self.node.apache_https_port),
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::new(format!("{key}: must be at least 1")));
        }
        let node = &self.node;
        let nginx_ports = [node.http_port, node.https_port];
        if node.apache.is_some()
            && (nginx_ports.contains(&node.apache_http_port)
                || nginx_ports.contains(&node.apache_https_port)
                || node.apache_http_port == node.apache_https_port)
        {
            return Err(ConfigError::new(
                "node.apache_http_port, node.apache_https_port: must differ from each other \
                 and from node.http_port and node.https_port (nginx listens there)",
            ));
        }
        if self.max_header_bytes < 1024 {
            return Err(ConfigError::new("max_header_bytes: must be at least 1024"));
        }
        if self.refresh_ttl_secs < self.access_ttl_secs {
            return Err(ConfigError::new(
                "refresh_ttl_secs: must be at least access_ttl_secs",
            ));
        }
        let scheme = self.database_url.scheme();
        if !["sqlite", "postgres", "postgresql", "mysql", "mariadb"].contains(&scheme) {
            return Err(ConfigError::new(
                "database_url: must start with sqlite:, postgres:// or mysql://",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::collections::BTreeMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let dir = std::env::temp_dir().join("hosting-panel-config-defaults-nonexistent");
        let flags = Flags {
            data_dir: Some(dir.clone()),
            ..Flags::default()
        };
        let c = Config::load(&flags, &env(&[])).expect("defaults");
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(c.signing_key_file, dir.join("signing.key"));
        assert_eq!(
            c.database_url.expose(),
            format!("sqlite:{}", dir.join("panel.db").display())
        );
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.max_header_bytes, 16 << 10);
        assert_eq!(c.max_json_depth, 32);
        assert_eq!(c.login_attempts_per_minute, 10);
        assert!(c.cors_allowed_origins.is_empty());
        assert_eq!(c.admin_email.as_str(), "admin@panel.localhost");
        assert_eq!(c.node.name.as_str(), "local");
        assert_eq!(c.node.http_port, 8081);
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "hosting-panel-config-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("panel.toml"),
            "listen = \"127.0.0.1:1000\"\nmax_json_depth = 5\nmax_body_bytes = 2048\n\
             [node]\nhttp_port = 9000\nnginx = \"\"\n",
        )
        .expect("file");
        let vars = [
            ("HOSTING_PANEL_LISTEN", "127.0.0.1:2000"),
            ("HOSTING_PANEL_MAX_JSON_DEPTH", "7"),
            ("HOSTING_PANEL_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1"),
            (
                "HOSTING_PANEL_NODE_PHP_PREFIXES",
                "[{fpm_binary = \"/opt/php/sbin/php-fpm\"}]",
            ),
        ];
        let flags = Flags {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 3000))),
            data_dir: Some(dir.clone()),
            config: None,
        };
        let c = Config::load(&flags, &env(&vars)).expect("config");
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.max_json_depth, 7);
        assert_eq!(c.max_body_bytes, 2048);
        assert_eq!(c.node.http_port, 9000);
        assert_eq!(c.node.nginx, None);
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.node.php_prefixes.len(), 1);
        let c = Config::load(
            &Flags {
                data_dir: Some(dir.clone()),
                ..Flags::default()
            },
            &env(&vars),
        )
        .expect("config");
        assert_eq!(c.listen.port(), 2000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::load(
            &Flags::default(),
            &env(&[("HOSTING_PANEL_MAX_BODY_BYTES", "lots")]),
        )
        .expect_err("not a number");
        assert!(
            err.to_string().contains("HOSTING_PANEL_MAX_BODY_BYTES"),
            "{err}"
        );
        let err = Config::from_toml("unknown_key = 1", Path::new("/")).expect_err("unknown");
        assert!(err.to_string().contains("unknown_key"), "{err}");
        let err = Config::from_toml("trusted_proxies = [\"10.0.0.1/8\"]", Path::new("/"))
            .expect_err("host bits");
        assert!(err.to_string().contains("host bits"), "{err}");
        let err = Config::from_toml(
            "cors_allowed_origins = [\"https://a.example/path\"]",
            Path::new("/"),
        )
        .expect_err("path");
        assert!(err.to_string().contains("scheme://host"), "{err}");
        let err = Config::from_toml(
            "[node]\nmariadb_url = \"postgres://x@h/db\"",
            Path::new("/"),
        )
        .expect_err("scheme");
        assert!(err.to_string().contains("node.mariadb_url"), "{err}");
    }

    #[test]
    fn mariadb_user_hosts_are_checked_where_they_are_read() {
        let c = Config::from_toml(
            "[node]\nmariadb_url = \"mysql://a:b@db.internal/mysql\"\n\
             mariadb_user_hosts = [\"10.0.0.5\", \"web-1.internal\"]",
            Path::new("/"),
        )
        .expect("hosts");
        let hosts = c.node.mariadb.expect("server").user_hosts;
        assert_eq!(
            hosts.iter().map(UserHost::as_str).collect::<Vec<_>>(),
            ["10.0.0.5", "web-1.internal"]
        );
        let err = Config::from_toml(
            "[node]\nmariadb_url = \"mysql://a:b@db/mysql\"\nmariadb_user_hosts = [\"x'y\"]",
            Path::new("/"),
        )
        .expect_err("a quote");
        assert!(
            err.to_string().contains("node.mariadb_user_hosts[0]"),
            "{err}"
        );
    }

    #[test]
    fn relative_paths_are_made_absolute_once() {
        let cwd = Path::new("/home/newcomer/hosting-sdk");
        let c = Config::load_in(cwd, &Flags::default(), &env(&[])).expect("defaults");
        assert_eq!(c.data_dir, cwd.join("data"));
        assert_eq!(c.signing_key_file, cwd.join("data/signing.key"));
        assert_eq!(
            c.database_url.expose(),
            "sqlite:/home/newcomer/hosting-sdk/data/panel.db"
        );
        let c = Config::load_in(
            cwd,
            &Flags {
                data_dir: Some(PathBuf::from("../state")),
                ..Flags::default()
            },
            &env(&[
                ("HOSTING_PANEL_SIGNING_KEY_FILE", "keys/panel.key"),
                (
                    "HOSTING_PANEL_DATABASE_URL",
                    "sqlite://./db/panel.db?mode=rwc",
                ),
                ("HOSTING_PANEL_NODE_NGINX", "bin/nginx"),
                ("HOSTING_PANEL_NODE_PHP_SYSTEM_DIR", "sbin"),
                (
                    "HOSTING_PANEL_NODE_PHP_PREFIXES",
                    "[{fpm_binary = \"php/sbin/php-fpm\", php_ini = \"php/php.ini\"}]",
                ),
            ]),
        )
        .expect("relative values");
        assert_eq!(c.data_dir, Path::new("/home/newcomer/hosting-sdk/../state"));
        assert_eq!(c.signing_key_file, cwd.join("keys/panel.key"));
        assert_eq!(
            c.database_url.expose(),
            "sqlite:/home/newcomer/hosting-sdk/db/panel.db?mode=rwc"
        );
        assert_eq!(c.node.nginx, Some(cwd.join("bin/nginx")));
        assert_eq!(c.node.php_system_dir, Some(cwd.join("sbin")));
        assert_eq!(
            c.node.php_prefixes[0].fpm_binary,
            cwd.join("php/sbin/php-fpm")
        );
        assert_eq!(
            c.node.php_prefixes[0].php_ini,
            Some(cwd.join("php/php.ini"))
        );
        for url in [
            "sqlite::memory:",
            "sqlite:/abs/panel.db",
            "postgres://u:p@h/db",
        ] {
            let c = Config::load_in(
                cwd,
                &Flags::default(),
                &env(&[("HOSTING_PANEL_DATABASE_URL", url)]),
            )
            .expect("url");
            assert_eq!(c.database_url.expose(), url);
        }
    }

    #[test]
    fn database_urls_are_redacted_and_split() {
        let c = Config::from_toml(
            "database_url = \"postgres://panel:s3cret@db.internal:6432/panel?sslmode=require\"\n\
             [node]\nmariadb_url = \"mysql://root:pw@127.0.0.1:3307/mysql\"\n",
            Path::new("/"),
        )
        .expect("config");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains(":pw@"), "{shown}");
        let maria = c.node.mariadb.expect("mariadb");
        assert_eq!((maria.host.as_str(), maria.port), ("127.0.0.1", 3307));
    }
}
