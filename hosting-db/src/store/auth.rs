//! [`AuthStore`] for [`SqlStore`]: credentials, sessions with rotating refresh tokens, and API
//! tokens.
//!
//! Every check-and-change the contract calls atomic is either one conditional statement (a TOTP
//! step, a recovery code, a failure count) or a write transaction that locks the row first (a
//! refresh token), so it holds on all three engines without engine-specific locking. Secrets and
//! their hashes are only ever bind parameters: they appear in no SQL text, log line or error.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hosting_core::auth::{AttemptRecord, PasswordHash, SecretHash};
use hosting_core::auth_store::{
    ApiToken, AttemptKey, AuthStore, LockoutPolicy, LoginRecord, NewApiToken, NewSession,
    Refreshed, Session, SessionStanding, Standing, TotpState,
};
use hosting_core::model::{ApiTokenId, SessionId, TenantId, UserId};
use hosting_core::rbac::{self, Caller, Operator};
use hosting_core::types::EmailAddress;
use hosting_core::{Error, Page, PageRequest, Result};
use sqlx::{Any, Executor};

use super::{Args, Dialect, SqlStore, now_ms, rows, to_i64};

/// The API tokens `caller` manages: its own, or a tenant admin's whole tenant's.
fn token_scope(caller: &Caller, args: Args) -> (&'static str, Args) {
    if rbac::can_administer_tenant(caller, caller.tenant) {
        ("tenant_id = ?", args.int(caller.tenant.0))
    } else {
        (
            "tenant_id = ? AND user_id = ?",
            args.int(caller.tenant.0).int(caller.user.0),
        )
    }
}

/// `at + d` in milliseconds, clamped to what a timestamp column can hold and read back.
pub(super) fn millis_after(at: DateTime<Utc>, d: Duration) -> i64 {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    rows::millis(at)
        .saturating_add(ms)
        .min(DateTime::<Utc>::MAX_UTC.timestamp_millis())
}

fn millis_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}

/// Compare-and-swap rounds before an attempt budget under contention gives up (the caller
/// is told to retry, which is what a flood deserves).
const ATTEMPT_ROUNDS: usize = 8;

fn attempt_record(row: &sqlx::any::AnyRow) -> Result<(AttemptRecord, i64)> {
    let spent = rows::int(row, "spent")?;
    let blocked = rows::opt_int(row, "blocked_until")?;
    Ok((
        AttemptRecord {
            spent: u32::try_from(spent).unwrap_or(u32::MAX),
            blocked_until: blocked.map(millis_of),
            updated_at: millis_of(rows::int(row, "updated_at")?),
            expires_at: millis_of(rows::int(row, "expires_at")?),
        },
        rows::int(row, "version")?,
    ))
}

/// The record's columns after `key_hash`, in the order the statements below bind them.
fn attempt_args(args: Args, record: &AttemptRecord) -> Args {
    args.int(i64::from(record.spent))
        .opt_int(record.blocked_until.map(rows::millis))
        .int(rows::millis(record.updated_at))
        .int(rows::millis(record.expires_at))
}

