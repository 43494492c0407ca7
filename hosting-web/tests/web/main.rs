//! hosting-web's integration tests: snapshots of every fixture, the real `nginx -t` and
//! `apache2 -t` on every fixture, operator overrides, and
//! properties of arbitrary valid sites.
#![allow(clippy::expect_used)] // tests: a failed expectation is a failed test

mod log_modes;
mod openlitespeed;
mod overrides;
mod properties;
mod snapshots;
mod support;
mod validate;
