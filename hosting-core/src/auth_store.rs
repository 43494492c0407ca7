//! What the panel keeps to authenticate people and programs (feature `auth`): password hashes,
//! second factors, lockouts, sessions and API tokens. Only hashes of secrets are stored; the
//! secrets themselves are shown once and forgotten.
//!
//! Logins happen before a [`Caller`] exists, so the login methods are not scoped by one: the
//! [`crate::panel`] service is the only caller that should use them, and it decides who may
//! log in. Token management is scoped like every other tenant-owned record.

use std::fmt::Debug;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{AttemptRecord, PasswordHash, PermissionSet, SecretHash, TotpSecret};
use crate::error::Result;
use crate::model::{ApiTokenId, Role, SessionId, TenantId, TenantStatus, User, UserId, UserStatus};
use crate::page::{Page, PageRequest};
use crate::rbac::{Caller, Operator};
use crate::types::DisplayName;

/// A user's second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpState {
    /// The shared secret.
    pub secret: TotpSecret,
    /// Whether the user proved the enrolment with a code; only a confirmed factor is asked for
    /// at login.
    pub confirmed: bool,
    /// The newest time step used, so a code is accepted once.
    pub last_step: Option<u64>,
}

/// Everything a login decision needs about one user.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginRecord {
    /// The user.
    pub user: User,
    /// Its tenant's status: a suspended tenant's users cannot log in.
    pub tenant_status: TenantStatus,
    /// Whether the tenant requires a second factor of its users.
    pub tenant_requires_2fa: bool,
    /// `None` until a password is set.
    pub password: Option<PasswordHash>,
    /// The second factor, if enrolled.
    pub totp: Option<TotpState>,
    /// Failed logins since the last success.
    pub failed_logins: u32,
    /// Logins are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
}

/// What a request's credential check needs about its user, read fresh on every request: its
/// current tenant, role and status, its credential generation, and its second-factor state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The user.
    pub user: UserId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its role now.
    pub role: Role,
    /// Its status now.
    pub status: UserStatus,
    /// Its tenant's status now.
    pub tenant_status: TenantStatus,
    /// Moved by every event that must end the user's access tokens at once (password change,
    /// suspension, role change, refresh replay); tokens carry the value they were minted under.
    pub generation: i64,
    /// The tenant requires a second factor.
    pub requires_2fa: bool,
    /// The user has a confirmed second factor.
    pub second_factor: bool,
}

impl Standing {
    /// Whether the user and its tenant are active.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active && self.tenant_status == TenantStatus::Active
    }

    /// Whether the user must enrol a second factor before doing anything else.
    pub fn must_enrol(&self) -> bool {
        self.requires_2fa && !self.second_factor
    }
}

/// A session and its user's standing, read together in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStanding {
    /// The session (revoked or not).
    pub session: Session,
    /// Its user's standing.
    pub user: Standing,
}

/// When repeated failures lock an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures in a row that lock the account.
    pub threshold: u32,
    /// How long it stays locked.
    pub duration: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 10,
            duration: Duration::from_secs(15 * 60),
        }
    }
}

/// What an attempt budget counts guesses of. Every code check of a user shares one budget;
/// passwords are counted per account (by the e-mail asked for, so an unknown account is
/// counted exactly like a known one) and per source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptKey {
    /// A user's second-factor and recovery codes, wherever they are checked.
    SecondFactor(UserId),
    /// Passwords tried for this e-mail from sources that never logged in as its user.
    Account(crate::types::EmailAddress),
    /// Passwords tried from this source (an IPv6 source by its /64, which one holder has).
    Source(IpAddr),
}

impl AttemptKey {
    /// What the store keys the budget by: a digest, so no e-mail or address is kept in it.
    pub fn digest(&self) -> SecretHash {
        let text = match self {
            Self::SecondFactor(user) => format!("code:{}", user.0),
            Self::Account(email) => format!("account:{email}"),
            Self::Source(IpAddr::V4(ip)) => format!("source:{ip}"),
            Self::Source(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => format!("source:{v4}"),
                None => {
                    let net = u128::from(*ip) & (u128::MAX << 64);
                    format!("source:{}/64", std::net::Ipv6Addr::from(net))
                }
            },
        };
        SecretHash::of(text.as_bytes())
    }
}