impl SqlStore {
    /// The login record of the user matching `filter` (on `users u`).
    async fn login_where<'e, E>(
        &self,
        exec: E,
        filter: &str,
        args: Args,
    ) -> Result<Option<LoginRecord>>
    where
        E: Executor<'e, Database = Any>,
    {
        let sql = format!(
            "SELECT {} FROM users u JOIN tenants t ON t.id = u.tenant_id \
             LEFT JOIN tenant_security s ON s.tenant_id = u.tenant_id \
             LEFT JOIN user_credentials c ON c.user_id = u.id WHERE {filter}",
            rows::LOGIN_COLUMNS
        );
        self.fetch_optional(exec, &sql, args)
            .await?
            .map(|row| rows::login_record(&row))
            .transpose()
    }

    async fn user_exists<'e, E>(&self, exec: E, user: UserId) -> Result<bool>
    where
        E: Executor<'e, Database = Any>,
    {
        let row = self
            .fetch_optional(
                exec,
                "SELECT id FROM users WHERE id = ?",
                Args::default().int(user.0),
            )
            .await?;
        Ok(row.is_some())
    }

    /// Gives `user` a credentials row if it has none yet (rows are created on first use), so
    /// the update that follows has a row to change. `NotFound` for an unknown user.
    async fn ensure_credentials(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        user: UserId,
    ) -> Result<()> {
        if !self.user_exists(&mut **tx, user).await? {
            return Err(Error::not_found("user"));
        }
        // An insert that ignores only the duplicate key: two first uses at once both succeed.
        let sql = match self.dialect {
            Dialect::Sqlite | Dialect::Postgres => {
                "INSERT INTO user_credentials (user_id, failed_logins, totp_confirmed) \
                 VALUES (?, 0, 0) ON CONFLICT (user_id) DO NOTHING"
            }
            Dialect::MySql => {
                "INSERT INTO user_credentials (user_id, failed_logins, totp_confirmed) \
                 VALUES (?, 0, 0) ON DUPLICATE KEY UPDATE user_id = user_id"
            }
        };
        self.execute(
            &mut **tx,
            sql,
            Args::default().int(user.0),
            "user credentials",
            String::new,
        )
        .await?;
        Ok(())
    }

    /// Moves the credential generation of the users matching `users_filter` (on `users`) and
    /// revokes the sessions matching `sessions_filter` (on `sessions`), both bound to `key`.
    /// Returns how many users moved.
    async fn end_credentials(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        users_filter: &str,
        sessions_filter: &str,
        key: i64,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let moved = self
            .execute(
                &mut **tx,
                &format!(
                    "UPDATE users SET credential_generation = credential_generation + 1 \
                     WHERE {users_filter}"
                ),
                Args::default().int(key),
                "user",
                String::new,
            )
            .await?;
        self.execute(
            &mut **tx,
            &format!(
                "UPDATE sessions SET revoked_at = ? WHERE {sessions_filter} AND revoked_at IS NULL"
            ),
            Args::default().int(rows::millis(now)).int(key),
            "session",
            String::new,
        )
        .await?;
        Ok(moved)
    }

    /// `Ok(())` when a conditional change found nothing to change for an existing user,
    /// `NotFound` when the user does not exist.
    async fn require_user(&self, user: UserId) -> Result<()> {
        if self.user_exists(&self.pool, user).await? {
            Ok(())
        } else {
            Err(Error::not_found("user"))
        }
    }
}

#[async_trait]
impl AuthStore for SqlStore {
    async fn login_by_email(&self, email: &EmailAddress) -> Result<Option<LoginRecord>> {
        self.login_where(
            &self.pool,
            "u.email = ?",
            Args::default().text(email.to_string()),
        )
        .await
    }

