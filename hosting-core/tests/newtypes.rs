//! Every validated newtype: what parses re-serializes to itself, nothing holding a forbidden
//! character parses, and arbitrary input never panics.
#![allow(clippy::expect_used)] // property helpers fail the test by panicking

use std::fmt::Debug;
use std::str::FromStr;

use hosting_core::model::{PhpSettings, Threshold, WebsiteSettings};
use hosting_core::page::PageLimit;
use hosting_core::types::{
    Charset, Collation, ConfinedPath, DbEngine, DbName, DbUserName, DirectiveArg, DirectiveName,
    DisplayName, DomainName, EmailAddress, IniValue, IpNetwork, NodeAddress, NodeName, Password,
    PhpBytes, PhpExtension, PhpVersion, PluginName, Slug, SystemUser, WebServerKind, WebhookUrl,
};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parsing `raw` must not panic; when it succeeds, Display parses back to the same value and a
/// JSON round trip gives the same value.
fn round_trips<T>(raw: &str)
where
    T: FromStr + Debug + PartialEq + ToString + Serialize + DeserializeOwned,
    T::Err: Debug,
{
    if let Ok(v) = raw.parse::<T>() {
        let shown = v.to_string();
        assert_eq!(shown.parse::<T>().expect("display re-parses"), v);
        let json = serde_json::to_string(&v).expect("serializes");
        assert_eq!(serde_json::from_str::<T>(&json).expect("deserializes"), v);
    }
}

/// JSON input must not panic, and what deserializes equals what parses.
fn json_agrees_with_parse<T>(raw: &str)
where
    T: FromStr + Debug + PartialEq + DeserializeOwned,
{
    let via_json = serde_json::from_value::<T>(serde_json::Value::String(raw.to_owned())).ok();
    assert_eq!(via_json, raw.parse::<T>().ok(), "{raw:?}");
}

macro_rules! string_type_props {
    ($($name:ident: $ty:ty, $valid:expr;)+) => {
        $(
            mod $name {
                use super::*;
                proptest! {
                    #[test]
                    fn arbitrary_text_never_panics_and_round_trips(raw in any::<String>()) {
                        round_trips::<$ty>(&raw);
                        json_agrees_with_parse::<$ty>(&raw);
                    }

                    #[test]
                    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                        let raw = String::from_utf8_lossy(&bytes);
                        round_trips::<$ty>(&raw);
                        let _ = serde_json::from_slice::<$ty>(&bytes);
                    }

                    #[test]
                    fn well_formed_values_round_trip(raw in $valid) {
                        let v: $ty = raw.parse().expect("generated value is valid");
                        round_trips::<$ty>(&v.to_string());
                    }

                    #[test]
                    fn forbidden_characters_never_parse(
                        raw in $valid,
                        at in any::<prop::sample::Index>(),
                        bad in prop::sample::select(vec![';', '$', '`', '|', '%', '{', '}', '\n', '\r', ' ', '\'', '"', '\\', '\0']),
                    ) {
                        let mut chars: Vec<char> = raw.chars().collect();
                        chars.insert(at.index(chars.len() + 1), bad);
                        let hostile: String = chars.into_iter().collect();
                        prop_assert!(hostile.parse::<$ty>().is_err(), "{:?} parsed", hostile);
                    }
                }
            }
        )+
    };
}

