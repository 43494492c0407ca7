//! Turning rows into domain records and records into column values.
//!
//! Rows are re-validated on the way out: a value edited by hand in the database into something
//! the types forbid is reported as a backend error instead of flowing into a config file.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use hosting_core::Error;
use hosting_core::auth::TotpSecret;
use hosting_core::auth_store::{ApiToken, LoginRecord, Session, Standing, TotpState};
use hosting_core::jobs::Job;
use hosting_core::model::{
    AlertRule, AlertRuleId, AlertRuleSpec, ApiTokenId, AuditEntry, AuditId, DatabaseSettings,
    JobId, Node, NodeAccount, NodeAccountId, NodeId, Operation, OperationId, PhpSettings, Quotas,
    Role, SessionId, Ssl, Tenant, TenantId, TenantStatus, Threshold, User, UserId, Website,
    WebsiteFailure, WebsiteId, WebsiteSettings,
};
use hosting_core::types::{PhpBytes, PhpVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;

/// The error for a row that does not decode into a valid record.
fn corrupt(column: &str, why: impl std::fmt::Display) -> Error {
    Error::backend(
        "panel-store",
        format!("stored column {column} holds an invalid value: {why}"),
    )
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64, Error> {
    row.try_get::<i64, _>(column)
        .map_err(|e| corrupt(column, e))
}

pub(crate) fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>, Error> {
    row.try_get::<Option<i64>, _>(column)
        .map_err(|e| corrupt(column, e))
}

pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String, Error> {
    row.try_get::<String, _>(column)
        .map_err(|e| corrupt(column, e))
}

fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, Error> {
    row.try_get::<Option<String>, _>(column)
        .map_err(|e| corrupt(column, e))
}

fn flag(row: &AnyRow, column: &str) -> Result<bool, Error> {
    Ok(int(row, column)? != 0)
}

fn parsed<T: FromStr>(row: &AnyRow, column: &str) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    text(row, column)?.parse().map_err(|e| corrupt(column, e))
}

fn opt_parsed<T: FromStr>(row: &AnyRow, column: &str) -> Result<Option<T>, Error>
where
    T::Err: std::fmt::Display,
{
    opt_text(row, column)?
        .map(|s| s.parse().map_err(|e| corrupt(column, e)))
        .transpose()
}

fn json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, Error> {
    serde_json::from_str(&text(row, column)?).map_err(|e| corrupt(column, e))
}

fn time(row: &AnyRow, column: &str) -> Result<DateTime<Utc>, Error> {
    let ms = int(row, column)?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(column, "timestamp out of range"))
}

fn opt_time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>, Error> {
    opt_int(row, column)?
        .map(|ms| {
            DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| corrupt(column, "timestamp out of range"))
        })
        .transpose()
}

fn opt_u32(row: &AnyRow, column: &str) -> Result<Option<u32>, Error> {
    opt_int(row, column)?
        .map(|v| u32::try_from(v).map_err(|e| corrupt(column, e)))
        .transpose()
}

fn u32_col(row: &AnyRow, column: &str) -> Result<u32, Error> {
    u32::try_from(int(row, column)?).map_err(|e| corrupt(column, e))
}

fn bytes(row: &AnyRow, column: &str) -> Result<PhpBytes, Error> {
    let v = u64::try_from(int(row, column)?).map_err(|e| corrupt(column, e))?;
    PhpBytes::from_bytes(v).map_err(|e| corrupt(column, e))
}

/// JSON text for a list column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::backend("panel-store", e))
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The columns [`tenant`] reads.
pub(crate) const TENANT_COLUMNS: &str = "id, name, slug, status, max_websites, max_databases, max_storage_mb, database_limits, \
     created_at";

pub(crate) fn tenant(row: &AnyRow) -> Result<Tenant, Error> {
    Ok(Tenant {
        id: TenantId(int(row, "id")?),
        name: parsed(row, "name")?,
        slug: parsed(row, "slug")?,
        status: parsed(row, "status")?,
        quotas: Quotas {
            max_websites: opt_u32(row, "max_websites")?,
            max_databases: opt_u32(row, "max_databases")?,
            max_storage_mb: opt_int(row, "max_storage_mb")?
                .map(|v| u64::try_from(v).map_err(|e| corrupt("max_storage_mb", e)))
                .transpose()?,
            database_limits: opt_text(row, "database_limits")?
                .map(|v| serde_json::from_str(&v).map_err(|e| corrupt("database_limits", e)))
                .transpose()?
                .unwrap_or_default(),
        },
        created_at: time(row, "created_at")?,
    })
}

