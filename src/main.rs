//! The `attnlab` binary: argument parsing only.

fn main() -> std::process::ExitCode {
    attnlab::cli::main()
}
