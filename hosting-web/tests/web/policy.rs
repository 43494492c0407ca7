//! Properties of the directive policies: every directive NGINX and Apache allow, with arguments
//! drawn from its rules, renders into a site the real `nginx -t` / `apache2 -t` accepts, with
//! every site path inside the site's home; and an argument outside its rule is refused.

use std::path::{Component, Path};

use hosting_core::directives::{AllowedDirective, ArgRule, DirectivePolicy};
use hosting_core::model::{ServerDirective, Website};
use hosting_core::types::WebServerKind;
use hosting_web::{APACHE_POLICY, NGINX_POLICY, OPENLITESPEED_POLICY};
use proptest::prelude::*;

use crate::properties::{block_on, no_directives, site};
use crate::support::{TempDir, node_for, render_all, server_binary, snapshot_layout};

/// A valid segment of a path: no `.` or `..` (it cannot start with a dot).
const SEGMENT: &str = "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,11}";

/// Arguments inside `rule`. Sizes keep to 9 digits: nginx refuses `client_max_body_size` from
/// 8589934592g on, which the rule's 12 digits would reach.
fn valid_arg(rule: ArgRule) -> BoxedStrategy<String> {
    match rule {
        // At most 1024 of the largest unit and 365 of days: the rules' own bounds.
        ArgRule::Size => (
            0..=1024u64,
            prop::sample::select(vec!["", "k", "K", "m", "M", "g", "G"]),
        )
            .prop_map(|(n, unit)| format!("{n}{unit}"))
            .boxed(),
        ArgRule::Duration => (
            0..=365u64,
            prop::sample::select(vec!["", "ms", "s", "m", "h", "d"]),
        )
            .prop_map(|(n, unit)| format!("{n}{unit}"))
            .boxed(),
        ArgRule::Number { min, max } => (min..=max).prop_map(|n| n.to_string()).boxed(),
        ArgRule::OnOff => prop::sample::select(vec!["on", "off"])
            .prop_map(str::to_owned)
            .boxed(),
        ArgRule::OneOf(words) => prop::sample::select(words.to_vec())
            .prop_map(str::to_owned)
            .boxed(),
        ArgRule::HeaderName => "[A-Za-z0-9-]{1,64}".boxed(),
        ArgRule::HeaderValue => "[A-Za-z0-9._,:=/+*@-]{1,64}".boxed(),
        ArgRule::UriPath => prop::collection::vec(SEGMENT, 0..4)
            .prop_map(|segments| format!("/{}", segments.join("/")))
            .boxed(),
        ArgRule::SitePath => prop::collection::vec(SEGMENT, 1..4)
            .prop_map(|segments| segments.join("/"))
            .boxed(),
    }
}

/// Every directive of `policy` once, each with its required arguments and some of its optional
/// ones, all drawn from their rules.
fn every_allowed(policy: DirectivePolicy) -> BoxedStrategy<Vec<ServerDirective>> {
    policy
        .allowed()
        .iter()
        .map(|allowed| {
            let rules: Vec<ArgRule> = allowed
                .required
                .iter()
                .chain(allowed.optional)
                .copied()
                .collect();
            let args: Vec<BoxedStrategy<String>> = rules.into_iter().map(valid_arg).collect();
            (args, 0..=allowed.optional.len())
                .prop_map(move |(mut args, optional)| {
                    args.truncate(allowed.required.len() + optional);
                    ServerDirective {
                        name: allowed
                            .name
                            .parse()
                            .expect("a policy names valid directives"),
                        args: args
                            .iter()
                            .map(|a| a.parse().expect("a valid argument"))
                            .collect(),
                    }
                })
                .boxed()
        })
        .collect::<Vec<_>>()
        .boxed()
}

fn entry(policy: DirectivePolicy, name: &str) -> &'static AllowedDirective {
    policy
        .allowed()
        .iter()
        .find(|a| a.name == name)
        .expect("an allowed directive")
}

