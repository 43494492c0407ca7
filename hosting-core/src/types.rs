//! Validated newtypes: every external value is parsed into one of these at the boundary.
//!
//! Each type can only hold a value that passed its rule, so code that receives one never
//! re-checks it, and a value that could break out of a config line, a SQL identifier or a path
//! never gets that far. Parsing reports an [`InvalidValue`] naming the field and the rule;
//! `Deserialize` runs the same parser, so JSON and TOML input are held to the same rules.

use std::fmt;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InvalidValue;

/// OpenAPI schemas of these types, built from the same limits their parsers use.
#[cfg(feature = "openapi")]
mod openapi;

/// Implements the string plumbing shared by every validated string newtype:
/// `FromStr`, `TryFrom<&str>`, `TryFrom<String>`, `Display`, `AsRef<str>` and validating serde.
macro_rules! validated_string {
    ($ty:ident, $field:literal, $parse:path) => {
        impl $ty {
            /// The field name used in errors when this type is rejected.
            pub const FIELD: &'static str = $field;

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $parse(s).map(Self)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = InvalidValue;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Characters that can break out of a config line, a shell word or a SQL literal. Named in
/// errors so an operator sees exactly what was refused.
const BREAKOUT_CHARS: &[char] = &[
    ';', '$', '`', '|', '%', '{', '}', '\n', '\r', ' ', '\t', '\'', '"', '\\', '\0',
];

fn first_breakout_char(s: &str) -> Option<char> {
    s.chars()
        .find(|c| BREAKOUT_CHARS.contains(c) || c.is_control())
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a newline".to_owned(),
        '\r' => "a carriage return".to_owned(),
        '\t' => "a tab".to_owned(),
        ' ' => "a space".to_owned(),
        '\0' => "a NUL byte".to_owned(),
        c if c.is_control() => format!("control character U+{:04X}", u32::from(c)),
        c => format!("'{c}'"),
    }
}

// ---------------------------------------------------------------------------------------------
// DomainName

/// A fully qualified host name a website answers to: lower-case ASCII (IDN converted to
/// punycode), RFC 1035 labels of 1-63 characters, at most 253 characters, at least two labels,
/// a TLD that is not all digits, no leading/trailing `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

validated_string!(DomainName, "domain", parse_domain);

impl DomainName {
    /// The longest name, in ASCII characters (after IDN conversion).
    pub const MAX_LEN: usize = 253;
    /// The longest label, in ASCII characters.
    pub const MAX_LABEL_LEN: usize = 63;
}

fn parse_domain(input: &str) -> Result<String, InvalidValue> {
    let bad = |rule: String| InvalidValue::new(DomainName::FIELD, rule);
    if input.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if input.len() > 1024 {
        return Err(bad(
            "must be at most 1024 bytes before IDN conversion".into()
        ));
    }
    if let Some(c) = first_breakout_char(input) {
        return Err(bad(format!("must not contain {}", describe(c))));
    }
    if input.starts_with('.') || input.ends_with('.') {
        return Err(bad("must not start or end with '.'".into()));
    }
    if input.contains("..") {
        return Err(bad("must not contain an empty label ('..')".into()));
    }
    let ascii = if input.is_ascii() {
        input.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(input)
            .map_err(|_| bad("is not a valid internationalised domain name".into()))?
    };
    if ascii.len() > DomainName::MAX_LEN {
        return Err(bad(format!(
            "must be at most {} characters",
            DomainName::MAX_LEN
        )));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(bad(
            "must have at least two labels (e.g. example.com)".into()
        ));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(bad("must not contain an empty label ('..')".into()));
        }
        if label.len() > DomainName::MAX_LABEL_LEN {
            return Err(bad(format!(
                "label '{label}' is longer than {} characters",
                DomainName::MAX_LABEL_LEN
            )));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(bad(format!(
                "label '{label}' may only hold a-z, 0-9 and '-', not {}",
                describe(c)
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(format!(
                "label '{label}' must not start or end with '-'"
            )));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad("the top-level domain must not be all digits".into()));
    }
    Ok(ascii)
}

// ---------------------------------------------------------------------------------------------
// Enumerations: PHP version, web server, database engine

/// A PHP minor version the SDK supports running under PHP-FPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhpVersion {
    /// PHP 8.0
    V8_0,
    /// PHP 8.1
    V8_1,
    /// PHP 8.2
    V8_2,
    /// PHP 8.3
    V8_3,
    /// PHP 8.4
    V8_4,
}

impl PhpVersion {
    /// Every supported version, oldest first.
    pub const ALL: [PhpVersion; 5] = [
        PhpVersion::V8_0,
        PhpVersion::V8_1,
        PhpVersion::V8_2,
        PhpVersion::V8_3,
        PhpVersion::V8_4,
    ];

    /// `"8.2"` and so on.
    pub fn as_str(self) -> &'static str {
        match self {
            PhpVersion::V8_0 => "8.0",
            PhpVersion::V8_1 => "8.1",
            PhpVersion::V8_2 => "8.2",
            PhpVersion::V8_3 => "8.3",
            PhpVersion::V8_4 => "8.4",
        }
    }
}

/// A closed set of names parsed from and shown as fixed strings.
macro_rules! named_enum {
    ($ty:ident, $field:literal, $rule:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::error::InvalidValue;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::error::InvalidValue::new($field, $rule)),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(match self { $($ty::$variant => $name,)+ })
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let raw = <String as ::serde::Deserialize>::deserialize(d)?;
                raw.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use named_enum;

named_enum!(PhpVersion, "php_version", "must be one of 8.0, 8.1, 8.2, 8.3, 8.4", {
    V8_0 => "8.0", V8_1 => "8.1", V8_2 => "8.2", V8_3 => "8.3", V8_4 => "8.4",
});

/// The web server that serves a website: one of the SDK's own, or a plugin's, by its name.
///
/// `nginx`, `apache` and `openlitespeed` always parse to the built-in variants, so a plugin can
/// never pass for one of them; any other valid name is a [`WebServerKind::Plugin`]. A plugin's
/// name is held inline, so the kind stays `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WebServerKind {
    /// NGINX with PHP through FastCGI.
    Nginx,
    /// Apache 2.4 with mod_proxy_fcgi.
    Apache,
    /// OpenLiteSpeed.
    OpenLiteSpeed,
    /// A server implemented outside the SDK (e.g. `caddy`), named by its plugin.
    Plugin(PluginName),
}

impl WebServerKind {
    /// The field name used in errors when a kind is rejected.
    pub const FIELD: &'static str = "web_server";
    /// The SDK's own servers by name; [`PluginName`] refuses these names.
    pub(crate) const BUILT_IN: [(&'static str, WebServerKind); 3] = [
        ("nginx", WebServerKind::Nginx),
        ("apache", WebServerKind::Apache),
        ("openlitespeed", WebServerKind::OpenLiteSpeed),
    ];

    /// The name a website records: `nginx`, `apache`, `openlitespeed` or the plugin's name.
    pub fn as_str(&self) -> &str {
        match self {
            WebServerKind::Nginx => "nginx",
            WebServerKind::Apache => "apache",
            WebServerKind::OpenLiteSpeed => "openlitespeed",
            WebServerKind::Plugin(name) => name.as_str(),
        }
    }
}

impl FromStr for WebServerKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((_, kind)) = Self::BUILT_IN.iter().find(|(name, _)| *name == s) {
            return Ok(*kind);
        }
        PluginName::new(s).map(Self::Plugin).ok_or_else(|| {
            InvalidValue::new(
                Self::FIELD,
                "must be one of nginx, apache, openlitespeed, or a plugin's name (a lower-case \
                 letter, then lower-case letters, digits or '-', at most 32, not ending in '-')",
            )
        })
    }
}

