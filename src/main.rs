//! The `attnlab` binary: argument parsing and dispatch only. No subcommand opens the
//! workbench window; subcommands run headless. (Also the counting allocator, so the
//! benchmarks and the cost view can measure each configuration's peak memory.)

use clap::Parser;

#[global_allocator]
static ALLOC: attnlab::bench::CountingAlloc = attnlab::bench::CountingAlloc;

fn main() -> std::process::ExitCode {
    attnlab::memory::keep_freed_pages();
    let cli = attnlab::cli::Cli::parse();
    let result = match cli.command {
        None => attnlab::app::run(cli.file),
        Some(command) => attnlab::cli::execute(command),
    };
    attnlab::cli::exit_code(result)
}
