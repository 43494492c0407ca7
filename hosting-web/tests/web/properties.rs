//! Properties of arbitrary valid sites: rendering is deterministic, nginx answers for exactly
//! the site's names, and no value, however hostile it looks, splits an operator directive
//! across lines.

use std::collections::BTreeSet;

use hosting_core::model::{ServerDirective, Website, WwwRedirect};
use hosting_core::types::{IpNetwork, PhpVersion, WebServerKind};
use proptest::prelude::*;

use crate::support::{
    KINDS, SiteBuilder, TempDir, node_for, render_all, server_binary, snapshot_layout,
    valid_directives,
};

fn domain() -> impl Strategy<Value = String> {
    let label = "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?";
    (
        prop::collection::vec(label, 1..3),
        prop::sample::select(vec!["com", "org", "example", "xn--p1ai", "co-op"]),
        any::<bool>(),
    )
        .prop_map(|(labels, tld, www)| {
            let name = format!("{}.{tld}", labels.join("."));
            if www { format!("www.{name}") } else { name }
        })
}

fn network() -> impl Strategy<Value = IpNetwork> {
    prop_oneof![
        (any::<u32>(), 8u8..=32).prop_map(|(addr, prefix)| {
            let masked = addr & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            format!("{}/{prefix}", std::net::Ipv4Addr::from(masked))
        }),
        (any::<u128>(), 16u8..=128).prop_map(|(addr, prefix)| {
            let masked = addr & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            format!("{}/{prefix}", std::net::Ipv6Addr::from(masked))
        }),
    ]
    .prop_map(|s| s.parse().expect("masked network"))
}

/// Directive names and arguments from the whole valid alphabet, including the punctuation
/// that looks dangerous (`= + , @ * : /`).
fn directive() -> impl Strategy<Value = ServerDirective> {
    (
        "[a-zA-Z][a-zA-Z0-9_]{0,20}",
        prop::collection::vec("[a-zA-Z0-9._:/=+,@*-]{1,24}", 0..4),
    )
        .prop_map(|(name, args)| ServerDirective {
            name: name.parse().expect("directive name"),
            args: args
                .iter()
                .map(|a| a.parse().expect("directive argument"))
                .collect(),
        })
}

/// A valid site with every setting drawn at random, rendered by `kind`: `directives` are the
/// tenant's, `operator` the operator's.
pub fn site(
    kind: WebServerKind,
    directives: BoxedStrategy<Vec<ServerDirective>>,
    operator: BoxedStrategy<Vec<ServerDirective>>,
) -> impl Strategy<Value = Website> {
    (
        (
            domain(),
            prop::collection::vec(domain(), 0..4),
            any::<bool>(),
            prop::sample::select(vec![
                WwwRedirect::None,
                WwwRedirect::ToWww,
                WwwRedirect::ToApex,
            ]),
            prop::option::of(prop::sample::select(PhpVersion::ALL.to_vec())),
        ),
        (
            any::<bool>(),
            prop::option::of(0u32..10_000_000),
            any::<bool>(),
            prop::collection::btree_set(network(), 0..4),
            prop::collection::btree_set(network(), 0..4),
            (directives, operator),
            1i64..1_000_000,
        ),
    )
        .prop_map(
            move |(
                (domain, aliases, tls, www, php),
                (gzip, ttl, headers, allowed, blocked, (directives, operator), id),
            )| {
                let mut site = SiteBuilder::new(id, &domain, kind)
                    .tls(tls)
                    .www(www)
                    .php(php)
                    .performance(gzip, ttl, headers)
                    .build();
                let mut seen = BTreeSet::from([site.domain.clone()]);
                site.aliases = aliases
                    .iter()
                    .map(|a| a.parse().expect("alias"))
                    .filter(|a| seen.insert(Clone::clone(a)))
                    .collect();
                site.settings.allowed_ips = allowed;
                site.settings.blocked_ips = blocked;
                site.settings.extra_directives = directives.try_into().expect("directives");
                site.settings.operator_directives = operator.try_into().expect("directives");
                site
            },
        )
}

fn random_directives() -> BoxedStrategy<Vec<ServerDirective>> {
    prop::collection::vec(directive(), 0..4).boxed()
}

pub fn no_directives() -> BoxedStrategy<Vec<ServerDirective>> {
    Just(Vec::new()).boxed()
}

/// A server, and a random site it renders, with random directives from the tenant (which the
/// policy mostly refuses) and from the operator (which are written as they are).
fn any_kind_site() -> impl Strategy<Value = (WebServerKind, Website)> {
    prop::sample::select(KINDS.to_vec()).prop_flat_map(|kind| {
        (
            Just(kind),
            site(kind, random_directives(), random_directives()),
        )
    })
}