impl fmt::Display for WebServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WebServerKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WebServerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// The name a web-server plugin gives its kind (`caddy`): a lower-case ASCII letter, then
/// lower-case letters, digits and `-`, 1 to 32 characters, not ending in `-`, and not the name
/// of a built-in server. It is written into the panel's records and shown to operators, so it
/// holds nothing that could break out of a config line, a path or a SQL literal.
///
/// Stored inline (not as a `String`) so that [`WebServerKind`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginName {
    // Zero-padded after `len`; comparing the padded bytes first orders names as strings.
    bytes: [u8; PluginName::MAX_LEN],
    len: u8,
}

impl PluginName {
    /// The field name used in errors: a plugin's name is a `web_server` value.
    pub const FIELD: &'static str = "web_server";
    /// The longest name, in bytes.
    pub const MAX_LEN: usize = 32;

    /// `name` as a plugin name, or `None` when it breaks the rule (parse it to learn which).
    /// `const`, so a plugin can name its kind in a `const` item and a bad name fails the build:
    ///
    /// ```
    /// use hosting_core::types::{PluginName, WebServerKind};
    ///
    /// const KIND: WebServerKind = match PluginName::new("caddy") {
    ///     Some(name) => WebServerKind::Plugin(name),
    ///     None => panic!("not a plugin name"),
    /// };
    /// assert_eq!(KIND.to_string(), "caddy");
    /// ```
    pub const fn new(name: &str) -> Option<Self> {
        match parse_plugin_name(name.as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => None,
        }
    }