string_type_props! {
    domain_name: DomainName, "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,12}){0,3}\\.[a-z]{2,8}";
    system_user: SystemUser, "[a-oq-z][a-z0-9_-]{0,20}[0-9]";
    db_name: DbName, "[a-oq-z][a-z0-9_]{0,40}[0-9]";
    db_user_name: DbUserName, "[a-oq-z][a-z0-9_]{0,20}[0-9]";
    slug: Slug, "[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,3}";
    node_name: NodeName, "[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,3}";
    charset: Charset, "[A-Za-z0-9_.-]{1,64}";
    collation: Collation, "[A-Za-z0-9_.-]{1,64}";
    php_extension: PhpExtension, "[a-z0-9_]{1,32}";
    email: EmailAddress, "[a-z0-9_][a-z0-9._+-]{0,19}@[a-z0-9]{1,10}\\.[a-z]{2,6}";
    confined_path: ConfinedPath, "[a-z0-9_][a-z0-9_.-]{0,10}(/[a-z0-9_][a-z0-9_-]{0,10}){0,4}";
    php_bytes: PhpBytes, "[1-9][0-9]{0,5}[KM]?|[1-9][0-9]{0,2}G";
    ip_network: IpNetwork, "([1-9][0-9]?\\.){3}[1-9][0-9]?";
    directive_name: DirectiveName, "[a-zA-Z][a-zA-Z0-9_]{0,30}";
    directive_arg: DirectiveArg, "[A-Za-z0-9._:/=+,@*-]{1,50}";
    node_address: NodeAddress, "[a-z]{1,10}\\.[a-z]{2,6}(:[1-9][0-9]{0,3})?";
    // Ends in a digit, so it never generates a built-in server's name.
    plugin_name: PluginName, "[a-z]([a-z0-9-]{0,30}[0-9])?";
}

/// Types whose rules allow some of the usual breakout characters, each tested on its own rule.
mod free_text {
    use super::*;

    proptest! {
        #[test]
        fn display_name_round_trips(raw in any::<String>()) {
            round_trips::<DisplayName>(&raw);
            json_agrees_with_parse::<DisplayName>(&raw);
        }

        #[test]
        fn display_name_refuses_control_characters(a in "[a-zA-Z ]{0,10}", c in "[\\x00-\\x1f\\x7f]", b in "[a-zA-Z]{1,10}") {
            let raw = format!("x{a}{c}{b}");
            prop_assert!(raw.parse::<DisplayName>().is_err());
        }

        #[test]
        fn ini_value_round_trips(raw in any::<String>()) {
            round_trips::<IniValue>(&raw);
            json_agrees_with_parse::<IniValue>(&raw);
        }

        #[test]
        fn ini_value_is_one_line(a in ".{0,20}", sep in prop::sample::select(vec!["\n", "\r", "\r\n", "\0", "\x1b"]), b in ".{0,20}") {
            let raw = format!("{a}{sep}{b}");
            prop_assert!(raw.parse::<IniValue>().is_err(), "{:?}", raw);
        }

        #[test]
        fn password_never_panics_and_keeps_quotes(raw in any::<String>()) {
            if let Ok(p) = raw.parse::<Password>() {
                prop_assert_eq!(p.expose(), raw.as_str());
                prop_assert_eq!(format!("{p:?}"), "Password(***)");
            }
        }

        #[test]
        fn password_refuses_control_characters(a in "[a-z]{8,12}", c in "[\\x00-\\x1f\\x7f]") {
            let raw = format!("{a}{c}");
            prop_assert!(raw.parse::<Password>().is_err());
        }

        #[test]
        fn webhook_urls_round_trip(raw in any::<String>(), url in "https?://[a-z]{1,10}\\.[a-z]{2,6}(/[a-z0-9%]{0,10}){0,3}(\\?[a-z]=[a-z0-9%]{1,5})?") {
            round_trips::<WebhookUrl>(&raw);
            json_agrees_with_parse::<WebhookUrl>(&raw);
            let v: WebhookUrl = url.parse().expect("generated URL is valid");
            round_trips::<WebhookUrl>(v.as_str());
        }

        #[test]
        fn webhook_urls_refuse_characters_outside_rfc3986(
            url in "https://[a-z]{1,10}\\.[a-z]{2,6}/[a-z]{0,10}",
            bad in prop::sample::select(vec!['\n', '\r', ' ', '"', '\\', '{', '}', '|', '`', '<', '>', '\0', '^']),
        ) {
            let raw = format!("{url}{bad}x");
            prop_assert!(raw.parse::<WebhookUrl>().is_err(), "{:?}", raw);
        }

        #[test]
        fn ipv6_networks_round_trip(bits in any::<u128>(), prefix in 0u8..=128) {
            let masked = if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix))) };
            let raw = format!("{}/{prefix}", std::net::Ipv6Addr::from(masked));
            let net: IpNetwork = raw.parse().expect("masked network parses");
            round_trips::<IpNetwork>(&net.to_string());
        }

        #[test]
        fn php_bytes_keep_their_value(n in 1u64..(1 << 30), shift in prop::sample::select(vec![0u32, 10, 20])) {
            let bytes = n << shift;
            let v = PhpBytes::from_bytes(bytes);
            if bytes <= 1 << 40 {
                let v = v.expect("in range");
                prop_assert_eq!(v.to_string().parse::<PhpBytes>().expect("re-parses").bytes(), bytes);
            }
        }
    }
}

