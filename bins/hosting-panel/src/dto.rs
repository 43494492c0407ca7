//! What goes over the wire, with the OpenAPI schemas a generic client needs.
//!
//! The validated newtypes bring their own schemas (hosting-core's `openapi` feature), stating
//! the rules their parsers enforce; the records' schemas are mirrored here, since hosting-core
//! keeps its records free of OpenAPI derives. Request bodies hold hosting-core's validated types (their `Deserialize` runs the
//! rules, so a body that parses is valid) and refuse unknown fields. Responses are views built
//! by destructuring the core record completely, so a field added to a record fails to compile
//! here until the API decides whether to show it; the values themselves are serialised by
//! hosting-core's own `Serialize`, so the wire format is the SDK's.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hosting_core::Isolation;
use hosting_core::auth::PermissionSet;
use hosting_core::auth_store::ApiToken;
use hosting_core::jobs::{Job, JobKind, JobStatus};
use hosting_core::model::{
    AccountOrigin, ApiTokenId, AuditEntry, AuditId, AuditOutcome, ExtraDirectives, JobId, Node,
    NodeAccount, NodeAccountId, NodeId, NodeRole, Quotas, Role, SessionId, Tenant, TenantChanges,
    TenantId, TenantStatus, User, UserChanges, UserId, UserStatus, Website, WebsiteId,
    WebsiteSettings, WebsiteStatus,
};
use hosting_core::panel::{CreatedWebsite, DatabaseCredentials, Tokens, TotpEnrolment};
use hosting_core::types::{
    Charset, Collation, ConfinedPath, DbEngine, DbName, DbUserName, DirectiveArg, DirectiveName,
    DisplayName, DomainName, EmailAddress, IpNetwork, NodeAddress, NodeName, Password, PhpBytes,
    PhpExtension, PhpVersion, Slug, SystemUser, WebServerKind,
};
use hosting_core::{Page, model};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------
// Shared

/// One page of a list: pass `next_after` as `?after=` for the next one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PageOf<T: ToSchema> {
    /// The rows, in ascending id order.
    pub items: Vec<T>,
    /// The `after` of the next page; `null` on the last page.
    pub next_after: Option<i64>,
}

impl<T: ToSchema> PageOf<T> {
    /// A page of views from a page of records.
    pub fn from_page<R>(page: Page<R>, view: impl Fn(R) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(view).collect(),
            next_after: page.next_after,
        }
    }
}

/// The names of documentation-only enums: the wire value is hosting-core's own string.
macro_rules! doc_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:tt),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Serialize, ToSchema)]
        #[allow(dead_code)]
        pub enum $name {
            $(
                #[doc = $text]
                #[serde(rename = $text)]
                $variant,
            )+
        }
    };
}

doc_enum!(
    /// A user's role in its tenant.
    RoleName { Admin => "admin", Reseller => "reseller", Client => "client" }
);
doc_enum!(
    /// Whether a tenant is served.
    TenantStatusName { Active => "active", Suspended => "suspended" }
);
doc_enum!(
    /// Whether a user may log in.
    UserStatusName { Active => "active", Suspended => "suspended" }
);
doc_enum!(
    /// Where a website is in its life.
    WebsiteStatusName {
        Provisioning => "provisioning", Active => "active", Suspended => "suspended",
        Failed => "failed",
    }
);
doc_enum!(
    /// What a node does.
    NodeRoleName {
        Api => "api", Web => "web", Database => "database", Mail => "mail", Backup => "backup",
    }
);
doc_enum!(
    /// How an audited action ended.
    AuditOutcomeName { Success => "success", Denied => "denied", Failed => "failed" }
);
doc_enum!(
    /// Where a job is in its life.
    JobStatusName {
        Queued => "queued", Running => "running", Succeeded => "succeeded", Failed => "failed",
    }
);
doc_enum!(
    /// What an API token may do, on top of its role's rules.
    PermissionName {
        WebsitesRead => "websites_read", WebsitesWrite => "websites_write",
        DatabasesRead => "databases_read", DatabasesWrite => "databases_write",
        UsersRead => "users_read", UsersWrite => "users_write",
        TenantsRead => "tenants_read", TenantsWrite => "tenants_write",
        NodesRead => "nodes_read", NodesWrite => "nodes_write",
        AuditRead => "audit_read", JobsRead => "jobs_read", TokensWrite => "tokens_write",
    }
);
doc_enum!(
    /// Redirects between the `www.` and the bare name.
    WwwRedirectName { None => "none", ToWww => "to_www", ToApex => "to_apex" }
);
doc_enum!(
    /// Who issues a site's certificate.
    SslProviderName { LetsEncrypt => "letsencrypt", Custom => "custom", SelfSigned => "selfsigned" }
);