    /// The validated name.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Only ASCII is ever stored, so this never falls back.
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

/// `name` as a [`PluginName`], or the rule it breaks. `const` for [`PluginName::new`], hence
/// the index loops.
const fn parse_plugin_name(name: &[u8]) -> Result<PluginName, &'static str> {
    const SHAPE: &str = "must be a lower-case letter, then lower-case letters, digits or '-', at \
                         most 32, not ending in '-'";
    let (Some(first), Some(last)) = (name.first(), name.last()) else {
        return Err(SHAPE);
    };
    if name.len() > PluginName::MAX_LEN || !first.is_ascii_lowercase() || *last == b'-' {
        return Err(SHAPE);
    }
    let mut bytes = [0; PluginName::MAX_LEN];
    let mut i = 0;
    while i < name.len() {
        let c = name[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
            return Err(SHAPE);
        }
        bytes[i] = c;
        i += 1;
    }
    let mut k = 0;
    while k < WebServerKind::BUILT_IN.len() {
        let built_in = WebServerKind::BUILT_IN[k].0.as_bytes();
        let mut same = built_in.len() == name.len();
        let mut i = 0;
        while same && i < name.len() {
            same = built_in[i] == name[i];
            i += 1;
        }
        if same {
            return Err("names a built-in web server (nginx, apache, openlitespeed), not a plugin");
        }
        k += 1;
    }
    Ok(PluginName {
        bytes,
        // At most MAX_LEN (32), checked above.
        len: name.len() as u8,
    })
}

impl fmt::Debug for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PluginName").field(&self.as_str()).finish()
    }
}

impl FromStr for PluginName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_plugin_name(s.as_bytes()).map_err(|rule| InvalidValue::new(Self::FIELD, rule))
    }
}

