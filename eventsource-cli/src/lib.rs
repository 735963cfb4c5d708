//! `eventsource`, the operator CLI of eventsource-rs: one binary to inspect, verify,
//! repair, migrate, export and import any store: a SQLite file (eventsource-py's
//! databases included, opened read-only unless a command writes) or a PostgreSQL schema.
//!
//! ```text
//! eventsource info events.db
//! eventsource events events.db --type OrderPlaced --limit 20
//! eventsource events postgres://app@db/app --schema shop --follow
//! eventsource stream events.db 5f0c...-... --type Order
//! eventsource trace events.db <correlation-id>
//! eventsource checkpoints list events.db
//! eventsource checkpoints rewind events.db order-list --to 1200
//! eventsource dlq list events.db --status failed
//! eventsource outbox status events.db
//! eventsource verify events.db
//! eventsource migrate events.db postgres://app@db/app --schema shop
//! eventsource export events.db -o backup.jsonl
//! eventsource import copy.db -i backup.jsonl
//! ```
//!
//! `--json` prints one JSON object per line. Exit codes: 0 ok, 1 a check failed
//! (`verify` found a problem), 2 a usage, connection or store error, printed as one line
//! on standard error.
//!
//! # In your own binary
//!
//! The standalone binary knows no event types: it shows payloads as the stored JSON.
//! Built into a `bin` of your application, whose event types register themselves
//! (`#[derive(DomainEvent)]`), the same commands decode through your registry, `verify`
//! checks that every stored event decodes into its Rust type, and `schema check`
//! compares your types with `events.lock`:
//!
//! ```no_run
//! // src/bin/eventsource.rs of your application
//! fn main() -> std::process::ExitCode {
//!     eventsource_cli::main()
//! }
//! ```
//!
//! [`App`] adds your durable read models, for `projections list`, `projections rebuild`
//! (with a progress bar) and `dlq retry`, which run them through their own handlers.

mod app;
mod args;
mod backend;
mod commands;
mod error;
mod output;
mod target;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

pub use app::App;
pub use args::Cli;
pub use error::CliError;

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (exit 0).
    Ok,
    /// A check found problems (exit 1).
    CheckFailed,
}

/// Runs the command line of this process and returns its exit code: what the
/// `eventsource` binary's `main` is. In your own binary, [`App`] adds your durable read
/// models.
pub fn main() -> ExitCode {
    App::new().main()
}

/// Runs the command line `args` (the program's name first) as [`main`] does.
pub fn main_from(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    App::new().main_from(args)
}

/// Runs one parsed command, writing its results to `out`.
///
/// # Errors
/// [`CliError`]: usage errors, the library's errors, I/O errors.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome, CliError> {
    App::new().run(cli, out).await
}
