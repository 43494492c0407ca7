//! The one error type every trait in the SDK speaks.
//!
//! Backends keep their own private errors and convert into [`Error`] at the trait boundary,
//! so callers (and tests) match on *kinds*, never on message text.

use std::borrow::Cow;

/// Shorthand used across the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed source error carried by [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as a kind a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record does not exist, or the caller may not know that it exists.
    #[error("{entity} not found")]
    NotFound {
        /// The kind of record, e.g. `website`.
        entity: &'static str,
    },
    /// A record with the same unique key (domain, slug, e-mail, name) already exists.
    #[error("{entity} already exists: {detail}")]
    AlreadyExists {
        /// The kind of record, e.g. `website`.
        entity: &'static str,
        /// Which key collided, e.g. `domain example.com`.
        detail: String,
    },
    /// The change contradicts the current state (e.g. deleting a tenant that still owns sites).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The change would take a tenant past one of its quotas; `quota` names it
    /// (`quotas.max_databases`).
    #[error("quota exceeded: {quota} is {limit} and {used} are in use")]
    QuotaExceeded {
        /// The quota's field, e.g. `quotas.max_websites`.
        quota: &'static str,
        /// The tenant's limit.
        limit: u64,
        /// What the tenant uses now (MiB for storage).
        used: u64,
    },
    /// The caller is known but its role does not allow the operation.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// An external value broke a rule; `field` names the input, `reason` the rule.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input that was rejected, e.g. `domain` or `aliases[2]`.
        field: Cow<'static, str>,
        /// The rule it broke, in words.
        reason: Cow<'static, str>,
    },
    /// The backend does not offer this capability.
    #[error("{operation} is not supported by {backend}")]
    Unsupported {
        /// What was asked for.
        operation: &'static str,
        /// Which backend refused.
        backend: &'static str,
    },
    /// A real tool (`nginx -t`, `php-fpm -t`, ...) rejected generated configuration.
    #[error("{tool} rejected the configuration: {output}")]
    Validation {
        /// The validating tool.
        tool: String,
        /// What the tool printed.
        output: String,
    },
    /// The request carries no valid credentials (wrong password, unknown or expired token).
    /// Says nothing about which part was wrong.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The access token was valid but has expired: refresh it (a distinct kind, so a client
    /// knows a refresh helps, unlike for a bad or revoked token).
    #[error("the access token expired")]
    TokenExpired,
    /// The password was right but the account's second factor is required: ask for a code.
    #[error("a second factor is required")]
    SecondFactorRequired,
    /// The caller's bearer token is valid, but the current password it was asked to repeat
    /// (before changing the password or second factor, or minting an API token) was wrong.
    #[error("the current password is wrong")]
    ReauthenticationFailed,
    /// Too many attempts; try again after the given number of seconds.
    #[error("too many attempts; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until an attempt may succeed.
        retry_after_secs: u64,
    },
    /// One step of a multi-step operation failed; the earlier steps were undone.
    #[error("{step} failed (earlier steps undone): {source}")]
    StepFailed {
        /// The step, e.g. `database` or `vhost`.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// The backend failed for a reason that is not one of the kinds above.
    #[error("{backend} failed: {source}")]
    Backend {
        /// Which backend failed, e.g. `postgres`.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A [`Error::Backend`] from any error type.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }

    /// A [`Error::NotFound`].
    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }

    /// The error that decides how a caller should react: the cause of a
    /// [`Error::StepFailed`], else the error itself.
    pub fn root(&self) -> &Error {
        match self {
            Error::StepFailed { source, .. } => source.root(),
            other => other,
        }
    }

    /// A [`Error::PermissionDenied`].
    pub fn denied(why: impl Into<String>) -> Self {
        Self::PermissionDenied(why.into())
    }
}

/// A value that failed validation: the field it came from and the rule it broke.
///
/// Every newtype's `FromStr`/`TryFrom`/`Deserialize` reports this, so an HTTP layer can turn it
/// into a 4xx naming the field without parsing text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {rule}")]
pub struct InvalidValue {
    /// The input that was rejected.
    pub field: Cow<'static, str>,
    /// The rule it broke.
    pub rule: Cow<'static, str>,
}

impl InvalidValue {
    /// A rejection of `field` for breaking `rule`.
    pub fn new(field: impl Into<Cow<'static, str>>, rule: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The same rejection reported under another field name (e.g. `aliases[2]`).
    #[must_use]
    pub fn in_field(self, field: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            rule: self.rule,
        }
    }
}

impl From<InvalidValue> for Error {
    fn from(value: InvalidValue) -> Self {
        Self::Invalid {
            field: value.field,
            reason: value.rule,
        }
    }
}
