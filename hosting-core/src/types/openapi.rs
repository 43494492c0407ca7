//! OpenAPI schemas (utoipa) of the validated newtypes, behind the `openapi` feature.
//!
//! A schema states the rule its type's parser enforces, built from the same associated
//! constants (lengths, reserved names, allowed punctuation), so a client generated from the
//! document sends only what the server accepts. Where JSON Schema cannot say a rule exactly
//! (IDN domains, host bits of a network, sizes with units), the schema is the closest one that
//! admits nothing the parser refuses, and its description says what else the server takes.
//! The tests below hold every pattern against its parser.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

use super::{
    Charset, Collation, ConfinedPath, DbEngine, DbName, DbUserName, DirectiveArg, DirectiveName,
    DisplayName, DomainName, EmailAddress, IpNetwork, NodeAddress, NodeName, Password, PhpBytes,
    PhpExtension, PhpVersion, PluginName, RESERVED_PREFIX, Slug, SystemUser, WebServerKind,
};

/// Control characters as Rust's `char::is_control` sees them (Unicode `Cc`), as a class body.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";

/// The white space `str::trim` removes that is not a control character, as a class body.
const SPACE: &str = r"\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// `chars` escaped for use inside a character class (ECMA-262 and Python read it alike).
fn class(chars: &str) -> String {
    chars
        .chars()
        .map(|c| match c {
            '-' | ']' | '[' | '\\' | '^' => format!("\\{c}"),
            c => c.to_string(),
        })
        .collect()
}

/// `(?!(?:a|b|c)$)(?!prefix)`: refuses the reserved names and the reserved prefix.
fn not_reserved(reserved: &[&str]) -> String {
    format!("(?!(?:{})$)(?!{RESERVED_PREFIX})", reserved.join("|"))
}

/// One DNS label as [`DomainName`] accepts it before lower-casing.
fn label() -> String {
    format!(
        "[A-Za-z0-9](?:[A-Za-z0-9-]{{0,{}}}[A-Za-z0-9])?",
        DomainName::MAX_LABEL_LEN - 2
    )
}

/// An ASCII domain name: two labels or more, a top-level label not all digits (no anchors).
/// `after` is what may follow the name (`$`, or a port), so the top-level check sees where the
/// label ends.
fn domain_body(after: &str) -> String {
    let label = label();
    format!(r"(?:{label}\.)+(?![0-9]+{after}){label}")
}

/// An IPv4 address as `std::net::Ipv4Addr` parses it (no leading zeros; no anchors).
fn ipv4() -> String {
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    format!(r"{octet}(?:\.{octet}){{3}}")
}

/// A TCP port 1 to 65535 without leading zeros (no anchors).
const PORT: &str =
    "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// A string schema.
struct Text {
    pattern: String,
    min: usize,
    max: usize,
    description: String,
    example: &'static str,
    format: Option<KnownFormat>,
}

impl Text {
    fn schema(self) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(self.pattern))
            .min_length(Some(self.min))
            .max_length(Some(self.max))
            .format(self.format.map(SchemaFormat::KnownFormat))
            .description(Some(self.description))
            .examples([self.example])
            .into()
    }
}

/// An enumeration of fixed strings.
fn one_of(names: impl IntoIterator<Item = String>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(description))
        .into()
}

/// Implements `ToSchema` (named after the type) for types whose `PartialSchema` is above.
macro_rules! named {
    ($($ty:ident),+ $(,)?) => {
        $(
            impl ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($ty))
                }
            }
        )+
    };
}

named!(
    DomainName,
    EmailAddress,
    Password,
    DisplayName,
    Slug,
    NodeName,
    SystemUser,
    DbName,
    DbUserName,
    Charset,
    Collation,
    PhpExtension,
    ConfinedPath,
    DirectiveName,
    DirectiveArg,
    WebServerKind,
    PluginName,
    PhpVersion,
    DbEngine,
    PhpBytes,
    IpNetwork,
    NodeAddress,
);

