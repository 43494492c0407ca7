//! # hosting-web
//!
//! NGINX, Apache 2.4 and OpenLiteSpeed virtual hosts for the hosting SDK, rendered from
//! minijinja templates and validated by the real server binary on a staged tree.
//!
//! Each server is a struct built from a config that holds the node's
//! [`HostLayout`](hosting_core::HostLayout) (every path a vhost names comes from it) and
//! optionally a directory of operator template overrides:
//!
//! - `render_site` is pure: a [`Website`](hosting_core::model::Website) in, the site's files
//!   out, named from the site id.
//! - `stage` (NGINX, Apache) writes a complete tree: a minimal main configuration that keeps
//!   every runtime file under the tree, plus every site's files.
//! - `validate` runs `nginx -t` / `apache2 -t` on that tree through the
//!   [`CommandRunner`](hosting_core::CommandRunner) seam; a rejection is
//!   [`Error::Validation`](hosting_core::Error::Validation) with the tool's output.
//!
//! Templates only ever see a typed context, and every value they write passes one character
//! check (letters, digits and `. _ - : / = + , @ * [ ]`), so no value, and no override
//! template, can put a line break, quote, brace or `;` into a configuration file from data.
//! A tenant's extra directives reach a file only through its server's allow-list
//! ([`NGINX_POLICY`], [`APACHE_POLICY`], [`OPENLITESPEED_POLICY`]); the operator's are written
//! as they are.
//!
//! [`Nginx`] and [`Apache`] implement [`WebServer`](hosting_core::WebServer): `apply` renders
//! every site of the node, stages a new generation beside the live one, runs the server's own
//! test on it, swaps it in atomically, reloads gracefully (or starts the server) and asks every
//! changed site over HTTP; any failure leaves or puts back the previous files byte for byte.
//! [`Management`] says who runs the server: the SDK under its own root with a main
//! configuration it renders, or the distro's service, whose configuration stays the
//! operator's and gains one include file (tested as a whole after the swap, before the
//! reload). OpenLiteSpeed renders only: no binary exists here to validate or run it.

mod apache;
mod apply;
mod context;
mod nginx;
mod openlitespeed;
mod policy;
mod service;
mod stage;
mod templates;

pub use apache::{Apache, ApacheConfig, ApacheService};
pub use context::{LogMode, Ports};
pub use nginx::{Nginx, NginxConfig, NginxService};
pub use openlitespeed::{OpenLiteSpeed, OpenLiteSpeedConfig};
pub use policy::{APACHE_POLICY, NGINX_POLICY, OPENLITESPEED_POLICY};
pub use service::Management;
