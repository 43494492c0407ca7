//! The dependency arrows of DESIGN.md, checked against `cargo metadata`:
//! - hosting-core depends on no hosting-* crate and on none of sqlx, minijinja, sysinfo, axum,
//!   reqwest (it performs no IO and knows no database, template, system or HTTP crate);
//! - each backend crate (hosting-db, -web, -php, -monitor) depends on hosting-core only among the
//!   hosting-* crates, never on another backend.
//!
//! Only normal (non-dev) dependencies count: backends may run the conformance suites in tests.
#![allow(clippy::expect_used)] // a malformed `cargo metadata` answer should fail the test

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

const BACKENDS: [&str; 4] = [
    "hosting-db",
    "hosting-web",
    "hosting-php",
    "hosting-monitor",
];
const CORE_FORBIDDEN: [&str; 5] = ["sqlx", "minijinja", "sysinfo", "axum", "reqwest"];

/// Each workspace package's normal dependencies, transitively (names only).
fn normal_dependency_closure() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let mut direct: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let id = node["id"].as_str().expect("id");
        let deps = node["deps"].as_array().expect("deps").iter().filter(|d| {
            d["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].is_null())
        });
        direct
            .entry(id)
            .or_default()
            .extend(deps.map(|d| d["pkg"].as_str().expect("pkg")));
    }
    let mut closure = BTreeMap::new();
    for member in meta["workspace_members"].as_array().expect("members") {
        let root = member.as_str().expect("member id");
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            for dep in direct.get(id).into_iter().flatten() {
                if seen.insert(*dep) {
                    stack.push(dep);
                }
            }
        }
        closure.insert(
            name_of[root].to_owned(),
            seen.iter().map(|id| name_of[id].to_owned()).collect(),
        );
    }
    closure
}

#[test]
fn hosting_core_depends_on_no_backend_and_no_io_crate() {
    let closure = normal_dependency_closure();
    let core = &closure["hosting-core"];
    let hosting: Vec<_> = core.iter().filter(|d| d.starts_with("hosting-")).collect();
    assert!(hosting.is_empty(), "hosting-core depends on {hosting:?}");
    let forbidden: Vec<_> = CORE_FORBIDDEN
        .iter()
        .filter(|f| {
            core.iter()
                .any(|d| d == *f || d.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "hosting-core depends on {forbidden:?}"
    );
}

#[test]
fn backends_depend_on_hosting_core_only() {
    let closure = normal_dependency_closure();
    for backend in BACKENDS {
        let deps = closure
            .get(backend)
            .unwrap_or_else(|| panic!("{backend} is a workspace member"));
        let hosting: BTreeSet<_> = deps
            .iter()
            .filter(|d| d.starts_with("hosting-"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            hosting,
            BTreeSet::from(["hosting-core"]),
            "{backend} may depend on hosting-core and no other hosting-* crate"
        );
    }
}

#[test]
fn every_fixed_top_level_directory_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    for dir in [
        "hosting-core",
        "hosting-db",
        "hosting-web",
        "hosting-php",
        "hosting-monitor",
        "examples",
        "bins",
        "tests",
        "benches",
    ] {
        assert!(
            root.join(dir).is_dir(),
            "{dir}/ is part of the fixed layout"
        );
    }
}
