//! hostctl as the panel's REST client: every command is one or a few calls of the API at
//! `/api/v1` (the panel decides who may do what), a table for people or, with `--json`, the
//! panel's answer exactly as sent.

mod client;
mod config;
mod failure;
mod prompt;
mod render;
mod settings;

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use hosting_core::types::{Charset, Collation, DbEngine};
use reqwest::Method;
use serde_json::{Map, Value, json};

pub use client::Connection;
use client::{Answer, Client, Paging, Tokens};
pub use failure::Failure;

use crate::error::EXIT_OK;
use crate::table::table;

/// The panel's commands (beside `hostctl node`).
#[derive(Debug, Subcommand)]
pub enum PanelCommand {
    /// Log in to a panel; the session's tokens go to the config file (mode 0600).
    ///
    /// The password is typed at a prompt without echo, or piped in with --password-stdin;
    /// never an argument. For an account with a second factor pass --totp CODE (at a terminal
    /// hostctl asks for it). Later commands refresh the session by themselves until it ends.
    Login(LoginArgs),
    /// End the session of `hostctl login` and forget its tokens.
    Logout,
    /// Who the token belongs to, and what it may do.
    Whoami,
    /// Websites: create, change, switch PHP or web server, suspend, delete.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// The databases of your websites.
    #[command(subcommand)]
    Databases(DatabasesCommand),
    /// People and their roles.
    #[command(subcommand)]
    Users(UsersCommand),
    /// API tokens (`hsk_...`) for scripts.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Customer organisations (the operator's).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// The panel's nodes (machines that serve websites; `hostctl node` drives this machine
    /// without a panel).
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// The audit log: who did what, newest last.
    Audit(Paging),
    /// Background jobs (node applies).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Your second factor (TOTP).
    #[command(subcommand, name = "2fa")]
    TwoFactor(TwoFactorCommand),
}

/// `hostctl login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account's e-mail (default: the last login's).
    #[arg(long)]
    email: Option<String>,
    /// Read the password from stdin (up to EOF; one trailing newline is dropped).
    #[arg(long)]
    password_stdin: bool,
    /// The authenticator's current 6-digit code (or a recovery code `xxxx-xxxx-xxxx`).
    #[arg(long, value_name = "CODE")]
    totp: Option<String>,
}

/// `hostctl sites`.
#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// The websites you manage.
    List(Paging),
    /// One website with its settings.
    Show {
        /// The website's id.
        id: i64,
    },
    /// Create a website and deploy it: record, database, directories, PHP pool, vhost; a
    /// failing step undoes the earlier ones. A database's credentials are printed once.
    Create(Box<CreateSite>),
    /// Delete a website: vhost, pool, database and login, record, files.
    Delete {
        /// The website's id.
        id: i64,
    },
    /// Change settings (KEY=VALUE...) and deploy them; a change the node refuses leaves the
    /// site as it was.
    #[command(after_help = format!("Keys:\n{}", settings::KEYS))]
    Set {
        /// The website's id.
        id: i64,
        /// The changes, e.g. `php.memory_limit=256M gzip=on`.
        #[arg(required = true, value_name = "KEY=VALUE")]
        edits: Vec<String>,
    },
    /// Switch the PHP version without downtime (`none`: a static site).
    Php {
        /// The website's id.
        id: i64,
        /// `8.0` to `8.4` (installed on the node), or `none`.
        version: String,
    },
    /// Move the website to another web server of its node.
    WebServer {
        /// The website's id.
        id: i64,
        /// `nginx`, `apache` or a plugin's name.
        kind: String,
    },
    /// Stop serving a website; its files and database stay.
    Suspend {
        /// The website's id.
        id: i64,
    },
    /// Serve a suspended website again.
    Resume {
        /// The website's id.
        id: i64,
    },
}

/// `hostctl sites create`.
#[derive(Debug, Args)]
pub struct CreateSite {
    /// The primary domain (IDN accepted).
    #[arg(long)]
    domain: String,
    /// A further domain (repeat for more).
    #[arg(long = "alias", value_name = "DOMAIN")]
    aliases: Vec<String>,
    /// The node to serve it: its id or its name.
    #[arg(long, value_name = "ID|NAME")]
    node: String,
    /// `nginx`, `apache` or a plugin's name; the node must run it.
    #[arg(long, value_name = "KIND", default_value = "nginx")]
    web_server: String,
    /// The PHP version (installed on the node); leave out for a static site.
    #[arg(long, value_name = "VERSION")]
    php: Option<String>,
    /// Run as an account the panel already keeps for your tenant on the node (another site's
    /// `system_user`); leave out and the panel creates one for the site.
    #[arg(long, value_name = "USER")]
    system_user: Option<String>,
    /// The document root, under the site's home.
    #[arg(long, value_name = "PATH", default_value = "public")]
    document_root: String,
    /// The panel user the site belongs to (default: you).
    #[arg(long, value_name = "USER_ID")]
    owner: Option<i64>,
    /// Create a database of this name with the site.
    #[arg(long, value_name = "NAME", requires = "engine")]
    database: Option<String>,
    /// The database's engine; the node must offer it.
    #[arg(long, requires = "database", value_parser = ["mariadb", "mysql", "postgresql"])]
    engine: Option<String>,
    /// The database's character set (default: utf8mb4, or UTF8 on PostgreSQL).
    #[arg(long, requires = "database")]
    charset: Option<String>,
    /// The database's collation (default: utf8mb4_unicode_ci, or C on PostgreSQL).
    #[arg(long, requires = "database")]
    collation: Option<String>,
}

