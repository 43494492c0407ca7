//! The per-request credential check (issue #20): `Panel::authenticate` on an access token,
//! which verifies the token's HMAC and then reads its session and user's standing (revoked?,
//! generation, status, role, second factor) from the store, p50/p99, beside the check it
//! replaced, measured in the same run: the HMAC alone plus a lookup in a per-process set of
//! logged-out sessions (what `Panel` did before, trusting the token's role for 300 s).
//!
//! ```text
//! ./scripts/with-servers.sh cargo bench -p hosting-benches --bench credential_check
//! ```
//! SQLite always runs; PostgreSQL and MariaDB run when `HOSTING_TEST_POSTGRES_URL` /
//! `HOSTING_TEST_MARIADB_URL` are set. Under `cargo test --all-targets` (no `--bench`) it runs
//! a short smoke pass.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot set up should stop

mod stats;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hosting_core::auth::{Keyring, PasswordPolicy, SigningKey};
use hosting_core::model::{NewTenant, NewUser, Role, SessionId};
use hosting_core::panel::{AuthSettings, LoginRequest, Panel, PanelParts};
use hosting_core::{Operator, PanelStore, SystemClock};
use hosting_db::{SqlStore, StoreOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (iterations, warmup) = if std::env::args().any(|a| a == "--bench") {
        (20_000, 2_000)
    } else {
        (20, 2)
    };
    println!("| engine | check | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    let (dir, sqlite_url) = hosting_tests::fresh_sqlite();
    run("SQLite", &sqlite_url, iterations, warmup).await;
    drop(dir);
    for (engine, var) in [
        ("PostgreSQL", hosting_tests::POSTGRES_URL),
        ("MariaDB", hosting_tests::MARIADB_URL),
    ] {
        match std::env::var(var) {
            Ok(admin) => {
                let url = hosting_tests::fresh_database(&admin).await;
                run(engine, &url, iterations, warmup).await;
            }
            Err(_) => println!("| {engine} | skipped: {var} not set | | | |"),
        }
    }
}

fn row(engine: &str, check: &str, samples: Vec<Duration>) {
    let s = stats::summarize(samples);
    println!(
        "| {engine} | {check} | {:.1} µs | {:.1} µs | {:.1} µs |",
        s.p50_us, s.p99_us, s.mean_us
    );
}

async fn run(engine: &str, url: &str, iterations: usize, warmup: usize) {
    let store = Arc::new(
        SqlStore::open(url, &StoreOptions::default())
            .await
            .expect("open store"),
    );
    let op = Operator::assume();
    let tenant = store
        .create_tenant(
            &op,
            NewTenant {
                name: "Bench".parse().unwrap(),
                slug: "bench".parse().unwrap(),
                quotas: Default::default(),
            },
        )
        .await
        .unwrap();
    let user = store
        .create_user_as_operator(
            &op,
            tenant.id,
            NewUser {
                role: Role::Admin,
                email: "admin@bench.example".parse().unwrap(),
            },
        )
        .await
        .unwrap();
    let keys = Keyring::new(SigningKey::generate().unwrap());
    let panel = Panel::new(PanelParts {
        store: store.clone(),
        auth: store.clone(),
        jobs: store.clone(),
        clock: Arc::new(SystemClock),
        keys: keys.clone(),
        operator_tenant: tenant.id,
        auth_settings: AuthSettings {
            // Cheap hashes: the login is set-up here, not what is measured.
            password_policy: PasswordPolicy {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..AuthSettings::default()
        },
    });
    let password = "bench-password-1".parse().unwrap();
    let hash = panel.hash_password(password).await.unwrap();
    hosting_core::auth_store::AuthStore::set_password(&*store, user.id, &hash)
        .await
        .unwrap();
    let tokens = panel
        .login(LoginRequest {
            email: "admin@bench.example".parse().unwrap(),
            password: "bench-password-1".parse().unwrap(),
            totp_code: None,
            recovery_code: None,
            source_ip: None,
        })
        .await
        .unwrap();
    let access = tokens.access_token;

    // Before: the HMAC and a per-process set of logged-out sessions, nothing else.
    let revoked: Mutex<BTreeMap<SessionId, i64>> = Mutex::new(BTreeMap::new());
    let mut before = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let started = Instant::now();
        let claims = keys.verify(&access, chrono::Utc::now()).unwrap();
        let out = revoked
            .lock()
            .unwrap()
            .contains_key(&SessionId(claims.session));
        std::hint::black_box((claims, out));
        if i >= warmup {
            before.push(started.elapsed());
        }
    }
    row(engine, "before: HMAC + in-process logout set", before);

    // Now: what every request an access token makes runs.
    let mut now = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let started = Instant::now();
        let actor = panel.authenticate(&access, None).await.unwrap();
        std::hint::black_box(actor);
        if i >= warmup {
            now.push(started.elapsed());
        }
    }
    row(
        engine,
        "**now: `Panel::authenticate` (HMAC + session and standing from the store)**",
        now,
    );
}
