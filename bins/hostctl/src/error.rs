//! How a failure maps to an exit code scripts can rely on.

use std::fmt;
use std::process::ExitCode;

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// Something failed while running (a server refused a configuration, a file could not be
/// written); the previous configuration is still live.
pub const EXIT_FAILURE: u8 = 1;
/// The command line or the state file is wrong; nothing was changed.
pub const EXIT_INVALID: u8 = 2;
/// `drift` found live files or servers that differ from the state file.
pub const EXIT_DRIFT: u8 = 3;
/// Panel commands: not authenticated or not allowed (401/403). Shares 3 with [`EXIT_DRIFT`]:
/// `node drift` never talks to a panel and panel commands never report drift, so no command
/// can mean both.
pub const EXIT_UNAUTHENTICATED: u8 = 3;
/// Panel commands: no such record (404).
pub const EXIT_NOT_FOUND: u8 = 4;
/// Panel commands: already exists or contradicts the current state (409).
pub const EXIT_CONFLICT: u8 = 5;
/// Panel commands: too many attempts (429); the message says when to retry.
pub const EXIT_RATE_LIMITED: u8 = 6;

/// The operator's input (arguments, state file, what it asks of this machine) is wrong.
/// Raised only before anything is changed, so exit code 2 also means "nothing changed".
#[derive(Debug)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// An [`Invalid`] as an `anyhow::Error`.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    Invalid(message.into()).into()
}

/// Whether `err` is invalid input (anywhere in its chain).
pub fn is_invalid(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<Invalid>().is_some())
}

/// The exit code for `err`.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(if is_invalid(err) {
        EXIT_INVALID
    } else {
        EXIT_FAILURE
    })
}
