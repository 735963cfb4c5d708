//! The `eventsource` binary: `eventsource --help` lists the commands.

fn main() -> std::process::ExitCode {
    eventsource_cli::main()
}
