use clap::Parser;

fn main() {
    let cli = ai_employee::cli::Cli::parse();
    let code = ai_employee::commands::run(cli);
    std::process::exit(code);
}
