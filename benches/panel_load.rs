//! The panel's REST API under load (issue 4): with 10,000 websites in the store, `wrk` drives
//! `GET /api/v1/websites?limit=50` and `GET /api/v1/websites/{id}` at 200 connections for 30 s
//! against the real `hosting-panel serve` process, on SQLite and on PostgreSQL, beside a bare
//! axum server (`bare-http`, in this crate) that answers the same paths with the same response
//! bytes from memory, under the same `wrk` settings in the same run. A third server in between,
//! `bare-http --db`, first sends the store's own statement for the answer through a raw sqlx
//! pool and then answers the same bytes: the floor of any handler that reads those rows
//! through sqlx per request, so a gap can be split between the database path and the panel.
//!
//! ```text
//! ./scripts/with-servers.sh cargo bench -p hosting-benches --bench panel_load
//! ```
//!
//! For each store:
//! 1. **Seed**, in this process, through `hosting_db::SqlStore` on the store the panel will
//!    use (a fresh SQLite file, or a fresh PostgreSQL database from `HOSTING_TEST_POSTGRES_URL`
//!    via `hosting_tests::fresh_database`): a node row, 100 tenants with an admin each, 100
//!    websites per tenant (one `www.` alias, PHP 8.2, nginx) created by that admin, 8 inserts
//!    in flight. One tenant's admin gets a password (argon2id, `hash_password`'s defaults).
//! 2. **Start the panel** as its own process: the release `hosting-panel` binary (built here
//!    with `cargo build -p hosting-panel` if needed), `serve --config FILE` with a temporary
//!    data directory, the seeded store, no nginx and no PHP, the shipped log level (`info`:
//!    one line per request, written to a file), an access-token lifetime of an hour and
//!    1,000 logins a minute (so the timed logins are not throttled).
//! 3. **Log in** 20 times in a row as that admin (fresh connection each), timed: p50 and p99.
//!    Login is argon2 by design and is not part of the throughput target.
//! 4. **Capture** one answer of each endpoint (status, headers, body) and start `bare-http`
//!    with them, once bare and once with `--db` (the store's `SELECT` of the same rows, same
//!    text and arguments, on an `AnyPool` of 10 connections like the store's default); check
//!    that both answer the same body with the same header names.
//! 5. **Load**, per endpoint: wait (up to 3 min) for the CPU to be under 25% busy, run
//!    `wrk -t2 -c200 -d30s --latency -H "Authorization: Bearer ..."` on the bare server; wait
//!    and run it on the SQL floor; wait and run it on the panel. The admin sees its tenant's
//!    100 sites; the list is the first page of 50, the single site is one fixed id of that
//!    tenant. During each run the machine's CPU time is accounted for (`/proc`): the server's,
//!    wrk's, PostgreSQL's backends' and everything else's; a run in which anything else used
//!    more than 5% of the machine is repeated (at most 3 tries; a figure still disturbed is
//!    marked `†`), since other sessions share this machine. Then the panel is started again
//!    over the same store and data directory with `read_cache_mib = 0` and both endpoints are
//!    loaded once more: the figure of a panel that reads the store on every request.
//! 6. **Memory**: the panel's peak RSS (`VmHWM` in `/proc/PID/status`) once ready, after the
//!    logins and after both loads; the reference servers' peaks.
//!
//! Prints a Markdown table: req/s, p50, p99, errors (socket errors and non-2xx answers), the
//! server's CPU time per request (and PostgreSQL's), the ratios to the bare server, peak RSS
//! and the login time, and whether each target of the issue is met. Without `--bench` (as `cargo test --all-targets` runs it) a smoke pass runs on SQLite
//! only, with 2 tenants of 60 sites, 3 logins and `wrk -t1 -c4 -d1s`; when `wrk` is not
//! installed the smoke pass skips the load with a message (the full run stops instead).
//!
//! Overrides: `HOSTING_BENCH_PANEL_DURATION` (seconds), `HOSTING_BENCH_PANEL_CONNECTIONS`,
//! `HOSTING_BENCH_PANEL_STORES` (`sqlite,postgres`), `HOSTING_BENCH_PANEL_LOG_LEVEL` (the
//! panel's `log_level`, for finding out what logging costs), `HOSTING_BENCH_PANEL_BIN` (a
//! `hosting-panel` binary to use instead of building one), `HOSTING_BENCH_PANEL_KEEP=1`
//! (keep the panel's log and the captured answers, and print where),
//! `HOSTING_BENCH_PANEL_PERF=DIR` (profile the panel with `perf record` during its loads, into
//! `DIR/<store>-<list|site>.perf.data`; those runs' figures are then perturbed by perf),
//! `HOSTING_BENCH_PANEL_LITERAL_LIMIT=1` (the SQL floor's list says `LIMIT 50` instead of
//! binding it: SQLite 3.51 re-prepares a statement whose `LIMIT` is a rebound parameter).
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot set up should stop

