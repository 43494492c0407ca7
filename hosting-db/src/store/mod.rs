//! [`SqlStore`]: the [`PanelStore`], [`AuthStore`](hosting_core::auth_store::AuthStore) and
//! [`JobStore`](hosting_core::jobs::JobStore) on SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! One implementation serves the three dialects through sqlx's `Any` driver: queries are written
//! once with `?` placeholders (rewritten to `$n` for PostgreSQL), values are plain integers and
//! text, and the few real dialect differences (how an insert reports its id, how a write
//! transaction starts) are explicit `match`es on [`Dialect`]. Migrations are per dialect.

mod accounts;
mod auth;
mod feed;
mod jobs;
mod operations;
mod rows;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hosting_core::model::{
    AlertRule, AlertRuleId, AlertRuleSpec, AuditEntry, NewAuditEntry, NewNode, NewNodeAccount,
    NewOperation, NewTenant, NewUser, NewWebsite, Node, NodeAccount, NodeAccountId, NodeId,
    Operation, OperationId, OperationState, Role, SagaStep, Ssl, Tenant, TenantChanges, TenantId,
    TenantStatus, User, UserChanges, UserId, UserStatus, Website, WebsiteChanges, WebsiteFailure,
    WebsiteId, WebsiteSettings, WebsiteStatus, check_domains,
};
use hosting_core::rbac::{self, Caller, Operator, UserFacts};
use hosting_core::types::{DomainName, SystemUser};
use hosting_core::{Error, Page, PageRequest, PanelStore, Result, StoreInfo};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Arguments, AssertSqlSafe, Executor};

use crate::errors::map_sqlx;
use crate::tls;
pub use feed::{ChangeFeed, Following};

/// SQL dialect of the connected server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
    /// MySQL and MariaDB share the driver and the migrations.
    MySql,
}

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most open connections (SQLite: concurrent readers; writes are serialised by SQLite).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Idle connections are closed after this long.
    pub idle_timeout: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// The panel store over sqlx. Open it with [`SqlStore::open`]; migrations run on open.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    info: StoreInfo,
    /// PostgreSQL's URL, for the change feed's own connection.
    feed_url: Option<FeedUrl>,
    /// Held by every clone; SQLite's checkpoint task stops once the last one is gone.
    _alive: Arc<()>,
}

/// A URL kept for a second connection; it carries a password, so it is never printed.
#[derive(Clone)]
struct FeedUrl(String);

impl std::fmt::Debug for FeedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedUrl(..)")
    }
}

/// Argument list under construction, so scope filters and values can be appended in order.
#[derive(Default)]
struct Args(AnyArguments);

impl Args {
    fn int(mut self, v: i64) -> Self {
        self.push(v);
        self
    }
    fn opt_int(mut self, v: Option<i64>) -> Self {
        self.push(v);
        self
    }
    fn text(mut self, v: impl Into<String>) -> Self {
        self.push(v.into());
        self
    }
    fn opt_text(mut self, v: Option<String>) -> Self {
        self.push(v);
        self
    }
    fn real(mut self, v: f64) -> Self {
        self.push(v);
        self
    }
    fn flag(self, v: bool) -> Self {
        self.int(i64::from(v))
    }
    fn push<T>(&mut self, v: T)
    where
        T: for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send,
    {
        // Encoding integers, text and floats into Any's owned buffer cannot fail.
        let _ = self.0.add(v);
    }
}

fn now_ms() -> i64 {
    rows::millis(Utc::now())
}

fn to_i64(field: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Invalid {
        field: field.into(),
        reason: "is too large".into(),
    })
}

/// The scope filter for websites (aliased `w`) visible to `caller`, mirroring
/// [`rbac::can_manage_site`].
fn website_scope(caller: &Caller, args: Args) -> (&'static str, Args) {
    let t = caller.tenant.0;
    let u = caller.user.0;
    match caller.role {
        Role::Admin => ("w.tenant_id = ?", args.int(t)),
        Role::Reseller => (
            "w.tenant_id = ? AND (w.owner_id = ? OR w.owner_id IN \
             (SELECT s.id FROM users s WHERE s.tenant_id = ? AND s.created_by = ? \
             AND s.role = 'client'))",
            args.int(t).int(u).int(t).int(u),
        ),
        Role::Client => ("w.tenant_id = ? AND w.owner_id = ?", args.int(t).int(u)),
    }
}

