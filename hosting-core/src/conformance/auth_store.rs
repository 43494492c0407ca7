//! The [`AuthStore`] contract. The store must also be the [`PanelStore`] its users live in:
//! tenants and users are created through it. Every function makes its own tenants and users,
//! so functions may share a store.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::auth::{
    OpaqueToken, PasswordHash, PasswordPolicy, PermissionSet, SecretHash, TokenKind,
};
use crate::auth::{Permission, TotpSecret};
use crate::auth_store::{
    ApiToken, AuthStore, LockoutPolicy, LoginRecord, NewApiToken, NewSession, Refreshed, Session,
    TotpState,
};
use crate::conformance::store::{World, caller};
use crate::conformance::unique_suffix;
use crate::error::Error;
use crate::model::{
    ApiTokenId, Role, SessionId, TenantChanges, TenantId, TenantStatus, User, UserId,
};
use crate::page::{PageLimit, PageRequest};
use crate::rbac::{Caller, Operator};
use crate::store::PanelStore;

/// Every function of this suite, in order.
pub async fn run_all<S: PanelStore + AuthStore>(store: &S) {
    login_records_follow_the_user(store).await;
    lockout_after_threshold_and_unlock_by_success(store).await;
    second_factor_round_trip(store).await;
    totp_step_is_used_once_under_concurrency(store).await;
    recovery_code_is_used_once_under_concurrency(store).await;
    refresh_tokens_rotate(store).await;
    replayed_refresh_token_revokes_the_session(store).await;
    concurrent_refresh_has_one_winner(store).await;
    revoking_a_users_sessions_spares_others(store).await;
    api_tokens_respect_the_role_ceiling(store).await;
    api_tokens_are_scoped_to_owner_and_tenant(store).await;
    deleting_a_user_removes_its_credentials(store).await;
    ending_credentials_moves_the_generation(store).await;
}

fn parse<T: FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("suite value {s:?} must parse: {e:?}"))
}

fn page(limit: u32) -> PageRequest {
    PageRequest::first(PageLimit::try_from(limit).unwrap_or_default())
}

fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn assert_denied<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::PermissionDenied(_)) => {}
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    }
}

fn assert_exists<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("{what}: expected AlreadyExists, got {other:?}"),
    }
}

/// Now, to the millisecond: stores keep timestamps at that precision.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_else(Utc::now)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// A fresh random secret's hash, as the panel would store for a token or code.
fn secret() -> SecretHash {
    OpaqueToken::generate(TokenKind::Refresh)
        .expect("random token")
        .hash()
}

