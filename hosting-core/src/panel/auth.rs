//! Logging in and proving who you are: passwords, second factors, sessions with rotating
//! refresh tokens, short-lived signed access tokens, and API tokens.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Actor, Grant, Panel};
use crate::auth::{
    AccessClaims, OpaqueToken, Permission, PermissionSet, RecoveryCodes, TokenError, TokenKind,
    TotpSecret, recovery,
};
use crate::auth_store::{ApiToken, LoginRecord, NewApiToken, NewSession, Refreshed, TotpState};
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

    /// Logs in with e-mail, password and (when enrolled) a second factor. Attempts are
    /// throttled per source IP and per account, failures count towards a lockout, and an
    /// unknown account costs as much time as a known one.
    pub async fn login(&self, request: LoginRequest) -> Result<Tokens> {
        let ip_key = request
            .source_ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        self.login_by_ip
            .check(&ip_key)
            .map_err(Self::rate_limited)?;
        self.login_by_account
            .check(request.email.as_str())
            .map_err(Self::rate_limited)?;
        let now = self.clock.now();
        let Some(record) = self.auth.login_by_email(&request.email).await? else {
            self.hashing
                .verify_against_dummy(request.password.clone())
                .await?;
            self.audit_anonymous(
                "auth.login",
                format!("email:{}", request.email),
                AuditOutcome::Denied,
                request.source_ip,
                "unknown account",
            )
            .await?;
            return Err(wrong_credentials());
        };
        let ip = request.source_ip;
        if let Some(until) = record.locked_until
            && until > now
        {
            self.audit_login(
                &record,
                "auth.login",
                AuditOutcome::Denied,
                ip,
                "account locked",
            )
            .await?;
            let secs = (until - now).num_seconds().max(1);
            return Err(Error::RateLimited {
                retry_after_secs: u64::try_from(secs).unwrap_or(1),
            });
        }
        let password_ok = match record.password.clone() {
            Some(hash) => self.hashing.verify(request.password.clone(), hash).await?,
            None => false,
        };
        if !password_ok {
            self.auth
                .record_login_failure(record.user.id, now, self.settings.lockout)
                .await?;
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
        let confirmed_totp = record.totp.as_ref().filter(|t| t.confirmed);
        if let Some(totp) = confirmed_totp {
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
                (None, None) => {
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
            };
            if !proven {
                self.auth
                    .record_login_failure(record.user.id, now, self.settings.lockout)
                    .await?;
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
        self.auth.record_login_success(record.user.id).await?;
        self.login_by_account.reset(request.email.as_str());
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
        self.audit_login(&record, "auth.login", AuditOutcome::Success, ip, "")
            .await?;
        Ok(self.tokens(
            &record.user,
            session.id,
            refresh,
            refresh_expires_at,
            enrol_only,
            now,
        ))
    }

    fn tokens(
        &self,
        user: &User,
        session: SessionId,
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
        let enrol_only =
            record.tenant_requires_2fa && !record.totp.as_ref().is_some_and(|t| t.confirmed);
        Ok(self.tokens(&record.user, session.id, next, expires_at, enrol_only, now))
    }

    /// Ends the actor's session: its refresh token stops working at once, its access tokens
    /// at once on this panel instance and within their short lifetime elsewhere.
    pub async fn logout(&self, actor: &Actor) -> Result<()> {
        let Grant::Session { id, .. } = actor.grant else {
            return Err(Error::Conflict("only a login session can log out".into()));
        };
        let now = self.clock.now();
        let result = self.auth.revoke_session(id, now).await;
        if result.is_ok()
            && let Ok(mut revoked) = self.revoked.lock()
        {
            revoked.retain(|_, until| *until > now);
            revoked.insert(id, after(now, self.settings.access_ttl));
        }
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
        let session = SessionId(claims.session);
        let revoked = self
            .revoked
            .lock()
            .map(|r| r.contains_key(&session))
            .unwrap_or(true);
        if revoked {
            return Err(Error::Unauthenticated("the session was logged out".into()));
        }
        Ok(Actor {
            caller: Caller {
                tenant: claims.tenant,
                user: claims.user,
                role: claims.role,
            },
            source_ip,
            grant: Grant::Session {
                id: session,
                enrol_only: claims.enrol_only,
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
        let owner = self.auth.login_by_user(record.user_id).await?;
        if owner.user.status != UserStatus::Active || owner.tenant_status != TenantStatus::Active {
            return Err(Error::Unauthenticated(
                "the API token's account is suspended".into(),
            ));
        }
        Ok(Actor {
            caller: Caller {
                tenant: record.tenant_id,
                user: record.user_id,
                // Never more than the user holds now, even if it was demoted after minting.
                role: record.role.max(owner.user.role),
            },
            source_ip,
            grant: Grant::ApiToken {
                id: record.id,
                permissions: record.permissions,
            },
        })
    }

    /// Starts enrolling a second factor for the actor: a new secret and recovery codes, valid
    /// once confirmed with a code.
    pub async fn enrol_totp(&self, actor: &Actor) -> Result<TotpEnrolment> {
        let result = async {
            actor.require_own_login()?;
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

    /// Checks `code` against `totp` and uses its time step up, so it works once.
    async fn use_totp_code(&self, user: UserId, totp: &TotpState, code: &str) -> Result<()> {
        let step = totp
            .secret
            .verify(code, self.clock.now(), TOTP_WINDOW, totp.last_step)
            .ok_or_else(|| Error::Invalid {
                field: "code".into(),
                reason: "is not the authenticator's current code".into(),
            })?;
        if self.auth.use_totp_step(user, step).await? {
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

    /// Removes the actor's second factor, proven with a current code.
    pub async fn disable_totp(&self, actor: &Actor, code: &str) -> Result<()> {
        let result = async {
            actor.require(Permission::UsersWrite)?;
            actor.require_own_login()?;
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

    /// Creates an API token acting as the actor, with `role` (at most the actor's own) and
    /// `permissions` (at most the actor's own, for a token creating a token).
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        name: DisplayName,
        role: Role,
        permissions: PermissionSet,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ApiTokenCreated> {
        let target = format!("api_token:{name}");
        let result = async {
            actor.require(Permission::TokensWrite)?;
            if let Grant::ApiToken {
                permissions: own, ..
            } = &actor.grant
                && !permissions.is_subset(own)
            {
                return Err(Error::denied(
                    "a token cannot grant permissions its creator lacks",
                ));
            }
            if permissions.is_empty() {
                return Err(Error::Invalid {
                    field: "permissions".into(),
                    reason: "must name at least one permission".into(),
                });
            }
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