impl TryFrom<&str> for PluginName {
    type Error = InvalidValue;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for PluginName {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for PluginName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for PluginName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PluginName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A database server engine, for customer databases and for the panel's own store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DbEngine {
    /// PostgreSQL.
    Postgres,
    /// Oracle MySQL.
    MySql,
    /// MariaDB (speaks the MySQL protocol; told apart by `SELECT VERSION()`).
    MariaDb,
}

named_enum!(DbEngine, "engine", "must be one of postgresql, mysql, mariadb", {
    Postgres => "postgresql", MySql => "mysql", MariaDb => "mariadb",
});

// ---------------------------------------------------------------------------------------------
// Identifiers: system users, database names, database users, slugs

/// The prefix PostgreSQL keeps for its own roles and schemas: no system user, database or
/// login name starts with it.
pub const RESERVED_PREFIX: &str = "pg_";

fn parse_identifier(
    field: &'static str,
    input: &str,
    max: usize,
    allow_dash: bool,
    reserved: &[&str],
) -> Result<String, InvalidValue> {
    let bad = |rule: String| InvalidValue::new(field, rule);
    if input.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if input.chars().count() > max {
        return Err(bad(format!("must be at most {max} characters")));
    }
    let mut chars = input.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return Err(bad("must start with a lower-case letter a-z".into()));
    }
    let allowed = if allow_dash {
        "a-z, 0-9, '_' and '-'"
    } else {
        "a-z, 0-9 and '_'"
    };
    if let Some(c) = input.chars().find(|&c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (allow_dash && c == '-'))
    }) {
        return Err(bad(format!("may only hold {allowed}, not {}", describe(c))));
    }
    if reserved.contains(&input) || input.starts_with(RESERVED_PREFIX) {
        return Err(bad(format!("'{input}' is reserved by the system")));
    }
    Ok(input.to_owned())
}

/// A Unix account a website's processes run as: `[a-z][a-z0-9_-]{0,31}`, not a system account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemUser(String);

const RESERVED_SYSTEM_USERS: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "nobody",
    "systemd-network",
    "messagebus",
    "sshd",
    "postgres",
    "mysql",
    "nginx",
    "apache",
    "redis",
    "admin",
];

fn parse_system_user(s: &str) -> Result<String, InvalidValue> {
    parse_identifier(
        SystemUser::FIELD,
        s,
        SystemUser::MAX_LEN,
        true,
        SystemUser::RESERVED,
    )
}
validated_string!(SystemUser, "system_user", parse_system_user);

impl SystemUser {
    /// The longest name (the `useradd` limit).
    pub const MAX_LEN: usize = 32;
    /// Names of system accounts, refused (as is any name starting with [`RESERVED_PREFIX`]).
    pub const RESERVED: &'static [&'static str] = RESERVED_SYSTEM_USERS;
}

/// A customer database name: `[a-z][a-z0-9_]{0,62}`, safe as an identifier on every engine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbName(String);

const RESERVED_DB_NAMES: &[&str] = &[
    "postgres",
    "template0",
    "template1",
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
];

fn parse_db_name(s: &str) -> Result<String, InvalidValue> {
    parse_identifier(DbName::FIELD, s, DbName::MAX_LEN, false, DbName::RESERVED)
}
validated_string!(DbName, "database_name", parse_db_name);

impl DbName {
    /// The longest name (PostgreSQL's identifier limit).
    pub const MAX_LEN: usize = 63;
    /// Names the engines keep for themselves, refused (as is any name starting with
    /// [`RESERVED_PREFIX`]).
    pub const RESERVED: &'static [&'static str] = RESERVED_DB_NAMES;
}

/// A customer database login: `[a-z][a-z0-9_]{0,31}` (MySQL's 32-character limit), not a
/// superuser name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbUserName(String);

const RESERVED_DB_USERS: &[&str] = &["root", "postgres", "mysql", "mariadb_sys", "public"];

fn parse_db_user(s: &str) -> Result<String, InvalidValue> {
    parse_identifier(
        DbUserName::FIELD,
        s,
        DbUserName::MAX_LEN,
        false,
        DbUserName::RESERVED,
    )
}
validated_string!(DbUserName, "database_user", parse_db_user);

impl DbUserName {
    /// The longest login (MySQL's limit).
    pub const MAX_LEN: usize = 32;
    /// Superuser and role names, refused (as is any name starting with [`RESERVED_PREFIX`]).
    pub const RESERVED: &'static [&'static str] = RESERVED_DB_USERS;
}

