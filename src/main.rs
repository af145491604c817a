//! The `attnlab` binary: argument parsing only (and the counting allocator, so the
//! benchmarks and the cost view can measure each configuration's peak memory).

#[global_allocator]
static ALLOC: attnlab::bench::CountingAlloc = attnlab::bench::CountingAlloc;

fn main() -> std::process::ExitCode {
    attnlab::cli::main()
}
