//! Applying a node's desired state across its PHP runtime and web server, in the order that
//! keeps every site answering.
//!
//! A PHP version switch must never leave a vhost pointing at a socket nobody listens on
//! (hestiacp#5351), so the order is: start the pools the new state needs while the old ones
//! still run, point the web server at them and reload, then stop the pools nothing uses any
//! more. A failure in the middle puts the PHP side back as it was.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::model::{Website, WebsiteId, WebsiteStatus};
use crate::php::PhpRuntime;
use crate::types::PhpVersion;
use crate::web::{ApplyReport, WebServer};

/// What a node apply changed on each side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// The web server's report.
    pub web: ApplyReport,
    /// The PHP runtime's report for the final (pruned) set of pools.
    pub php: ApplyReport,
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
/// the desired pools (suspended sites go to the web server only). When the web server refuses the new state, the PHP side is put back to
/// `previous` and the web server's error is returned.
pub async fn apply_node(
    web: &dyn WebServer,
    php: &dyn PhpRuntime,
    previous: &[Website],
    desired: &[Website],
) -> Result<NodeReport> {
    php.apply(&transition_pools(previous, desired)).await?;
    let web_report = match web.apply(desired).await {
        Ok(report) => report,
        Err(e) => {
            php.apply(&pool_sites(previous)).await?;
            return Err(e);
        }
    };
    let php_report = php.apply(&pool_sites(desired)).await?;
    Ok(NodeReport {
        web: web_report,
        php: php_report,
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
