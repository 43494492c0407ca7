//! Why a panel command failed, as the exit code scripts branch on and the JSON document
//! `--json` prints.

use std::fmt;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::error::{
    EXIT_CONFLICT, EXIT_FAILURE, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_RATE_LIMITED,
    EXIT_UNAUTHENTICATED,
};

/// A failed panel command.
#[derive(Debug)]
pub struct Failure {
    /// The process's exit code.
    pub exit: u8,
    /// One line for people (stderr).
    pub message: String,
    /// What `--json` prints on stdout: the panel's own error body when it sent one (so scripts
    /// see its stable `code` and `field`), else one of hostctl's in the same shape.
    pub document: Value,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code of an HTTP status the panel answered with.
pub fn exit_for_status(status: u16) -> u8 {
    match status {
        401 | 403 => EXIT_UNAUTHENTICATED,
        404 => EXIT_NOT_FOUND,
        409 => EXIT_CONFLICT,
        429 => EXIT_RATE_LIMITED,
        // 408: the panel gave up waiting, but the change it started goes on: not the input's
        // fault.
        408 => EXIT_FAILURE,
        400..=499 => EXIT_INVALID,
        _ => EXIT_FAILURE,
    }
}

impl Failure {
    fn local(exit: u8, code: &str, message: String, field: Option<&str>) -> Self {
        let mut error = json!({"code": code, "message": message});
        if let (Some(field), Some(obj)) = (field, error.as_object_mut()) {
            obj.insert("field".to_owned(), json!(field));
        }
        Self {
            exit,
            message,
            document: json!({ "error": error }),
        }
    }

    /// An error answer of the panel: its body (`{"error": {code, message, field?}}`) as sent.
    pub fn api(status: u16, body: Value, text: &str, retry_after: Option<u64>) -> Self {
        let error = &body["error"];
        let code = error["code"].as_str().unwrap_or("error");
        let mut message = match error["message"].as_str() {
            Some(m) => format!("{code}: {m}"),
            None => format!("HTTP {status}: {}", text.trim()),
        };
        if let Some(field) = error["field"].as_str() {
            let _ = write!(message, " (field: {field})");
        }
        if let Some(secs) = retry_after {
            let _ = write!(message, " (retry after {secs} s)");
        }
        let document = if error.is_object() {
            body
        } else {
            json!({"error": {"code": code, "message": message}})
        };
        Self {
            exit: exit_for_status(status),
            message,
            document,
        }
    }

    /// The panel could not be reached or answered nonsense (exit 1).
    pub fn network(message: impl Into<String>) -> Self {
        Self::local(EXIT_FAILURE, "connection_failed", message.into(), None)
    }

    /// Something on this machine failed (the config file could not be written; exit 1).
    pub fn io(message: impl Into<String>) -> Self {
        Self::local(EXIT_FAILURE, "local_failure", message.into(), None)
    }

    /// The command line (or the config file) is wrong; nothing was sent (exit 2).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::local(EXIT_INVALID, "invalid_input", message.into(), None)
    }

    /// The command line is wrong in one named input (exit 2).
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::local(EXIT_INVALID, "invalid_input", message.into(), Some(field))
    }

    /// No credentials for this panel, or the login session is over (exit 3).
    pub fn not_logged_in(message: impl Into<String>) -> Self {
        Self::local(EXIT_UNAUTHENTICATED, "not_logged_in", message.into(), None)
    }

    /// A name the panel does not know (exit 4).
    pub fn not_found(field: &str, message: impl Into<String>) -> Self {
        Self::local(EXIT_NOT_FOUND, "not_found", message.into(), Some(field))
    }

    /// A job ended `failed`, or waiting for it timed out: `--json` prints the job itself.
    pub fn job(job: Value, message: impl Into<String>) -> Self {
        Self {
            exit: EXIT_FAILURE,
            message: message.into(),
            document: job,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        let cases = [
            (400, 2),
            (401, 3),
            (403, 3),
            (404, 4),
            (405, 2),
            (408, 1),
            (409, 5),
            (413, 2),
            (415, 2),
            (422, 2),
            (429, 6),
            (431, 2),
            (500, 1),
            (502, 1),
            (503, 1),
        ];
        for (status, exit) in cases {
            assert_eq!(exit_for_status(status), exit, "{status}");
        }
    }

    #[test]
    fn the_panels_error_body_is_kept_verbatim() {
        let body = json!({"error": {"code": "invalid", "message": "bad slug", "field": "slug"}});
        let f = Failure::api(422, body.clone(), "", None);
        assert_eq!(f.document, body);
        assert_eq!(f.exit, 2);
        assert_eq!(f.message, "invalid: bad slug (field: slug)");
        let f = Failure::api(
            429,
            json!({"error": {"code": "rate_limited", "message": "slow down"}}),
            "",
            Some(30),
        );
        assert!(f.message.ends_with("(retry after 30 s)"), "{}", f.message);
        let f = Failure::api(502, Value::Null, "Bad Gateway", None);
        assert_eq!(f.document["error"]["code"], "error");
        assert_eq!(f.exit, 1);
    }
}