/// The columns [`user`] reads.
pub(crate) const USER_COLUMNS: &str = "id, tenant_id, role, email, status, created_by, created_at";

pub(crate) fn tenant_status(row: &AnyRow) -> Result<TenantStatus, Error> {
    parsed(row, "status")
}

pub(crate) fn max_websites(row: &AnyRow) -> Result<Option<u32>, Error> {
    opt_u32(row, "max_websites")
}

pub(crate) fn role(row: &AnyRow) -> Result<Role, Error> {
    parsed(row, "role")
}

pub(crate) fn created_by(row: &AnyRow) -> Result<Option<UserId>, Error> {
    Ok(opt_int(row, "created_by")?.map(UserId))
}

pub(crate) fn user(row: &AnyRow) -> Result<User, Error> {
    Ok(User {
        id: UserId(int(row, "id")?),
        tenant_id: TenantId(int(row, "tenant_id")?),
        role: parsed(row, "role")?,
        email: parsed(row, "email")?,
        status: parsed(row, "status")?,
        created_by: opt_int(row, "created_by")?.map(UserId),
        created_at: time(row, "created_at")?,
    })
}

/// The columns [`node`] reads.
pub(crate) const NODE_COLUMNS: &str = "id, name, address, roles, created_at";

pub(crate) fn node(row: &AnyRow) -> Result<Node, Error> {
    Ok(Node {
        id: NodeId(int(row, "id")?),
        name: parsed(row, "name")?,
        address: parsed(row, "address")?,
        roles: json(row, "roles")?,
        created_at: time(row, "created_at")?,
    })
}

/// The columns [`website`] reads, from `websites w JOIN website_configs c`.
pub(crate) const WEBSITE_COLUMNS: &str = "w.id, w.tenant_id, w.owner_id, w.domain, w.aliases, \
     w.node_id, w.web_server, w.php_version, w.system_user, w.document_root, w.status, \
     w.created_at, w.updated_at, c.php_memory_limit, c.php_max_execution_time, \
     c.php_upload_max_size, c.php_post_max_size, c.php_extensions, c.db_engine, c.db_name, \
     c.db_charset, c.db_collation, c.ssl_enabled, c.ssl_provider, c.ssl_auto_renew, c.gzip, \
     c.cache_ttl_secs, c.security_headers, c.allowed_ips, c.blocked_ips, c.www_redirect, \
     c.extra_directives, c.operator_directives";

