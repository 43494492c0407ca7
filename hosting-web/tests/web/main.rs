//! hosting-web's integration tests: snapshots of every fixture, the real `nginx -t` and
//! `apache2 -t` on every fixture, operator overrides, a service refused after the swap, and
//! properties of arbitrary valid sites.
#![allow(clippy::expect_used)] // tests: a failed expectation is a failed test

mod log_modes;
mod openlitespeed;
mod overrides;
mod properties;
mod service;
mod snapshots;
mod support;
mod validate;
