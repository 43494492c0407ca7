//! Logging in and proving who you are: passwords, second factors, sessions with rotating
//! refresh tokens, short-lived signed access tokens, and API tokens.

use std::net::IpAddr;
use std::sync::PoisonError;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Actor, Grant, Panel};
use crate::auth::{
    AccessClaims, AttemptPolicy, OpaqueToken, Permission, PermissionSet, RecoveryCodes, TokenError,
    TokenKind, TotpSecret, recovery,
};
use crate::auth_store::{
    ApiToken, AttemptKey, LoginRecord, NewApiToken, NewSession, Refreshed, TotpState,
};
use crate::error::{Error, Result};
use crate::model::{
    ApiTokenId, AuditOutcome, NewAuditEntry, Role, SessionId, TenantStatus, User, UserId,
    UserStatus,
};
use crate::page::{Page, PageRequest};
use crate::rbac::Caller;
use crate::types::{DisplayName, EmailAddress, Password};

/// Codes accepted on each side of the current 30-second step, for clocks that drift.
const TOTP_WINDOW: u8 = 1;
/// Recovery codes handed out at enrolment.
const RECOVERY_CODES: usize = 10;

/// A login attempt.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// The account.
    pub email: EmailAddress,
    /// Its password.
    pub password: Password,
    /// The current code of the account's authenticator, when it has one.
    pub totp_code: Option<String>,
    /// A recovery code, instead of `totp_code`.
    pub recovery_code: Option<String>,
    /// Where the attempt came from (for throttling and the audit log).
    pub source_ip: Option<IpAddr>,
}

/// What a login or a refresh hands out.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    /// Sent as `Authorization: Bearer ...` with every request; short-lived.
    pub access_token: String,
    /// When the access token stops working.
    pub access_expires_at: DateTime<Utc>,
    /// Exchanged once for new tokens; shown only here.
    pub refresh_token: String,
    /// When the refresh token stops working.
    pub refresh_expires_at: DateTime<Utc>,
    /// The session these tokens belong to.
    pub session: SessionId,
    /// Who logged in.
    pub user: User,
    /// The tenant requires a second factor and the user has none: until one is enrolled the
    /// tokens only allow enrolling it.
    pub second_factor_enrolment_required: bool,
}

/// A second factor being enrolled: shown once, confirmed with a code.
#[derive(Debug, Clone, Serialize)]
pub struct TotpEnrolment {
    /// The secret, base32, for typing into an authenticator.
    pub secret: String,
    /// The `otpauth://` URI for a QR code.
    pub provisioning_uri: String,
    /// Single-use codes for when the authenticator is lost.
    pub recovery_codes: Vec<String>,
}

/// An API token as created: the stored record and its secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct ApiTokenCreated {
    /// The record.
    pub token: ApiToken,
    /// The secret to send as `Authorization: Bearer ...`.
    pub secret: String,
}

