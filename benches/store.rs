//! Panel store latency: 10,000 websites across 100 tenants; list one tenant's page of 50 and
//! fetch one site by domain, p50/p99, beside the same SQL through raw sqlx (no scoping, no
//! decoding) in the same run; and the time to insert the 10,000 websites.
//!
//! ```text
//! ./scripts/with-servers.sh cargo bench -p hosting-benches --bench store
//! ```
//! SQLite always runs; PostgreSQL and MariaDB run when `scripts/with-servers.sh` (or you) set
//! `HOSTING_TEST_POSTGRES_URL` / `HOSTING_TEST_MARIADB_URL`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot set up should stop

mod stats;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hosting_core::model::{
    NewNode, NewTenant, NewUser, NewWebsite, NodeRole, Role, WebsiteSettings,
};
use hosting_core::rbac::{Caller, Operator};
use hosting_core::types::{DomainName, PhpVersion, WebServerKind};
use hosting_core::{PageLimit, PageRequest, PanelStore};
use hosting_db::{SqlStore, StoreOptions};
use sqlx::{AnyPool, Row};

/// Sizes of one run: the full benchmark under `cargo bench`, a quick smoke run under
/// `cargo test --all-targets` (which runs bench binaries without `--bench`).
#[derive(Clone, Copy)]
struct Scale {
    tenants: usize,
    sites_per_tenant: usize,
    iterations: usize,
    warmup: usize,
}

const FULL: Scale = Scale {
    tenants: 100,
    sites_per_tenant: 100,
    iterations: 2_000,
    warmup: 200,
};
const SMOKE: Scale = Scale {
    tenants: 2,
    sites_per_tenant: 100,
    iterations: 5,
    warmup: 1,
};
/// Concurrent inserts while loading (the panel serves many requests at once).
const INSERT_CONCURRENCY: usize = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    println!("| engine | operation | ours | raw sqlx baseline |");
    println!("|---|---|---|---|");
    let (dir, sqlite_url) = hosting_tests::fresh_sqlite();
    run(scale, "sqlite", &sqlite_url).await;
    drop(dir);
    for (engine, var) in [
        ("postgres", hosting_tests::POSTGRES_URL),
        ("mariadb", hosting_tests::MARIADB_URL),
    ] {
        match std::env::var(var) {
            Ok(admin) => run(scale, engine, &hosting_tests::fresh_database(&admin).await).await,
            Err(_) => println!("| {engine} | skipped: {var} not set | | |"),
        }
    }
}

async fn run(scale: Scale, engine: &str, url: &str) {
    let Scale {
        tenants,
        sites_per_tenant,
        ..
    } = scale;
    let options = StoreOptions {
        max_connections: 16,
        ..StoreOptions::default()
    };
    let store = SqlStore::open(url, &options).await.expect("open store");
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
        .unwrap();
    let mut admins = Vec::new();
    for t in 0..tenants {
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
            .unwrap();
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
            .unwrap();
        admins.push(Caller {
            tenant: tenant.id,
            user: admin.id,
            role: Role::Admin,
        });
    }

    let domain = |t: usize, s: usize| -> DomainName {
        format!("site{s}.tenant{t}.example.com").parse().unwrap()
    };
    let jobs = (0..sites_per_tenant).flat_map(|s| (0..tenants).map(move |t| (t, s)));
    let started = Instant::now();
    futures::stream::iter(jobs)
        .for_each_concurrent(INSERT_CONCURRENCY, |(t, s)| {
            let store = &store;
            let caller = admins[t];
            let new = NewWebsite {
                owner_id: caller.user,
                domain: domain(t, s),
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
    let insert = started.elapsed();
    println!(
        "| {engine} | insert {} websites ({INSERT_CONCURRENCY} concurrent) | {:.2} s total, {:.0} µs/site | |",
        tenants * sites_per_tenant,
        insert.as_secs_f64(),
        insert.as_secs_f64() * 1e6 / (tenants * sites_per_tenant) as f64
    );

    let raw = AnyPool::connect(&raw_url(url))
        .await
        .expect("baseline pool");
    let caller = admins[tenants / 2];
    let placeholder = |n: usize| {
        if engine == "postgres" {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    };

    let page = PageRequest::first(PageLimit::try_from(50).unwrap());
    let ours = measure(scale, |_| async {
        let p = store.list_websites(&caller, page).await.unwrap();
        assert_eq!(p.items.len(), 50);
    })
    .await;
    let list_sql = format!(
        "SELECT * FROM websites w JOIN website_configs c ON c.website_id = w.id \
         WHERE w.tenant_id = {} ORDER BY w.id LIMIT 50",
        placeholder(1)
    );
    let baseline = measure(scale, |_| async {
        let rows = sqlx::query(sqlx::AssertSqlSafe(list_sql.clone()))
            .bind(caller.tenant.0)
            .fetch_all(&raw)
            .await
            .unwrap();
        assert_eq!(rows.len(), 50);
    })
    .await;
    println!("| {engine} | list a tenant's page of 50 | {ours} | {baseline} |");

    let first = store.list_websites(&caller, page).await.unwrap();
    let second = PageRequest {
        after: first.next_after,
        ..page
    };
    let ours = measure(scale, |_| async {
        let p = store.list_websites(&caller, second).await.unwrap();
        assert_eq!(p.items.len(), 50);
    })
    .await;
    let next_sql = format!(
        "SELECT * FROM websites w JOIN website_configs c ON c.website_id = w.id \
         WHERE w.tenant_id = {} AND w.id > {} ORDER BY w.id LIMIT 50",
        placeholder(1),
        placeholder(2)
    );
    let baseline = measure(scale, |_| async {
        let rows = sqlx::query(sqlx::AssertSqlSafe(next_sql.clone()))
            .bind(caller.tenant.0)
            .bind(second.after.unwrap())
            .fetch_all(&raw)
            .await
            .unwrap();
        assert_eq!(rows.len(), 50);
    })
    .await;
    println!("| {engine} | list the next page of 50 (keyset) | {ours} | {baseline} |");

    let t = tenants / 2;
    let ours = measure(scale, |i| {
        let d = domain(t, i % sites_per_tenant);
        let store = &store;
        async move {
            let site = store.get_website_by_domain(&caller, &d).await.unwrap();
            assert_eq!(site.domain, d);
        }
    })
    .await;
    let get_sql = format!(
        "SELECT * FROM websites w JOIN website_configs c ON c.website_id = w.id \
         WHERE w.domain = {}",
        placeholder(1)
    );
    let baseline = measure(scale, |i| {
        let d = domain(t, i % sites_per_tenant).to_string();
        let (raw, sql) = (&raw, get_sql.clone());
        async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(d.clone())
                .fetch_one(raw)
                .await
                .unwrap();
            assert_eq!(row.try_get::<String, _>("domain").unwrap(), d);
        }
    })
    .await;
    println!("| {engine} | fetch one site by domain | {ours} | {baseline} |");
    raw.close().await;
    store.close().await;
}

/// The store normalises `sqlite:` URLs; the baseline pool needs the same file.
fn raw_url(url: &str) -> String {
    match url.strip_prefix("sqlite://") {
        Some(path) => format!("sqlite://{path}"),
        None => url.to_owned(),
    }
}

async fn measure<F, Fut>(scale: Scale, mut op: F) -> stats::Summary
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    sqlx::any::install_default_drivers();
    for i in 0..scale.warmup {
        op(i).await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(scale.iterations);
    for i in 0..scale.iterations {
        let started = Instant::now();
        op(i).await;
        samples.push(started.elapsed());
    }
    stats::summarize(samples)
}
