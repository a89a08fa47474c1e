fn main() -> std::process::ExitCode {
    amp_operator::cli::ampd::main()
}
