fn main() {
    // The orphan guardian lives as long as the supervisor: dispatch it before argument
    // parsing so it touches as little of the binary as possible (its RSS counts).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "__guardian")
    {
        std::process::exit(ai_employee::process::guardian::run_guardian());
    }
    let cli = ai_employee::cli::parse();
    let code = ai_employee::commands::run(cli);
    std::process::exit(code);
}
