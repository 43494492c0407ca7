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

/// The share of both cores busy (any process) over `window`, from /proc/stat, in percent.
pub fn cpu_busy_percent(window: std::time::Duration) -> f64 {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
        Some((fields.iter().sum(), idle))
    }
    let (Some((total0, idle0)), Some((total1, idle1))) = (sample(), {
        std::thread::sleep(window);
        sample()
    }) else {
        return f64::NAN;
    };
    let total = total1.saturating_sub(total0).max(1) as f64;
    100.0 * (1.0 - idle1.saturating_sub(idle0) as f64 / total)
}

/// Waits (at most `limit`) until the machine is quiet, CPU under 25% over a second, and says
/// how busy it was: the figures that follow are only as good as the machine was idle.
pub fn settle(limit: std::time::Duration) -> String {
    let start = std::time::Instant::now();
    loop {
        let busy = cpu_busy_percent(std::time::Duration::from_secs(1));
        if busy < 25.0 || start.elapsed() >= limit {
            return format!(
                "CPU {busy:.0}% busy over 1 s (after waiting {:.0} s for < 25%), load average {}",
                start.elapsed().as_secs_f64(),
                load_average()
            );
        }
    }
}
