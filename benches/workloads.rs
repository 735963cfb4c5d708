//! The benchmark: workloads W1..W8 (and W3u, upcasting, beside W3) of `WORKLOADS.md`, through the framework and as
//! hand-written sqlx against the same schema and settings, in one process and run.
//!
//! ```text
//! cargo bench --bench workloads -- [--runs N] [--scale F] [--json FILE] [--memory] [--w4-rss]
//! ```

#[path = "workloads_lib.rs"]
mod workloads_lib;

fn main() {
    let config = match workloads_lib::Config::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}\n\n{}", workloads_lib::USAGE);
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start tokio: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(workloads_lib::run(&config, &mut std::io::stdout())) {
        eprintln!("benchmark failed: {error}");
        std::process::exit(1);
    }
}
