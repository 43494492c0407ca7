//! The panel server: first-start set-up, the job worker, and serving the API with a graceful,
//! bounded shutdown.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use hosting_core::auth::{AttemptPolicy, Keyring, SigningKey};
use hosting_core::jobs::{Job, JobKind, JobOwner, JobStatus, JobStore, NewJob};
use hosting_core::model::{NewNode, NewTenant, Node, NodeRole, TenantId};
use hosting_core::panel::{AuthSettings, Panel, PanelParts};
use hosting_core::types::{NodeName, Password};
use hosting_core::{
    ChangeTracker, Clock, Operator, PageLimit, PageRequest, PanelStore, SystemClock, TrackedStore,
};
use hosting_db::{Following, SqlStore, StoreOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{Api, ApiSettings};
use crate::config::Config;
use crate::node::local_node;

/// Why the server could not start or stopped badly.
#[derive(Debug, Clone)]
pub struct StartError(String);

impl StartError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn failed(what: &str) -> impl FnOnce(hosting_core::Error) -> StartError + '_ {
    move |e| StartError::new(format!("{what}: {e}"))
}

/// The slug of the operator's own tenant.
pub const OPERATOR_SLUG: &str = "operator";

/// The access-token signing key in `path`, created (0600, random) when it does not exist.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(StartError::new(format!(
                    "{} (the access-token signing key) is readable by group or others (mode \
                     {mode:o}): run chmod 600 {}",
                    path.display(),
                    path.display()
                )));
            }
            SigningKey::from_base64(text.trim()).map_err(|e| {
                StartError::new(format!("{}: not a signing key ({e})", path.display()))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate().map_err(failed("generating a signing key"))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "the panel's data directory, the operator's"
                )]
                std::fs::create_dir_all(dir).map_err(|e| {
                    StartError::new(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StartError::new(format!("cannot create {}: {e}", path.display())))?;
            file.write_all(key.to_base64().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| StartError::new(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(file = %path.display(), "created a new access-token signing key");
            Ok(key)
        }
        Err(e) => Err(StartError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Every page of a listing, for the few start-up lookups that need one row by name.
async fn find<T, F, Fut>(
    mut fetch: F,
    matches: impl Fn(&T) -> bool,
) -> hosting_core::Result<Option<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = hosting_core::Result<hosting_core::Page<T>>>,
{
    let mut page = PageRequest::first(PageLimit::try_from(PageLimit::MAX)?);
    loop {
        let result = fetch(page).await?;
        if let Some(found) = result.items.into_iter().find(&matches) {
            return Ok(Some(found));
        }
        match result.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(None),
        }
    }
}

/// The operator tenant, created on first start.
async fn operator_tenant(store: &dyn PanelStore, op: &Operator) -> Result<TenantId, StartError> {
    let slug = OPERATOR_SLUG;
    let existing = find(|p| store.list_tenants(op, p), |t| t.slug.as_str() == slug)
        .await
        .map_err(failed("looking for the operator tenant"))?;
    if let Some(tenant) = existing {
        return Ok(tenant.id);
    }
    let tenant = store
        .create_tenant(
            op,
            NewTenant {
                name: "Operator"
                    .parse()
                    .map_err(|e| StartError::new(format!("operator name: {e}")))?,
                slug: slug
                    .parse()
                    .map_err(|e| StartError::new(format!("operator slug: {e}")))?,
                quotas: Default::default(),
            },
        )
        .await
        .map_err(failed("creating the operator tenant"))?;
    tracing::info!(tenant = tenant.id.0, "created the operator tenant");
    Ok(tenant.id)
}

/// The local node's record, created on first start.
async fn local_node_record(
    store: &dyn PanelStore,
    op: &Operator,
    name: &NodeName,
    databases: bool,
) -> Result<Node, StartError> {
    let existing = find(|p| store.list_nodes(op, p), |n| &n.name == name)
        .await
        .map_err(failed("looking for the local node"))?;
    if let Some(node) = existing {
        return Ok(node);
    }
    let mut roles = std::collections::BTreeSet::from([NodeRole::Api, NodeRole::Web]);
    if databases {
        roles.insert(NodeRole::Database);
    }
    let node = store
        .create_node(
            op,
            NewNode {
                name: name.clone(),
                address: "127.0.0.1"
                    .parse()
                    .map_err(|e| StartError::new(format!("node address: {e}")))?,
                roles,
            },
        )
        .await
        .map_err(failed("recording the local node"))?;
    tracing::info!(node = node.id.0, name = %name, "recorded the local node");
    Ok(node)
}

/// The file of a `sqlite:` store URL.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    path.split('?').next()
}

/// Creates a missing SQLite store file empty and `0600` before SQLite opens it, so it is never
/// readable by others, not even for a moment (SQLite gives its `-wal` and `-shm` files the
/// main file's mode).
fn create_private_sqlite(url: &str) -> Result<(), StartError> {
    let Some(file) = sqlite_file(url).filter(|f| !f.starts_with(':') && !f.is_empty()) else {
        return Ok(());
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StartError::new(format!(
            "opening the panel store: cannot create {file}: {e}"
        ))),
    }
}

/// Makes the SQLite files of the store readable by the panel only: they hold password
/// hashes and second-factor secrets.
fn protect_sqlite(url: &str) {
    let Some(file) = sqlite_file(url) else {
        return;
    };
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("{file}{suffix}");
        #[allow(
            clippy::disallowed_methods,
            reason = "the panel's store files, the operator's"
        )]
        if Path::new(&name).exists()
            && let Err(e) = std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file = %name, error = %e, "cannot make the store private");
        }
    }
}