impl PartialSchema for DomainName {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: format!("^{}$", domain_body("$")),
            min: 3,
            max: DomainName::MAX_LEN,
            description: format!(
                "A host name: two labels or more of letters, digits and '-' (1 to {} each, not \
                 starting or ending with '-'), the last not all digits, at most {} characters; \
                 stored lower-case. The server also accepts an internationalised name (IDN) and \
                 stores it as punycode; this schema admits only the ASCII (xn--) spelling.",
                DomainName::MAX_LABEL_LEN,
                DomainName::MAX_LEN
            ),
            example: "shop.example.com",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for EmailAddress {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: format!(
                "^(?!-)[A-Za-z0-9{}]{{1,{}}}@{}$",
                class(EmailAddress::LOCAL_PUNCTUATION),
                EmailAddress::MAX_LOCAL_LEN,
                domain_body("$")
            ),
            // `a@b.c`: one character, '@' and the shortest host name.
            min: 5,
            max: EmailAddress::MAX_LEN,
            description: format!(
                "An e-mail address, stored lower-case: 1 to {} letters, digits and {} before \
                 '@' (not starting with '-'), a host name after it (see DomainName), at most {} \
                 characters. The server also accepts an IDN host; this schema admits only its \
                 ASCII (xn--) spelling.",
                EmailAddress::MAX_LOCAL_LEN,
                EmailAddress::LOCAL_PUNCTUATION,
                EmailAddress::MAX_LEN
            ),
            example: "jo@example.com",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for Password {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: format!("^[^{CONTROL}]*$"),
            min: Password::MIN_CHARS,
            max: Password::MAX_CHARS,
            description: format!(
                "{} to {} characters, no control characters (quotes, backslashes and ';' are \
                 fine).",
                Password::MIN_CHARS,
                Password::MAX_CHARS
            ),
            example: "correct horse battery",
            format: Some(KnownFormat::Password),
        }
        .schema()
    }
}

impl PartialSchema for DisplayName {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: format!("^(?![{SPACE}])(?![^{CONTROL}]*[{SPACE}]$)[^{CONTROL}]+$"),
            min: 1,
            max: DisplayName::MAX_CHARS,
            description: format!(
                "1 to {} characters, no control characters, no white space at either end.",
                DisplayName::MAX_CHARS
            ),
            example: "Acme Ltd",
            format: None,
        }
        .schema()
    }
}

/// The rule [`Slug`] and [`NodeName`] share.
fn slug(example: &'static str) -> RefOr<Schema> {
    Text {
        pattern: "^[a-z0-9]+(?:-[a-z0-9]+)*$".to_owned(),
        min: 1,
        max: Slug::MAX_LEN,
        description: format!(
            "1 to {} of a-z, 0-9 and '-', not starting or ending with '-', no '--'.",
            Slug::MAX_LEN
        ),
        example,
        format: None,
    }
    .schema()
}

impl PartialSchema for Slug {
    fn schema() -> RefOr<Schema> {
        slug("acme")
    }
}

impl PartialSchema for NodeName {
    fn schema() -> RefOr<Schema> {
        slug("web-2")
    }
}

/// The rule of the identifiers (system users, database names and logins).
fn identifier(
    max: usize,
    dash: bool,
    reserved: &[&str],
    what: &str,
    example: &'static str,
) -> RefOr<Schema> {
    let (chars, allowed) = if dash {
        ("a-z0-9_\\-", "a-z, 0-9, '_' and '-'")
    } else {
        ("a-z0-9_", "a-z, 0-9 and '_'")
    };
    Text {
        pattern: format!(
            "^{}[a-z][{chars}]{{0,{}}}$",
            not_reserved(reserved),
            max - 1
        ),
        min: 1,
        max,
        description: format!(
            "{what}: a lower-case letter, then {allowed}, at most {max}; not one of {} and not \
             starting with '{RESERVED_PREFIX}'.",
            reserved.join(", ")
        ),
        example,
        format: None,
    }
    .schema()
}

