//! Applying a node's desired state across its PHP runtime and web server, in the order that
//! keeps every site answering.
//!
//! A PHP version switch must never leave a vhost pointing at a socket nobody listens on
//! (hestiacp#5351), so the order is: start the pools the new state needs while the old ones
//! still run, point the web server at them and reload, then stop the pools nothing uses any
//! more. A failure in the middle puts the PHP side back as it was.
//!
//! A PHP version whose master cannot be started or reloaded does not hold the node back: the
//! other versions are applied, the web server is applied (the failed version's sites answer
//! 502 from it, the rest are served), and the report names the version and its sites
//! ([`NodeReport::php_failed`]), so the caller can record an error on those sites. This is what
//! brings a node back after a power loss: every apply starts what does not run.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::model::{Website, WebsiteId, WebsiteStatus};
use crate::php::{FailedVersion, PhpRuntime};
use crate::types::PhpVersion;
use crate::web::{ApplyReport, WebServer};

/// What a node apply changed on each side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// The web server's report.
    pub web: ApplyReport,
    /// The PHP runtime's report for the final (pruned) set of pools, on the versions that
    /// did not fail.
    pub php: ApplyReport,
    /// The PHP versions whose master does not serve its pools after the apply (the final
    /// step's [`crate::php::PhpApplyReport::failed`]), with the sites on each: their PHP answers
    /// 502 until a later apply starts the master.
    pub php_failed: Vec<FailedVersion>,
}

/// A server process a backend runs, as it stands now: what an operator asks of a node after a
/// crash or a reboot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerState {
    /// `nginx`, `apache`, `php-fpm 8.2`.
    pub name: String,
    /// Its master's pid when its pid file names this server (never a bare `kill -0`); `None`:
    /// it does not run.
    pub pid: Option<u32>,
}

/// The sites whose pools run: every site but the suspended ones, which the web server answers
/// with a 403 page of its own.
pub fn pool_sites(sites: &[Website]) -> Vec<Website> {
    sites
        .iter()
        .filter(|s| s.status != WebsiteStatus::Suspended)
        .cloned()
        .collect()
}

/// The pools to run during a transition: every pool of `desired`, plus the pools of
/// `previous` that `desired` moves away from (same site, other PHP version), so the old socket
/// keeps answering until the web server has switched. Suspended sites run no pool.
pub fn transition_pools(previous: &[Website], desired: &[Website]) -> Vec<Website> {
    let previous = pool_sites(previous);
    let desired = pool_sites(desired);
    let wanted: BTreeSet<(WebsiteId, PhpVersion)> = desired
        .iter()
        .filter_map(|s| s.php_version.map(|v| (s.id, v)))
        .collect();
    let still_served: BTreeSet<WebsiteId> = desired.iter().map(|s| s.id).collect();
    let mut pools: Vec<Website> = desired.clone();
    pools.extend(
        previous
            .iter()
            .filter(|s| {
                s.php_version
                    .is_some_and(|v| still_served.contains(&s.id) && !wanted.contains(&(s.id, v)))
            })
            .cloned(),
    );
    pools
}

/// Moves the node from `previous` to `desired`: pools for both, then the web server, then only
/// the desired pools (suspended sites go to the web server only), each PHP step version by
/// version ([`PhpRuntime::apply_versions`]).
///
/// - A PHP test refusing the pools (`Error::Validation`) fails the apply before anything
///   changed.
/// - A PHP version whose master cannot be started or reloaded is put back and reported, and
///   the apply goes on: the web server is applied whatever PHP did, so the static sites and
///   those of the other versions keep (or start) serving. The final step tries the failed
///   version again; what still fails then is [`NodeReport::php_failed`].
/// - When the web server refuses the new state, the PHP side is put back to `previous` and the
///   web server's error is returned.
pub async fn apply_node(
    web: &dyn WebServer,
    php: &dyn PhpRuntime,
    previous: &[Website],
    desired: &[Website],
) -> Result<NodeReport> {
    // A version failing here is tried again by the final step, which reports it.
    php.apply_versions(&transition_pools(previous, desired))
        .await?;
    let web_report = match web.apply(desired).await {
        Ok(report) => report,
        Err(e) => {
            php.apply_versions(&pool_sites(previous)).await?;
            return Err(e);
        }
    };
    let php_report = php.apply_versions(&pool_sites(desired)).await?;
    Ok(NodeReport {
        web: web_report,
        php: php_report.applied,
        php_failed: php_report.failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeId, TenantId, UserId, WebsiteSettings, WebsiteStatus};
    use crate::types::WebServerKind;

    fn site(id: i64, php: Option<PhpVersion>) -> Website {
        Website {
            id: WebsiteId(id),
            tenant_id: TenantId(1),
            owner_id: UserId(1),
            domain: format!("s{id}.example.com").parse().expect("domain"),
            aliases: vec![],
            node_id: NodeId(1),
            web_server: WebServerKind::Nginx,
            php_version: php,
            system_user: format!("s{id}").parse().expect("user"),
            document_root: "public".parse().expect("root"),
            status: WebsiteStatus::Active,
            settings: WebsiteSettings::default(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn pools(sites: &[Website]) -> BTreeSet<(i64, Option<PhpVersion>)> {
        sites.iter().map(|s| (s.id.0, s.php_version)).collect()
    }

    #[test]
    fn a_switch_keeps_the_old_pool_until_the_web_server_moved() {
        let previous = [
            site(1, Some(PhpVersion::V8_2)),
            site(2, Some(PhpVersion::V8_2)),
        ];
        let desired = [
            site(1, Some(PhpVersion::V8_4)),
            site(2, Some(PhpVersion::V8_2)),
        ];
        assert_eq!(
            pools(&transition_pools(&previous, &desired)),
            BTreeSet::from([
                (1, Some(PhpVersion::V8_4)),
                (1, Some(PhpVersion::V8_2)),
                (2, Some(PhpVersion::V8_2)),
            ])
        );
    }

    #[test]
    fn removed_sites_and_static_sites_need_no_transition_pool() {
        let previous = [
            site(1, Some(PhpVersion::V8_2)),
            site(2, Some(PhpVersion::V8_3)),
        ];
        let desired = [site(2, None)];
        assert_eq!(
            pools(&transition_pools(&previous, &desired)),
            BTreeSet::from([(2, None), (2, Some(PhpVersion::V8_3))]),
            "site 2 keeps its pool until it stops using PHP; site 1 is gone"
        );
        assert!(transition_pools(&[], &[]).is_empty());
    }
}
