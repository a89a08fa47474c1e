//! Compiles build metadata (git describe, commit, build date) into the binaries.
//! Outside a git checkout vergen emits placeholders, which `build_info` maps to "unknown".
use vergen_gitcl::{Build, Emitter, Gitcl};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let build = Build::builder().build_date(true).build();
    let git = Gitcl::builder()
        .describe(true, true, None)
        .sha(false)
        .commit_timestamp(true)
        .build();
    Emitter::default()
        .add_instructions(&build)?
        .add_instructions(&git)?
        .emit()?;
    Ok(())
}
