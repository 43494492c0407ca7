//! The one seam every process call goes through: argv only, never a shell.
//!
//! Backends take an `Arc<dyn CommandRunner>`; [`SystemRunner`] (feature `system`) runs real
//! binaries. Tests drive the real binaries through the same seam, and can wrap it to inject
//! faults at a chosen step.

use std::ffi::OsString;
use std::fmt::Debug;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::error::Result;

/// A program and its arguments. There is no way to pass a command line to a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program, by absolute path or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Its arguments, each passed as one argv element.
    pub args: Vec<OsString>,
    /// Extra environment variables for this call only.
    pub env: Vec<(OsString, OsString)>,
}

impl Command {
    /// `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable for this call.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// What a finished process left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the process exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs processes.
#[async_trait]
pub trait CommandRunner: Debug + Send + Sync {
    /// Runs `command` to completion. A program that cannot be started is an error; a program
    /// that exits non-zero is not (check [`CommandOutput::success`]).
    async fn run(&self, command: &Command) -> Result<CommandOutput>;
}

/// Runs real processes with tokio.
#[cfg(feature = "system")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

#[cfg(feature = "system")]
#[async_trait]
impl CommandRunner for SystemRunner {
    async fn run(&self, command: &Command) -> Result<CommandOutput> {
        let output = tokio::process::Command::new(&command.program)
            .args(&command.args)
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                crate::Error::backend(
                    "process",
                    format!("cannot run {}: {e}", command.program.display()),
                )
            })?;
        Ok(CommandOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