/// A login session: one chain of refresh tokens, each used once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Assigned by the store.
    pub id: SessionId,
    /// Who logged in.
    pub user_id: UserId,
    /// The user's tenant.
    pub tenant_id: TenantId,
    /// Where the login came from.
    pub source_ip: Option<IpAddr>,
    /// When the login happened.
    pub created_at: DateTime<Utc>,
    /// When the current refresh token stops working.
    pub expires_at: DateTime<Utc>,
    /// Set by a logout, a password change or a replayed refresh token.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Whether the session may still mint access tokens at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A session to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// Who logged in.
    pub user_id: UserId,
    /// The hash of the first refresh token.
    pub refresh: SecretHash,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Where the login came from.
    pub source_ip: Option<IpAddr>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The token was current: it is now used up and `next` replaces it.
    Rotated(Session),
    /// The token had been used before: someone holds a copy, so the whole session was revoked.
    Replayed,
    /// No live session has this token (unknown, expired or revoked).
    Unknown,
}

/// An API token as stored (its secret is not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Assigned by the store.
    pub id: ApiTokenId,
    /// The tenant it acts in.
    pub tenant_id: TenantId,
    /// The user it acts as; its rights never exceed this user's.
    pub user_id: UserId,
    /// A name to recognise it by.
    pub name: DisplayName,
    /// The role it acts with: the user's own or a lower one.
    pub role: Role,
    /// What it may do, on top of the role's rules.
    pub permissions: PermissionSet,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// Whether the token may be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// An API token to create for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiToken {
    /// A name to recognise it by.
    pub name: DisplayName,
    /// The role it acts with; at most the caller's own.
    pub role: Role,
    /// What it may do.
    pub permissions: PermissionSet,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// The hash of its secret.
    pub hash: SecretHash,
}

/// The panel's credentials.
///
/// # Contract
/// - Login methods see every user (the panel authenticates before anyone is a caller).
/// - `use_totp_step` and `use_recovery_code` are atomic: under concurrent use of one code
///   exactly one call returns `true`.
/// - `rotate_refresh` is atomic: under concurrent use of one refresh token exactly one call gets
///   [`Refreshed::Rotated`].
/// - `update_attempts` is atomic per key across every process on the store: concurrent
///   updates each see the record the previous one left (none is lost).
/// - `record_login_success` also removes the user's account and second-factor budgets.
/// - API tokens are created by a caller for itself, with a role no higher than its own; they
///   are listed and revoked within the caller's own tokens (a tenant admin: its tenant's).
/// - Every method that ends a user's credentials (`change_password`, `end_user_credentials`,
///   `end_tenant_credentials`, a [`Refreshed::Replayed`] rotation) moves the user's
///   [`Standing::generation`] and revokes its sessions in the same transaction as the change;
///   a replay revokes every session of the session's user.
#[async_trait]
pub trait AuthStore: Debug + Send + Sync {
    /// The login record of the user with this e-mail, if any.
    async fn login_by_email(
        &self,
        email: &crate::types::EmailAddress,
    ) -> Result<Option<LoginRecord>>;
    /// The login record of a user.
    async fn login_by_user(&self, user: UserId) -> Result<LoginRecord>;
    /// Sets a user's password.
    async fn set_password(&self, user: UserId, hash: &PasswordHash) -> Result<()>;
    /// Counts a failed login; reaching the policy's threshold locks the account from `now`.
    /// Returns the updated record.
    async fn record_login_failure(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        policy: LockoutPolicy,
    ) -> Result<LoginRecord>;
    /// Clears the failure count and any lock, and the user's attempt budgets
    /// ([`AttemptKey::Account`] of its e-mail, [`AttemptKey::SecondFactor`]): the owner, or an
    /// operator resetting the password, lifts any throttle on the account.
    async fn record_login_success(&self, user: UserId) -> Result<()>;
    /// Replaces `key`'s budget with what `change` makes of it (`None`: there is none, or
    /// delete it), atomically; `change` may run more than once when another process changed
    /// the record meanwhile. Returns the record `change` produced last. Expired records
    /// ([`AttemptRecord::expires_at`] passed) may be deleted by the store at any time.
    async fn update_attempts(
        &self,
        key: &AttemptKey,
        now: DateTime<Utc>,
        change: &(dyn Fn(Option<AttemptRecord>) -> Option<AttemptRecord> + Send + Sync),
    ) -> Result<Option<AttemptRecord>>;
    /// Remembers that `user` logged in from `source` at `now`.
    async fn remember_source(&self, user: UserId, source: IpAddr, now: DateTime<Utc>)
    -> Result<()>;
    /// Whether `user` logged in from `source` at or after `since`.
    async fn is_known_source(
        &self,
        user: UserId,
        source: IpAddr,
        since: DateTime<Utc>,
    ) -> Result<bool>;
    /// Replaces (or with `None` removes) a user's second factor and its recovery codes.
    async fn set_totp(
        &self,
        user: UserId,
        totp: Option<TotpState>,
        recovery: Vec<SecretHash>,
    ) -> Result<()>;
    /// Marks a user's second factor as proven.
    async fn confirm_totp(&self, user: UserId) -> Result<()>;
    /// Records time step `step` as used when it is newer than the last used one; `false` when
    /// it is not (a replayed code).
    async fn use_totp_step(&self, user: UserId, step: u64) -> Result<bool>;
    /// Consumes the recovery code with this hash; `false` when the user has no such code.
    async fn use_recovery_code(&self, user: UserId, code: &SecretHash) -> Result<bool>;
    /// Requires (or stops requiring) a second factor of a tenant's users.
    async fn set_tenant_requires_2fa(
        &self,
        op: &Operator,
        tenant: TenantId,
        required: bool,
    ) -> Result<()>;

