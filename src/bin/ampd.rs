// jemalloc instead of glibc malloc: the operator plans every worker each poll, and
// glibc kept that churn (and the discovery peak) as RSS; jemalloc returning freed
// pages within a second took the operator at 10,000 workers from 147 MiB to about
// 100-120 MiB (docs/benchmarks.md, "Operator on a real API server").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc options read at start-up: freed pages go back at once. Kept for a second
/// (as before), the previous cycle's snapshot and plan were still resident when the
/// next one ran: 62 MiB at 10,000 workers against 55 MiB at once, for the same CPU
/// (docs/benchmarks.md, "The cache's own types"). The background thread purges what
/// an idle operator's arenas still hold.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    amp_operator::cli::ampd::main()
}
