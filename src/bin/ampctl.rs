fn main() -> std::process::ExitCode {
    amp_operator::ampctl::main()
}
