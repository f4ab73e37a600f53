use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tinct::cli::Cli::parse();
    match tinct::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(tinct::cli::EXIT_FATAL)
        }
    }
}
