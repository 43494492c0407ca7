//! The one error body every response of the API uses, and the mapping from
//! [`hosting_core::Error`] to status codes.
//!
//! `{"error": {"code": "<stable_snake_case>", "message": "...", "field": "..."}}`: clients
//! branch on `code` (stable, documented) and show `message`; `field` names the input that was
//! refused when there is one. Backend failures say which step failed but never carry the
//! backend's own text (it may hold host names, paths or SQL): that goes to the server log,
//! under the request's id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hosting_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for a program (`code`, `field`) and for a person (`message`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `not_found`, `invalid`, `unknown_field`.
    #[schema(example = "invalid")]
    pub code: &'static str,
    /// A sentence for people; not meant to be parsed.
    pub message: String,
    /// The input that was refused (`domain`, `settings.database.name`, `aliases[2]`), when
    /// there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error on its way to becoming a JSON response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, stable `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the input that was refused.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 401: no valid credentials.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 400: a request the API cannot read at all.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: a readable request with a value that breaks a rule.
    pub fn unprocessable(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
    }

    /// 404 for a path the API does not have.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field, when one was named.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// Adds a hint to the message (what to install or configure).
    #[must_use]
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.message = format!("{} ({hint})", self.message);
        self
    }

    /// The JSON error for a bare status an inner layer produced without a body of ours (a
    /// 405 from the router, a 413 from the body limit, a 408 from the timeout).
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this endpoint does not take that method",
            ),
            StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("body_too_large", "the request body is larger than allowed")
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
                "headers_too_large",
                "the request headers are larger than allowed",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send the body as application/json",
            ),
            StatusCode::REQUEST_TIMEOUT => (
                "timeout",
                "the request took too long; a change it started continues and is audited",
            ),
            StatusCode::BAD_REQUEST => ("bad_request", "the request could not be read"),
            StatusCode::UNAUTHORIZED => ("unauthenticated", "authentication is required"),
            StatusCode::FORBIDDEN => ("permission_denied", "permission denied"),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "the service is unavailable"),
            s if s.is_server_error() => ("internal_error", "internal error"),
            _ => ("error", "the request failed"),
        };
        Self::new(status, code, message)
    }
}

/// Text of the backend failure reported to clients: which step, never the backend's words.
fn backend_message(step: Option<&'static str>, backend: &str) -> String {
    match step {
        Some(step) => format!(
            "the {step} step failed in {backend}; earlier steps were undone (the server log has \
             the details under this request's id)"
        ),
        None => {
            format!("{backend} failed (the server log has the details under this request's id)")
        }
    }
}

/// Text of a refused configuration test reported to clients: the server (the program's file
/// name), never its path or output.
fn validation_message(step: Option<&'static str>, tool: &str) -> String {
    let program = tool
        .split_whitespace()
        .next()
        .and_then(|p| p.rsplit('/').next())
        .filter(|p| !p.is_empty())
        .unwrap_or("the server");
    let undone = match step {
        Some(step) => format!("the {step} step was refused and earlier steps were undone"),
        None => "nothing was changed".to_owned(),
    };
    format!(
        "{program}'s configuration test refused the change; {undone} (the server log has the \
         details under this request's id)"
    )
}

/// Backends the panel itself owns: a failure there is the panel's (500), not a node's (502).
fn panel_internal(backend: &str) -> bool {
    matches!(
        backend,
        "panel" | "panel-store" | "auth-store" | "job-store"
    )
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let step = match &e {
            Error::StepFailed { step, .. } => Some(*step),
            _ => None,
        };
        // The step stays in the message; the root decides the status.
        let full = e.to_string();
        let root = e.root();
        match root {
            Error::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", full),
            Error::AlreadyExists { .. } => Self::new(StatusCode::CONFLICT, "already_exists", full),
            Error::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", full),
            Error::QuotaExceeded { quota, .. } => {
                Self::new(StatusCode::CONFLICT, "quota_exceeded", full).with_field(*quota)
            }
            Error::PermissionDenied(_) => {
                Self::new(StatusCode::FORBIDDEN, "permission_denied", full)
            }
            Error::Invalid { field, .. } => Self::unprocessable("invalid", field.to_string(), full),
            Error::Unauthenticated(_) => Self::unauthenticated(full),
            Error::TokenExpired => Self::new(StatusCode::UNAUTHORIZED, "token_expired", full),
            Error::ReauthenticationFailed => {
                Self::new(StatusCode::FORBIDDEN, "reauthentication_failed", full)
            }
            Error::SecondFactorRequired => Self::new(
                StatusCode::UNAUTHORIZED,
                "second_factor_required",
                "the password was right; send totp_code (or recovery_code) too",
            ),
            Error::RateLimited { retry_after_secs } => {
                let mut api = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", full);
                api.retry_after = Some((*retry_after_secs).max(1));
                api
            }
            Error::Unsupported { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported", full)
            }
            Error::Validation { tool, output } => {
                // The tool's output names node paths and other tenants' files: the operator's
                // log keeps it, the client learns which server refused.
                tracing::warn!(%tool, %output, "a configuration test refused a change");
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    validation_message(step, tool),
                )
            }
            Error::Backend { backend, .. } => {
                // The details go to the log (inside the request's span), never to the client.
                tracing::error!(error = %e, "backend failure");
                if panel_internal(backend) {
                    Self::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        backend_message(step, "the panel"),
                    )
                } else {
                    Self::new(
                        StatusCode::BAD_GATEWAY,
                        "backend_failed",
                        backend_message(step, backend),
                    )
                }
            }
            other => {
                tracing::error!(error = %other, "unexpected error kind");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error (the server log has the details under this request's id)",
                )
            }
        }
    }
}