mod stats;
#[allow(dead_code)] // this benchmark uses the machine-load helpers only
mod web_sites;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hosting_core::auth::hash_password;
use hosting_core::auth_store::AuthStore;
use hosting_core::model::{
    NewNode, NewTenant, NewUser, NewWebsite, NodeRole, Role, WebsiteSettings,
};
use hosting_core::rbac::{Caller, Operator};
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_core::{PanelStore, model::UserId};
use hosting_db::{SqlStore, StoreOptions};
use hosting_tests::{TempDir, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The password of the admin the load logs in as.
const PASSWORD: &str = "bench-password-1";
/// Inserts in flight while seeding.
const INSERT_CONCURRENCY: usize = 8;

/// The issue's targets.
const TARGET_THROUGHPUT_SHARE: f64 = 0.40;
const TARGET_P99_RATIO: f64 = 2.5;
const TARGET_RSS_MIB: f64 = 64.0;

#[derive(Clone)]
struct Scale {
    full: bool,
    tenants: usize,
    sites_per_tenant: usize,
    logins: usize,
    threads: u32,
    connections: u32,
    duration_secs: u64,
    /// How long to wait for a quiet machine before each load.
    settle: Duration,
    stores: Vec<String>,
    log_level: Option<String>,
    keep: bool,
    perf_dir: Option<PathBuf>,
    literal_limit: bool,
}

fn scale() -> Scale {
    let full = std::env::args().any(|a| a == "--bench");
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let number = |name: &str| var(name).map(|v| v.parse::<u64>().expect(name));
    let mut scale = if full {
        Scale {
            full,
            tenants: 100,
            sites_per_tenant: 100,
            logins: 20,
            threads: 2,
            connections: 200,
            duration_secs: 30,
            settle: Duration::from_secs(180),
            stores: vec!["sqlite".to_owned(), "postgres".to_owned()],
            log_level: None,
            keep: false,
            perf_dir: None,
            literal_limit: false,
        }
    } else {
        Scale {
            full,
            tenants: 2,
            sites_per_tenant: 60,
            logins: 3,
            threads: 1,
            connections: 4,
            duration_secs: 1,
            settle: Duration::ZERO,
            stores: vec!["sqlite".to_owned()],
            log_level: None,
            keep: false,
            perf_dir: None,
            literal_limit: false,
        }
    };
    if let Some(d) = number("HOSTING_BENCH_PANEL_DURATION") {
        scale.duration_secs = d.max(1);
    }
    if let Some(c) = number("HOSTING_BENCH_PANEL_CONNECTIONS") {
        scale.connections = u32::try_from(c).expect("connections").max(scale.threads);
    }
    if let Some(stores) = var("HOSTING_BENCH_PANEL_STORES") {
        scale.stores = stores.split(',').map(|s| s.trim().to_owned()).collect();
    }
    scale.log_level = var("HOSTING_BENCH_PANEL_LOG_LEVEL");
    scale.keep = var("HOSTING_BENCH_PANEL_KEEP").is_some_and(|v| v == "1");
    scale.perf_dir = var("HOSTING_BENCH_PANEL_PERF").map(PathBuf::from);
    scale.literal_limit = var("HOSTING_BENCH_PANEL_LITERAL_LIMIT").is_some_and(|v| v == "1");
    scale
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale = scale();
    let wrk = wrk_available();
    if !wrk {
        if scale.full {
            panic!("wrk is not installed: apt-get install wrk");
        }
        println!(
            "SKIPPED (load): wrk is not installed (apt-get install wrk); smoke pass without it"
        );
    }
    let panel_bin = panel_binary();
    let bare_bin = PathBuf::from(env!("CARGO_BIN_EXE_bare-http"));
    println!(
        "panel: {}\nbare:  {}\nmachine at start: CPU {:.0}% busy over 1 s, load average {}",
        panel_bin.display(),
        bare_bin.display(),
        web_sites::cpu_busy_percent(Duration::from_secs(1)),
        web_sites::load_average()
    );
    let mut results = Vec::new();
    for store in scale.stores.clone() {
        let dir = TempDir::new();
        let url = match store.as_str() {
            "sqlite" => format!("sqlite://{}", dir.path().join("panel.db").display()),
            "postgres" => match std::env::var(hosting_tests::POSTGRES_URL) {
                Ok(admin) if !admin.is_empty() => hosting_tests::fresh_database(&admin).await,
                _ if scale.full && hosting_tests::in_ci() => {
                    panic!("{} is not set and CI=true", hosting_tests::POSTGRES_URL)
                }
                _ => {
                    println!(
                        "SKIPPED (postgres): {} is not set; run under ./scripts/with-servers.sh",
                        hosting_tests::POSTGRES_URL
                    );
                    continue;
                }
            },
            other => panic!("unknown store {other:?}: sqlite or postgres"),
        };
        let result = run_store(&scale, &store, &url, &dir, &panel_bin, &bare_bin, wrk).await;
        if scale.keep {
            let kept = dir.path().to_path_buf();
            std::mem::forget(dir);
            println!("kept {}", kept.display());
        }
        results.push(result);
    }
    println!("\n{}", report(&scale, &results));
}

/// Whether `wrk` runs.
fn wrk_available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The `hosting-panel` binary of this build's profile: built with cargo into the target
/// directory this benchmark runs from (release under `cargo bench`, debug under `cargo test`).
fn panel_binary() -> PathBuf {
    if let Ok(path) = std::env::var("HOSTING_BENCH_PANEL_BIN") {
        return PathBuf::from(path);
    }
    // .../target/<profile>/deps/panel_load-HASH
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target dir");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .args(["-p", "hosting-panel", "--bin", "hosting-panel"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p hosting-panel failed");
    let bin = profile_dir.join("hosting-panel");
    assert!(bin.is_file(), "no {}", bin.display());
    bin
}

