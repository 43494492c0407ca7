//! The panel's records: tenants, users, websites with their settings, nodes, alert rules and the
//! audit log. `New*` structs are what a caller supplies; the full structs are what a store
//! returns, with ids and timestamps it assigned.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::database::DatabaseLimits;
use crate::error::InvalidValue;
use crate::types::{
    Charset, Collation, ConfinedPath, DbEngine, DbName, DbUserName, DirectiveArg, DirectiveName,
    DisplayName, DomainName, EmailAddress, IpNetwork, NodeAddress, NodeName, PhpBytes,
    PhpExtension, PhpVersion, Slug, SystemUser, WebServerKind, WebhookUrl, named_enum,
};

macro_rules! id_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $ty(pub i64);

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// Identifies a tenant.
    TenantId
);
id_type!(
    /// Identifies a user.
    UserId
);
id_type!(
    /// Identifies a website. Pool and socket names derive from it, never from the domain.
    WebsiteId
);
id_type!(
    /// Identifies a node.
    NodeId
);
id_type!(
    /// Identifies an alert rule.
    AlertRuleId
);
id_type!(
    /// Identifies an audit entry.
    AuditId
);
id_type!(
    /// Identifies a login session (one refresh-token chain).
    SessionId
);
id_type!(
    /// Identifies an API token.
    ApiTokenId
);
id_type!(
    /// Identifies a background job.
    JobId
);
id_type!(
    /// Identifies a Unix account the panel keeps on a node.
    NodeAccountId
);
id_type!(
    /// Identifies a website change in flight (a row of the saga journal).
    OperationId
);

// ---------------------------------------------------------------------------------------------
// Tenants

/// Whether a tenant's users may act and its sites are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Users cannot log in; sites are suspended.
    Suspended,
}
named_enum!(TenantStatus, "status", "must be one of active, suspended", {
    Active => "active", Suspended => "suspended",
});

/// Resource limits for a tenant; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Most websites the tenant may have.
    pub max_websites: Option<u32>,
    /// Most customer databases the tenant may have.
    pub max_databases: Option<u32>,
    /// Most disk space, in MiB: the sites' files and their databases together.
    pub max_storage_mb: Option<u64>,
    /// Limits on each of the tenant's database logins (defaults when not given).
    #[serde(default)]
    pub database_limits: DatabaseLimits,
}

/// A customer organisation; every tenant-owned row carries its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Assigned by the store.
    pub id: TenantId,
    /// Human-readable name.
    pub name: DisplayName,
    /// Unique short name.
    pub slug: Slug,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Resource limits.
    pub quotas: Quotas,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
}

/// What is needed to create a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Human-readable name.
    pub name: DisplayName,
    /// Unique short name.
    pub slug: Slug,
    /// Resource limits.
    #[serde(default)]
    pub quotas: Quotas,
}

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantChanges {
    /// New name.
    pub name: Option<DisplayName>,
    /// New status.
    pub status: Option<TenantStatus>,
    /// New quotas.
    pub quotas: Option<Quotas>,
}

// ---------------------------------------------------------------------------------------------
// Users

/// What a user may do inside its tenant (see [`crate::rbac`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Manages everything in the tenant.
    Admin,
    /// Manages the clients it created and their sites.
    Reseller,
    /// Manages its own sites.
    Client,
}
named_enum!(Role, "role", "must be one of admin, reseller, client", {
    Admin => "admin", Reseller => "reseller", Client => "client",
});

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Reseller, Role::Client];
}

/// Whether a user may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserStatus {
    /// May log in.
    Active,
    /// May not log in.
    Suspended,
}
named_enum!(UserStatus, "status", "must be one of active, suspended", {
    Active => "active", Suspended => "suspended",
});

/// A person or API client acting inside one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Assigned by the store.
    pub id: UserId,
    /// The tenant the user belongs to; it never changes.
    pub tenant_id: TenantId,
    /// What the user may do.
    pub role: Role,
    /// Unique across the panel; the login name.
    pub email: EmailAddress,
    /// Active or suspended.
    pub status: UserStatus,
    /// The user that created this one (a reseller's clients point at the reseller).
    pub created_by: Option<UserId>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

/// What is needed to create a user. The tenant and creator come from the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// What the new user may do.
    pub role: Role,
    /// Login name, unique across the panel.
    pub email: EmailAddress,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    /// New role.
    pub role: Option<Role>,
    /// New e-mail.
    pub email: Option<EmailAddress>,
    /// New status.
    pub status: Option<UserStatus>,
}