/// The scope filter for users visible to `caller`, mirroring [`rbac::can_view_user`].
fn user_scope(caller: &Caller, args: Args) -> (&'static str, Args) {
    let t = caller.tenant.0;
    let u = caller.user.0;
    match caller.role {
        Role::Admin => ("tenant_id = ?", args.int(t)),
        Role::Reseller => (
            "tenant_id = ? AND (id = ? OR (created_by = ? AND role = 'client'))",
            args.int(t).int(u).int(u),
        ),
        Role::Client => ("tenant_id = ? AND id = ?", args.int(t).int(u)),
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, ...`. Our SQL holds no `?` inside literals.
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn page_of<T>(items: Vec<T>, page: PageRequest, id: impl Fn(&T) -> i64) -> Page<T> {
    let full = items.len() == page.limit.get() as usize;
    let next_after = if full { items.last().map(&id) } else { None };
    Page { items, next_after }
}

/// Keeps customers out of the panel's own database on PostgreSQL: `CONNECT` is taken from
/// `PUBLIC` (after the store's own login is granted it), so a customer login on the same server
/// cannot open the store, read its catalogs or listen to its change channel. When the store's
/// login may not (it does not own the database), a warning names the statement to run;
/// MySQL/MariaDB grant nothing to every login, so there is nothing to close there.
async fn close_store_to_public(pool: &AnyPool) -> Result<()> {
    let open: bool = sqlx::query_scalar(
        "SELECT datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(datacl) a \
                WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') \
         FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| Error::backend("panel-store", e))?;
    if !open {
        return Ok(());
    }
    let closed = sqlx::raw_sql(
        "DO $$ BEGIN \
           EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), current_user); \
           EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', current_database()); \
         END $$",
    )
    .execute(pool)
    .await;
    match closed {
        Ok(_) => tracing::info!("revoked CONNECT on the panel store's database from PUBLIC"),
        Err(e) => tracing::warn!(
            error = %e,
            "every login on this PostgreSQL server may connect to the panel store's database: \
             as its owner or a superuser, run REVOKE CONNECT ON DATABASE <store> FROM PUBLIC"
        ),
    }
    Ok(())
}

fn unsupported_url(url: &str) -> Error {
    let scheme = url.split(':').next().unwrap_or_default();
    Error::Invalid {
        field: "database_url".into(),
        reason: format!(
            "scheme '{scheme}' is not supported; use sqlite:, postgres:// or mysql:// (MariaDB)"
        )
        .into(),
    }
}

/// How often SQLite's WAL is checkpointed and truncated.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

/// Checkpoints SQLite's WAL and truncates it, every [`CHECKPOINT_EVERY`] while the store is
/// open. The automatic checkpoint only runs when no reader holds an old snapshot, so under
/// steady reads and writes the WAL grows without bound (1.47 GB in 30 s of audited requests);
/// a `TRUNCATE` checkpoint waits for readers and leaves the file empty.
async fn checkpoint_wal(pool: AnyPool, alive: std::sync::Weak<()>) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if alive.strong_count() == 0 || pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; retrying later");
        }
    }
}

/// An e-mail address another user has, in this tenant or any other, is refused the same way
/// whoever has it: a tenant learns nothing about other tenants' users from the answer.
fn email_taken(e: Error) -> Error {
    match e {
        Error::AlreadyExists { entity: "user", .. } => Error::Invalid {
            field: "email".into(),
            reason: "cannot be used".into(),
        },
        other => other,
    }
}

impl SqlStore {
    /// Opens the store at `url` and applies pending migrations.
    ///
    /// `sqlite:PATH` (the embedded default: the file is created on first use and put in WAL
    /// mode), `postgres://` / `postgresql://`, or `mysql://` / `mariadb://` (MariaDB and MySQL
    /// are told apart by `SELECT VERSION()`). A server off this machine is reached over
    /// verified TLS unless the URL sets its own `sslmode`/`ssl-mode`; a mode that allows
    /// cleartext to one is refused (see the crate docs).
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let file = path.split('?').next().unwrap_or_default();
            if let Some(dir) = std::path::Path::new(file).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| Error::backend("panel-store", e))?;
            }
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") {
                format!("sqlite://{path}")
            } else {
                format!("sqlite://{path}{sep}mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, tls::postgres_url(url, "database_url")?)
        } else if let Some(rest) = url.strip_prefix("mariadb://") {
            let url = format!("mysql://{rest}");
            (Dialect::MySql, tls::mysql_url(&url, "database_url")?)
        } else if url.starts_with("mysql://") {
            (Dialect::MySql, tls::mysql_url(url, "database_url")?)
        } else {
            return Err(unsupported_url(url));
        };
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout);
        if dialect == Dialect::MySql {
            // Strict mode: an over-long value is an error, never a silent truncation.
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')")
                        .await
                        .map(|_| ())
                })
            });
        }
        if dialect == Dialect::Sqlite {
            // WAL lets readers run beside the writer; NORMAL sync is safe under WAL. The WAL is
            // checkpointed every 1000 pages and, once checkpointed, cut back to 64 MiB.
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
                                  PRAGMA wal_autocheckpoint = 1000; PRAGMA journal_size_limit = 67108864;")
                        .await
                        .map(|_| ())
                })
            });
        }
        let pool = pool_options
            .connect(&url)
            .await
            .map_err(|e| Error::backend("panel-store", e))?;
        let version_sql = match dialect {
            Dialect::Sqlite => "SELECT sqlite_version()",
            Dialect::Postgres => "SHOW server_version",
            Dialect::MySql => "SELECT VERSION()",
        };
        let server_version: String = sqlx::query_scalar(version_sql)
            .fetch_one(&pool)
            .await
            .map_err(|e| Error::backend("panel-store", e))?;
        let engine = match dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql if server_version.contains("MariaDB") => "mariadb",
            Dialect::MySql => "mysql",
        };
        let migrator = match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
            Dialect::MySql => sqlx::migrate!("migrations/mysql"),
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::backend("panel-store", e))?;
        if dialect == Dialect::Postgres {
            close_store_to_public(&pool).await?;
        }
        tracing::info!(engine, %server_version, "panel store opened");
        let alive = Arc::new(());
        if dialect == Dialect::Sqlite {
            tokio::spawn(checkpoint_wal(pool.clone(), Arc::downgrade(&alive)));
        }
        Ok(Self {
            _alive: alive,
            feed_url: (dialect == Dialect::Postgres).then_some(FeedUrl(url)),
            pool,
            dialect,
            info: StoreInfo {
                engine,
                server_version,
            },
        })
    }

    /// The commits any process makes to this store's panel records, where the engine
    /// announces them: PostgreSQL does (`LISTEN`/`NOTIFY`); SQLite and MySQL/MariaDB do not.
    pub fn change_feed(&self) -> Option<ChangeFeed> {
        self.feed_url
            .as_ref()
            .map(|url| ChangeFeed::new(url.0.clone()))
    }

    /// Closes every connection; waits for queries in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// `sql` with `?` placeholders, rewritten to `$1, $2, ...` for PostgreSQL.
    fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self.dialect {
            Dialect::Postgres => Cow::Owned(numbered_placeholders(sql)),
            Dialect::Sqlite | Dialect::MySql => Cow::Borrowed(sql),
        }
    }

    fn query(&self, sql: &str, args: Args) -> sqlx::query::Query<'static, Any, AnyArguments> {
        sqlx::query_with(AssertSqlSafe(self.sql(sql).into_owned()), args.0)
    }

    async fn fetch_optional<'e, E>(&self, exec: E, sql: &str, args: Args) -> Result<Option<AnyRow>>
    where
        E: Executor<'e, Database = Any>,
    {
        self.query(sql, args)
            .fetch_optional(exec)
            .await
            .map_err(|e| Error::backend("panel-store", e))
    }

    async fn fetch_all<'e, E>(&self, exec: E, sql: &str, args: Args) -> Result<Vec<AnyRow>>
    where
        E: Executor<'e, Database = Any>,
    {
        self.query(sql, args)
            .fetch_all(exec)
            .await
            .map_err(|e| Error::backend("panel-store", e))
    }

    /// Inserts a row and returns its new id.
    async fn insert<'e, E>(
        &self,
        exec: E,
        sql: &str,
        args: Args,
        entity: &'static str,
        detail: impl FnOnce() -> String,
    ) -> Result<i64>
    where
        E: Executor<'e, Database = Any>,
    {
        let backend = self.info.engine;
        match self.dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                let sql = format!("{sql} RETURNING id");
                let row = self
                    .query(&sql, args)
                    .fetch_one(exec)
                    .await
                    .map_err(|e| map_sqlx(backend, entity, detail, e))?;
                rows::int(&row, "id")
            }
            Dialect::MySql => {
                let done = self
                    .query(sql, args)
                    .execute(exec)
                    .await
                    .map_err(|e| map_sqlx(backend, entity, detail, e))?;
                done.last_insert_id().ok_or_else(|| {
                    Error::backend(backend, "the server did not report the new row's id")
                })
            }
        }
    }

    /// Runs a write statement; returns the number of rows it changed.
    async fn execute<'e, E>(
        &self,
        exec: E,
        sql: &str,
        args: Args,
        entity: &'static str,
        detail: impl FnOnce() -> String,
    ) -> Result<u64>
    where
        E: Executor<'e, Database = Any>,
    {
        self.query(sql, args)
            .execute(exec)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| map_sqlx(self.info.engine, entity, detail, e))
    }

    /// ` FOR UPDATE` where the engine has row locks; SQLite's `BEGIN IMMEDIATE` already holds
    /// the database's one write lock.
    fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        }
    }

    /// Refuses new websites for a suspended tenant or one at its quota. Locks the tenant row
    /// first, so concurrent creates cannot overshoot the quota together.
    async fn check_tenant_allows_website(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        tenant: TenantId,
    ) -> Result<()> {
        let sql = format!(
            "SELECT status, max_websites FROM tenants WHERE id = ?{}",
            self.for_update()
        );
        let row = self
            .fetch_optional(&mut **tx, &sql, Args::default().int(tenant.0))
            .await?
            .ok_or_else(|| Error::not_found("tenant"))?;
        if rows::tenant_status(&row)? == TenantStatus::Suspended {
            return Err(Error::denied("the tenant is suspended"));
        }
        if let Some(max) = rows::max_websites(&row)? {
            let count = self
                .fetch_optional(
                    &mut **tx,
                    "SELECT COUNT(*) AS n FROM websites WHERE tenant_id = ?",
                    Args::default().int(tenant.0),
                )
                .await?
                .map(|r| rows::int(&r, "n"))
                .transpose()?
                .unwrap_or(0);
            if count >= i64::from(max) {
                return Err(Error::Conflict(format!(
                    "the tenant's quota of {max} websites is reached"
                )));
            }
        }
        Ok(())
    }

    /// Starts a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so a
    /// transaction that reads before it writes cannot fail half-way on a lock upgrade.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, Any>> {
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres | Dialect::MySql => self.pool.begin().await,
        };
        tx.map_err(|e| Error::backend("panel-store", e))
    }

    async fn commit(tx: sqlx::Transaction<'static, Any>) -> Result<()> {
        tx.commit()
            .await
            .map_err(|e| Error::backend("panel-store", e))
    }

    /// The facts RBAC needs about a user of the caller's tenant, or `NotFound`. With `node`,
    /// also checks in the same round trip that the node exists.
    async fn user_facts<'e, E>(
        &self,
        exec: E,
        tenant: TenantId,
        id: UserId,
        node: Option<NodeId>,
    ) -> Result<UserFacts>
    where
        E: Executor<'e, Database = Any>,
    {
        let row = self
            .fetch_optional(
                exec,
                &format!(
                    "SELECT role, created_by, (SELECT COUNT(*) FROM nodes WHERE id = ?) AS nodes \
                     FROM users WHERE tenant_id = ? AND id = ?{}",
                    self.for_update()
                ),
                Args::default()
                    .int(node.map_or(0, |n| n.0))
                    .int(tenant.0)
                    .int(id.0),
            )
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        if node.is_some() && rows::int(&row, "nodes")? == 0 {
            return Err(Error::not_found("node"));
        }
        Ok(UserFacts {
            tenant,
            id,
            role: rows::role(&row)?,
            created_by: rows::created_by(&row)?,
        })
    }

    /// A website the caller manages. `lock` takes row locks for a read-modify-write.
    async fn load_website<'e, E>(
        &self,
        exec: E,
        caller: &Caller,
        id: WebsiteId,
        lock: bool,
    ) -> Result<Website>
    where
        E: Executor<'e, Database = Any>,
    {
        let (scope, args) = website_scope(caller, Args::default().int(id.0));
        let sql = format!(
            "SELECT {} FROM websites w JOIN website_configs c ON c.website_id = w.id \
             WHERE w.id = ? AND {scope}{}",
            rows::WEBSITE_COLUMNS,
            if lock { self.for_update() } else { "" }
        );
        let row = self
            .fetch_optional(exec, &sql, args)
            .await?
            .ok_or_else(|| Error::not_found("website"))?;
        rows::website(&row)
    }

    async fn load_user<'e, E>(&self, exec: E, id: UserId) -> Result<User>
    where
        E: Executor<'e, Database = Any>,
    {
        let sql = format!("SELECT {} FROM users WHERE id = ?", rows::USER_COLUMNS);
        let row = self
            .fetch_optional(exec, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        rows::user(&row)
    }

    async fn insert_user(
        &self,
        tenant: TenantId,
        created_by: Option<UserId>,
        new: NewUser,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        let exists = self
            .fetch_optional(
                &mut *tx,
                "SELECT id FROM tenants WHERE id = ?",
                Args::default().int(tenant.0),
            )
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("tenant"));
        }
        let email = new.email.to_string();
        let id = self
            .insert(
                &mut *tx,
                "INSERT INTO users (tenant_id, role, email, status, created_by, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                Args::default()
                    .int(tenant.0)
                    .text(new.role.to_string())
                    .text(email.clone())
                    .text(UserStatus::Active.to_string())
                    .opt_int(created_by.map(|u| u.0))
                    .int(now_ms()),
                "user",
                String::new,
            )
            .await
            .map_err(email_taken)?;
        let user = self.load_user(&mut *tx, UserId(id)).await?;
        Self::commit(tx).await?;
        Ok(user)
    }

    /// Writes every domain of a site into `website_domains`, where the unique key enforces
    /// "one site per domain" across the panel.
    async fn insert_domains(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        site: WebsiteId,
        tenant: TenantId,
        domains: impl Iterator<Item = &DomainName>,
    ) -> Result<()> {
        // Sorted, so two transactions claiming overlapping domains lock them in the same order
        // and one fails with a unique violation instead of both deadlocking.
        let sorted: std::collections::BTreeSet<&DomainName> = domains.collect();
        for domain in sorted {
            let d = domain.to_string();
            self.execute(
                &mut **tx,
                "INSERT INTO website_domains (domain, website_id, tenant_id) VALUES (?, ?, ?)",
                Args::default().text(d.clone()).int(site.0).int(tenant.0),
                "website",
                || format!("domain {d} is already used by a website"),
            )
            .await?;
        }
        Ok(())
    }

    async fn write_settings(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        site: WebsiteId,
        settings: &WebsiteSettings,
        insert: bool,
    ) -> Result<()> {
        let (ssl_enabled, ssl_provider, auto_renew) = match settings.ssl {
            Ssl::Disabled => (false, None, false),
            Ssl::Enabled {
                provider,
                auto_renew,
            } => (true, Some(provider.to_string()), auto_renew),
        };
        let db = settings.database.as_ref();
        let php = &settings.php;
        let args = Args::default()
            .int(to_i64("memory_limit", php.memory_limit().bytes())?)
            .int(i64::from(php.max_execution_time()))
            .int(to_i64(
                "upload_max_filesize",
                php.upload_max_filesize().bytes(),
            )?)
            .int(to_i64("post_max_size", php.post_max_size().bytes())?)
            .text(rows::to_json(php.extensions())?)
            .opt_text(db.map(|d| d.engine.to_string()))
            .opt_text(db.map(|d| d.name.to_string()))
            .opt_text(db.map(|d| d.charset.to_string()))
            .opt_text(db.map(|d| d.collation.to_string()))
            .flag(ssl_enabled)
            .opt_text(ssl_provider)
            .flag(auto_renew)
            .flag(settings.gzip)
            .opt_int(settings.cache_ttl_secs.map(i64::from))
            .flag(settings.security_headers)
            .text(rows::to_json(&settings.allowed_ips)?)
            .text(rows::to_json(&settings.blocked_ips)?)
            .text(settings.www_redirect.to_string())
            .text(rows::to_json(&settings.extra_directives)?)
            .text(rows::to_json(&settings.operator_directives)?)
            .int(site.0);
        let sql = if insert {
            "INSERT INTO website_configs (php_memory_limit, php_max_execution_time, \
             php_upload_max_size, php_post_max_size, php_extensions, db_engine, db_name, \
             db_charset, db_collation, ssl_enabled, ssl_provider, ssl_auto_renew, gzip, \
             cache_ttl_secs, security_headers, allowed_ips, blocked_ips, www_redirect, \
             extra_directives, operator_directives, website_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        } else {
            "UPDATE website_configs SET php_memory_limit = ?, php_max_execution_time = ?, \
             php_upload_max_size = ?, php_post_max_size = ?, php_extensions = ?, db_engine = ?, \
             db_name = ?, db_charset = ?, db_collation = ?, ssl_enabled = ?, ssl_provider = ?, \
             ssl_auto_renew = ?, gzip = ?, cache_ttl_secs = ?, security_headers = ?, \
             allowed_ips = ?, blocked_ips = ?, www_redirect = ?, extra_directives = ?, \
             operator_directives = ? WHERE website_id = ?"
        };
        self.execute(&mut **tx, sql, args, "website", String::new)
            .await?;
        Ok(())
    }

    fn require_admin(caller: &Caller, what: &str) -> Result<()> {
        if rbac::can_administer_tenant(caller, caller.tenant) {
            Ok(())
        } else {
            Err(Error::denied(format!("only a tenant admin may {what}")))
        }
    }

    /// Checks that an alert rule's site, if any, is one the caller manages.
    async fn check_rule_site(&self, caller: &Caller, spec: &AlertRuleSpec) -> Result<()> {
        if let Some(site) = spec.website_id {
            self.load_website(&self.pool, caller, site, false).await?;
        }
        Ok(())
    }

    fn rule_args(spec: &AlertRuleSpec) -> Result<Args> {
        Ok(Args::default()
            .text(spec.name.to_string())
            .text(spec.metric.to_string())
            .opt_int(spec.website_id.map(|w| w.0))
            .text(spec.comparison.to_string())
            .real(spec.threshold.value())
            .int(i64::from(spec.for_secs))
            .text(rows::to_json(&spec.channels)?)
            .flag(spec.enabled))
    }

    async fn list_page<T>(
        &self,
        sql_before_order: &str,
        id_column: &str,
        args: Args,
        page: PageRequest,
        decode: impl Fn(&AnyRow) -> Result<T>,
        id_of: impl Fn(&T) -> i64,
    ) -> Result<Page<T>> {
        // The first page has no lower bound: an `id > MIN` range would tempt MariaDB into
        // walking the primary key instead of the (tenant_id, id) index. The page size is
        // written into the statement (a `PageLimit` is a number from 1 to 500), not bound:
        // SQLite plans a bound `LIMIT` anew on every execution, a literal one once per
        // connection and size (BENCHMARKS.md, "Panel API under load").
        let limit = page.limit.get();
        let (sql, args) = match page.after {
            Some(after) => (
                format!(
                    "{sql_before_order} AND {id_column} > ? ORDER BY {id_column} LIMIT {limit}"
                ),
                args.int(after),
            ),
            None => (
                format!("{sql_before_order} ORDER BY {id_column} LIMIT {limit}"),
                args,
            ),
        };
        let rows = self.fetch_all(&self.pool, &sql, args).await?;
        let items = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(page_of(items, page, id_of))
    }
}

