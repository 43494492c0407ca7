//! # hosting-monitor
//!
//! Will hold the [`MetricsStore`](hosting_core::MetricsStore) implementation, the sysinfo
//! collector, rollups and retention, alert rule evaluation and the webhook and e-mail notifiers.
//! It arrives with the monitoring issue; today it only fixes the crate's place in the dependency
//! graph.