/// A URL-safe short name for a tenant: lower-case letters, digits and single inner dashes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slug(String);

fn parse_slug(s: &str) -> Result<String, InvalidValue> {
    let bad = |rule: String| InvalidValue::new(Slug::FIELD, rule);
    if s.is_empty() || s.len() > Slug::MAX_LEN {
        return Err(bad(format!("must be 1 to {} characters", Slug::MAX_LEN)));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(bad("may only hold a-z, 0-9 and '-'".into()));
    }
    if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return Err(bad("must not start or end with '-' or hold '--'".into()));
    }
    Ok(s.to_owned())
}
validated_string!(Slug, "slug", parse_slug);

impl Slug {
    /// The longest slug (a DNS label's length).
    pub const MAX_LEN: usize = 63;
}

/// A node's unique name: the same rules as a [`Slug`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

fn parse_node_name(s: &str) -> Result<String, InvalidValue> {
    parse_slug(s).map_err(|e| e.in_field(NodeName::FIELD))
}
validated_string!(NodeName, "node_name", parse_node_name);

/// A database character set or collation / locale name (`utf8mb4`, `utf8mb4_unicode_ci`,
/// `UTF8`, `en_US.UTF-8`): letters, digits, `_`, `.`, `-`, at most 64.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Charset(String);

