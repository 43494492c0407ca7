//! `hostctl`: the hosting SDK's command line.
//!
//! The panel commands (`login`, `sites`, `users`, `tokens`, `tenants`, `nodes`, `audit`,
//! `jobs`, ...) are a client of a panel's REST API; see the `panel` module.
//!
//! `hostctl node` drives the sites of the machine it runs on from a desired-state file (TOML):
//! `plan` says what would change, `apply` makes it so through the SDK's one apply path
//! (render, stage, validate with the real binaries, swap, reload, health check, roll back on
//! failure), `drift` says which live files or servers differ, `remove` takes one site off,
//! `stop` stops the servers hostctl started. Run `hostctl node --help` for the file format.

// Tests build their fixtures by path in directories no tenant can write.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod accounts;
mod error;
mod node;
mod panel;
mod plan;
mod record;
mod state;
mod table;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hosting_core::ApplyReport;
use hosting_core::model::Website;
use hosting_core::node::NodeReport;
use hosting_core::system::SystemRunner;
use serde_json::{Value, json};

use crate::accounts::Resolved;
use crate::error::{EXIT_DRIFT, EXIT_OK, exit_code, invalid, is_invalid};
use crate::node::{DriftReport, FileDiff, Node};
use crate::plan::{Change, Plan};
use crate::record::{Recorded, StateDir};
use crate::state::DesiredState;
use crate::table::table;

const EXIT_CODES: &str = "\
Exit codes:
  0  done (for `node drift`: no drift)
  1  failed while running: the panel failed (5xx) or could not be reached, a job failed; for
     `node`: the servers keep their previous configuration
  2  invalid input: the command line, a state file or the config file, or the panel refused
     a value (400, 413, 415, 422); nothing was changed. For `node` also: the state asks for
     what this machine lacks (a PHP version, a Unix account)
  3  panel commands: not logged in, session over, or not allowed (401, 403);
     `node drift`: live files or servers differ from the state file
  4  not found (404)
  5  conflict (409): it already exists, or contradicts the current state
  6  rate limited (429): the message says when to retry

Connection (panel commands): --url, else $HOSTCTL_URL, else the config file; --token, else
$HOSTCTL_TOKEN, else the config file's login. The config file is $HOSTCTL_CONFIG, else
$XDG_CONFIG_HOME/hostctl/config.toml, else ~/.config/hostctl/config.toml (mode 0600).
--json prints the panel's answer as sent (errors: its {\"error\": {code, message, field}}).";

const NODE_ABOUT: &str = "\
Drive the sites of this machine from a desired-state file.