/// `hostctl databases`.
#[derive(Debug, Subcommand)]
pub enum DatabasesCommand {
    /// The databases of the websites you manage (no secrets).
    List(Paging),
    /// Give a website's database login a new password, printed once on stdout.
    RotatePassword {
        /// The website's id.
        site: i64,
    },
}

/// `hostctl users`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// The users you may see.
    List(Paging),
    /// One user.
    Show {
        /// The user's id.
        id: i64,
    },
    /// Create a user; without --password-stdin a password is generated and printed once.
    Create {
        /// Its login, unique across the panel.
        #[arg(long)]
        email: String,
        /// Its role.
        #[arg(long, value_parser = ["admin", "reseller", "client"])]
        role: String,
        /// Create it in this tenant (the operator: e.g. a tenant's first admin); default:
        /// your own.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<i64>,
        /// Read its first password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's role, e-mail or status (suspending ends its sessions).
    Update {
        /// The user's id.
        id: i64,
        /// New role.
        #[arg(long, value_parser = ["admin", "reseller", "client"])]
        role: Option<String>,
        /// New login.
        #[arg(long)]
        email: Option<String>,
        /// New status.
        #[arg(long, value_parser = ["active", "suspended"])]
        status: Option<String>,
    },
    /// Delete a user.
    Delete {
        /// The user's id.
        id: i64,
    },
    /// Set a user's password (typed twice at a prompt, or --password-stdin); its sessions end.
    /// Your own asks for your current password too.
    Passwd {
        /// The user's id.
        id: i64,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Your own password: read your current password from stdin instead of a prompt;
        /// with --password-stdin too, the current password is the first line and the new one
        /// the second.
        #[arg(long)]
        current_password_stdin: bool,
    },
}

/// `hostctl tokens`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Your API tokens (a tenant admin: the tenant's).
    List(Paging),
    /// Create an API token acting as you; its secret is printed once.
    Create {
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        /// The role it acts with: yours (the default) or a lower one.
        #[arg(long, value_parser = ["admin", "reseller", "client"])]
        role: Option<String>,
        /// What it may do (repeat, or comma-separate): websites_read, websites_write,
        /// databases_read, databases_write, users_read, users_write, tenants_read,
        /// tenants_write, nodes_read, nodes_write, audit_read, jobs_read, tokens_write.
        #[arg(
            long = "permission",
            value_name = "P",
            required = true,
            value_delimiter = ','
        )]
        permissions: Vec<String>,
        /// When it stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z); default: never.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Read your current password from stdin instead of a prompt (minting asks for it).
        #[arg(long)]
        current_password_stdin: bool,
    },
    /// Revoke an API token.
    Revoke {
        /// The token's id.
        id: i64,
    },
}

/// `hostctl tenants`.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Every tenant (the operator).
    List(Paging),
    /// One tenant.
    Show {
        /// The tenant's id.
        id: i64,
    },
    /// Create a tenant (the operator); add its first admin with `users create --tenant ID`.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its unique short name: `[a-z][a-z0-9-]*`.
        #[arg(long)]
        slug: String,
        /// At most this many websites (default: unlimited).
        #[arg(long, value_name = "N")]
        max_websites: Option<u32>,
        /// At most this many databases (default: unlimited).
        #[arg(long, value_name = "N")]
        max_databases: Option<u32>,
        /// At most this much disk, MiB (default: unlimited).
        #[arg(long, value_name = "MIB")]
        max_storage_mb: Option<u64>,
    },
    /// Delete a tenant that has no users or websites left.
    Delete {
        /// The tenant's id.
        id: i64,
    },
    /// Suspend a tenant: its users can no longer log in.
    Suspend {
        /// The tenant's id.
        id: i64,
    },
    /// Let a suspended tenant's users log in again.
    Resume {
        /// The tenant's id.
        id: i64,
    },
    /// Require (on) or stop requiring (off) a second factor of the tenant's users.
    #[command(name = "require-2fa")]
    Require2fa {
        /// The tenant's id.
        id: i64,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// `hostctl nodes`.
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// The panel's nodes.
    List(Paging),
    /// One node.
    Show {
        /// The node's id.
        id: i64,
    },
    /// Record a node (the operator); the panel attaches its backends (today: the local node
    /// only).
    Create {
        /// Its unique name.
        #[arg(long)]
        name: String,
        /// Where its agent listens (`host` or `host:port`).
        #[arg(long)]
        address: String,
        /// What it does (repeat, or comma-separate).
        #[arg(long = "role", value_name = "ROLE", required = true, value_delimiter = ',',
              value_parser = ["api", "web", "database", "mail", "backup"])]
        roles: Vec<String>,
    },
    /// Remove a node that serves no websites (the operator).
    Delete {
        /// The node's id.
        id: i64,
    },
    /// The PHP versions installed on a node.
    PhpVersions {
        /// The node's id.
        id: i64,
    },
    /// Queue a job that renders and applies everything the node serves (the operator).
    Apply {
        /// The node's id.
        id: i64,
        /// Wait for the job, showing its progress on stderr; exit 1 if it fails.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 1; the job goes on).
        #[arg(long, value_name = "SECS", requires = "wait")]
        timeout: Option<u64>,
    },
}