// ---------------------------------------------------------------------------------------------
// Websites

/// Where a website is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebsiteStatus {
    /// Recorded, not yet deployed.
    Provisioning,
    /// Deployed and served.
    Active,
    /// Deployed but answering with a suspension page.
    Suspended,
    /// The last deployment failed; the previous config is still live.
    Failed,
}
named_enum!(WebsiteStatus, "status", "must be one of provisioning, active, suspended, failed", {
    Provisioning => "provisioning", Active => "active", Suspended => "suspended", Failed => "failed",
});

/// PHP settings applied to the site's FPM pool as `php_admin_value`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PhpSettingsInput")]
pub struct PhpSettings {
    memory_limit: PhpBytes,
    max_execution_time: u32,
    upload_max_filesize: PhpBytes,
    post_max_size: PhpBytes,
    extensions: BTreeSet<PhpExtension>,
}

/// Unchecked shape of [`PhpSettings`], validated by `TryFrom`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhpSettingsInput {
    memory_limit: PhpBytes,
    max_execution_time: u32,
    upload_max_filesize: PhpBytes,
    post_max_size: PhpBytes,
    #[serde(default)]
    extensions: BTreeSet<PhpExtension>,
}

impl TryFrom<PhpSettingsInput> for PhpSettings {
    type Error = InvalidValue;
    fn try_from(i: PhpSettingsInput) -> Result<Self, Self::Error> {
        PhpSettings::new(
            i.memory_limit,
            i.max_execution_time,
            i.upload_max_filesize,
            i.post_max_size,
            i.extensions,
        )
    }
}

impl PhpSettings {
    /// Checked constructor: `max_execution_time` is 1..=86400 seconds and `post_max_size` is at
    /// least `upload_max_filesize` (otherwise PHP silently drops uploads).
    pub fn new(
        memory_limit: PhpBytes,
        max_execution_time: u32,
        upload_max_filesize: PhpBytes,
        post_max_size: PhpBytes,
        extensions: BTreeSet<PhpExtension>,
    ) -> Result<Self, InvalidValue> {
        if !(1..=86_400).contains(&max_execution_time) {
            return Err(InvalidValue::new(
                "max_execution_time",
                "must be 1 to 86400 seconds",
            ));
        }
        if post_max_size < upload_max_filesize {
            return Err(InvalidValue::new(
                "post_max_size",
                "must be at least upload_max_filesize",
            ));
        }
        Ok(Self {
            memory_limit,
            max_execution_time,
            upload_max_filesize,
            post_max_size,
            extensions,
        })
    }

    /// `memory_limit`.
    pub fn memory_limit(&self) -> PhpBytes {
        self.memory_limit
    }
    /// `max_execution_time`, in seconds.
    pub fn max_execution_time(&self) -> u32 {
        self.max_execution_time
    }
    /// `upload_max_filesize`.
    pub fn upload_max_filesize(&self) -> PhpBytes {
        self.upload_max_filesize
    }
    /// `post_max_size`.
    pub fn post_max_size(&self) -> PhpBytes {
        self.post_max_size
    }
    /// Extensions the site needs loaded.
    pub fn extensions(&self) -> &BTreeSet<PhpExtension> {
        &self.extensions
    }
}

impl Default for PhpSettings {
    /// PHP's own defaults, raised to what a typical CMS needs.
    fn default() -> Self {
        let mib = |n: u16| PhpBytes::from_mib(std::num::NonZeroU16::MIN.saturating_add(n - 1));
        Self {
            memory_limit: mib(256),
            max_execution_time: 60,
            upload_max_filesize: mib(64),
            post_max_size: mib(64),
            extensions: BTreeSet::new(),
        }
    }
}

/// The customer database attached to a website.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Which engine hosts it.
    pub engine: DbEngine,
    /// Its name.
    pub name: DbName,
    /// Character set, e.g. `utf8mb4` or `UTF8`.
    pub charset: Charset,
    /// Collation, e.g. `utf8mb4_unicode_ci` or `C`.
    pub collation: Collation,
}

impl DatabaseSettings {
    /// The database's login: its own name, cut to a login's 32 characters, without a trailing
    /// `_`. Derived, never stored, so a listing names it without a secret.
    pub fn login(&self) -> Result<DbUserName, InvalidValue> {
        let cut: String = self.name.as_str().chars().take(32).collect();
        cut.trim_end_matches('_').parse()
    }

