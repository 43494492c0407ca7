//! The real `nginx -t` and `apache2 -t` on every fixture, alone and all together, and their
//! verdicts on configuration they must refuse; a site of another server (a plugin's) is refused
//! before anything is rendered.

use std::path::Path;

use hosting_core::model::Website;
use hosting_core::types::WebServerKind;
use hosting_core::{Error, HostLayout};
use hosting_web::{Apache, ApacheConfig, Nginx, NginxConfig, OpenLiteSpeed, OpenLiteSpeedConfig};

use crate::support::{
    SiteBuilder, TempDir, apache, fixtures, nginx, node_for, server_binary, snapshot_layout,
};

/// `HOSTING_TEST_NGINX`'s binary as a backend on `layout`.
fn nginx_on(binary: &Path, layout: &HostLayout) -> Nginx {
    let mut config = NginxConfig::new(layout.clone());
    config.binary = binary.to_owned();
    Nginx::new(config).expect("nginx backend")
}

/// `HOSTING_TEST_APACHE`'s binary as a backend on `layout`.
fn apache_on(binary: &Path, layout: &HostLayout) -> Apache {
    let mut config = ApacheConfig::new(layout.clone());
    config.binary = binary.to_owned();
    Apache::new(config).expect("apache backend")
}

/// Stages `sites` in a fresh tree and runs the real validator of `kind` on it.
async fn stage_and_validate(
    kind: WebServerKind,
    binary: &Path,
    sites: &[Website],
) -> hosting_core::Result<()> {
    let dir = TempDir::new("validate");
    let layout = node_for(dir.path(), sites);
    let staged = dir.path().join("staged");
    match kind {
        WebServerKind::Nginx => {
            let nginx = nginx_on(binary, &layout);
            nginx.stage(&staged, sites)?;
            nginx.validate(&staged).await
        }
        _ => {
            let apache = apache_on(binary, &layout);
            apache.stage(&staged, sites)?;
            apache.validate(&staged).await
        }
    }
}

async fn every_fixture_passes(kind: WebServerKind, binary: &Path) {
    let all = fixtures(kind);
    for (name, site) in &all {
        if let Err(e) = stage_and_validate(kind, binary, std::slice::from_ref(site)).await {
            panic!("{kind} rejected fixture {name}: {e}");
        }
    }
    let sites: Vec<Website> = all.into_iter().map(|(_, site)| site).collect();
    if let Err(e) = stage_and_validate(kind, binary, &sites).await {
        panic!("{kind} rejected the tree with every fixture: {e}");
    }
}

#[tokio::test]
async fn nginx_accepts_every_fixture() {
    let Some(nginx) = server_binary("HOSTING_TEST_NGINX") else {
        return;
    };
    every_fixture_passes(WebServerKind::Nginx, &nginx).await;
}

#[tokio::test]
async fn apache_accepts_every_fixture() {
    let Some(apache) = server_binary("HOSTING_TEST_APACHE") else {
        return;
    };
    every_fixture_passes(WebServerKind::Apache, &apache).await;
}

/// An unknown operator directive renders (operator directives are written as they are) but
/// the real server refuses it, and the error carries the server's own words naming it.
async fn unknown_directive_is_refused(kind: WebServerKind, binary: &Path, directive: &str) {
    let site = SiteBuilder::new(1, "example.com", kind)
        .operator_directives(&[(directive, &["on"])])
        .build();
    match stage_and_validate(kind, binary, &[site]).await {
        Err(Error::Validation { tool, output }) => {
            assert!(tool.ends_with(" -t"), "tool: {tool}");
            assert!(
                output.contains(directive),
                "{tool} output does not name {directive}: {output}"
            );
        }
        other => panic!("{kind} accepted {directive}: {other:?}"),
    }
}

#[tokio::test]
async fn nginx_refuses_an_unknown_operator_directive() {
    let Some(nginx) = server_binary("HOSTING_TEST_NGINX") else {
        return;
    };
    unknown_directive_is_refused(WebServerKind::Nginx, &nginx, "this_is_not_a_directive").await;
}

#[tokio::test]
async fn apache_refuses_an_unknown_operator_directive() {
    let Some(apache) = server_binary("HOSTING_TEST_APACHE") else {
        return;
    };
    unknown_directive_is_refused(WebServerKind::Apache, &apache, "ThisIsNotADirective").await;
}

#[tokio::test]
async fn a_missing_binary_is_a_backend_error_not_a_verdict() {
    let dir = TempDir::new("missing-binary");
    let site = SiteBuilder::new(1, "example.com", WebServerKind::Nginx).build();
    let layout = node_for(dir.path(), std::slice::from_ref(&site));
    let nginx = nginx_on(Path::new("/nonexistent/nginx"), &layout);
    let staged = dir.path().join("staged");
    nginx.stage(&staged, &[site]).expect("stage");
    let err = nginx.validate(&staged).await.expect_err("no binary");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
}

#[test]
fn staging_refuses_a_tree_that_is_not_empty() {
    let dir = TempDir::new("not-empty");
    let site = SiteBuilder::new(1, "example.com", WebServerKind::Nginx).build();
    let layout = node_for(dir.path(), std::slice::from_ref(&site));
    let nginx = nginx_on(Path::new("nginx"), &layout);
    let staged = dir.path().join("staged");
    nginx
        .stage(&staged, std::slice::from_ref(&site))
        .expect("first stage");
    let err = nginx.stage(&staged, &[site]).expect_err("second stage");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}

#[test]
fn a_plugin_servers_site_is_refused_naming_its_kind() {
    let caddy: WebServerKind = "caddy".parse().expect("a plugin's kind");
    let site = SiteBuilder::new(1, "example.com", caddy).build();
    let layout = snapshot_layout();
    let ols = OpenLiteSpeed::new(OpenLiteSpeedConfig::new(layout.clone())).expect("ols backend");
    for (server, rendered) in [
        ("nginx", nginx(&layout).render_site(&site)),
        ("apache", apache(&layout).render_site(&site)),
        ("openlitespeed", ols.render_site(&site)),
    ] {
        match rendered {
            Err(Error::Invalid { field, reason }) => {
                assert_eq!(field, "web_server", "{server}");
                assert!(reason.contains("served by caddy"), "{server}: {reason}");
            }
            other => panic!("{server}: expected Invalid, got {other:?}"),
        }
    }
    let dir = TempDir::new("plugin-site");
    let err = nginx(&layout)
        .stage(&dir.path().join("staged"), &[site])
        .expect_err("a caddy site is not staged");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}