/// `hostctl jobs`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The jobs you may see.
    List(Paging),
    /// One job.
    Show {
        /// The job's id.
        id: i64,
    },
    /// Wait until a job succeeds or fails, showing its progress on stderr; exit 1 if it fails.
    Wait {
        /// The job's id.
        id: i64,
        /// Give up after this many seconds (exit 1; the job goes on).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
}

/// `hostctl 2fa`.
#[derive(Debug, Subcommand)]
pub enum TwoFactorCommand {
    /// Start enrolling: prints the secret, its otpauth:// URI and recovery codes, once.
    Enrol {
        /// Read your current password from stdin instead of a prompt.
        #[arg(long)]
        current_password_stdin: bool,
    },
    /// Activate the enrolled second factor with a current code.
    Confirm {
        /// The authenticator's current code.
        code: String,
    },
    /// Remove your second factor, proven with a current code and your password.
    Disable {
        /// The authenticator's current code.
        code: String,
        /// Read your current password from stdin instead of a prompt.
        #[arg(long)]
        current_password_stdin: bool,
    },
}

/// The caller's current password, which the panel asks for before it mints a token or changes
/// a second factor (so a stolen session alone cannot).
fn current_password(from_stdin: bool) -> Result<String, Failure> {
    prompt::password(from_stdin, "current password: ", false)
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    s.parse::<chrono::DateTime<chrono::FixedOffset>>()
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{e}: use RFC 3339, e.g. 2027-01-01T00:00:00Z"))
}

/// Prints an answer: as sent with `--json`, else what `human` makes of it.
fn emit(json: bool, answer: &Answer, human: impl FnOnce(&Value) -> String) {
    if json {
        let text = answer.text.trim_end();
        if !text.is_empty() {
            println!("{text}");
        }
    } else {
        print!("{}", human(&answer.body));
    }
}

/// Prints a line for people; nothing with `--json` (whose answer had no body).
fn say(json: bool, line: &str) {
    if !json {
        println!("{line}");
    }
}

/// Runs one panel command; `Ok` is the exit code.
pub async fn run(
    command: &PanelCommand,
    connection: &Connection,
    json: bool,
) -> Result<u8, Failure> {
    match command {
        PanelCommand::Login(args) => return login(args, connection, json).await,
        PanelCommand::Logout => return logout(connection, json).await,
        _ => {}
    }
    let mut client = Client::connect(connection)?;
    if !client.is_login() && !client.is_given() {
        return Err(Failure::not_logged_in(format!(
            "not logged in to {}: run `hostctl login --url {} --email EMAIL`, or pass an API \
             token with --token or ${}",
            client.base(),
            client.base(),
            client::TOKEN_VAR
        )));
    }
    let c = &mut client;
    match command {
        PanelCommand::Login(_) | PanelCommand::Logout => Ok(EXIT_OK),
        PanelCommand::Whoami => {
            let answer = c.get("/auth/me").await?;
            let base = c.base().to_owned();
            emit(json, &answer, |me| {
                let mut out = render::record(
                    me,
                    &[
                        ("user", "/user_id"),
                        ("email", "/user/email"),
                        ("tenant", "/tenant_id"),
                        ("role", "/role"),
                        ("grant", "/grant"),
                        ("permissions", "/permissions"),
                        (
                            "2fa_enrolment_required",
                            "/second_factor_enrolment_required",
                        ),
                    ],
                );
                out.push_str(&format!("panel: {base}\n"));
                out
            });
            Ok(EXIT_OK)
        }
        PanelCommand::Sites(cmd) => sites(c, cmd, json).await,
        PanelCommand::Databases(cmd) => databases(c, cmd, json).await,
        PanelCommand::Users(cmd) => users(c, cmd, json).await,
        PanelCommand::Tokens(cmd) => tokens(c, cmd, json).await,
        PanelCommand::Tenants(cmd) => tenants(c, cmd, json).await,
        PanelCommand::Nodes(cmd) => nodes(c, cmd, json).await,
        PanelCommand::Audit(paging) => {
            let page = c.list("/audit", paging).await?;
            emit(json, &page, |p| {
                render::list(p, render::AUDIT, "audit entries")
            });
            Ok(EXIT_OK)
        }
        PanelCommand::Jobs(cmd) => jobs(c, cmd, json).await,
        PanelCommand::TwoFactor(cmd) => two_factor(c, cmd, json).await,
    }
}

