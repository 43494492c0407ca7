//! OpenLiteSpeed has no binary on these machines: its output is proven by the snapshots and by
//! the structure checks here, and `validate` says it cannot check.

use std::collections::BTreeSet;
use std::path::Path;

use hosting_core::Error;
use hosting_core::model::WwwRedirect;
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_web::{OpenLiteSpeed, OpenLiteSpeedConfig};

use crate::support::{SiteBuilder, fixtures, snapshot_layout};

fn backend() -> OpenLiteSpeed {
    OpenLiteSpeed::new(OpenLiteSpeedConfig::new(snapshot_layout())).expect("openlitespeed")
}

/// Every block opens with `{` at the end of a line and closes with `}` alone at the start of
/// one (OpenLiteSpeed's own rule), and every `<<<END_x` heredoc is closed by `END_x`.
fn assert_well_formed(path: &str, text: &str) {
    let mut depth = 0usize;
    let mut heredoc: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(end) = &heredoc {
            if line == end {
                heredoc = None;
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((_, tag)) = line.split_once("<<<") {
            heredoc = Some(tag.to_owned());
        } else if line.ends_with('{') {
            depth += 1;
        } else if line == "}" {
            depth = depth
                .checked_sub(1)
                .unwrap_or_else(|| panic!("{path}:{}: unmatched }}", n + 1));
        } else {
            assert!(
                !line.contains('{') && !line.contains('}'),
                "{path}:{}: brace inside a value line: {line}",
                n + 1
            );
        }
    }
    assert_eq!(depth, 0, "{path}: unclosed block");
    assert!(heredoc.is_none(), "{path}: unclosed heredoc");
}

#[test]
fn every_fixture_is_well_formed_and_its_files_agree() {
    let ols = backend();
    for (name, site) in fixtures(WebServerKind::OpenLiteSpeed) {
        let files = ols.render_site(&site).expect("render");
        let paths: BTreeSet<String> = files.iter().map(|f| f.path.to_string()).collect();
        let vhost = format!("site{}", site.id);
        let mut expected = BTreeSet::from([
            format!("vhosts/{vhost}/vhconf.conf"),
            format!("sites/{vhost}.conf"),
            format!("listeners/http/{vhost}.conf"),
        ]);
        let tls = matches!(site.settings.ssl, hosting_core::model::Ssl::Enabled { .. });
        if tls {
            expected.insert(format!("listeners/https/{vhost}.conf"));
        }
        assert_eq!(paths, expected, "{name}");
        for file in &files {
            assert_well_formed(&format!("{name}/{}", file.path), &file.contents);
        }
        let text = |suffix: &str| {
            files
                .iter()
                .find(|f| f.path.as_str().ends_with(suffix))
                .map(|f| f.contents.clone())
                .expect("file")
        };
        let declaration = text(&format!("sites/{vhost}.conf"));
        assert!(
            declaration.contains(&format!("virtualhost {vhost} {{")),
            "{name}"
        );
        assert!(
            declaration.contains(&format!("$SERVER_ROOT/conf/vhosts/{vhost}/vhconf.conf")),
            "{name}: the declaration points at the vhost's own file"
        );
        let mut names = vec![site.domain.to_string()];
        names.extend(site.aliases.iter().map(ToString::to_string));
        let map = format!("map                       {vhost} {}\n", names.join(", "));
        assert!(
            text(&format!("listeners/http/{vhost}.conf")).ends_with(&map),
            "{name}"
        );
        let vhconf = text("vhconf.conf");
        let paths = snapshot_layout().site(&site);
        assert!(vhconf.contains(&format!(
            "docRoot                   {}/",
            paths.document_root.display()
        )));
        assert!(vhconf.contains(&format!("errorlog {} {{", paths.error_log.display())));
        assert!(vhconf.contains(&format!("accesslog {} {{", paths.access_log.display())));
        assert_eq!(
            vhconf.contains(&format!(
                "certFile                {}",
                paths.certificate.display()
            )),
            tls,
            "{name}"
        );
        match &paths.php_socket {
            Some(socket) => {
                assert!(
                    vhconf.contains(&format!("uds:/{}", socket.display())),
                    "{name}"
                );
                assert!(vhconf.contains(&format!("add                     fcgi:{vhost}-php php")));
            }
            None => assert!(!vhconf.contains("scripthandler"), "{name}"),
        }
    }
}

#[test]
fn redirect_rules_match_only_the_redirected_name() {
    let site = SiteBuilder::new(3, "example.org", WebServerKind::OpenLiteSpeed)
        .aliases(&["www.example.org"])
        .www(WwwRedirect::ToWww)
        .php(Some(PhpVersion::V8_2))
        .build();
    let files = backend().render_site(&site).expect("render");
    let vhconf = &files[0].contents;
    assert!(vhconf.contains("RewriteCond %{HTTP_HOST} ^example[.]org(:[0-9]+)?$ [NC]"));
    assert!(vhconf.contains("RewriteRule ^ http://www.example.org%{REQUEST_URI} [R=301,L]"));
    assert!(!vhconf.contains("^www[.]example[.]org"));
}

#[tokio::test]
async fn validate_is_unsupported() {
    let err = backend()
        .validate(Path::new("/nonexistent"))
        .await
        .expect_err("no binary");
    assert!(
        matches!(
            err,
            Error::Unsupported {
                operation: "validate",
                backend: "openlitespeed"
            }
        ),
        "{err:?}"
    );
}