/// Resource limits of a tenant; `null` (or leaving a limit out) is unlimited.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct QuotasSchema {
    /// Most websites.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    max_websites: Option<u32>,
    /// Most customer databases.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    max_databases: Option<u32>,
    /// Most disk space, MiB: the sites' files and databases together.
    #[schema(minimum = 0, maximum = 9223372036854775807_u64)]
    max_storage_mb: Option<u64>,
    /// Limits on each of the tenant's database logins; defaults when left out.
    #[serde(default)]
    database_limits: DatabaseLimitsSchema,
}

/// Limits on one customer database login (a plan setting); a limit left out takes its
/// default.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DatabaseLimitsSchema {
    /// Most sessions at once, 1 to 1000 (default 15).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default)]
    max_connections: u32,
    /// Longest statement, seconds, 1 to 86400 (default 300; MySQL has no per-login setting).
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default)]
    statement_timeout_seconds: u32,
    /// Most temporary-file space per session, MiB (PostgreSQL only; default 1024).
    #[schema(minimum = 1, maximum = 1048576)]
    #[serde(default)]
    temp_file_limit_mb: u32,
    /// Most statements per hour, 0 for none (MySQL/MariaDB only).
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    #[serde(default)]
    max_queries_per_hour: u32,
    /// Most new sessions per hour, 0 for none (MySQL/MariaDB only).
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    #[serde(default)]
    max_connections_per_hour: u32,
}

// ---------------------------------------------------------------------------------------------
// Website settings (documentation mirror of hosting_core::model::WebsiteSettings)

/// PHP limits and extensions of a site's pool.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PhpSettingsSchema {
    /// The pool's `memory_limit`.
    memory_limit: PhpBytes,
    /// Seconds, 1 to 86400.
    #[schema(minimum = 1, maximum = 86400)]
    max_execution_time: u32,
    /// The largest upload.
    upload_max_filesize: PhpBytes,
    /// The largest request body: at least `upload_max_filesize` (the server refuses a smaller
    /// one with a 422 naming `post_max_size`; JSON Schema cannot compare two fields).
    post_max_size: PhpBytes,
    /// Extensions the site needs loaded (must be installed on the node); none when left out.
    #[serde(default)]
    extensions: Vec<PhpExtension>,
}

/// The customer database of a site, chosen at creation.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DatabaseSettingsSchema {
    /// The engine; the node must offer it.
    engine: DbEngine,
    /// The database's name.
    name: DbName,
    /// Character set, e.g. `utf8mb4` or `UTF8`.
    charset: Charset,
    /// Collation, e.g. `utf8mb4_unicode_ci` or `C`.
    collation: Collation,
}

/// HTTPS for a site: `disabled`, or `enabled` with who issues the certificate.
#[derive(Debug, Clone, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = Ssl)]
#[allow(dead_code)]
pub enum SslSchema {
    /// HTTP only.
    Disabled,
    /// HTTPS.
    Enabled {
        /// Who issues the certificate.
        provider: SslProviderName,
        /// Renew without asking.
        auto_renew: bool,
    },
}

/// An extra directive in the site's server block, checked by the server's own config test.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ServerDirectiveSchema {
    /// The directive.
    name: DirectiveName,
    /// Its arguments, at most 16.
    #[schema(max_items = 16)]
    args: Vec<DirectiveArg>,
}

/// Per-site settings, as the panel shows them.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct WebsiteSettingsSchema {
    /// PHP limits.
    php: PhpSettingsSchema,
    /// The site's database (only at creation).
    database: Option<DatabaseSettingsSchema>,
    /// HTTPS.
    ssl: SslSchema,
    /// Compress responses.
    gzip: bool,
    /// Static-file cache lifetime in seconds; `null` disables caching headers.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    cache_ttl_secs: Option<u32>,
    /// Send the standard security headers.
    security_headers: bool,
    /// When not empty, only these networks may connect.
    allowed_ips: Vec<IpNetwork>,
    /// These networks are refused.
    blocked_ips: Vec<IpNetwork>,
    /// `none`, `to_www` or `to_apex`.
    www_redirect: WwwRedirectName,
    /// The tenant's directives, each one the web server's directive policy allows.
    extra_directives: Vec<ServerDirectiveSchema>,
    /// The operator's own directives, outside the policy (set with
    /// `PUT /websites/{id}/operator-directives`).
    operator_directives: Vec<ServerDirectiveSchema>,
}

