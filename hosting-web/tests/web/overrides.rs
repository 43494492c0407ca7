//! Operator template overrides: loaded at construction, refused there when broken, and held to
//! the same value checks and the same real validation as the embedded templates.

use std::path::Path;

use hosting_core::types::WebServerKind;
use hosting_core::{Error, HostLayout};
use hosting_web::{Apache, ApacheConfig, Nginx, NginxConfig, OpenLiteSpeed, OpenLiteSpeedConfig};

use crate::support::{SiteBuilder, TempDir, node_for, server_binary, snapshot_layout};

fn nginx_with(overrides: &Path, layout: HostLayout) -> hosting_core::Result<Nginx> {
    let mut config = NginxConfig::new(layout);
    config.template_overrides = Some(overrides.to_owned());
    Nginx::new(config)
}

fn invalid_field(err: &Error) -> String {
    match err {
        Error::Invalid { field, .. } => field.to_string(),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn a_template_that_does_not_parse_is_refused_at_construction_naming_its_file() {
    let dir = TempDir::new("broken-override");
    let file = dir.path().join("nginx-site.conf.j2");
    std::fs::write(&file, "server {\n{% if %}\n}\n").expect("write override");
    let err = nginx_with(dir.path(), snapshot_layout()).expect_err("broken template");
    assert_eq!(invalid_field(&err), file.display().to_string());

    let mut config = ApacheConfig::new(snapshot_layout());
    config.template_overrides = Some(dir.path().to_owned());
    Apache::new(config).expect("an nginx override does not concern Apache");

    std::fs::write(dir.path().join("apache-main.conf.j2"), "{% for x in %}").expect("write");
    let mut config = ApacheConfig::new(snapshot_layout());
    config.template_overrides = Some(dir.path().to_owned());
    let err = Apache::new(config).expect_err("broken Apache template");
    assert!(invalid_field(&err).ends_with("apache-main.conf.j2"));
}

#[test]
fn a_misspelt_override_is_refused_not_ignored() {
    let dir = TempDir::new("misspelt-override");
    let file = dir.path().join("nginx_site.conf.j2");
    std::fs::write(&file, "# never used\n").expect("write override");
    std::fs::write(dir.path().join("README.md"), "notes are fine\n").expect("write notes");
    let mut config = OpenLiteSpeedConfig::new(snapshot_layout());
    config.template_overrides = Some(dir.path().to_owned());
    let err = OpenLiteSpeed::new(config).expect_err("unknown template name");
    assert_eq!(invalid_field(&err), file.display().to_string());
}

#[test]
fn a_missing_override_directory_is_refused() {
    let err = nginx_with(Path::new("/nonexistent/templates"), snapshot_layout())
        .expect_err("no directory");
    assert_eq!(invalid_field(&err), "/nonexistent/templates");
}

#[test]
fn an_override_replaces_the_embedded_template_and_its_values_are_still_checked() {
    let dir = TempDir::new("override");
    std::fs::write(
        dir.path().join("nginx-site.conf.j2"),
        "# operator template for {{ name }}\nserver {\n    listen {{ http_port }};\n    server_name{% for n in names %} {{ n }}{% endfor %};\n    root {{ document_root }};\n}\n",
    )
    .expect("write override");
    let nginx = nginx_with(dir.path(), snapshot_layout()).expect("override parses");
    let site = SiteBuilder::new(9, "example.com", WebServerKind::Nginx)
        .aliases(&["www.example.com"])
        .build();
    let files = nginx.render_site(&site).expect("render");
    assert_eq!(files[0].path.as_str(), "sites/site9.conf");
    assert_eq!(
        files[0].contents,
        "# operator template for site9\nserver {\n    listen 80;\n    server_name example.com www.example.com;\n    root /srv/hosting/sites/site9/public_html;\n}\n"
    );

    for (template, why) in [
        ("{{ names }}", "a list written whole"),
        ("{{ tls }}", "none written as text"),
        ("{{ gzip }}", "a bool written as text"),
        ("{{ name ~ ' ' ~ document_root }}", "a value with a space"),
        ("{{ name ~ ';' }}", "a value with a semicolon"),
        ("{{ undefined_variable }}", "an undefined variable"),
    ] {
        std::fs::write(dir.path().join("nginx-site.conf.j2"), template).expect("write override");
        let nginx = nginx_with(dir.path(), snapshot_layout()).expect("override parses");
        let err = nginx.render_site(&site).expect_err(why);
        assert_eq!(invalid_field(&err), "template nginx-site.conf.j2", "{why}");
    }
}

#[tokio::test]
async fn override_output_goes_through_the_same_real_validation() {
    let Some(binary) = server_binary("HOSTING_TEST_NGINX") else {
        return;
    };
    let dir = TempDir::new("override-validate");
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).expect("templates dir");
    std::fs::write(
        templates.join("nginx-site.conf.j2"),
        "server {\n    listen {{ http_port }};\n    server_name {{ names[0] }};\n    root {{ document_root }};\n    made_up_directive on;\n}\n",
    )
    .expect("write override");
    let site = SiteBuilder::new(4, "example.com", WebServerKind::Nginx).build();
    let layout = node_for(dir.path(), std::slice::from_ref(&site));
    let mut config = NginxConfig::new(layout);
    config.template_overrides = Some(templates);
    config.binary = binary;
    let nginx = Nginx::new(config).expect("nginx");
    let staged = dir.path().join("staged");
    nginx.stage(&staged, &[site]).expect("stage");
    match nginx.validate(&staged).await {
        Err(Error::Validation { output, .. }) => assert!(output.contains("made_up_directive")),
        other => panic!("nginx accepted the override's directive: {other:?}"),
    }
}
