//! The command line, as clap parses it: every command, its store and its flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use uuid::Uuid;

/// Inspect, verify, repair, migrate, export and import an eventsource-rs event store
/// (SQLite, eventsource-py's SQLite databases included, or PostgreSQL).
///
/// Exit codes: 0 ok, 1 a check failed (`verify`), 2 a usage, connection or store error.
#[derive(Debug, Parser)]
#[command(name = "eventsource", version)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The store a command works on.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// A SQLite database file (opened read-only unless the command writes) or a
    /// `postgres://` URL.
    pub store: String,
    /// The PostgreSQL schema holding the store's tables (default `public`).
    #[arg(long)]
    pub schema: Option<String>,
    /// Machine-readable output: one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// What the store holds: counts, streams, types with versions, positions, times,
    /// tenants, table sizes, the outbox, and the registry check.
    Info(StoreArgs),
    /// Lists events, filtered; `--follow` tails new ones as they are appended.
    Events(EventsArgs),
    /// One stream's events, versions in order.
    Stream(StreamArgs),
    /// Every event of one correlation, in order, with causation links drawn as a tree.
    Trace(TraceArgs),
    /// Projection checkpoints: list them with their lag, rewind or reset one.
    Checkpoints {
        /// What to do.
        #[command(subcommand)]
        action: CheckpointAction,
    },
    /// The dead-letter queue: list, show, statistics, resolve.
    Dlq {
        /// What to do.
        #[command(subcommand)]
        action: DlqAction,
    },
    /// The transactional outbox: its backlog, its entries, and failed entries retried.
    Outbox {
        /// What to do.
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// A full integrity scan: contiguous stream versions, increasing positions, readable
    /// payloads, known types, snapshots and outbox entries pointing at stored events.
    /// Exit 1 when anything is wrong.
    Verify(VerifyArgs),
    /// The durable read models of the binary (an application's own, see
    /// `eventsource_cli::App`): list them with their lag, rebuild one.
    Projections {
        /// What to do.
        #[command(subcommand)]
        action: ProjectionAction,
    },
    /// The code's event types against `events.lock` (in an application's own binary).
    Schema {
        /// What to do.
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Copies a SQLite store into PostgreSQL, resumably, then verifies both hold the same
    /// events.
    Migrate(MigrateArgs),
    /// Writes every event, with its envelope, as JSON lines (a backup, or a move).
    Export(ExportArgs),
    /// Appends the events of an `export` file to a store, keeping ids, versions,
    /// timestamps and metadata; running it again skips what is stored already.
    Import(ImportArgs),
}

/// The read direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this event type (repeat for several).
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    pub event_types: Vec<String>,
    /// Only events of this aggregate type.
    #[arg(long)]
    pub aggregate_type: Option<String>,
    /// Only events of this tenant.
    #[arg(long)]
    pub tenant: Option<Uuid>,
    /// The exclusive start position: forward, the events after it; backward, the
    /// events before it.
    #[arg(long, value_name = "POSITION")]
    pub from: Option<u64>,
    /// Only events at or before this global position.
    #[arg(long, value_name = "POSITION")]
    pub until_position: Option<u64>,
    /// Only events at or after this time (RFC 3339, e.g. 2026-01-31T12:00:00Z).
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// The order.
    #[arg(long, value_enum, default_value_t = Direction::Forward)]
    pub direction: Direction,
    /// At most this many events (all when not given; `--follow` then goes on).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Keeps running and prints new events as they are appended, like `tail -f`: woken by
    /// LISTEN/NOTIFY on PostgreSQL (polling as the fallback), by polling on SQLite.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How often `--follow` polls for new events, in milliseconds (on PostgreSQL, the
    /// fallback when a notification is lost).
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
}

/// `stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The aggregate id.
    pub aggregate_id: Uuid,
    /// The aggregate type (every stream of the id when not given).
    #[arg(long = "type", value_name = "AGGREGATE_TYPE")]
    pub aggregate_type: Option<String>,
}