fn unix(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn after(now: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// Writes `value` into a cell a budget update reports through.
fn set<T>(cell: &std::sync::Mutex<Option<T>>, value: Option<T>) {
    *cell.lock().unwrap_or_else(PoisonError::into_inner) = value;
}

fn wrong_credentials() -> Error {
    Error::Unauthenticated("wrong e-mail, password or code".into())
}

impl Panel {
    fn rate_limited(retry: crate::auth::RetryAfter) -> Error {
        Error::RateLimited {
            retry_after_secs: retry.secs(),
        }
    }

    /// An audit entry about `record`'s user, written whatever the outcome of the login.
    async fn audit_login(
        &self,
        record: &LoginRecord,
        action: &str,
        outcome: AuditOutcome,
        source_ip: Option<IpAddr>,
        detail: &str,
    ) -> Result<()> {
        let caller = Caller {
            tenant: record.user.tenant_id,
            user: record.user.id,
            role: record.user.role,
        };
        let mut entry =
            NewAuditEntry::by(&caller, action, format!("user:{}", record.user.id), outcome)
                .with_detail(detail);
        if let Some(ip) = source_ip {
            entry = entry.from_ip(ip);
        }
        self.store.append_audit(entry).await.map(|_| ())
    }

    /// Spends one attempt of `key`'s budget, or says how long to wait. Every panel process
    /// on the store spends the same budget.
    async fn spend_attempt(
        &self,
        key: &AttemptKey,
        policy: AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let refused = std::sync::Mutex::new(None);
        self.auth
            .update_attempts(
                key,
                now,
                &|current| match policy.spend(current.as_ref(), now) {
                    Ok(next) => {
                        set(&refused, None);
                        Some(next)
                    }
                    Err(wait) => {
                        set(&refused, Some(wait));
                        current
                    }
                },
            )
            .await?;
        match refused.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(wait) => Err(Self::rate_limited(wait)),
            None => Ok(()),
        }
    }

    /// Gives back the attempt a request that was not a guess spent.
    async fn give_back_attempt(
        &self,
        key: &AttemptKey,
        policy: AttemptPolicy,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.auth
            .update_attempts(key, now, &|current| policy.give_back(current.as_ref(), now))
            .await
            .map(|_| ())
    }

    /// Logs in with e-mail, password and (when enrolled) a second factor.
    ///
    /// Passwords spend the source's attempt budget, and the account's unless the source logged
    /// in as this user lately (so nobody can lock the owner out from elsewhere); codes spend
    /// the user's second-factor budget. An unknown account spends the same budgets, costs the
    /// same hashing and gets the same answers as a known one with a wrong password.
    pub async fn login(&self, request: LoginRequest) -> Result<Tokens> {
        let now = self.clock.now();
        let ip = request.source_ip;
        let passwords = self.settings.password_attempts;
        if let Some(source) = ip {
            self.spend_attempt(&AttemptKey::Source(source), passwords, now)
                .await?;
        }
        let record = self.auth.login_by_email(&request.email).await?;
        let known_source = match ip {
            // The same statement for an unknown account (no user has id 0).
            Some(source) => {
                let user = record.as_ref().map_or(UserId(0), |r| r.user.id);
                let since = now
                    - chrono::Duration::from_std(self.settings.known_source_for)
                        .unwrap_or(chrono::Duration::MAX);
                self.auth.is_known_source(user, source, since).await? && record.is_some()
            }
            None => false,
        };
        let account = AttemptKey::Account(request.email.clone());
        if !known_source {
            self.spend_attempt(&account, passwords, now).await?;
        }
        let hash = record.as_ref().and_then(|r| r.password.clone());
        let password_ok = match hash {
            Some(hash) => self.hashing.verify(request.password.clone(), hash).await?,
            None => {
                // No account, or one without a password yet: the same work as a verification.
                self.hashing
                    .verify_against_dummy(request.password.clone())
                    .await?;
                false
            }
        };
        let Some(record) = record else {
            self.audit_anonymous(
                "auth.login",
                format!("email:{}", request.email),
                AuditOutcome::Denied,
                ip,
                "unknown account",
            )
            .await?;
            return Err(wrong_credentials());
        };
        if !password_ok {
            self.audit_login(
                &record,
                "auth.login",
                AuditOutcome::Denied,
                ip,
                "wrong password",
            )
            .await?;
            return Err(wrong_credentials());
        }
        if record.user.status != UserStatus::Active || record.tenant_status != TenantStatus::Active
        {
            self.audit_login(&record, "auth.login", AuditOutcome::Denied, ip, "suspended")
                .await?;
            return Err(Error::denied("the account is suspended"));
        }
        // The right password was no guess; a second factor has its own budget.
        if let Some(source) = ip {
            self.give_back_attempt(&AttemptKey::Source(source), passwords, now)
                .await?;
        }
        if !known_source {
            self.give_back_attempt(&account, passwords, now).await?;
        }
        let confirmed_totp = record.totp.as_ref().filter(|t| t.confirmed);
        if let Some(totp) = confirmed_totp {
            if request.totp_code.is_none() && request.recovery_code.is_none() {
                self.audit_login(
                    &record,
                    "auth.login",
                    AuditOutcome::Denied,
                    ip,
                    "second factor required",
                )
                .await?;
                return Err(Error::SecondFactorRequired);
            }
            self.spend_attempt(
                &AttemptKey::SecondFactor(record.user.id),
                self.settings.code_attempts,
                now,
            )
            .await?;
            let proven = match (&request.totp_code, &request.recovery_code) {
                (Some(code), _) => match totp.secret.verify(code, now, TOTP_WINDOW, totp.last_step)
                {
                    Some(step) => self.auth.use_totp_step(record.user.id, step).await?,
                    None => false,
                },
                (None, Some(code)) => match recovery::hash_code(code) {
                    Ok(hash) => self.auth.use_recovery_code(record.user.id, &hash).await?,
                    Err(_) => false,
                },
                (None, None) => false,
            };
            if !proven {
                self.audit_login(
                    &record,
                    "auth.login",
                    AuditOutcome::Denied,
                    ip,
                    "wrong second-factor code",
                )
                .await?;
                return Err(wrong_credentials());
            }
        }
        // Clears the account's and the second factor's budgets.
        self.auth.record_login_success(record.user.id).await?;
        if let Some(source) = ip {
            self.auth
                .remember_source(record.user.id, source, now)
                .await?;
        }
        let refresh = OpaqueToken::generate(TokenKind::Refresh)?;
        let refresh_expires_at = after(now, self.settings.refresh_ttl);
        let session = self
            .auth
            .create_session(NewSession {
                user_id: record.user.id,
                refresh: refresh.hash(),
                expires_at: refresh_expires_at,
                source_ip: ip,
            })
            .await?;
        let enrol_only = record.tenant_requires_2fa && confirmed_totp.is_none();
        // The generation the session's access tokens carry, read after the session exists: a
        // change that ends the user's credentials from now on ends these too.
        let generation = self
            .auth
            .user_standing(record.user.id)
            .await?
            .ok_or_else(wrong_credentials)?
            .generation;
        self.audit_login(&record, "auth.login", AuditOutcome::Success, ip, "")
            .await?;
        Ok(self.tokens(
            &record.user,
            session.id,
            generation,
            refresh,
            refresh_expires_at,
            enrol_only,
            now,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn tokens(
        &self,
        user: &User,
        session: SessionId,
        generation: i64,
        refresh: OpaqueToken,
        refresh_expires_at: DateTime<Utc>,
        enrol_only: bool,
        now: DateTime<Utc>,
    ) -> Tokens {
        let access_expires_at = after(now, self.settings.access_ttl);
        let claims = AccessClaims {
            session: session.0,
            user: user.id,
            tenant: user.tenant_id,
            role: user.role,
            generation,
            enrol_only,
            issued_at: unix(now),
            expires_at: unix(access_expires_at),
        };
        Tokens {
            access_token: self.keys.sign(&claims),
            access_expires_at,
            refresh_token: refresh.expose().to_owned(),
            refresh_expires_at,
            session,
            user: user.clone(),
            second_factor_enrolment_required: enrol_only,
        }
    }

    /// Exchanges a refresh token for new tokens. The presented token is used up; presenting it
    /// again revokes the session (someone else holds a copy).
    pub async fn refresh(&self, refresh_token: &str, source_ip: Option<IpAddr>) -> Result<Tokens> {
        let presented = OpaqueToken::parse_as(refresh_token, TokenKind::Refresh)
            .map_err(|_| Error::Unauthenticated("not a refresh token".into()))?;
        let next = OpaqueToken::generate(TokenKind::Refresh)?;
        let now = self.clock.now();
        let expires_at = after(now, self.settings.refresh_ttl);
        let session = match self
            .auth
            .rotate_refresh(&presented.hash(), &next.hash(), now, expires_at)
            .await?
        {
            Refreshed::Rotated(session) => session,
            Refreshed::Replayed => {
                self.audit_anonymous(
                    "auth.refresh",
                    "session:unknown".into(),
                    AuditOutcome::Denied,
                    source_ip,
                    "a used refresh token was presented again; its session was revoked",
                )
                .await?;
                return Err(Error::Unauthenticated(
                    "the refresh token was already used".into(),
                ));
            }
            Refreshed::Unknown => {
                return Err(Error::Unauthenticated(
                    "unknown, expired or revoked refresh token".into(),
                ));
            }
        };
        let record = self.auth.login_by_user(session.user_id).await?;
        if record.user.status != UserStatus::Active || record.tenant_status != TenantStatus::Active
        {
            self.auth.revoke_session(session.id, now).await?;
            return Err(Error::denied("the account is suspended"));
        }
        let standing = self
            .auth
            .user_standing(session.user_id)
            .await?
            .ok_or_else(|| Error::Unauthenticated("the account no longer exists".into()))?;
        Ok(self.tokens(
            &record.user,
            session.id,
            standing.generation,
            next,
            expires_at,
            standing.must_enrol(),
            now,
        ))
    }

    /// Ends the actor's session: its refresh token and its access tokens stop working at once,
    /// in every panel process (each request reads its session's state).
    pub async fn logout(&self, actor: &Actor) -> Result<()> {
        let Grant::Session { id, .. } = actor.grant else {
            return Err(Error::Conflict("only a login session can log out".into()));
        };
        let result = self.auth.revoke_session(id, self.clock.now()).await;
        self.audited(actor, "auth.logout", format!("session:{id}"), result)
            .await
    }

    /// Who presents `bearer` (an access token or an API token), or why nobody.
    pub async fn authenticate(&self, bearer: &str, source_ip: Option<IpAddr>) -> Result<Actor> {
        let now = self.clock.now();
        if bearer.starts_with(TokenKind::ApiKey.prefix()) {
            return self.authenticate_api_token(bearer, source_ip, now).await;
        }
        let claims = self.keys.verify(bearer, now).map_err(|e| match e {
            TokenError::Expired => Error::TokenExpired,
            other => Error::Unauthenticated(other.to_string()),
        })?;
        // The signature proves who the token was minted for; the store says whether that still
        // stands. One read by primary key, shared by every panel process, so a logout,
        // password change, suspension, role change, deletion or refresh replay anywhere ends
        // the token on its next request.
        let session = SessionId(claims.session);
        let Some(state) = self.auth.session_standing(session).await? else {
            return Err(Error::Unauthenticated(
                "the session or its account no longer exists".into(),
            ));
        };
        let user = state.user;
        if state.session.user_id != claims.user || user.tenant != claims.tenant {
            return Err(Error::Unauthenticated(
                "the token does not match its session".into(),
            ));
        }
        if state.session.revoked_at.is_some() {
            return Err(Error::Unauthenticated("the session has ended".into()));
        }
        if user.generation != claims.generation {
            return Err(Error::Unauthenticated(
                "the account's credentials changed since this token was issued; log in again"
                    .into(),
            ));
        }
        if !user.is_active() {
            return Err(Error::Unauthenticated("the account is suspended".into()));
        }
        Ok(Actor {
            caller: Caller {
                tenant: user.tenant,
                user: user.user,
                role: user.role,
            },
            source_ip,
            grant: Grant::Session {
                id: session,
                enrol_only: user.must_enrol(),
            },
        })
    }

    async fn authenticate_api_token(
        &self,
        bearer: &str,
        source_ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Actor> {
        let token = OpaqueToken::parse_as(bearer, TokenKind::ApiKey)
            .map_err(|_| Error::Unauthenticated("malformed API token".into()))?;
        let Some(record) = self.auth.api_token_by_hash(&token.hash()).await? else {
            return Err(Error::Unauthenticated("unknown API token".into()));
        };
        if !record.is_live(now) {
            return Err(Error::Unauthenticated(
                "the API token was revoked or expired".into(),
            ));
        }
        let Some(owner) = self.auth.user_standing(record.user_id).await? else {
            return Err(Error::Unauthenticated("unknown API token".into()));
        };
        if !owner.is_active() || owner.tenant != record.tenant_id {
            return Err(Error::Unauthenticated(
                "the API token's account is suspended".into(),
            ));
        }
        if owner.must_enrol() {
            // The tenant started requiring a second factor: a token its owner minted without
            // one works again once the owner has enrolled.
            return Err(Error::Unauthenticated(
                "the API token's tenant requires a second factor its owner has not enrolled".into(),
            ));
        }
        Ok(Actor {
            caller: Caller {
                tenant: record.tenant_id,
                user: record.user_id,
                // Never more than the user holds now, even if it was demoted after minting.
                role: record.role.max(owner.role),
            },
            source_ip,
            grant: Grant::ApiToken {
                id: record.id,
                permissions: record.permissions,
            },
        })
    }

    /// Asks the actor for its current password again before an account's anchors change (its
    /// password, its second factor, a new API token), so a stolen bearer token alone cannot
    /// take the account over. Each try spends the account's password budget, as a login does.
    pub(super) async fn reauthenticate(
        &self,
        actor: &Actor,
        current_password: &Password,
    ) -> Result<()> {
        let user = actor.caller.user;
        let record = self.auth.login_by_user(user).await?;
        // A guess like a login's: it spends the account's password budget first.
        let account = AttemptKey::Account(record.user.email.clone());
        let (policy, now) = (self.settings.password_attempts, self.clock.now());
        self.spend_attempt(&account, policy, now).await?;
        let right = match record.password {
            Some(hash) => self.hashing.verify(current_password.clone(), hash).await?,
            None => false,
        };
        if right {
            self.give_back_attempt(&account, policy, now).await?;
            return Ok(());
        }
        Err(Error::ReauthenticationFailed)
    }

    /// Starts enrolling a second factor for the actor, who repeats its current password: a
    /// new secret and recovery codes, valid once confirmed with a code.
    pub async fn enrol_totp(
        &self,
        actor: &Actor,
        current_password: &Password,
    ) -> Result<TotpEnrolment> {
        let result = async {
            actor.require_own_login()?;
            self.reauthenticate(actor, current_password).await?;
            let record = self.auth.login_by_user(actor.caller.user).await?;
            if record.totp.as_ref().is_some_and(|t| t.confirmed) {
                return Err(Error::Conflict(
                    "a second factor is already enrolled; disable it first".into(),
                ));
            }
            let secret = TotpSecret::generate()?;
            let codes = RecoveryCodes::generate(RECOVERY_CODES)?;
            let (plaintext, hashes) = codes.into_parts();
            let enrolment = TotpEnrolment {
                secret: secret.to_base32(),
                provisioning_uri: secret
                    .provisioning_uri(&self.settings.totp_issuer, record.user.email.as_str()),
                recovery_codes: plaintext,
            };
            self.auth
                .set_totp(
                    actor.caller.user,
                    Some(TotpState {
                        secret,
                        confirmed: false,
                        last_step: None,
                    }),
                    hashes,
                )
                .await?;
            Ok(enrolment)
        }
        .await;
        self.audited(
            actor,
            "auth.totp_enrol",
            format!("user:{}", actor.caller.user),
            result,
        )
        .await
    }

    /// Checks `code` against `totp` and uses its time step up, so it works once. Spends an
    /// attempt of the user's second-factor budget, the one logins spend too; a right code
    /// clears it.
    async fn use_totp_code(&self, user: UserId, totp: &TotpState, code: &str) -> Result<()> {
        let now = self.clock.now();
        let key = AttemptKey::SecondFactor(user);
        self.spend_attempt(&key, self.settings.code_attempts, now)
            .await?;
        let step = totp
            .secret
            .verify(code, now, TOTP_WINDOW, totp.last_step)
            .ok_or_else(|| Error::Invalid {
                field: "code".into(),
                reason: "is not the authenticator's current code".into(),
            })?;
        if self.auth.use_totp_step(user, step).await? {
            self.auth.update_attempts(&key, now, &|_| None).await?;
            Ok(())
        } else {
            Err(Error::Invalid {
                field: "code".into(),
                reason: "was already used".into(),
            })
        }
    }

    /// Confirms the actor's pending second factor with a current code.
    pub async fn confirm_totp(&self, actor: &Actor, code: &str) -> Result<()> {
        let result = async {
            actor.require_own_login()?;
            let user = actor.caller.user;
            let record = self.auth.login_by_user(user).await?;
            let Some(totp) = record.totp.filter(|t| !t.confirmed) else {
                return Err(Error::Conflict(
                    "no second factor is waiting for confirmation".into(),
                ));
            };
            self.use_totp_code(user, &totp, code).await?;
            self.auth.confirm_totp(user).await
        }
        .await;
        self.audited(
            actor,
            "auth.totp_confirm",
            format!("user:{}", actor.caller.user),
            result,
        )
        .await
    }

    /// Removes the actor's second factor, proven with a current code and the current password.
    pub async fn disable_totp(
        &self,
        actor: &Actor,
        code: &str,
        current_password: &Password,
    ) -> Result<()> {
        let result = async {
            actor.require(Permission::UsersWrite)?;
            actor.require_own_login()?;
            self.reauthenticate(actor, current_password).await?;
            let user = actor.caller.user;
            let record = self.auth.login_by_user(user).await?;
            let Some(totp) = record.totp.filter(|t| t.confirmed) else {
                return Err(Error::Conflict("no second factor is enrolled".into()));
            };
            if record.tenant_requires_2fa {
                return Err(Error::Conflict(
                    "the tenant requires a second factor; it cannot be removed".into(),
                ));
            }
            self.use_totp_code(user, &totp, code).await?;
            self.auth.set_totp(user, None, Vec::new()).await
        }
        .await;
        self.audited(
            actor,
            "auth.totp_disable",
            format!("user:{}", actor.caller.user),
            result,
        )
        .await
    }

    /// Creates an API token acting as the actor, with `role` (at most the actor's own), from a
    /// login session and with the actor's current password. An API token cannot mint one: a
    /// child could outlive its parent's expiry or revocation.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        name: DisplayName,
        role: Role,
        permissions: PermissionSet,
        expires_at: Option<DateTime<Utc>>,
        current_password: &Password,
    ) -> Result<ApiTokenCreated> {
        let result = async {
            actor.require(Permission::TokensWrite)?;
            if let Grant::ApiToken { .. } = actor.grant {
                return Err(Error::denied(
                    "API tokens are minted from a login session, not by another API token",
                ));
            }
            if permissions.is_empty() {
                return Err(Error::Invalid {
                    field: "permissions".into(),
                    reason: "must name at least one permission".into(),
                });
            }
            self.reauthenticate(actor, current_password).await?;
            let secret = OpaqueToken::generate(TokenKind::ApiKey)?;
            let token = self
                .auth
                .create_api_token(
                    &actor.caller,
                    NewApiToken {
                        name,
                        role,
                        permissions,
                        expires_at,
                        hash: secret.hash(),
                    },
                )
                .await?;
            Ok(ApiTokenCreated {
                token,
                secret: secret.expose().to_owned(),
            })
        }
        .await;
        // The same target its revocation names, so the two entries can be matched.
        let target = match &result {
            Ok(created) => format!("api_token:{}", created.token.id),
            Err(_) => "api_token:none".to_owned(),
        };
        self.audited(actor, "api_token.create", target, result)
            .await
    }

    /// The actor's API tokens (a tenant admin: its tenant's).
    pub async fn list_api_tokens(
        &self,
        actor: &Actor,
        page: PageRequest,
    ) -> Result<Page<ApiToken>> {
        actor.require(Permission::TokensWrite)?;
        self.auth.list_api_tokens(&actor.caller, page).await
    }

    /// Revokes an API token.
    pub async fn revoke_api_token(&self, actor: &Actor, id: ApiTokenId) -> Result<()> {
        let result = async {
            actor.require(Permission::TokensWrite)?;
            self.auth
                .revoke_api_token(&actor.caller, id, self.clock.now())
                .await
        }
        .await;
        self.audited(actor, "api_token.revoke", format!("api_token:{id}"), result)
            .await
    }
}