    /// A database `name` on `engine` with the engine's usual character set and collation
    /// ([`Charset::default_for`], [`Collation::default_for`]).
    pub fn for_engine(engine: DbEngine, name: DbName) -> Self {
        Self {
            engine,
            name,
            charset: Charset::default_for(engine),
            collation: Collation::default_for(engine),
        }
    }
}

/// Who issues the site's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslProvider {
    /// ACME (Let's Encrypt or another ACME CA).
    LetsEncrypt,
    /// A certificate the customer uploaded.
    Custom,
    /// A self-signed certificate (staging, internal sites).
    SelfSigned,
}
named_enum!(SslProvider, "ssl_provider", "must be one of letsencrypt, custom, selfsigned", {
    LetsEncrypt => "letsencrypt", Custom => "custom", SelfSigned => "selfsigned",
});

/// HTTPS for a site: off, or on with a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Ssl {
    /// HTTP only.
    #[default]
    Disabled,
    /// HTTPS with a certificate from `provider`.
    Enabled {
        /// Who issues the certificate.
        provider: SslProvider,
        /// Renew before expiry without asking.
        auto_renew: bool,
    },
}

/// Whether the `www.` name and the bare name redirect to one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WwwRedirect {
    /// Both names serve the site (when both are listed).
    #[default]
    None,
    /// `example.com` redirects to `www.example.com`.
    ToWww,
    /// `www.example.com` redirects to `example.com`.
    ToApex,
}
named_enum!(WwwRedirect, "www_redirect", "must be one of none, to_www, to_apex", {
    None => "none", ToWww => "to_www", ToApex => "to_apex",
});

impl WwwRedirect {
    /// The `(redirected, canonical)` pairs this mode asks for among a site's `names`: a name
    /// redirects only when its counterpart is one of the site's own names. Every renderer
    /// (the SDK's and a plugin's) takes its redirects from here.
    pub fn pairs<'a>(self, names: &[&'a DomainName]) -> Vec<(&'a DomainName, &'a DomainName)> {
        let find = |wanted: &str| names.iter().copied().find(|n| n.as_str() == wanted);
        names
            .iter()
            .filter_map(|&name| {
                let counterpart = match (self, name.as_str().strip_prefix("www.")) {
                    (WwwRedirect::ToWww, None) => find(&format!("www.{name}")),
                    (WwwRedirect::ToApex, Some(bare)) => find(bare),
                    _ => None,
                };
                counterpart.map(|to| (name, to))
            })
            .collect()
    }
}

/// An operator-supplied directive added inside the site's server block: the escape hatch for
/// what the typed settings do not cover. Interpreted by the site's current web server, and
/// validated by that server's own config test before it goes live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerDirective {
    /// The directive, e.g. `client_max_body_size`.
    pub name: DirectiveName,
    /// Its arguments, e.g. `["64m"]`.
    pub args: Vec<DirectiveArg>,
}

/// Per-site settings (the seeds' `website_configs` table).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebsiteSettings {
    /// PHP limits and extensions.
    pub php: PhpSettings,
    /// The site's database, if it has one.
    pub database: Option<DatabaseSettings>,
    /// HTTPS.
    pub ssl: Ssl,
    /// Compress responses.
    pub gzip: bool,
    /// Cache static files for this many seconds; `None` disables caching headers.
    pub cache_ttl_secs: Option<u32>,
    /// Send the standard security headers.
    pub security_headers: bool,
    /// When not empty, only these networks may connect.
    pub allowed_ips: BTreeSet<IpNetwork>,
    /// These networks are refused.
    pub blocked_ips: BTreeSet<IpNetwork>,
    /// Redirect between the `www.` and bare names.
    pub www_redirect: WwwRedirect,
    /// Extra directives for the site's server block, in order. Each must pass the site's web
    /// server's [`DirectivePolicy`](crate::directives::DirectivePolicy).
    pub extra_directives: ExtraDirectives,
    /// Directives the operator added outside the policy (the escape hatch). Never read from a
    /// request body: only the operator's `Panel::set_operator_directives` changes them, and the
    /// Panel keeps them when anyone else replaces the settings.
    #[serde(skip_deserializing)]
    pub operator_directives: ExtraDirectives,
}

/// At most 50 [`ServerDirective`]s of at most 16 arguments each, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<ServerDirective>", into = "Vec<ServerDirective>")]
pub struct ExtraDirectives(Vec<ServerDirective>);