fn parse_charset_like(field: &'static str, s: &str) -> Result<String, InvalidValue> {
    if s.is_empty() || s.len() > Charset::MAX_LEN {
        return Err(InvalidValue::new(
            field,
            format!("must be 1 to {} characters", Charset::MAX_LEN),
        ));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(InvalidValue::new(
            field,
            "may only hold letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(s.to_owned())
}

fn parse_charset(s: &str) -> Result<String, InvalidValue> {
    parse_charset_like(Charset::FIELD, s)
}
validated_string!(Charset, "charset", parse_charset);

impl Charset {
    /// The longest name (of a charset or a collation).
    pub const MAX_LEN: usize = 64;

    /// `engine`'s usual character set for a new database: `UTF8` on PostgreSQL, `utf8mb4` on
    /// MySQL and MariaDB.
    pub fn default_for(engine: DbEngine) -> Self {
        Self(
            match engine {
                DbEngine::Postgres => "UTF8",
                DbEngine::MySql | DbEngine::MariaDb => "utf8mb4",
            }
            .to_owned(),
        )
    }
}

impl Collation {
    /// `engine`'s usual collation for a new database: `C` on PostgreSQL (byte order, the same
    /// on every server), `utf8mb4_unicode_ci` on MySQL and MariaDB.
    pub fn default_for(engine: DbEngine) -> Self {
        Self(
            match engine {
                DbEngine::Postgres => "C",
                DbEngine::MySql | DbEngine::MariaDb => "utf8mb4_unicode_ci",
            }
            .to_owned(),
        )
    }
}

/// A database collation name; see [`Charset`] for the rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Collation(String);

fn parse_collation(s: &str) -> Result<String, InvalidValue> {
    parse_charset_like(Collation::FIELD, s)
}
validated_string!(Collation, "collation", parse_collation);

/// A PHP extension name (`intl`, `pdo_mysql`): `[a-z0-9_]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhpExtension(String);

fn parse_php_extension(s: &str) -> Result<String, InvalidValue> {
    if s.is_empty()
        || s.len() > PhpExtension::MAX_LEN
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(InvalidValue::new(
            PhpExtension::FIELD,
            "must be 1 to 32 characters of a-z, 0-9 and '_'",
        ));
    }
    Ok(s.to_owned())
}
validated_string!(PhpExtension, "php_extension", parse_php_extension);

impl PhpExtension {
    /// The longest extension name.
    pub const MAX_LEN: usize = 32;
}

// ---------------------------------------------------------------------------------------------
// Free text that must stay on one line

/// A human-readable name (tenant, alert rule): 1-200 characters, no control characters,
/// no surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DisplayName(String);

fn parse_display_name(s: &str) -> Result<String, InvalidValue> {
    let bad = |rule: String| InvalidValue::new(DisplayName::FIELD, rule);
    if s.is_empty() || s.chars().count() > DisplayName::MAX_CHARS {
        return Err(bad(format!(
            "must be 1 to {} characters",
            DisplayName::MAX_CHARS
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(bad("must not contain control characters or newlines".into()));
    }
    if s.trim() != s {
        return Err(bad("must not start or end with whitespace".into()));
    }
    Ok(s.to_owned())
}
validated_string!(DisplayName, "name", parse_display_name);

impl DisplayName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 200;
}

/// A value written into an ini-style config line (`php_admin_value[x] = VALUE`): a single line,
/// no control characters, at most 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IniValue(String);

fn parse_ini_value(s: &str) -> Result<String, InvalidValue> {
    if s.len() > 1024 {
        return Err(InvalidValue::new(
            IniValue::FIELD,
            "must be at most 1024 bytes",
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(InvalidValue::new(
            IniValue::FIELD,
            format!("must be a single line without {}", describe(c)),
        ));
    }
    Ok(s.to_owned())
}
validated_string!(IniValue, "ini_value", parse_ini_value);

/// An e-mail address, lower-cased: one `@`, a local part of letters, digits and `. _ + -` that
/// does not start with `-` (so it is never read as a command-line option), a valid
/// [`DomainName`], at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailAddress(String);

fn parse_email(s: &str) -> Result<String, InvalidValue> {
    let bad = |rule: String| InvalidValue::new(EmailAddress::FIELD, rule);
    let (local, domain) = s
        .rsplit_once('@')
        .ok_or_else(|| bad("must contain '@'".into()))?;
    if local.is_empty() || local.len() > EmailAddress::MAX_LOCAL_LEN {
        return Err(bad(format!(
            "the part before '@' must be 1 to {} characters",
            EmailAddress::MAX_LOCAL_LEN
        )));
    }
    if local.starts_with('-') {
        return Err(bad("the part before '@' must not start with '-'".into()));
    }
    if let Some(c) = local
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || EmailAddress::LOCAL_PUNCTUATION.contains(c)))
    {
        return Err(bad(format!(
            "the part before '@' may only hold letters, digits and . _ + -, not {}",
            describe(c)
        )));
    }
    let domain = parse_domain(domain).map_err(|e| bad(format!("its domain {}", e.rule)))?;
    // Lower-cased whole: nobody expects Bob@ and bob@ to be two logins.
    let email = format!("{}@{domain}", local.to_ascii_lowercase());
    if email.len() > EmailAddress::MAX_LEN {
        return Err(bad(format!(
            "must be at most {} characters",
            EmailAddress::MAX_LEN
        )));
    }
    Ok(email)
}
validated_string!(EmailAddress, "email", parse_email);

impl EmailAddress {
    /// The longest address (RFC 5321's path limit less the angle brackets).
    pub const MAX_LEN: usize = 254;
    /// The longest part before `@`.
    pub const MAX_LOCAL_LEN: usize = 64;
    /// What the part before `@` may hold besides ASCII letters and digits.
    pub const LOCAL_PUNCTUATION: &'static str = "._+-";
}

/// A `http://` or `https://` URL a webhook is sent to: only characters RFC 3986 allows,
/// at most 2048 bytes, with a host and no credentials.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WebhookUrl(String);

fn parse_webhook_url(s: &str) -> Result<String, InvalidValue> {
    let bad = |rule: &'static str| InvalidValue::new(WebhookUrl::FIELD, rule);
    if s.len() > 2048 {
        return Err(bad("must be at most 2048 bytes"));
    }
    let rfc3986 = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
    if !s.chars().all(rfc3986) {
        return Err(bad(
            "may only hold the characters RFC 3986 allows (percent-encode the rest)",
        ));
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(bad("must name a host and carry no credentials"));
    }
    Ok(s.to_owned())
}
validated_string!(WebhookUrl, "webhook_url", parse_webhook_url);

// ---------------------------------------------------------------------------------------------
// Password

/// A secret. `Debug` prints `Password(***)`, there is no `Display` and no `Serialize`, so it
/// cannot reach a log or a response by accident; [`Password::expose`] is the one way out.
///
/// Rule: 8 to 256 characters, no control characters. Quotes, backslashes and semicolons are
/// allowed: backends bind or escape them.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The field name used in errors.
    pub const FIELD: &'static str = "password";
    /// The shortest password, in characters.
    pub const MIN_CHARS: usize = 8;
    /// The longest password, in characters.
    pub const MAX_CHARS: usize = 256;

    /// The secret itself, for the one place that must send it (a bind parameter, a hash).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl FromStr for Password {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let len = s.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&len) {
            return Err(InvalidValue::new(
                Self::FIELD,
                format!(
                    "must be {} to {} characters",
                    Self::MIN_CHARS,
                    Self::MAX_CHARS
                ),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                Self::FIELD,
                "must not contain control characters or newlines",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Password {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// ConfinedPath

/// A relative path that stays under whatever root it is joined to: no absolute paths, no `..`,
/// no `.`, no empty components, components of letters, digits, `.`, `_` and `-` only (it is
/// written into server configs), at most 1024 bytes.
///
/// The check is lexical (hosting-core performs no IO); code that opens the resolved path must
/// still refuse to follow symlinks out of the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfinedPath(String);

fn parse_confined_path(s: &str) -> Result<String, InvalidValue> {
    let bad = |rule: &'static str| InvalidValue::new(ConfinedPath::FIELD, rule);
    if s.is_empty() || s.len() > ConfinedPath::MAX_LEN {
        return Err(bad("must be 1 to 1024 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    if s.starts_with('/') || s.starts_with('\\') {
        return Err(bad("must be relative (no leading '/')"));
    }
    if s.contains('\\') {
        return Err(bad("must use '/' as separator, not '\\'"));
    }
    for part in s.split('/') {
        match part {
            "" => {
                return Err(bad(
                    "must not contain empty components ('//' or a trailing '/')",
                ));
            }
            "." | ".." => return Err(bad("must not contain '.' or '..' components")),
            _ if !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
            {
                return Err(bad(
                    "components may only hold letters, digits, '.', '_' and '-' (the path is written into server configs)",
                ));
            }
            _ => {}
        }
    }
    // Belt and braces: the platform's own parser must agree that every component is normal.
    if !Path::new(s)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad("must only contain normal path components"));
    }
    Ok(s.to_owned())
}
validated_string!(ConfinedPath, "path", parse_confined_path);

impl ConfinedPath {
    /// The longest path, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// `root` joined with this path; lexically always inside `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers with units

/// A byte size in PHP's shorthand (`512K`, `256M`, `2G`, or plain bytes), kept as bytes.
/// Displays in the largest exact unit, so it round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhpBytes(u64);

impl PhpBytes {
    /// The field name used in errors.
    pub const FIELD: &'static str = "size";
    /// The largest size, 1 TiB.
    pub const MAX: u64 = 1 << 40;

    /// A size of exactly `bytes` (at most 1 TiB).
    pub fn from_bytes(bytes: u64) -> Result<Self, InvalidValue> {
        if bytes == 0 || bytes > Self::MAX {
            return Err(InvalidValue::new(
                Self::FIELD,
                "must be between 1 byte and 1T",
            ));
        }
        Ok(Self(bytes))
    }

    /// `n` mebibytes; infallible because 1..=65535 MiB is always in range.
    pub const fn from_mib(n: std::num::NonZeroU16) -> Self {
        Self((n.get() as u64) << 20)
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for PhpBytes {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            InvalidValue::new(
                Self::FIELD,
                "must be a whole number with an optional K, M, G or T suffix (e.g. 256M)",
            )
        };
        let (digits, shift) = match s.as_bytes().last() {
            Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
            Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
            Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
            Some(b'T' | b't') => (&s[..s.len() - 1], 40),
            _ => (s, 0),
        };
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        Self::from_bytes(n.checked_mul(1 << shift).ok_or_else(bad)?)
    }
}

impl fmt::Display for PhpBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
            if self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for PhpBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PhpBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// IP networks

/// An IPv4 or IPv6 address or CIDR block for allow/deny lists. Host bits must be zero, so each
/// network has one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The field name used in errors.
    pub const FIELD: &'static str = "ip";

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length (32 or 128 for a single address).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn max_prefix(addr: IpAddr) -> u8 {
        if addr.is_ipv4() { 32 } else { 128 }
    }
}

impl FromStr for IpNetwork {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |rule: &'static str| InvalidValue::new(Self::FIELD, rule);
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("must be an IPv4 or IPv6 address, optionally with /prefix"))?;
        let max = Self::max_prefix(addr);
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad("prefix length is out of range"))?,
            Some(_) => return Err(bad("prefix length must be a number")),
        };
        let host_bits_zero = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(a) & !mask == 0
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(a) & !mask == 0
            }
        };
        if !host_bits_zero {
            return Err(bad("host bits must be zero for the given prefix"));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == Self::max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl Serialize for IpNetwork {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A node's address: `host` or `host:port`, the host a [`DomainName`] or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeAddress(String);

fn parse_node_address(s: &str) -> Result<String, InvalidValue> {
    let bad = |rule: &'static str| InvalidValue::new(NodeAddress::FIELD, rule);
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Ok(addr.to_string());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host = parse_domain(host)
        .map_err(|_| bad("must be a host name or IP address, optionally with :port"))?;
    match port {
        None => Ok(host),
        Some(p) => {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("port must be 1 to 65535"))?;
            Ok(format!("{host}:{port}"))
        }
    }
}
validated_string!(NodeAddress, "address", parse_node_address);

// ---------------------------------------------------------------------------------------------
// Extra server directives

/// A web-server directive name (`client_max_body_size`, `Header`, `LimitRequestBody`):
/// a letter, then letters, digits and `_`, at most 64.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirectiveName(String);

fn parse_directive_name(s: &str) -> Result<String, InvalidValue> {
    let ok = s.len() <= DirectiveName::MAX_LEN
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(InvalidValue::new(
            DirectiveName::FIELD,
            "must be a letter followed by letters, digits or '_', at most 64",
        ))
    }
}
validated_string!(DirectiveName, "directive", parse_directive_name);

impl DirectiveName {
    /// The longest name.
    pub const MAX_LEN: usize = 64;
}

/// One argument of a directive: 1-256 characters of letters, digits and `. _ : / = + , @ * -`.
/// No whitespace, quotes, `;`, braces, `$`, `#` or backslash, so it can neither end the line,
/// open a block nor reference a variable in any server's syntax.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirectiveArg(String);

fn parse_directive_arg(s: &str) -> Result<String, InvalidValue> {
    let ok = !s.is_empty()
        && s.len() <= DirectiveArg::MAX_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || DirectiveArg::PUNCTUATION.contains(c));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(InvalidValue::new(
            DirectiveArg::FIELD,
            "must be 1 to 256 characters of letters, digits and . _ : / = + , @ * -",
        ))
    }
}
validated_string!(DirectiveArg, "directive_argument", parse_directive_arg);

impl DirectiveArg {
    /// The longest argument.
    pub const MAX_LEN: usize = 256;
    /// What an argument may hold besides ASCII letters and digits: nothing that ends a line,
    /// opens a block, quotes or references a variable in any server's syntax.
    pub const PUNCTUATION: &'static str = "._:/=+,@*-";
}
