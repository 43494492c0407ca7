//! Whether a login's answer tells a known account from an unknown one by its time (issue
//! #20): `Panel::login` with a wrong password for an existing account, and for an e-mail no
//! account has, interleaved so both see the same machine, under the default argon2id policy
//! (19 MiB, 2 passes). Both must cost one verification and the same statements: the table
//! shows p50, p99 and mean of each and their difference. A statistical check for a bench run,
//! never a timed assertion in a test.
//!
//! ```text
//! ./scripts/with-servers.sh cargo bench -p hosting-benches --bench login_timing
//! ```
//! `LOGIN_TIMING_ROUNDS=N` sets the number of pairs (300 under `--bench`). SQLite always
//! runs; PostgreSQL when `HOSTING_TEST_POSTGRES_URL` is set. Under `cargo test
//! --all-targets` (no `--bench`) it runs a short smoke pass.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot set up should stop

mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hosting_core::auth::{AttemptPolicy, Keyring, SigningKey};
use hosting_core::model::{NewTenant, NewUser, Role};
use hosting_core::panel::{AuthSettings, LoginRequest, Panel, PanelParts};
use hosting_core::{Operator, PanelStore, SystemClock};
use hosting_db::{SqlStore, StoreOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // LOGIN_TIMING_ROUNDS overrides the count (an unoptimised build hashes slowly).
    let rounds = match std::env::var("LOGIN_TIMING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        Some(rounds) => rounds,
        None if std::env::args().any(|a| a == "--bench") => 300,
        None => 3,
    };
    println!("| engine | login | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    let (dir, sqlite_url) = hosting_tests::fresh_sqlite();
    run("SQLite", &sqlite_url, rounds).await;
    drop(dir);
    match std::env::var(hosting_tests::POSTGRES_URL) {
        Ok(admin) => {
            let url = hosting_tests::fresh_database(&admin).await;
            run("PostgreSQL", &url, rounds).await;
        }
        Err(_) => println!(
            "| PostgreSQL | skipped: {} not set | | | |",
            hosting_tests::POSTGRES_URL
        ),
    }
}

fn row(engine: &str, login: &str, samples: Vec<Duration>) -> f64 {
    let s = stats::summarize(samples);
    println!(
        "| {engine} | {login} | {:.2} ms | {:.2} ms | {:.2} ms |",
        s.p50_us / 1e3,
        s.p99_us / 1e3,
        s.mean_us / 1e3
    );
    s.p50_us
}

async fn run(engine: &str, url: &str, rounds: usize) {
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
                email: "known@bench.example".parse().unwrap(),
            },
        )
        .await
        .unwrap();
    let defaults = AuthSettings::default();
    let panel = Panel::new(PanelParts {
        store: store.clone(),
        auth: store.clone(),
        jobs: store.clone(),
        clock: Arc::new(SystemClock),
        keys: Keyring::new(SigningKey::generate().unwrap()),
        operator_tenant: tenant.id,
        auth_settings: AuthSettings {
            // No waits: what is measured is the answer to a guess, not the throttle.
            password_attempts: AttemptPolicy {
                free: u32::MAX,
                ..defaults.password_attempts
            },
            ..defaults
        },
    });
    let hash = panel
        .hash_password("known-password-1".parse().unwrap())
        .await
        .unwrap();
    hosting_core::auth_store::AuthStore::set_password(&*store, user.id, &hash)
        .await
        .unwrap();
    let attempt = |email: &str| LoginRequest {
        email: email.parse().unwrap(),
        password: "wrong-password-1".parse().unwrap(),
        totp_code: None,
        recovery_code: None,
        source_ip: Some("192.0.2.1".parse().unwrap()),
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..rounds + 5 {
        // Alternate which goes first, so neither always follows the other.
        let order = if i % 2 == 0 {
            ["known@bench.example", "nobody@bench.example"]
        } else {
            ["nobody@bench.example", "known@bench.example"]
        };
        for email in order {
            let started = Instant::now();
            let answer = panel.login(attempt(email)).await;
            let took = started.elapsed();
            assert!(answer.is_err(), "a wrong password is refused");
            if i >= 5 {
                if email.starts_with("known") {
                    known.push(took);
                } else {
                    unknown.push(took);
                }
            }
        }
    }
    let k = row(engine, "known account, wrong password", known);
    let u = row(engine, "unknown account", unknown);
    println!(
        "| {engine} | difference of p50 | {:+.2} ms ({:+.1} %) | | |",
        (k - u) / 1e3,
        (k - u) / u * 100.0
    );
}
