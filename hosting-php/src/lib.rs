//! # hosting-php
//!
//! Will hold the [`PhpRuntime`](hosting_core::PhpRuntime) implementation for PHP-FPM 8.0-8.4:
//! discovery of installed versions (system packages and builds at any prefix), one pool per
//! site named from the site id, validation with `php-fpm -t` and graceful reloads. It arrives with
//! the web servers and PHP issue; today it only fixes the crate's place in the dependency graph.
