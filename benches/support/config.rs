//! What a benchmark run does: its command-line options.

use std::path::PathBuf;

pub const USAGE: &str = "usage: cargo bench --bench workloads -- [--runs N] [--scale F] [--json FILE] [--memory] [--w4-rss]
  --runs N     runs per workload, the median is reported (default 3)
  --scale F    scale every workload by F: 0.01 for a smoke run, 10 for W1/W2 into a
               1,000,000-event database and W4 over 1,000,000 events (default 1; W8 stays
               at its full size above 1)
  --json FILE  also write the results as JSON
  --memory     also run W1..W5 on the in-memory store
  --w4-rss     also check W4's peak RSS at 100,000 and 1,000,000 events
  --w3-rss     first check W3's memory loading aggregates of 10,000 and 100,000 events
  --reads-only set up W2's data once, then run only W3..W5, beside the limit (for profiling)
  --postgres   also run W1..W8 on PostgreSQL (EVENTSOURCE_BENCH_POSTGRES_URL, or a throwaway cluster)
  --postgres-only  only the PostgreSQL workloads";

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub runs: usize,
    pub scale: f64,
    pub json: Option<PathBuf>,
    pub memory: bool,
    pub w4_rss: bool,
    /// W3's memory loading 10,000- and 100,000-event aggregates, before anything else.
    pub w3_rss: bool,
    /// Only the read workloads W3..W5 (for profiling).
    pub reads_only: bool,
    /// Also the workloads on PostgreSQL.
    pub postgres: bool,
    /// Only the workloads on PostgreSQL.
    pub postgres_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            runs: 3,
            scale: 1.0,
            json: None,
            memory: false,
            w4_rss: false,
            w3_rss: false,
            reads_only: false,
            postgres: false,
            postgres_only: false,
        }
    }
}

impl Config {
    pub fn from_args(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut config = Config::default();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--runs" => {
                    config.runs = value("--runs")?
                        .parse()
                        .map_err(|e| format!("--runs: {e}"))?
                }
                "--scale" => {
                    config.scale = value("--scale")?
                        .parse()
                        .map_err(|e| format!("--scale: {e}"))?
                }
                "--json" => config.json = Some(PathBuf::from(value("--json")?)),
                "--memory" => config.memory = true,
                "--w4-rss" => config.w4_rss = true,
                "--w3-rss" => config.w3_rss = true,
                "--reads-only" => config.reads_only = true,
                "--postgres" => config.postgres = true,
                "--postgres-only" => {
                    config.postgres = true;
                    config.postgres_only = true;
                }
                // cargo bench passes --bench to harness=false targets.
                "--bench" => {}
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if config.runs == 0 || !(config.scale > 0.0 && config.scale <= 100.0) {
            return Err("--runs must be at least 1 and --scale in (0, 100]".into());
        }
        Ok(config)
    }

    pub(super) fn n(&self, full: usize, min: usize) -> usize {
        ((full as f64 * self.scale) as usize).max(min)
    }
}