    /// Opens a session.
    async fn create_session(&self, new: NewSession) -> Result<Session>;
    /// Exchanges refresh token `presented` for `next`, which expires at `expires_at`.
    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        next: &SecretHash,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Refreshed>;
    /// A session by id.
    async fn get_session(&self, id: SessionId) -> Result<Session>;
    /// Ends a session.
    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<()>;
    /// Ends every session of a user (after a password change or suspension).
    async fn revoke_user_sessions(&self, user: UserId, now: DateTime<Utc>) -> Result<()>;

    /// A user's standing; `None` for an unknown user. One read by primary key: the panel asks
    /// it on every request an API token makes.
    async fn user_standing(&self, user: UserId) -> Result<Option<Standing>>;
    /// A session with its user's standing; `None` for an unknown session (a deleted user's
    /// sessions are gone with it). One read by primary key: the panel asks it on every request
    /// an access token makes.
    async fn session_standing(&self, session: SessionId) -> Result<Option<SessionStanding>>;
    /// Sets a user's password and ends its credentials in one transaction: the generation
    /// moves, every session is revoked, and so is every API token unless `keep_api_tokens`.
    async fn change_password(
        &self,
        user: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
        keep_api_tokens: bool,
    ) -> Result<()>;
    /// Ends a user's sessions and access tokens (suspension, role change): the generation
    /// moves and every session is revoked, in one transaction. API tokens are left alone:
    /// they follow the user's current status and role on every use.
    async fn end_user_credentials(&self, user: UserId, now: DateTime<Utc>) -> Result<()>;
    /// [`end_user_credentials`](Self::end_user_credentials) for every user of a tenant (its
    /// suspension), in one transaction.
    async fn end_tenant_credentials(
        &self,
        op: &Operator,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Creates an API token for the caller.
    async fn create_api_token(&self, caller: &Caller, new: NewApiToken) -> Result<ApiToken>;
    /// The token with this secret hash, whatever its state (the caller checks
    /// [`ApiToken::is_live`]).
    async fn api_token_by_hash(&self, hash: &SecretHash) -> Result<Option<ApiToken>>;
    /// The caller's tokens (a tenant admin: every token of its tenant).
    async fn list_api_tokens(&self, caller: &Caller, page: PageRequest) -> Result<Page<ApiToken>>;
    /// Revokes one of the caller's tokens.
    async fn revoke_api_token(
        &self,
        caller: &Caller,
        id: ApiTokenId,
        now: DateTime<Utc>,
    ) -> Result<()>;
}