/// A real argon2id hash, made cheaply.
fn password_hash() -> PasswordHash {
    PasswordPolicy {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
    .hash(&parse("correct horse battery staple"))
    .expect("hash")
}

/// No user has this id.
const NO_USER: UserId = UserId(i64::MAX);

async fn record<S: AuthStore>(store: &S, user: &User) -> LoginRecord {
    store.login_by_user(user.id).await.expect("login record")
}

async fn open_session<S: AuthStore>(
    store: &S,
    user: &User,
    refresh: &SecretHash,
    expires_at: DateTime<Utc>,
) -> Session {
    store
        .create_session(NewSession {
            user_id: user.id,
            refresh: refresh.clone(),
            expires_at,
            source_ip: None,
        })
        .await
        .expect("create session")
}

async fn rotate<S: AuthStore>(
    store: &S,
    presented: &SecretHash,
    next: &SecretHash,
    at: DateTime<Utc>,
) -> Refreshed {
    store
        .rotate_refresh(presented, next, at, at + secs(3600))
        .await
        .expect("rotate refresh")
}

/// Opens connections before a race, so the racers start together instead of one finishing
/// while the others are still connecting.
async fn warm_up<S: AuthStore>(store: &S, user: &User) {
    let reads = futures::future::join_all((0..32).map(|_| store.login_by_user(user.id))).await;
    assert!(reads.iter().all(Result::is_ok), "warm-up reads: {reads:?}");
}

fn new_token(name: &str, role: Role, hash: SecretHash) -> NewApiToken {
    NewApiToken {
        name: parse(name),
        role,
        permissions: PermissionSet::from_iter([Permission::WebsitesRead, Permission::JobsRead]),
        expires_at: None,
        hash,
    }
}

async fn list_tokens<S: AuthStore>(store: &S, me: &Caller) -> Vec<ApiTokenId> {
    store
        .list_api_tokens(me, page(500))
        .await
        .expect("list tokens")
        .items
        .iter()
        .map(|t| t.id)
        .collect()
}

/// A login record carries the user, its tenant's status and 2FA rule, and its credentials;
/// unknown users are `None` by e-mail and `NotFound` by id.
pub async fn login_records_follow_the_user<S: PanelStore + AuthStore>(store: &S) {
    let op = Operator::assume();
    let w = World::create(store).await;
    let other = World::create(store).await;
    let user = &w.client_of_a;

    let unknown = parse(&format!("nobody-{}@example.com", unique_suffix()));
    assert_eq!(store.login_by_email(&unknown).await.expect("lookup"), None);
    assert_not_found(store.login_by_user(NO_USER).await, "unknown user id");

    let fresh = store
        .login_by_email(&user.email)
        .await
        .expect("lookup")
        .expect("known e-mail");
    assert_eq!(&fresh.user, user);
    assert_eq!(fresh.tenant_status, TenantStatus::Active);
    assert!(!fresh.tenant_requires_2fa);
    assert_eq!(fresh.password, None, "no password until one is set");
    assert_eq!(fresh.totp, None);
    assert_eq!(fresh.failed_logins, 0);
    assert_eq!(fresh.locked_until, None);
    assert_eq!(
        record(store, user).await,
        fresh,
        "by id and by e-mail agree"
    );

    let first = password_hash();
    store.set_password(user.id, &first).await.expect("set");
    assert_eq!(record(store, user).await.password, Some(first));
    let second = password_hash();
    store.set_password(user.id, &second).await.expect("replace");
    assert_eq!(record(store, user).await.password, Some(second));
    assert_eq!(
        record(store, &w.client_of_b).await.password,
        None,
        "another user's password is untouched"
    );
    assert_not_found(
        store.set_password(NO_USER, &password_hash()).await,
        "password of an unknown user",
    );

    store
        .set_tenant_requires_2fa(&op, w.tenant.id, true)
        .await
        .expect("require 2fa");
    for (name, u) in w.users() {
        assert!(record(store, u).await.tenant_requires_2fa, "{name}");
    }
    assert!(!record(store, &other.admin).await.tenant_requires_2fa);
    store
        .set_tenant_requires_2fa(&op, w.tenant.id, false)
        .await
        .expect("stop requiring 2fa");
    assert!(!record(store, user).await.tenant_requires_2fa);
    assert_not_found(
        store
            .set_tenant_requires_2fa(&op, TenantId(i64::MAX), true)
            .await,
        "2fa rule of an unknown tenant",
    );

    store
        .update_tenant(
            &op,
            w.tenant.id,
            TenantChanges {
                status: Some(TenantStatus::Suspended),
                ..TenantChanges::default()
            },
        )
        .await
        .expect("suspend tenant");
    assert_eq!(
        record(store, user).await.tenant_status,
        TenantStatus::Suspended
    );
}

/// Failures count up; reaching the threshold locks from `now` for the policy's duration; a
/// success clears both. Concurrent failures all count.
pub async fn lockout_after_threshold_and_unlock_by_success<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_a;
    let hash = password_hash();
    store.set_password(user.id, &hash).await.expect("set");
    let policy = LockoutPolicy {
        threshold: 3,
        duration: Duration::from_secs(900),
    };
    let t0 = now();

    let r1 = store
        .record_login_failure(user.id, t0, policy)
        .await
        .expect("failure 1");
    assert_eq!((r1.failed_logins, r1.locked_until), (1, None));
    let r2 = store
        .record_login_failure(user.id, t0 + secs(1), policy)
        .await
        .expect("failure 2");
    assert_eq!((r2.failed_logins, r2.locked_until), (2, None));
    let r3 = store
        .record_login_failure(user.id, t0 + secs(2), policy)
        .await
        .expect("failure 3");
    assert_eq!(r3.failed_logins, 3);
    assert_eq!(
        r3.locked_until,
        Some(t0 + secs(2) + secs(900)),
        "the threshold locks from now for the policy's duration"
    );
    assert_eq!(
        r3.password,
        Some(hash.clone()),
        "failures keep the password"
    );
    assert_eq!(
        record(store, user).await,
        r3,
        "the returned record is stored"
    );
    let r4 = store
        .record_login_failure(user.id, t0 + secs(3), policy)
        .await
        .expect("failure 4");
    assert_eq!(r4.failed_logins, 4);
    assert!(r4.locked_until.is_some(), "still locked");

    store.record_login_success(user.id).await.expect("success");
    let cleared = record(store, user).await;
    assert_eq!((cleared.failed_logins, cleared.locked_until), (0, None));
    assert_eq!(cleared.password, Some(hash));

    // Other users are untouched; a user who never failed may succeed.
    assert_eq!(record(store, &w.client_of_b).await.failed_logins, 0);
    store
        .record_login_success(w.client_of_b.id)
        .await
        .expect("success without failures");
    assert_not_found(
        store.record_login_failure(NO_USER, t0, policy).await,
        "failure of an unknown user",
    );
    assert_not_found(
        store.record_login_success(NO_USER).await,
        "success of an unknown user",
    );

    // Concurrent failures are each counted once.
    let lenient = LockoutPolicy {
        threshold: 100,
        ..policy
    };
    let target = &w.reseller_a;
    warm_up(store, target).await;
    let results = futures::future::join_all(
        (0..8).map(|_| store.record_login_failure(target.id, t0, lenient)),
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(record(store, target).await.failed_logins, 8);
}

/// A second factor is stored, confirmed, and replaced or removed with its recovery codes;
/// steps are accepted only when newer than the last; codes are single use and per user.
pub async fn second_factor_round_trip<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_a;
    let state = TotpState {
        secret: TotpSecret::generate().expect("secret"),
        confirmed: false,
        last_step: None,
    };
    let codes = vec![secret(), secret(), secret()];
    store
        .set_totp(user.id, Some(state.clone()), codes.clone())
        .await
        .expect("enrol");
    assert_eq!(record(store, user).await.totp, Some(state.clone()));

    store.confirm_totp(user.id).await.expect("confirm");
    let confirmed = record(store, user).await.totp.expect("enrolled");
    assert!(confirmed.confirmed);
    assert_eq!(confirmed.secret, state.secret);

    assert!(store.use_totp_step(user.id, 1000).await.expect("step"));
    assert!(
        !store.use_totp_step(user.id, 1000).await.expect("step"),
        "a step is used once"
    );
    assert!(
        !store.use_totp_step(user.id, 999).await.expect("step"),
        "an older step is refused"
    );
    assert!(store.use_totp_step(user.id, 1001).await.expect("step"));
    let totp = record(store, user).await.totp.expect("enrolled");
    assert_eq!(totp.last_step, Some(1001));
    assert!(totp.confirmed, "using steps keeps the confirmation");

    assert!(
        store
            .use_recovery_code(user.id, &codes[0])
            .await
            .expect("code")
    );
    assert!(
        !store
            .use_recovery_code(user.id, &codes[0])
            .await
            .expect("code"),
        "a code is used once"
    );
    assert!(
        !store
            .use_recovery_code(user.id, &secret())
            .await
            .expect("code"),
        "an unknown code"
    );

    // Codes belong to their user.
    let other = &w.client_of_b;
    let other_codes = vec![secret()];
    store
        .set_totp(
            other.id,
            Some(TotpState {
                secret: TotpSecret::generate().expect("secret"),
                confirmed: true,
                last_step: Some(5),
            }),
            other_codes.clone(),
        )
        .await
        .expect("enrol other");
    assert!(
        !store
            .use_recovery_code(user.id, &other_codes[0])
            .await
            .expect("code"),
        "another user's code"
    );
    assert!(
        store
            .use_recovery_code(other.id, &other_codes[0])
            .await
            .expect("code")
    );
    assert!(
        !store.use_totp_step(other.id, 5).await.expect("step"),
        "the stored last step counts"
    );
    assert_eq!(
        record(store, user).await.totp.and_then(|t| t.last_step),
        Some(1001),
        "another user's steps do not move this user's"
    );

    // Re-enrolling replaces the factor and every code.
    let renewed = TotpState {
        secret: TotpSecret::generate().expect("secret"),
        confirmed: false,
        last_step: None,
    };
    let new_codes = vec![secret(), secret()];
    store
        .set_totp(user.id, Some(renewed.clone()), new_codes.clone())
        .await
        .expect("re-enrol");
    assert_eq!(record(store, user).await.totp, Some(renewed));
    assert!(
        !store
            .use_recovery_code(user.id, &codes[1])
            .await
            .expect("code"),
        "old codes are gone"
    );
    assert!(
        store
            .use_recovery_code(user.id, &new_codes[0])
            .await
            .expect("code")
    );
    assert!(store.use_totp_step(user.id, 7).await.expect("step"));

    // Removing it removes the codes too.
    store
        .set_totp(user.id, None, Vec::new())
        .await
        .expect("remove");
    assert_eq!(record(store, user).await.totp, None);
    assert!(
        !store
            .use_recovery_code(user.id, &new_codes[1])
            .await
            .expect("code")
    );
    assert!(!store.use_totp_step(user.id, 8).await.expect("step"));

    assert_not_found(
        store.set_totp(NO_USER, Some(state), Vec::new()).await,
        "enrolling an unknown user",
    );
    assert_not_found(
        store.use_totp_step(NO_USER, 1).await,
        "step of an unknown user",
    );
    assert_not_found(
        store.use_recovery_code(NO_USER, &codes[2]).await,
        "code of an unknown user",
    );
}

