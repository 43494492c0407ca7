//! Fixtures, temporary directories, the test certificate and the real-binary switch.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hosting_core::HostLayout;
use hosting_core::model::{
    ExtraDirectives, NodeId, ServerDirective, Ssl, SslProvider, TenantId, UserId, Website,
    WebsiteId, WebsiteSettings, WebsiteStatus, WwwRedirect,
};
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_web::{
    Apache, ApacheConfig, LogMode, Nginx, NginxConfig, OpenLiteSpeed, OpenLiteSpeedConfig,
};

/// Builds a [`Website`] one setting at a time; everything else has a plain default.
#[derive(Debug, Clone)]
pub struct SiteBuilder(Website);

impl SiteBuilder {
    /// A static HTTP site `domain` with id `id`, served by `kind`.
    pub fn new(id: i64, domain: &str, kind: WebServerKind) -> Self {
        Self(Website {
            id: WebsiteId(id),
            tenant_id: TenantId(1),
            owner_id: UserId(1),
            domain: domain.parse().expect("fixture domain"),
            aliases: vec![],
            node_id: NodeId(1),
            web_server: kind,
            php_version: None,
            system_user: format!("site{id}").parse().expect("fixture user"),
            document_root: "public_html".parse().expect("fixture root"),
            status: WebsiteStatus::Active,
            settings: WebsiteSettings::default(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        })
    }

    pub fn php(mut self, version: Option<PhpVersion>) -> Self {
        self.0.php_version = version;
        self
    }

    pub fn tls(mut self, on: bool) -> Self {
        self.0.settings.ssl = if on {
            Ssl::Enabled {
                provider: SslProvider::LetsEncrypt,
                auto_renew: true,
            }
        } else {
            Ssl::Disabled
        };
        self
    }

    pub fn aliases(mut self, names: &[&str]) -> Self {
        self.0.aliases = names
            .iter()
            .map(|n| n.parse().expect("fixture alias"))
            .collect();
        self
    }

    pub fn www(mut self, mode: WwwRedirect) -> Self {
        self.0.settings.www_redirect = mode;
        self
    }

    pub fn allow(mut self, networks: &[&str]) -> Self {
        self.0.settings.allowed_ips = networks
            .iter()
            .map(|n| n.parse().expect("fixture network"))
            .collect();
        self
    }

    pub fn block(mut self, networks: &[&str]) -> Self {
        self.0.settings.blocked_ips = networks
            .iter()
            .map(|n| n.parse().expect("fixture network"))
            .collect();
        self
    }

    /// The tenant's extra directives (rendered only as far as the server's policy accepts them).
    pub fn directives(mut self, directives: &[(&str, &[&str])]) -> Self {
        self.0.settings.extra_directives = directive_list(directives);
        self
    }

    /// The operator's directives (rendered as they are).
    pub fn operator_directives(mut self, directives: &[(&str, &[&str])]) -> Self {
        self.0.settings.operator_directives = directive_list(directives);
        self
    }

    pub fn status(mut self, status: WebsiteStatus) -> Self {
        self.0.status = status;
        self
    }

    pub fn performance(mut self, gzip: bool, cache_ttl_secs: Option<u32>, headers: bool) -> Self {
        self.0.settings.gzip = gzip;
        self.0.settings.cache_ttl_secs = cache_ttl_secs;
        self.0.settings.security_headers = headers;
        self
    }

    pub fn build(self) -> Website {
        self.0
    }
}

fn directive_list(directives: &[(&str, &[&str])]) -> ExtraDirectives {
    let list: Vec<ServerDirective> = directives
        .iter()
        .map(|(name, args)| ServerDirective {
            name: name.parse().expect("fixture directive"),
            args: args
                .iter()
                .map(|a| a.parse().expect("fixture argument"))
                .collect(),
        })
        .collect();
    list.try_into().expect("fixture directives")
}

/// Tenant directives each server's policy accepts (and the server itself), with arguments.
pub fn valid_directives(kind: WebServerKind) -> &'static [(&'static str, &'static [&'static str])] {
    match kind {
        WebServerKind::Nginx => &[
            ("client_max_body_size", &["128m"]),
            ("keepalive_timeout", &["30"]),
            ("charset", &["utf-8"]),
            ("auth_basic_user_file", &["private/htpasswd"]),
        ],
        WebServerKind::Apache => &[
            ("LimitRequestBody", &["134217728"]),
            ("Header", &["set", "X-Tuned", "yes"]),
            ("AddDefaultCharset", &["utf-8"]),
            ("AuthUserFile", &["private/htpasswd"]),
        ],
        _ => &[("enableIpGeo", &["0"]), ("addDefaultCharset", &["on"])],
    }
}

