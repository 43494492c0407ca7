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
//! The atomic apply path and the [`WebServer`](hosting_core::WebServer) trait impls come next.

mod apache;
mod context;
mod nginx;
mod openlitespeed;
mod stage;
mod templates;

pub use apache::{Apache, ApacheConfig};
pub use context::Ports;
pub use nginx::{Nginx, NginxConfig};
pub use openlitespeed::{OpenLiteSpeed, OpenLiteSpeedConfig};