async fn login(args: &LoginArgs, connection: &Connection, json: bool) -> Result<u8, Failure> {
    let path = config::path()?;
    let mut file = config::load(&path)?;
    let base = client::resolve_url(connection, &file)?;
    let email = args
        .email
        .clone()
        .or_else(|| file.email.clone())
        .ok_or_else(|| Failure::invalid_field("email", "--email: which account?"))?;
    let password = prompt::password(
        args.password_stdin,
        &format!("password for {email}: "),
        false,
    )?;
    let mut body = json!({ "email": email, "password": password });
    if let Some(code) = &args.totp {
        second_factor(&mut body, code);
    }
    let mut answer = login_call(&base, &body).await;
    if let Err(f) = &answer
        && f.document["error"]["code"] == "second_factor_required"
        && args.totp.is_none()
    {
        if !client::interactive() {
            return Err(Failure::not_logged_in(format!(
                "{email} has a second factor: run again with --totp CODE (the authenticator's \
                 current code, or a recovery code)"
            )));
        }
        let code = prompt::ask("second-factor code (or a recovery code): ")?;
        second_factor(&mut body, code.trim());
        answer = login_call(&base, &body).await;
    }
    let answer = answer?;
    let tokens = Tokens::from_answer(&answer)
        .ok_or_else(|| Failure::network(format!("{base} answered the login without tokens")))?;
    file.url = Some(base.clone());
    file.email = Some(email.clone());
    tokens.store(&mut file);
    config::save(&path, &file)?;
    if json {
        // The answer without its two tokens: they are in the config file, and stdout may be
        // a log.
        let mut shown = answer.clone();
        if let Some(obj) = shown.as_object_mut() {
            obj.remove("access_token");
            obj.remove("refresh_token");
        }
        println!("{shown}");
    } else {
        println!(
            "logged in to {base} as {email} ({} of tenant {}); session until {}",
            render::cell(&answer["user"]["role"]),
            render::cell(&answer["user"]["tenant_id"]),
            render::cell(&answer["refresh_expires_at"]),
        );
        println!("tokens saved in {}", path.display());
    }
    if answer["second_factor_enrolment_required"] == true {
        eprintln!(
            "note: your tenant requires a second factor and you have none: until you enrol \
             (`hostctl 2fa enrol`, then `hostctl 2fa confirm CODE`) nothing else works"
        );
    }
    Ok(EXIT_OK)
}

/// Puts a code in a login body: a recovery code (`xxxx-xxxx-xxxx`) or a TOTP code.
fn second_factor(body: &mut Value, code: &str) {
    let key = if code.contains('-') {
        "recovery_code"
    } else {
        "totp_code"
    };
    if let Some(obj) = body.as_object_mut() {
        obj.insert(key.to_owned(), json!(code));
    }
}

async fn login_call(base: &str, body: &Value) -> Result<Value, Failure> {
    let mut client = Client::anonymous(base.to_owned())?;
    Ok(client
        .call(Method::POST, "/auth/login", &[], Some(body))
        .await?
        .body)
}

async fn logout(connection: &Connection, json: bool) -> Result<u8, Failure> {
    let mut client = Client::connect(connection)?;
    if client.is_given() {
        return Err(Failure::invalid(
            "logout ends the session of `hostctl login`; an API token given by --token or \
             $HOSTCTL_TOKEN is revoked with `hostctl tokens revoke ID`",
        ));
    }
    let path = config::path()?;
    if !client.is_login() {
        say(json, &format!("not logged in to {}", client.base()));
        return Ok(EXIT_OK);
    }
    let told = client.post("/auth/logout", None).await;
    // Forget the tokens whatever the panel said: the user asked to be logged out here.
    let _lock = config::lock(&path)?;
    let mut file = config::load(&path)?;
    file.forget_tokens();
    config::save(&path, &file)?;
    match told {
        Ok(_) => {}
        // Already over (expired or ended elsewhere): nothing left to end.
        Err(f) if f.exit == crate::error::EXIT_UNAUTHENTICATED => {}
        Err(f) => {
            return Err(Failure {
                message: format!(
                    "the tokens are forgotten here, but the panel could not end the session: {}",
                    f.message
                ),
                ..f
            });
        }
    }
    say(json, &format!("logged out of {}", client.base()));
    Ok(EXIT_OK)
}