/// What keeps the panel's count of the store's writes true while it serves.
#[derive(Debug)]
enum WriterWatch {
    /// The SQLite file's writer lock: no other panel process writes it meanwhile.
    SoleWriter { _lock: std::fs::File },
    /// PostgreSQL's announcements of every process's commits.
    Feed { _following: Following },
}

/// The panel's store, counting its writes where other processes' writes can be known: an
/// SQLite file is locked for this process; PostgreSQL announces every commit. On MySQL and
/// MariaDB nothing announces another panel's writes, so nothing is counted (and no answer
/// is kept).
fn watch_writers(
    store: &Arc<SqlStore>,
    url: &str,
) -> Result<(Arc<dyn PanelStore>, Option<WriterWatch>), StartError> {
    if let Some(file) = sqlite_file(url) {
        let lock = lock_sole_writer(file)?;
        let tracked = TrackedStore::new(store.clone());
        return Ok((
            Arc::new(tracked),
            Some(WriterWatch::SoleWriter { _lock: lock }),
        ));
    }
    if let Some(feed) = store.change_feed() {
        let tracker = Arc::new(ChangeTracker::with_other_writers());
        let following = feed.follow(tracker.clone());
        let tracked = TrackedStore::with_tracker(store.clone(), tracker);
        return Ok((
            Arc::new(tracked),
            Some(WriterWatch::Feed {
                _following: following,
            }),
        ));
    }
    Ok((store.clone(), None))
}

/// Takes `FILE.panel-lock`, which a second panel on the same SQLite file cannot take.
fn lock_sole_writer(file: &str) -> Result<std::fs::File, StartError> {
    let name = format!("{file}.panel-lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&name)
        .map_err(|e| StartError::new(format!("cannot open {name}: {e}")))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::new(format!(
            "another panel process serves the store {file} (it holds {name})"
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StartError::new(format!("cannot lock {name}: {e}")))
        }
    }
}

/// The HTTP settings from the configuration.
pub fn api_settings(config: &Config) -> Result<ApiSettings, StartError> {
    let origins = config
        .cors_allowed_origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o.as_str())
                .map_err(|_| StartError::new(format!("cors_allowed_origins: {}", o.as_str())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiSettings {
        max_body_bytes: config.max_body_bytes,
        max_header_bytes: config.max_header_bytes,
        max_json_depth: config.max_json_depth,
        trusted_proxies: config.trusted_proxies.clone(),
        cors_allowed_origins: origins,
        request_timeout: Duration::from_secs(config.request_timeout_secs),
        read_cache_bytes: usize::try_from(config.read_cache_mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024 * 1024),
        rate_limit_per_credential: config.rate_limit_per_credential,
        rate_limit_per_tenant: config.rate_limit_per_tenant,
        rate_limit_window: Duration::from_secs(config.rate_limit_window_secs),
    })
}

