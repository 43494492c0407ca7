//! The websites the web benchmarks render and apply: PHP 8.2 sites with one `www.` alias and
//! default settings, named from their id.

use hosting_core::model::{NodeId, TenantId, UserId, Website, WebsiteId, WebsiteStatus};
use hosting_core::types::{PhpVersion, SystemUser, WebServerKind};

/// Site `id` (`s<ID>.bench.example.com` and `www.` of it) on PHP 8.2, run as `user`.
pub fn php_site(id: i64, user: SystemUser, kind: WebServerKind) -> Website {
    Website {
        id: WebsiteId(id),
        tenant_id: TenantId(1),
        owner_id: UserId(1),
        domain: format!("s{id}.bench.example.com")
            .parse()
            .expect("bench domain"),
        aliases: vec![
            format!("www.s{id}.bench.example.com")
                .parse()
                .expect("bench alias"),
        ],
        node_id: NodeId(1),
        web_server: kind,
        php_version: Some(PhpVersion::V8_2),
        system_user: user,
        document_root: "public".parse().expect("bench document root"),
        status: WebsiteStatus::Active,
        settings: Default::default(),
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// The one-line load average, for the record of how busy the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
