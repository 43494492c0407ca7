//! What a tenant may put into a site's server block. Each web server declares one allow-list
//! ([`DirectivePolicy`]) whose arguments are typed, so that no directive it accepts can name a
//! file, socket, module, user or upstream of the node outside the site's own home. Everything
//! the list does not name is refused, with the index of the directive and the rule.

use std::fmt;
use std::path::Path;

use crate::error::InvalidValue;
use crate::model::ServerDirective;

const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("k", 1 << 10),
    ("K", 1 << 10),
    ("m", 1 << 20),
    ("M", 1 << 20),
    ("g", 1 << 30),
    ("G", 1 << 30),
];
const MAX_SIZE_BYTES: u64 = 1 << 40;
const DURATION_UNITS: &[(&str, u64)] = &[
    ("", 1000),
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];
const MAX_DURATION_MS: u64 = 365 * 86_400_000;

/// The type of one directive argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgRule {
    /// A size: digits with an optional `k`, `m` or `g` (either case), e.g. `64m`.
    Size,
    /// A duration: digits with an optional `ms`, `s`, `m`, `h` or `d`, e.g. `30s`.
    Duration,
    /// A whole number in `min..=max`.
    Number {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// `on` or `off`.
    OnOff,
    /// Exactly one of these words.
    OneOf(&'static [&'static str]),
    /// An HTTP header name: letters, digits and `-`, at most 64.
    HeaderName,
    /// A header value: letters, digits and `- _ . , : = / + * @`, at most 256 (no `$`, so no
    /// variable can leak a server value into it).
    HeaderValue,
    /// A path of the site's URL space: starts with `/`, no `..` segment, e.g. `/404.html`.
    UriPath,
    /// A file inside the site's home, written relative to it (`private/.htpasswd`): no leading
    /// `/`, no `.` or `..` segment. Rendered as the absolute path under the home. The path is
    /// checked as written: a symlink the site's account plants there is followed by whoever
    /// opens it, so only directives a worker opens per request (password files) may use it,
    /// never one the server's master loads as root (the web conformance suite checks that).
    SitePath,
}

impl ArgRule {
    /// Checks `arg`; the error is the rule, in words.
    fn check(self, arg: &str) -> Result<(), String> {
        // A number with a unit, at most `limit` in the unit's multiples (servers refuse, or
        // overflow on, values past their own limits, which would fail the node's apply).
        let scaled = |units: &[(&str, u64)], limit: u64| {
            let split = arg.find(|c: char| !c.is_ascii_digit()).unwrap_or(arg.len());
            let (number, unit) = arg.split_at(split);
            let multiple = units.iter().find(|(u, _)| *u == unit).map(|(_, m)| *m);
            match (number.parse::<u64>(), multiple) {
                (Ok(n), Some(m)) => n.checked_mul(m).is_some_and(|v| v <= limit),
                _ => false,
            }
        };
        let ok = match self {
            Self::Size => scaled(SIZE_UNITS, MAX_SIZE_BYTES),
            Self::Duration => scaled(DURATION_UNITS, MAX_DURATION_MS),
            Self::Number { min, max } => arg
                .parse::<u64>()
                .is_ok_and(|n| (min..=max).contains(&n) && !arg.starts_with('+')),
            Self::OnOff => matches!(arg, "on" | "off"),
            Self::OneOf(words) => words.contains(&arg),
            Self::HeaderName => {
                !arg.is_empty()
                    && arg.len() <= 64
                    && arg.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }
            Self::HeaderValue => {
                !arg.is_empty()
                    && arg.len() <= 256
                    && arg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.,:=/+*@".contains(c))
            }
            Self::UriPath => {
                arg.starts_with('/')
                    && arg.len() <= 256
                    && arg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                    && !arg.split('/').any(|s| s == "..")
            }
            Self::SitePath => {
                !arg.is_empty()
                    && arg.len() <= 256
                    && !arg.starts_with('/')
                    && arg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                    && arg
                        .split('/')
                        .all(|s| !s.is_empty() && s != "." && s != "..")
            }
        };
        if ok { Ok(()) } else { Err(self.to_string()) }
    }
}

impl fmt::Display for ArgRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Size => f.write_str("a size such as 64m (digits, then k, m or g), at most 1024g"),
            Self::Duration => {
                f.write_str("a duration such as 30s (digits, then ms, s, m, h or d), at most 365d")
            }
            Self::Number { min, max } => write!(f, "a whole number from {min} to {max}"),
            Self::OnOff => f.write_str("on or off"),
            Self::OneOf(words) => write!(f, "one of {}", words.join(", ")),
            Self::HeaderName => f.write_str("a header name (letters, digits and -)"),
            Self::HeaderValue => {
                f.write_str("a header value of letters, digits and - _ . , : = / + * @")
            }
            Self::UriPath => f.write_str("a URL path starting with / and without .."),
            Self::SitePath => f.write_str(
                "a file inside the site's home, relative to it, without . or .. segments",
            ),
        }
    }
}