/// The authentication policies from the configuration; policies it has no key for keep the
/// Panel's defaults.
#[allow(clippy::needless_update)] // `AuthSettings` grows; new policies keep their defaults
pub fn auth_settings(config: &Config) -> AuthSettings {
    let defaults = AuthSettings::default();
    AuthSettings {
        access_ttl: Duration::from_secs(config.access_ttl_secs),
        refresh_ttl: Duration::from_secs(config.refresh_ttl_secs),
        password_attempts: AttemptPolicy {
            free: config.login_attempts_per_minute,
            first_wait: Duration::from_secs(config.login_backoff_secs),
            ..defaults.password_attempts
        },
        code_attempts: AttemptPolicy {
            free: config.second_factor_attempts,
            first_wait: Duration::from_secs(config.second_factor_backoff_secs),
            ..defaults.code_attempts
        },
        hashing_writes_per_tenant: usize::try_from(config.password_writes_per_tenant)
            .unwrap_or(usize::MAX),
        hashing_writes_per_source: usize::try_from(config.password_writes_per_source)
            .unwrap_or(usize::MAX),
        denied_audit_burst: Duration::from_secs(config.audit_denied_burst_secs),
        totp_issuer: "hosting-panel".to_owned(),
        hashing_slots: usize::try_from(config.password_hashing_slots)
            .ok()
            .and_then(NonZeroUsize::new)
            .unwrap_or(NonZeroUsize::MIN),
        ..defaults
    }
}

/// Everything set up and ready to serve.
#[derive(Debug)]
pub struct Prepared {
    /// The API over the panel.
    pub api: Api,
    /// The panel.
    pub panel: Arc<Panel>,
    /// The local node's record.
    pub node: Node,
    /// The first admin's password, when it was generated at this start (show it once).
    pub generated_admin_password: Option<Password>,
    /// Held while the API serves, so that its kept answers stay true.
    _writers: Option<WriterWatch>,
}

/// The data directory, the signing key and the store (migrated), opened with its writer
/// watch: what every command that works on the panel's records needs.
pub struct OpenedStore {
    /// The store itself, for its credentials and jobs.
    pub store: Arc<SqlStore>,
    /// The store the panel reads and writes its records through.
    pub panel_store: Arc<dyn PanelStore>,
    /// The access-token signing key.
    pub key: SigningKey,
    writers: Option<WriterWatch>,
}

impl fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedStore").finish_non_exhaustive()
    }
}

/// Who opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// The serving panel: it counts the store's writes for its read cache, and on SQLite
    /// holds the file's writer lock, so a second serving panel is refused.
    Server,
    /// A command on the machine (`hosting-panel admin`): a few writes beside a serving panel,
    /// none to the records its read cache keeps.
    Command,
}

/// Opens the data directory, the signing key and the store (migrated). The server creates
/// what is missing (the directory `0711`, a random key); a command only opens what a first
/// start made, so it never leaves files (owned by whoever ran it) behind.
pub async fn open_store(config: &Config, opener: Opener) -> Result<OpenedStore, StartError> {
    let key = match opener {
        Opener::Server => {
            #[allow(
                clippy::disallowed_methods,
                reason = "the panel's data directory, the operator's"
            )]
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                StartError::new(format!("cannot create {}: {e}", config.data_dir.display()))
            })?;
            // Traversable but not listable: nginx's workers reach the sites and sockets below.
            #[allow(
                clippy::disallowed_methods,
                reason = "the panel's data directory, the operator's"
            )]
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| {
                    StartError::new(format!("cannot chmod {}: {e}", config.data_dir.display()))
                })?;
            load_or_create_key(&config.signing_key_file)?
        }
        Opener::Command => {
            let missing = sqlite_file(config.database_url.expose())
                .filter(|file| !file.starts_with(':') && !Path::new(file).exists())
                .map(str::to_owned)
                .or_else(|| {
                    (!config.signing_key_file.exists())
                        .then(|| config.signing_key_file.display().to_string())
                });
            if let Some(missing) = missing {
                return Err(StartError::new(format!(
                    "{missing} does not exist: start the panel once (hosting-panel serve), or \
                     pass the --data-dir / --config it runs with"
                )));
            }
            load_or_create_key(&config.signing_key_file)?
        }
    };
    if matches!(opener, Opener::Server) {
        create_private_sqlite(config.database_url.expose())?;
    }
    tracing::info!(
        engine = config.database_url.scheme(),
        "opening the panel store"
    );
    let store = Arc::new(
        SqlStore::open(config.database_url.expose(), &StoreOptions::default())
            .await
            .map_err(|e| {
                StartError::new(format!(
                    "opening the panel store: {e} (check database_url and that its server runs)"
                ))
            })?,
    );
    protect_sqlite(config.database_url.expose());
    // Repeated reads are answered from memory while nothing changed, where that is knowable.
    let (panel_store, writers) = match opener {
        Opener::Server => watch_writers(&store, config.database_url.expose())?,
        Opener::Command => (store.clone() as Arc<dyn PanelStore>, None),
    };
    Ok(OpenedStore {
        store,
        panel_store,
        key,
        writers,
    })
}

