//! `hosting-panel`: the panel server.
//!
//! `hosting-panel serve [--listen ADDR] [--data-dir DIR] [--config FILE]` sets up the data
//! directory on first start (store, signing key, operator tenant and admin, the local node),
//! serves the API and runs the job worker until SIGTERM or SIGINT.
//! `hosting-panel openapi` prints the API's OpenAPI document.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hosting_core::types::Password;
use hosting_panel::config::{ADMIN_PASSWORD_ENV, Config, Flags, LogLevel};

/// mimalloc instead of glibc's allocator: the API's many small, short-lived allocations cost
/// a third more CPU per request under glibc (BENCHMARKS.md, "Panel API under load"). Built
/// with `no_thp`: on kernels with transparent huge pages always on, mimalloc's eagerly
/// committed arenas otherwise cost the idle panel 15-25 MiB more resident memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "hosting-panel",
    version,
    about = "The hosting SDK's panel server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (and run background jobs) until SIGTERM or SIGINT.
    Serve {
        /// Where the API listens (default 127.0.0.1:8080; env HOSTING_PANEL_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Where the panel keeps its store, key and node files (default ./data; env
        /// HOSTING_PANEL_DATA_DIR).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// A TOML configuration file (default DATA_DIR/panel.toml when it exists; env
        /// HOSTING_PANEL_CONFIG).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the OpenAPI document of the API.
    Openapi,
}

fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
}

/// Waits for SIGTERM or SIGINT.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}

async fn serve(flags: Flags) -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::load(&flags, &env).context("invalid configuration")?;
    init_logging(config.log_level);
    let admin_password = match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => Some(
            p.parse::<Password>()
                .with_context(|| format!("{ADMIN_PASSWORD_ENV} is not a usable password"))?,
        ),
        _ => None,
    };
    let server = hosting_panel::start(&config, admin_password).await?;
    if let Some(password) = &server.generated_admin_password {
        // Shown once, on stdout only: never through the logger.
        println!(
            "First start: the operator's admin is {} with password {}\n\
             (shown once; set {ADMIN_PASSWORD_ENV} before the first start to choose it)",
            config.admin_email,
            password.expose()
        );
    }
    shutdown_signal().await?;
    server.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            let doc = hosting_panel::openapi()
                .to_pretty_json()
                .context("cannot render the document")?;
            println!("{doc}");
            Ok(())
        }
        Command::Serve {
            listen,
            data_dir,
            config,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve(Flags {
                listen,
                data_dir,
                config,
            }))
        }
    }
}