/// `trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The correlation id.
    pub correlation_id: Uuid,
}

/// `checkpoints ...`.
#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Every checkpoint, with how far it is behind (events and seconds).
    List(StoreArgs),
    /// Moves a checkpoint back (or forward) to a position: the projection handles the
    /// events after it again.
    Rewind {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The projection (checkpoint) name.
        name: String,
        /// The position it goes to.
        #[arg(long)]
        to: u64,
        /// Does it without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Removes a checkpoint: the projection starts from the beginning.
    Reset {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The projection (checkpoint) name.
        name: String,
        /// Does it without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// A dead letter's status, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LetterStatus {
    /// Failed and waiting for a fix.
    Failed,
    /// Resolved.
    Resolved,
}

/// `dlq ...`.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Dead letters, oldest first.
    List {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// Only this projection's.
        #[arg(long)]
        projection: Option<String>,
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<LetterStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// One dead letter in full: the error and the event's payload.
    Show {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The dead letter's id.
        id: i64,
    },
    /// Counts: total, failed, resolved, failed per projection.
    Stats(StoreArgs),
    /// Hands dead-lettered events to their read model's fixed handlers again, in
    /// position order, each in one transaction with its resolution; stops at the first
    /// that fails again. Needs the read models (an application's own binary).
    Retry {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The dead letters (every failed one of the binary's read models when none is
        /// given).
        ids: Vec<i64>,
        /// Only this read model's.
        #[arg(long)]
        projection: Option<String>,
        /// Only dead letters of events at or before this global position.
        #[arg(long, value_name = "POSITION")]
        stop_at: Option<u64>,
        /// Does it without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Marks a dead letter resolved, with a note of how.
    Resolve {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The dead letter's id.
        id: i64,
        /// How it was resolved (kept with it).
        #[arg(long)]
        note: String,
    },
}

/// An outbox entry's status, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EntryStatus {
    /// Waiting to be published.
    Pending,
    /// Published.
    Published,
    /// Given up on.
    Failed,
}

/// `outbox ...`.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// The backlog: pending, published and failed entries, the oldest pending one's age.
    Status(StoreArgs),
    /// Entries, oldest first.
    List {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<EntryStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Puts failed entries back to pending, their retry counts cleared, so that the relay
    /// publishes them again.
    Retry {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The entries (every failed entry when none is given).
        ids: Vec<i64>,
        /// Does it without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The SQLite database to copy (opened read-only).
    pub sqlite: PathBuf,
    /// The PostgreSQL server (`postgres://...`).
    pub postgres_url: String,
    /// The PostgreSQL schema to copy into (default `public`); it must hold no other
    /// events.
    #[arg(long)]
    pub schema: Option<String>,
    /// Events per transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The file to write (standard output when not given).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The store to append to (a new SQLite file is created).
    #[command(flatten)]
    pub store: StoreArgs,
    /// The JSON-lines file `export` wrote (`-` for standard input).
    #[arg(long, short = 'i')]
    pub input: PathBuf,
}

/// `projections ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectionAction {
    /// The binary's durable read models on this store, with their checkpoints and lag.
    List(StoreArgs),
    /// Clears a read model (its `#[reset]`) and its checkpoint in one transaction, then
    /// applies every event again, with a progress bar (rate and time left).
    Rebuild {
        /// The store.
        #[command(flatten)]
        store: StoreArgs,
        /// The read model's name.
        name: String,
        /// Does it without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// `schema ...`.
#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Compares the binary's event types and snapshot versions with the lock (exit 1 on
    /// any difference); with `--store`, also lists stored type versions the lock lacks.
    Check {
        /// The lock file.
        #[arg(default_value = "events.lock")]
        lock: PathBuf,
        /// Only the Rust types whose path starts with this (`my_crate::`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// A store whose stored event types are checked against the lock too.
        #[arg(long)]
        store: Option<String>,
        /// The PostgreSQL schema of `--store`.
        #[arg(long)]
        schema: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}