/// The panel over an opened store, with the operator tenant: created by the server when
/// missing, required by a command.
pub async fn panel_over(
    config: &Config,
    opened: &OpenedStore,
    opener: Opener,
) -> Result<(Arc<Panel>, TenantId), StartError> {
    let op = Operator::assume();
    let tenant = match opener {
        Opener::Server => operator_tenant(opened.panel_store.as_ref(), &op).await?,
        Opener::Command => find(
            |p| opened.panel_store.list_tenants(&op, p),
            |t| t.slug.as_str() == OPERATOR_SLUG,
        )
        .await
        .map_err(failed("looking for the operator tenant"))?
        .map(|t| t.id)
        .ok_or_else(|| {
            StartError::new(
                "the panel has not started on this store yet: run hosting-panel serve once",
            )
        })?,
    };
    let panel = Arc::new(Panel::new(PanelParts {
        store: opened.panel_store.clone(),
        auth: opened.store.clone(),
        jobs: opened.store.clone(),
        clock: Arc::new(SystemClock),
        keys: Keyring::new(opened.key.clone()),
        operator_tenant: tenant,
        auth_settings: auth_settings(config),
    }));
    Ok((panel, tenant))
}

/// First-start set-up and every start's wiring: the data directory, the signing key, the
/// store (migrated), the local node's backends, the operator tenant, the local node's record,
/// the panel and its API, and, last, the operator's first admin.
///
/// The first start is all or nothing: everything that can fail on a bad configuration or a
/// missing binary (the node's backends) is built before any record is written, and the first
/// admin, whose password is shown once, is made last. A start that fails before it leaves a
/// store on which the next start is again a first start.
pub async fn prepare(
    config: &Config,
    admin_password: Option<Password>,
) -> Result<Prepared, StartError> {
    let opened = open_store(config, Opener::Server).await?;
    let local = local_node(&config.node, &config.data_dir).await?;
    let (panel, _) = panel_over(config, &opened, Opener::Server).await?;
    let op = Operator::assume();
    let store = opened.panel_store.clone();
    let jobs: Arc<dyn JobStore> = opened.store.clone();
    let has_databases = config.node.mariadb.is_some() || config.node.postgres.is_some();
    let node = local_node_record(store.as_ref(), &op, &config.node.name, has_databases).await?;
    panel.attach_node(node.id, local.backends);
    // Website changes a crash interrupted are finished or undone before any job or request.
    panel.recover(&op).await.map_err(failed(
        "recovering the website changes a restart interrupted",
    ))?;
    let api = Api::new(panel.clone(), api_settings(config)?);
    api.describe_node(node.id, local.notes);
    // After a restart the supervised servers are down: converge the node from the records.
    let one =
        PageRequest::first(PageLimit::try_from(1).map_err(|e| StartError::new(e.to_string()))?);
    let has_sites = !store
        .list_node_websites(&op, node.id, one)
        .await
        .map_err(failed("listing the local node's websites"))?
        .items
        .is_empty();
    if has_sites {
        jobs.enqueue(
            JobOwner::Operator(&op),
            NewJob {
                kind: JobKind::ApplyNode { node: node.id },
                max_attempts: 8,
                run_after: SystemClock.now(),
            },
        )
        .await
        .map_err(failed("queueing the local node's apply"))?;
    }
    let generated = panel
        .ensure_operator_admin(&op, &config.admin_email, admin_password)
        .await
        .map_err(failed("creating the operator's admin"))?
        .and_then(|created| {
            tracing::info!(user = created.user.id.0, email = %config.admin_email, "created the operator's admin");
            created.generated_password
        });
    Ok(Prepared {
        api,
        panel,
        node,
        generated_admin_password: generated,
        _writers: opened.writers,
    })
}

