//! barge: a daemonless OCI registry client, image store and container runner.
//!
//! This binary is a wiring diagram: it parses docker-style arguments, calls
//! one library function per command, and prints the result. Behaviour lives
//! in the library crates.
// docker's container inspect object is one json! literal, deeper than
// serde_json's macro recursion allows by default.
#![recursion_limit = "256"]
#![forbid(unsafe_code)]

mod args;
mod commands;
mod failure;
mod format;
mod graph;
mod progress;
mod settings;
mod usage;

fn main() {
    // Installed (or linked) as docker-credential-barge, barge is a credential helper.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    // The pause process that keeps a user's rootless namespace (below).
    if argv0 == barge_runtime::userns::PAUSE_NAME {
        barge_runtime::userns::pause_main();
    }
    // Invoked as barge-runtime (a link), barge is an OCI runtime, as runc.
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == barge_ocirt::PROGRAM_NAME)
    {
        let args: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        std::process::exit(barge_ocirt::main(&args));
    }
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "docker-credential-barge")
    {
        let op = std::env::args().nth(1).unwrap_or_default();
        if op.is_empty() {
            eprintln!("Usage: docker-credential-barge <store|get|erase|list|version>");
            std::process::exit(1);
        }
        std::process::exit(commands::credential_helper(&op));
    }
    // Root re-executes from a sealed copy (below) before clap builds its
    // command tree, which would otherwise be built twice for every start.
    if rustix::process::geteuid().is_root() && usage::names_container_start(&std::env::args_os().collect::<Vec<_>>()) {
        run_sealed();
    }
    let cli = usage::parse();
    let debug = cli.globals.debug;
    // Rootless: every command that touches the store or containers runs in
    // the user's own user namespace, where the user is root (issue 13).
    let euid = rustix::process::geteuid();
    if cli.command.needs_user_namespace() && !euid.is_root() {
        let Err(e) = barge_runtime::userns::enter(cli.command.starts_containers());
        eprintln!("Error: entering your rootless user namespace: {e}");
        std::process::exit(125);
    }
    // Commands that put processes into containers run from a copy of barge
    // that no container can write (CVE-2019-5736).
    if cli.command.starts_containers() {
        run_sealed();
    }
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(f) => {
            f.print(debug);
            f.code
        }
    };
    std::process::exit(code);
}

/// Re-executes barge from a copy no container can write, unless it already
/// runs from one; exits when no such copy can be made.
fn run_sealed() {
    if let Err(e) = barge_runtime::sealed::ensure() {
        eprintln!("Error: {e}");
        std::process::exit(125);
    }
}