/// Per-site settings in a request; a setting left out takes its default.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WebsiteSettingsInput {
    /// PHP limits.
    #[serde(default)]
    php: PhpSettingsSchema,
    /// The site's database (only at creation; a change must keep it as created).
    #[serde(default)]
    database: Option<DatabaseSettingsSchema>,
    /// HTTPS.
    #[serde(default)]
    ssl: SslSchema,
    /// Compress responses.
    #[serde(default)]
    gzip: bool,
    /// Static-file cache lifetime in seconds; `null` disables caching headers.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    #[serde(default)]
    cache_ttl_secs: Option<u32>,
    /// Send the standard security headers.
    #[serde(default)]
    security_headers: bool,
    /// When not empty, only these networks may connect.
    #[serde(default)]
    allowed_ips: Vec<IpNetwork>,
    /// These networks are refused.
    #[serde(default)]
    blocked_ips: Vec<IpNetwork>,
    /// `none`, `to_www` or `to_apex`.
    #[serde(default)]
    www_redirect: WwwRedirectName,
    /// At most 50 directives, each one the web server's directive policy allows tenants
    /// (README: "Directives tenants may use"); the operator's own are set with
    /// `PUT /websites/{id}/operator-directives` and kept.
    #[schema(max_items = 50)]
    #[serde(default)]
    extra_directives: Vec<ServerDirectiveSchema>,
}

// ---------------------------------------------------------------------------------------------
// Auth

/// A login.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The account's e-mail.
    pub email: EmailAddress,
    /// Its password (8 to 256 characters).
    pub password: Password,
    /// The authenticator's current 6-digit code, when a second factor is enrolled.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// A recovery code (`xxxx-xxxx-xxxx`) instead of `totp_code`.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// A refresh.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The refresh token from the last login or refresh; it is used up.
    pub refresh_token: String,
}

/// A second-factor code.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The authenticator's current 6-digit code.
    #[schema(example = "123456")]
    pub code: String,
}

/// The caller's current password, asked again before a second factor is enrolled.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReauthBody {
    /// The caller's current password.
    pub current_password: Password,
}

/// A second-factor code and the caller's current password, to remove the second factor.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotpBody {
    /// The authenticator's current 6-digit code.
    #[schema(example = "123456")]
    pub code: String,
    /// The caller's current password.
    pub current_password: Password,
}

/// What a login or refresh hands out.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokensView {
    /// Send as `Authorization: Bearer ...`; short-lived.
    pub access_token: String,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// Exchanged once at `POST /api/v1/auth/refresh`; shown only here.
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
    /// The session.
    #[schema(value_type = i64)]
    pub session: SessionId,
    /// Who logged in.
    pub user: UserView,
    /// The tenant requires a second factor the user has not enrolled: these tokens only allow
    /// `POST /api/v1/auth/2fa/enrol` and `/confirm`.
    pub second_factor_enrolment_required: bool,
}

impl From<Tokens> for TokensView {
    fn from(t: Tokens) -> Self {
        let Tokens {
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
            session,
            user,
            second_factor_enrolment_required,
        } = t;
        Self {
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
            session,
            user: user.into(),
            second_factor_enrolment_required,
        }
    }
}

/// A second factor being enrolled; shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// The secret, base32, to type into an authenticator.
    pub secret: String,
    /// The `otpauth://` URI for a QR code.
    pub provisioning_uri: String,
    /// Single-use recovery codes.
    pub recovery_codes: Vec<String>,
}

impl From<TotpEnrolment> for TotpEnrolmentView {
    fn from(t: TotpEnrolment) -> Self {
        let TotpEnrolment {
            secret,
            provisioning_uri,
            recovery_codes,
        } = t;
        Self {
            secret,
            provisioning_uri,
            recovery_codes,
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// A login session's access token.
    Session,
    /// An API token.
    ApiToken,
    /// The embedding application vouched for the caller.
    Embedder,
}

/// Who is calling.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeView {
    /// The user.
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// The user's tenant.
    #[schema(value_type = i64)]
    pub tenant_id: TenantId,
    /// The role acted with.
    #[schema(value_type = RoleName)]
    pub role: Role,
    /// How the caller authenticated.
    pub grant: GrantKind,
    /// For an API token: what it may do.
    #[schema(value_type = Option<Vec<PermissionName>>)]
    pub permissions: Option<PermissionSet>,
    /// The session may only enrol a second factor until it does.
    pub second_factor_enrolment_required: bool,
    /// The user's record, when the caller may read it.
    pub user: Option<UserView>,
}

// ---------------------------------------------------------------------------------------------
// Tenants

/// A tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: TenantId,
    /// Its name.
    pub name: DisplayName,
    /// Its unique short name.
    pub slug: Slug,
    /// Active or suspended.
    #[schema(value_type = TenantStatusName)]
    pub status: TenantStatus,
    /// Resource limits.
    #[schema(value_type = QuotasSchema)]
    pub quotas: Quotas,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        let Tenant {
            id,
            name,
            slug,
            status,
            quotas,
            created_at,
        } = t;
        Self {
            id,
            name,
            slug,
            status,
            quotas,
            created_at,
        }
    }
}