/// A site's record, its settings flattened, and (once, at creation) its database's
/// credentials.
fn site_text(site: &Value) -> String {
    let mut out = render::record(site, render::SITE_RECORD);
    let mut rows = Vec::new();
    render::flatten("settings", &site["settings"], &mut rows);
    out.push_str(&table(&["SETTING", "VALUE"], &rows));
    out
}

fn credentials_text(credentials: &Value) -> String {
    let mut out = String::from(
        "database credentials (shown once: the panel keeps no copy of the password):\n",
    );
    out.push_str(&render::record(credentials, render::CREDENTIALS));
    out
}

async fn node_id(c: &mut Client, node: &str) -> Result<i64, Failure> {
    if let Ok(id) = node.parse::<i64>() {
        return Ok(id);
    }
    let all = Paging {
        limit: Some(500),
        after: None,
        all: true,
    };
    let nodes = c.list("/nodes", &all).await?;
    nodes.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|n| n["name"] == node))
        .and_then(|n| n["id"].as_i64())
        .ok_or_else(|| Failure::not_found("node", format!("--node {node}: no node of that name")))
}

async fn sites(c: &mut Client, cmd: &SitesCommand, json: bool) -> Result<u8, Failure> {
    match cmd {
        SitesCommand::List(paging) => {
            let page = c.list("/websites", paging).await?;
            emit(json, &page, |p| render::list(p, render::SITE, "websites"));
        }
        SitesCommand::Show { id } => {
            let site = c.get(&format!("/websites/{id}")).await?;
            emit(json, &site, site_text);
        }
        SitesCommand::Create(args) => {
            let owner = match args.owner {
                Some(owner) => owner,
                None => c.get("/auth/me").await?.body["user_id"]
                    .as_i64()
                    .ok_or_else(|| Failure::network("the panel did not say who you are"))?,
            };
            let node = node_id(c, &args.node).await?;
            let mut settings = Map::new();
            if let (Some(name), Some(engine)) = (&args.database, &args.engine) {
                // The engine's defaults come from the domain; an engine it does not know is
                // sent as typed, for the panel to refuse naming the field.
                let defaults = engine.parse::<DbEngine>().ok();
                let charset = args
                    .charset
                    .clone()
                    .or_else(|| defaults.map(|e| Charset::default_for(e).as_str().to_owned()));
                let collation = args
                    .collation
                    .clone()
                    .or_else(|| defaults.map(|e| Collation::default_for(e).as_str().to_owned()));
                let mut database = Map::new();
                database.insert("engine".to_owned(), json!(engine));
                database.insert("name".to_owned(), json!(name));
                if let Some(charset) = charset {
                    database.insert("charset".to_owned(), json!(charset));
                }
                if let Some(collation) = collation {
                    database.insert("collation".to_owned(), json!(collation));
                }
                settings.insert("database".to_owned(), Value::Object(database));
            }
            let body = json!({
                "owner_id": owner,
                "domain": args.domain,
                "aliases": args.aliases,
                "node_id": node,
                "web_server": args.web_server,
                "php_version": args.php,
                "system_user": args.system_user,
                "document_root": args.document_root,
                "settings": settings,
            });
            let created = c.post("/websites", Some(&body)).await?;
            emit(json, &created, |v| {
                let mut out = site_text(&v["website"]);
                if v["database"].is_object() {
                    out.push_str(&credentials_text(&v["database"]));
                }
                out
            });
        }
        SitesCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("/websites/{id}"), &[], None)
                .await?;
            say(json, &format!("deleted website {id}"));
        }
        SitesCommand::Set { id, edits } => {
            let site = c.get(&format!("/websites/{id}")).await?;
            let body = settings::patch(&site.body["settings"], edits)?;
            let changed = c
                .call(Method::PATCH, &format!("/websites/{id}"), &[], Some(&body))
                .await?;
            emit(json, &changed, site_text);
        }
        SitesCommand::Php { id, version } => {
            let version = match version.as_str() {
                "none" | "off" => Value::Null,
                v => json!(v),
            };
            let body = json!({ "php_version": version });
            let site = c.post(&format!("/websites/{id}/php"), Some(&body)).await?;
            emit(json, &site, site_text);
        }
        SitesCommand::WebServer { id, kind } => {
            let body = json!({ "web_server": kind });
            let site = c
                .post(&format!("/websites/{id}/web-server"), Some(&body))
                .await?;
            emit(json, &site, site_text);
        }
        SitesCommand::Suspend { id } => {
            let site = c.post(&format!("/websites/{id}/suspend"), None).await?;
            emit(json, &site, |s| {
                render::list(&json!({"items": [s]}), render::SITE, "websites")
            });
        }
        SitesCommand::Resume { id } => {
            let site = c.post(&format!("/websites/{id}/resume"), None).await?;
            emit(json, &site, |s| {
                render::list(&json!({"items": [s]}), render::SITE, "websites")
            });
        }
    }
    Ok(EXIT_OK)
}