/// Eight concurrent uses of one time step: exactly one is accepted.
pub async fn totp_step_is_used_once_under_concurrency<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_a;
    store
        .set_totp(
            user.id,
            Some(TotpState {
                secret: TotpSecret::generate().expect("secret"),
                confirmed: true,
                last_step: Some(10),
            }),
            Vec::new(),
        )
        .await
        .expect("enrol");
    warm_up(store, user).await;
    let results = futures::future::join_all((0..8).map(|_| store.use_totp_step(user.id, 11))).await;
    let accepted = results
        .iter()
        .map(|r| *r.as_ref().expect("use step"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(accepted, 1, "exactly one use of a step wins: {results:?}");
    assert_eq!(
        record(store, user).await.totp.and_then(|t| t.last_step),
        Some(11)
    );
}

/// Eight concurrent uses of one recovery code: exactly one succeeds; the other codes stay.
pub async fn recovery_code_is_used_once_under_concurrency<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_a;
    let codes = vec![secret(), secret()];
    store
        .set_totp(
            user.id,
            Some(TotpState {
                secret: TotpSecret::generate().expect("secret"),
                confirmed: true,
                last_step: None,
            }),
            codes.clone(),
        )
        .await
        .expect("enrol");
    warm_up(store, user).await;
    let results =
        futures::future::join_all((0..8).map(|_| store.use_recovery_code(user.id, &codes[0])))
            .await;
    let accepted = results
        .iter()
        .map(|r| *r.as_ref().expect("use code"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(accepted, 1, "exactly one use of a code wins: {results:?}");
    assert!(
        store
            .use_recovery_code(user.id, &codes[1])
            .await
            .expect("code"),
        "the other code is still there"
    );
}

/// A session's refresh token is exchanged for the next one, which extends the session; an
/// unknown token, an expired session or a revoked one is `Unknown`.
pub async fn refresh_tokens_rotate<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_a;
    let t0 = now();
    let ip: IpAddr = parse("203.0.113.7");
    let first = secret();
    let session = store
        .create_session(NewSession {
            user_id: user.id,
            refresh: first.clone(),
            expires_at: t0 + secs(3600),
            source_ip: Some(ip),
        })
        .await
        .expect("create session");
    assert_eq!(session.user_id, user.id);
    assert_eq!(session.tenant_id, user.tenant_id);
    assert_eq!(session.source_ip, Some(ip));
    assert_eq!(session.expires_at, t0 + secs(3600));
    assert_eq!(session.revoked_at, None);
    assert!(session.is_live(t0));
    assert_eq!(store.get_session(session.id).await.expect("get"), session);

    let second = secret();
    match store
        .rotate_refresh(&first, &second, t0 + secs(10), t0 + secs(7200))
        .await
        .expect("rotate")
    {
        Refreshed::Rotated(s) => {
            assert_eq!(s.id, session.id);
            assert_eq!(s.expires_at, t0 + secs(7200), "the next token's expiry");
            assert_eq!(s.revoked_at, None);
        }
        other => panic!("a current token rotates: {other:?}"),
    }
    assert_eq!(
        store.get_session(session.id).await.expect("get").expires_at,
        t0 + secs(7200)
    );
    let third = secret();
    assert!(matches!(
        rotate(store, &second, &third, t0 + secs(20)).await,
        Refreshed::Rotated(_)
    ));
    // `third` now expires at t0 + 20 s + 1 h.
    assert_eq!(
        rotate(store, &secret(), &secret(), t0 + secs(30)).await,
        Refreshed::Unknown,
        "an unknown token"
    );
    let never = secret();
    assert_eq!(
        rotate(store, &third, &never, t0 + secs(20 + 3600)).await,
        Refreshed::Unknown,
        "a token of an expired session"
    );
    assert_eq!(
        rotate(store, &never, &secret(), t0 + secs(40)).await,
        Refreshed::Unknown,
        "a refused rotation stores no next token"
    );

    assert_exists(
        store
            .create_session(NewSession {
                user_id: user.id,
                refresh: first.clone(),
                expires_at: t0 + secs(3600),
                source_ip: None,
            })
            .await,
        "a refresh token hash that is already stored",
    );
    assert_not_found(
        store
            .create_session(NewSession {
                user_id: NO_USER,
                refresh: secret(),
                expires_at: t0 + secs(3600),
                source_ip: None,
            })
            .await,
        "a session for an unknown user",
    );
    assert_not_found(
        store.get_session(SessionId(i64::MAX)).await,
        "unknown session",
    );

    store
        .revoke_session(session.id, t0 + secs(50))
        .await
        .expect("revoke");
    let revoked = store.get_session(session.id).await.expect("get");
    assert_eq!(revoked.revoked_at, Some(t0 + secs(50)));
    assert!(!revoked.is_live(t0 + secs(51)));
    assert_eq!(
        rotate(store, &third, &secret(), t0 + secs(60)).await,
        Refreshed::Unknown,
        "a token of a revoked session"
    );
    assert_not_found(
        store.revoke_session(SessionId(i64::MAX), t0).await,
        "revoking an unknown session",
    );
}

/// Presenting a used refresh token again is `Replayed`: every session of that user is revoked
/// (so the token that replaced it stops working too) and its generation moves; other users
/// are untouched.
pub async fn replayed_refresh_token_revokes_the_session<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_a;
    let t0 = now();
    let (first, second) = (secret(), secret());
    let session = open_session(store, user, &first, t0 + secs(3600)).await;
    let other_token = secret();
    let other = open_session(store, user, &other_token, t0 + secs(3600)).await;
    let before = generation(store, user.id).await;

    assert!(matches!(
        rotate(store, &first, &second, t0 + secs(1)).await,
        Refreshed::Rotated(_)
    ));
    let copy_next = secret();
    assert_eq!(
        rotate(store, &first, &copy_next, t0 + secs(2)).await,
        Refreshed::Replayed
    );
    assert!(
        store
            .get_session(session.id)
            .await
            .expect("get")
            .revoked_at
            .is_some(),
        "a replay revokes the session"
    );
    assert_eq!(
        rotate(store, &second, &secret(), t0 + secs(3)).await,
        Refreshed::Unknown,
        "the legitimate successor dies with the session"
    );
    assert_eq!(
        rotate(store, &copy_next, &secret(), t0 + secs(3)).await,
        Refreshed::Unknown,
        "a replay stores no next token"
    );
    assert!(
        store
            .get_session(other.id)
            .await
            .expect("get")
            .revoked_at
            .is_some(),
        "the user's other session ends too: the thief may have opened it"
    );
    assert_eq!(
        rotate(store, &other_token, &secret(), t0 + secs(4)).await,
        Refreshed::Unknown
    );
    assert_eq!(
        generation(store, user.id).await,
        before + 1,
        "a replay moves the generation once"
    );
}

