fn main() -> std::process::ExitCode {
    copperc::cli::main()
}
