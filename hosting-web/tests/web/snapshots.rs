//! Every fixture of every server, rendered and compared with its reviewed snapshot in
//! `tests/snapshots/` (refresh with `INSTA_UPDATE=always cargo test -p hosting-web`), with
//! per-site logs; `log_modes.rs` snapshots the shared log mode.

use hosting_core::model::WwwRedirect;
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_web::{
    Apache, ApacheConfig, LogMode, Nginx, NginxConfig, OpenLiteSpeed, OpenLiteSpeedConfig, Ports,
};

use crate::support::{KINDS, SiteBuilder, fixtures, render_all, snapshot_layout};

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings
}

#[test]
fn every_fixture_matches_its_snapshot() {
    let layout = snapshot_layout();
    settings().bind(|| {
        for kind in KINDS {
            for (name, site) in fixtures(kind) {
                insta::assert_snapshot!(
                    format!("{kind}__{name}"),
                    render_all(kind, &layout, &site)
                );
            }
        }
    });
}

#[test]
fn non_default_ports_reach_listeners_and_redirects() {
    let ports = Ports {
        http: 8080,
        https: 8443,
    };
    let layout = snapshot_layout();
    settings().bind(|| {
        for kind in KINDS {
            let site = SiteBuilder::new(7, "example.org", kind)
                .aliases(&["www.example.org"])
                .www(WwwRedirect::ToWww)
                .tls(true)
                .php(Some(PhpVersion::V8_2))
                .build();
            let files = match kind {
                WebServerKind::Nginx => {
                    let mut config = NginxConfig::new(layout.clone());
                    config.ports = ports;
                    config.listen_ipv6 = false;
                    config.log_mode = LogMode::PerSite;
                    Nginx::new(config).expect("nginx").render_site(&site)
                }
                WebServerKind::Apache => {
                    let mut config = ApacheConfig::new(layout.clone());
                    config.ports = ports;
                    config.log_mode = LogMode::PerSite;
                    Apache::new(config).expect("apache").render_site(&site)
                }
                _ => {
                    let mut config = OpenLiteSpeedConfig::new(layout.clone());
                    config.ports = ports;
                    OpenLiteSpeed::new(config).expect("ols").render_site(&site)
                }
            }
            .expect("render");
            let text: String = files
                .iter()
                .map(|f| format!("=== {} ===\n{}", f.path, f.contents))
                .collect();
            assert!(text.contains("https://www.example.org:8443"), "{text}");
            insta::assert_snapshot!(format!("{kind}__custom-ports"), text);
        }
    });
}