/// Eight concurrent presentations of one refresh token: exactly one is `Rotated`. By the time
/// the others are served the token is used, so they are `Replayed`: the user's sessions (with
/// the winner's new token) are revoked, since the store cannot tell a racing copy from a
/// stolen one. The losers' next tokens never become valid, and other users' sessions stay
/// live.
pub async fn concurrent_refresh_has_one_winner<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_a;
    let t0 = now();
    let first = secret();
    let session = open_session(store, user, &first, t0 + secs(3600)).await;
    let sibling_token = secret();
    let sibling = open_session(store, user, &sibling_token, t0 + secs(3600)).await;
    let stranger_token = secret();
    let stranger = open_session(store, &w.client_of_b, &stranger_token, t0 + secs(3600)).await;

    let nexts: Vec<SecretHash> = (0..8).map(|_| secret()).collect();
    warm_up(store, user).await;
    let results = futures::future::join_all(
        nexts
            .iter()
            .map(|next| store.rotate_refresh(&first, next, t0 + secs(1), t0 + secs(7200))),
    )
    .await;
    let outcomes: Vec<Refreshed> = results
        .into_iter()
        .map(|r| r.expect("rotate refresh"))
        .collect();
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Refreshed::Rotated(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation wins: {outcomes:?}");
    for (i, outcome) in outcomes.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(
                outcome,
                &Refreshed::Replayed,
                "a loser finds the token used"
            );
        }
    }
    assert!(
        store
            .get_session(session.id)
            .await
            .expect("get")
            .revoked_at
            .is_some(),
        "the session is revoked"
    );
    for (i, next) in nexts.iter().enumerate() {
        assert_eq!(
            rotate(store, next, &secret(), t0 + secs(2)).await,
            Refreshed::Unknown,
            "next token {i} (winner: {}) is not live",
            winners[0]
        );
    }
    assert_eq!(
        rotate(store, &sibling_token, &secret(), t0 + secs(3)).await,
        Refreshed::Unknown,
        "the user's other session ended with it"
    );
    assert!(
        store
            .get_session(sibling.id)
            .await
            .expect("get")
            .revoked_at
            .is_some()
    );
    for (name, s, token) in [("another user's session", &stranger, &stranger_token)] {
        assert_eq!(
            store.get_session(s.id).await.expect("get").revoked_at,
            None,
            "{name}"
        );
        assert!(
            matches!(
                rotate(store, token, &secret(), t0 + secs(3)).await,
                Refreshed::Rotated(_)
            ),
            "{name} still rotates"
        );
    }
}