async fn databases(c: &mut Client, cmd: &DatabasesCommand, json: bool) -> Result<u8, Failure> {
    match cmd {
        DatabasesCommand::List(paging) => {
            let page = c.list("/databases", paging).await?;
            emit(json, &page, |p| {
                render::list(p, render::DATABASE, "databases")
            });
        }
        DatabasesCommand::RotatePassword { site } => {
            let credentials = c
                .post(&format!("/websites/{site}/database/rotate-password"), None)
                .await?;
            emit(json, &credentials, credentials_text);
        }
    }
    Ok(EXIT_OK)
}

async fn users(c: &mut Client, cmd: &UsersCommand, json: bool) -> Result<u8, Failure> {
    match cmd {
        UsersCommand::List(paging) => {
            let page = c.list("/users", paging).await?;
            emit(json, &page, |p| render::list(p, render::USER, "users"));
        }
        UsersCommand::Show { id } => {
            let user = c.get(&format!("/users/{id}")).await?;
            emit(json, &user, |u| {
                render::list(&json!({"items": [u]}), render::USER, "users")
            });
        }
        UsersCommand::Create {
            email,
            role,
            tenant,
            password_stdin,
        } => {
            let mut body = json!({ "email": email, "role": role });
            if *password_stdin {
                let password = prompt::password(true, "", false)?;
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("password".to_owned(), json!(password));
                }
            }
            let path = match tenant {
                Some(t) => format!("/tenants/{t}/users"),
                None => "/users".to_owned(),
            };
            let created = c.post(&path, Some(&body)).await?;
            emit(json, &created, |v| {
                let mut out = render::list(&json!({"items": [&v["user"]]}), render::USER, "users");
                if let Some(p) = v["generated_password"].as_str() {
                    out.push_str(&format!(
                        "password: {p}\n(generated; shown once: the panel keeps only its hash)\n"
                    ));
                }
                out
            });
        }
        UsersCommand::Update {
            id,
            role,
            email,
            status,
        } => {
            let mut body = Map::new();
            for (key, value) in [("role", role), ("email", email), ("status", status)] {
                if let Some(v) = value {
                    body.insert(key.to_owned(), json!(v));
                }
            }
            if body.is_empty() {
                return Err(Failure::invalid(
                    "nothing to change: give --role, --email or --status",
                ));
            }
            let user = c
                .call(
                    Method::PATCH,
                    &format!("/users/{id}"),
                    &[],
                    Some(&Value::Object(body)),
                )
                .await?;
            emit(json, &user, |u| {
                render::list(&json!({"items": [u]}), render::USER, "users")
            });
        }
        UsersCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("/users/{id}"), &[], None)
                .await?;
            say(json, &format!("deleted user {id}"));
        }
        UsersCommand::Passwd {
            id,
            password_stdin,
            current_password_stdin,
        } => {
            // The panel asks for the current password when the password is one's own.
            let own = c.get("/auth/me").await?.body["user_id"].as_i64() == Some(*id);
            let (current, password) = match (own, *current_password_stdin, *password_stdin) {
                (true, true, true) => {
                    let lines = prompt::password(true, "", false)?;
                    let (current, new) = lines.split_once('\n').ok_or_else(|| {
                        Failure::invalid_field(
                            "password",
                            "with --current-password-stdin and --password-stdin, give the \
                             current password on the first line and the new one on the second",
                        )
                    })?;
                    let current = current.strip_suffix('\r').unwrap_or(current);
                    (Some(current.to_owned()), new.to_owned())
                }
                (true, false, true) => {
                    return Err(Failure::invalid_field(
                        "current_password",
                        "changing your own password needs your current password: add \
                         --current-password-stdin and give it on the line before the new one",
                    ));
                }
                (true, from_stdin, false) => (
                    Some(current_password(from_stdin)?),
                    prompt::password(false, "new password: ", true)?,
                ),
                (false, _, _) => (
                    None,
                    prompt::password(*password_stdin, "new password: ", true)?,
                ),
            };
            let body = match current {
                Some(current) => json!({ "password": password, "current_password": current }),
                None => json!({ "password": password }),
            };
            c.call(
                Method::PUT,
                &format!("/users/{id}/password"),
                &[],
                Some(&body),
            )
            .await?;
            say(
                json,
                &format!(
                    "password of user {id} set; its sessions have ended (your own: run \
                     `hostctl login` again)"
                ),
            );
        }
    }
    Ok(EXIT_OK)
}

