//! hosting-web's integration tests: snapshots of every fixture, the real `nginx -t` and
//! `apache2 -t` on every fixture, operator overrides, a service refused after the swap,
//! tenants confined by the directive policies, symlink checks and the suspension page, and
//! properties of arbitrary valid sites and of every directive the policies allow.
#![allow(clippy::expect_used)] // tests: a failed expectation is a failed test

mod confinement;
mod log_modes;
mod openlitespeed;
mod overrides;
mod policy;
mod properties;
mod service;
mod snapshots;
mod support;
mod validate;