/// `revoke_user_sessions` ends every session of that user and no other user's.
pub async fn revoking_a_users_sessions_spares_others<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let t0 = now();
    let (a1, a2, b1) = (secret(), secret(), secret());
    let s1 = open_session(store, &w.client_of_a, &a1, t0 + secs(3600)).await;
    let s2 = open_session(store, &w.client_of_a, &a2, t0 + secs(3600)).await;
    let s3 = open_session(store, &w.client_of_b, &b1, t0 + secs(3600)).await;
    store
        .revoke_user_sessions(w.client_of_a.id, t0 + secs(5))
        .await
        .expect("revoke all");
    for s in [&s1, &s2] {
        assert_eq!(
            store.get_session(s.id).await.expect("get").revoked_at,
            Some(t0 + secs(5))
        );
    }
    assert_eq!(
        rotate(store, &a1, &secret(), t0 + secs(6)).await,
        Refreshed::Unknown
    );
    assert_eq!(
        store.get_session(s3.id).await.expect("get").revoked_at,
        None
    );
    assert!(matches!(
        rotate(store, &b1, &secret(), t0 + secs(6)).await,
        Refreshed::Rotated(_)
    ));
}

/// A token acts with the caller's role or a lower one (`Role`'s order runs Admin < Reseller <
/// Client, so the token's role must not sort before the caller's); it is stored as given and
/// found by its hash.
pub async fn api_tokens_respect_the_role_ceiling<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let t0 = now();
    for (name, user) in [
        ("admin", &w.admin),
        ("reseller", &w.reseller_a),
        ("client", &w.client_of_a),
    ] {
        let me = caller(user);
        for role in Role::ALL {
            let hash = secret();
            let result = store
                .create_api_token(
                    &me,
                    new_token(&format!("{name} as {role}"), role, hash.clone()),
                )
                .await;
            if role < user.role {
                assert_denied(result, &format!("a {name} creating a {role} token"));
                assert_eq!(
                    store.api_token_by_hash(&hash).await.expect("lookup"),
                    None,
                    "a refused token is not stored"
                );
                continue;
            }
            let token = result.unwrap_or_else(|e| panic!("a {name} creates a {role} token: {e:?}"));
            assert_eq!(token.tenant_id, w.tenant.id);
            assert_eq!(token.user_id, user.id);
            assert_eq!(token.role, role);
            assert_eq!(token.name.as_str(), format!("{name} as {role}"));
            assert_eq!(
                token.permissions,
                PermissionSet::from_iter([Permission::WebsitesRead, Permission::JobsRead])
            );
            assert_eq!((token.expires_at, token.revoked_at), (None, None));
            assert!(token.is_live(t0 + secs(3600)));
            assert_eq!(
                store.api_token_by_hash(&hash).await.expect("lookup"),
                Some(token)
            );
        }
    }

    let me = caller(&w.client_of_a);
    let hash = secret();
    let expiring = store
        .create_api_token(
            &me,
            NewApiToken {
                expires_at: Some(t0 + secs(86_400)),
                permissions: PermissionSet::new(),
                ..new_token("expiring", Role::Client, hash.clone())
            },
        )
        .await
        .expect("create");
    assert_eq!(expiring.expires_at, Some(t0 + secs(86_400)));
    assert!(expiring.permissions.is_empty());
    assert!(!expiring.is_live(t0 + secs(86_400)));
    assert_eq!(
        store.api_token_by_hash(&hash).await.expect("lookup"),
        Some(expiring)
    );
    assert_exists(
        store
            .create_api_token(&me, new_token("copy", Role::Client, hash))
            .await,
        "a token hash that is already stored",
    );
    assert_eq!(
        store.api_token_by_hash(&secret()).await.expect("lookup"),
        None
    );
}