/// A tenant to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    /// Its name (1 to 200 printable characters).
    pub name: DisplayName,
    /// Unique short name: `[a-z][a-z0-9-]*`.
    pub slug: Slug,
    /// Resource limits (default: unlimited).
    #[serde(default)]
    #[schema(value_type = QuotasSchema)]
    pub quotas: Quotas,
}

impl From<NewTenantBody> for model::NewTenant {
    fn from(b: NewTenantBody) -> Self {
        Self {
            name: b.name,
            slug: b.slug,
            quotas: b.quotas,
        }
    }
}

/// Changes to a tenant; absent fields stay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChangesBody {
    /// New name.
    pub name: Option<DisplayName>,
    /// Suspending a tenant stops its users' logins.
    #[schema(value_type = Option<TenantStatusName>)]
    pub status: Option<TenantStatus>,
    /// New limits.
    #[schema(value_type = Option<QuotasSchema>)]
    pub quotas: Option<Quotas>,
}

impl From<TenantChangesBody> for TenantChanges {
    fn from(b: TenantChangesBody) -> Self {
        Self {
            name: b.name,
            status: b.status,
            quotas: b.quotas,
        }
    }
}

/// Whether a tenant's users must use a second factor.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireTwoFactorBody {
    /// Required or not.
    pub required: bool,
}

// ---------------------------------------------------------------------------------------------
// Users

/// A user.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: UserId,
    /// Its tenant.
    #[schema(value_type = i64)]
    pub tenant_id: TenantId,
    /// Its role.
    #[schema(value_type = RoleName)]
    pub role: Role,
    /// Its login.
    pub email: EmailAddress,
    /// Active or suspended.
    #[schema(value_type = UserStatusName)]
    pub status: UserStatus,
    /// Who created it.
    #[schema(value_type = Option<i64>)]
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        let User {
            id,
            tenant_id,
            role,
            email,
            status,
            created_by,
            created_at,
        } = u;
        Self {
            id,
            tenant_id,
            role,
            email,
            status,
            created_by,
            created_at,
        }
    }
}

/// A user to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// Its role.
    #[schema(value_type = RoleName)]
    pub role: Role,
    /// Its login, unique across the panel.
    pub email: EmailAddress,
    /// Its first password; leave out to have one generated and returned once.
    #[serde(default)]
    pub password: Option<Password>,
}

/// A user as created.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedUserView {
    /// The user.
    pub user: UserView,
    /// The generated first password, shown once; `null` when one was given.
    pub generated_password: Option<String>,
}

impl From<hosting_core::panel::CreatedUser> for CreatedUserView {
    fn from(c: hosting_core::panel::CreatedUser) -> Self {
        let hosting_core::panel::CreatedUser {
            user,
            generated_password,
        } = c;
        Self {
            user: user.into(),
            generated_password: generated_password.map(|p| p.expose().to_owned()),
        }
    }
}

/// Changes to a user; absent fields stay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangesBody {
    /// New role.
    #[schema(value_type = Option<RoleName>)]
    pub role: Option<Role>,
    /// New login.
    pub email: Option<EmailAddress>,
    /// Suspending a user ends its sessions.
    #[schema(value_type = Option<UserStatusName>)]
    pub status: Option<UserStatus>,
}

impl From<UserChangesBody> for UserChanges {
    fn from(b: UserChangesBody) -> Self {
        Self {
            role: b.role,
            email: b.email,
            status: b.status,
        }
    }
}

/// A new password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// 8 to 256 characters, no control characters.
    pub password: Password,
    /// The caller's current password: required when changing one's own.
    #[serde(default)]
    pub current_password: Option<Password>,
    /// Keep the user's API tokens; by default they are revoked with its sessions.
    #[serde(default)]
    pub keep_api_tokens: bool,
}

// ---------------------------------------------------------------------------------------------
// Websites