impl ExtraDirectives {
    /// The directives, in order.
    pub fn as_slice(&self) -> &[ServerDirective] {
        &self.0
    }
}

impl TryFrom<Vec<ServerDirective>> for ExtraDirectives {
    type Error = InvalidValue;
    fn try_from(v: Vec<ServerDirective>) -> Result<Self, Self::Error> {
        if v.len() > 50 {
            return Err(InvalidValue::new(
                "extra_directives",
                "at most 50 directives",
            ));
        }
        if let Some(i) = v.iter().position(|d| d.args.len() > 16) {
            return Err(InvalidValue::new(
                format!("extra_directives[{i}].args"),
                "at most 16 arguments",
            ));
        }
        Ok(Self(v))
    }
}

impl From<ExtraDirectives> for Vec<ServerDirective> {
    fn from(d: ExtraDirectives) -> Self {
        d.0
    }
}

/// A hosted website.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Website {
    /// Assigned by the store.
    pub id: WebsiteId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The user the site belongs to.
    pub owner_id: UserId,
    /// Primary domain, unique across the panel.
    pub domain: DomainName,
    /// Further domains, each unique across the panel (primary domains included).
    pub aliases: Vec<DomainName>,
    /// The node that serves it.
    pub node_id: NodeId,
    /// Which web server renders its vhost.
    pub web_server: WebServerKind,
    /// PHP version, or `None` for a static site.
    pub php_version: Option<PhpVersion>,
    /// Unix account its PHP runs as.
    pub system_user: SystemUser,
    /// Document root, relative to the site's home.
    pub document_root: ConfinedPath,
    /// Where it is in its life.
    pub status: WebsiteStatus,
    /// Per-site settings.
    pub settings: WebsiteSettings,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What is needed to create a website. The tenant comes from the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebsite {
    /// The user the site will belong to; must be one the caller manages.
    pub owner_id: UserId,
    /// Primary domain.
    pub domain: DomainName,
    /// Further domains.
    #[serde(default)]
    pub aliases: Vec<DomainName>,
    /// Serving node.
    pub node_id: NodeId,
    /// Web server.
    pub web_server: WebServerKind,
    /// PHP version, or `None` for a static site.
    pub php_version: Option<PhpVersion>,
    /// Unix account, one the panel keeps for the site's tenant on the node.
    pub system_user: SystemUser,
    /// Document root relative to the site's home.
    pub document_root: ConfinedPath,
    /// Per-site settings.
    #[serde(default)]
    pub settings: WebsiteSettings,
}

/// What a caller asks for to create a website: a [`NewWebsite`] whose Unix account may be left
/// to the panel. When `system_user` is given it must be an account the panel keeps for the
/// caller's tenant on that node, used by no site the caller cannot manage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsiteRequest {
    /// The user the site will belong to; must be one the caller manages.
    pub owner_id: UserId,
    /// Primary domain.
    pub domain: DomainName,
    /// Further domains.
    #[serde(default)]
    pub aliases: Vec<DomainName>,
    /// Serving node.
    pub node_id: NodeId,
    /// Web server.
    pub web_server: WebServerKind,
    /// PHP version, or `None` for a static site.
    pub php_version: Option<PhpVersion>,
    /// An existing account of the tenant to run as; `None` gives the site an account of its own.
    #[serde(default)]
    pub system_user: Option<SystemUser>,
    /// Document root relative to the site's home.
    pub document_root: ConfinedPath,
    /// Per-site settings.
    #[serde(default)]
    pub settings: WebsiteSettings,
}

impl WebsiteRequest {
    /// The store's record of this request, running as `system_user`.
    pub fn with_account(self, system_user: SystemUser) -> NewWebsite {
        NewWebsite {
            owner_id: self.owner_id,
            domain: self.domain,
            aliases: self.aliases,
            node_id: self.node_id,
            web_server: self.web_server,
            php_version: self.php_version,
            system_user,
            document_root: self.document_root,
            settings: self.settings,
        }
    }
}

/// Changes to a website; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsiteChanges {
    /// Replace the alias list.
    pub aliases: Option<Vec<DomainName>>,
    /// Switch web server.
    pub web_server: Option<WebServerKind>,
    /// Switch PHP version (`Some(None)` turns PHP off).
    #[serde(default, with = "double_option")]
    pub php_version: Option<Option<PhpVersion>>,
    /// Move the document root.
    pub document_root: Option<ConfinedPath>,
    /// Change status.
    pub status: Option<WebsiteStatus>,
    /// Replace the settings.
    pub settings: Option<WebsiteSettings>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Checks that a site's domain and aliases are pairwise distinct.