The state file (TOML) lists the node's settings and every site it serves. Every value is
checked before anything is touched: a bad one is refused naming its field (exit code 2).

  [node]
  web_server = \"nginx\"          # or \"apache\"
  mode = \"prefix\"               # see below
  http_port = 8080              # default 80
  https_port = 8443             # default 443
  listen_ipv6 = false           # nginx only; default false in prefix mode, true in system mode
  nginx_binary = \"/usr/sbin/nginx\"      # default
  apache_binary = \"/usr/sbin/apache2\"   # default
  uid_range = \"20000-59999\"     # default: the uids of the accounts hostctl creates (root)

  [[node.php]]                  # extra PHP-FPM builds at any prefix; Debian's
  fpm_binary = \"/opt/php/8.4/sbin/php-fpm\"   # /usr/sbin/php-fpmX.Y are always found, and a
  php_ini = \"/opt/php/8.4/php.ini\"           # listed build replaces Debian's of its version
  scan_dir = \"/opt/php/8.4/conf.d\"

  [[site]]
  id = 1                        # stable: file, pool and socket names derive from it
  domain = \"shop.example.com\"
  aliases = [\"www.shop.example.com\"]
  php_version = \"8.2\"           # 8.0 to 8.4, installed here; leave out for a static site
  # system_user = \"shop\"        # optional, see Accounts below
  # adopt_account = true
  document_root = \"public\"      # under the site's home; default \"public\"
  operator_directives = [{ name = \"access_log\", args = [\"/var/log/shop.log\"] }]
                                # yours, written as is (no policy)
  [site.settings]               # all optional: gzip, cache_ttl_secs, security_headers,
  gzip = true                   # allowed_ips, blocked_ips, www_redirect, extra_directives
                                # (must pass the web server's directive policy),
                                # php = { memory_limit, max_execution_time, ... }, ssl

Accounts (the panel's rules):
  As root every site runs as a Unix account of its own: without system_user, apply creates
  one named after the domain (uid and gid from node.uid_range, no password, nologin) and
  removes it, after the site's files, with the last site that runs as it. system_user may
  name an account hostctl created for another site (sites then share it), or, with
  adopt_account = true, an existing account of yours (uid and gid 1000 or above), which
  hostctl never removes. Any other account is refused (exit 2). Without root there are no
  separate accounts: every site runs as the current user (isolation: none). A site's account
  never changes while hostctl keeps the site.

Modes:
  prefix  everything lives under --root: sites in ROOT/node/sites/site<ID>, sockets and
          pid files in ROOT/node/run, logs in ROOT/node/log, the web server in ROOT/nginx or
          ROOT/apache, PHP-FPM trees in ROOT/php/<version>; hostctl starts, reloads and
          stops the web server and one PHP-FPM master per version itself.
  system  Debian's services and paths, as root: sites in /srv/www, sockets in /run/php,
          logs in /var/log/hosting, certificates in /etc/hosting/certs, pools in
          /etc/hosting/php/<version>/live/pool.d, the web server's generations in
          ROOT/nginx or ROOT/apache (use --root /var/lib/hosting). Debian's nginx or apache2
          and php<X.Y>-fpm services serve them with their own configuration, which hostctl
          never edits; it adds one include file to each: /etc/nginx/conf.d/hosting-sdk.conf
          or /etc/apache2/sites-enabled/zzz-hosting-sdk.conf (the distro's default site stays
          the default), and /etc/php/<X.Y>/fpm/pool.d/zz-hosting-sdk.conf while the version
          has pools. Every apply tests the staged files with the distro's modules, swaps them
          in, tests the whole distro configuration (nginx -t, apache2ctl -t, php-fpm -t) and
          swaps back if it is refused, then runs `service <name> reload` (`start` when the
          service is down).

hostctl records what it applied in ROOT/state/applied.json (the `previous` of the next
apply, so a PHP version switch keeps the old pool until the web server moved), and the
accounts it created.";

/// The hosting SDK's command line.
#[derive(Debug, Parser)]
#[command(name = "hostctl", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Print one JSON document for scripts instead of tables and lines for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    connection: panel::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive the sites of this machine from a desired-state file.
    #[command(subcommand, long_about = NODE_ABOUT, after_help = EXIT_CODES)]
    Node(NodeCommand),
    #[command(flatten)]
    Panel(Box<panel::PanelCommand>),
}

/// The state file and the node's root.
#[derive(Debug, Args)]
struct Target {
    /// The desired-state file (TOML; see `hostctl node --help`).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// The node's root: its recorded state, its servers and (prefix mode) its sites.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Show what an apply would change, site by site: the state file compared with what was
    /// last applied (added, removed, changed, PHP version moves). Changes nothing.
    Plan(Target),
    /// Make the node serve exactly the sites of the state file.
    ///
    /// Creates the sites' new accounts (as root), each site's missing directories (home,
    /// document root, tmp, sessions; owned by its account; as root the home is 0750 in the web
    /// server's group), then applies through the SDK: PHP pools for the old and new state, the
    /// web server, then only the new pools. A failure leaves the previous configuration live.
    /// Then deletes the homes of removed sites that ran as accounts hostctl created, and the
    /// accounts no site runs as any more. Records the result in ROOT/state/applied.json.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Print the plan and a unified diff from the live generated files to what would be
        /// written; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compare the live generated files and the running servers with the state file; exit
    /// code 3 when they differ (`apply` repairs it).
    Drift(Target),
    /// Take one site off this node: apply the state file without it and record that.
    ///
    /// Its vhost and PHP pool go. When it ran as an account hostctl created, its home is
    /// deleted, and the account is removed when no other site runs as it; a site running as
    /// an adopted account (or, without root, as the current user) keeps its files. hostctl
    /// never edits the state file, which is yours: delete the site's [[site]] block from it
    /// too, or `plan` shows the site as added and the next `apply` puts it back. Other pending
    /// changes in the file are applied with the removal (run `plan` first).
    Remove {
        #[command(flatten)]
        target: Target,
        /// The id of the site to remove.
        #[arg(long, value_name = "ID")]
        site: i64,
    },
    /// Stop the servers hostctl started under the root (prefix mode: the web server and every
    /// PHP-FPM master), and wait until they are gone. Files and records are kept; the next
    /// `apply` starts them again. In system mode the servers are the distro's services, which
    /// this leaves alone (`service <name> stop`).
    Stop {
        /// The node's root.
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_target(false)
        .without_time()
        .try_init();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(&cli)));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(failure) = e.downcast_ref::<panel::Failure>() {
                if cli.json {
                    println!("{}", failure.document);
                }
                eprintln!("error: {}", failure.message);
                return ExitCode::from(failure.exit);
            }
            if cli.json {
                let kind = if is_invalid(&e) { "invalid" } else { "failure" };
                println!(
                    "{}",
                    json!({"error": {"kind": kind, "message": format!("{e:#}")}})
                );
            }
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<u8> {
    let command = match &cli.command {
        Command::Node(command) => command,
        Command::Panel(command) => {
            return Ok(panel::run(command, &cli.connection, cli.json).await?);
        }
    };
    match command {
        NodeCommand::Plan(target) => plan(target, cli.json).await,
        NodeCommand::Apply { target, dry_run } => {
            if *dry_run {
                dry_run_apply(target, cli.json).await
            } else {
                apply(target, None, cli.json).await
            }
        }
        NodeCommand::Drift(target) => drift(target, cli.json).await,
        NodeCommand::Remove { target, site } => apply(target, Some(*site), cli.json).await,
        NodeCommand::Stop { root } => stop(root, cli.json).await,
    }
}

/// `--root` as an absolute path (lexically; it need not exist yet).
fn absolute_root(root: &Path) -> anyhow::Result<PathBuf> {
    if root.as_os_str().is_empty() {
        return Err(invalid("--root: must not be empty"));
    }
    std::path::absolute(root).map_err(|e| invalid(format!("--root {}: {e}", root.display())))
}

/// Everything a node command starts from.
struct Loaded {
    root: PathBuf,
    state: DesiredState,
    state_dir: StateDir,
    recorded: Option<Recorded>,
    node: Node,
    /// The sites with their accounts.
    resolved: Resolved,
}

/// Parses the state file, reads the record, builds the backends, renders every site once and
/// gives each its account, so every invalid input is reported before anything changes.
async fn load(target: &Target, root: PathBuf, state: DesiredState) -> anyhow::Result<Loaded> {
    let state_dir = StateDir::new(&root);
    let recorded = state_dir.load()?;
    if let Some(r) = &recorded
        && r.node.mode != state.node.mode
    {
        return Err(invalid(format!(
            "node.mode: {} was applied in {} mode, the state file {} asks for {} mode; use \
             another --root",
            root.display(),
            r.node.mode.as_str(),
            target.state.display(),
            state.node.mode.as_str()
        )));
    }
    let node = Node::open(&root, &state).await?;
    node.check_sites(&state.websites())?;
    let resolved = node.resolve(&state, recorded.as_ref()).await?;
    Ok(Loaded {
        root,
        state,
        state_dir,
        recorded,
        node,
        resolved,
    })
}

async fn load_target(target: &Target) -> anyhow::Result<Loaded> {
    let root = absolute_root(&target.root)?;
    let state = state::load(&target.state)?;
    load(target, root, state).await
}

fn php_label(
    from: Option<hosting_core::types::PhpVersion>,
    to: Option<hosting_core::types::PhpVersion>,
) -> String {
    let show = |v: Option<hosting_core::types::PhpVersion>| v.map_or("-", |v| v.as_str());
    if from == to || from.is_none() {
        show(to).to_owned()
    } else if to.is_none() {
        show(from).to_owned()
    } else {
        format!("{} -> {}", show(from), show(to))
    }
}

fn plan_text(loaded: &Loaded, plan: &Plan) -> String {
    let n = &loaded.state.node;
    let mut out = format!(
        "node: {} in {} mode under {}; http {}, https {}\n",
        n.web_server,
        n.mode.as_str(),
        loaded.root.display(),
        n.ports.http,
        n.ports.https
    );
    let php: Vec<String> = loaded
        .node
        .php_installed()
        .iter()
        .map(|i| format!("{} ({})", i.version.as_str(), i.fpm_binary.display()))
        .collect();
    let _ = writeln!(
        out,
        "php-fpm: {}",
        if php.is_empty() {
            "none found".to_owned()
        } else {
            php.join(", ")
        }
    );
    let accounts = &plan.accounts;
    match (&accounts.account, &accounts.uid_range) {
        (Some(account), _) => {
            let _ = writeln!(
                out,
                "isolation: none: hostctl does not run as root, so every site runs as {account}"
            );
        }
        (None, range) => {
            let _ = writeln!(
                out,
                "isolation: accounts: every site runs as an account of its own (new ones get \
                 uids {})",
                range.as_deref().unwrap_or("-")
            );
        }
    }
    if loaded.recorded.is_none() {
        out.push_str("nothing applied yet under this root\n");
    }
    for change in &plan.node_changes {
        let _ = writeln!(out, "node change: {change}");
    }
    let rows: Vec<Vec<String>> = plan
        .sites
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.domain.clone(),
                s.system_user.to_string(),
                php_label(s.php_version.from, s.php_version.to),
                s.change.as_str().to_owned(),
                s.details.join(", "),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no sites\n");
    } else {
        out.push_str(&table(
            &["SITE", "DOMAIN", "ACCOUNT", "PHP", "CHANGE", "DETAIL"],
            &rows,
        ));
    }
    for new in &accounts.create {
        let _ = writeln!(out, "account to create: {} (site {})", new.name, new.site);
    }
    for files in &accounts.delete_files {
        let _ = writeln!(
            out,
            "files to delete: {} (site {}, {})",
            files.home.display(),
            files.site,
            files.domain
        );
    }
    for account in &accounts.remove {
        let _ = writeln!(
            out,
            "account to remove: {} (uid {}; no site runs as it)",
            account.name, account.uid
        );
    }
    if plan.is_empty() && loaded.recorded.is_some() {
        out.push_str("nothing to change: the state file is what was applied\n");
    }
    let _ = writeln!(
        out,
        "{} to add, {} to change, {} to remove, {} unchanged",
        plan.count(Change::Added),
        plan.count(Change::Changed),
        plan.count(Change::Removed),
        plan.count(Change::Unchanged)
    );
    out
}

fn plan_json(loaded: &Loaded, plan: &Plan) -> Value {
    let n = &loaded.state.node;
    json!({
        "root": loaded.root,
        "node": {
            "web_server": n.web_server,
            "mode": n.mode,
            "http_port": n.ports.http,
            "https_port": n.ports.https,
        },
        "php_installed": loaded.node.php_installed().iter().map(|i| json!({
            "version": i.version,
            "full_version": i.full_version,
            "fpm_binary": i.fpm_binary,
        })).collect::<Vec<_>>(),
        "applied_before": loaded.recorded.is_some(),
        "node_changes": plan.node_changes,
        "sites": plan.sites,
        "accounts": plan.accounts,
        "summary": {
            "added": plan.count(Change::Added),
            "changed": plan.count(Change::Changed),
            "removed": plan.count(Change::Removed),
            "unchanged": plan.count(Change::Unchanged),
        },
    })
}

/// The plan of `loaded`: its state file compared with its record.
fn plan_of(loaded: &Loaded) -> Plan {
    Plan::between(
        loaded.recorded.as_ref(),
        &loaded.state.node,
        &loaded.resolved,
        &loaded.node.paths.layout,
    )
}

async fn plan(target: &Target, as_json: bool) -> anyhow::Result<u8> {
    let loaded = load_target(target).await?;
    let plan = plan_of(&loaded);
    if as_json {
        println!("{}", plan_json(&loaded, &plan));
    } else {
        print!("{}", plan_text(&loaded, &plan));
    }
    Ok(EXIT_OK)
}

fn not_running_text(report: &DriftReport) -> String {
    report
        .not_running
        .iter()
        .map(|n| n.server.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn dry_run_apply(target: &Target, as_json: bool) -> anyhow::Result<u8> {
    let loaded = load_target(target).await?;
    let plan = plan_of(&loaded);
    let (report, diffs) = loaded.node.diff(&loaded.resolved.sites).await?;
    if as_json {
        println!(
            "{}",
            json!({
                "dry_run": true,
                "plan": plan_json(&loaded, &plan),
                "files": diffs,
                "not_running": report.not_running,
            })
        );
        return Ok(EXIT_OK);
    }
    print!("{}", plan_text(&loaded, &plan));
    println!("dry run: nothing was changed");
    if diffs.is_empty() {
        println!("no generated file would change");
    } else {
        println!("an apply would write these changes to the live generated files:");
    }
    for FileDiff {
        server,
        kind,
        live_path,
        diff,
        note,
    } in &diffs
    {
        match (diff, note) {
            (Some(diff), _) => print!("{diff}"),
            (None, Some(note)) => {
                println!("{} {server} {}: {note}", kind.as_str(), live_path.display())
            }
            (None, None) => println!("{} {server} {}", kind.as_str(), live_path.display()),
        }
    }
    if !report.not_running.is_empty() {
        println!(
            "not running (apply starts them): {}",
            not_running_text(&report)
        );
    }
    Ok(EXIT_OK)
}

fn apply_report_json(report: &ApplyReport) -> Value {
    json!({
        "changed": report.changed,
        "removed": report.removed,
        "reloaded": report.reloaded,
    })
}

fn applied_text(loaded: &Loaded, before: &DriftReport, report: &NodeReport) -> String {
    let mut out = String::new();
    if before.files.is_empty() {
        out.push_str("no generated file changed\n");
    } else {
        let rows: Vec<Vec<String>> = before
            .files
            .iter()
            .map(|f| {
                vec![
                    f.kind.apply_change().to_owned(),
                    f.server.clone(),
                    f.live_path.display().to_string(),
                ]
            })
            .collect();
        out.push_str(&table(&["FILE", "SERVER", "PATH"], &rows));
    }
    if !before.not_running.is_empty() {
        let _ = writeln!(out, "started: {}", not_running_text(before));
    }
    let _ = writeln!(
        out,
        "{}: {}",
        loaded.state.node.web_server,
        if report.web.reloaded {
            "reloaded, every site answers"
        } else {
            "already serving this configuration"
        }
    );
    out
}

/// `apply`, or `remove` when `remove` names a site.
async fn apply(target: &Target, remove: Option<i64>, as_json: bool) -> anyhow::Result<u8> {
    let root = absolute_root(&target.root)?;
    let mut state = state::load(&target.state)?;
    let in_file = remove.is_some_and(|id| state.sites.iter().any(|s| s.site.id.0 == id));
    let mut removed: Option<Website> = None;
    if let Some(id) = remove {
        let recorded = StateDir::new(&root).load()?;
        let applied = recorded.as_ref().and_then(|r| r.known_site(id).cloned());
        let listed = state
            .sites
            .iter()
            .find(|s| s.site.id.0 == id)
            .map(|s| s.site.clone());
        removed = applied.or(listed);
        if removed.is_none() {
            return Err(invalid(format!(
                "--site {id}: no site {id} in {} nor applied under {}",
                target.state.display(),
                root.display()
            )));
        }
        state.sites.retain(|s| s.site.id.0 != id);
    }
    let mut loaded = load(target, root, state).await?;
    if let Some(r) = &loaded.recorded
        && r.node.web_server != loaded.state.node.web_server
        && let Ok(old) = state::NodeServer::try_from(r.node.web_server)
        && node::web_server_running(&loaded.root, r.node.mode, old)
    {
        return Err(invalid(format!(
            "node.web_server: the sites under {} are served by {}, which is running; stop it \
             first with `{}` (the sites are down until the apply)",
            loaded.root.display(),
            r.node.web_server,
            node::stop_command(&loaded.root, r.node.mode, old)
        )));
    }
    // Everything is checked; only now is anything written (the lock file first). The record
    // is read again under the lock, and the accounts resolved again: another hostctl may have
    // applied while this one waited.
    let lock = loaded.state_dir.lock()?;
    loaded.recorded = loaded.state_dir.load()?;
    loaded.resolved = loaded
        .node
        .resolve(&loaded.state, loaded.recorded.as_ref())
        .await?;
    let plan = plan_of(&loaded);
    // What differs now is what the apply changes: the report of `apply_node` only covers its
    // last (pruning) PHP step.
    let before = loaded.node.drift(&loaded.resolved.sites).await?;
    let mut record = loaded
        .recorded
        .clone()
        .unwrap_or_else(|| Recorded::of(&loaded.state, Vec::new()));
    let report: NodeReport = loaded
        .node
        .apply(
            &loaded.state,
            &loaded.state_dir,
            &mut record,
            &loaded.resolved,
        )
        .await?;
    drop(lock);
    let record_path = loaded.state_dir.record_path();
    if as_json {
        let mut out = json!({
            "dry_run": false,
            "plan": plan_json(&loaded, &plan),
            "files": before.files.iter().map(|f| json!({
                "server": f.server,
                "change": f.kind.apply_change(),
                "path": f.path,
                "live_path": f.live_path,
            })).collect::<Vec<_>>(),
            "started": before.not_running.iter().map(|n| &n.server).collect::<Vec<_>>(),
            "report": {
                "web": apply_report_json(&report.web),
                "php": apply_report_json(&report.php),
            },
            "recorded": record_path,
        });
        if let (Some(site), Some(obj)) = (&removed, out.as_object_mut()) {
            obj.insert(
                "removed".to_owned(),
                json!({
                    "id": site.id,
                    "domain": site.domain,
                    "still_in_state_file": in_file,
                }),
            );
        }
        println!("{out}");
        return Ok(EXIT_OK);
    }
    print!("{}", plan_text(&loaded, &plan));
    print!("{}", applied_text(&loaded, &before, &report));
    for new in &plan.accounts.create {
        println!("created account {} (site {})", new.name, new.site);
    }
    for files in &plan.accounts.delete_files {
        println!(
            "deleted {} (site {}, {})",
            files.home.display(),
            files.site,
            files.domain
        );
    }
    for account in &plan.accounts.remove {
        println!("removed account {} (uid {})", account.name, account.uid);
    }
    println!("recorded in {}", record_path.display());
    if let Some(site) = &removed {
        let home = loaded.node.paths.layout.site(site).home;
        let files = if plan
            .accounts
            .delete_files
            .iter()
            .any(|f| f.site == site.id.0)
        {
            format!("its files under {} are deleted", home.display())
        } else {
            format!(
                "its files under {} are kept (it did not run as an account hostctl created)",
                home.display()
            )
        };
        println!(
            "removed site {} ({}): its vhost and PHP pool are gone; {files}",
            site.id, site.domain
        );
        if in_file {
            println!(
                "delete its [[site]] block from {}: until then `plan` shows it as added and \
                 the next `apply` puts it back",
                target.state.display()
            );
        }
    }
    Ok(EXIT_OK)
}

async fn drift(target: &Target, as_json: bool) -> anyhow::Result<u8> {
    let loaded = load_target(target).await?;
    let report = loaded.node.drift(&loaded.resolved.sites).await?;
    let code = if report.is_clean() {
        EXIT_OK
    } else {
        EXIT_DRIFT
    };
    if as_json {
        println!(
            "{}",
            json!({
                "clean": report.is_clean(),
                "files": report.files,
                "not_running": report.not_running,
            })
        );
        return Ok(code);
    }
    if report.is_clean() {
        println!(
            "no drift: the live files match {} and every server runs",
            target.state.display()
        );
        return Ok(code);
    }
    let mut rows: Vec<Vec<String>> = report
        .files
        .iter()
        .map(|f| {
            vec![
                f.kind.as_str().to_owned(),
                f.server.clone(),
                f.live_path.display().to_string(),
            ]
        })
        .collect();
    rows.extend(report.not_running.iter().map(|n| {
        vec![
            "not running".to_owned(),
            n.server.clone(),
            n.pid_file.display().to_string(),
        ]
    }));
    print!("{}", table(&["DRIFT", "SERVER", "PATH"], &rows));
    println!(
        "drift: {} file(s) differ, {} server(s) not running; `hostctl node apply` repairs it",
        report.files.len(),
        report.not_running.len()
    );
    Ok(code)
}

async fn stop(root: &Path, as_json: bool) -> anyhow::Result<u8> {
    let root = absolute_root(root)?;
    let (stopped, skipped) = if root.is_dir() {
        let _lock = StateDir::new(&root).lock()?;
        node::stop(&root, &SystemRunner).await?
    } else {
        (Vec::new(), Vec::new())
    };
    if as_json {
        println!("{}", json!({"stopped": stopped, "skipped": skipped}));
        return Ok(EXIT_OK);
    }
    for s in &skipped {
        println!("skipped {}: {}", s.pid_file.display(), s.reason);
    }
    if stopped.is_empty() {
        println!("nothing was running under {}", root.display());
    }
    for s in &stopped {
        println!(
            "stopped {} (pid {}){}",
            s.server,
            s.pid,
            if s.forced {
                ", killed after it did not stop in time"
            } else {
                ""
            }
        );
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
