//! barge: a daemonless OCI registry client, image store and container runner.
//!
//! This binary is a wiring diagram: it parses docker-style arguments, calls
//! one library function per command, and prints the result. Behaviour lives
//! in the library crates.

mod args;
mod commands;
mod failure;
mod format;
mod progress;
mod settings;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let debug = cli.debug;
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(f) => {
            f.print(debug);
            f.code
        }
    };
    std::process::exit(code);
}