async fn tokens(c: &mut Client, cmd: &TokensCommand, json: bool) -> Result<u8, Failure> {
    match cmd {
        TokensCommand::List(paging) => {
            let page = c.list("/tokens", paging).await?;
            emit(json, &page, |p| {
                render::list(p, render::TOKEN, "API tokens")
            });
        }
        TokensCommand::Create {
            name,
            role,
            permissions,
            expires_at,
            current_password_stdin,
        } => {
            let current = current_password(*current_password_stdin)?;
            let mut body = json!({
                "name": name,
                "permissions": permissions,
                "current_password": current,
            });
            if let Some(obj) = body.as_object_mut() {
                if let Some(role) = role {
                    obj.insert("role".to_owned(), json!(role));
                }
                if let Some(at) = expires_at {
                    obj.insert("expires_at".to_owned(), json!(at));
                }
            }
            let created = c.post("/tokens", Some(&body)).await?;
            emit(json, &created, |v| {
                let mut out = render::list(
                    &json!({"items": [&v["token"]]}),
                    render::TOKEN,
                    "API tokens",
                );
                out.push_str(&format!(
                    "secret: {}\n(shown once: the panel keeps only its hash)\n",
                    render::cell(&v["secret"])
                ));
                out
            });
        }
        TokensCommand::Revoke { id } => {
            c.call(Method::DELETE, &format!("/tokens/{id}"), &[], None)
                .await?;
            say(json, &format!("revoked API token {id}"));
        }
    }
    Ok(EXIT_OK)
}

async fn tenants(c: &mut Client, cmd: &TenantsCommand, json: bool) -> Result<u8, Failure> {
    let one = |t: &Value| render::list(&json!({"items": [t]}), render::TENANT, "tenants");
    match cmd {
        TenantsCommand::List(paging) => {
            let page = c.list("/tenants", paging).await?;
            emit(json, &page, |p| render::list(p, render::TENANT, "tenants"));
        }
        TenantsCommand::Show { id } => {
            let tenant = c.get(&format!("/tenants/{id}")).await?;
            emit(json, &tenant, one);
        }
        TenantsCommand::Create {
            name,
            slug,
            max_websites,
            max_databases,
            max_storage_mb,
        } => {
            let body = json!({
                "name": name,
                "slug": slug,
                "quotas": {
                    "max_websites": max_websites,
                    "max_databases": max_databases,
                    "max_storage_mb": max_storage_mb,
                },
            });
            let tenant = c.post("/tenants", Some(&body)).await?;
            emit(json, &tenant, one);
        }
        TenantsCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("/tenants/{id}"), &[], None)
                .await?;
            say(json, &format!("deleted tenant {id}"));
        }
        TenantsCommand::Suspend { id } | TenantsCommand::Resume { id } => {
            let status = if matches!(cmd, TenantsCommand::Suspend { .. }) {
                "suspended"
            } else {
                "active"
            };
            let body = json!({ "status": status });
            let tenant = c
                .call(Method::PATCH, &format!("/tenants/{id}"), &[], Some(&body))
                .await?;
            emit(json, &tenant, one);
        }
        TenantsCommand::Require2fa { id, state } => {
            let required = state == "on";
            let body = json!({ "required": required });
            c.call(
                Method::PUT,
                &format!("/tenants/{id}/require-2fa"),
                &[],
                Some(&body),
            )
            .await?;
            say(
                json,
                &format!(
                    "tenant {id}: a second factor is {}",
                    if required { "required" } else { "optional" }
                ),
            );
        }
    }
    Ok(EXIT_OK)
}

async fn nodes(c: &mut Client, cmd: &NodesCommand, json: bool) -> Result<u8, Failure> {
    match cmd {
        NodesCommand::List(paging) => {
            let page = c.list("/nodes", paging).await?;
            emit(json, &page, |p| render::list(p, render::NODE, "nodes"));
        }
        NodesCommand::Show { id } => {
            let node = c.get(&format!("/nodes/{id}")).await?;
            emit(json, &node, |n| {
                render::list(&json!({"items": [n]}), render::NODE, "nodes")
            });
        }
        NodesCommand::Create {
            name,
            address,
            roles,
        } => {
            let body = json!({ "name": name, "address": address, "roles": roles });
            let node = c.post("/nodes", Some(&body)).await?;
            emit(json, &node, |n| {
                render::list(&json!({"items": [n]}), render::NODE, "nodes")
            });
        }
        NodesCommand::Delete { id } => {
            c.call(Method::DELETE, &format!("/nodes/{id}"), &[], None)
                .await?;
            say(json, &format!("removed node {id}"));
        }
        NodesCommand::PhpVersions { id } => {
            let page = c.get(&format!("/nodes/{id}/php-versions")).await?;
            emit(json, &page, |p| {
                render::list(p, render::PHP_VERSION, "PHP versions")
            });
        }
        NodesCommand::Apply { id, wait, timeout } => {
            let job = c.post(&format!("/nodes/{id}/apply"), None).await?;
            if !*wait {
                emit(json, &job, |j| render::record(j, render::JOB_RECORD));
                if !json {
                    println!(
                        "queued; follow it with `hostctl jobs wait {}`",
                        render::cell(&job.body["id"])
                    );
                }
                return Ok(EXIT_OK);
            }
            let job_id = job.body["id"]
                .as_i64()
                .ok_or_else(|| Failure::network("the panel's job has no id"))?;
            return wait_job(c, job_id, *timeout, json).await;
        }
    }
    Ok(EXIT_OK)
}

