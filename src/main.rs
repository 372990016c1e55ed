//! The `ticketmilter` binary: parse the command line, run it, report errors, set the exit code.

use clap::Parser;

fn main() {
    let cli = match ticketmilter::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are answers, not errors; a bad command line is a usage error.
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    match ticketmilter::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ticketmilter: {e}");
            std::process::exit(ticketmilter::cli::exit_code(&e));
        }
    }
}