pub fn check_domains(domain: &DomainName, aliases: &[DomainName]) -> Result<(), InvalidValue> {
    let mut seen = BTreeSet::from([domain]);
    for (i, alias) in aliases.iter().enumerate() {
        if !seen.insert(alias) {
            return Err(InvalidValue::new(
                format!("aliases[{i}]"),
                format!("'{alias}' is listed twice (or is the primary domain)"),
            ));
        }
    }
    if aliases.len() > 100 {
        return Err(InvalidValue::new("aliases", "at most 100 aliases"));
    }
    Ok(())
}

/// Why a website is [`WebsiteStatus::Failed`]. Kept on the website's row beside its status and
/// read apart from [`Website`], which every backend builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebsiteFailure {
    /// The website.
    pub website_id: WebsiteId,
    /// What failed, in words for its owner (never a tool's output).
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------
// The saga journal: website changes in flight

/// Which website change a journal row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// A creation: undone whole after a crash.
    Create,
    /// An update (settings, PHP switch, suspension): the node converges to the stored record.
    Update,
    /// A deletion: finished after a crash.
    Delete,
}
named_enum!(OperationKind, "kind", "must be one of create, update, delete", {
    Create => "create", Update => "update", Delete => "delete",
});

/// The step a website change is about to run (recorded before it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStep {
    /// Creating or choosing the site's Unix account.
    Account,
    /// Writing the website's record (created, updated or deleted).
    Record,
    /// Creating, locking, unlocking or dropping its customer database and login.
    Database,
    /// Creating or removing its home.
    Files,
    /// Moving the node (pools and vhosts).
    Deploy,
    /// Recording the website active.
    Activate,
    /// Releasing the account its last site used.
    Release,
}
named_enum!(SagaStep, "step", "must be one of account, record, database, files, deploy, activate, release", {
    Account => "account", Record => "record", Database => "database", Files => "files",
    Deploy => "deploy", Activate => "activate", Release => "release",
});

/// A Unix account a website change uses, and whether the change made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationAccount {
    /// The account's name on the node.
    pub name: SystemUser,
    /// The change created it on the node (or recorded the node's shared account), so undoing
    /// the change removes it when no other site uses it.
    pub made: bool,
}

/// What a website change has made or is about to make: enough to undo or finish it after a
/// crash. Each thing is written before the step that makes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationState {
    /// A creation's primary domain: finds its row when the crash came before its id was noted.
    #[serde(default)]
    pub domain: Option<DomainName>,
    /// The account the site runs as.
    #[serde(default)]
    pub account: Option<OperationAccount>,
    /// The customer database and its login.
    #[serde(default)]
    pub database: Option<DatabaseSettings>,
    /// The record before the change (an update) or the record being deleted (a deletion).
    #[serde(default, with = "journal_site")]
    pub site: Option<Box<Website>>,
}

/// A whole [`Website`] in the journal, operator directives included: the record's own
/// deserialisation refuses them, since no request may carry them. Mirrors destructure the
/// records completely, so a new field fails to compile here until the journal keeps it.
mod journal_site {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        php: PhpSettings,
        database: Option<DatabaseSettings>,
        ssl: Ssl,
        gzip: bool,
        cache_ttl_secs: Option<u32>,
        security_headers: bool,
        allowed_ips: BTreeSet<IpNetwork>,
        blocked_ips: BTreeSet<IpNetwork>,
        www_redirect: WwwRedirect,
        extra_directives: ExtraDirectives,
        operator_directives: ExtraDirectives,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stored {
        id: WebsiteId,
        tenant_id: TenantId,
        owner_id: UserId,
        domain: DomainName,
        aliases: Vec<DomainName>,
        node_id: NodeId,
        web_server: WebServerKind,
        php_version: Option<PhpVersion>,
        system_user: SystemUser,
        document_root: ConfinedPath,
        status: WebsiteStatus,
        settings: Settings,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }

    fn stored(site: &Website) -> Stored {
        let Website {
            id,
            tenant_id,
            owner_id,
            domain,
            aliases,
            node_id,
            web_server,
            php_version,
            system_user,
            document_root,
            status,
            settings,
            created_at,
            updated_at,
        } = site.clone();
        let WebsiteSettings {
            php,
            database,
            ssl,
            gzip,
            cache_ttl_secs,
            security_headers,
            allowed_ips,
            blocked_ips,
            www_redirect,
            extra_directives,
            operator_directives,
        } = settings;
        Stored {
            id,
            tenant_id,
            owner_id,
            domain,
            aliases,
            node_id,
            web_server,
            php_version,
            system_user,
            document_root,
            status,
            settings: Settings {
                php,
                database,
                ssl,
                gzip,
                cache_ttl_secs,
                security_headers,
                allowed_ips,
                blocked_ips,
                www_redirect,
                extra_directives,
                operator_directives,
            },
            created_at,
            updated_at,
        }
    }

    fn website(stored: Stored) -> Website {
        let Settings {
            php,
            database,
            ssl,
            gzip,
            cache_ttl_secs,
            security_headers,
            allowed_ips,
            blocked_ips,
            www_redirect,
            extra_directives,
            operator_directives,
        } = stored.settings;
        Website {
            id: stored.id,
            tenant_id: stored.tenant_id,
            owner_id: stored.owner_id,
            domain: stored.domain,
            aliases: stored.aliases,
            node_id: stored.node_id,
            web_server: stored.web_server,
            php_version: stored.php_version,
            system_user: stored.system_user,
            document_root: stored.document_root,
            status: stored.status,
            settings: WebsiteSettings {
                php,
                database,
                ssl,
                gzip,
                cache_ttl_secs,
                security_headers,
                allowed_ips,
                blocked_ips,
                www_redirect,
                extra_directives,
                operator_directives,
            },
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }

    pub fn serialize<S: Serializer>(site: &Option<Box<Website>>, s: S) -> Result<S::Ok, S::Error> {
        site.as_deref().map(stored).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<Website>>, D::Error> {
        Ok(Option::<Stored>::deserialize(d)?.map(|s| Box::new(website(s))))
    }
}

/// A website change to record in the journal before its first step.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    /// The website's tenant.
    pub tenant_id: TenantId,
    /// The user who asked for the change (undoing it acts as an admin of the tenant).
    pub user_id: UserId,
    /// The website's node.
    pub node_id: NodeId,
    /// The website, once it has a record.
    pub website_id: Option<WebsiteId>,
    /// Which change.
    pub kind: OperationKind,
    /// The first step.
    pub step: SagaStep,
    /// What it made so far.
    pub state: OperationState,
}

/// A website change in flight, as the journal holds it: written before each step, removed when
/// the change ends. A row found when the panel starts is a change a crash interrupted.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Assigned by the store.
    pub id: OperationId,
    /// The website's tenant.
    pub tenant_id: TenantId,
    /// The user who asked for the change.
    pub user_id: UserId,
    /// The website's node.
    pub node_id: NodeId,
    /// The website, once it has a record.
    pub website_id: Option<WebsiteId>,
    /// Which change.
    pub kind: OperationKind,
    /// The step it was about to run or running.
    pub step: SagaStep,
    /// What it had made.
    pub state: OperationState,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// A job a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRole {
    /// Runs the panel API.
    Api,
    /// Serves websites.
    Web,
    /// Hosts customer databases.
    Database,
    /// Handles mail.
    Mail,
    /// Stores backups.
    Backup,
}
named_enum!(NodeRole, "role", "must be one of api, web, database, mail, backup", {
    Api => "api", Web => "web", Database => "database", Mail => "mail", Backup => "backup",
});

/// A machine the panel drives through its agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Assigned by the store.
    pub id: NodeId,
    /// Unique name.
    pub name: NodeName,
    /// Where its agent listens.
    pub address: NodeAddress,
    /// What it does.
    pub roles: BTreeSet<NodeRole>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// What is needed to add a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNode {
    /// Unique name.
    pub name: NodeName,
    /// Where its agent listens.
    pub address: NodeAddress,
    /// What it does.
    pub roles: BTreeSet<NodeRole>,
}

// ---------------------------------------------------------------------------------------------
// Unix accounts on nodes

/// How the panel came to keep a Unix account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountOrigin {
    /// The panel created it (`useradd`) and removes it with its last site.
    Created,
    /// The operator adopted an existing account (a migration); the panel never removes it.
    Adopted,
    /// The node has no separate accounts: every site runs as the node's own user.
    Shared,
}
named_enum!(AccountOrigin, "origin", "must be one of created, adopted, shared", {
    Created => "created", Adopted => "adopted", Shared => "shared",
});

