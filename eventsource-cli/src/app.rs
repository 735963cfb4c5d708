//! [`App`]: the CLI as an application's own binary runs it, with the durable read models
//! it registers (rebuilt, listed and replayed into by `projections` and `dlq retry`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use eventsource::{DurableRunner, PostgresEventStore, SqliteEventStore};

use crate::args::Cli;
use crate::error::CliError;
use crate::target::Target;
use crate::Outcome;

type SqliteFactory = Box<dyn Fn(SqliteEventStore) -> Box<dyn DurableRunner> + Send + Sync>;
type PostgresFactory = Box<dyn Fn(PostgresEventStore) -> Box<dyn DurableRunner> + Send + Sync>;

/// How to make one durable read model's runner on each backend.
#[derive(Default)]
struct Registered {
    sqlite: Option<SqliteFactory>,
    postgres: Option<PostgresFactory>,
}

/// The CLI with an application's durable read models: `projections list`,
/// `projections rebuild <name>` and `dlq retry` run them through their own handlers.
///
/// ```no_run
/// use eventsource::sqlx::SqliteConnection;
/// use eventsource::prelude::*;
/// use eventsource::SqliteProjectionRunner;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Serialize, Deserialize, DomainEvent)]
/// # struct OrderPlaced { total: f64 }
///
/// #[derive(Debug, Default)]
/// struct Revenue;
///
/// #[projection(name = "revenue")]
/// impl Revenue {
///     #[handles]
///     async fn placed(&mut self, e: &OrderPlaced, conn: &mut SqliteConnection) -> Result<(), eventsource::sqlx::Error> {
///         eventsource::sqlx::query("UPDATE revenue SET total = total + ?")
///             .bind(e.total)
///             .execute(conn)
///             .await
///             .map(|_| ())
///     }
///
///     #[reset]
///     async fn clear(&mut self, conn: &mut SqliteConnection) -> Result<(), eventsource::sqlx::Error> {
///         eventsource::sqlx::query("UPDATE revenue SET total = 0").execute(conn).await.map(|_| ())
///     }
/// }
///
/// // src/bin/eventsource.rs of the application
/// fn main() -> std::process::ExitCode {
///     eventsource_cli::App::new()
///         .sqlite_projection("revenue", |store| SqliteProjectionRunner::new(store, Revenue, "revenue"))
///         .main()
/// }
/// ```
#[derive(Default)]
pub struct App {
    projections: BTreeMap<String, Registered>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("projections", &self.projections.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl App {
    /// The CLI with no read models of its own (what the standalone binary is).
    pub fn new() -> Self {
        App::default()
    }

    /// Registers the durable read model `name` on SQLite: `make` builds its runner on the
    /// store the command line names (its name must be `name`).
    pub fn sqlite_projection<R: DurableRunner>(
        mut self,
        name: impl Into<String>,
        make: impl Fn(SqliteEventStore) -> R + Send + Sync + 'static,
    ) -> Self {
        self.projections.entry(name.into()).or_default().sqlite =
            Some(Box::new(move |store| Box::new(make(store))));
        self
    }

    /// Registers the durable read model `name` on PostgreSQL, as
    /// [`sqlite_projection`](Self::sqlite_projection).
    pub fn postgres_projection<R: DurableRunner>(
        mut self,
        name: impl Into<String>,
        make: impl Fn(PostgresEventStore) -> R + Send + Sync + 'static,
    ) -> Self {
        self.projections.entry(name.into()).or_default().postgres =
            Some(Box::new(move |store| Box::new(make(store))));
        self
    }

    /// Runs the command line of this process; returns its exit code.
    pub fn main(self) -> ExitCode {
        self.main_from(std::env::args_os())
    }

    /// Runs the command line `args` (the program's name first).
    pub fn main_from(
        self,
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    ) -> ExitCode {
        let cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(error) => {
                // Help and version go to standard output with 0; usage errors exit 2.
                let _ = error.print();
                return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
            }
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("eventsource: cannot start the async runtime: {error}");
                return ExitCode::from(2);
            }
        };
        let mut stdout = std::io::stdout().lock();
        let outcome = runtime.block_on(self.run(cli, &mut stdout));
        let _ = stdout.flush();
        match outcome {
            Ok(Outcome::Ok) => ExitCode::SUCCESS,
            Ok(Outcome::CheckFailed) => ExitCode::from(1),
            // A reader that went away (`| head`) is not a failure.
            Err(CliError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("eventsource: {error}");
                ExitCode::from(error.exit_code())
            }
        }
    }

    /// Runs one parsed command, writing its results to `out`.
    ///
    /// # Errors
    /// [`CliError`]: usage errors, the library's errors, I/O errors.
    pub async fn run(&self, cli: Cli, out: &mut dyn Write) -> Result<Outcome, CliError> {
        crate::commands::run(self, cli.command, out).await
    }

    /// The names registered for `target`'s backend.
    pub(crate) fn projection_names(&self, target: &Target) -> Vec<String> {
        self.projections
            .iter()
            .filter(|(_, r)| match target {
                Target::Sqlite(_) => r.sqlite.is_some(),
                Target::Postgres(_) => r.postgres.is_some(),
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The runner of `name` on `target`.
    ///
    /// # Errors
    /// [`CliError::Usage`] when this binary has no such read model for the backend, or
    /// the runner made under `name` is named otherwise.
    pub(crate) fn runner(
        &self,
        target: &Target,
        name: &str,
    ) -> Result<Box<dyn DurableRunner>, CliError> {
        let registered = self.projections.get(name);
        let runner = match (target, registered) {
            (
                Target::Sqlite(store),
                Some(Registered {
                    sqlite: Some(make), ..
                }),
            ) => make((**store).clone()),
            (
                Target::Postgres(store),
                Some(Registered {
                    postgres: Some(make),
                    ..
                }),
            ) => make(store.clone()),
            _ => {
                let known = self.projection_names(target);
                return Err(CliError::Usage(if self.projections.is_empty() {
                    format!(
                        "this binary has no read models of its own, so it cannot run `{name}`: \
                         run the command from your application's binary (eventsource_cli::App)"
                    )
                } else {
                    format!(
                        "no durable read model `{name}` for {} in this binary (it has: {})",
                        target.describe(),
                        known.join(", ")
                    )
                }));
            }
        };
        if runner.name() != name {
            return Err(CliError::Usage(format!(
                "the read model registered as `{name}` runs under the name `{}`: register it under that name",
                runner.name()
            )));
        }
        Ok(runner)
    }
}