    async fn login_by_user(&self, user: UserId) -> Result<LoginRecord> {
        self.login_where(&self.pool, "u.id = ?", Args::default().int(user.0))
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    async fn set_password(&self, user: UserId, hash: &PasswordHash) -> Result<()> {
        let mut tx = self.begin().await?;
        self.ensure_credentials(&mut tx, user).await?;
        self.execute(
            &mut *tx,
            "UPDATE user_credentials SET password_hash = ? WHERE user_id = ?",
            Args::default().text(hash.as_str()).int(user.0),
            "user credentials",
            String::new,
        )
        .await?;
        Self::commit(tx).await
    }

    async fn record_login_failure(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        policy: LockoutPolicy,
    ) -> Result<LoginRecord> {
        let mut tx = self.begin().await?;
        self.ensure_credentials(&mut tx, user).await?;
        // One statement, so concurrent failures all count. locked_until comes first: MySQL
        // evaluates assignments left to right, and the lock must see the count before this one.
        self.execute(
            &mut *tx,
            "UPDATE user_credentials SET \
             locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END, \
             failed_logins = failed_logins + 1 WHERE user_id = ?",
            Args::default()
                .int(i64::from(policy.threshold.max(1)))
                .int(millis_after(now, policy.duration))
                .int(user.0),
            "user credentials",
            String::new,
        )
        .await?;
        let record = self
            .login_where(&mut *tx, "u.id = ?", Args::default().int(user.0))
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        Self::commit(tx).await?;
        Ok(record)
    }

    async fn record_login_success(&self, user: UserId) -> Result<()> {
        if let Some(row) = self
            .fetch_optional(
                &self.pool,
                "SELECT email FROM users WHERE id = ?",
                Args::default().int(user.0),
            )
            .await?
        {
            let email: EmailAddress = rows::text(&row, "email")?
                .parse()
                .map_err(|e| Error::backend("panel-store", format!("stored e-mail: {e}")))?;
            for key in [AttemptKey::Account(email), AttemptKey::SecondFactor(user)] {
                self.execute(
                    &self.pool,
                    "DELETE FROM attempt_budgets WHERE key_hash = ?",
                    Args::default().text(key.digest().to_hex()),
                    "attempt budget",
                    String::new,
                )
                .await?;
            }
        }
        let changed = self
            .execute(
                &self.pool,
                "UPDATE user_credentials SET failed_logins = 0, locked_until = NULL \
                 WHERE user_id = ?",
                Args::default().int(user.0),
                "user credentials",
                String::new,
            )
            .await?;
        if changed == 0 {
            // No credentials row: nothing to clear.
            self.require_user(user).await?;
        }
        Ok(())
    }

    async fn update_attempts(
        &self,
        key: &AttemptKey,
        now: DateTime<Utc>,
        change: &(dyn Fn(Option<AttemptRecord>) -> Option<AttemptRecord> + Send + Sync),
    ) -> Result<Option<AttemptRecord>> {
        let digest = key.digest().to_hex();
        for _ in 0..ATTEMPT_ROUNDS {
            let row = self
                .fetch_optional(
                    &self.pool,
                    "SELECT spent, blocked_until, updated_at, expires_at, version \
                     FROM attempt_budgets WHERE key_hash = ?",
                    Args::default().text(digest.clone()),
                )
                .await?;
            let current = row.as_ref().map(attempt_record).transpose()?;
            let next = change(current.map(|(r, _)| r));
            if next == current.map(|(r, _)| r) {
                return Ok(next);
            }
            let done = match (current, &next) {
                (None, None) => true,
                (None, Some(record)) => {
                    // A new key: also drop the expired ones, so a flood of new keys (e-mails,
                    // addresses) leaves no more rows behind than its budgets still need.
                    self.execute(
                        &self.pool,
                        "DELETE FROM attempt_budgets WHERE expires_at < ?",
                        Args::default().int(rows::millis(now)),
                        "attempt budget",
                        String::new,
                    )
                    .await?;
                    match self
                        .execute(
                            &self.pool,
                            "INSERT INTO attempt_budgets (key_hash, spent, blocked_until, \
                             updated_at, expires_at, version) VALUES (?, ?, ?, ?, ?, 0)",
                            attempt_args(Args::default().text(digest.clone()), record),
                            "attempt budget",
                            String::new,
                        )
                        .await
                    {
                        Ok(_) => true,
                        Err(Error::AlreadyExists { .. }) => false,
                        Err(e) => return Err(e),
                    }
                }
                (Some((_, version)), Some(record)) => {
                    let args = attempt_args(Args::default(), record)
                        .text(digest.clone())
                        .int(version);
                    self.execute(
                        &self.pool,
                        "UPDATE attempt_budgets SET spent = ?, blocked_until = ?, \
                         updated_at = ?, expires_at = ?, version = version + 1 \
                         WHERE key_hash = ? AND version = ?",
                        args,
                        "attempt budget",
                        String::new,
                    )
                    .await?
                        == 1
                }
                (Some((_, version)), None) => {
                    self.execute(
                        &self.pool,
                        "DELETE FROM attempt_budgets WHERE key_hash = ? AND version = ?",
                        Args::default().text(digest.clone()).int(version),
                        "attempt budget",
                        String::new,
                    )
                    .await?
                        == 1
                }
            };
            if done {
                return Ok(next);
            }
        }
        Err(Error::RateLimited {
            retry_after_secs: 1,
        })
    }

    async fn remember_source(
        &self,
        user: UserId,
        source: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sql = match self.dialect {
            Dialect::Sqlite | Dialect::Postgres => {
                "INSERT INTO known_sources (user_id, source, last_success) VALUES (?, ?, ?) \
                 ON CONFLICT (user_id, source) DO UPDATE SET last_success = excluded.last_success"
            }
            Dialect::MySql => {
                "INSERT INTO known_sources (user_id, source, last_success) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE last_success = VALUES(last_success)"
            }
        };
        self.execute(
            &self.pool,
            sql,
            Args::default()
                .int(user.0)
                .text(source.to_canonical().to_string())
                .int(rows::millis(now)),
            "known source",
            String::new,
        )
        .await
        .map(|_| ())
    }

    async fn is_known_source(
        &self,
        user: UserId,
        source: IpAddr,
        since: DateTime<Utc>,
    ) -> Result<bool> {
        let row = self
            .fetch_optional(
                &self.pool,
                "SELECT user_id FROM known_sources \
                 WHERE user_id = ? AND source = ? AND last_success >= ?",
                Args::default()
                    .int(user.0)
                    .text(source.to_canonical().to_string())
                    .int(rows::millis(since)),
            )
            .await?;
        Ok(row.is_some())
    }

    async fn set_totp(
        &self,
        user: UserId,
        totp: Option<TotpState>,
        recovery: Vec<SecretHash>,
    ) -> Result<()> {
        if totp.is_none() && !recovery.is_empty() {
            // Recovery codes stand in for a second factor; without one they would be a
            // password of their own.
            return Err(Error::Invalid {
                field: "recovery_codes".into(),
                reason: "must be empty when the second factor is removed".into(),
            });
        }
        let mut tx = self.begin().await?;
        self.ensure_credentials(&mut tx, user).await?;
        let args = match &totp {
            Some(state) => Args::default()
                .opt_text(Some(state.secret.to_base32()))
                .flag(state.confirmed)
                .opt_int(
                    state
                        .last_step
                        .map(|s| to_i64("totp_last_step", s))
                        .transpose()?,
                ),
            None => Args::default().opt_text(None).flag(false).opt_int(None),
        };
        self.execute(
            &mut *tx,
            "UPDATE user_credentials SET totp_secret = ?, totp_confirmed = ?, \
             totp_last_step = ? WHERE user_id = ?",
            args.int(user.0),
            "user credentials",
            String::new,
        )
        .await?;
        self.execute(
            &mut *tx,
            "DELETE FROM recovery_codes WHERE user_id = ?",
            Args::default().int(user.0),
            "recovery code",
            String::new,
        )
        .await?;
        for code in &recovery {
            self.execute(
                &mut *tx,
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)",
                Args::default().int(user.0).text(code.to_hex()),
                "recovery code",
                || "the same code is in the set twice".into(),
            )
            .await?;
        }
        Self::commit(tx).await
    }

