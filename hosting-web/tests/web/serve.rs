//! A staged tree served by a real nginx: PHP requests reach the site's socket through the
//! `set $php_sock ...; fastcgi_pass unix:$php_sock;` form (proven here, not assumed), dotfiles
//! are refused, ACME challenges are answered on a redirected name, and the www redirect keeps
//! the path and query. A small FastCGI responder stands in for PHP-FPM and reports the
//! script it was asked to run.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hosting_core::model::WwwRedirect;
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_web::{Nginx, NginxConfig, Ports};

use crate::support::{SiteBuilder, TempDir, node_for, server_binary};

const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;

/// Answers FastCGI requests on `socket` with the request's `SCRIPT_FILENAME` until dropped.
struct FastCgiStub {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FastCgiStub {
    fn start(socket: &Path) -> Self {
        let listener = UnixListener::bind(socket).expect("bind FastCGI socket");
        // nginx's workers run as www-data when the test runs as root.
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
            .expect("socket permissions");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    answer(stream);
                }
            }
        });
        Self {
            socket: socket.to_owned(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FastCgiStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("short record");
    let mut out = vec![1, kind];
    out.extend(id.to_be_bytes());
    out.extend(len.to_be_bytes());
    out.extend([0, 0]);
    out.extend(content);
    out
}

fn params(mut data: &[u8]) -> BTreeMap<String, String> {
    fn length(data: &mut &[u8]) -> usize {
        if data[0] < 0x80 {
            let n = usize::from(data[0]);
            *data = &data[1..];
            n
        } else {
            let n = u32::from_be_bytes([data[0] & 0x7f, data[1], data[2], data[3]]);
            *data = &data[4..];
            n as usize
        }
    }
    let mut out = BTreeMap::new();
    while !data.is_empty() {
        let name_len = length(&mut data);
        let value_len = length(&mut data);
        let name = String::from_utf8_lossy(&data[..name_len]).into_owned();
        let value = String::from_utf8_lossy(&data[name_len..name_len + value_len]).into_owned();
        data = &data[name_len + value_len..];
        out.insert(name, value);
    }
    out
}

fn answer(mut stream: UnixStream) {
    let mut id = 1;
    let mut raw_params = Vec::new();
    loop {
        let mut header = [0u8; 8];
        if stream.read_exact(&mut header).is_err() {
            return;
        }
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut content = vec![0u8; len + usize::from(header[6])];
        if stream.read_exact(&mut content).is_err() {
            return;
        }
        content.truncate(len);
        match header[1] {
            BEGIN_REQUEST => id = u16::from_be_bytes([header[2], header[3]]),
            PARAMS => raw_params.extend(content),
            STDIN if len == 0 => break,
            _ => {}
        }
    }
    let params = params(&raw_params);
    let body = format!(
        "Content-Type: text/plain\r\n\r\nSCRIPT_FILENAME={}\n",
        params.get("SCRIPT_FILENAME").map_or("", String::as_str)
    );
    let mut out = record(STDOUT, id, body.as_bytes());
    out.extend(record(STDOUT, id, &[]));
    out.extend(record(END_REQUEST, id, &[0; 8]));
    let _ = stream.write_all(&out);
}

/// A running nginx, stopped with `-s quit` when dropped.
struct RunningNginx {
    binary: PathBuf,
    staged: PathBuf,
    child: std::process::Child,
}

impl RunningNginx {
    fn start(binary: &Path, staged: &Path, port: u16) -> Self {
        let child = std::process::Command::new(binary)
            .args(Self::location(staged))
            .args(["-g", "daemon off;"])
            .spawn()
            .expect("start nginx");
        let running = Self {
            binary: binary.to_owned(),
            staged: staged.to_owned(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        running
    }

    fn location(staged: &Path) -> Vec<std::ffi::OsString> {
        let mut prefix = staged.as_os_str().to_owned();
        prefix.push("/");
        vec![
            "-c".into(),
            staged.join(Nginx::MAIN_CONFIG).into(),
            "-p".into(),
            prefix,
            "-e".into(),
            staged.join("logs/error.log").into(),
        ]
    }
}

impl Drop for RunningNginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.binary)
            .args(Self::location(&self.staged))
            .args(["-s", "quit"])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` with `Host: host`: the status code, the headers and the body.
fn get(port: u16, host: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, head.to_owned(), body.to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn nginx_serves_php_through_the_socket_variable_and_guards_the_site() {
    let Some(binary) = server_binary("HOSTING_TEST_NGINX") else {
        return;
    };
    let dir = TempDir::new("serve");
    let site = SiteBuilder::new(1, "example.org", WebServerKind::Nginx)
        .aliases(&["www.example.org"])
        .www(WwwRedirect::ToWww)
        .php(Some(PhpVersion::V8_2))
        .performance(false, Some(60), true)
        .build();
    let layout = node_for(dir.path(), std::slice::from_ref(&site));
    let paths = layout.site(&site);
    let root = &paths.document_root;
    std::fs::write(root.join("index.php"), "<?php // answered by the stub\n").expect("index");
    std::fs::write(root.join(".env"), "SECRET=1\n").expect("dotfile");
    std::fs::create_dir_all(root.join(".well-known/acme-challenge")).expect("acme dir");
    std::fs::write(root.join(".well-known/acme-challenge/token"), "token-body").expect("token");
    std::fs::write(root.join("style.css"), "body {}\n").expect("css");
    let _php = FastCgiStub::start(paths.php_socket.as_deref().expect("php socket"));

    let port = free_port();
    let mut config = NginxConfig::new(layout.clone());
    config.binary = binary.clone();
    config.ports = Ports {
        http: port,
        https: free_port(),
    };
    config.listen_ipv6 = false;
    let nginx = Nginx::new(config).expect("nginx");
    let staged = dir.path().join("staged");
    nginx.stage(&staged, &[site]).expect("stage");
    nginx.validate(&staged).await.expect("nginx -t");
    let _running = RunningNginx::start(&binary, &staged, port);

    let (status, head, body) = get(port, "www.example.org", "/index.php?x=1");
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(
        body,
        format!("SCRIPT_FILENAME={}/index.php\n", root.display())
    );
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");

    let (status, _, body) = get(port, "www.example.org", "/some/pretty/url");
    assert_eq!(status, 200, "front controller");
    assert!(body.ends_with("/index.php\n"), "{body}");

    let (status, head, _) = get(port, "www.example.org", "/style.css");
    assert_eq!(status, 200);
    assert!(head.contains("Cache-Control: max-age=60"), "{head}");

    assert_eq!(get(port, "www.example.org", "/.env").0, 403);

    let (status, _, body) = get(port, "example.org", "/.well-known/acme-challenge/token");
    assert_eq!((status, body.as_str()), (200, "token-body"));

    let (status, head, _) = get(port, "example.org", "/page?q=1");
    assert_eq!(status, 301);
    assert!(
        head.contains(&format!("Location: http://www.example.org:{port}/page?q=1")),
        "{head}"
    );
}