/// Tokens are listed and revoked within the caller's own (a tenant admin: its tenant's);
/// another tenant's token, or another user's for a non-admin, is `NotFound`.
pub async fn api_tokens_are_scoped_to_owner_and_tenant<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let away = World::create(store).await;
    let t0 = now();
    let mut made: Vec<(ApiToken, SecretHash)> = Vec::new();
    for (name, user) in [
        ("admin", &w.admin),
        ("reseller_a", &w.reseller_a),
        ("client_of_a", &w.client_of_a),
        ("client_of_b", &w.client_of_b),
        ("away_admin", &away.admin),
    ] {
        let hash = secret();
        let token = store
            .create_api_token(
                &caller(user),
                new_token(&format!("{name} token"), user.role, hash.clone()),
            )
            .await
            .expect("create");
        made.push((token, hash));
    }
    let [admin_t, reseller_t, client_a_t, client_b_t, away_t] =
        <[(ApiToken, SecretHash); 5]>::try_from(made).expect("five tokens");

    assert_eq!(
        list_tokens(store, &caller(&w.client_of_a)).await,
        vec![client_a_t.0.id]
    );
    assert_eq!(
        list_tokens(store, &caller(&w.reseller_a)).await,
        vec![reseller_t.0.id],
        "a reseller sees its own tokens, not its clients'"
    );
    assert_eq!(
        list_tokens(store, &caller(&w.admin)).await,
        vec![
            admin_t.0.id,
            reseller_t.0.id,
            client_a_t.0.id,
            client_b_t.0.id
        ],
        "a tenant admin sees every token of its tenant"
    );
    assert_eq!(
        list_tokens(store, &caller(&away.admin)).await,
        vec![away_t.0.id]
    );
    let mut walked = Vec::new();
    let mut request = page(3);
    loop {
        let p = store
            .list_api_tokens(&caller(&w.admin), request)
            .await
            .expect("list");
        walked.extend(p.items.iter().map(|t| t.id));
        match p.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
    }
    assert_eq!(walked.len(), 4, "pages hold every token once: {walked:?}");

    for (who, me, token) in [
        ("another client", caller(&w.client_of_b), &client_a_t.0),
        (
            "the client's reseller",
            caller(&w.reseller_a),
            &client_a_t.0,
        ),
        (
            "a client, the admin's token",
            caller(&w.client_of_a),
            &admin_t.0,
        ),
        ("another tenant's admin", caller(&away.admin), &client_a_t.0),
        (
            "this tenant's admin, another tenant's token",
            caller(&w.admin),
            &away_t.0,
        ),
    ] {
        assert_not_found(store.revoke_api_token(&me, token.id, t0).await, who);
    }
    for (_, hash) in [&admin_t, &client_a_t, &away_t] {
        let stored = store
            .api_token_by_hash(hash)
            .await
            .expect("lookup")
            .expect("stored");
        assert_eq!(stored.revoked_at, None, "a refused revoke changes nothing");
    }

    store
        .revoke_api_token(&caller(&w.client_of_a), client_a_t.0.id, t0 + secs(1))
        .await
        .expect("revoke own");
    let revoked = store
        .api_token_by_hash(&client_a_t.1)
        .await
        .expect("lookup")
        .expect("still stored");
    assert_eq!(revoked.revoked_at, Some(t0 + secs(1)));
    assert!(!revoked.is_live(t0 + secs(2)));
    store
        .revoke_api_token(&caller(&w.admin), client_b_t.0.id, t0 + secs(2))
        .await
        .expect("an admin revokes a token of its tenant");
    assert!(
        store
            .api_token_by_hash(&client_b_t.1)
            .await
            .expect("lookup")
            .expect("stored")
            .revoked_at
            .is_some()
    );
    assert_not_found(
        store
            .revoke_api_token(&caller(&w.admin), ApiTokenId(i64::MAX), t0)
            .await,
        "an unknown token",
    );
}

