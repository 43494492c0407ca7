//! The directives a tenant may add to a site's block, one allow-list per server, and the one
//! place a site's directives are turned into the lines a template writes.
//!
//! Every argument is typed ([`ArgRule`]) so that nothing a tenant writes can name a file,
//! socket, module, user or upstream of the node: the only file a tenant can name is one inside
//! its own site's home ([`ArgRule::SitePath`], rendered as an absolute path under it). Times
//! and rates are bounded numbers where the server refuses some of what the policy's `Duration`
//! and `Size` accept (`expires 10ms`, `limit_rate 1g`): a value the server refuses fails the
//! apply of the whole node. The operator's own directives
//! ([`WebsiteSettings::operator_directives`](hosting_core::model::WebsiteSettings)) bypass the
//! list and are written as they are.

use std::path::Path;

use hosting_core::directives::{AllowedDirective, ArgRule, DirectivePolicy};
use hosting_core::model::{ServerDirective, Website};
use serde::Serialize;

/// Timeouts in seconds: an hour at most, so one site cannot hold connections for days.
const SECONDS: ArgRule = ArgRule::Number { min: 1, max: 3600 };

/// Error statuses a site may give a page of its own: both servers know these (nginx refuses
/// 499, Apache any status it has no text for, such as 418).
const ERROR_STATUS: ArgRule = ArgRule::OneOf(&[
    "400", "401", "403", "404", "405", "408", "410", "413", "414", "429", "500", "502", "503",
    "504",
]);

/// What NGINX lets a tenant write into its site's `server` block. Times are whole seconds:
/// nginx refuses `ms` in `expires` and very long durations elsewhere, and the policy's
/// `Duration` accepts both.
pub static NGINX_POLICY: DirectivePolicy = DirectivePolicy::new(&[
    AllowedDirective {
        name: "client_max_body_size",
        required: &[ArgRule::Size],
        optional: &[],
        repeatable: false,
        purpose: "the largest upload the site accepts (replaces the PHP pool's post_max_size)",
    },
    AllowedDirective {
        name: "client_body_timeout",
        required: &[SECONDS],
        optional: &[],
        repeatable: false,
        purpose: "how long a slow client may pause while sending a request body",
    },
    AllowedDirective {
        name: "send_timeout",
        required: &[SECONDS],
        optional: &[],
        repeatable: false,
        purpose: "how long a slow client may pause while receiving a response",
    },
    AllowedDirective {
        name: "keepalive_timeout",
        required: &[ArgRule::Number { min: 0, max: 300 }],
        optional: &[],
        repeatable: false,
        purpose: "how long an idle keep-alive connection stays open (0 turns keep-alive off)",
    },
    AllowedDirective {
        name: "keepalive_requests",
        required: &[ArgRule::Number {
            min: 1,
            max: 100_000,
        }],
        optional: &[],
        repeatable: false,
        purpose: "how many requests one keep-alive connection may carry",
    },
    AllowedDirective {
        name: "fastcgi_read_timeout",
        required: &[SECONDS],
        optional: &[],
        repeatable: false,
        purpose: "how long a PHP request may run before nginx answers 504 (imports, reports)",
    },
    AllowedDirective {
        name: "expires",
        required: &[ArgRule::Number {
            min: 0,
            max: 31_536_000,
        }],
        optional: &[],
        repeatable: false,
        purpose: "browser cache lifetime of every response, in seconds (a year at most)",
    },
    AllowedDirective {
        name: "add_header",
        required: &[ArgRule::HeaderName, ArgRule::HeaderValue],
        optional: &[ArgRule::OneOf(&["always"])],
        repeatable: true,
        purpose: "a response header of the site's own (always: on error responses too)",
    },
    AllowedDirective {
        name: "charset",
        required: &[ArgRule::OneOf(&[
            "utf-8",
            "iso-8859-1",
            "windows-1251",
            "koi8-r",
            "off",
        ])],
        optional: &[],
        repeatable: false,
        purpose: "the charset named in the Content-Type of text responses",
    },
    AllowedDirective {
        name: "etag",
        required: &[ArgRule::OnOff],
        optional: &[],
        repeatable: false,
        purpose: "ETag headers on static files",
    },
    AllowedDirective {
        name: "if_modified_since",
        required: &[ArgRule::OneOf(&["off", "exact", "before"])],
        optional: &[],
        repeatable: false,
        purpose: "how If-Modified-Since is compared for static files",
    },
    AllowedDirective {
        name: "server_tokens",
        required: &[ArgRule::OnOff],
        optional: &[],
        repeatable: false,
        purpose: "the nginx version in error pages and the Server header",
    },
    AllowedDirective {
        name: "error_page",
        required: &[ERROR_STATUS, ArgRule::UriPath],
        optional: &[],
        repeatable: true,
        purpose: "the site's own page for one error status (one status per directive)",
    },
    AllowedDirective {
        name: "autoindex",
        required: &[ArgRule::OnOff],
        optional: &[],
        repeatable: false,
        purpose: "directory listings where a directory has no index file",
    },
    AllowedDirective {
        name: "autoindex_exact_size",
        required: &[ArgRule::OnOff],
        optional: &[],
        repeatable: false,
        purpose: "exact or rounded file sizes in directory listings",
    },
    AllowedDirective {
        name: "autoindex_localtime",
        required: &[ArgRule::OnOff],
        optional: &[],
        repeatable: false,
        purpose: "local time or UTC in directory listings",
    },
    AllowedDirective {
        name: "auth_basic",
        required: &[ArgRule::HeaderValue],
        optional: &[],
        repeatable: false,
        purpose: "password protection: the realm shown at the login prompt (off: none)",
    },
    AllowedDirective {
        name: "auth_basic_user_file",
        required: &[ArgRule::SitePath],
        optional: &[],
        repeatable: false,
        purpose: "password protection: the htpasswd file, inside the site's home",
    },
    AllowedDirective {
        name: "limit_rate",
        // At least 4 KiB/s: slower, even the SDK's health check of the site times out and the
        // apply is refused.
        required: &[ArgRule::Number {
            min: 4096,
            max: 1_073_741_824,
        }],
        optional: &[],
        repeatable: false,
        purpose: "bytes per second sent to one client (unlimited when not set)",
    },
]);