#[async_trait]
impl PanelStore for SqlStore {
    fn info(&self) -> StoreInfo {
        self.info.clone()
    }

    async fn create_tenant(&self, _op: &Operator, new: NewTenant) -> Result<Tenant> {
        let slug = new.slug.to_string();
        let id = self
            .insert(
                &self.pool,
                "INSERT INTO tenants (name, slug, status, max_websites, max_databases, \
                 max_storage_mb, database_limits, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                Args::default()
                    .text(new.name.to_string())
                    .text(slug.clone())
                    .text(TenantStatus::Active.to_string())
                    .opt_int(new.quotas.max_websites.map(i64::from))
                    .opt_int(new.quotas.max_databases.map(i64::from))
                    .opt_int(
                        new.quotas
                            .max_storage_mb
                            .map(|v| to_i64("max_storage_mb", v))
                            .transpose()?,
                    )
                    .text(rows::to_json(&new.quotas.database_limits)?)
                    .int(now_ms()),
                "tenant",
                || format!("slug {slug}"),
            )
            .await?;
        self.get_tenant(_op, TenantId(id)).await
    }

    async fn get_tenant(&self, _op: &Operator, id: TenantId) -> Result<Tenant> {
        let sql = format!("SELECT {} FROM tenants WHERE id = ?", rows::TENANT_COLUMNS);
        let row = self
            .fetch_optional(&self.pool, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("tenant"))?;
        rows::tenant(&row)
    }

