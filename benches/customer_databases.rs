//! Customer database provisioning: create database + create user + grant, per engine, p50,
//! beside the same three statements sent through raw sqlx in the same run.
//!
//! ```text
//! ./scripts/with-servers.sh cargo bench -p hosting-benches --bench customer_databases
//! ```
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot set up should stop

mod stats;

use std::time::{Duration, Instant};

use hosting_core::conformance::unique_suffix;
use hosting_core::types::{DbName, DbUserName, Password};
use hosting_core::{DatabaseBackend, DatabaseOptions};
use hosting_db::customer::{CustomerServerConfig, MySqlBackend, PostgresBackend};
use sqlx::{AnyPool, AssertSqlSafe};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs a short smoke pass.
    let iterations = if std::env::args().any(|a| a == "--bench") {
        50
    } else {
        2
    };
    sqlx::any::install_default_drivers();
    println!("| engine | create database + user + grant | raw sqlx, same three statements |");
    println!("|---|---|---|");
    for (engine, var) in [
        ("postgres", hosting_tests::POSTGRES_URL),
        ("mariadb", hosting_tests::MARIADB_URL),
    ] {
        let Ok(url) = std::env::var(var) else {
            println!("| {engine} | skipped: {var} not set | |");
            continue;
        };
        let config = CustomerServerConfig::new(url.clone());
        let backend: Box<dyn DatabaseBackend> = if engine == "postgres" {
            Box::new(PostgresBackend::connect(config).await.expect("connect"))
        } else {
            Box::new(MySqlBackend::connect(config).await.expect("connect"))
        };
        let ours = provision_with_backend(backend.as_ref(), iterations).await;
        let raw = provision_raw(engine, &url, iterations).await;
        println!("| {engine} | {ours} | {raw} |");
    }
}

async fn provision_with_backend(
    backend: &dyn DatabaseBackend,
    iterations: usize,
) -> stats::Summary {
    let password: Password = "bench-password-1".parse().unwrap();
    let mut samples = Vec::with_capacity(iterations);
    let mut created = Vec::new();
    for _ in 0..iterations {
        let suffix = unique_suffix();
        let db: DbName = format!("bench_{suffix}").parse().unwrap();
        let user: DbUserName = format!("bu_{suffix}").parse().unwrap();
        let started = Instant::now();
        backend
            .create_database(&db, &DatabaseOptions::default())
            .await
            .unwrap();
        backend.create_user(&user, &password).await.unwrap();
        backend.grant_all(&user, &db).await.unwrap();
        samples.push(started.elapsed());
        created.push((db, user));
    }
    for (db, user) in created {
        backend.drop_user(&user).await.unwrap();
        backend.drop_database(&db).await.unwrap();
    }
    stats::summarize(samples)
}

/// The floor: the same DDL sent straight through one pool, with no existence checks, quoting
/// or isolation steps.
async fn provision_raw(engine: &str, url: &str, iterations: usize) -> stats::Summary {
    let pool = AnyPool::connect(url).await.unwrap();
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    let mut created = Vec::new();
    for _ in 0..iterations {
        let suffix = unique_suffix();
        let (db, user) = (format!("raw_{suffix}"), format!("ru_{suffix}"));
        let statements = if engine == "postgres" {
            [
                format!("CREATE DATABASE \"{db}\""),
                format!("CREATE ROLE \"{user}\" LOGIN PASSWORD 'bench-password-1'"),
                format!("GRANT ALL PRIVILEGES ON DATABASE \"{db}\" TO \"{user}\""),
            ]
        } else {
            [
                format!("CREATE DATABASE `{db}`"),
                format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'bench-password-1'"),
                format!("GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'%'"),
            ]
        };
        let started = Instant::now();
        for sql in statements {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        samples.push(started.elapsed());
        created.push((db, user));
    }
    for (db, user) in created {
        let cleanup = if engine == "postgres" {
            [
                format!("DROP DATABASE \"{db}\""),
                format!("DROP ROLE \"{user}\""),
            ]
        } else {
            [
                format!("DROP DATABASE `{db}`"),
                format!("DROP USER '{user}'@'%'"),
            ]
        };
        for sql in cleanup {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    pool.close().await;
    stats::summarize(samples)
}