/// Expiry codes Apache understands (`A` = after access, in seconds), from none to a year.
const APACHE_EXPIRY: ArgRule = ArgRule::OneOf(&[
    "A0",
    "A60",
    "A300",
    "A600",
    "A3600",
    "A86400",
    "A604800",
    "A2592000",
    "A31536000",
]);

/// What Apache lets a tenant write into its site. They are rendered inside `<Location "/">`
/// with `AuthMerging And`, so every one must be valid in a directory context, and a tenant's
/// `Require` narrows the site's IP rules instead of replacing them.
pub static APACHE_POLICY: DirectivePolicy = DirectivePolicy::new(&[
    AllowedDirective {
        name: "LimitRequestBody",
        required: &[ArgRule::Number {
            min: 0,
            max: 2_147_483_647,
        }],
        optional: &[],
        repeatable: false,
        purpose: "the largest request body (upload) in bytes; 0 is unlimited",
    },
    AllowedDirective {
        name: "Header",
        required: &[
            ArgRule::OneOf(&["set", "append", "add", "merge", "setifempty"]),
            ArgRule::HeaderName,
            ArgRule::HeaderValue,
        ],
        optional: &[],
        repeatable: true,
        purpose: "a response header of the site's own",
    },
    AllowedDirective {
        name: "ExpiresActive",
        required: &[ArgRule::OnOff],
        optional: &[],
        repeatable: false,
        purpose: "turns the site's Expires rules on",
    },
    AllowedDirective {
        name: "ExpiresDefault",
        required: &[APACHE_EXPIRY],
        optional: &[],
        repeatable: false,
        purpose: "browser cache lifetime of every response",
    },
    AllowedDirective {
        name: "ExpiresByType",
        required: &[
            ArgRule::OneOf(&[
                "text/html",
                "text/css",
                "text/javascript",
                "application/javascript",
                "application/json",
                "application/pdf",
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/svg+xml",
                "image/webp",
                "image/avif",
                "font/woff",
                "font/woff2",
            ]),
            APACHE_EXPIRY,
        ],
        optional: &[],
        repeatable: true,
        purpose: "browser cache lifetime of one type of file",
    },
    AllowedDirective {
        name: "ErrorDocument",
        required: &[ERROR_STATUS, ArgRule::UriPath],
        optional: &[],
        repeatable: true,
        purpose: "the site's own page for one error status",
    },
    AllowedDirective {
        name: "AddDefaultCharset",
        required: &[ArgRule::OneOf(&["utf-8", "iso-8859-1", "off"])],
        optional: &[],
        repeatable: false,
        purpose: "the charset named in the Content-Type of text responses",
    },
    AllowedDirective {
        name: "FileETag",
        required: &[ArgRule::OneOf(&["None", "All", "MTime", "Size", "Digest"])],
        optional: &[],
        repeatable: false,
        purpose: "what the ETag of a static file is made of",
    },
    AllowedDirective {
        name: "Options",
        required: &[ArgRule::OneOf(&["-Indexes", "+Indexes"])],
        optional: &[],
        repeatable: false,
        purpose: "directory listings on or off (no other option: FollowSymLinks, ExecCGI and \
                  Includes reach beyond the site)",
    },
    AllowedDirective {
        name: "AuthType",
        required: &[ArgRule::OneOf(&["Basic"])],
        optional: &[],
        repeatable: false,
        purpose: "password protection: HTTP basic authentication",
    },
    AllowedDirective {
        name: "AuthName",
        required: &[ArgRule::HeaderValue],
        optional: &[],
        repeatable: false,
        purpose: "password protection: the realm shown at the login prompt",
    },
    AllowedDirective {
        name: "AuthUserFile",
        required: &[ArgRule::SitePath],
        optional: &[],
        repeatable: false,
        purpose: "password protection: the htpasswd file, inside the site's home",
    },
    AllowedDirective {
        name: "Require",
        required: &[ArgRule::OneOf(&["valid-user"])],
        optional: &[],
        repeatable: false,
        purpose: "password protection: only users of the password file (on top of the IP rules)",
    },
]);