/// What one wrk run reported.
#[derive(Debug, Clone, Default)]
struct Load {
    requests: u64,
    requests_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    bytes_read: f64,
    socket_errors: u64,
    non_2xx: u64,
    /// How busy the machine was just before.
    machine: String,
    /// CPU time the server used during the run.
    server_cpu: Duration,
    /// wrk's, PostgreSQL's backends', and everything else's CPU time during the run.
    wrk_cpu: Duration,
    db_cpu: Duration,
    other_cpu: Duration,
    /// Wall time of the run times the cores.
    capacity: Duration,
    /// Which try this was (see [`run_wrk`]).
    attempt: u32,
}

impl Load {
    /// Other processes used more than 5% of the machine during the run.
    fn disturbed(&self) -> bool {
        self.other_cpu.as_secs_f64() > 0.05 * self.capacity.as_secs_f64()
    }

    fn db_cpu_per_request_us(&self) -> f64 {
        self.db_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    fn errors(&self) -> u64 {
        self.socket_errors + self.non_2xx
    }
}

/// One endpoint's loads.
struct EndpointLoad {
    endpoint: &'static str,
    /// The answer's body, in bytes.
    body: usize,
    /// `None` when wrk was skipped.
    loads: Option<Loads>,
}

/// One endpoint's three servers under the same load.
struct Loads {
    /// `bare-http`: the captured bytes from memory.
    bare: Load,
    /// `bare-http --db`: the store's statement through raw sqlx, then the captured bytes.
    sql: Load,
    /// The panel.
    panel: Load,
    /// The panel with `read_cache_mib = 0`: every request reads the store.
    uncached: Load,
}

/// The results of one store.
struct StoreResult {
    store: String,
    seed: Duration,
    sites: usize,
    login: stats::Summary,
    loads: Vec<EndpointLoad>,
    /// The panel's peak RSS once ready (store opened, first admin hashed), after the logins,
    /// and at the end; its RSS at the end.
    ready_hwm_kib: u64,
    login_hwm_kib: u64,
    panel_hwm_kib: u64,
    panel_rss_kib: u64,
    bare_hwm_kib: u64,
    floor_hwm_kib: u64,
}

async fn run_store(
    scale: &Scale,
    store: &str,
    url: &str,
    dir: &TempDir,
    panel_bin: &Path,
    bare_bin: &Path,
    wrk: bool,
) -> StoreResult {
    let started = Instant::now();
    let (email, site_count) = seed(scale, url).await;
    let seed_time = started.elapsed();
    println!(
        "[{store}] seeded {site_count} websites in {:.1} s",
        seed_time.as_secs_f64()
    );

    let mut panel = Panel::start(scale, panel_bin, dir, url, None);
    panel.wait_ready().await;
    let (ready_hwm_kib, _) = memory(panel.pid());

    // Logins, one after another, each on a fresh connection.
    let mut token = String::new();
    let mut samples = Vec::new();
    for _ in 0..scale.logins {
        let body = format!(r#"{{"email":"{email}","password":"{PASSWORD}"}}"#);
        let t = Instant::now();
        let answer = http(panel.port, "POST", "/api/v1/auth/login", None, Some(&body))
            .await
            .expect("login request");
        samples.push(t.elapsed());
        assert_eq!(answer.status, 200, "login: {}", answer.text());
        let tokens: serde_json::Value = serde_json::from_slice(&answer.body).expect("tokens");
        token = tokens["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
    }
    let login = stats::summarize(samples);
    let (login_hwm_kib, _) = memory(panel.pid());

    // One answer of each endpoint, for the bare server.
    let list_path = "/api/v1/websites?limit=50";
    let list = http(panel.port, "GET", list_path, Some(&token), None)
        .await
        .expect("list");
    assert_eq!(list.status, 200, "list: {}", list.text());
    let page: serde_json::Value = serde_json::from_slice(&list.body).expect("page json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 50, "a page of 50");
    let id = items[items.len() / 2]["id"].as_i64().expect("site id");
    let site_path = format!("/api/v1/websites/{id}");
    let site = http(panel.port, "GET", &site_path, Some(&token), None)
        .await
        .expect("site");
    assert_eq!(site.status, 200, "site: {}", site.text());

    let tenant = items[0]["tenant_id"].as_i64().expect("tenant id");

    // The captured answers, and the statements the store sends for them (for the SQL floor).
    let captured = dir.path().join("captured");
    std::fs::create_dir_all(&captured).expect("captured dir");
    let from = format!(
        "SELECT {WEBSITE_COLUMNS} FROM websites w JOIN website_configs c ON c.website_id = w.id"
    );
    let list_sql = if scale.literal_limit {
        (
            format!("{from} WHERE w.tenant_id = ? ORDER BY w.id LIMIT 50"),
            vec![tenant],
        )
    } else {
        (
            format!("{from} WHERE w.tenant_id = ? ORDER BY w.id LIMIT ?"),
            vec![tenant, 50],
        )
    };
    let site_sql = (
        format!("{from} WHERE w.id = ? AND w.tenant_id = ?"),
        vec![id, tenant],
    );
    let mut routes = Vec::new();
    for (name, path, answer, (sql, binds)) in [
        ("list", "/api/v1/websites", &list, list_sql),
        ("site", site_path.as_str(), &site, site_sql),
    ] {
        let head = captured.join(format!("{name}.head"));
        let body = captured.join(format!("{name}.body"));
        let query = captured.join(format!("{name}.sql"));
        std::fs::write(&head, answer.headers_for_replay()).expect("write head");
        std::fs::write(&body, &answer.body).expect("write body");
        let mut text = numbered_placeholders(store, &sql);
        for b in binds {
            let _ = write!(text, "\n{b}");
        }
        std::fs::write(&query, text).expect("write query");
        routes.push(Route {
            path: path.to_owned(),
            head,
            body,
            query,
        });
    }
    let bare = Bare::start(bare_bin, &routes, None).await;
    let floor = Bare::start(bare_bin, &routes, Some(url)).await;
    for server in [&bare, &floor] {
        for (path, answer) in [(list_path, &list), (site_path.as_str(), &site)] {
            let copy = http(server.port, "GET", path, Some(&token), None)
                .await
                .expect("bare answer");
            assert_eq!(copy.status, 200, "{path}: {}", copy.text());
            assert!(copy.body == answer.body, "bare body differs for {path}");
            assert_eq!(
                copy.header_names(),
                answer.header_names(),
                "bare headers differ for {path}"
            );
        }
    }
    println!(
        "[{store}] login p50 {:.1} ms; list answer {} B body + {} B head (bare head {} B), \
         site answer {} B body + {} B head",
        login.p50_us / 1e3,
        list.body.len(),
        list.head.len(),
        bare_head_len(&bare, list_path, &token).await,
        site.body.len(),
        site.head.len()
    );

    let mut loads = Vec::new();
    let mut measured = Vec::new();
    let target = |who, port, pid| Target { who, port, pid };
    for (endpoint, path, body_len) in [
        ("GET /api/v1/websites?limit=50", list_path, list.body.len()),
        (
            "GET /api/v1/websites/{id}",
            site_path.as_str(),
            site.body.len(),
        ),
    ] {
        if !wrk {
            loads.push(EndpointLoad {
                endpoint,
                body: body_len,
                loads: None,
            });
            continue;
        }
        let bare_load = run_wrk(
            scale,
            target("bare", bare.port, bare.child.id()),
            path,
            &token,
            store,
        );
        let sql_load = run_wrk(
            scale,
            target("sql", floor.port, floor.child.id()),
            path,
            &token,
            store,
        );
        let panel_load = run_wrk(
            scale,
            target("panel", panel.port, panel.pid()),
            path,
            &token,
            store,
        );
        measured.push((
            endpoint,
            path.to_owned(),
            body_len,
            bare_load,
            sql_load,
            panel_load,
        ));
    }
    let (panel_hwm_kib, panel_rss_kib) = memory(panel.pid());
    let (bare_hwm_kib, _) = memory(bare.child.id());
    let (floor_hwm_kib, _) = memory(floor.child.id());
    panel.stop();
    // The same panel over the same store and data directory (so the token still works), with
    // its read cache off: what every request costs when it reads the store.
    if !measured.is_empty() {
        let mut uncached = Panel::start(scale, panel_bin, dir, url, Some(0));
        uncached.wait_ready().await;
        for (endpoint, path, body_len, bare, sql, panel) in measured {
            let uncached_load = run_wrk(
                scale,
                target("panel-uncached", uncached.port, uncached.pid()),
                &path,
                &token,
                store,
            );
            loads.push(EndpointLoad {
                endpoint,
                body: body_len,
                loads: Some(Loads {
                    bare,
                    sql,
                    panel,
                    uncached: uncached_load,
                }),
            });
        }
        uncached.stop();
    }
    drop(bare);
    drop(floor);
    StoreResult {
        store: store.to_owned(),
        seed: seed_time,
        sites: site_count,
        login,
        loads,
        ready_hwm_kib,
        login_hwm_kib,
        panel_hwm_kib,
        panel_rss_kib,
        bare_hwm_kib,
        floor_hwm_kib,
    }
}

async fn bare_head_len(bare: &Bare, path: &str, token: &str) -> usize {
    http(bare.port, "GET", path, Some(token), None)
        .await
        .map_or(0, |a| a.head.len())
}

/// Seeds the store behind `url`: a node, `tenants` tenants with an admin each, and
/// `sites_per_tenant` websites per tenant; the middle tenant's admin gets [`PASSWORD`].
/// Returns that admin's e-mail and the number of websites.
async fn seed(scale: &Scale, url: &str) -> (String, usize) {
    let store = SqlStore::open(
        url,
        &StoreOptions {
            max_connections: 16,
            ..StoreOptions::default()
        },
    )
    .await
    .expect("open store");
    let op = Operator::assume();
    let node = store
        .create_node(
            &op,
            NewNode {
                name: "bench-web".parse().unwrap(),
                address: "10.0.0.1:8443".parse().unwrap(),
                roles: BTreeSet::from([NodeRole::Web]),
            },
        )
        .await
        .expect("node");
    let mut admins = Vec::new();
    for t in 0..scale.tenants {
        let tenant = store
            .create_tenant(
                &op,
                NewTenant {
                    name: format!("Tenant {t}").parse().unwrap(),
                    slug: format!("tenant-{t}").parse().unwrap(),
                    quotas: Default::default(),
                },
            )
            .await
            .expect("tenant");
        let admin = store
            .create_user_as_operator(
                &op,
                tenant.id,
                NewUser {
                    role: Role::Admin,
                    email: format!("admin@t{t}.example.com").parse().unwrap(),
                },
            )
            .await
            .expect("admin");
        admins.push(Caller {
            tenant: tenant.id,
            user: admin.id,
            role: Role::Admin,
        });
    }
    let chosen = scale.tenants / 2;
    let hash = hash_password(&PASSWORD.parse().unwrap()).expect("hash");
    let user: UserId = admins[chosen].user;
    store.set_password(user, &hash).await.expect("set password");

    let jobs = (0..scale.sites_per_tenant).flat_map(|s| (0..scale.tenants).map(move |t| (t, s)));
    futures::stream::iter(jobs)
        .for_each_concurrent(INSERT_CONCURRENCY, |(t, s)| {
            let store = &store;
            let caller = admins[t];
            let new = NewWebsite {
                owner_id: caller.user,
                domain: format!("site{s}.tenant{t}.example.com").parse().unwrap(),
                aliases: vec![
                    format!("www.site{s}.tenant{t}.example.com")
                        .parse()
                        .unwrap(),
                ],
                node_id: node.id,
                web_server: WebServerKind::Nginx,
                php_version: Some(PhpVersion::V8_2),
                system_user: format!("t{t}s{s}").parse().unwrap(),
                document_root: "public_html".parse().unwrap(),
                settings: WebsiteSettings::default(),
            };
            async move {
                store.create_website(&caller, new).await.expect("insert");
            }
        })
        .await;
    store.close().await;
    (
        format!("admin@t{chosen}.example.com"),
        scale.tenants * scale.sites_per_tenant,
    )
}

/// The columns `hosting_db` selects for a website (its `rows::WEBSITE_COLUMNS`, which is
/// crate-private): the SQL floor sends the store's own statement.
const WEBSITE_COLUMNS: &str = "w.id, w.tenant_id, w.owner_id, w.domain, w.aliases, \
     w.node_id, w.web_server, w.php_version, w.system_user, w.document_root, w.status, \
     w.created_at, w.updated_at, c.php_memory_limit, c.php_max_execution_time, \
     c.php_upload_max_size, c.php_post_max_size, c.php_extensions, c.db_engine, c.db_name, \
     c.db_charset, c.db_collation, c.ssl_enabled, c.ssl_provider, c.ssl_auto_renew, c.gzip, \
     c.cache_ttl_secs, c.security_headers, c.allowed_ips, c.blocked_ips, c.www_redirect, \
     c.extra_directives";

/// `?` placeholders as PostgreSQL's `$1, $2, ...` (as the store rewrites them).
fn numbered_placeholders(store: &str, sql: &str) -> String {
    if store != "postgres" {
        return sql.to_owned();
    }
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            let _ = write!(out, "${n}");
        } else {
            out.push(c);
        }
    }
    out
}

/// A child process killed (and reaped) when dropped, also on a panic.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The panel server, as its own process.
struct Panel {
    child: Reaped,
    port: u16,
    log: PathBuf,
}

impl Panel {
    /// The panel over `url` with `read_cache_mib` (the shipped default when `None`).
    fn start(
        scale: &Scale,
        bin: &Path,
        dir: &TempDir,
        url: &str,
        read_cache_mib: Option<u32>,
    ) -> Self {
        let port = free_port();
        let data = dir.path().join("data");
        let mut log_level = scale
            .log_level
            .as_deref()
            .map_or(String::new(), |l| format!("log_level = {l:?}\n"));
        if let Some(mib) = read_cache_mib {
            let _ = writeln!(log_level, "read_cache_mib = {mib}");
        }
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\n\
             data_dir = {data:?}\n\
             database_url = {url:?}\n\
             admin_email = \"operator@panel.example\"\n\
             access_ttl_secs = 3600\n\
             login_attempts_per_minute = 1000\n\
             shutdown_grace_secs = 5\n\
             {log_level}\
             [node]\nnginx = \"\"\nphp_system_dir = \"\"\n",
            data = data.display().to_string(),
        );
        let config_file = dir.path().join("panel.toml");
        std::fs::write(&config_file, config).expect("write config");
        let log = dir.path().join("panel.log");
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        // The environment would override the file, key by key.
        for (name, _) in std::env::vars() {
            if name.starts_with("HOSTING_PANEL_") {
                command.env_remove(name);
            }
        }
        command.env("HOSTING_PANEL_ADMIN_PASSWORD", "operator-password-1");
        let child = command.spawn().expect("start hosting-panel");
        Self {
            child: Reaped(child),
            port,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(a) = http(self.port, "GET", "/ready", None, None).await
                && a.status == 200
            {
                return;
            }
            let exited = !matches!(self.child.0.try_wait(), Ok(None));
            assert!(
                !exited && Instant::now() < deadline,
                "the panel did not become ready; its log ends:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits (the server's grace is 5 s); killed on drop otherwise.
    fn stop(mut self) {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !signalled {
            // No `kill` to send SIGTERM with: the drop kills it.
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("the panel did not exit 15 s after SIGTERM; killing it");
        let _ = self.child.0.kill();
    }
}

/// The bare server, as its own process.
struct Bare {
    child: Child,
    port: u16,
}

/// A path `bare-http` answers: the captured head and body, and the statement `--db` runs.
struct Route {
    path: String,
    head: PathBuf,
    body: PathBuf,
    query: PathBuf,
}

impl Bare {
    /// `bare-http` on `routes`; with `db`, each answer first runs its route's statement there.
    async fn start(bin: &Path, routes: &[Route], db: Option<&str>) -> Self {
        let port = free_port();
        let mut command = Command::new(bin);
        command.arg(format!("127.0.0.1:{port}"));
        if let Some(db) = db {
            command.arg("--db").arg(db);
        }
        for route in routes {
            command.arg(&route.path).arg(&route.head).arg(&route.body);
            if db.is_some() {
                command.arg(&route.query);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start bare-http");
        let bare = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = routes.first().map_or("/", |r| r.path.as_str()).to_owned();
        while http(port, "GET", &probe, None, None).await.is_err() {
            assert!(Instant::now() < deadline, "bare-http did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bare
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak and current resident set of `pid`, in KiB (`VmHWM`, `VmRSS`).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// One HTTP/1.1 answer.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `(name, value)` of each header line, names in lower case.
    fn headers(&self) -> Vec<(String, String)> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect()
    }

    fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.headers().into_iter().map(|(n, _)| n).collect();
        names.sort();
        names
    }

    /// The headers for `bare-http`: all but the ones hyper writes itself.
    fn headers_for_replay(&self) -> String {
        let mut out = String::new();
        for (name, value) in self.headers() {
            if !["content-length", "date", "connection", "transfer-encoding"]
                .contains(&name.as_str())
            {
                let _ = writeln!(out, "{name}: {value}");
            }
        }
        out
    }
}

/// `method path` on 127.0.0.1:`port` on a fresh connection (closed after the answer), with an
/// optional bearer token and JSON body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> std::io::Result<Answer> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(token) = token {
        let _ = write!(request, "Authorization: Bearer {token}\r\n");
    }
    if let Some(json) = json {
        let _ = write!(
            request,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            json.len()
        );
    }
    request.push_str("Connection: close\r\n\r\n");
    if let Some(json) = json {
        request.push_str(json);
    }
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head:?}")))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(std::io::Error::other(
            "chunked answers are not expected here",
        ));
    }
    Ok(Answer { status, head, body })
}

/// A server under load: its port and process.
#[derive(Clone, Copy)]
struct Target {
    who: &'static str,
    port: u16,
    pid: u32,
}

/// CPU time of `/proc/PID/stat`'s line (user + system), or zero.
fn stat_cpu(stat: &str) -> Duration {
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// CPU time `pid` has used so far (user + system).
fn cpu_time(pid: u32) -> Duration {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU time used so far by every process named `postgres` (the database's backends), by pid.
fn postgres_cpu() -> std::collections::BTreeMap<u32, Duration> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if stat.contains("(postgres)") {
            out.insert(pid, stat_cpu(&stat));
        }
    }
    out
}

/// CPU time the whole machine has spent busy so far (all cores), from `/proc/stat`.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).unwrap_or(&0) + fields.get(4).unwrap_or(&0);
    Duration::from_millis(total.saturating_sub(idle) * 10)
}

/// Runs wrk against `path` on `target` (see [`wrk_once`]); in the full run, a run during which
/// other processes used more than 5% of the machine is repeated (at most twice more) after
/// the machine is quiet again, and the last one is kept, marked when still disturbed.
fn run_wrk(scale: &Scale, target: Target, path: &str, token: &str, store: &str) -> Load {
    let mut attempt = 1;
    loop {
        let load = wrk_once(scale, target, path, token, store);
        if !scale.full || !load.disturbed() || attempt == 3 {
            let load = Load { attempt, ..load };
            if load.attempt > 1 {
                println!(
                    "[{store}] {} kept try {}{}",
                    target.who,
                    load.attempt,
                    if load.disturbed() {
                        ", still disturbed"
                    } else {
                        ""
                    }
                );
            }
            return load;
        }
        println!(
            "[{store}] {} run disturbed: other processes used {:.1} s of CPU; again",
            target.who,
            load.other_cpu.as_secs_f64()
        );
        attempt += 1;
    }
}

/// One wrk run against `path` on `target`, and what it reports. Also accounts for the CPU
/// the machine spent meanwhile: the server's, wrk's, PostgreSQL's, and everything else's.
/// With `HOSTING_BENCH_PANEL_PERF=DIR`, the panel is profiled by `perf record` meanwhile (and
/// its figures are then not clean).
fn wrk_once(scale: &Scale, target: Target, path: &str, token: &str, store: &str) -> Load {
    let machine = if scale.full {
        web_sites::settle(scale.settle)
    } else {
        format!("load average {}", web_sites::load_average())
    };
    let url = format!("http://127.0.0.1:{}{path}", target.port);
    let args = [
        format!("-t{}", scale.threads),
        format!("-c{}", scale.connections),
        format!("-d{}s", scale.duration_secs),
        "--latency".to_owned(),
        "-H".to_owned(),
        format!("Authorization: Bearer {token}"),
        url.clone(),
    ];
    let perf = match (&scale.perf_dir, target.who) {
        (Some(dir), "panel") => {
            let name = if path.contains('?') { "list" } else { "site" };
            let out = dir.join(format!("{store}-{name}.perf.data"));
            let child = Command::new("perf")
                .args([
                    "record",
                    "-e",
                    "cpu-clock",
                    "-F",
                    "199",
                    "--call-graph",
                    "dwarf",
                ])
                .arg("-p")
                .arg(target.pid.to_string())
                .arg("-o")
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start perf");
            std::thread::sleep(Duration::from_millis(500));
            println!("[{store}] profiling the panel into {}", out.display());
            Some(child)
        }
        _ => None,
    };
    let busy_before = machine_busy();
    let server_before = cpu_time(target.pid);
    let pg_before = postgres_cpu();
    let started = Instant::now();
    let mut wrk = Command::new("wrk")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wrk");
    // wrk's own CPU, and PostgreSQL's backends' (a pool drops a connection whose query was
    // cancelled, so backends come and go): read until wrk exits, keeping each process's last
    // figure (misses at most its last 100 ms).
    let mut wrk_cpu = Duration::ZERO;
    let mut pg_after = pg_before.clone();
    loop {
        let done = wrk.try_wait().expect("wait for wrk").is_some();
        if !done {
            wrk_cpu = wrk_cpu.max(cpu_time(wrk.id()));
        }
        for (pid, cpu) in postgres_cpu() {
            let seen = pg_after.entry(pid).or_default();
            *seen = (*seen).max(cpu);
        }
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = started.elapsed();
    let server_cpu = cpu_time(target.pid).saturating_sub(server_before);
    let pg_cpu: Duration = pg_after
        .iter()
        .map(|(pid, after)| after.saturating_sub(pg_before.get(pid).copied().unwrap_or_default()))
        .sum();
    let busy = machine_busy().saturating_sub(busy_before);
    let output = wrk.wait_with_output().expect("wrk output");
    if let Some(mut perf) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let _ = perf.wait();
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut load = parse_wrk(&text, machine);
    load.server_cpu = server_cpu;
    load.wrk_cpu = wrk_cpu;
    load.db_cpu = pg_cpu;
    load.other_cpu = busy.saturating_sub(server_cpu + wrk_cpu + pg_cpu);
    load.capacity = wall * cores();
    println!(
        "[{store}] {:5} wrk -t{} -c{} -d{}s --latency -H 'Authorization: Bearer ***' {url}: \
         {:.0} req/s, p50 {}, p99 {}, {} errors ({} socket, {} non-2xx), {:.0} B/answer; \
         CPU: server {:.1} s = {:.0} µs/request, wrk {:.1} s, PostgreSQL {:.1} s, \
         others {:.1} s of {:.1} s; {} threads ({})",
        target.who,
        scale.threads,
        scale.connections,
        scale.duration_secs,
        load.requests_per_sec,
        micros(load.p50_us),
        micros(load.p99_us),
        load.errors(),
        load.socket_errors,
        load.non_2xx,
        load.bytes_read / load.requests.max(1) as f64,
        server_cpu.as_secs_f64(),
        load.cpu_per_request_us(),
        wrk_cpu.as_secs_f64(),
        pg_cpu.as_secs_f64(),
        load.other_cpu.as_secs_f64(),
        load.capacity.as_secs_f64(),
        threads(target.pid),
        load.machine,
    );
    load
}

/// The machine's cores.
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}

/// The number of threads of `pid`.
fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `1.23ms` -> microseconds.
fn wrk_duration_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * factor)
}

