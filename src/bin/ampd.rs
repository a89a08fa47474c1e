// jemalloc instead of glibc malloc: the operator plans every worker each poll, and
// glibc kept that churn (and the discovery peak) as RSS; jemalloc returning freed
// pages within a second took the operator at 10,000 workers from 147 MiB to about
// 100-120 MiB (docs/benchmarks.md, "Operator on a real API server").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc options read at start-up: purge freed pages after 1 s from a background
/// thread, so an idle operator gives memory back too.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    amp_operator::cli::ampd::main()
}
