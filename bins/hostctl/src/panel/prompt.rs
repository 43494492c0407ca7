//! Secrets typed by people or piped by scripts, never taken from the command line (other
//! users can read a process's arguments).

use std::io::Read as _;

use super::client::interactive;
use super::failure::Failure;

/// The most a password can be (the panel's limit is 256 characters); more on stdin is a
/// mistake, such as a file piped by accident.
const MAX_SECRET_BYTES: u64 = 4096;

/// A password from stdin (`--password-stdin`: everything up to EOF, one trailing newline
/// removed) or typed at the terminal without echo (`confirm`: asked twice).
pub fn password(from_stdin: bool, prompt: &str, confirm: bool) -> Result<String, Failure> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_SECRET_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| Failure::invalid(format!("cannot read the password from stdin: {e}")))?;
        if text.len() as u64 > MAX_SECRET_BYTES {
            return Err(Failure::invalid_field(
                "password",
                "the password on stdin is longer than 4096 bytes",
            ));
        }
        let line = text
            .strip_suffix('\n')
            .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
        if line.is_empty() {
            return Err(Failure::invalid_field(
                "password",
                "no password on stdin (--password-stdin)",
            ));
        }
        return Ok(line.to_owned());
    }
    if !interactive() {
        return Err(Failure::invalid_field(
            "password",
            "stdin is not a terminal: pipe the password in with --password-stdin",
        ));
    }
    let first = ask(prompt)?;
    if confirm && ask("again: ")? != first {
        return Err(Failure::invalid_field(
            "password",
            "the two passwords differ",
        ));
    }
    if first.is_empty() {
        return Err(Failure::invalid_field("password", "no password given"));
    }
    Ok(first)
}

/// A line typed at the terminal without echo.
pub fn ask(prompt: &str) -> Result<String, Failure> {
    rpassword::prompt_password(prompt)
        .map_err(|e| Failure::invalid(format!("cannot read from the terminal: {e}")))
}