/// A website.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebsiteView {
    /// Its id; file, pool and socket names derive from it.
    #[schema(value_type = i64)]
    pub id: WebsiteId,
    /// Its tenant.
    #[schema(value_type = i64)]
    pub tenant_id: TenantId,
    /// The user it belongs to.
    #[schema(value_type = i64)]
    pub owner_id: UserId,
    /// Primary domain.
    pub domain: DomainName,
    /// Further domains.
    pub aliases: Vec<DomainName>,
    /// The node serving it.
    #[schema(value_type = i64)]
    pub node_id: NodeId,
    /// `nginx`, `apache`, `openlitespeed` or a plugin's name.
    pub web_server: WebServerKind,
    /// PHP version; `null` for a static site.
    pub php_version: Option<PhpVersion>,
    /// The Unix account its PHP runs as, created by the panel for the site (or adopted by the
    /// operator).
    pub system_user: SystemUser,
    /// Document root, relative to the site's home.
    pub document_root: ConfinedPath,
    /// Where it is in its life.
    #[schema(value_type = WebsiteStatusName)]
    pub status: WebsiteStatus,
    /// Why it is `failed` (`null` otherwise): retry it (`POST /websites/{id}/retry`, or any
    /// change) or delete it.
    pub failure_reason: Option<String>,
    /// Its settings.
    #[schema(value_type = WebsiteSettingsSchema)]
    pub settings: WebsiteSettings,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Website> for WebsiteView {
    fn from(w: Website) -> Self {
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
        } = w;
        Self {
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
            failure_reason: None,
            settings,
            created_at,
            updated_at,
        }
    }
}

/// A website to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebsiteBody {
    /// The user it will belong to (one the caller manages).
    #[schema(value_type = i64)]
    pub owner_id: UserId,
    /// Primary domain (IDN accepted, stored as punycode).
    pub domain: DomainName,
    /// Further domains.
    #[serde(default)]
    pub aliases: Vec<DomainName>,
    /// The node to serve it.
    #[schema(value_type = i64)]
    pub node_id: NodeId,
    /// `nginx`, `apache` or a plugin's name; the node must run it.
    pub web_server: WebServerKind,
    /// PHP version (installed on the node), or `null` for a static site.
    #[serde(default)]
    pub php_version: Option<PhpVersion>,
    /// An account the panel keeps for your tenant on the node (see a site's `system_user`), to
    /// run as it too; leave it out and the site gets an account of its own.
    #[serde(default)]
    pub system_user: Option<SystemUser>,
    /// Document root relative to the site's home.
    pub document_root: ConfinedPath,
    /// Settings; `database` here creates the site's database.
    #[serde(default)]
    #[schema(value_type = WebsiteSettingsInput)]
    pub settings: WebsiteSettings,
}

impl From<NewWebsiteBody> for model::WebsiteRequest {
    fn from(b: NewWebsiteBody) -> Self {
        Self {
            owner_id: b.owner_id,
            domain: b.domain,
            aliases: b.aliases,
            node_id: b.node_id,
            web_server: b.web_server,
            php_version: b.php_version,
            system_user: b.system_user,
            document_root: b.document_root,
            settings: b.settings,
        }
    }
}

/// Changes to a website's settings, aliases or document root; absent fields stay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsitePatchBody {
    /// Replaces the settings (`database` must stay as created).
    #[schema(value_type = Option<WebsiteSettingsInput>)]
    pub settings: Option<WebsiteSettings>,
    /// Replaces the aliases.
    pub aliases: Option<Vec<DomainName>>,
    /// Moves the document root.
    pub document_root: Option<ConfinedPath>,
}

impl From<WebsitePatchBody> for model::WebsiteChanges {
    fn from(b: WebsitePatchBody) -> Self {
        Self {
            settings: b.settings,
            aliases: b.aliases,
            document_root: b.document_root,
            ..Self::default()
        }
    }
}

/// A PHP switch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhpBody {
    /// The version to switch to (installed on the node), or `null` to turn PHP off.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(required = true)]
    pub php_version: Option<PhpVersion>,
}

/// A web-server switch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebServerBody {
    /// `nginx`, `apache` or a plugin's name; the node must run it.
    pub web_server: WebServerKind,
}

/// How a site reaches its database; the password is shown here once and stored nowhere.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseCredentialsView {
    /// The engine.
    pub engine: DbEngine,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// The database.
    pub database: DbName,
    /// The login, which may use this database only.
    pub user: DbUserName,
    /// The login's password.
    pub password: String,
}

impl From<DatabaseCredentials> for DatabaseCredentialsView {
    fn from(c: DatabaseCredentials) -> Self {
        let DatabaseCredentials {
            engine,
            host,
            port,
            database,
            user,
            password,
        } = c;
        Self {
            engine,
            host,
            port,
            database,
            user,
            password: password.expose().to_owned(),
        }
    }
}

/// A website as created, with its database's credentials (shown once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedWebsiteView {
    /// The website, deployed.
    pub website: WebsiteView,
    /// The database's credentials, when it has one.
    pub database: Option<DatabaseCredentialsView>,
}

impl From<CreatedWebsite> for CreatedWebsiteView {
    fn from(c: CreatedWebsite) -> Self {
        let CreatedWebsite { website, database } = c;
        Self {
            website: website.into(),
            database: database.map(Into::into),
        }
    }
}

