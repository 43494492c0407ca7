//! A tenant's plan, enforced: its quotas before anything is created, its database names under
//! its own prefix, and its database logins' limits and locks kept in step with the tenant and
//! its sites.

use super::Panel;
use crate::database::DatabaseLimits;
use crate::error::{Error, Result};
use crate::model::{
    DatabaseSettings, Role, Tenant, TenantId, TenantStatus, Website, WebsiteStatus,
};
use crate::page::{Page, PageLimit, PageRequest};
use crate::rbac::Caller;
use crate::types::DbName;

/// Longest customer database name: it is the login's name too, and MySQL logins stop at 32.
const MAX_PREFIXED_NAME: usize = 32;
/// Letters of the slug a prefix keeps.
const PREFIX_LETTERS: usize = 8;

/// The start of every database name of `tenant`: up to 8 letters of its slug, its id and `_`
/// (`acme7_`). The id makes it unique (letters never run into the digits), so one tenant cannot
/// take, or learn of, a name another tenant may want.
pub(crate) fn database_prefix(tenant: &Tenant) -> String {
    let letters: String = tenant
        .slug
        .as_str()
        .chars()
        .filter(char::is_ascii_lowercase)
        .take(PREFIX_LETTERS)
        .collect();
    let letters = if letters.is_empty() {
        "t".to_owned()
    } else {
        letters
    };
    format!("{letters}{}_", tenant.id)
}

/// `settings` with its name under the tenant's prefix (a name already carrying it is kept).
pub(crate) fn prefixed(tenant: &Tenant, settings: &DatabaseSettings) -> Result<DatabaseSettings> {
    let prefix = database_prefix(tenant);
    let asked = settings.name.as_str();
    let name = if asked.starts_with(&prefix) {
        asked.to_owned()
    } else {
        format!("{prefix}{asked}")
    };
    if name.len() > MAX_PREFIXED_NAME {
        return Err(Error::Invalid {
            field: "settings.database.name".into(),
            reason: format!(
                "with the tenant's prefix {prefix} it must be at most {MAX_PREFIXED_NAME} \
                 characters (it names the login too)"
            )
            .into(),
        });
    }
    let name: DbName = name
        .parse()
        .map_err(|e: crate::error::InvalidValue| e.in_field("settings.database.name"))?;
    Ok(DatabaseSettings {
        name,
        ..settings.clone()
    })
}

fn exceeded(quota: &'static str, limit: u64, used: u64) -> Error {
    Error::QuotaExceeded { quota, limit, used }
}

impl Panel {
    /// Every website of `tenant`, whoever in it manages them.
    pub(super) async fn tenant_sites(
        &self,
        tenant: TenantId,
        user: Caller,
    ) -> Result<Vec<Website>> {
        let admin = Caller {
            tenant,
            user: user.user,
            role: Role::Admin,
        };
        let mut sites = Vec::new();
        let mut page = PageRequest::first(PageLimit::try_from(PageLimit::MAX)?);
        loop {
            let Page { items, next_after } = self.store.list_websites(&admin, page).await?;
            sites.extend(items);
            match next_after {
                Some(after) => page.after = Some(after),
                None => return Ok(sites),
            }
        }
    }

    /// Refuses a new website (with a database when `with_database`) that would take `tenant`
    /// past a quota. `sites` are the tenant's websites now.
    pub(super) async fn check_quotas(
        &self,
        tenant: &Tenant,
        sites: &[Website],
        with_database: bool,
    ) -> Result<()> {
        let quotas = &tenant.quotas;
        if let Some(max) = quotas.max_websites {
            let used = sites.len() as u64;
            if used >= u64::from(max) {
                return Err(exceeded("quotas.max_websites", max.into(), used));
            }
        }
        if with_database && let Some(max) = quotas.max_databases {
            let used = sites
                .iter()
                .filter(|s| s.settings.database.is_some())
                .count() as u64;
            if used >= u64::from(max) {
                return Err(exceeded("quotas.max_databases", max.into(), used));
            }
        }
        if let Some(max) = quotas.max_storage_mb {
            let used = self.storage_used_mb(sites).await?;
            if used >= max {
                return Err(exceeded("quotas.max_storage_mb", max, used));
            }
        }
        Ok(())
    }