/// Deleting a user who has a password, a second factor, failures, a session and an API token
/// works, and takes all of them along.
pub async fn deleting_a_user_removes_its_credentials<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let user = &w.client_of_admin;
    let t0 = now();
    store
        .set_password(user.id, &password_hash())
        .await
        .expect("password");
    store
        .set_totp(
            user.id,
            Some(TotpState {
                secret: TotpSecret::generate().expect("secret"),
                confirmed: true,
                last_step: Some(1),
            }),
            vec![secret(), secret()],
        )
        .await
        .expect("totp");
    store
        .record_login_failure(user.id, t0, LockoutPolicy::default())
        .await
        .expect("failure");
    let refresh = secret();
    let session = open_session(store, user, &refresh, t0 + secs(3600)).await;
    let next = secret();
    assert!(matches!(
        rotate(store, &refresh, &next, t0 + secs(1)).await,
        Refreshed::Rotated(_)
    ));
    let token_hash = secret();
    store
        .create_api_token(
            &caller(user),
            new_token("doomed", Role::Client, token_hash.clone()),
        )
        .await
        .expect("token");

    store
        .delete_user(&caller(&w.admin), user.id)
        .await
        .expect("delete a user with credentials");
    assert_not_found(store.login_by_user(user.id).await, "deleted user's record");
    assert_eq!(
        store.login_by_email(&user.email).await.expect("lookup"),
        None
    );
    match store.get_session(session.id).await {
        Err(Error::NotFound { .. }) => {}
        Ok(s) => assert!(!s.is_live(t0 + secs(2)), "a deleted user's session is dead"),
        Err(e) => panic!("a deleted user's session: {e:?}"),
    }
    assert_eq!(
        rotate(store, &next, &secret(), t0 + secs(2)).await,
        Refreshed::Unknown
    );
    assert_eq!(
        store.api_token_by_hash(&token_hash).await.expect("lookup"),
        None,
        "a deleted user's token is gone"
    );
}

async fn generation<S: AuthStore>(store: &S, user: UserId) -> i64 {
    store
        .user_standing(user)
        .await
        .expect("standing")
        .expect("the user exists")
        .generation
}

async fn token_live<S: AuthStore>(store: &S, hash: &SecretHash, at: DateTime<Utc>) -> bool {
    store
        .api_token_by_hash(hash)
        .await
        .expect("token by hash")
        .expect("the token exists")
        .is_live(at)
}