/// A site's database, without secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseView {
    /// The website it belongs to.
    #[schema(value_type = i64)]
    pub website_id: WebsiteId,
    /// The website's domain.
    pub domain: DomainName,
    /// The node serving the website.
    #[schema(value_type = i64)]
    pub node_id: NodeId,
    /// The engine.
    pub engine: DbEngine,
    /// The database.
    pub name: DbName,
    /// Its login.
    pub user: DbUserName,
    /// Character set.
    pub charset: String,
    /// Collation.
    pub collation: String,
    /// Host to connect to, when the panel knows the node's server.
    pub host: Option<String>,
    /// Port to connect to, when the panel knows the node's server.
    pub port: Option<u16>,
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// A node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: NodeId,
    /// Its unique name.
    pub name: NodeName,
    /// Where its agent listens (`host` or `host:port`).
    pub address: NodeAddress,
    /// What it does.
    #[schema(value_type = Vec<NodeRoleName>)]
    pub roles: BTreeSet<NodeRole>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// How its websites are kept apart: `accounts` (each site runs as a Unix account of its
    /// own) or `none` (the panel does not run as root: every site runs as `shared_account`);
    /// `null` when this panel drives no backends for it.
    #[schema(value_type = Option<IsolationName>)]
    pub isolation: Option<&'static str>,
    /// With `isolation: none`: the one account every site runs as.
    pub shared_account: Option<SystemUser>,
    /// With `isolation: none`: whether sites of several tenants may share the node.
    pub tenants_may_share: Option<bool>,
}

/// How a node keeps its websites apart.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub enum IsolationName {
    /// A Unix account per site.
    #[schema(rename = "accounts")]
    Accounts,
    /// One account for every site.
    #[schema(rename = "none")]
    None,
}

impl NodeView {
    /// `node`, with what the panel knows of its isolation.
    pub fn new(node: Node, isolation: Option<Isolation>) -> Self {
        let Node {
            id,
            name,
            address,
            roles,
            created_at,
        } = node;
        let (isolation, shared_account, tenants_may_share) = match isolation {
            Some(Isolation::Accounts) => (Some("accounts"), None, None),
            Some(Isolation::None {
                account,
                tenants_may_share,
            }) => (Some("none"), Some(account), Some(tenants_may_share)),
            None => (None, None, None),
        };
        Self {
            id,
            name,
            address,
            roles,
            created_at,
            isolation,
            shared_account,
            tenants_may_share,
        }
    }
}

/// What a node's database server allows that the operator should fix.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseHealthView {
    /// The server's engine.
    pub engine: DbEngine,
    /// Databases the panel did not create that every login may connect to (revoke `CONNECT`
    /// from `PUBLIC` on them); empty when there are none.
    pub open_to_every_login: Vec<String>,
}

/// A Unix account the panel keeps on a node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeAccountView {
    /// Its record's id.
    #[schema(value_type = i64)]
    pub id: NodeAccountId,
    /// The one tenant whose websites may run as it.
    #[schema(value_type = i64)]
    pub tenant_id: TenantId,
    /// The node.
    #[schema(value_type = i64)]
    pub node_id: NodeId,
    /// Its name.
    pub name: SystemUser,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// `created` (removed with its last website), `adopted` (the operator's, never removed) or
    /// `shared` (a node without separate accounts).
    #[schema(value_type = String, example = "created")]
    pub origin: AccountOrigin,
    /// When the panel started keeping it.
    pub created_at: DateTime<Utc>,
}

impl From<NodeAccount> for NodeAccountView {
    fn from(a: NodeAccount) -> Self {
        let NodeAccount {
            id,
            tenant_id,
            node_id,
            name,
            uid,
            gid,
            origin,
            created_at,
        } = a;
        Self {
            id,
            tenant_id,
            node_id,
            name,
            uid,
            gid,
            origin,
            created_at,
        }
    }
}

/// An existing Unix account to adopt for a tenant (the operator only; a migration).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptAccountBody {
    /// The account's name on the node (uid and gid 1000 or above).
    pub name: SystemUser,
    /// The tenant whose websites may run as it.
    #[schema(value_type = i64)]
    pub tenant_id: TenantId,
}

/// The operator's own directives for a website, past the directive policy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorDirectivesBody {
    /// Replaces them; `[]` removes them. Checked by the web server's own configuration test.
    #[schema(value_type = Vec<ServerDirectiveSchema>, max_items = 50)]
    pub directives: ExtraDirectives,
}

/// A node to record.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNodeBody {
    /// Unique name.
    pub name: NodeName,
    /// Where its agent listens.
    pub address: NodeAddress,
    /// What it does.
    #[schema(value_type = Vec<NodeRoleName>)]
    pub roles: BTreeSet<NodeRole>,
}