/// The names nginx must answer for, and which of them serve rather than redirect.
fn expected_names(site: &Website) -> (BTreeSet<String>, BTreeSet<String>) {
    let all: BTreeSet<String> = std::iter::once(&site.domain)
        .chain(&site.aliases)
        .map(ToString::to_string)
        .collect();
    let redirected = |name: &String| match site.settings.www_redirect {
        WwwRedirect::ToWww => !name.starts_with("www.") && all.contains(&format!("www.{name}")),
        WwwRedirect::ToApex => name
            .strip_prefix("www.")
            .is_some_and(|bare| all.contains(bare)),
        WwwRedirect::None => false,
    };
    let serving = all.iter().filter(|n| !redirected(n)).cloned().collect();
    (all, serving)
}

/// The line each extra directive must occupy, whole, in `kind`'s syntax.
fn directive_line(kind: WebServerKind, d: &ServerDirective) -> String {
    let mut line = d.name.to_string();
    for arg in &d.args {
        line.push(' ');
        line.push_str(arg.as_str());
    }
    if kind == WebServerKind::Nginx {
        line.push(';');
    }
    line
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rendering_is_deterministic((kind, site) in any_kind_site()) {
        let layout = snapshot_layout();
        prop_assert_eq!(render_all(kind, &layout, &site), render_all(kind, &layout, &site.clone()));
    }

    #[test]
    fn nginx_answers_for_exactly_the_sites_names(site in site(WebServerKind::Nginx, random_directives(), random_directives())) {
        let text = render_all(WebServerKind::Nginx, &snapshot_layout(), &site);
        let blocks: Vec<BTreeSet<String>> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("server_name "))
            .map(|l| l.trim_end_matches(';').split(' ').map(str::to_owned).collect())
            .collect();
        let (all, serving) = expected_names(&site);
        let union: BTreeSet<String> = blocks.iter().flatten().cloned().collect();
        prop_assert_eq!(&union, &all);
        prop_assert_eq!(blocks.last().expect("main server block"), &serving);
    }

    #[test]
    fn no_value_splits_a_directive((kind, site) in any_kind_site()) {
        let text = render_all(kind, &snapshot_layout(), &site);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for d in site.settings.operator_directives.as_slice() {
            let line = directive_line(kind, d);
            prop_assert!(lines.contains(&line.as_str()), "{line:?} is not one whole line in\n{text}");
        }
        if kind == WebServerKind::Nginx {
            for line in &lines {
                prop_assert!(
                    line.is_empty()
                        || line.starts_with('#')
                        || line.starts_with("===")
                        || line.ends_with(';')
                        || line.ends_with('{')
                        || *line == "}",
                    "a directive spans lines at {line:?} in\n{text}"
                );
            }
        }
        for name in std::iter::once(&site.domain).chain(&site.aliases) {
            prop_assert!(text.contains(name.as_str()), "{name} missing");
        }
    }
}

/// Up to three directives `kind` knows, each at most once.
fn known_directives(kind: WebServerKind) -> BoxedStrategy<Vec<ServerDirective>> {
    prop::sample::subsequence(valid_directives(kind).to_vec(), 0..=3)
        .prop_map(|picked| {
            picked
                .into_iter()
                .map(|(name, args)| ServerDirective {
                    name: name.parse().expect("name"),
                    args: args.iter().map(|a| a.parse().expect("arg")).collect(),
                })
                .collect()
        })
        .boxed()
}

pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Arbitrary sites (with directives nginx knows, each at most once) pass the real `nginx -t`.
    #[test]
    fn random_sites_pass_the_real_nginx(site in site(WebServerKind::Nginx, known_directives(WebServerKind::Nginx), no_directives())) {
        let Some(binary) = server_binary("HOSTING_TEST_NGINX") else {
            return Ok(());
        };
        let dir = TempDir::new("prop-nginx");
        let layout = node_for(dir.path(), std::slice::from_ref(&site));
        let mut config = hosting_web::NginxConfig::new(layout);
        config.binary = binary;
        let nginx = hosting_web::Nginx::new(config).expect("nginx");
        let staged = dir.path().join("staged");
        nginx.stage(&staged, std::slice::from_ref(&site)).expect("stage");
        let verdict = block_on(nginx.validate(&staged));
        prop_assert!(verdict.is_ok(), "nginx -t refused {site:?}: {verdict:?}");
    }

    /// The same for Apache and the real `apache2 -t`.
    #[test]
    fn random_sites_pass_the_real_apache(site in site(WebServerKind::Apache, known_directives(WebServerKind::Apache), no_directives())) {
        let Some(binary) = server_binary("HOSTING_TEST_APACHE") else {
            return Ok(());
        };
        let dir = TempDir::new("prop-apache");
        let layout = node_for(dir.path(), std::slice::from_ref(&site));
        let mut config = hosting_web::ApacheConfig::new(layout);
        config.binary = binary;
        let apache = hosting_web::Apache::new(config).expect("apache");
        let staged = dir.path().join("staged");
        apache.stage(&staged, std::slice::from_ref(&site)).expect("stage");
        let verdict = block_on(apache.validate(&staged));
        prop_assert!(verdict.is_ok(), "apache2 -t refused {site:?}: {verdict:?}");
    }
}