/// The standing a request is checked against follows the user, its tenant and its second
/// factor; a password change, `end_user_credentials` and `end_tenant_credentials` move the
/// generation and revoke sessions in one go (a password change also the API tokens, unless
/// kept), and nothing of anyone else's.
pub async fn ending_credentials_moves_the_generation<S: PanelStore + AuthStore>(store: &S) {
    let w = World::create(store).await;
    let other = World::create(store).await;
    let op = Operator::assume();
    let user = &w.client_of_a;
    let t0 = now();

    let standing = store
        .user_standing(user.id)
        .await
        .expect("standing")
        .expect("exists");
    assert_eq!(
        (standing.user, standing.tenant, standing.role),
        (user.id, w.tenant.id, Role::Client)
    );
    assert!(standing.is_active() && !standing.must_enrol());
    assert_eq!(store.user_standing(NO_USER).await.expect("standing"), None);
    assert_eq!(
        store
            .session_standing(SessionId(i64::MAX))
            .await
            .expect("standing"),
        None
    );
    let g0 = standing.generation;

    // The second-factor flags follow the tenant's rule and the user's enrolment.
    store
        .set_tenant_requires_2fa(&op, w.tenant.id, true)
        .await
        .expect("require 2fa");
    let standing = store
        .user_standing(user.id)
        .await
        .expect("standing")
        .expect("exists");
    assert!(standing.requires_2fa && !standing.second_factor && standing.must_enrol());
    let secret_key = TotpSecret::generate().expect("random");
    store
        .set_totp(
            user.id,
            Some(TotpState {
                secret: secret_key,
                confirmed: false,
                last_step: None,
            }),
            Vec::new(),
        )
        .await
        .expect("set totp");
    store.confirm_totp(user.id).await.expect("confirm");
    let standing = store
        .user_standing(user.id)
        .await
        .expect("standing")
        .expect("exists");
    assert!(standing.second_factor && !standing.must_enrol());
    assert_eq!(standing.generation, g0, "enrolling ends nothing");

    // A password change: generation, sessions and API tokens, in one go.
    let (r1, r2) = (secret(), secret());
    let s1 = open_session(store, user, &r1, t0 + secs(3600)).await;
    let s2 = open_session(store, user, &r2, t0 + secs(3600)).await;
    let neighbour_refresh = secret();
    let neighbour = open_session(store, &w.client_of_b, &neighbour_refresh, t0 + secs(3600)).await;
    let me = caller(user);
    let t1 = secret();
    store
        .create_api_token(&me, new_token("first", Role::Client, t1.clone()))
        .await
        .expect("token");
    let state = store
        .session_standing(s1.id)
        .await
        .expect("standing")
        .expect("exists");
    assert_eq!(state.session.id, s1.id);
    assert_eq!(state.session.revoked_at, None);
    assert_eq!(state.user.generation, g0);
    let new_hash = password_hash();
    store
        .change_password(user.id, &new_hash, t0 + secs(1), false)
        .await
        .expect("change password");
    assert_eq!(record(store, user).await.password, Some(new_hash.clone()));
    assert_eq!(generation(store, user.id).await, g0 + 1);
    for s in [&s1, &s2] {
        let state = store
            .session_standing(s.id)
            .await
            .expect("standing")
            .expect("exists");
        assert!(state.session.revoked_at.is_some(), "a session ends");
        assert_eq!(state.user.generation, g0 + 1);
    }
    assert!(
        !token_live(store, &t1, t0 + secs(2)).await,
        "API tokens end"
    );
    assert_eq!(
        store
            .get_session(neighbour.id)
            .await
            .expect("get")
            .revoked_at,
        None,
        "another user's session stays"
    );

    // Keeping API tokens keeps them, and still ends sessions.
    let t2 = secret();
    store
        .create_api_token(&me, new_token("kept", Role::Client, t2.clone()))
        .await
        .expect("token");
    let r3 = secret();
    let s3 = open_session(store, user, &r3, t0 + secs(3600)).await;
    store
        .change_password(user.id, &new_hash, t0 + secs(3), true)
        .await
        .expect("change password, keeping tokens");
    assert!(token_live(store, &t2, t0 + secs(4)).await, "kept");
    assert!(
        store
            .get_session(s3.id)
            .await
            .expect("get")
            .revoked_at
            .is_some()
    );
    assert_eq!(generation(store, user.id).await, g0 + 2);

    // Ending a user's credentials leaves its API tokens to the per-use checks.
    store
        .end_user_credentials(user.id, t0 + secs(5))
        .await
        .expect("end");
    assert_eq!(generation(store, user.id).await, g0 + 3);
    assert!(token_live(store, &t2, t0 + secs(6)).await);
    assert_not_found(
        store.end_user_credentials(NO_USER, t0).await,
        "ending an unknown user's credentials",
    );

    // A tenant's: every user of it, nobody else.
    let admin_before = generation(store, w.admin.id).await;
    let stranger_before = generation(store, other.admin.id).await;
    let r4 = secret();
    let s4 = open_session(store, &w.admin, &r4, t0 + secs(3600)).await;
    store
        .end_tenant_credentials(&op, w.tenant.id, t0 + secs(7))
        .await
        .expect("end tenant");
    assert_eq!(generation(store, w.admin.id).await, admin_before + 1);
    assert_eq!(generation(store, user.id).await, g0 + 4);
    assert_eq!(generation(store, other.admin.id).await, stranger_before);
    assert!(
        store
            .get_session(s4.id)
            .await
            .expect("get")
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get_session(neighbour.id)
            .await
            .expect("get")
            .revoked_at
            .is_some(),
        "every user of the tenant"
    );
    assert_not_found(
        store
            .end_tenant_credentials(&op, TenantId(i64::MAX), t0)
            .await,
        "ending an unknown tenant's credentials",
    );

    // Status and role are read fresh.
    store
        .update_tenant(
            &op,
            w.tenant.id,
            TenantChanges {
                status: Some(TenantStatus::Suspended),
                ..TenantChanges::default()
            },
        )
        .await
        .expect("suspend tenant");
    let standing = store
        .user_standing(user.id)
        .await
        .expect("standing")
        .expect("exists");
    assert_eq!(standing.tenant_status, TenantStatus::Suspended);
    assert!(!standing.is_active());

    // A deleted user's sessions are gone with it.
    let r5 = secret();
    let s5 = open_session(store, &other.client_of_a, &r5, t0 + secs(3600)).await;
    store
        .delete_user(&caller(&other.admin), other.client_of_a.id)
        .await
        .expect("delete");
    assert_eq!(store.session_standing(s5.id).await.expect("standing"), None);
    assert_eq!(
        store
            .user_standing(other.client_of_a.id)
            .await
            .expect("standing"),
        None
    );
}