/// A Unix account on a node that sites of one tenant run as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAccount {
    /// Assigned by the store.
    pub id: NodeAccountId,
    /// The one tenant whose sites may run as it.
    pub tenant_id: TenantId,
    /// The node it exists on.
    pub node_id: NodeId,
    /// Its name, unique on the node.
    pub name: SystemUser,
    /// Its uid, unique on the node.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Created, adopted or shared.
    pub origin: AccountOrigin,
    /// When the panel started keeping it.
    pub created_at: DateTime<Utc>,
}

/// What the store records about a new account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNodeAccount {
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// The node it exists on.
    pub node_id: NodeId,
    /// Its name.
    pub name: SystemUser,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Created, adopted or shared.
    pub origin: AccountOrigin,
}

// ---------------------------------------------------------------------------------------------
// Alert rules

/// A measured quantity an alert can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Node CPU use, percent.
    CpuPercent,
    /// Node memory use, percent.
    MemoryPercent,
    /// Node disk use, percent.
    DiskPercent,
    /// One-minute load average.
    Load1,
    /// A site's HTTP 5xx responses per minute.
    SiteErrorsPerMinute,
    /// A site's response time, milliseconds.
    SiteResponseMs,
}
named_enum!(MetricKind, "metric", "must be one of cpu_percent, memory_percent, disk_percent, load1, site_errors_per_minute, site_response_ms", {
    CpuPercent => "cpu_percent", MemoryPercent => "memory_percent", DiskPercent => "disk_percent",
    Load1 => "load1", SiteErrorsPerMinute => "site_errors_per_minute", SiteResponseMs => "site_response_ms",
});

/// Which side of the threshold fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// Fires when the value is above the threshold.
    Above,
    /// Fires when the value is below the threshold.
    Below,
}
named_enum!(Comparison, "comparison", "must be one of above, below", {
    Above => "above", Below => "below",
});

/// A finite alert threshold.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Threshold(f64);

impl Threshold {
    /// The value.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Threshold {
    type Error = InvalidValue;
    fn try_from(v: f64) -> Result<Self, Self::Error> {
        if v.is_finite() {
            Ok(Self(v))
        } else {
            Err(InvalidValue::new("threshold", "must be a finite number"))
        }
    }
}

impl From<Threshold> for f64 {
    fn from(t: Threshold) -> f64 {
        t.0
    }
}

/// Where a firing alert is sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifyChannel {
    /// POST a JSON body to a URL.
    Webhook {
        /// Target URL.
        url: WebhookUrl,
    },
    /// Send an e-mail.
    Email {
        /// Recipient.
        to: EmailAddress,
    },
}

/// A condition on a metric, checked by the monitor, stored per tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Assigned by the store.
    pub id: AlertRuleId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The rule itself.
    #[serde(flatten)]
    pub spec: AlertRuleSpec,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The caller-supplied part of an alert rule, used to create and to replace one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSpec {
    /// Human-readable name, unique in the tenant.
    pub name: DisplayName,
    /// What is watched.
    pub metric: MetricKind,
    /// For site metrics: which site (must be visible to the caller).
    pub website_id: Option<WebsiteId>,
    /// Above or below.
    pub comparison: Comparison,
    /// The limit.
    pub threshold: Threshold,
    /// How long the condition must hold before firing, in seconds.
    pub for_secs: u32,
    /// Where to send it.
    pub channels: BTreeSet<NotifyChannel>,
    /// Disabled rules are kept but not evaluated.
    pub enabled: bool,
}

// ---------------------------------------------------------------------------------------------
// Audit log

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// Done.
    Success,
    /// Refused by authentication or RBAC.
    Denied,
    /// Tried and failed.
    Failed,
}
named_enum!(AuditOutcome, "outcome", "must be one of success, denied, failed", {
    Success => "success", Denied => "denied", Failed => "failed",
});

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store; increases with time.
    pub id: AuditId,
    /// The tenant acted in; `None` for operator actions.
    pub tenant_id: Option<TenantId>,
    /// Who acted; `None` for the operator or an anonymous request.
    pub actor_id: Option<UserId>,
    /// What was done, e.g. `website.create`.
    pub action: String,
    /// What it was done to, e.g. `website:42`.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Where the request came from.
    pub source_ip: Option<IpAddr>,
    /// Extra context. Never holds secrets.
    pub detail: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Which credential acted: `session:12` or `api_token:7` (the same string an
    /// `auth.logout` or `api_token.revoke` entry names as its target); `None` for logins, the
    /// embedder's own actors and the panel itself.
    pub credential: Option<String>,
}