/// Every tenant directive of `site` is accepted, written on one line, its site paths absolute
/// and inside the site's home.
fn assert_rendered_inside_the_home(kind: WebServerKind, policy: DirectivePolicy, site: &Website) {
    let directives = site.settings.extra_directives.as_slice();
    assert!(
        policy.check(directives).is_ok(),
        "{:?}",
        policy.check(directives)
    );
    let layout = snapshot_layout();
    let home = layout.site(site).home;
    let text = render_all(kind, &layout, site);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for d in directives {
        let allowed = entry(policy, d.name.as_str());
        let mut line = d.name.to_string();
        for (arg, rule) in d
            .args
            .iter()
            .zip(allowed.required.iter().chain(allowed.optional))
        {
            let written = match rule {
                ArgRule::SitePath => {
                    let path = home.join(arg.as_str());
                    let inside = path.strip_prefix(&home).is_ok_and(|rest| {
                        rest.components().all(|c| matches!(c, Component::Normal(_)))
                    });
                    assert!(
                        inside,
                        "{} leaves the home {}",
                        path.display(),
                        home.display()
                    );
                    path.display().to_string()
                }
                _ => arg.as_str().to_owned(),
            };
            line.push(' ');
            line.push_str(&written);
        }
        if kind == WebServerKind::Nginx {
            line.push(';');
        }
        assert!(lines.contains(&line.as_str()), "{line:?} is not in\n{text}");
    }
    // No absolute path in the tenant's lines but a URL path or one under the home.
    for d in directives {
        for line in lines
            .iter()
            .filter(|l| l.starts_with(&format!("{} ", d.name)))
        {
            for word in line.trim_end_matches(';').split(' ').skip(1) {
                assert!(
                    !word.starts_with('/')
                        || Path::new(word).starts_with(&home)
                        || allowed_uri(policy, d, word),
                    "{word} in {line:?} is outside {}",
                    home.display()
                );
            }
        }
    }
}

/// Whether `word` is one of `d`'s own arguments typed as a URL path or a header value (a
/// header value may start with `/`; it names no file).
fn allowed_uri(policy: DirectivePolicy, d: &ServerDirective, word: &str) -> bool {
    let allowed = entry(policy, d.name.as_str());
    d.args
        .iter()
        .zip(allowed.required.iter().chain(allowed.optional))
        .any(|(arg, rule)| {
            arg.as_str() == word && matches!(rule, ArgRule::UriPath | ArgRule::HeaderValue)
        })
}

fn stage_and_validate(kind: WebServerKind, binary: std::path::PathBuf, site: &Website) {
    let dir = TempDir::new(&format!("prop-policy-{kind}"));
    let layout = node_for(dir.path(), std::slice::from_ref(site));
    let staged = dir.path().join("staged");
    let verdict = match kind {
        WebServerKind::Nginx => {
            let mut config = hosting_web::NginxConfig::new(layout);
            config.binary = binary;
            let nginx = hosting_web::Nginx::new(config).expect("nginx");
            nginx
                .stage(&staged, std::slice::from_ref(site))
                .expect("stage");
            block_on(nginx.validate(&staged))
        }
        _ => {
            let mut config = hosting_web::ApacheConfig::new(layout);
            config.binary = binary;
            let apache = hosting_web::Apache::new(config).expect("apache");
            apache
                .stage(&staged, std::slice::from_ref(site))
                .expect("stage");
            block_on(apache.validate(&staged))
        }
    };
    assert!(
        verdict.is_ok(),
        "{kind} -t refused {:?}: {verdict:?}",
        site.settings.extra_directives
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Every directive NGINX_POLICY allows, at once, in an arbitrary site: the real `nginx -t`
    /// accepts it.
    #[test]
    fn every_directive_nginx_allows_passes_the_real_nginx(
        site in site(WebServerKind::Nginx, every_allowed(NGINX_POLICY), no_directives())
    ) {
        assert_rendered_inside_the_home(WebServerKind::Nginx, NGINX_POLICY, &site);
        if let Some(binary) = server_binary("HOSTING_TEST_NGINX") {
            stage_and_validate(WebServerKind::Nginx, binary, &site);
        }
    }

    /// Every directive APACHE_POLICY allows, at once, in an arbitrary site: the real
    /// `apache2 -t` accepts it.
    #[test]
    fn every_directive_apache_allows_passes_the_real_apache(
        site in site(WebServerKind::Apache, every_allowed(APACHE_POLICY), no_directives())
    ) {
        assert_rendered_inside_the_home(WebServerKind::Apache, APACHE_POLICY, &site);
        if let Some(binary) = server_binary("HOSTING_TEST_APACHE") {
            stage_and_validate(WebServerKind::Apache, binary, &site);
        }
    }
}

/// Whether `arg` is inside `rule`, as its documentation says (an oracle written apart from
/// hosting-core's check).
fn within(rule: ArgRule, arg: &str) -> bool {
    // Digits and a unit, worth at most `limit` of the smallest one.
    let digits_then = |units: &[(&str, u128)], limit: u128| {
        let number = arg.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &arg[number.len()..];
        let value = number
            .parse::<u128>()
            .ok()
            .filter(|_| !number.starts_with('+'));
        let scale = units.iter().find(|(u, _)| *u == unit).map(|(_, m)| *m);
        matches!((value, scale), (Some(n), Some(m)) if n.checked_mul(m).is_some_and(|v| v <= limit))
    };
    let chars = |extra: &str| {
        arg.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    match rule {
        ArgRule::Size => digits_then(
            &[
                ("", 1),
                ("k", 1 << 10),
                ("K", 1 << 10),
                ("m", 1 << 20),
                ("M", 1 << 20),
                ("g", 1 << 30),
                ("G", 1 << 30),
            ],
            1 << 40,
        ),
        ArgRule::Duration => digits_then(
            &[
                ("", 1000),
                ("ms", 1),
                ("s", 1000),
                ("m", 60_000),
                ("h", 3_600_000),
                ("d", 86_400_000),
            ],
            365 * 86_400_000,
        ),
        ArgRule::Number { min, max } => {
            arg.bytes().all(|b| b.is_ascii_digit())
                && arg.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n))
        }
        ArgRule::OnOff => arg == "on" || arg == "off",
        ArgRule::OneOf(words) => words.contains(&arg),
        ArgRule::HeaderName => !arg.is_empty() && arg.len() <= 64 && chars("-"),
        ArgRule::HeaderValue => arg.len() <= 256 && chars("-_.,:=/+*@"),
        ArgRule::UriPath => {
            arg.starts_with('/')
                && arg.len() <= 256
                && chars("-_./")
                && !arg.split('/').any(|s| s == "..")
        }
        ArgRule::SitePath => {
            !arg.starts_with('/')
                && arg.len() <= 256
                && chars("-_./")
                && arg
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
        }
    }
}