    async fn own_tenant(&self, caller: &Caller) -> Result<Tenant> {
        self.get_tenant(&Operator::assume(), caller.tenant).await
    }

    async fn list_tenants(&self, _op: &Operator, page: PageRequest) -> Result<Page<Tenant>> {
        let sql = format!("SELECT {} FROM tenants WHERE 1 = 1", rows::TENANT_COLUMNS);
        self.list_page(&sql, "id", Args::default(), page, rows::tenant, |t| t.id.0)
            .await
    }

    async fn update_tenant(
        &self,
        op: &Operator,
        id: TenantId,
        changes: TenantChanges,
    ) -> Result<Tenant> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT {} FROM tenants WHERE id = ?{}",
            rows::TENANT_COLUMNS,
            self.for_update()
        );
        let current = self
            .fetch_optional(&mut *tx, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("tenant"))
            .and_then(|row| rows::tenant(&row))?;
        let name = changes.name.unwrap_or(current.name);
        let status = changes.status.unwrap_or(current.status);
        let quotas = changes.quotas.unwrap_or(current.quotas);
        self.execute(
            &mut *tx,
            "UPDATE tenants SET name = ?, status = ?, max_websites = ?, max_databases = ?, \
             max_storage_mb = ?, database_limits = ? WHERE id = ?",
            Args::default()
                .text(name.to_string())
                .text(status.to_string())
                .opt_int(quotas.max_websites.map(i64::from))
                .opt_int(quotas.max_databases.map(i64::from))
                .opt_int(
                    quotas
                        .max_storage_mb
                        .map(|v| to_i64("max_storage_mb", v))
                        .transpose()?,
                )
                .text(rows::to_json(&quotas.database_limits)?)
                .int(id.0),
            "tenant",
            String::new,
        )
        .await?;
        Self::commit(tx).await?;
        self.get_tenant(op, id).await
    }

    async fn delete_tenant(&self, _op: &Operator, id: TenantId) -> Result<()> {
        let mut tx = self.begin().await?;
        let in_use = self
            .fetch_optional(
                &mut *tx,
                "SELECT id FROM users WHERE tenant_id = ? LIMIT 1",
                Args::default().int(id.0),
            )
            .await?;
        if in_use.is_some() {
            return Err(Error::Conflict(
                "the tenant still has users; delete them first".into(),
            ));
        }
        for (sql, entity) in [
            ("DELETE FROM alert_rules WHERE tenant_id = ?", "alert rule"),
            (
                "DELETE FROM node_accounts WHERE tenant_id = ?",
                "node account",
            ),
            (
                "DELETE FROM tenant_security WHERE tenant_id = ?",
                "tenant security",
            ),
        ] {
            self.execute(
                &mut *tx,
                sql,
                Args::default().int(id.0),
                entity,
                String::new,
            )
            .await?;
        }
        let removed = self
            .execute(
                &mut *tx,
                "DELETE FROM tenants WHERE id = ?",
                Args::default().int(id.0),
                "tenant",
                String::new,
            )
            .await?;
        if removed == 0 {
            return Err(Error::not_found("tenant"));
        }
        Self::commit(tx).await
    }

    async fn create_node(&self, op: &Operator, new: NewNode) -> Result<Node> {
        let name = new.name.to_string();
        let id = self
            .insert(
                &self.pool,
                "INSERT INTO nodes (name, address, roles, created_at) VALUES (?, ?, ?, ?)",
                Args::default()
                    .text(name.clone())
                    .text(new.address.to_string())
                    .text(rows::to_json(&new.roles)?)
                    .int(now_ms()),
                "node",
                || format!("name {name}"),
            )
            .await?;
        self.get_node(op, NodeId(id)).await
    }

    async fn get_node(&self, _op: &Operator, id: NodeId) -> Result<Node> {
        let sql = format!("SELECT {} FROM nodes WHERE id = ?", rows::NODE_COLUMNS);
        let row = self
            .fetch_optional(&self.pool, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("node"))?;
        rows::node(&row)
    }

    async fn list_nodes(&self, _op: &Operator, page: PageRequest) -> Result<Page<Node>> {
        let sql = format!("SELECT {} FROM nodes WHERE 1 = 1", rows::NODE_COLUMNS);
        self.list_page(&sql, "id", Args::default(), page, rows::node, |n| n.id.0)
            .await
    }

    async fn delete_node(&self, _op: &Operator, id: NodeId) -> Result<()> {
        let mut tx = self.begin().await?;
        let in_use = self
            .fetch_optional(
                &mut *tx,
                "SELECT id FROM websites WHERE node_id = ? LIMIT 1",
                Args::default().int(id.0),
            )
            .await?;
        if in_use.is_some() {
            return Err(Error::Conflict(
                "the node still serves websites; move or delete them first".into(),
            ));
        }
        let has_accounts = self
            .fetch_optional(
                &mut *tx,
                "SELECT id FROM node_accounts WHERE node_id = ? LIMIT 1",
                Args::default().int(id.0),
            )
            .await?;
        if has_accounts.is_some() {
            return Err(Error::Conflict(
                "the panel still keeps Unix accounts on the node; remove them first".into(),
            ));
        }
        let removed = self
            .execute(
                &mut *tx,
                "DELETE FROM nodes WHERE id = ?",
                Args::default().int(id.0),
                "node",
                String::new,
            )
            .await?;
        if removed == 0 {
            return Err(Error::not_found("node"));
        }
        Self::commit(tx).await
    }

    async fn create_user_as_operator(
        &self,
        _op: &Operator,
        tenant: TenantId,
        new: NewUser,
    ) -> Result<User> {
        self.insert_user(tenant, None, new).await
    }

    async fn create_user(&self, caller: &Caller, new: NewUser) -> Result<User> {
        if !rbac::can_create_user(caller, new.role) {
            return Err(Error::denied(format!(
                "a {} may not create a {}",
                caller.role, new.role
            )));
        }
        self.insert_user(caller.tenant, Some(caller.user), new)
            .await
    }

    async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        let (scope, args) = user_scope(caller, Args::default().int(id.0));
        let sql = format!(
            "SELECT {} FROM users WHERE id = ? AND {scope}",
            rows::USER_COLUMNS
        );
        let row = self
            .fetch_optional(&self.pool, &sql, args)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        rows::user(&row)
    }

    async fn list_users(&self, caller: &Caller, page: PageRequest) -> Result<Page<User>> {
        let (scope, args) = user_scope(caller, Args::default());
        let sql = format!("SELECT {} FROM users WHERE {scope}", rows::USER_COLUMNS);
        self.list_page(&sql, "id", args, page, rows::user, |u| u.id.0)
            .await
    }

    async fn update_user(&self, caller: &Caller, id: UserId, changes: UserChanges) -> Result<User> {
        let mut tx = self.begin().await?;
        let facts = self.user_facts(&mut *tx, caller.tenant, id, None).await?;
        if !rbac::can_manage_user(caller, &facts) {
            return Err(Error::not_found("user"));
        }
        if id == caller.user && (changes.role.is_some() || changes.status.is_some()) {
            return Err(Error::denied(
                "nobody changes their own role or status; another admin must",
            ));
        }
        if let Some(role) = changes.role
            && role != facts.role
            && !rbac::can_create_user(caller, role)
        {
            return Err(Error::denied(format!(
                "a {} may not make a user {role}",
                caller.role
            )));
        }
        let current = self.load_user(&mut *tx, id).await?;
        let email = changes.email.unwrap_or(current.email).to_string();
        self.execute(
            &mut *tx,
            "UPDATE users SET role = ?, email = ?, status = ? WHERE id = ? AND tenant_id = ?",
            Args::default()
                .text(changes.role.unwrap_or(current.role).to_string())
                .text(email.clone())
                .text(changes.status.unwrap_or(current.status).to_string())
                .int(id.0)
                .int(caller.tenant.0),
            "user",
            String::new,
        )
        .await
        .map_err(email_taken)?;
        let user = self.load_user(&mut *tx, id).await?;
        Self::commit(tx).await?;
        Ok(user)
    }

    async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()> {
        let mut tx = self.begin().await?;
        let facts = self.user_facts(&mut *tx, caller.tenant, id, None).await?;
        if !rbac::can_manage_user(caller, &facts) {
            return Err(Error::not_found("user"));
        }
        let owns = self
            .fetch_optional(
                &mut *tx,
                "SELECT id FROM websites WHERE tenant_id = ? AND owner_id = ? LIMIT 1",
                Args::default().int(caller.tenant.0).int(id.0),
            )
            .await?;
        if owns.is_some() {
            return Err(Error::Conflict(
                "the user still owns websites; delete or move them first".into(),
            ));
        }
        let created = self
            .fetch_optional(
                &mut *tx,
                "SELECT id FROM users WHERE tenant_id = ? AND created_by = ? LIMIT 1",
                Args::default().int(caller.tenant.0).int(id.0),
            )
            .await?;
        if created.is_some() {
            return Err(Error::Conflict(
                "the user created other users; delete or reassign them first".into(),
            ));
        }
        // Credentials, sessions and API tokens go with the user; explicitly, as for websites,
        // rather than relying on each engine's cascade behaviour. Jobs stay, as history.
        for (sql, entity) in [
            (
                "DELETE FROM refresh_tokens WHERE session_id IN \
                 (SELECT id FROM sessions WHERE tenant_id = ? AND user_id = ?)",
                "session",
            ),
            (
                "DELETE FROM sessions WHERE tenant_id = ? AND user_id = ?",
                "session",
            ),
            (
                "DELETE FROM api_tokens WHERE tenant_id = ? AND user_id = ?",
                "api token",
            ),
            (
                "DELETE FROM recovery_codes WHERE user_id IN \
                 (SELECT id FROM users WHERE tenant_id = ? AND id = ?)",
                "recovery code",
            ),
            (
                "DELETE FROM user_credentials WHERE user_id IN \
                 (SELECT id FROM users WHERE tenant_id = ? AND id = ?)",
                "user credentials",
            ),
            (
                "DELETE FROM known_sources WHERE user_id IN \
                 (SELECT id FROM users WHERE tenant_id = ? AND id = ?)",
                "known source",
            ),
            ("DELETE FROM users WHERE tenant_id = ? AND id = ?", "user"),
        ] {
            self.execute(
                &mut *tx,
                sql,
                Args::default().int(caller.tenant.0).int(id.0),
                entity,
                String::new,
            )
            .await?;
        }
        Self::commit(tx).await
    }

    async fn create_website(&self, caller: &Caller, new: NewWebsite) -> Result<Website> {
        check_domains(&new.domain, &new.aliases)?;
        let mut tx = self.begin().await?;
        self.check_tenant_allows_website(&mut tx, caller.tenant)
            .await?;
        let owner = self
            .user_facts(&mut *tx, caller.tenant, new.owner_id, Some(new.node_id))
            .await?;
        if !rbac::can_create_site_for(caller, &owner) {
            return Err(Error::not_found("user"));
        }
        let now = now_ms();
        let domain = new.domain.to_string();
        let id = WebsiteId(
            self.insert(
                &mut *tx,
                "INSERT INTO websites (tenant_id, owner_id, domain, aliases, node_id, web_server, \
                 php_version, system_user, document_root, status, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                Args::default()
                    .int(caller.tenant.0)
                    .int(new.owner_id.0)
                    .text(domain.clone())
                    .text(rows::to_json(&new.aliases)?)
                    .int(new.node_id.0)
                    .text(new.web_server.to_string())
                    .opt_text(new.php_version.map(|v| v.to_string()))
                    .text(new.system_user.to_string())
                    .text(new.document_root.to_string())
                    .text(WebsiteStatus::Provisioning.to_string())
                    .int(now)
                    .int(now),
                "website",
                || format!("domain {domain} is already used by a website"),
            )
            .await?,
        );
        self.insert_domains(
            &mut tx,
            id,
            caller.tenant,
            std::iter::once(&new.domain).chain(&new.aliases),
        )
        .await?;
        self.write_settings(&mut tx, id, &new.settings, true)
            .await?;
        Self::commit(tx).await?;
        let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_else(Utc::now);
        Ok(Website {
            id,
            tenant_id: caller.tenant,
            owner_id: new.owner_id,
            domain: new.domain,
            aliases: new.aliases,
            node_id: new.node_id,
            web_server: new.web_server,
            php_version: new.php_version,
            system_user: new.system_user,
            document_root: new.document_root,
            status: WebsiteStatus::Provisioning,
            settings: new.settings,
            created_at: at,
            updated_at: at,
        })
    }

    async fn get_website(&self, caller: &Caller, id: WebsiteId) -> Result<Website> {
        self.load_website(&self.pool, caller, id, false).await
    }

    async fn get_any_website(&self, _op: &Operator, id: WebsiteId) -> Result<Website> {
        let sql = format!(
            "SELECT {} FROM websites w JOIN website_configs c ON c.website_id = w.id \
             WHERE w.id = ?",
            rows::WEBSITE_COLUMNS
        );
        let row = self
            .fetch_optional(&self.pool, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("website"))?;
        rows::website(&row)
    }

    async fn get_website_by_domain(&self, caller: &Caller, domain: &DomainName) -> Result<Website> {
        let (scope, args) = website_scope(
            caller,
            Args::default()
                .text(domain.to_string())
                .int(caller.tenant.0),
        );
        let sql = format!(
            "SELECT {} FROM website_domains d JOIN websites w ON w.id = d.website_id \
             JOIN website_configs c ON c.website_id = w.id \
             WHERE d.domain = ? AND d.tenant_id = ? AND {scope}",
            rows::WEBSITE_COLUMNS
        );
        let row = self
            .fetch_optional(&self.pool, &sql, args)
            .await?
            .ok_or_else(|| Error::not_found("website"))?;
        rows::website(&row)
    }

    async fn list_websites(&self, caller: &Caller, page: PageRequest) -> Result<Page<Website>> {
        let (scope, args) = website_scope(caller, Args::default());
        let sql = format!(
            "SELECT {} FROM websites w JOIN website_configs c ON c.website_id = w.id \
             WHERE {scope}",
            rows::WEBSITE_COLUMNS
        );
        self.list_page(&sql, "w.id", args, page, rows::website, |w| w.id.0)
            .await
    }

    async fn list_node_websites(
        &self,
        _op: &Operator,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<Website>> {
        let sql = format!(
            "SELECT {} FROM websites w JOIN website_configs c ON c.website_id = w.id \
             WHERE w.node_id = ?",
            rows::WEBSITE_COLUMNS
        );
        self.list_page(
            &sql,
            "w.id",
            Args::default().int(node.0),
            page,
            rows::website,
            |w| w.id.0,
        )
        .await
    }

    async fn set_website_status(
        &self,
        _op: &Operator,
        id: WebsiteId,
        status: WebsiteStatus,
    ) -> Result<Website> {
        let mut tx = self.begin().await?;
        let changed = self
            .execute(
                &mut *tx,
                "UPDATE websites SET status = ?, failure_reason = NULL, updated_at = ? WHERE id = ?",
                Args::default()
                    .text(status.to_string())
                    .int(now_ms())
                    .int(id.0),
                "website",
                || format!("website {id}"),
            )
            .await?;
        if changed == 0 {
            return Err(Error::not_found("website"));
        }
        let sql = format!(
            "SELECT {} FROM websites w JOIN website_configs c ON c.website_id = w.id \
             WHERE w.id = ?",
            rows::WEBSITE_COLUMNS
        );
        let row = self
            .fetch_optional(&mut *tx, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("website"))?;
        let site = rows::website(&row)?;
        Self::commit(tx).await?;
        Ok(site)
    }

    async fn fail_website(&self, op: &Operator, id: WebsiteId, reason: &str) -> Result<Website> {
        self.set_failure(id, reason).await?;
        self.get_any_website(op, id).await
    }

    async fn website_failures(
        &self,
        caller: &Caller,
        ids: &[WebsiteId],
    ) -> Result<Vec<WebsiteFailure>> {
        self.failures(caller, ids).await
    }

    async fn begin_operation(&self, _op: &Operator, new: NewOperation) -> Result<Operation> {
        self.insert_operation(new).await
    }

    async fn advance_operation(
        &self,
        _op: &Operator,
        id: OperationId,
        website: Option<WebsiteId>,
        step: SagaStep,
        state: &OperationState,
    ) -> Result<()> {
        self.update_operation(id, website, step, state).await
    }

    async fn end_operation(&self, _op: &Operator, id: OperationId) -> Result<()> {
        self.remove_operation(id).await
    }

    async fn list_operations(&self, _op: &Operator, page: PageRequest) -> Result<Page<Operation>> {
        self.operations_page(page).await
    }

    async fn update_website(
        &self,
        caller: &Caller,
        id: WebsiteId,
        changes: WebsiteChanges,
    ) -> Result<Website> {
        if changes.status.is_some() && caller.role != Role::Admin {
            return Err(Error::denied(
                "only a tenant admin may change a website's status (suspend or resume it)",
            ));
        }
        let mut tx = self.begin().await?;
        let current = self.load_website(&mut *tx, caller, id, true).await?;
        if let Some(aliases) = &changes.aliases {
            check_domains(&current.domain, aliases)?;
            self.execute(
                &mut *tx,
                "DELETE FROM website_domains WHERE website_id = ? AND domain <> ?",
                Args::default().int(id.0).text(current.domain.to_string()),
                "website",
                String::new,
            )
            .await?;
            self.insert_domains(&mut tx, id, current.tenant_id, aliases.iter())
                .await?;
        }
        let aliases = changes.aliases.unwrap_or(current.aliases);
        let php_version = changes.php_version.unwrap_or(current.php_version);
        self.execute(
            &mut *tx,
            "UPDATE websites SET aliases = ?, web_server = ?, php_version = ?, \
             document_root = ?, status = ?, updated_at = ?, \
             failure_reason = CASE WHEN ? = 'failed' THEN failure_reason ELSE NULL END \
             WHERE id = ? AND tenant_id = ?",
            Args::default()
                .text(rows::to_json(&aliases)?)
                .text(changes.web_server.unwrap_or(current.web_server).to_string())
                .opt_text(php_version.map(|v| v.to_string()))
                .text(
                    changes
                        .document_root
                        .unwrap_or(current.document_root)
                        .to_string(),
                )
                .text(changes.status.unwrap_or(current.status).to_string())
                .int(now_ms().max(rows::millis(current.updated_at)))
                .text(changes.status.unwrap_or(current.status).to_string())
                .int(id.0)
                .int(caller.tenant.0),
            "website",
            String::new,
        )
        .await?;
        if let Some(settings) = &changes.settings {
            self.write_settings(&mut tx, id, settings, false).await?;
        }
        let site = self.load_website(&mut *tx, caller, id, false).await?;
        Self::commit(tx).await?;
        Ok(site)
    }

    async fn delete_website(&self, caller: &Caller, id: WebsiteId) -> Result<()> {
        let mut tx = self.begin().await?;
        self.load_website(&mut *tx, caller, id, true).await?;
        // Children first, explicitly, rather than relying on each engine's cascade behaviour.
        for sql in [
            "DELETE FROM website_domains WHERE website_id = ?",
            "DELETE FROM website_configs WHERE website_id = ?",
            "DELETE FROM alert_rules WHERE website_id = ?",
            "DELETE FROM websites WHERE id = ?",
        ] {
            self.execute(
                &mut *tx,
                sql,
                Args::default().int(id.0),
                "website",
                String::new,
            )
            .await?;
        }
        Self::commit(tx).await
    }

    async fn create_alert_rule(&self, caller: &Caller, spec: AlertRuleSpec) -> Result<AlertRule> {
        Self::require_admin(caller, "manage alert rules")?;
        self.check_rule_site(caller, &spec).await?;
        let name = spec.name.to_string();
        let id = self
            .insert(
                &self.pool,
                "INSERT INTO alert_rules (name, metric, website_id, comparison, threshold, \
                 for_secs, channels, enabled, tenant_id, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                Self::rule_args(&spec)?.int(caller.tenant.0).int(now_ms()),
                "alert rule",
                || format!("name {name}"),
            )
            .await?;
        self.get_alert_rule(caller, AlertRuleId(id)).await
    }

    async fn get_alert_rule(&self, caller: &Caller, id: AlertRuleId) -> Result<AlertRule> {
        Self::require_admin(caller, "read alert rules")?;
        let sql = format!(
            "SELECT {} FROM alert_rules WHERE id = ? AND tenant_id = ?",
            rows::ALERT_RULE_COLUMNS
        );
        let row = self
            .fetch_optional(
                &self.pool,
                &sql,
                Args::default().int(id.0).int(caller.tenant.0),
            )
            .await?
            .ok_or_else(|| Error::not_found("alert rule"))?;
        rows::alert_rule(&row)
    }

    async fn list_alert_rules(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<AlertRule>> {
        Self::require_admin(caller, "read alert rules")?;
        let sql = format!(
            "SELECT {} FROM alert_rules WHERE tenant_id = ?",
            rows::ALERT_RULE_COLUMNS
        );
        self.list_page(
            &sql,
            "id",
            Args::default().int(caller.tenant.0),
            page,
            rows::alert_rule,
            |r| r.id.0,
        )
        .await
    }

    async fn update_alert_rule(
        &self,
        caller: &Caller,
        id: AlertRuleId,
        spec: AlertRuleSpec,
    ) -> Result<AlertRule> {
        Self::require_admin(caller, "manage alert rules")?;
        self.check_rule_site(caller, &spec).await?;
        let name = spec.name.to_string();
        let changed = self
            .execute(
                &self.pool,
                "UPDATE alert_rules SET name = ?, metric = ?, website_id = ?, comparison = ?, \
                 threshold = ?, for_secs = ?, channels = ?, enabled = ? \
                 WHERE id = ? AND tenant_id = ?",
                Self::rule_args(&spec)?.int(id.0).int(caller.tenant.0),
                "alert rule",
                || format!("name {name}"),
            )
            .await?;
        // sqlx asks MySQL for matched (not changed) rows, so 0 means no such rule here.
        if changed == 0 {
            return Err(Error::not_found("alert rule"));
        }
        self.get_alert_rule(caller, id).await
    }

    async fn delete_alert_rule(&self, caller: &Caller, id: AlertRuleId) -> Result<()> {
        Self::require_admin(caller, "manage alert rules")?;
        let removed = self
            .execute(
                &self.pool,
                "DELETE FROM alert_rules WHERE id = ? AND tenant_id = ?",
                Args::default().int(id.0).int(caller.tenant.0),
                "alert rule",
                String::new,
            )
            .await?;
        if removed == 0 {
            return Err(Error::not_found("alert rule"));
        }
        Ok(())
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        if entry.action.is_empty() || entry.action.len() > 128 {
            return Err(Error::Invalid {
                field: "action".into(),
                reason: "must be 1 to 128 bytes".into(),
            });
        }
        let at = now_ms();
        let id = self
            .insert(
                &self.pool,
                "INSERT INTO audit_log (tenant_id, actor_id, action, target, outcome, source_ip, \
                 detail, at, credential) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                Args::default()
                    .opt_int(entry.tenant_id().map(|t| t.0))
                    .opt_int(entry.actor_id().map(|u| u.0))
                    .text(entry.action.clone())
                    .text(entry.target.clone())
                    .text(entry.outcome.to_string())
                    .opt_text(entry.source_ip.map(|ip| ip.to_string()))
                    .text(entry.detail.clone())
                    .int(at)
                    .opt_text(entry.credential.clone()),
                "audit entry",
                String::new,
            )
            .await?;
        let sql = format!("SELECT {} FROM audit_log WHERE id = ?", rows::AUDIT_COLUMNS);
        let row = self
            .fetch_optional(&self.pool, &sql, Args::default().int(id))
            .await?
            .ok_or_else(|| Error::not_found("audit entry"))?;
        rows::audit_entry(&row)
    }

    async fn list_audit(&self, caller: &Caller, page: PageRequest) -> Result<Page<AuditEntry>> {
        Self::require_admin(caller, "read the audit log")?;
        let sql = format!(
            "SELECT {} FROM audit_log WHERE tenant_id = ?",
            rows::AUDIT_COLUMNS
        );
        self.list_page(
            &sql,
            "id",
            Args::default().int(caller.tenant.0),
            page,
            rows::audit_entry,
            |e| e.id.0,
        )
        .await
    }

    async fn list_all_audit(&self, _op: &Operator, page: PageRequest) -> Result<Page<AuditEntry>> {
        let sql = format!("SELECT {} FROM audit_log WHERE 1 = 1", rows::AUDIT_COLUMNS);
        self.list_page(&sql, "id", Args::default(), page, rows::audit_entry, |e| {
            e.id.0
        })
        .await
    }

    // Node accounts: the statements are in `accounts.rs`.

    async fn record_node_account(
        &self,
        _op: &Operator,
        new: NewNodeAccount,
    ) -> Result<NodeAccount> {
        self.insert_node_account(new).await
    }

    async fn get_node_account(
        &self,
        caller: &Caller,
        node: NodeId,
        name: &SystemUser,
    ) -> Result<NodeAccount> {
        self.node_account_named(node, name, Some(caller.tenant))
            .await?
            .ok_or_else(|| Error::not_found("node account"))
    }

    async fn find_node_account(
        &self,
        _op: &Operator,
        node: NodeId,
        name: &SystemUser,
    ) -> Result<Option<NodeAccount>> {
        self.node_account_named(node, name, None).await
    }

    async fn list_node_accounts(
        &self,
        _op: &Operator,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<NodeAccount>> {
        self.node_accounts_page(node, page).await
    }

    async fn delete_node_account(&self, _op: &Operator, id: NodeAccountId) -> Result<()> {
        self.remove_node_account(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (std::path::PathBuf, String) {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "hosting-db-unit-{}-{}-{n}",
            std::process::id(),
            now_ms()
        ));
        let url = format!("sqlite:{}", dir.join("nested/panel.db").display());
        (dir, url)
    }

    #[tokio::test]
    async fn sqlite_file_is_created_on_first_use_in_wal_mode() {
        let (dir, url) = temp_db();
        let store = SqlStore::open(&url, &StoreOptions::default())
            .await
            .expect("open");
        assert!(dir.join("nested/panel.db").is_file());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(mode, "wal");
        assert_eq!(store.info().engine, "sqlite");
        store.close().await;
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[tokio::test]
    async fn migrations_are_idempotent_and_data_survives_reopening() {
        let (dir, url) = temp_db();
        let op = Operator::assume();
        let store = SqlStore::open(&url, &StoreOptions::default())
            .await
            .expect("open");
        let tenant = store
            .create_tenant(
                &op,
                NewTenant {
                    name: "Kept".parse().expect("name"),
                    slug: "kept".parse().expect("slug"),
                    quotas: Default::default(),
                },
            )
            .await
            .expect("create");
        store.close().await;
        let reopened = SqlStore::open(&url, &StoreOptions::default())
            .await
            .expect("reopen runs migrations again without error");
        assert_eq!(
            reopened.get_tenant(&op, tenant.id).await.expect("kept"),
            tenant
        );
        reopened.close().await;
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[tokio::test]
    async fn unknown_url_schemes_are_refused_by_name() {
        for url in ["redis://localhost", "sqlserver://x", "", "file:/tmp/x"] {
            match SqlStore::open(url, &StoreOptions::default()).await {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "database_url"),
                other => panic!("{url}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
    }
}