    /// The disk space `sites` take, files and databases, in MiB rounded up.
    async fn storage_used_mb(&self, sites: &[Website]) -> Result<u64> {
        let mut bytes = 0u64;
        for site in sites {
            let entry = self.node(site.node_id)?;
            bytes = bytes.saturating_add(entry.backends.files.disk_usage(site).await?);
            if let Some(settings) = &site.settings.database
                && let Some(server) = entry.backends.database(settings.engine)
            {
                match server.backend.database_size(&settings.name).await {
                    Ok(size) => bytes = bytes.saturating_add(size),
                    // A customer may drop its own database.
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(bytes.div_ceil(1024 * 1024))
    }

    /// Gives every database login of `sites` `limits`. When one fails, those already changed
    /// get `previous` back and the error is returned.
    pub(super) async fn set_login_limits(
        &self,
        sites: &[Website],
        limits: &DatabaseLimits,
        previous: &DatabaseLimits,
    ) -> Result<()> {
        let mut done = Vec::new();
        for site in sites.iter().filter(|s| s.settings.database.is_some()) {
            match self.login_step(site, LoginStep::Limits(limits)).await {
                Ok(()) => done.push(site),
                Err(e) => {
                    for site in done {
                        if let Err(again) = self.login_step(site, LoginStep::Limits(previous)).await
                        {
                            tracing::error!(website = site.id.0, error = %again, "restoring database login limits failed");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Locks (or unlocks) the database logins of `sites`; when one fails, the ones already
    /// changed go back and the error is returned.
    pub(super) async fn lock_logins(&self, sites: &[&Website], locked: bool) -> Result<()> {
        let step = |lock: bool| {
            if lock {
                LoginStep::Lock
            } else {
                LoginStep::Unlock
            }
        };
        let mut done = Vec::new();
        for site in sites.iter().filter(|s| s.settings.database.is_some()) {
            match self.login_step(site, step(locked)).await {
                Ok(()) => done.push(*site),
                Err(e) => {
                    for site in done {
                        if let Err(again) = self.login_step(site, step(!locked)).await {
                            tracing::error!(website = site.id.0, error = %again, "restoring a database login's lock failed");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Runs `step` on the database login of `site` (which has a database). A login the
    /// customer's own actions removed is no longer there to change.
    pub(super) async fn login_step(&self, site: &Website, step: LoginStep<'_>) -> Result<()> {
        let Some(settings) = &site.settings.database else {
            return Ok(());
        };
        let entry = self.node(site.node_id)?;
        let server = entry.backends.database(settings.engine).ok_or_else(|| {
            Error::Conflict(format!("the node offers no {} server", settings.engine))
        })?;
        let user = settings.login()?;
        let db = &server.backend;
        let outcome = match step {
            LoginStep::Lock => db.lock_user(&user).await,
            LoginStep::Unlock => db.unlock_user(&user).await,
            LoginStep::Limits(limits) => db.set_limits(&user, limits).await,
        };
        match outcome {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Moves `tenant`'s database logins to its changed status and limits, then records the
    /// change; when the store refuses, the logins go back.
    pub(super) async fn tenant_logins_follow(
        &self,
        caller: Caller,
        current: &Tenant,
        status: Option<TenantStatus>,
        limits: Option<&DatabaseLimits>,
        record: impl Future<Output = Result<Tenant>> + Send,
    ) -> Result<Tenant> {
        let sites = self.tenant_sites(current.id, caller).await?;
        let old_limits = current.quotas.database_limits;
        let new_limits = limits.filter(|l| **l != old_limits);
        if let Some(limits) = new_limits {
            self.set_login_limits(&sites, limits, &old_limits).await?;
        }
        // Suspending locks every login; resuming unlocks those of sites not suspended on
        // their own.
        let relock = match status.filter(|s| *s != current.status) {
            Some(TenantStatus::Suspended) => {
                let all: Vec<&Website> = sites.iter().collect();
                self.lock_logins(&all, true)
                    .await
                    .map(|()| Some((all, false)))
            }
            Some(TenantStatus::Active) => {
                let serving: Vec<&Website> = sites
                    .iter()
                    .filter(|s| s.status != WebsiteStatus::Suspended)
                    .collect();
                self.lock_logins(&serving, false)
                    .await
                    .map(|()| Some((serving, true)))
            }
            None => Ok(None),
        };
        let relock = match relock {
            Ok(relock) => relock,
            Err(e) => {
                if new_limits.is_some() {
                    self.restore_limits(&sites, &old_limits).await;
                }
                return Err(e);
            }
        };
        match record.await {
            Ok(tenant) => Ok(tenant),
            Err(e) => {
                if let Some((sites, locked)) = relock
                    && let Err(again) = self.lock_logins(&sites, locked).await
                {
                    tracing::error!(tenant = current.id.0, error = %again, "restoring database login locks failed");
                }
                if new_limits.is_some() {
                    self.restore_limits(&sites, &old_limits).await;
                }
                Err(e)
            }
        }
    }

    async fn restore_limits(&self, sites: &[Website], limits: &DatabaseLimits) {
        for site in sites {
            if let Err(e) = self.login_step(site, LoginStep::Limits(limits)).await {
                tracing::error!(website = site.id.0, error = %e, "restoring database login limits failed");
            }
        }
    }
}

/// One change to a site's database login.
#[derive(Debug, Clone, Copy)]
pub(super) enum LoginStep<'a> {
    /// Refuse it and end its sessions.
    Lock,
    /// Let it in again.
    Unlock,
    /// Give it these limits.
    Limits(&'a DatabaseLimits),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quotas;

    fn tenant(id: i64, slug: &str) -> Tenant {
        Tenant {
            id: TenantId(id),
            name: "T".parse().expect("name"),
            slug: slug.parse().expect("slug"),
            status: TenantStatus::Active,
            quotas: Quotas::default(),
            created_at: chrono::Utc::now(),
        }
    }

    fn settings(name: &str) -> DatabaseSettings {
        DatabaseSettings {
            engine: crate::types::DbEngine::Postgres,
            name: name.parse().expect("db name"),
            charset: "UTF8".parse().expect("charset"),
            collation: "C".parse().expect("collation"),
        }
    }

    #[test]
    fn prefixes_are_letters_of_the_slug_and_the_id() {
        assert_eq!(database_prefix(&tenant(7, "acme")), "acme7_");
        assert_eq!(
            database_prefix(&tenant(12, "acme-corporation")),
            "acmecorp12_"
        );
        assert_eq!(database_prefix(&tenant(3, "a1b2")), "ab3_");
        assert_eq!(database_prefix(&tenant(5, "123")), "t5_");
    }

    #[test]
    fn names_get_the_prefix_once() {
        let t = tenant(7, "acme");
        assert_eq!(
            prefixed(&t, &settings("shop")).expect("ok").name.as_str(),
            "acme7_shop"
        );
        assert_eq!(
            prefixed(&t, &settings("acme7_shop"))
                .expect("ok")
                .name
                .as_str(),
            "acme7_shop"
        );
        // Another tenant's prefix is just part of this tenant's name.
        assert_eq!(
            prefixed(&t, &settings("beta9_shop"))
                .expect("ok")
                .name
                .as_str(),
            "acme7_beta9_shop"
        );
    }

    #[test]
    fn too_long_names_are_refused_naming_the_field() {
        let t = tenant(7, "acme");
        match prefixed(&t, &settings(&"a".repeat(30))) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "settings.database.name"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prefixes_of_different_tenants_never_nest() {
        // `acme7_` and `acme71_` differ where the id ends, so no name of one starts with the
        // other's prefix.
        let (a, b) = (
            database_prefix(&tenant(7, "acme")),
            database_prefix(&tenant(71, "acme")),
        );
        assert!(!a.starts_with(&b) && !b.starts_with(&a));
    }
}
