//! The command line's own errors, as the docker CLI words them: an unknown
//! verb (exit 1, no "similar subcommand" tip: `cp` is not `copy`, which
//! copies images between registries), an unknown flag (exit 125), missing
//! arguments (exit 1, with the usage line). `barge help [VERB…]` is
//! `barge [VERB…] --help`.

use crate::args::{Cli, Command, ContainerVerb, Globals};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;

/// The parsed command line, or the process ends with docker's message and status.
pub fn parse() -> Cli {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    if let Some(i) = verb_index(&argv).filter(|i| argv[*i] == "help") {
        argv.remove(i);
        argv.push("--help".into());
    }
    match parse_start_path(&argv).map_or_else(|| Cli::try_parse_from(&argv), Ok) {
        Ok(cli) => {
            if let Some((verb, flag)) = cli.command.flag_for_operand() {
                eprintln!("unknown flag: {flag}\nSee 'barge {verb} --help'.");
                std::process::exit(125);
            }
            cli
        }
        Err(e) => {
            let code = match docker_message(&e) {
                Some((message, code)) => {
                    eprintln!("{message}");
                    code
                }
                None => {
                    let _ = e.print();
                    // docker's status for its own usage errors is 125; help and version are not errors.
                    if e.use_stderr() {
                        125
                    } else {
                        0
                    }
                }
            };
            std::process::exit(code);
        }
    }
}

/// `run` and `exec`, the verbs on a container's start path, parsed with
/// only their own arguments in clap's tree: building the tree of every
/// barge command costs about 1.5 ms and 300 page faults, more than the rest
/// of the parse. `None` for any other line and when this parse fails: the
/// full parse then runs, and gives every error and help text.
fn parse_start_path(argv: &[OsString]) -> Option<Cli> {
    let verb = match argv.get(verb_index(argv)?)?.to_str()? {
        "run" => parse_one(argv, "run", ContainerVerb::Run)?,
        "exec" => parse_one(argv, "exec", ContainerVerb::Exec)?,
        _ => return None,
    };
    Some(Cli {
        globals: Globals::from_arg_matches(&verb.1).ok()?,
        command: Command::ContainerVerbs(verb.0),
    })
}

/// One verb's arguments, parsed with a tree of the global options and that
/// verb alone; with the matches, for the global options.
fn parse_one<A: Args + FromArgMatches>(
    argv: &[OsString],
    name: &'static str,
    verb: fn(A) -> ContainerVerb,
) -> Option<(ContainerVerb, clap::ArgMatches)> {
    let top = Globals::augment_args(clap::Command::new("barge").disable_help_subcommand(true))
        .subcommand(A::augment_args(clap::Command::new(name)));
    let m = top.try_get_matches_from(argv).ok()?;
    let args = A::from_arg_matches(m.subcommand_matches(name)?).ok()?;
    Some((verb(args), m))
}

/// Whether the command line names a command that starts container
/// processes (`run`, `start`, `restart`, `exec`, `build`, and their
/// `container`/`image` forms), read from the raw arguments before clap
/// builds its whole command tree. A command it misses is still caught by
/// `Command::starts_containers` after the parse; one it names wrongly
/// (`barge --root run images`) costs a re-execution, nothing more.
pub fn names_container_start(argv: &[OsString]) -> bool {
    let Some(i) = verb_index(argv) else { return false };
    let word = |i: usize| argv.get(i).and_then(|a| a.to_str());
    match word(i) {
        Some("run" | "start" | "restart" | "exec" | "build") => true,
        Some("container") => matches!(word(i + 1), Some("run" | "start" | "restart" | "exec")),
        Some("image") => word(i + 1) == Some("build"),
        _ => false,
    }
}

/// Where the verb is: after the global options (`--root DIR`, `-D`).
fn verb_index(argv: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        match a.to_str() {
            Some("--root" | "--config" | "--insecure-registry") => i += 2,
            Some(flag) if flag.starts_with('-') => i += 1,
            _ => return Some(i),
        }
    }
    None
}

fn context(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => v.first().cloned(),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        other => Some(other.to_string()),
    }
}