#[test]
fn enums_parse_exactly_their_names() {
    for v in PhpVersion::ALL {
        assert_eq!(v.as_str().parse::<PhpVersion>(), Ok(v));
        round_trips::<PhpVersion>(v.as_str());
    }
    for bad in ["7.4", "8.5", "8", "8.2.1", " 8.2", "8.2\n", "php8.2", ""] {
        let err = bad.parse::<PhpVersion>().expect_err(bad);
        assert_eq!(err.field, "php_version");
    }
    for (raw, v) in [
        ("nginx", WebServerKind::Nginx),
        ("apache", WebServerKind::Apache),
        ("openlitespeed", WebServerKind::OpenLiteSpeed),
    ] {
        assert_eq!(raw.parse::<WebServerKind>(), Ok(v));
        round_trips::<WebServerKind>(raw);
    }
    assert!("Nginx".parse::<WebServerKind>().is_err());
    for (raw, v) in [
        ("postgresql", DbEngine::Postgres),
        ("mysql", DbEngine::MySql),
        ("mariadb", DbEngine::MariaDb),
    ] {
        assert_eq!(raw.parse::<DbEngine>(), Ok(v));
        round_trips::<DbEngine>(raw);
    }
    assert!("sqlite".parse::<DbEngine>().is_err());
}

proptest! {
    #[test]
    fn enums_never_panic(raw in any::<String>()) {
        round_trips::<PhpVersion>(&raw);
        round_trips::<WebServerKind>(&raw);
        round_trips::<DbEngine>(&raw);
    }
}

/// Web-server kinds: built-in names give built-in variants, every other valid name a plugin.
mod web_server_kinds {
    use super::*;

    fn plugin(raw: &str) -> WebServerKind {
        WebServerKind::Plugin(raw.parse().expect("valid plugin name"))
    }

    #[test]
    fn plugins_name_their_kind_and_round_trip() {
        for raw in ["caddy", "h2o", "a", "lighttpd-1-4", &"x".repeat(32)] {
            let kind: WebServerKind = raw.parse().expect(raw);
            assert_eq!(kind, plugin(raw));
            assert_eq!(kind.as_str(), raw);
            assert_eq!(kind.to_string(), raw);
            assert_eq!(
                serde_json::to_string(&kind).expect("serializes"),
                format!("\"{raw}\"")
            );
            round_trips::<WebServerKind>(raw);
        }
        assert_ne!(
            plugin("caddy"),
            WebServerKind::Nginx,
            "a caddy node is not an nginx node"
        );
    }

    #[test]
    fn a_plugin_never_shadows_a_built_in_server() {
        for (raw, kind) in [
            ("nginx", WebServerKind::Nginx),
            ("apache", WebServerKind::Apache),
            ("openlitespeed", WebServerKind::OpenLiteSpeed),
        ] {
            assert_eq!(raw.parse::<WebServerKind>(), Ok(kind));
            assert_eq!(kind.as_str(), raw);
            let err = raw.parse::<PluginName>().expect_err(raw);
            assert_eq!(err.field, "web_server");
            assert!(err.rule.contains("built-in"), "{raw}: {}", err.rule);
            assert_eq!(PluginName::new(raw), None);
        }
    }