impl From<hosting_core::InvalidValue> for ApiError {
    fn from(e: hosting_core::InvalidValue) -> Self {
        Self::unprocessable("invalid", e.field.to_string(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.code == "token_expired" {
            // RFC 6750: the client should refresh and retry.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer error=\"invalid_token\", error_description=\"the access token expired\"",
                ),
            );
        } else if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_statuses_and_codes() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::not_found("website"), 404, "not_found"),
            (
                Error::AlreadyExists {
                    entity: "website",
                    detail: "domain a.example".into(),
                },
                409,
                "already_exists",
            ),
            (Error::Conflict("x".into()), 409, "conflict"),
            (
                Error::QuotaExceeded {
                    quota: "quotas.max_databases",
                    limit: 0,
                    used: 0,
                },
                409,
                "quota_exceeded",
            ),
            (Error::denied("x"), 403, "permission_denied"),
            (
                Error::Invalid {
                    field: "domain".into(),
                    reason: "bad".into(),
                },
                422,
                "invalid",
            ),
            (Error::Unauthenticated("x".into()), 401, "unauthenticated"),
            (Error::TokenExpired, 401, "token_expired"),
            (Error::SecondFactorRequired, 401, "second_factor_required"),
            (
                Error::ReauthenticationFailed,
                403,
                "reauthentication_failed",
            ),
            (
                Error::RateLimited {
                    retry_after_secs: 7,
                },
                429,
                "rate_limited",
            ),
            (
                Error::Unsupported {
                    operation: "dump",
                    backend: "x",
                },
                422,
                "unsupported",
            ),
            (
                Error::Validation {
                    tool: "nginx -t".into(),
                    output: "bad".into(),
                },
                422,
                "validation_failed",
            ),
            (
                Error::backend("mariadb", "connection refused to 10.0.0.5"),
                502,
                "backend_failed",
            ),
            (
                Error::backend("panel-store", "disk I/O"),
                500,
                "internal_error",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status().as_u16(), status, "{code}");
            assert_eq!(api.code(), code);
        }
    }

    #[test]
    fn a_refused_configuration_test_names_no_path_and_no_output() {
        let e = Error::StepFailed {
            step: "deploy",
            source: Box::new(Error::Validation {
                tool: "/usr/sbin/nginx -t".into(),
                output: "nginx: [emerg] unknown directive \"x\" in \
                         /srv/node/managed/generations/7/sites/site42.conf:9"
                    .into(),
            }),
        };
        let api = ApiError::from(e);
        assert_eq!(api.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(api.code(), "validation_failed");
        assert!(api.message().starts_with("nginx's"), "{}", api.message());
        assert!(api.message().contains("deploy"), "{}", api.message());
        for leak in ["/", "site42", "emerg", "unknown directive"] {
            assert!(!api.message().contains(leak), "{leak}: {}", api.message());
        }
    }

    #[test]
    fn a_failed_step_keeps_its_name_and_hides_backend_text() {
        let e = Error::StepFailed {
            step: "database",
            source: Box::new(Error::backend(
                "mariadb",
                "Access denied for 'root'@'10.0.0.5'",
            )),
        };
        let api = ApiError::from(e);
        assert_eq!(api.status(), StatusCode::BAD_GATEWAY);
        assert!(api.message().contains("database"), "{}", api.message());
        assert!(!api.message().contains("10.0.0.5"), "{}", api.message());
        let e = Error::StepFailed {
            step: "deploy",
            source: Box::new(Error::Invalid {
                field: "php_version".into(),
                reason: "PHP 8.4 is not installed".into(),
            }),
        };
        let api = ApiError::from(e);
        assert_eq!(api.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(api.field(), Some("php_version"));
        assert!(api.message().contains("deploy"), "{}", api.message());
    }
}