/// One argument inside `rule`.
fn example_arg(rule: ArgRule) -> String {
    match rule {
        ArgRule::Size => "64m".to_owned(),
        ArgRule::Duration => "30s".to_owned(),
        ArgRule::Number { min, .. } => min.to_string(),
        ArgRule::OnOff => "on".to_owned(),
        ArgRule::OneOf(words) => words[0].to_owned(),
        ArgRule::HeaderName => "X-Test".to_owned(),
        ArgRule::HeaderValue => "yes".to_owned(),
        ArgRule::UriPath => "/404.html".to_owned(),
        ArgRule::SitePath => "private/htpasswd".to_owned(),
    }
}

/// Values a tenant might try: node paths, traversal, huge numbers, near-miss words, and
/// anything of the arguments' alphabet.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._:/=+,@*-]{1,40}",
        "/[a-z]{1,8}(/[a-z.]{1,8}){0,3}",
        "([a-z]{1,5}/)?\\.\\.(/[a-z]{1,5}){0,2}",
        "\\./[a-z]{1,5}",
        "[a-z]{1,5}//[a-z]{1,5}",
        "[0-9]{13,20}",
        "[0-9]{1,5}(kb|w|y|M|ms|G|K|S|D)",
        "(on|off|On|OFF|yes|1|always|valid-user|Basic|None|utf8|A1)",
        "-?[A-Za-z]{1,5}(_[a-z]{1,4})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// For every directive of every policy and each of its argument positions: a value outside
    /// that position's rule, with valid arguments before it, is refused naming the position.
    #[test]
    fn arguments_outside_their_rule_are_refused(value in hostile()) {
        for policy in [NGINX_POLICY, APACHE_POLICY, OPENLITESPEED_POLICY] {
            for allowed in policy.allowed() {
                let rules: Vec<ArgRule> =
                    allowed.required.iter().chain(allowed.optional).copied().collect();
                for (j, rule) in rules.iter().enumerate() {
                    let mut args: Vec<String> = rules.iter().take(j).map(|r| example_arg(*r)).collect();
                    args.push(value.clone());
                    // The required arguments after `j`, so only `j` can be wrong.
                    args.extend(rules.iter().skip(j + 1).take(allowed.required.len().saturating_sub(j + 1)).map(|r| example_arg(*r)));
                    let directive = ServerDirective {
                        name: allowed.name.parse().expect("name"),
                        args: args.iter().map(|a| a.parse().expect("arg")).collect(),
                    };
                    let verdict = policy.check(std::slice::from_ref(&directive));
                    if within(*rule, &value) {
                        prop_assert!(verdict.is_ok(), "{} {args:?}: {verdict:?}", allowed.name);
                    } else {
                        let field = verdict.map_err(|e| e.field.into_owned());
                        prop_assert_eq!(
                            field,
                            Err(format!("extra_directives[0].args[{j}]")),
                            "{} {:?} must be refused at {}", allowed.name, args, j
                        );
                    }
                }
            }
        }
    }
}