async fn jobs(c: &mut Client, cmd: &JobsCommand, json: bool) -> Result<u8, Failure> {
    match cmd {
        JobsCommand::List(paging) => {
            let page = c.list("/jobs", paging).await?;
            emit(json, &page, |p| render::list(p, render::JOB, "jobs"));
        }
        JobsCommand::Show { id } => {
            let job = c.get(&format!("/jobs/{id}")).await?;
            emit(json, &job, |j| render::record(j, render::JOB_RECORD));
        }
        JobsCommand::Wait { id, timeout } => return wait_job(c, *id, *timeout, json).await,
    }
    Ok(EXIT_OK)
}

fn elapsed_text(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// One progress line of a job.
fn progress_line(job: &Value, elapsed: Duration) -> String {
    let mut line = format!(
        "job {}: {}, attempt {}/{}",
        render::cell(&job["id"]),
        render::cell(&job["status"]),
        render::cell(&job["attempts"]),
        render::cell(&job["max_attempts"]),
    );
    if let Some(p) = job["progress"].as_str().filter(|p| !p.is_empty()) {
        line.push_str(&format!(", {p}"));
    }
    if let Some(e) = job["last_error"].as_str() {
        line.push_str(&format!(", last error: {e}"));
    }
    line.push_str(&format!(", {}", elapsed_text(elapsed)));
    line
}

/// Polls a job until it is final, with a progress line on stderr (rewritten in place on a
/// terminal, a new line per change otherwise). Exit 1 when it failed or `timeout` passed.
async fn wait_job(
    c: &mut Client,
    id: i64,
    timeout: Option<u64>,
    json: bool,
) -> Result<u8, Failure> {
    let start = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut last_shown = String::new();
    let mut pause = Duration::from_millis(250);
    loop {
        let answer = c.get(&format!("/jobs/{id}")).await?;
        let job = &answer.body;
        let elapsed = start.elapsed();
        let line = progress_line(job, elapsed);
        let status = job["status"].as_str().unwrap_or_default();
        let final_state = matches!(status, "succeeded" | "failed");
        // Without a terminal, a line only when something but the clock changed.
        let key = progress_line(job, Duration::ZERO);
        if terminal {
            eprint!("\r\x1b[2K{line}");
        } else if key != last_shown {
            eprintln!("{line}");
        }
        last_shown = key;
        if final_state {
            if terminal {
                eprintln!();
            }
            if status == "failed" {
                let why = job["last_error"].as_str().unwrap_or("no reason recorded");
                return Err(Failure::job(
                    job.clone(),
                    format!(
                        "job {id} failed after {} attempt(s): {why}",
                        render::cell(&job["attempts"])
                    ),
                ));
            }
            emit(json, &answer, |j| render::record(j, render::JOB_RECORD));
            return Ok(EXIT_OK);
        }
        if let Some(limit) = timeout
            && elapsed >= Duration::from_secs(limit)
        {
            if terminal {
                eprintln!();
            }
            return Err(Failure::job(
                job.clone(),
                format!(
                    "job {id} is still {status} after {limit} s; it goes on (`hostctl jobs wait {id}`)"
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

async fn two_factor(c: &mut Client, cmd: &TwoFactorCommand, json: bool) -> Result<u8, Failure> {
    match cmd {
        TwoFactorCommand::Enrol {
            current_password_stdin,
        } => {
            let current = current_password(*current_password_stdin)?;
            let enrolment = c
                .post(
                    "/auth/2fa/enrol",
                    Some(&json!({ "current_password": current })),
                )
                .await?;
            emit(json, &enrolment, |e| {
                let codes: Vec<String> = e["recovery_codes"]
                    .as_array()
                    .map(|a| a.iter().map(render::cell).collect())
                    .unwrap_or_default();
                format!(
                    "secret: {}\nuri: {}\nrecovery codes (each works once; keep them safe):\n  {}\n\
                     shown once. Add the secret to your authenticator, then run `hostctl 2fa \
                     confirm CODE`.\n",
                    render::cell(&e["secret"]),
                    render::cell(&e["provisioning_uri"]),
                    codes.join("\n  ")
                )
            });
        }
        TwoFactorCommand::Confirm { code } => {
            c.post("/auth/2fa/confirm", Some(&json!({ "code": code })))
                .await?;
            say(json, "second factor active: logins now need a code");
        }
        TwoFactorCommand::Disable {
            code,
            current_password_stdin,
        } => {
            let current = current_password(*current_password_stdin)?;
            c.post(
                "/auth/2fa/disable",
                Some(&json!({ "code": code, "current_password": current })),
            )
            .await?;
            say(json, "second factor removed");
        }
    }
    Ok(EXIT_OK)
}