impl From<NewNodeBody> for model::NewNode {
    fn from(b: NewNodeBody) -> Self {
        Self {
            name: b.name,
            address: b.address,
            roles: b.roles,
        }
    }
}

/// A PHP version installed on a node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PhpVersionView {
    /// The minor version.
    pub version: PhpVersion,
    /// The full version the binary reports, e.g. `8.2.36`.
    pub full_version: String,
    /// Loaded extensions.
    pub extensions: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Audit and jobs

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditView {
    /// Its id; increases with time.
    #[schema(value_type = i64)]
    pub id: AuditId,
    /// The tenant acted in; `null` for the operator.
    #[schema(value_type = Option<i64>)]
    pub tenant_id: Option<TenantId>,
    /// Who acted; `null` for the operator or an anonymous request.
    #[schema(value_type = Option<i64>)]
    pub actor_id: Option<UserId>,
    /// What was done, e.g. `website.create`.
    pub action: String,
    /// What it was done to, e.g. `website:42`.
    pub target: String,
    /// How it ended.
    #[schema(value_type = AuditOutcomeName)]
    pub outcome: AuditOutcome,
    /// Where the request came from.
    #[schema(value_type = Option<String>)]
    pub source_ip: Option<std::net::IpAddr>,
    /// Extra context (a role change: `role: client -> admin`).
    pub detail: String,
    /// Which credential acted: `session:12` or `api_token:7`, as `auth.logout` and
    /// `api_token.revoke` entries name them; `null` for logins and the panel itself.
    pub credential: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditView {
    fn from(a: AuditEntry) -> Self {
        let AuditEntry {
            id,
            tenant_id,
            actor_id,
            action,
            target,
            outcome,
            source_ip,
            detail,
            at,
            credential,
        } = a;
        Self {
            id,
            tenant_id,
            actor_id,
            action,
            target,
            outcome,
            source_ip,
            detail,
            credential,
            at,
        }
    }
}

/// What a job does.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct JobKindSchema {
    /// The kind, e.g. `apply_node`.
    #[schema(example = "apply_node")]
    r#type: String,
    /// For `apply_node`: the node.
    node: Option<i64>,
}

/// A background job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: JobId,
    /// The tenant it was enqueued for; `null` for the operator's.
    #[schema(value_type = Option<i64>)]
    pub tenant_id: Option<TenantId>,
    /// Who enqueued it.
    #[schema(value_type = Option<i64>)]
    pub created_by: Option<UserId>,
    /// What it does.
    #[schema(value_type = JobKindSchema)]
    pub kind: JobKind,
    /// Where it is.
    #[schema(value_type = JobStatusName)]
    pub status: JobStatus,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Not run before this time.
    pub run_after: DateTime<Utc>,
    /// The last step reported.
    pub progress: String,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        let Job {
            id,
            tenant_id,
            created_by,
            kind,
            status,
            attempts,
            max_attempts,
            run_after,
            progress,
            last_error,
            created_at,
            updated_at,
        } = j;
        Self {
            id,
            tenant_id,
            created_by,
            kind,
            status,
            attempts,
            max_attempts,
            run_after,
            progress,
            last_error,
            created_at,
            updated_at,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// API tokens

/// An API token (its secret is not stored).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiTokenView {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: ApiTokenId,
    /// The tenant it acts in.
    #[schema(value_type = i64)]
    pub tenant_id: TenantId,
    /// The user it acts as.
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// Its name.
    pub name: DisplayName,
    /// The role it acts with.
    #[schema(value_type = RoleName)]
    pub role: Role,
    /// What it may do.
    #[schema(value_type = Vec<PermissionName>)]
    pub permissions: PermissionSet,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it expires, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        let ApiToken {
            id,
            tenant_id,
            user_id,
            name,
            role,
            permissions,
            created_at,
            expires_at,
            revoked_at,
        } = t;
        Self {
            id,
            tenant_id,
            user_id,
            name,
            role,
            permissions,
            created_at,
            expires_at,
            revoked_at,
        }
    }
}

/// An API token to create, acting as the caller.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiTokenBody {
    /// A name to recognise it by.
    pub name: DisplayName,
    /// The role it acts with: the caller's own (the default) or a lower one.
    #[serde(default)]
    #[schema(value_type = Option<RoleName>)]
    pub role: Option<Role>,
    /// What it may do (at least one).
    #[schema(value_type = Vec<PermissionName>)]
    pub permissions: PermissionSet,
    /// When it stops working; never when absent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The caller's current password (minting a token needs a login session and it).
    pub current_password: Password,
}

/// An API token as created, with its secret (shown once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiTokenCreatedView {
    /// The record.
    pub token: ApiTokenView,
    /// Send as `Authorization: Bearer ...`.
    pub secret: String,
}