/// A tenant directive outside each server's policy: a log file of the node.
pub fn refused_directive(kind: WebServerKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        WebServerKind::Nginx => ("access_log", &["/etc/tenant.log"]),
        WebServerKind::Apache => ("CustomLog", &["/etc/tenant.log", "combined"]),
        _ => ("errorlog", &["/etc/tenant.log"]),
    }
}

/// An operator directive (outside the policy) each server accepts inside a site's block.
pub fn operator_directive(kind: WebServerKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        WebServerKind::Nginx => ("sendfile", &["off"]),
        WebServerKind::Apache => ("KeepAliveTimeout", &["30"]),
        _ => ("enableBr", &["1"]),
    }
}

/// The fixture matrix for `kind`: PHP none/8.0-8.4 x TLS off/on, then one variant per
/// feature. Names are unique and ids and domains are unique within a kind.
pub fn fixtures(kind: WebServerKind) -> Vec<(String, Website)> {
    let mut out = Vec::new();
    let versions = std::iter::once(None).chain(PhpVersion::ALL.into_iter().map(Some));
    for php in versions {
        for tls in [false, true] {
            let php_name = php.map_or("static".to_owned(), |v| format!("php{}", v.as_str()));
            let name = format!("{php_name}-{}", if tls { "https" } else { "http" });
            let id = out.len() as i64 + 1;
            let domain = format!("{}.example.com", name.replace('.', ""));
            let site = SiteBuilder::new(id, &domain, kind)
                .php(php)
                .tls(tls)
                .build();
            out.push((name, site));
        }
    }
    let mut variant = |name: &str, build: &dyn Fn(SiteBuilder) -> SiteBuilder, domain: &str| {
        let id = out.len() as i64 + 1;
        let site = build(SiteBuilder::new(id, domain, kind)).build();
        out.push((name.to_owned(), site));
    };
    variant(
        "aliases-to-www",
        &|b| {
            b.aliases(&[
                "www.example.org",
                "shop.example.org",
                "www.shop.example.org",
            ])
            .www(WwwRedirect::ToWww)
            .tls(true)
            .php(Some(PhpVersion::V8_3))
        },
        "example.org",
    );
    variant(
        "aliases-to-apex",
        &|b| {
            b.aliases(&["example.net", "static.example.net"])
                .www(WwwRedirect::ToApex)
        },
        "www.example.net",
    );
    variant(
        "www-without-counterpart",
        &|b| b.aliases(&["blog.example.info"]).www(WwwRedirect::ToWww),
        "example.info",
    );
    variant(
        "ip-allow-and-block",
        &|b| {
            b.allow(&["10.0.0.0/8", "192.168.1.10", "2001:db8::/32"])
                .block(&["10.1.2.3", "2001:db8::1"])
                .php(Some(PhpVersion::V8_2))
        },
        "private.example.com",
    );
    variant(
        "ip-block-only",
        &|b| b.block(&["203.0.113.0/24", "198.51.100.7"]),
        "public.example.com",
    );
    variant(
        "extra-directives",
        &|b| {
            let mut tenant = valid_directives(kind).to_vec();
            tenant.push(refused_directive(kind));
            b.directives(&tenant)
                .operator_directives(&[operator_directive(kind)])
                .php(Some(PhpVersion::V8_1))
                .tls(true)
        },
        "tuned.example.com",
    );
    variant(
        "gzip-cache-headers",
        &|b| {
            b.performance(true, Some(86_400), true)
                .tls(true)
                .php(Some(PhpVersion::V8_4))
        },
        "fast.example.com",
    );
    variant(
        "gzip-cache-headers-http",
        &|b| b.performance(true, Some(600), true),
        "fast-http.example.com",
    );
    variant(
        "suspended",
        &|b| {
            b.status(WebsiteStatus::Suspended)
                .aliases(&["www.paused.example.com", "shop.paused.example.com"])
                .www(WwwRedirect::ToWww)
                .php(Some(PhpVersion::V8_3))
                .directives(valid_directives(kind))
        },
        "paused.example.com",
    );
    variant(
        "suspended-https",
        &|b| {
            b.status(WebsiteStatus::Suspended)
                .tls(true)
                .php(Some(PhpVersion::V8_2))
        },
        "paused-tls.example.com",
    );
    out
}

/// All three servers' fixture kinds.
pub const KINDS: [WebServerKind; 3] = [
    WebServerKind::Nginx,
    WebServerKind::Apache,
    WebServerKind::OpenLiteSpeed,
];

/// Renders `site` with `kind`'s default backend on `layout`: every file, headed by its path.
pub fn render_all(kind: WebServerKind, layout: &HostLayout, site: &Website) -> String {
    let files = match kind {
        WebServerKind::Nginx => nginx(layout).render_site(site),
        WebServerKind::Apache => apache(layout).render_site(site),
        _ => OpenLiteSpeed::new(OpenLiteSpeedConfig::new(layout.clone()))
            .expect("openlitespeed")
            .render_site(site),
    }
    .expect("render");
    files
        .iter()
        .map(|f| format!("=== {} ===\n{}", f.path, f.contents))
        .collect()
}