/// `35.00MB` -> bytes (wrk's units are powers of 1024).
fn wrk_bytes(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches(',');
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * factor)
}

fn parse_wrk(text: &str, machine: String) -> Load {
    let mut load = Load {
        machine,
        ..Load::default()
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", d] => load.p50_us = wrk_duration_us(d).unwrap_or(f64::NAN),
            ["99%", d] => load.p99_us = wrk_duration_us(d).unwrap_or(f64::NAN),
            ["Requests/sec:", n] => load.requests_per_sec = n.parse().unwrap_or(f64::NAN),
            [n, "requests", "in", _, bytes, "read"] => {
                load.requests = n.parse().unwrap_or(0);
                load.bytes_read = wrk_bytes(bytes).unwrap_or(f64::NAN);
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => load.non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                load.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    assert!(
        load.requests_per_sec.is_finite() && load.requests_per_sec > 0.0 && load.p99_us > 0.0,
        "could not read wrk's output:\n{text}"
    );
    load
}

fn micros(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn thousands(n: f64) -> String {
    let n = n.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The server's CPU time per request, and PostgreSQL's when it worked.
fn cpu_cell(load: &Load) -> String {
    if load.db_cpu > Duration::from_millis(500) {
        format!(
            "{} + {} PostgreSQL",
            micros(load.cpu_per_request_us()),
            micros(load.db_cpu_per_request_us())
        )
    } else {
        micros(load.cpu_per_request_us())
    }
}

/// `†` after a figure taken while other processes were busy (see [`run_wrk`]).
fn mark(load: &Load) -> &'static str {
    if load.disturbed() { " †" } else { "" }
}

fn yes_no(met: bool, miss: String) -> String {
    if met {
        "yes".to_owned()
    } else {
        format!("**no, {miss}**")
    }
}

/// The Markdown report.
fn report(scale: &Scale, results: &[StoreResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrk -t{} -c{} -d{}s --latency; {} websites per store ({} tenants of {}); the admin's \
         tenant holds {} of them.\n",
        scale.threads,
        scale.connections,
        scale.duration_secs,
        scale.tenants * scale.sites_per_tenant,
        scale.tenants,
        scale.sites_per_tenant,
        scale.sites_per_tenant
    );
    let _ = writeln!(
        out,
        "| store | endpoint | server | req/s | p50 | p99 | errors | server CPU / request | req/s / bare | p99 / bare |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let mut checks = Vec::new();
    for r in results {
        for EndpointLoad {
            endpoint,
            body,
            loads,
        } in &r.loads
        {
            let Some(Loads {
                bare,
                sql,
                panel,
                uncached,
            }) = loads
            else {
                let _ = writeln!(
                    out,
                    "| {} | {endpoint} ({body} B) | | skipped: no wrk | | | | | | |",
                    r.store
                );
                continue;
            };
            let row = |label: &str, load: &Load| {
                let share = load.requests_per_sec / bare.requests_per_sec;
                let p99 = load.p99_us / bare.p99_us;
                format!(
                    "| {} | {endpoint} | {label} | {}{} | {} | {} | {} | {} | {:.0}% | {:.2}x |",
                    r.store,
                    thousands(load.requests_per_sec),
                    mark(load),
                    micros(load.p50_us),
                    micros(load.p99_us),
                    load.errors(),
                    cpu_cell(load),
                    share * 100.0,
                    p99
                )
            };
            let _ = writeln!(
                out,
                "| {} | {endpoint} ({} B) | bare axum | {}{} | {} | {} | {} | {} | | |",
                r.store,
                thousands(*body as f64),
                thousands(bare.requests_per_sec),
                mark(bare),
                micros(bare.p50_us),
                micros(bare.p99_us),
                bare.errors(),
                cpu_cell(bare)
            );
            let _ = writeln!(out, "{}", row("same SQL (raw sqlx), then the bytes", sql));
            let _ = writeln!(out, "{}", row("**panel**", panel));
            let _ = writeln!(out, "{}", row("panel, read cache off", uncached));
            let share = panel.requests_per_sec / bare.requests_per_sec;
            let p99 = panel.p99_us / bare.p99_us;
            let ours = panel;
            checks.push(format!(
                "| {} | {endpoint} | {} | {} | {} |",
                r.store,
                yes_no(ours.errors() == 0, format!("{} errors", ours.errors())),
                yes_no(
                    share >= TARGET_THROUGHPUT_SHARE,
                    format!(
                        "{:.0}% (target {:.0}%)",
                        share * 100.0,
                        TARGET_THROUGHPUT_SHARE * 100.0
                    )
                ),
                yes_no(
                    p99 <= TARGET_P99_RATIO,
                    format!("{p99:.2}x (target {TARGET_P99_RATIO}x)")
                ),
            ));
        }
    }
    if results.iter().any(|r| {
        r.loads.iter().filter_map(|e| e.loads.as_ref()).any(|l| {
            [&l.bare, &l.sql, &l.panel, &l.uncached]
                .iter()
                .any(|x| x.disturbed())
        })
    }) {
        let _ = writeln!(
            out,
            "\n† other processes used more than 5% of the machine during this run (3 tries)."
        );
    }
    let _ = writeln!(
        out,
        "\n| store | seed | panel peak RSS (VmHWM): ready / after logins / end | panel RSS at end | \
         bare / SQL floor peak RSS | RSS < {TARGET_RSS_MIB:.0} MiB | login p50 | login p99 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for r in results {
        let hwm = r.panel_hwm_kib as f64 / 1024.0;
        let _ = writeln!(
            out,
            "| {} | {} sites in {:.1} s | {:.1} / {:.1} / **{hwm:.1}** MiB | {:.1} MiB | {:.1} / {:.1} MiB | {} | {:.1} ms | {:.1} ms (n {}) |",
            r.store,
            r.sites,
            r.seed.as_secs_f64(),
            r.ready_hwm_kib as f64 / 1024.0,
            r.login_hwm_kib as f64 / 1024.0,
            r.panel_rss_kib as f64 / 1024.0,
            r.bare_hwm_kib as f64 / 1024.0,
            r.floor_hwm_kib as f64 / 1024.0,
            yes_no(hwm < TARGET_RSS_MIB, format!("{hwm:.1} MiB")),
            r.login.p50_us / 1e3,
            r.login.p99_us / 1e3,
            r.login.n
        );
    }
    if !checks.is_empty() {
        let _ = writeln!(
            out,
            "\n| store | endpoint | zero errors | req/s >= {:.0}% of bare | p99 <= {TARGET_P99_RATIO}x bare |",
            TARGET_THROUGHPUT_SHARE * 100.0
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for c in checks {
            let _ = writeln!(out, "{c}");
        }
    }
    out
}