    #[test]
    fn hostile_names_are_refused_naming_the_field_and_the_rule() {
        let long = "x".repeat(33);
        for raw in [
            "ng;inx",
            "a\nb",
            "../x",
            "Caddy",
            "",
            "caddy-",
            "-caddy",
            "1caddy",
            "ca_ddy",
            "cad dy",
            "caddy\0",
            "caddy/2",
            "c\u{e4}ddy",
            "caddy.conf",
            "${x}",
            "a'b",
            &long,
        ] {
            let err = raw.parse::<WebServerKind>().expect_err(raw);
            assert_eq!(err.field, "web_server", "{raw:?}");
            assert!(err.rule.contains("plugin"), "{raw:?}: {}", err.rule);
            assert!(err.rule.contains("lower-case"), "{raw:?}: {}", err.rule);
            let err = raw.parse::<PluginName>().expect_err(raw);
            assert_eq!(err.field, "web_server", "{raw:?}");
            assert!(err.rule.contains("lower-case"), "{raw:?}: {}", err.rule);
            assert_eq!(PluginName::new(raw), None, "{raw:?}");
            let json = serde_json::Value::String(raw.to_owned());
            assert!(
                serde_json::from_value::<WebServerKind>(json).is_err(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn a_plugin_kind_is_a_copy_value_named_at_compile_time() {
        const CADDY: WebServerKind = match PluginName::new("caddy") {
            Some(name) => WebServerKind::Plugin(name),
            None => panic!("caddy is a valid plugin name"),
        };
        fn by_value(kind: WebServerKind) -> WebServerKind {
            kind
        }
        let copy = by_value(CADDY);
        assert_eq!(copy, CADDY);
        assert_eq!(format!("{CADDY:?}"), "Plugin(PluginName(\"caddy\"))");
    }

    proptest! {
        #[test]
        fn valid_plugin_names_round_trip_as_kinds(raw in "[a-z]([a-z0-9-]{0,30}[0-9])?") {
            let kind: WebServerKind = raw.parse().expect("generated name is valid");
            prop_assert_eq!(kind, plugin(&raw));
            prop_assert_eq!(kind.as_str(), raw.as_str());
            prop_assert_eq!(kind.to_string().parse::<WebServerKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).expect("serializes");
            prop_assert_eq!(serde_json::from_str::<WebServerKind>(&json).expect("deserializes"), kind);
            prop_assert_eq!(PluginName::new(&raw).map(|n| n.to_string()), Some(raw.clone()));
        }

        #[test]
        fn what_parses_as_a_kind_is_a_built_in_or_a_safe_name(raw in any::<String>()) {
            if let Ok(kind) = raw.parse::<WebServerKind>() {
                prop_assert_eq!(kind.as_str(), raw.as_str());
                prop_assert!(raw.len() <= 32);
                prop_assert!(raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
            json_agrees_with_parse::<WebServerKind>(&raw);
        }

        #[test]
        fn upper_case_never_parses(raw in "[a-z]([a-z0-9-]{0,30}[0-9])?", at in any::<prop::sample::Index>()) {
            let mut chars: Vec<char> = raw.chars().collect();
            let i = at.index(chars.len());
            chars[i] = chars[i].to_ascii_uppercase();
            let shouted: String = chars.into_iter().collect();
            if shouted != raw {
                prop_assert!(shouted.parse::<WebServerKind>().is_err(), "{:?}", shouted);
            }
        }

        #[test]
        fn plugin_names_order_as_their_text(a in "[a-z][a-z0-9-]{0,10}[0-9]", b in "[a-z][a-z0-9-]{0,10}[0-9]") {
            let (x, y): (PluginName, PluginName) = (a.parse().expect("a"), b.parse().expect("b"));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }
    }
}

#[test]
fn domains_are_normalised() {
    let cases = [
        ("Example.COM", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example.org", "a-b.c-d.example.org"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ];
    for (raw, want) in cases {
        assert_eq!(DomainName::from_str(raw).expect(raw).as_str(), want);
    }
}

#[test]
fn domains_name_the_rule_they_break() {
    let cases = [
        ("a..b.com", "empty label"),
        (".example.com", "start or end with '.'"),
        ("example.com.", "start or end with '.'"),
        ("-a.example.com", "start or end with '-'"),
        ("a-.example.com", "start or end with '-'"),
        ("example.123", "all digits"),
        ("192.168.1.1", "all digits"),
        ("localhost", "two labels"),
        ("a;b.com", "';'"),
        ("a b.com", "a space"),
        ("a\nb.com", "a newline"),
        ("a\rb.com", "a carriage return"),
        ("a$b.com", "'$'"),
        ("a`b.com", "'`'"),
        ("a|b.com", "'|'"),
        ("a%b.com", "'%'"),
        ("a{b.com", "'{'"),
        ("a}b.com", "'}'"),
        ("a'b.com", "'''"),
        ("a\"b.com", "'\"'"),
        ("a_b.com", "may only hold"),
        ("", "empty"),
    ];
    for (raw, rule) in cases {
        let err = DomainName::from_str(raw).expect_err(raw);
        assert_eq!(err.field, "domain", "{raw:?}");
        assert!(err.rule.contains(rule), "{raw:?}: {}", err.rule);
    }
    let long_label = format!("{}.com", "a".repeat(64));
    assert!(DomainName::from_str(&long_label).is_err());
    let long_name = format!("{}com", "abcdefghi.".repeat(26));
    assert!(long_name.len() > 253);
    assert!(DomainName::from_str(&long_name).is_err());
}

#[test]
fn confined_paths_stay_under_their_root() {
    for bad in [
        "../etc",
        "a/../../etc",
        "/etc/passwd",
        "a/./b",
        ".",
        "..",
        "a//b",
        "a/",
        "a\\..\\b",
        "a\0b",
        "",
    ] {
        assert!(ConfinedPath::from_str(bad).is_err(), "{bad:?}");
    }
    let p = ConfinedPath::from_str("sites/shop/public_html").expect("valid");
    let root = std::path::Path::new("/srv/www/u1");
    assert!(p.under(root).starts_with(root));
    assert_eq!(p.under(root), root.join("sites/shop/public_html"));
}

#[test]
fn secrets_never_print() {
    let p = Password::from_str("s3cr3t'\";--pass").expect("valid");
    assert_eq!(format!("{p:?}"), "Password(***)");
    assert!(!format!("{:?}", Some(&p)).contains("s3cr3t"));
    let err = Password::from_str("short").expect_err("too short");
    assert_eq!(err.field, "password");
    assert!(!err.to_string().contains("short\""));
}

#[test]
fn php_settings_keep_post_above_upload() {
    let mb = |s: &str| PhpBytes::from_str(s).expect("size");
    let ok = PhpSettings::new(mb("256M"), 30, mb("64M"), mb("64M"), Default::default());
    assert!(ok.is_ok());
    let err = PhpSettings::new(mb("256M"), 30, mb("64M"), mb("32M"), Default::default())
        .expect_err("post below upload");
    assert_eq!(err.field, "post_max_size");
    let err = PhpSettings::new(mb("256M"), 0, mb("1M"), mb("1M"), Default::default())
        .expect_err("zero time");
    assert_eq!(err.field, "max_execution_time");
    let json = r#"{"memory_limit":"128M","max_execution_time":30,"upload_max_filesize":"10M","post_max_size":"8M"}"#;
    assert!(serde_json::from_str::<PhpSettings>(json).is_err());
}

#[test]
fn settings_reject_unknown_fields_and_hostile_values() {
    let ok: WebsiteSettings = serde_json::from_str(r#"{"gzip":true,"blocked_ips":["10.0.0.0/8"]}"#)
        .expect("partial settings use defaults");
    assert!(ok.gzip);
    for bad in [
        r#"{"gzip":true,"shell":"rm -rf /"}"#,
        r#"{"blocked_ips":["10.0.0.1/8"]}"#,
        r#"{"blocked_ips":["10.0.0.0/8; deny all"]}"#,
        r#"{"php":{"memory_limit":"128M\nphp_admin_value[x]=1","max_execution_time":1,"upload_max_filesize":"1M","post_max_size":"1M"}}"#,
        r#"{"ssl":{"mode":"enabled","provider":"letsencrypt"}}"#,
        r#"{"database":{"engine":"mariadb","name":"x'; DROP TABLE t; --","charset":"utf8mb4","collation":"utf8mb4_bin"}}"#,
    ] {
        assert!(
            serde_json::from_str::<WebsiteSettings>(bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn numbers_at_the_boundary() {
    assert!(Threshold::try_from(f64::NAN).is_err());
    assert!(Threshold::try_from(f64::INFINITY).is_err());
    assert!(PageLimit::try_from(0).is_err());
    assert!(PageLimit::try_from(501).is_err());
    assert_eq!(PageLimit::try_from(500).map(u32::from), Ok(500));
    assert!(serde_json::from_str::<PageLimit>("-1").is_err());
}
