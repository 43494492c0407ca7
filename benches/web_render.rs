//! Render throughput on one core: virtual hosts per second for NGINX, Apache and
//! OpenLiteSpeed, and PHP-FPM pools per second, each beside the same bytes built by plain
//! string concatenation (the floor).
//!
//! ```text
//! cargo bench -p hosting-benches --bench web_render
//! ```
//!
//! The sites are PHP 8.2 sites with one `www.` alias and default settings (shared logs), ids
//! 1..=N. **Floor**: one site is rendered once with a reference id; its text, cut at every
//! place the id appears, is the constant part of every site's output (domain, paths, socket
//! and pool names all derive from the id). The floor builds each site's files by writing
//! those constant pieces and the site's id into a new `String` (`write!`), and its path the
//! same way: the least any renderer must do to produce these bytes. Before timing, the floor's
//! output is checked to be byte-for-byte what `render_site` / `render_pool` gives for every
//! site, so both sides produce the same bytes.
//!
//! No server binary is needed. Without `--bench` (as `cargo test --all-targets` runs it) a
//! smoke pass renders a few sites once.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark that cannot set up should stop

mod web_sites;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hosting_core::model::Website;
use hosting_core::php::PhpInstallation;
use hosting_core::system::SystemRunner;
use hosting_core::types::{PhpVersion, WebServerKind};
use hosting_core::{HostLayout, RenderedFile, Result};
use hosting_php::{FpmConfig, PhpFpm};
use hosting_web::{Apache, ApacheConfig, Nginx, NginxConfig, OpenLiteSpeed, OpenLiteSpeedConfig};

#[derive(Clone, Copy)]
struct Scale {
    sites: usize,
    rounds: usize,
}

const FULL: Scale = Scale {
    sites: 10_000,
    rounds: 7,
};
const SMOKE: Scale = Scale {
    sites: 20,
    rounds: 1,
};

/// An id no bench site has and whose digits appear nowhere else in the output.
const REFERENCE_ID: i64 = 987_654_321;

type Render<'a> = Box<dyn Fn(&Website) -> Result<Vec<RenderedFile>> + 'a>;

fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    let layout = HostLayout::under("/srv/hosting");
    let nginx = Nginx::new(NginxConfig::new(layout.clone())).expect("nginx");
    let apache = Apache::new(ApacheConfig::new(layout.clone())).expect("apache");
    let ols = OpenLiteSpeed::new(OpenLiteSpeedConfig::new(layout.clone())).expect("ols");
    let fpm = PhpFpm::new(
        Arc::new(SystemRunner),
        FpmConfig::new(layout.clone()),
        vec![PhpInstallation {
            version: PhpVersion::V8_2,
            full_version: "8.2.36".to_owned(),
            fpm_binary: PathBuf::from("/usr/sbin/php-fpm8.2"),
            php_ini: None,
            scan_dir: None,
            extensions: Vec::new(),
        }],
    )
    .expect("php-fpm");

    let renderers: Vec<(&str, WebServerKind, Render<'_>)> = vec![
        (
            "NGINX vhost",
            WebServerKind::Nginx,
            Box::new(|s| nginx.render_site(s)),
        ),
        (
            "Apache vhost",
            WebServerKind::Apache,
            Box::new(|s| apache.render_site(s)),
        ),
        (
            "OpenLiteSpeed vhost (3 files)",
            WebServerKind::OpenLiteSpeed,
            Box::new(|s| ols.render_site(s)),
        ),
        (
            "PHP-FPM pool",
            WebServerKind::Nginx,
            Box::new(|s| fpm.render_pool(s).map(|f| vec![f])),
        ),
    ];

    println!(
        "{} sites, {} rounds, one thread; before: {}",
        scale.sites,
        scale.rounds,
        if scale.rounds > 1 {
            web_sites::settle(Duration::from_secs(180))
        } else {
            web_sites::load_average()
        }
    );
    println!(
        "| renders | ours (median round) | µs each | floor (median round) | µs each | ours / floor |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, kind, render) in &renderers {
        let sites: Vec<Website> = (1..=scale.sites as i64)
            .map(|id| web_sites::php_site(id, format!("u{id}").parse().expect("user"), *kind))
            .collect();
        let floor = Floor::new(
            &render(&web_sites::php_site(
                REFERENCE_ID,
                format!("u{REFERENCE_ID}").parse().expect("user"),
                *kind,
            ))
            .expect("reference render"),
        );
        for site in &sites {
            let ours = render(site).expect("render");
            assert_eq!(
                floor.build(site.id.0),
                ours.iter()
                    .map(|f| (f.path.to_string(), f.contents.clone()))
                    .collect::<Vec<_>>(),
                "{label}: the floor builds other bytes than the renderer for site {}",
                site.id
            );
        }
        let ours = rounds(scale, || {
            for site in &sites {
                black_box(render(black_box(site)).expect("render"));
            }
        });
        let base = rounds(scale, || {
            for site in &sites {
                black_box(floor.build(black_box(site.id.0)));
            }
        });
        let per_second = |d: Duration| scale.sites as f64 / d.as_secs_f64();
        let micros = |d: Duration| d.as_secs_f64() * 1e6 / scale.sites as f64;
        println!(
            "| {label} | {:.0}/s | {:.2} | {:.0}/s | {:.2} | {:.1}x |",
            per_second(ours),
            micros(ours),
            per_second(base),
            micros(base),
            ours.as_secs_f64() / base.as_secs_f64()
        );
    }
    println!(
        "after: CPU {:.0}% busy over 1 s, load average {}",
        web_sites::cpu_busy_percent(Duration::from_secs(1)),
        web_sites::load_average()
    );
}

/// The median duration of `scale.rounds` runs of `pass` (after one warm-up run).
fn rounds(scale: Scale, mut pass: impl FnMut()) -> Duration {
    pass();
    let mut times: Vec<Duration> = (0..scale.rounds)
        .map(|_| {
            let started = Instant::now();
            pass();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// The constant pieces of a site's output between the places its id goes.
struct Floor {
    /// Per file: the pieces of its path, then the pieces of its contents.
    files: Vec<(Vec<String>, Vec<String>)>,
}

impl Floor {
    fn new(reference: &[RenderedFile]) -> Self {
        let id = REFERENCE_ID.to_string();
        let cut = |text: &str| text.split(id.as_str()).map(str::to_owned).collect();
        Self {
            files: reference
                .iter()
                .map(|f| (cut(f.path.as_str()), cut(&f.contents)))
                .collect(),
        }
    }

    /// Every file of site `id`: its path and its contents.
    fn build(&self, id: i64) -> Vec<(String, String)> {
        let join = |pieces: &[String], capacity: usize| {
            let mut out = String::with_capacity(capacity);
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    write!(out, "{id}").expect("write to a String");
                }
                out.push_str(piece);
            }
            out
        };
        self.files
            .iter()
            .map(|(path, contents)| {
                let size = contents.iter().map(String::len).sum::<usize>() + 10 * contents.len();
                (join(path, 64), join(contents, size))
            })
            .collect()
    }
}