pub(crate) fn website(row: &AnyRow) -> Result<Website, Error> {
    Ok(Website {
        id: WebsiteId(int(row, "id")?),
        tenant_id: TenantId(int(row, "tenant_id")?),
        owner_id: UserId(int(row, "owner_id")?),
        domain: parsed(row, "domain")?,
        aliases: json(row, "aliases")?,
        node_id: NodeId(int(row, "node_id")?),
        web_server: parsed(row, "web_server")?,
        php_version: opt_parsed::<PhpVersion>(row, "php_version")?,
        system_user: parsed(row, "system_user")?,
        document_root: parsed(row, "document_root")?,
        status: parsed(row, "status")?,
        settings: settings(row)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn settings(row: &AnyRow) -> Result<WebsiteSettings, Error> {
    let php = PhpSettings::new(
        bytes(row, "php_memory_limit")?,
        u32_col(row, "php_max_execution_time")?,
        bytes(row, "php_upload_max_size")?,
        bytes(row, "php_post_max_size")?,
        json(row, "php_extensions")?,
    )
    .map_err(|e| corrupt("php settings", e))?;
    let database = match opt_parsed(row, "db_engine")? {
        None => None,
        Some(engine) => Some(DatabaseSettings {
            engine,
            name: opt_parsed(row, "db_name")?.ok_or_else(|| corrupt("db_name", "missing"))?,
            charset: opt_parsed(row, "db_charset")?
                .ok_or_else(|| corrupt("db_charset", "missing"))?,
            collation: opt_parsed(row, "db_collation")?
                .ok_or_else(|| corrupt("db_collation", "missing"))?,
        }),
    };
    let ssl = if flag(row, "ssl_enabled")? {
        Ssl::Enabled {
            provider: opt_parsed(row, "ssl_provider")?
                .ok_or_else(|| corrupt("ssl_provider", "missing"))?,
            auto_renew: flag(row, "ssl_auto_renew")?,
        }
    } else {
        Ssl::Disabled
    };
    Ok(WebsiteSettings {
        php,
        database,
        ssl,
        gzip: flag(row, "gzip")?,
        cache_ttl_secs: opt_u32(row, "cache_ttl_secs")?,
        security_headers: flag(row, "security_headers")?,
        allowed_ips: json(row, "allowed_ips")?,
        blocked_ips: json(row, "blocked_ips")?,
        www_redirect: parsed(row, "www_redirect")?,
        extra_directives: json(row, "extra_directives")?,
        operator_directives: json(row, "operator_directives")?,
    })
}

/// The columns [`node_account`] reads.
pub(crate) const NODE_ACCOUNT_COLUMNS: &str =
    "id, tenant_id, node_id, name, uid, gid, origin, created_at";

pub(crate) fn node_account(row: &AnyRow) -> Result<NodeAccount, Error> {
    Ok(NodeAccount {
        id: NodeAccountId(int(row, "id")?),
        tenant_id: TenantId(int(row, "tenant_id")?),
        node_id: NodeId(int(row, "node_id")?),
        name: parsed(row, "name")?,
        uid: u32_col(row, "uid")?,
        gid: u32_col(row, "gid")?,
        origin: parsed(row, "origin")?,
        created_at: time(row, "created_at")?,
    })
}

/// The columns [`alert_rule`] reads.
pub(crate) const ALERT_RULE_COLUMNS: &str = "id, tenant_id, name, metric, website_id, comparison, \
     threshold, for_secs, channels, enabled, created_at";

pub(crate) fn alert_rule(row: &AnyRow) -> Result<AlertRule, Error> {
    let threshold: f64 = row
        .try_get("threshold")
        .map_err(|e| corrupt("threshold", e))?;
    Ok(AlertRule {
        id: AlertRuleId(int(row, "id")?),
        tenant_id: TenantId(int(row, "tenant_id")?),
        spec: AlertRuleSpec {
            name: parsed(row, "name")?,
            metric: parsed(row, "metric")?,
            website_id: opt_int(row, "website_id")?.map(WebsiteId),
            comparison: parsed(row, "comparison")?,
            threshold: Threshold::try_from(threshold).map_err(|e| corrupt("threshold", e))?,
            for_secs: u32_col(row, "for_secs")?,
            channels: json::<BTreeSet<_>>(row, "channels")?,
            enabled: flag(row, "enabled")?,
        },
        created_at: time(row, "created_at")?,
    })
}

/// The columns [`audit_entry`] reads.
pub(crate) const AUDIT_COLUMNS: &str =
    "id, tenant_id, actor_id, action, target, outcome, source_ip, detail, at, credential";

pub(crate) fn audit_entry(row: &AnyRow) -> Result<AuditEntry, Error> {
    Ok(AuditEntry {
        id: AuditId(int(row, "id")?),
        tenant_id: opt_int(row, "tenant_id")?.map(TenantId),
        actor_id: opt_int(row, "actor_id")?.map(UserId),
        action: text(row, "action")?,
        target: text(row, "target")?,
        outcome: parsed(row, "outcome")?,
        source_ip: opt_parsed(row, "source_ip")?,
        detail: text(row, "detail")?,
        at: time(row, "at")?,
        credential: opt_text(row, "credential")?,
    })
}

/// The columns [`login_record`] reads, from `users u JOIN tenants t LEFT JOIN tenant_security s
/// LEFT JOIN user_credentials c` (the last two have no row until first used).
pub(crate) const LOGIN_COLUMNS: &str = "u.id, u.tenant_id, u.role, u.email, u.status, \
     u.created_by, u.created_at, t.status AS tenant_status, s.requires_2fa, c.password_hash, \
     c.failed_logins, c.locked_until, c.totp_secret, c.totp_confirmed, c.totp_last_step";

pub(crate) fn login_record(row: &AnyRow) -> Result<LoginRecord, Error> {
    // The secret's parse error names the rule, never the value.
    let totp = opt_text(row, "totp_secret")?
        .map(|secret| -> Result<TotpState, Error> {
            Ok(TotpState {
                secret: TotpSecret::from_base32(&secret).map_err(|e| corrupt("totp_secret", e))?,
                confirmed: opt_int(row, "totp_confirmed")?.unwrap_or(0) != 0,
                last_step: opt_int(row, "totp_last_step")?
                    .map(|v| u64::try_from(v).map_err(|e| corrupt("totp_last_step", e)))
                    .transpose()?,
            })
        })
        .transpose()?;
    Ok(LoginRecord {
        user: user(row)?,
        tenant_status: parsed(row, "tenant_status")?,
        tenant_requires_2fa: opt_int(row, "requires_2fa")?.unwrap_or(0) != 0,
        password: opt_parsed(row, "password_hash")?,
        totp,
        failed_logins: opt_u32(row, "failed_logins")?.unwrap_or(0),
        locked_until: opt_time(row, "locked_until")?,
    })
}

/// The columns [`standing`] reads, from `users u JOIN tenants t LEFT JOIN tenant_security s
/// LEFT JOIN user_credentials c`.
pub(crate) const STANDING_COLUMNS: &str = "u.id AS standing_user, u.tenant_id AS standing_tenant, \
     u.role AS standing_role, u.status AS standing_status, t.status AS tenant_status, \
     u.credential_generation, s.requires_2fa, c.totp_confirmed";

pub(crate) fn standing(row: &AnyRow) -> Result<Standing, Error> {
    Ok(Standing {
        user: UserId(int(row, "standing_user")?),
        tenant: TenantId(int(row, "standing_tenant")?),
        role: parsed(row, "standing_role")?,
        status: parsed(row, "standing_status")?,
        tenant_status: parsed(row, "tenant_status")?,
        generation: int(row, "credential_generation")?,
        requires_2fa: opt_int(row, "requires_2fa")?.unwrap_or(0) != 0,
        second_factor: opt_int(row, "totp_confirmed")?.unwrap_or(0) != 0,
    })
}

/// The columns [`session`] reads.
pub(crate) const SESSION_COLUMNS: &str =
    "id, tenant_id, user_id, source_ip, created_at, expires_at, revoked_at";

pub(crate) fn session(row: &AnyRow) -> Result<Session, Error> {
    Ok(Session {
        id: SessionId(int(row, "id")?),
        user_id: UserId(int(row, "user_id")?),
        tenant_id: TenantId(int(row, "tenant_id")?),
        source_ip: opt_parsed(row, "source_ip")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

/// The columns [`api_token`] reads (never the hash: a listing has no use for it).
pub(crate) const API_TOKEN_COLUMNS: &str =
    "id, tenant_id, user_id, name, role, permissions, created_at, expires_at, revoked_at";

pub(crate) fn api_token(row: &AnyRow) -> Result<ApiToken, Error> {
    Ok(ApiToken {
        id: ApiTokenId(int(row, "id")?),
        tenant_id: TenantId(int(row, "tenant_id")?),
        user_id: UserId(int(row, "user_id")?),
        name: parsed(row, "name")?,
        role: parsed(row, "role")?,
        permissions: json(row, "permissions")?,
        created_at: time(row, "created_at")?,
        expires_at: opt_time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

/// The columns [`job`] reads.
pub(crate) const JOB_COLUMNS: &str = "id, tenant_id, created_by, kind, status, attempts, \
     max_attempts, run_after, progress, last_error, created_at, updated_at";

pub(crate) fn job(row: &AnyRow) -> Result<Job, Error> {
    Ok(Job {
        id: JobId(int(row, "id")?),
        tenant_id: opt_int(row, "tenant_id")?.map(TenantId),
        created_by: opt_int(row, "created_by")?.map(UserId),
        kind: json(row, "kind")?,
        status: parsed(row, "status")?,
        attempts: u32_col(row, "attempts")?,
        max_attempts: u32_col(row, "max_attempts")?,
        run_after: time(row, "run_after")?,
        progress: text(row, "progress")?,
        last_error: opt_text(row, "last_error")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// The columns [`operation`] reads.
pub(crate) const OPERATION_COLUMNS: &str =
    "id, tenant_id, user_id, node_id, website_id, kind, step, state, started_at, updated_at";

pub(crate) fn operation(row: &AnyRow) -> Result<Operation, Error> {
    Ok(Operation {
        id: OperationId(int(row, "id")?),
        tenant_id: TenantId(int(row, "tenant_id")?),
        user_id: UserId(int(row, "user_id")?),
        node_id: NodeId(int(row, "node_id")?),
        website_id: opt_int(row, "website_id")?.map(WebsiteId),
        kind: parsed(row, "kind")?,
        step: parsed(row, "step")?,
        state: json(row, "state")?,
        started_at: time(row, "started_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(crate) fn website_failure(row: &AnyRow) -> Result<WebsiteFailure, Error> {
    Ok(WebsiteFailure {
        website_id: WebsiteId(int(row, "id")?),
        reason: text(row, "failure_reason")?,
    })
}