/// One directive a tenant may use, and the types of its arguments: every `required` one, then
/// up to all of `optional`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedDirective {
    /// The directive's name, exactly as the server spells it.
    pub name: &'static str,
    /// Arguments that must be there.
    pub required: &'static [ArgRule],
    /// Arguments that may follow, in order.
    pub optional: &'static [ArgRule],
    /// Whether a site may list it more than once (`add_header`); most directives may appear
    /// once, and a second one fails the server's configuration test.
    pub repeatable: bool,
    /// Why a tenant wants it (shown in documentation).
    pub purpose: &'static str,
}

/// A web server's allow-list of tenant directives. A plugin declares its own as a `static`
/// table; the web conformance suite checks that it names no file of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectivePolicy {
    allowed: &'static [AllowedDirective],
}

impl DirectivePolicy {
    /// A policy allowing exactly `allowed`.
    pub const fn new(allowed: &'static [AllowedDirective]) -> Self {
        Self { allowed }
    }

    /// A policy that allows nothing.
    pub const NONE: Self = Self::new(&[]);

    /// The directives it allows.
    pub fn allowed(&self) -> &'static [AllowedDirective] {
        self.allowed
    }

    /// Checks every directive; the error names `extra_directives[i]` (or its argument) and the
    /// rule it broke.
    pub fn check(&self, directives: &[ServerDirective]) -> Result<(), InvalidValue> {
        for (i, directive) in directives.iter().enumerate() {
            self.check_one(directive).map_err(|(field, rule)| {
                InvalidValue::new(format!("extra_directives[{i}]{field}"), rule)
            })?;
            let repeatable = self
                .allowed
                .iter()
                .any(|a| a.name == directive.name.as_str() && a.repeatable);
            if !repeatable
                && let Some(first) = directives[..i]
                    .iter()
                    .position(|d| d.name == directive.name)
            {
                return Err(InvalidValue::new(
                    format!("extra_directives[{i}].name"),
                    format!(
                        "'{}' may appear once (it is already extra_directives[{first}])",
                        directive.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_one(&self, directive: &ServerDirective) -> Result<(), (String, String)> {
        let name = directive.name.as_str();
        let Some(allowed) = self.allowed.iter().find(|a| a.name == name) else {
            return Err((
                ".name".to_owned(),
                format!(
                    "'{name}' is not a directive tenants may use on this web server (the \
                     operator can add it as an operator directive)"
                ),
            ));
        };
        let args = &directive.args;
        let most = allowed.required.len() + allowed.optional.len();
        if args.len() < allowed.required.len() || args.len() > most {
            let count = if allowed.optional.is_empty() {
                format!("{}", allowed.required.len())
            } else {
                format!("{} to {most}", allowed.required.len())
            };
            return Err((
                ".args".to_owned(),
                format!("'{name}' takes {count} argument(s)"),
            ));
        }
        for (j, (arg, rule)) in args
            .iter()
            .zip(allowed.required.iter().chain(allowed.optional))
            .enumerate()
        {
            rule.check(arg.as_str())
                .map_err(|rule| (format!(".args[{j}]"), format!("must be {rule}")))?;
        }
        Ok(())
    }

    /// The arguments of an accepted `directive` as they are written into the configuration:
    /// site paths become absolute under `home`. `None` when the policy does not accept it.
    pub fn rendered_args(&self, directive: &ServerDirective, home: &Path) -> Option<Vec<String>> {
        self.check_one(directive).ok()?;
        let allowed = self
            .allowed
            .iter()
            .find(|a| a.name == directive.name.as_str())?;
        Some(
            directive
                .args
                .iter()
                .zip(allowed.required.iter().chain(allowed.optional))
                .map(|(arg, rule)| match rule {
                    ArgRule::SitePath => home.join(arg.as_str()).display().to_string(),
                    _ => arg.as_str().to_owned(),
                })
                .collect(),
        )
    }
}

/// Directives no policy may allow a tenant, in any server's spelling (compared without case):
/// each names a file, socket, module, user, process or upstream of the node. The web
/// conformance suite refuses a policy that lists one, or any `*_log`, `*_path` or `*_file`
/// directive that does not type its file argument as [`ArgRule::SitePath`].
pub const NEVER_FOR_TENANTS: &[&str] = &[
    "include",
    "include_optional",
    "includeoptional",
    "root",
    "alias",
    "load_module",
    "loadmodule",
    "loadfile",
    "user",
    "group",
    "pid",
    "pidfile",
    "error_log",
    "access_log",
    "errorlog",
    "customlog",
    "transferlog",
    "scriptalias",
    "scriptaliasmatch",
    "aliasmatch",
    "directory",
    "directorymatch",
    "documentroot",
    "setenv",
    "setenvif",
    "fastcgi_param",
    "fastcgi_pass",
    "proxy_pass",
    "uwsgi_pass",
    "scgi_pass",
    "grpc_pass",
    "memcached_pass",
    "proxypass",
    "proxypassmatch",
    "proxyreverse",
    "ssl_certificate",
    "ssl_certificate_key",
    "ssl_trusted_certificate",
    "ssl_client_certificate",
    "sslcertificatefile",
    "sslcertificatekeyfile",
    "php_value",
    "php_admin_value",
    "php_flag",
    "php_admin_flag",
    "lua_code_cache",
    "perl",
    "js_import",
    "mirror",
    "auth_request",
    "resolver",
    "set",
    "suexecusergroup",
    "action",
    "rewritemap",
    "sethandler",
    "addhandler",
    "mutex",
    "serverroot",
    "client_body_temp_path",
    "proxy_temp_path",
    "fastcgi_temp_path",
    "uwsgi_temp_path",
    "scgi_temp_path",
    "ssl_dhparam",
    "ssl_crl",
    "ssl_password_file",
    "ssl_stapling_file",
    "authgroupfile",
    "authdbmuserfile",
    "authdbmgroupfile",
    "rewriterule",
    "rewritecond",
    "rewriteengine",
    "proxyfcgisetenvif",
    "passenv",
    "unsetenv",
    "addtype",
    "addoutputfilter",
    "allowoverride",
    "allowoverridelist",
];

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: DirectivePolicy = DirectivePolicy::new(&[
        AllowedDirective {
            name: "client_max_body_size",
            required: &[ArgRule::Size],
            optional: &[],
            repeatable: false,
            purpose: "upload limit",
        },
        AllowedDirective {
            name: "add_header",
            required: &[ArgRule::HeaderName, ArgRule::HeaderValue],
            optional: &[ArgRule::OneOf(&["always"])],
            repeatable: true,
            purpose: "a response header",
        },
        AllowedDirective {
            name: "auth_basic_user_file",
            required: &[ArgRule::SitePath],
            optional: &[],
            repeatable: false,
            purpose: "password file",
        },
    ]);

    fn directive(name: &str, args: &[&str]) -> ServerDirective {
        ServerDirective {
            name: name.parse().expect("name"),
            args: args.iter().map(|a| a.parse().expect("arg")).collect(),
        }
    }

    #[test]
    fn accepts_typed_arguments_and_names_the_failing_one() {
        assert!(
            POLICY
                .check(&[directive("client_max_body_size", &["64m"])])
                .is_ok()
        );
        assert!(
            POLICY
                .check(&[directive("add_header", &["X-Test", "yes", "always"])])
                .is_ok()
        );
        let e = POLICY
            .check(&[
                directive("client_max_body_size", &["1g"]),
                directive("access_log", &["/etc/x.log"]),
            ])
            .expect_err("not allowed");
        assert_eq!(e.field, "extra_directives[1].name");
        let e = POLICY
            .check(&[directive("client_max_body_size", &["/etc/passwd"])])
            .expect_err("not a size");
        assert_eq!(e.field, "extra_directives[0].args[0]");
        let e = POLICY
            .check(&[directive("add_header", &["X"])])
            .expect_err("too few");
        assert_eq!(e.field, "extra_directives[0].args");
    }

    #[test]
    fn sizes_are_bounded_and_directives_appear_once_unless_repeatable() {
        assert!(
            POLICY
                .check(&[directive("client_max_body_size", &["1024g"])])
                .is_ok()
        );
        for bad in ["1025g", "99999999999999g", "1t", "m", "-1"] {
            assert!(
                POLICY
                    .check(&[directive("client_max_body_size", &[bad])])
                    .is_err(),
                "{bad}"
            );
        }
        let e = POLICY
            .check(&[
                directive("client_max_body_size", &["1m"]),
                directive("client_max_body_size", &["2m"]),
            ])
            .expect_err("twice");
        assert_eq!(e.field, "extra_directives[1].name");
        assert!(
            POLICY
                .check(&[
                    directive("add_header", &["X-A", "1"]),
                    directive("add_header", &["X-B", "2"]),
                ])
                .is_ok()
        );
    }

    #[test]
    fn site_paths_stay_inside_the_home() {
        for bad in ["/etc/shadow", "../other/x", "a/../../x", "./x", "a//b"] {
            assert!(
                POLICY
                    .check(&[directive("auth_basic_user_file", &[bad])])
                    .is_err(),
                "{bad}"
            );
        }
        let good = directive("auth_basic_user_file", &["private/.htpasswd"]);
        assert_eq!(
            POLICY.rendered_args(&good, Path::new("/srv/sites/7")),
            Some(vec!["/srv/sites/7/private/.htpasswd".to_owned()])
        );
        let bad = directive("auth_basic_user_file", &["/etc/shadow"]);
        assert_eq!(POLICY.rendered_args(&bad, Path::new("/srv/sites/7")), None);
    }
}
