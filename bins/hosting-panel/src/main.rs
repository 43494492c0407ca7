//! `hosting-panel`: the panel server.
//!
//! `hosting-panel serve [--listen ADDR] [--data-dir DIR] [--config FILE]` sets up the data
//! directory on first start (store, signing key, operator tenant and admin, the local node),
//! serves the API and runs the job worker until SIGTERM or SIGINT.
//! `hosting-panel admin reset-password|create` are the operator's way in on the machine itself;
//! `hosting-panel node stop` stops the local node's servers, which outlive the panel.
//! `hosting-panel openapi` prints the API's OpenAPI document.

// Tests build their fixtures by path in directories no tenant can write.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hosting_core::Operator;
use hosting_core::types::{EmailAddress, Password};
use hosting_panel::config::{ADMIN_PASSWORD_ENV, Config, Flags, LogLevel};
use hosting_panel::server::{Opener, open_store, panel_over};

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

/// Where the configuration comes from (as for `serve`).
#[derive(Debug, Args)]
struct ConfigArgs {
    /// Where the panel keeps its store, key and node files (default ./data; env
    /// HOSTING_PANEL_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file (default DATA_DIR/panel.toml when it exists; env
    /// HOSTING_PANEL_CONFIG).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (and run background jobs) until SIGTERM or SIGINT.
    Serve {
        /// Where the API listens (default 127.0.0.1:8080; env HOSTING_PANEL_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// The operator's accounts, on the panel's machine (no login needed).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The local node's servers.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Print the OpenAPI document of the API.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Set a new password for a user (default: the operator tenant's only admin), lift a
    /// lockout, and end the user's sessions. Prints a generated one-time password unless
    /// --password-stdin gives one.
    ResetPassword {
        /// The user's e-mail (default: the operator tenant's admin, when it has one).
        #[arg(long, value_name = "EMAIL")]
        email: Option<EmailAddress>,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Create another admin of the operator tenant. Prints a generated password unless
    /// --password-stdin gives one.
    Create {
        /// The new admin's e-mail.
        #[arg(long, value_name = "EMAIL")]
        email: EmailAddress,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Stop the local node's nginx and PHP-FPM, which keep serving the sites after the panel
    /// stops. The next `serve` starts them again.
    Stop {
        #[command(flatten)]
        config: ConfigArgs,
    },
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

fn load_config(listen: Option<SocketAddr>, args: ConfigArgs) -> anyhow::Result<Config> {
    let env = |name: &str| std::env::var(name).ok();
    let flags = Flags {
        listen,
        data_dir: args.data_dir,
        config: args.config,
    };
    let config = Config::load(&flags, &env)
        .context("invalid configuration (see the README's Configuration section)")?;
    init_logging(config.log_level);
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let admin_password = match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => Some(
            p.parse::<Password>()
                .with_context(|| format!("{ADMIN_PASSWORD_ENV} is not a usable password"))?,
        ),
        _ => None,
    };
    let server = hosting_panel::start(&config, admin_password).await?;
    if let Some(password) = &server.generated_admin_password {
        // Shown once, on stdout only: never through the logger. A closed stdout must not take
        // the panel down: the operator can still reset the password on the machine.
        let mut stdout = std::io::stdout().lock();
        let shown = writeln!(
            stdout,
            "First start: the operator's admin is {} with password {}\n\
             (shown once; set {ADMIN_PASSWORD_ENV} before the first start to choose it;\n\
             lost it? hosting-panel admin reset-password)",
            config.admin_email,
            password.expose()
        )
        .and_then(|()| stdout.flush());
        if let Err(e) = shown {
            tracing::error!(error = %e, "the first admin's password could not be printed; run hosting-panel admin reset-password");
        }
    }
    shutdown_signal().await?;
    server.shutdown().await;
    Ok(())
}

/// The first line of standard input as a password.
fn password_from_stdin() -> anyhow::Result<Password> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    line.trim_end_matches(['\n', '\r'])
        .parse()
        .context("the password from standard input is not usable")
}

/// The panel over the configured store, as a machine command opens it (beside a serving
/// panel, if one runs): nothing is created.
async fn machine_panel(
    config: &Config,
) -> anyhow::Result<std::sync::Arc<hosting_core::panel::Panel>> {
    let opened = open_store(config, Opener::Command).await?;
    let (panel, _) = panel_over(config, &opened, Opener::Command).await?;
    Ok(panel)
}

async fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let op = Operator::assume();
    match command {
        AdminCommand::ResetPassword {
            email,
            password_stdin,
            config,
        } => {
            let config = load_config(None, config)?;
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let panel = machine_panel(&config).await?;
            let reset = panel
                .reset_password_on_machine(&op, email.as_ref(), password)
                .await
                .map_err(|e| match (e, &email) {
                    (hosting_core::Error::NotFound { .. }, Some(email)) => {
                        anyhow::anyhow!("no user has the e-mail {email}")
                    }
                    (hosting_core::Error::NotFound { .. }, None) => {
                        anyhow::anyhow!("the operator has no admin: use hosting-panel admin create")
                    }
                    (other, _) => anyhow::Error::new(other),
                })
                .context("cannot reset the password")?;
            let user = &reset.user;
            let who = format!(
                "{} ({} of tenant {})",
                user.email, user.role, user.tenant_id
            );
            match reset.generated_password {
                Some(password) => println!(
                    "The password of {who} is now {} (shown once). Its sessions have ended.",
                    password.expose()
                ),
                None => println!("The password of {who} is set. Its sessions have ended."),
            }
        }
        AdminCommand::Create {
            email,
            password_stdin,
            config,
        } => {
            let config = load_config(None, config)?;
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let panel = machine_panel(&config).await?;
            let created = panel
                .create_operator_admin(&op, &email, password)
                .await
                .context("cannot create the admin")?;
            match created.generated_password {
                Some(password) => println!(
                    "Created the operator admin {email} with password {} (shown once).",
                    password.expose()
                ),
                None => println!("Created the operator admin {email}."),
            }
        }
    }
    Ok(())
}

async fn node(command: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Stop { config } = command;
    let config = load_config(None, config)?;
    let (stopped, skipped) = hosting_panel::node::stop_local_node(&config.data_dir).await?;
    for s in &skipped {
        println!("skipped {}: {}", s.pid_file.display(), s.reason);
    }
    if stopped.is_empty() {
        println!(
            "nothing was running under {}",
            config.data_dir.join("node").display()
        );
    }
    for s in &stopped {
        let forced = if s.forced {
            ", killed after it did not stop in time"
        } else {
            ""
        };
        println!("stopped {} (pid {}){forced}", s.server, s.pid);
    }
    Ok(())
}

fn run(command: Command) -> anyhow::Result<()> {
    if let Command::Openapi = command {
        let doc = hosting_panel::openapi()
            .to_pretty_json()
            .context("cannot render the document")?;
        println!("{doc}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Serve { listen, config } => serve(load_config(listen, config)?).await,
            Command::Admin { command } => admin(command).await,
            Command::Node { command } => node(command).await,
            Command::Openapi => Ok(()),
        }
    })
}

/// Runs the command; a failure is one line on stderr (the whole chain of causes, no stack
/// trace unless RUST_BACKTRACE asks for one) and exit status 1.
fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let wants_backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
            if wants_backtrace {
                eprintln!("error: {e:?}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
