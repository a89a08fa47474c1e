//! ampctl. Placeholder: replaced by the Admin API issue.

pub fn main() -> std::process::ExitCode {
    eprintln!("error: ampctl is not built yet");
    std::process::ExitCode::from(2)
}