/// An audit line to append. Build it with [`NewAuditEntry::by`] or [`NewAuditEntry::by_operator`]
/// so the tenant and actor come from who acted, not from request input.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) actor_id: Option<UserId>,
    /// What was done, e.g. `website.create`.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Where the request came from.
    pub source_ip: Option<IpAddr>,
    /// Extra context. Never put secrets here.
    pub detail: String,
    /// Which credential acted (see [`AuditEntry::credential`]).
    pub credential: Option<String>,
}

impl NewAuditEntry {
    /// An entry for an action a tenant user took.
    pub fn by(
        caller: &crate::rbac::Caller,
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            tenant_id: Some(caller.tenant),
            actor_id: Some(caller.user),
            action: action.into(),
            target: target.into(),
            outcome,
            source_ip: None,
            detail: String::new(),
            credential: None,
        }
    }

    /// An entry for an action the operator (or the panel itself) took.
    pub fn by_operator(
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            tenant_id: None,
            actor_id: None,
            action: action.into(),
            target: target.into(),
            outcome,
            source_ip: None,
            detail: String::new(),
            credential: None,
        }
    }

    /// The tenant the entry belongs to.
    pub fn tenant_id(&self) -> Option<TenantId> {
        self.tenant_id
    }

    /// Who acted.
    pub fn actor_id(&self) -> Option<UserId> {
        self.actor_id
    }

    /// Sets where the request came from.
    #[must_use]
    pub fn from_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Sets extra context.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Sets which credential acted.
    #[must_use]
    pub fn with_credential(mut self, credential: Option<String>) -> Self {
        self.credential = credential;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<DomainName> {
        list.iter().map(|n| n.parse().expect("domain")).collect()
    }

    fn pairs(mode: WwwRedirect, list: &[&str]) -> Vec<(String, String)> {
        let owned = names(list);
        let refs: Vec<&DomainName> = owned.iter().collect();
        mode.pairs(&refs)
            .into_iter()
            .map(|(from, to)| (from.to_string(), to.to_string()))
            .collect()
    }

    #[test]
    fn a_database_gets_its_engines_usual_charset_and_collation() {
        let name: DbName = "shop".parse().expect("name");
        for (engine, charset, collation) in [
            (DbEngine::Postgres, "UTF8", "C"),
            (DbEngine::MariaDb, "utf8mb4", "utf8mb4_unicode_ci"),
            (DbEngine::MySql, "utf8mb4", "utf8mb4_unicode_ci"),
        ] {
            let settings = DatabaseSettings::for_engine(engine, name.clone());
            assert_eq!(settings.charset.as_str(), charset);
            assert_eq!(settings.collation.as_str(), collation);
            // What the parsers accept.
            assert_eq!(
                charset.parse::<Charset>().expect("charset"),
                settings.charset
            );
            assert_eq!(
                collation.parse::<Collation>().expect("collation"),
                settings.collation
            );
        }
    }

    #[test]
    fn a_databases_login_is_its_name_cut_to_32_without_a_trailing_underscore() {
        let login = |name: &str| {
            DatabaseSettings::for_engine(DbEngine::MariaDb, name.parse().expect("name"))
                .login()
                .expect("login")
                .to_string()
        };
        assert_eq!(login("acme7_shop"), "acme7_shop");
        let long = format!("{}_tail", "a".repeat(31));
        assert_eq!(
            login(&long),
            "a".repeat(31),
            "cut at 32, the trailing '_' dropped"
        );
    }

    #[test]
    fn a_name_redirects_only_to_a_counterpart_the_site_has() {
        let both = ["example.com", "www.example.com", "shop.example.com"];
        assert_eq!(
            pairs(WwwRedirect::ToWww, &both),
            [("example.com".to_owned(), "www.example.com".to_owned())]
        );
        assert_eq!(
            pairs(WwwRedirect::ToApex, &both),
            [("www.example.com".to_owned(), "example.com".to_owned())]
        );
        assert!(pairs(WwwRedirect::None, &both).is_empty());
        assert!(pairs(WwwRedirect::ToWww, &["example.com"]).is_empty());
        assert!(pairs(WwwRedirect::ToApex, &["www.example.com"]).is_empty());
    }
}
