//! What the operator does on the panel's own machine, outside the API: the first admin at the
//! first start, another operator admin, and a password reset for an operator who is locked
//! out (HestiaCP's `v-change-user-password`). The caller proves operator authority by holding
//! an [`Operator`], which only the embedding program creates.

use super::{CreatedUser, Panel};
use crate::error::{Error, Result};
use crate::model::{AuditOutcome, NewAuditEntry, NewUser, Role, User, UserId};
use crate::page::{PageLimit, PageRequest};
use crate::rbac::{Caller, Operator};
use crate::types::{EmailAddress, Password};

/// A password set by [`Panel::reset_password_on_machine`].
#[derive(Debug, Clone)]
pub struct PasswordReset {
    /// The user whose password changed.
    pub user: User,
    /// The generated password (shown once); `None` when the operator chose it.
    pub generated_password: Option<Password>,
}

impl Panel {
    /// An admin of the operator tenant, on the operator's authority, acting on that tenant.
    fn operator_admin_scope(&self) -> Caller {
        // A tenant admin sees and manages every user of its tenant; the id is not consulted.
        Caller {
            tenant: self.operator_tenant,
            user: UserId(0),
            role: Role::Admin,
        }
    }

    /// Whether an admin of the operator tenant can log in (has a password).
    async fn operator_admin_exists(&self) -> Result<bool> {
        let scope = self.operator_admin_scope();
        let mut page = PageRequest::first(PageLimit::try_from(PageLimit::MAX)?);
        loop {
            let users = self.store.list_users(&scope, page).await?;
            for user in users.items.iter().filter(|u| u.role == Role::Admin) {
                if self.auth.login_by_user(user.id).await?.password.is_some() {
                    return Ok(true);
                }
            }
            match users.next_after {
                Some(after) => page.after = Some(after),
                None => return Ok(false),
            }
        }
    }

    /// The first start's admin: creates the operator tenant's admin `email` with `password` (or
    /// a generated one, returned to be shown once) unless an admin who can log in exists, in
    /// which case it returns `None`. An admin left without a password by an interrupted first
    /// start gets one now, so the first start is complete only once somebody can log in.
    pub async fn ensure_operator_admin(
        &self,
        op: &Operator,
        email: &EmailAddress,
        password: Option<Password>,
    ) -> Result<Option<CreatedUser>> {
        if self.operator_admin_exists().await? {
            return Ok(None);
        }
        let (hash, generated) = self.first_password(password).await?;
        let half_made = self.auth.login_by_email(email).await?.filter(|r| {
            r.user.tenant_id == self.operator_tenant
                && r.user.role == Role::Admin
                && r.password.is_none()
        });
        let result = match half_made {
            Some(record) => self
                .auth
                .set_password(record.user.id, &hash)
                .await
                .map(|()| CreatedUser {
                    user: record.user,
                    generated_password: generated,
                }),
            None => self.new_operator_admin(op, email, &hash, generated).await,
        };
        let target = format!("user:{email}");
        self.audited_on_machine(
            "panel.first_admin",
            target,
            "created at first start",
            result,
        )
        .await
        .map(Some)
    }

    /// A new admin of the operator tenant with the password `hash`; removed again when the
    /// password cannot be stored.
    async fn new_operator_admin(
        &self,
        op: &Operator,
        email: &EmailAddress,
        hash: &crate::auth::PasswordHash,
        generated: Option<Password>,
    ) -> Result<CreatedUser> {
        let new = NewUser {
            role: Role::Admin,
            email: email.clone(),
        };
        let user = self
            .store
            .create_user_as_operator(op, self.operator_tenant, new)
            .await?;
        self.finish_user(&self.operator_admin_scope(), user, hash, generated)
            .await
    }

    /// Creates another admin of the operator tenant, with `password` or a generated one that
    /// is returned once.
    pub async fn create_operator_admin(
        &self,
        op: &Operator,
        email: &EmailAddress,
        password: Option<Password>,
    ) -> Result<CreatedUser> {
        let result = async {
            let (hash, generated) = self.first_password(password).await?;
            self.new_operator_admin(op, email, &hash, generated).await
        }
        .await;
        self.audited_on_machine(
            "operator.admin_create",
            format!("user:{email}"),
            "created on the panel's machine",
            result,
        )
        .await
    }

    /// The operator tenant's only admin; with several, the caller must name one.
    async fn sole_operator_admin(&self) -> Result<User> {
        let scope = self.operator_admin_scope();
        let mut admins = Vec::new();
        let mut page = PageRequest::first(PageLimit::try_from(PageLimit::MAX)?);
        loop {
            let users = self.store.list_users(&scope, page).await?;
            admins.extend(users.items.into_iter().filter(|u| u.role == Role::Admin));
            match users.next_after {
                Some(after) => page.after = Some(after),
                None => break,
            }
        }
        match <[User; 1]>::try_from(admins) {
            Ok([admin]) => Ok(admin),
            Err(admins) if admins.is_empty() => Err(Error::not_found("operator admin")),
            Err(admins) => Err(Error::Invalid {
                field: "email".into(),
                reason: format!(
                    "the operator has {} admins; name the one to reset",
                    admins.len()
                )
                .into(),
            }),
        }
    }

    /// Sets the password of the user `email` (of any tenant; by default the operator tenant's
    /// only admin) to `password` or a generated one returned once, lifts a lockout, and ends
    /// every session, access token and API token of the user: the way back in for an operator
    /// who lost the password.
    pub async fn reset_password_on_machine(
        &self,
        _op: &Operator,
        email: Option<&EmailAddress>,
        password: Option<Password>,
    ) -> Result<PasswordReset> {
        let target =
            email.map_or_else(|| "user:operator-admin".to_owned(), |e| format!("user:{e}"));
        let result = async {
            let email = match email {
                Some(email) => email.clone(),
                None => self.sole_operator_admin().await?.email,
            };
            let record = self
                .auth
                .login_by_email(&email)
                .await?
                .ok_or_else(|| Error::not_found("user"))?;
            let (hash, generated) = self.first_password(password).await?;
            let id = record.user.id;
            // Sessions, access tokens and API tokens end with the old password: whoever made
            // the operator reset it may hold them.
            self.auth
                .change_password(id, &hash, self.clock.now(), false)
                .await?;
            self.auth.record_login_success(id).await?;
            Ok(PasswordReset {
                user: record.user,
                generated_password: generated,
            })
        }
        .await;
        self.audited_on_machine(
            "user.reset_password",
            target,
            "reset on the panel's machine; sessions ended, lockout lifted",
            result,
        )
        .await
    }

    /// Writes the audit entry of an operator action taken on the machine, then returns
    /// `result`. Unlike [`Panel::audited`], an entry that cannot be written is logged, not
    /// returned: these calls hand out a password that exists only in their result, and
    /// failing them after the change would lock the operator out.
    async fn audited_on_machine<T>(
        &self,
        action: &str,
        target: String,
        detail: &str,
        result: Result<T>,
    ) -> Result<T> {
        let (outcome, detail) = match &result {
            Ok(_) => (AuditOutcome::Success, detail.to_owned()),
            Err(e) => (AuditOutcome::Failed, e.to_string()),
        };
        if let Err(e) = self
            .store
            .append_audit(NewAuditEntry::by_operator(action, target, outcome).with_detail(detail))
            .await
        {
            tracing::error!(action, error = %e, "the audit entry of a machine command was not written");
        }
        result
    }
}
