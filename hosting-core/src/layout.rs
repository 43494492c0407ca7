//! Where a site's files, sockets, logs and certificates live on a node.
//!
//! One pure function of the node's [`HostLayout`] and the site's id and PHP version, shared by
//! the web-server and PHP backends, so a vhost always points at the socket its pool listens on:
//! the drift "panel says 8.3, nginx still points at the 8.1 socket" cannot be rendered. Names
//! derive from the site id, never from the domain.

use std::path::PathBuf;

use crate::model::{Website, WebsiteId};
use crate::types::PhpVersion;

/// The node's directories. Every path the backends render is under one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// Parent of every site's home (`/srv/www` on a real node).
    pub sites_root: PathBuf,
    /// Where PHP-FPM sockets are created (`/run/php` on Debian).
    pub php_run_dir: PathBuf,
    /// Where per-site logs are written.
    pub log_dir: PathBuf,
    /// Where each site's certificate and key are kept.
    pub cert_dir: PathBuf,
}

/// The paths of one site, derived from a [`HostLayout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePaths {
    /// Short stable name, `site<ID>`: pool name, file names, log names.
    pub name: String,
    /// The site's home directory; PHP is confined to it by `open_basedir`.
    pub home: PathBuf,
    /// The document root (the site's `document_root` under `home`).
    pub document_root: PathBuf,
    /// Private temporary directory (uploads, `sys_temp_dir`).
    pub tmp_dir: PathBuf,
    /// PHP session files.
    pub session_dir: PathBuf,
    /// The FPM socket for the site's PHP version; `None` for a static site.
    pub php_socket: Option<PathBuf>,
    /// Access log.
    pub access_log: PathBuf,
    /// Error log.
    pub error_log: PathBuf,
    /// Certificate chain (PEM).
    pub certificate: PathBuf,
    /// Private key (PEM).
    pub certificate_key: PathBuf,
}

impl HostLayout {
    /// All directories under one prefix, for servers started by the SDK itself (tests, a
    /// developer machine): `PREFIX/{sites,run,log,certs}`.
    pub fn under(prefix: impl Into<PathBuf>) -> Self {
        let prefix = prefix.into();
        Self {
            sites_root: prefix.join("sites"),
            php_run_dir: prefix.join("run"),
            log_dir: prefix.join("log"),
            cert_dir: prefix.join("certs"),
        }
    }

    /// The stable name of a site's files and pool.
    pub fn site_name(id: WebsiteId) -> String {
        format!("site{}", id.0)
    }

    /// The socket a site's pool listens on for `version`.
    pub fn php_socket(&self, id: WebsiteId, version: PhpVersion) -> PathBuf {
        self.php_run_dir.join(format!(
            "php{}-{}.sock",
            version.as_str(),
            Self::site_name(id)
        ))
    }

    /// Every path of `site`.
    pub fn site(&self, site: &Website) -> SitePaths {
        let name = Self::site_name(site.id);
        let home = self.sites_root.join(&name);
        SitePaths {
            document_root: site.document_root.under(&home),
            tmp_dir: home.join("tmp"),
            session_dir: home.join("sessions"),
            php_socket: site.php_version.map(|v| self.php_socket(site.id, v)),
            access_log: self.log_dir.join(format!("{name}.access.log")),
            error_log: self.log_dir.join(format!("{name}.error.log")),
            certificate: self.cert_dir.join(format!("{name}.crt")),
            certificate_key: self.cert_dir.join(format!("{name}.key")),
            home,
            name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeId, TenantId, UserId, WebsiteSettings, WebsiteStatus};
    use crate::types::WebServerKind;

    fn site(id: i64, php: Option<PhpVersion>) -> Website {
        Website {
            id: WebsiteId(id),
            tenant_id: TenantId(1),
            owner_id: UserId(1),
            domain: "shop.example.com".parse().expect("domain"),
            aliases: vec![],
            node_id: NodeId(1),
            web_server: WebServerKind::Nginx,
            php_version: php,
            system_user: "shop".parse().expect("user"),
            document_root: "public_html".parse().expect("root"),
            status: WebsiteStatus::Active,
            settings: WebsiteSettings::default(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn paths_derive_from_the_site_id_and_php_version_only() {
        let layout = HostLayout::under("/srv/hosting");
        let p = layout.site(&site(42, Some(PhpVersion::V8_2)));
        assert_eq!(p.name, "site42");
        assert_eq!(p.home, PathBuf::from("/srv/hosting/sites/site42"));
        assert_eq!(
            p.document_root,
            PathBuf::from("/srv/hosting/sites/site42/public_html")
        );
        assert_eq!(
            p.php_socket,
            Some(PathBuf::from("/srv/hosting/run/php8.2-site42.sock"))
        );
        assert_eq!(layout.site(&site(42, None)).php_socket, None);
        let switched = layout.site(&site(42, Some(PhpVersion::V8_4)));
        assert_ne!(
            switched.php_socket, p.php_socket,
            "each version has its own socket"
        );
        assert!(
            !format!("{p:?}").contains("shop.example.com"),
            "no domain in any path"
        );
    }
}
