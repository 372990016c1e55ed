//! The `ticketmilter` binary: parse the command line, run it, report errors, set the exit code.

use clap::Parser;

fn main() {
    let cli = ticketmilter::cli::Cli::parse();
    match ticketmilter::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ticketmilter: {e}");
            std::process::exit(ticketmilter::cli::exit_code(&e));
        }
    }
}