/// The usage line without its `Usage:` and the command's path in it
/// (`barge network create`).
fn usage_and_path(e: &clap::Error) -> (String, String) {
    let usage = context(e, ContextKind::Usage).unwrap_or_default();
    let usage = usage.trim().trim_start_matches("Usage:").trim().to_string();
    let path: Vec<&str> = usage
        .split_whitespace()
        .take_while(|w| {
            !w.starts_with('-')
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .collect();
    let path = if path.is_empty() {
        "barge".to_string()
    } else {
        path.join(" ")
    };
    (usage, path)
}

/// The fewest positional values the command at `path` takes.
fn required_values(path: &str) -> usize {
    let mut cmd = Cli::command();
    for word in path.split_whitespace().skip(1) {
        match cmd.find_subcommand(word) {
            Some(sub) => cmd = sub.clone(),
            None => return 1,
        }
    }
    let n: usize = cmd
        .get_positionals()
        .filter(|a| a.is_required_set())
        .map(|a| a.get_num_args().map_or(1, |r| r.min_values().max(1)))
        .sum();
    n.max(1)
}

fn about(path: &str) -> String {
    let mut cmd = Cli::command();
    for word in path.split_whitespace().skip(1) {
        match cmd.find_subcommand(word) {
            Some(sub) => cmd = sub.clone(),
            None => return String::new(),
        }
    }
    cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
}

fn docker_message(e: &clap::Error) -> Option<(String, i32)> {
    let (usage, path) = usage_and_path(e);
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let verb = context(e, ContextKind::InvalidSubcommand)?;
            Some((
                format!("{path}: '{verb}' is not a {path} command.\nSee '{path} --help'"),
                1,
            ))
        }
        ErrorKind::UnknownArgument => {
            let flag = context(e, ContextKind::InvalidArg)?;
            let flag = flag.split('=').next().unwrap_or(&flag).to_string();
            Some((format!("unknown flag: {flag}\nSee '{path} --help'."), 125))
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            let missing = context(e, ContextKind::InvalidArg).unwrap_or_default();
            // A required flag, not a positional argument: clap says it best.
            if missing.starts_with('-') {
                return None;
            }
            let n = required_values(&path);
            let plural = if n == 1 { "" } else { "s" };
            let about = about(&path);
            Some((
                format!(
                    "\"{path}\" requires at least {n} argument{plural}.\nSee '{path} --help'.\n\nUsage:  {usage}\n\n{about}"
                ),
                1,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{names_container_start, parse_start_path};
    use crate::args::Cli;
    use clap::Parser;
    use std::ffi::OsString;

    #[test]
    fn the_start_path_parse_gives_what_the_full_parse_gives() {
        let lines: &[&[&str]] = &[
            &["barge", "run", "--rm", "bb:1", "true"],
            &[
                "barge",
                "--root",
                "/r",
                "-D",
                "run",
                "-it",
                "--network",
                "none",
                "bb",
                "sh",
                "-c",
                "ls -l",
            ],
            &[
                "barge",
                "run",
                "--root=/r",
                "-e",
                "A=1",
                "--env=B",
                "-p",
                "8080:80",
                "-v",
                "/a:/b:ro",
                "bb",
                "ls",
                "-l",
                "--",
                "x",
            ],
            &[
                "barge",
                "run",
                "--insecure-registry",
                "r:5000",
                "-d",
                "--name",
                "c",
                "-u",
                "1000:1000",
                "r:5000/bb",
                "--rm",
            ],
            &[
                "barge",
                "run",
                "--memory",
                "64m",
                "--cpus",
                "0.5",
                "--pids-limit",
                "9",
                "--cap-add",
                "NET_ADMIN",
                "bb",
            ],
            &[
                "barge",
                "run",
                "--mount",
                "type=tmpfs,destination=/t",
                "--entrypoint",
                "",
                "-w",
                "/",
                "bb",
            ],
            &["barge", "exec", "c", "true"],
            &[
                "barge", "-D", "exec", "-it", "-e", "A=1", "-u", "0", "-w", "/tmp", "c", "sh", "-c", "echo $A",
            ],
            &["barge", "exec", "--privileged", "-d", "c", "sleep", "1", "--root", "x"],
            // An unknown flag where the image goes: clap takes it, and
            // `parse` answers docker's `unknown flag` from the result.
            &["barge", "run", "--bogus-flag", "bb"],
        ];
        for line in lines {
            let argv: Vec<OsString> = line.iter().map(OsString::from).collect();
            let fast = parse_start_path(&argv).unwrap_or_else(|| panic!("no start-path parse of {line:?}"));
            let full = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line:?}");
        }
        // Lines the full parse answers (help, errors, other verbs).
        for line in [
            &["barge", "run", "--help"][..],
            &["barge", "run"],
            &["barge", "exec", "c"],
            &["barge", "ps"],
            &["barge", "container", "run", "bb"],
        ] {
            let argv: Vec<OsString> = line.iter().map(OsString::from).collect();
            assert!(parse_start_path(&argv).is_none(), "{line:?}");
        }
    }

    fn names(line: &str) -> bool {
        let argv: Vec<OsString> = line.split(' ').map(OsString::from).collect();
        names_container_start(&argv)
    }

    #[test]
    fn container_starts_are_named_before_the_parse() {
        for line in [
            "barge run bb true",
            "barge --root /r -D exec c true",
            "barge container start c",
            "barge container restart c",
            "barge image build .",
            "barge build -t x .",
        ] {
            assert!(names(line), "{line}");
        }
        for line in [
            "barge",
            "barge images",
            "barge --root run images",
            "barge ps run",
            "barge container ls",
            "barge image ls",
            "barge pull run",
        ] {
            assert!(!names(line), "{line}");
        }
    }
}