/// Logs how a job's attempt ended where an operator looks: a failed attempt that will be
/// retried at WARN with its error and the next attempt's time, one that gives up at ERROR.
fn log_attempt(job: &Job) {
    let error = job.last_error.as_deref().unwrap_or("");
    match job.status {
        JobStatus::Queued if job.last_error.is_some() => tracing::warn!(
            job = job.id.0,
            kind = ?job.kind,
            attempt = job.attempts,
            max_attempts = job.max_attempts,
            next_attempt = %job.run_after,
            error,
            "job attempt failed; it will be tried again"
        ),
        JobStatus::Failed => tracing::error!(
            job = job.id.0,
            kind = ?job.kind,
            attempts = job.attempts,
            error,
            "job failed for good after its last attempt"
        ),
        _ => tracing::info!(
            job = job.id.0,
            kind = ?job.kind,
            status = %job.status,
            attempts = job.attempts,
            "job attempt finished"
        ),
    }
}

/// Runs jobs until `stop` turns true, checking between jobs (never in the middle of one),
/// polling with a growing pause while there is nothing to do; between polls (and when it
/// stops) it writes the counts of denied-call bursts that ended.
pub async fn run_worker(panel: Arc<Panel>, worker: String, mut stop: watch::Receiver<bool>) {
    const IDLE_MIN: Duration = Duration::from_millis(250);
    const IDLE_MAX: Duration = Duration::from_secs(5);
    let mut idle = IDLE_MIN;
    loop {
        if *stop.borrow() {
            break;
        }
        let pause = match panel.run_next_job(&worker).await {
            Ok(Some(job)) => {
                log_attempt(&job);
                idle = IDLE_MIN;
                continue;
            }
            Ok(None) => idle,
            Err(e) => {
                tracing::error!(error = %e, "the job worker failed to claim or record a job");
                idle
            }
        };
        idle = (idle * 2).min(IDLE_MAX);
        // While idle, the counts of ended bursts of denied calls reach the audit log.
        if let Err(e) = panel.flush_denied_audit(false).await {
            tracing::error!(error = %e, "writing the counts of denied calls failed");
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
    if let Err(e) = panel.flush_denied_audit(true).await {
        tracing::error!(error = %e, "writing the counts of denied calls failed");
    }
    tracing::info!("job worker stopped");
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    worker: JoinHandle<()>,
    grace: Duration,
    /// The first admin's password when this start generated it (show it once).
    pub generated_admin_password: Option<Password>,
    /// The panel, for embedders and tests.
    pub panel: Arc<Panel>,
    /// The local node's record.
    pub node: Node,
    _writers: Option<WriterWatch>,
}

impl Server {
    /// Where the API listens (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (at most the grace period), stops the
    /// worker between jobs.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(self.grace, &mut self.serve).await {
            Ok(Ok(Ok(()))) => tracing::info!("requests finished"),
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the server task failed"),
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "requests still in flight after the grace period; closing them");
                self.serve.abort();
            }
        }
        match tokio::time::timeout(self.grace, &mut self.worker).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(
                    "a job is still running after the grace period; it will be retried when its lease expires"
                );
                self.worker.abort();
            }
        }
    }
}

/// Sets everything up, binds `config.listen`, and serves the API and the job worker in the
/// background.
pub async fn start(
    config: &Config,
    admin_password: Option<Password>,
) -> Result<Server, StartError> {
    // The port first: one in use stops the start before anything is created or started.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            StartError::new(format!(
                "cannot listen on {}: {e} (another program may use the port: stop it, or choose \
                 another address with --listen or HOSTING_PANEL_LISTEN)",
                config.listen
            ))
        })?;
    let prepared = prepare(config, admin_password).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::new(format!("cannot read the listening address: {e}")))?;
    let (stop, stopped) = watch::channel(false);
    let app = prepared
        .api
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut serve_stop = stopped.clone();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = serve_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    let worker_name = format!("panel-{}-{}", config.node.name, std::process::id());
    let worker = tokio::spawn(run_worker(prepared.panel.clone(), worker_name, stopped));
    tracing::info!(%addr, "panel listening");
    Ok(Server {
        addr,
        stop,
        serve,
        worker,
        grace: Duration::from_secs(config.shutdown_grace_secs),
        generated_admin_password: prepared.generated_admin_password,
        panel: prepared.panel,
        node: prepared.node,
        _writers: prepared._writers,
    })
}
