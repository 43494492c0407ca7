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
//!
//! [`Nginx`] and [`Apache`] implement [`WebServer`](hosting_core::WebServer): `apply` renders
//! every site of the node, stages a new generation beside the live one, runs the server's own
//! test on it, swaps it in atomically, reloads gracefully (starting the server under its server
//! root when it is not running) and asks every site over HTTP; any failure leaves or puts back
//! the previous files byte for byte. OpenLiteSpeed renders only: no binary exists here to
//! validate or run it.

mod apache;
mod apply;
mod context;
mod nginx;
mod openlitespeed;
mod stage;
mod templates;

pub use apache::{Apache, ApacheConfig};
pub use context::{LogMode, Ports};
pub use nginx::{Nginx, NginxConfig};
pub use openlitespeed::{OpenLiteSpeed, OpenLiteSpeedConfig};
