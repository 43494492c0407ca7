//! # hosting-web
//!
//! Will hold the [`WebServer`](hosting_core::WebServer) implementations: NGINX, Apache 2.4 and
//! OpenLiteSpeed virtual hosts rendered from minijinja templates, validated by the real server
//! binary on a staged tree, swapped in atomically and rolled back on failure (see DESIGN.md,
//! "Apply"). It arrives with the web servers and PHP issue; today it only fixes the crate's place
//! in the dependency graph (it depends on hosting-core alone).