impl PartialSchema for SystemUser {
    fn schema() -> RefOr<Schema> {
        identifier(
            SystemUser::MAX_LEN,
            true,
            SystemUser::RESERVED,
            "A Unix account",
            "shop1",
        )
    }
}

impl PartialSchema for DbName {
    fn schema() -> RefOr<Schema> {
        identifier(
            DbName::MAX_LEN,
            false,
            DbName::RESERVED,
            "A database name",
            "shop_db",
        )
    }
}

impl PartialSchema for DbUserName {
    fn schema() -> RefOr<Schema> {
        identifier(
            DbUserName::MAX_LEN,
            false,
            DbUserName::RESERVED,
            "A database login",
            "shop_user",
        )
    }
}

/// The rule [`Charset`] and [`Collation`] share.
fn charset_like(what: &str, example: &'static str) -> RefOr<Schema> {
    Text {
        pattern: "^[A-Za-z0-9_.\\-]+$".to_owned(),
        min: 1,
        max: Charset::MAX_LEN,
        description: format!(
            "{what}: 1 to {} letters, digits, '_', '.' and '-'.",
            Charset::MAX_LEN
        ),
        example,
        format: None,
    }
    .schema()
}

impl PartialSchema for Charset {
    fn schema() -> RefOr<Schema> {
        charset_like("A character set", "utf8mb4")
    }
}

impl PartialSchema for Collation {
    fn schema() -> RefOr<Schema> {
        charset_like("A collation", "utf8mb4_unicode_ci")
    }
}