    async fn confirm_totp(&self, user: UserId) -> Result<()> {
        let changed = self
            .execute(
                &self.pool,
                "UPDATE user_credentials SET totp_confirmed = 1 \
                 WHERE user_id = ? AND totp_secret IS NOT NULL",
                Args::default().int(user.0),
                "user credentials",
                String::new,
            )
            .await?;
        if changed == 0 {
            self.require_user(user).await?;
            return Err(Error::Conflict(
                "the user has no second factor to confirm".into(),
            ));
        }
        Ok(())
    }

    async fn use_totp_step(&self, user: UserId, step: u64) -> Result<bool> {
        let step = to_i64("step", step)?;
        // The condition and the write are one statement: of two uses of one step, the second
        // finds the condition false (row locks on PostgreSQL/MySQL, one writer on SQLite).
        let changed = self
            .execute(
                &self.pool,
                "UPDATE user_credentials SET totp_last_step = ? WHERE user_id = ? \
                 AND totp_secret IS NOT NULL \
                 AND (totp_last_step IS NULL OR totp_last_step < ?)",
                Args::default().int(step).int(user.0).int(step),
                "user credentials",
                String::new,
            )
            .await?;
        if changed == 0 {
            self.require_user(user).await?;
        }
        Ok(changed == 1)
    }