/// What OpenLiteSpeed lets a tenant write at the top of its virtual host configuration.
pub static OPENLITESPEED_POLICY: DirectivePolicy = DirectivePolicy::new(&[
    AllowedDirective {
        name: "addDefaultCharset",
        required: &[ArgRule::OnOff],
        optional: &[],
        repeatable: false,
        purpose: "add the default charset to text responses",
    },
    AllowedDirective {
        name: "enableIpGeo",
        required: &[ArgRule::OneOf(&["0", "1"])],
        optional: &[],
        repeatable: false,
        purpose: "GeoIP lookups for the site's requests",
    },
]);

/// One directive as a template writes it: the name, then each argument, each a checked word.
#[derive(Debug, Serialize)]
pub(crate) struct Directive {
    pub name: String,
    pub args: Vec<String>,
}

/// The tenant's directives of `site` that `policy` accepts, with site paths made absolute under
/// `home`. A stored directive it does not accept (written before the policy existed, or before
/// the policy lost it) is left out and logged, so one old setting cannot fail a node's apply.
pub(crate) fn tenant_directives(
    policy: &DirectivePolicy,
    site: &Website,
    home: &Path,
) -> Vec<Directive> {
    site.settings
        .extra_directives
        .as_slice()
        .iter()
        .filter_map(|d| match policy.rendered_args(d, home) {
            Some(args) => Some(Directive {
                name: d.name.to_string(),
                args,
            }),
            None => {
                let rule = policy
                    .check(std::slice::from_ref(d))
                    .err()
                    .map(|e| e.rule.into_owned())
                    .unwrap_or_default();
                tracing::warn!(
                    site = %site.id,
                    directive = %d.name,
                    rule = %rule,
                    "extra directive left out: the web server's directive policy does not accept it"
                );
                None
            }
        })
        .collect()
}

/// The operator's directives of `site`, as they are.
pub(crate) fn operator_directives(site: &Website) -> Vec<Directive> {
    site.settings
        .operator_directives
        .as_slice()
        .iter()
        .map(|d: &ServerDirective| Directive {
            name: d.name.to_string(),
            args: d.args.iter().map(|a| a.as_str().to_owned()).collect(),
        })
        .collect()
}
