//! What a command fails with, and the exit code each failure means.

use std::fmt;

/// A command's failure, printed as one line on standard error.
#[derive(Debug)]
pub enum CliError {
    /// Arguments clap could not judge: a store that is not there, a refused confirmation,
    /// an option that does not apply.
    Usage(String),
    /// The library's own error (a connection, a database, a refused operation).
    Store(eventsource::Error),
    /// Reading or writing a file or the terminal.
    Io {
        /// What was being read or written.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl CliError {
    /// The exit code: 2 for every error (1 is a failed check, not an error).
    pub fn exit_code(&self) -> u8 {
        2
    }

    /// An I/O error while doing `context`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            CliError::Usage(message) => message.clone(),
            CliError::Store(error) => error.to_string(),
            CliError::Io { context, source } => format!("{context}: {source}"),
        };
        // One line, whatever the error's own text holds.
        f.write_str(&text.replace('\n', " "))
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Usage(_) => None,
            CliError::Store(error) => Some(error),
            CliError::Io { source, .. } => Some(source),
        }
    }
}

impl From<eventsource::Error> for CliError {
    fn from(error: eventsource::Error) -> Self {
        CliError::Store(error)
    }
}