    async fn use_recovery_code(&self, user: UserId, code: &SecretHash) -> Result<bool> {
        // Consuming is deleting: only one of two concurrent deletes removes the row.
        let removed = self
            .execute(
                &self.pool,
                "DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?",
                Args::default().int(user.0).text(code.to_hex()),
                "recovery code",
                String::new,
            )
            .await?;
        if removed == 0 {
            self.require_user(user).await?;
        }
        Ok(removed == 1)
    }

    async fn set_tenant_requires_2fa(
        &self,
        _op: &Operator,
        tenant: TenantId,
        required: bool,
    ) -> Result<()> {
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
        let sql = match self.dialect {
            Dialect::Sqlite | Dialect::Postgres => {
                "INSERT INTO tenant_security (tenant_id, requires_2fa) VALUES (?, ?) \
                 ON CONFLICT (tenant_id) DO UPDATE SET requires_2fa = ?"
            }
            Dialect::MySql => {
                "INSERT INTO tenant_security (tenant_id, requires_2fa) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE requires_2fa = ?"
            }
        };
        self.execute(
            &mut *tx,
            sql,
            Args::default().int(tenant.0).flag(required).flag(required),
            "tenant security",
            String::new,
        )
        .await?;
        Self::commit(tx).await
    }

    async fn create_session(&self, new: NewSession) -> Result<Session> {
        let mut tx = self.begin().await?;
        let tenant = self
            .fetch_optional(
                &mut *tx,
                "SELECT tenant_id FROM users WHERE id = ?",
                Args::default().int(new.user_id.0),
            )
            .await?
            .ok_or_else(|| Error::not_found("user"))
            .and_then(|row| rows::int(&row, "tenant_id"))?;
        let now = now_ms();
        let expires = rows::millis(new.expires_at);
        let id = self
            .insert(
                &mut *tx,
                "INSERT INTO sessions (tenant_id, user_id, source_ip, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?)",
                Args::default()
                    .int(tenant)
                    .int(new.user_id.0)
                    .opt_text(new.source_ip.map(|ip| ip.to_string()))
                    .int(now)
                    .int(expires),
                "session",
                String::new,
            )
            .await?;
        self.execute(
            &mut *tx,
            "INSERT INTO refresh_tokens (hash, session_id, used, created_at) VALUES (?, ?, 0, ?)",
            Args::default().text(new.refresh.to_hex()).int(id).int(now),
            "refresh token",
            || "a token with this hash exists".into(),
        )
        .await?;
        Self::commit(tx).await?;
        Ok(Session {
            id: SessionId(id),
            user_id: new.user_id,
            tenant_id: TenantId(tenant),
            source_ip: new.source_ip,
            created_at: millis_of(now),
            expires_at: millis_of(expires),
            revoked_at: None,
        })
    }

    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        next: &SecretHash,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Refreshed> {
        let mut tx = self.begin().await?;
        // The token's row is locked for the rest of the transaction (SQLite: the write lock is
        // already held), so a concurrent presenter of the same token waits here and then sees
        // it used.
        let sql = format!(
            "SELECT r.used, s.id, s.tenant_id, s.user_id, s.source_ip, s.created_at, \
             s.expires_at, s.revoked_at FROM refresh_tokens r \
             JOIN sessions s ON s.id = r.session_id WHERE r.hash = ?{}",
            self.for_update()
        );
        let Some(row) = self
            .fetch_optional(&mut *tx, &sql, Args::default().text(presented.to_hex()))
            .await?
        else {
            Self::commit(tx).await?;
            return Ok(Refreshed::Unknown);
        };
        let session = rows::session(&row)?;
        let at = rows::millis(now);
        if rows::int(&row, "used")? != 0 {
            // Someone holds a copy of a spent token; which of the two holders is the thief is
            // unknowable, and the thief may have logged in elsewhere with what it stole, so
            // every session and access token of the user ends, in this transaction.
            self.end_credentials(&mut tx, "id = ?", "user_id = ?", session.user_id.0, now)
                .await?;
            Self::commit(tx).await?;
            tracing::warn!(
                session = session.id.0,
                user = session.user_id.0,
                "a used refresh token was presented again; session revoked"
            );
            return Ok(Refreshed::Replayed);
        }
        if !session.is_live(now) {
            Self::commit(tx).await?;
            return Ok(Refreshed::Unknown);
        }
        self.execute(
            &mut *tx,
            "UPDATE refresh_tokens SET used = 1 WHERE hash = ?",
            Args::default().text(presented.to_hex()),
            "refresh token",
            String::new,
        )
        .await?;
        self.execute(
            &mut *tx,
            "INSERT INTO refresh_tokens (hash, session_id, used, created_at) VALUES (?, ?, 0, ?)",
            Args::default()
                .text(next.to_hex())
                .int(session.id.0)
                .int(at),
            "refresh token",
            || "a token with this hash exists".into(),
        )
        .await?;
        let expires = rows::millis(expires_at);
        self.execute(
            &mut *tx,
            "UPDATE sessions SET expires_at = ? WHERE id = ?",
            Args::default().int(expires).int(session.id.0),
            "session",
            String::new,
        )
        .await?;
        Self::commit(tx).await?;
        Ok(Refreshed::Rotated(Session {
            expires_at: millis_of(expires),
            ..session
        }))
    }