/// An nginx backend with default settings on `layout`, except per-site logs: the fixture
/// snapshots show the per-site form; `log_modes.rs` snapshots the shared one (the default).
pub fn nginx(layout: &HostLayout) -> Nginx {
    let mut config = NginxConfig::new(layout.clone());
    config.log_mode = LogMode::PerSite;
    Nginx::new(config).expect("nginx backend")
}

/// An Apache backend with default settings on `layout`, except per-site logs (see [`nginx`]).
pub fn apache(layout: &HostLayout) -> Apache {
    let mut config = ApacheConfig::new(layout.clone());
    config.log_mode = LogMode::PerSite;
    Apache::new(config).expect("apache backend")
}

/// The layout snapshots are rendered with: fixed, so snapshots do not depend on the machine.
pub fn snapshot_layout() -> HostLayout {
    HostLayout::under("/srv/hosting")
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hosting-web-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether this run is CI, where a missing server binary fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The server binary named by `var`, or `None` after reporting the test as skipped.
///
/// # Panics
/// Under `CI=true` when the variable is missing: CI must run every real-server test.
pub fn server_binary(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if in_ci() => panic!(
            "{var} is not set and CI=true: real-server tests must run in CI (scripts/lib/servers.sh sets it)"
        ),
        _ => {
            eprintln!("SKIPPED: {var} is not set");
            None
        }
    }
}

/// One self-signed certificate and key per test run: `(certificate, key)`.
pub fn test_certificate() -> &'static (PathBuf, PathBuf) {
    static PAIR: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hosting-web-cert");
        std::fs::create_dir_all(&dir).expect("certificate dir");
        let pid = std::process::id();
        let (cert_tmp, key_tmp) = (
            dir.join(format!("{pid}.crt")),
            dir.join(format!("{pid}.key")),
        );
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test",
            ])
            .args(["-days", "2", "-keyout"])
            .arg(&key_tmp)
            .arg("-out")
            .arg(&cert_tmp)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl req failed: {status}");
        let pair = (dir.join("test.crt"), dir.join("test.key"));
        std::fs::rename(&cert_tmp, &pair.0).expect("certificate in place");
        std::fs::rename(&key_tmp, &pair.1).expect("key in place");
        pair
    })
}

/// A node under `dir` with the directories a server opens at config-test time, and the test
/// certificate at every TLS site's certificate paths.
pub fn node_for(dir: &Path, sites: &[Website]) -> HostLayout {
    let layout = HostLayout::under(dir.join("node"));
    for d in [&layout.log_dir, &layout.cert_dir, &layout.php_run_dir] {
        std::fs::create_dir_all(d).expect("node dir");
    }
    for site in sites {
        let paths = layout.site(site);
        std::fs::create_dir_all(&paths.document_root).expect("document root");
        if matches!(site.settings.ssl, Ssl::Enabled { .. }) {
            let (cert, key) = test_certificate();
            std::fs::copy(cert, &paths.certificate).expect("copy certificate");
            std::fs::copy(key, &paths.certificate_key).expect("copy key");
        }
    }
    layout
}

/// Whether this test runs as root; otherwise `SKIPPED: needs root` is printed (a failure under
/// `CI=true`).
pub fn needs_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if euid == Some("0") {
        return true;
    }
    assert!(!in_ci(), "this test needs root, and CI=true");
    eprintln!("SKIPPED: needs root");
    false
}

/// A server started by a test, stopped with `signal` (and waited for) on drop, also when the
/// test failed half-way.
pub struct Running {
    pub pid_file: PathBuf,
    pub signal: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(&self.pid_file) else {
            return;
        };
        let pid = pid.trim().to_owned();
        let _ = std::process::Command::new("kill")
            .arg(self.signal)
            .arg(&pid)
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(&pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether `pid` is a process that has not exited (a zombie counts as gone).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            != Some("Z")
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An HTTP answer: status, head (header names lower-cased) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `GET path` for `host` on 127.0.0.1:`port`, retried while the server starts.
pub fn fetch(port: u16, host: &str, path: &str) -> Answer {
    fetch_with(port, host, path, "")
}

/// [`fetch`] with `headers` (each ending in `\r\n`) added to the request.
pub fn fetch_with(port: u16, host: &str, path: &str, headers: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<Answer> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                stream,
                "GET {path} HTTP/1.0\r\nHost: {host}\r\n{headers}\r\n"
            )?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw)?;
            let text = String::from_utf8_lossy(&raw).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let status = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
            Ok(Answer {
                status,
                head: head.to_ascii_lowercase(),
                body: body.to_owned(),
            })
        })();
        match attempt {
            Ok(answer) => return answer,
            Err(e) if Instant::now() >= deadline => panic!("GET {path} on {host}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}