impl From<hosting_core::panel::ApiTokenCreated> for ApiTokenCreatedView {
    fn from(c: hosting_core::panel::ApiTokenCreated) -> Self {
        let hosting_core::panel::ApiTokenCreated { token, secret } = c;
        Self {
            token: token.into(),
            secret,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Health

/// The process is up / the store answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthView {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::collections::BTreeSet;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    use super::*;

    fn properties<T: ToSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
            _ => panic!("not an object schema"),
        }
    }

    fn keys(value: serde_json::Value) -> BTreeSet<String> {
        value.as_object().expect("object").keys().cloned().collect()
    }

    fn enum_values<T: ToSchema>() -> Vec<String> {
        match T::schema() {
            RefOr::T(Schema::Object(o)) => o
                .enum_values
                .unwrap_or_default()
                .iter()
                .map(|v| v.as_str().expect("string").to_owned())
                .collect(),
            _ => panic!("not an enum schema"),
        }
    }

    fn wire<T: Serialize>(values: impl IntoIterator<Item = T>) -> Vec<String> {
        values
            .into_iter()
            .map(|v| {
                serde_json::to_value(v)
                    .expect("json")
                    .as_str()
                    .expect("string")
                    .to_owned()
            })
            .collect()
    }

    /// The documented names are the ones hosting-core writes and accepts.
    #[test]
    fn enum_schemas_match_the_wire() {
        use hosting_core::auth::Permission;
        assert_eq!(enum_values::<RoleName>(), wire(Role::ALL));
        assert_eq!(enum_values::<PhpVersion>(), wire(PhpVersion::ALL));
        assert_eq!(enum_values::<PermissionName>(), wire(Permission::ALL));
        assert_eq!(
            enum_values::<DbEngine>(),
            wire([DbEngine::Postgres, DbEngine::MySql, DbEngine::MariaDb])
        );
        assert_eq!(
            enum_values::<SslProviderName>(),
            wire([
                model::SslProvider::LetsEncrypt,
                model::SslProvider::Custom,
                model::SslProvider::SelfSigned
            ])
        );
        assert_eq!(
            enum_values::<WwwRedirectName>(),
            wire([
                model::WwwRedirect::None,
                model::WwwRedirect::ToWww,
                model::WwwRedirect::ToApex
            ])
        );
        assert_eq!(
            enum_values::<NodeRoleName>(),
            wire([
                NodeRole::Api,
                NodeRole::Web,
                NodeRole::Database,
                NodeRole::Mail,
                NodeRole::Backup
            ])
        );
        assert_eq!(
            enum_values::<WebsiteStatusName>(),
            wire([
                WebsiteStatus::Provisioning,
                WebsiteStatus::Active,
                WebsiteStatus::Suspended,
                WebsiteStatus::Failed
            ])
        );
        assert_eq!(
            enum_values::<JobStatusName>(),
            wire([
                JobStatus::Queued,
                JobStatus::Running,
                JobStatus::Succeeded,
                JobStatus::Failed
            ])
        );
        assert_eq!(
            enum_values::<AuditOutcomeName>(),
            wire([
                AuditOutcome::Success,
                AuditOutcome::Denied,
                AuditOutcome::Failed
            ])
        );
        assert_eq!(
            enum_values::<TenantStatusName>(),
            wire([TenantStatus::Active, TenantStatus::Suspended])
        );
        assert_eq!(
            enum_values::<UserStatusName>(),
            wire([UserStatus::Active, UserStatus::Suspended])
        );
    }

    /// The documentation mirrors name exactly the keys hosting-core writes.
    #[test]
    fn settings_schema_matches_the_wire() {
        let settings = serde_json::to_value(WebsiteSettings::default()).expect("json");
        assert_eq!(
            properties::<WebsiteSettingsSchema>(),
            keys(settings.clone())
        );
        assert_eq!(
            properties::<PhpSettingsSchema>(),
            keys(settings["php"].clone())
        );
        let quotas = serde_json::to_value(Quotas::default()).expect("json");
        assert_eq!(properties::<QuotasSchema>(), keys(quotas.clone()));
        assert_eq!(
            properties::<DatabaseLimitsSchema>(),
            keys(quotas["database_limits"].clone())
        );
        let db: hosting_core::model::DatabaseSettings = serde_json::from_value(serde_json::json!({
            "engine": "mariadb", "name": "shop", "charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"
        }))
        .expect("settings");
        assert_eq!(
            properties::<DatabaseSettingsSchema>(),
            keys(serde_json::to_value(db).expect("json"))
        );
        let kind = serde_json::to_value(JobKind::ApplyNode { node: NodeId(1) }).expect("json");
        assert_eq!(properties::<JobKindSchema>(), keys(kind));
    }
}