    async fn get_session(&self, id: SessionId) -> Result<Session> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE id = ?",
            rows::SESSION_COLUMNS
        );
        let row = self
            .fetch_optional(&self.pool, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("session"))?;
        rows::session(&row)
    }

    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<()> {
        let changed = self
            .execute(
                &self.pool,
                "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                Args::default().int(rows::millis(now)).int(id.0),
                "session",
                String::new,
            )
            .await?;
        if changed == 0 {
            // Already revoked is fine (a logout twice); unknown is not.
            self.get_session(id).await?;
        }
        Ok(())
    }

    async fn revoke_user_sessions(&self, user: UserId, now: DateTime<Utc>) -> Result<()> {
        let tenant = self
            .fetch_optional(
                &self.pool,
                "SELECT tenant_id FROM users WHERE id = ?",
                Args::default().int(user.0),
            )
            .await?
            .ok_or_else(|| Error::not_found("user"))
            .and_then(|row| rows::int(&row, "tenant_id"))?;
        self.execute(
            &self.pool,
            "UPDATE sessions SET revoked_at = ? \
             WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL",
            Args::default()
                .int(rows::millis(now))
                .int(tenant)
                .int(user.0),
            "session",
            String::new,
        )
        .await?;
        Ok(())
    }

    async fn user_standing(&self, user: UserId) -> Result<Option<Standing>> {
        let sql = format!(
            "SELECT {} FROM users u JOIN tenants t ON t.id = u.tenant_id \
             LEFT JOIN tenant_security s ON s.tenant_id = u.tenant_id \
             LEFT JOIN user_credentials c ON c.user_id = u.id WHERE u.id = ?",
            rows::STANDING_COLUMNS
        );
        self.fetch_optional(&self.pool, &sql, Args::default().int(user.0))
            .await?
            .map(|row| rows::standing(&row))
            .transpose()
    }

    async fn session_standing(&self, session: SessionId) -> Result<Option<SessionStanding>> {
        let sql = format!(
            "SELECT ss.id, ss.tenant_id, ss.user_id, ss.source_ip, ss.created_at, \
             ss.expires_at, ss.revoked_at, {} FROM sessions ss \
             JOIN users u ON u.id = ss.user_id JOIN tenants t ON t.id = u.tenant_id \
             LEFT JOIN tenant_security s ON s.tenant_id = u.tenant_id \
             LEFT JOIN user_credentials c ON c.user_id = u.id WHERE ss.id = ?",
            rows::STANDING_COLUMNS
        );
        self.fetch_optional(&self.pool, &sql, Args::default().int(session.0))
            .await?
            .map(|row| {
                Ok(SessionStanding {
                    session: rows::session(&row)?,
                    user: rows::standing(&row)?,
                })
            })
            .transpose()
    }

    async fn change_password(
        &self,
        user: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
        keep_api_tokens: bool,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.ensure_credentials(&mut tx, user).await?;
        self.execute(
            &mut *tx,
            "UPDATE user_credentials SET password_hash = ? WHERE user_id = ?",
            Args::default().text(hash.as_str()).int(user.0),
            "user credentials",
            String::new,
        )
        .await?;
        self.end_credentials(&mut tx, "id = ?", "user_id = ?", user.0, now)
            .await?;
        if !keep_api_tokens {
            self.execute(
                &mut *tx,
                "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                Args::default().int(rows::millis(now)).int(user.0),
                "api token",
                String::new,
            )
            .await?;
        }
        Self::commit(tx).await
    }

    async fn end_user_credentials(&self, user: UserId, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        if self
            .end_credentials(&mut tx, "id = ?", "user_id = ?", user.0, now)
            .await?
            == 0
        {
            return Err(Error::not_found("user"));
        }
        Self::commit(tx).await
    }

    async fn end_tenant_credentials(
        &self,
        _op: &Operator,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<()> {
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
        self.end_credentials(&mut tx, "tenant_id = ?", "tenant_id = ?", tenant.0, now)
            .await?;
        Self::commit(tx).await
    }

    async fn create_api_token(&self, caller: &Caller, new: NewApiToken) -> Result<ApiToken> {
        // Role's order runs from most to least powerful (Admin < Reseller < Client).
        if new.role < caller.role {
            return Err(Error::denied(format!(
                "a {} may not create a token acting as {}",
                caller.role, new.role
            )));
        }
        let exists = self
            .fetch_optional(
                &self.pool,
                "SELECT id FROM users WHERE tenant_id = ? AND id = ?",
                Args::default().int(caller.tenant.0).int(caller.user.0),
            )
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("user"));
        }
        let now = now_ms();
        let name = new.name.to_string();
        let id = self
            .insert(
                &self.pool,
                "INSERT INTO api_tokens (tenant_id, user_id, hash, name, role, permissions, \
                 created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                Args::default()
                    .int(caller.tenant.0)
                    .int(caller.user.0)
                    .text(new.hash.to_hex())
                    .text(name)
                    .text(new.role.to_string())
                    .text(rows::to_json(&new.permissions)?)
                    .int(now)
                    .opt_int(new.expires_at.map(rows::millis)),
                "api token",
                || "a token with this hash exists".into(),
            )
            .await?;
        Ok(ApiToken {
            id: ApiTokenId(id),
            tenant_id: caller.tenant,
            user_id: caller.user,
            name: new.name,
            role: new.role,
            permissions: new.permissions,
            created_at: millis_of(now),
            expires_at: new.expires_at.map(|t| millis_of(rows::millis(t))),
            revoked_at: None,
        })
    }

    async fn api_token_by_hash(&self, hash: &SecretHash) -> Result<Option<ApiToken>> {
        let sql = format!(
            "SELECT {} FROM api_tokens WHERE hash = ?",
            rows::API_TOKEN_COLUMNS
        );
        self.fetch_optional(&self.pool, &sql, Args::default().text(hash.to_hex()))
            .await?
            .map(|row| rows::api_token(&row))
            .transpose()
    }

    async fn list_api_tokens(&self, caller: &Caller, page: PageRequest) -> Result<Page<ApiToken>> {
        let (scope, args) = token_scope(caller, Args::default());
        let sql = format!(
            "SELECT {} FROM api_tokens WHERE {scope}",
            rows::API_TOKEN_COLUMNS
        );
        self.list_page(&sql, "id", args, page, rows::api_token, |t| t.id.0)
            .await
    }

    async fn revoke_api_token(
        &self,
        caller: &Caller,
        id: ApiTokenId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (scope, args) = token_scope(caller, Args::default().int(rows::millis(now)).int(id.0));
        let sql = format!(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND {scope} AND revoked_at IS NULL"
        );
        let changed = self
            .execute(&self.pool, &sql, args, "api token", String::new)
            .await?;
        if changed == 0 {
            // Revoking twice is fine; a token outside the caller's scope does not exist for it.
            let (scope, args) = token_scope(caller, Args::default().int(id.0));
            let sql = format!("SELECT id FROM api_tokens WHERE id = ? AND {scope}");
            if self.fetch_optional(&self.pool, &sql, args).await?.is_none() {
                return Err(Error::not_found("api token"));
            }
        }
        Ok(())
    }
}
