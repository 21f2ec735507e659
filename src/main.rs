//! The `signpost` binary: parse the command line, set up logging, run, map the error to an exit
//! code.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// jemalloc, so that memory freed after a build goes back to the system (see `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = signpost::cli::Cli::parse();
    let filter = match &cli.log {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(signpost::cli::log_colour())
        .with_writer(std::io::stderr)
        .init();
    match signpost::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let text = e.to_string();
            if !text.is_empty() {
                eprintln!("{text}");
            }
            e.exit_code()
        }
    }
}