impl PartialSchema for PhpExtension {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: "^[a-z0-9_]+$".to_owned(),
            min: 1,
            max: PhpExtension::MAX_LEN,
            description: format!(
                "A PHP extension: 1 to {} of a-z, 0-9 and '_'.",
                PhpExtension::MAX_LEN
            ),
            example: "intl",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for ConfinedPath {
    fn schema() -> RefOr<Schema> {
        let part = "[A-Za-z0-9._\\-]+";
        Text {
            pattern: format!(r"^(?!\.\.?(?:/|$))(?!.*/\.\.?(?:/|$)){part}(?:/{part})*$"),
            min: 1,
            max: ConfinedPath::MAX_LEN,
            description: format!(
                "A relative path: components of letters, digits, '.', '_' and '-' joined by \
                 '/', none of them '.' or '..', no leading or trailing '/', at most {} \
                 characters.",
                ConfinedPath::MAX_LEN
            ),
            example: "public",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for DirectiveName {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: "^[A-Za-z][A-Za-z0-9_]*$".to_owned(),
            min: 1,
            max: DirectiveName::MAX_LEN,
            description: format!(
                "A directive: a letter, then letters, digits and '_', at most {}.",
                DirectiveName::MAX_LEN
            ),
            example: "client_max_body_size",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for DirectiveArg {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: format!("^[A-Za-z0-9{}]+$", class(DirectiveArg::PUNCTUATION)),
            min: 1,
            max: DirectiveArg::MAX_LEN,
            description: format!(
                "A directive argument: 1 to {} letters, digits and {}.",
                DirectiveArg::MAX_LEN,
                DirectiveArg::PUNCTUATION
            ),
            example: "64m",
            format: None,
        }
        .schema()
    }
}

/// A plugin's name, built-in names included.
fn server_name() -> String {
    format!(
        "[a-z](?:[a-z0-9-]{{0,{}}}[a-z0-9])?",
        PluginName::MAX_LEN - 2
    )
}

impl PartialSchema for WebServerKind {
    fn schema() -> RefOr<Schema> {
        let built_in: Vec<_> = WebServerKind::BUILT_IN.iter().map(|(n, _)| *n).collect();
        Text {
            pattern: format!("^{}$", server_name()),
            min: 1,
            max: PluginName::MAX_LEN,
            description: format!(
                "A web server: {} or a plugin's name (a lower-case letter, then lower-case \
                 letters, digits and '-', at most {}, not ending in '-'). The node must run it.",
                built_in.join(", "),
                PluginName::MAX_LEN
            ),
            example: "nginx",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for PluginName {
    fn schema() -> RefOr<Schema> {
        let built_in: Vec<_> = WebServerKind::BUILT_IN.iter().map(|(n, _)| *n).collect();
        Text {
            pattern: format!("^(?!(?:{})$){}$", built_in.join("|"), server_name()),
            min: 1,
            max: PluginName::MAX_LEN,
            description: format!(
                "A plugin's web server: a lower-case letter, then lower-case letters, digits \
                 and '-', at most {}, not ending in '-', not {}.",
                PluginName::MAX_LEN,
                built_in.join(", ")
            ),
            example: "caddy",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for PhpVersion {
    fn schema() -> RefOr<Schema> {
        one_of(
            PhpVersion::ALL.iter().map(|v| v.as_str().to_owned()),
            "A supported PHP version.",
        )
    }
}

impl PartialSchema for DbEngine {
    fn schema() -> RefOr<Schema> {
        one_of(
            [DbEngine::Postgres, DbEngine::MySql, DbEngine::MariaDb]
                .iter()
                .map(ToString::to_string),
            "A database engine.",
        )
    }
}

/// `[1-9][0-9]{0,n}`: whole numbers with fewer digits than `max`, so never above it.
fn at_most(max: u64) -> String {
    if max < 10 {
        format!("[1-{max}]")
    } else {
        format!("[1-9][0-9]{{0,{}}}", max.to_string().len() - 2)
    }
}

impl PartialSchema for PhpBytes {
    fn schema() -> RefOr<Schema> {
        let units = [
            (0, ""),
            (10, "[Kk]"),
            (20, "[Mm]"),
            (30, "[Gg]"),
            (40, "[Tt]"),
        ];
        let sizes: Vec<_> = units
            .iter()
            .map(|(shift, unit)| format!("{}{unit}", at_most(PhpBytes::MAX >> shift)))
            .collect();
        Text {
            pattern: format!("^(?:{})$", sizes.join("|")),
            min: 1,
            max: 13,
            description: "A size in PHP's shorthand: bytes, or a whole number with K, M, G or T, \
                          from 1 byte to 1T (e.g. 256M). The server also accepts leading zeros \
                          and any spelling of a size up to 1T (1024G); this schema admits only \
                          numbers with fewer digits than the limit of their unit."
                .to_owned(),
            example: "256M",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for IpNetwork {
    fn schema() -> RefOr<Schema> {
        let ip = ipv4();
        let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
        Text {
            pattern: format!(
                r"^(?:{ip}(?:/32)?|{octet}\.0\.0\.0/8|{octet}\.{octet}\.0\.0/16|{octet}\.{octet}\.{octet}\.0/24|0\.0\.0\.0/0)$"
            ),
            min: 7,
            max: 18,
            description: "An IPv4 address, or a network whose host bits are zero. The server \
                          also accepts IPv6 and any prefix length (2001:db8::/32, 10.0.0.0/12); \
                          this schema admits IPv4 with /8, /16, /24, /32 or 0.0.0.0/0."
                .to_owned(),
            example: "10.0.0.0/8",
            format: None,
        }
        .schema()
    }
}

impl PartialSchema for NodeAddress {
    fn schema() -> RefOr<Schema> {
        Text {
            pattern: format!("^(?:{}|{})(?::{PORT})?$", domain_body("(?::|$)"), ipv4()),
            min: 3,
            max: DomainName::MAX_LEN + 6,
            description: "A host name or IPv4 address, with an optional :port (1 to 65535). The \
                          server also accepts IPv6 ([2001:db8::1]:8443); this schema does not."
                .to_owned(),
            example: "10.0.0.12:8443",
            format: None,
        }
        .schema()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::str::FromStr;

    use proptest::prelude::*;

    use super::*;

    /// Whether `value` passes `T`'s schema: its pattern (ECMA-262, as JSON Schema reads it),
    /// its lengths in characters and its enumeration.
    fn admits<T: PartialSchema>(value: &str) -> bool {
        let RefOr::T(Schema::Object(o)) = T::schema() else {
            panic!("not an object schema")
        };
        let len = value.chars().count();
        if o.min_length.is_some_and(|min| len < min) || o.max_length.is_some_and(|max| len > max) {
            return false;
        }
        if let Some(values) = &o.enum_values {
            return values.iter().any(|v| v.as_str() == Some(value));
        }
        let pattern = o.pattern.expect("a pattern");
        regress::Regex::new(&pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .find(value)
            .is_some()
    }

    fn parses<T: FromStr>(value: &str) -> bool {
        value.parse::<T>().is_ok()
    }

    /// The schema admits exactly what the parser accepts.
    fn exact<T: PartialSchema + FromStr>(value: &str) {
        assert_eq!(
            admits::<T>(value),
            parses::<T>(value),
            "{} on {value:?}",
            std::any::type_name::<T>()
        );
    }

    /// The schema admits nothing the parser refuses.
    fn safe<T: PartialSchema + FromStr>(value: &str) {
        assert!(
            !admits::<T>(value) || parses::<T>(value),
            "{} admits {value:?}, which the parser refuses",
            std::any::type_name::<T>()
        );
    }

    /// Values the parsers refuse and accept, checked against every schema.
    const SAMPLES: &[&str] = &[
        "",
        "a",
        "ab",
        "example.com",
        "EXAMPLE.com",
        "a.b",
        "a..b",
        ".a.b",
        "a.b.",
        "-a.b",
        "a-.b",
        "a.1",
        "1.2.3.4",
        "a.b1",
        "xn--bcher-kva.de",
        "a b.com",
        "a;b.com",
        "jo@example.com",
        "u@h.h",
        "u@h.",
        "-jo@example.com",
        "Jo.Doe+x@Example.COM",
        "jo@@example.com",
        "jo@example",
        "@example.com",
        "root",
        "pg_x",
        "www-data",
        "shop1",
        "shop-1",
        "Shop",
        "1shop",
        "shop_",
        "nginx",
        "caddy",
        "caddy-",
        "8.2",
        "8.5",
        "postgresql",
        "public",
        "public/a",
        "./a",
        "a/.",
        "a/../b",
        "..",
        "/a",
        "a//b",
        "a/b/",
        "a.b/c.d",
        "256M",
        "256m",
        "1T",
        "2T",
        "0",
        "0256M",
        "1024G",
        "10.0.0.0/8",
        "10.0.0.1/8",
        "10.0.0.1",
        "0.0.0.0/0",
        "01.2.3.4",
        "::1",
        "web-2",
        "web--2",
        "web-2:8443",
        "web-2.example.com:8443",
        "10.0.0.12:8443",
        "10.0.0.12:0",
        "a.b:65536",
        "password",
        "pass\u{7f}word",
        "pass\nword",
        "pässwörd!",
        " Acme",
        "Acme ",
        "Acme\u{a0}",
        "Acme\u{feff}",
        "Ac me",
        "client_max_body_size",
        "_x",
        "64m",
        "a$b",
        "x{y}",
        "utf8mb4_unicode_ci",
        "en_US.UTF-8",
        "pdo_mysql",
    ];

    #[test]
    fn samples() {
        for value in SAMPLES {
            exact::<EmailAddress>(value);
            exact::<Password>(value);
            exact::<DisplayName>(value);
            exact::<Slug>(value);
            exact::<NodeName>(value);
            exact::<SystemUser>(value);
            exact::<DbName>(value);
            exact::<DbUserName>(value);
            exact::<Charset>(value);
            exact::<Collation>(value);
            exact::<PhpExtension>(value);
            exact::<ConfinedPath>(value);
            exact::<DirectiveName>(value);
            exact::<DirectiveArg>(value);
            exact::<WebServerKind>(value);
            exact::<PluginName>(value);
            exact::<PhpVersion>(value);
            exact::<DbEngine>(value);
            if value.is_ascii() {
                exact::<DomainName>(value);
            } else {
                safe::<DomainName>(value);
            }
            safe::<PhpBytes>(value);
            safe::<IpNetwork>(value);
            safe::<NodeAddress>(value);
        }
        // The closest safe schemas still admit the common spellings.
        for (ok, value) in [
            (admits::<PhpBytes>("256M"), "256M"),
            (admits::<PhpBytes>("1T"), "1T"),
            (admits::<IpNetwork>("10.0.0.0/8"), "10.0.0.0/8"),
            (admits::<NodeAddress>("10.0.0.12:8443"), "10.0.0.12:8443"),
            (
                admits::<NodeAddress>("web-2.example.com"),
                "web-2.example.com",
            ),
            (admits::<DomainName>("xn--bcher-kva.de"), "xn--bcher-kva.de"),
        ] {
            assert!(ok, "{value}");
        }
        assert!(!admits::<DomainName>("bücher.de") && parses::<DomainName>("bücher.de"));
    }

    /// Strings mixing what the rules allow with what they refuse.
    fn text(alphabet: &str, max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(alphabet.chars().collect::<Vec<_>>()),
            0..max,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    const ASCII_MIX: &str = "abcxyzABZ0189._-+@:/=,*;$ {}'\"\\\n\t";
    const UNICODE_MIX: &str = "aZ9 .-\u{a0}\u{2028}\u{3000}\u{feff}\u{85}\u{7f}\u{1f}\n\tü😀";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn identifiers_agree(value in text(ASCII_MIX, 12)) {
            exact::<Slug>(&value);
            exact::<NodeName>(&value);
            exact::<SystemUser>(&value);
            exact::<DbName>(&value);
            exact::<DbUserName>(&value);
            exact::<Charset>(&value);
            exact::<PhpExtension>(&value);
            exact::<DirectiveName>(&value);
            exact::<DirectiveArg>(&value);
            exact::<WebServerKind>(&value);
            exact::<PluginName>(&value);
            exact::<ConfinedPath>(&value);
            safe::<PhpBytes>(&value);
        }

        #[test]
        fn names_agree(value in "[a-zA-Z0-9-]{0,4}(\\.[a-zA-Z0-9-]{0,4}){0,3}(:[0-9]{1,6})?") {
            exact::<DomainName>(&value);
            exact::<EmailAddress>(&format!("jo@{value}"));
            exact::<EmailAddress>(&format!("{value}@example.com"));
            safe::<NodeAddress>(&value);
            safe::<IpNetwork>(&value);
        }

        #[test]
        fn addresses_are_safe(value in "[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,2}|:[0-9]{1,5})?") {
            safe::<IpNetwork>(&value);
            safe::<NodeAddress>(&value);
        }

        #[test]
        fn sizes_are_safe(value in "[0-9]{1,14}[KkMmGgTtx]?") {
            safe::<PhpBytes>(&value);
        }

        #[test]
        fn free_text_agrees(value in text(UNICODE_MIX, 12)) {
            exact::<Password>(&value);
            exact::<DisplayName>(&value);
        }

        #[test]
        fn lengths_agree(c in "[a-z ü]", n in 0usize..300) {
            let value = format!("a{}", c.repeat(n));
            exact::<Password>(&value);
            exact::<DisplayName>(&value);
            exact::<SystemUser>(&value);
            exact::<DbName>(&value);
            exact::<Slug>(&value);
            exact::<DirectiveArg>(&value);
            exact::<ConfinedPath>(&value);
        }
    }
}
