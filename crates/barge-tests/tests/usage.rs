//! The command line's own errors as the docker CLI words them, and their
//! exit statuses: 1 for an unknown verb or missing arguments, 125 for an
//! unknown flag, 0 for help.

use barge_tests::Barge;

fn run(b: &Barge, args: &[&str]) -> (Option<i32>, String, String) {
    let o = b.run(args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn unknown_verbs_get_no_misleading_tip() {
    let b = Barge::new();
    for (verb, not) in [("cpy", "copy"), ("puhs", "push"), ("imgaes", "images")] {
        let (code, _, err) = run(&b, &[verb, "x"]);
        assert_eq!(code, Some(1), "{verb}: {err}");
        assert_eq!(
            err,
            format!("barge: '{verb}' is not a barge command.\nSee 'barge --help'\n")
        );
        assert!(!err.contains(not) && !err.contains("tip"), "{err}");
    }
    let (code, _, err) = run(&b, &["network", "frob"]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("barge network: 'frob' is not a barge network command."),
        "{err}"
    );
}

#[test]
fn unknown_flags_exit_125_and_name_the_flag() {
    let b = Barge::new();
    let (code, _, err) = run(&b, &["ps", "--bogus"]);
    assert_eq!(
        (code, err.as_str()),
        (Some(125), "unknown flag: --bogus\nSee 'barge ps --help'.\n")
    );
    let (code, _, err) = run(&b, &["images", "--filter=a", "--colour=red"]);
    assert_eq!(code, Some(125));
    assert!(
        err.starts_with("unknown flag: --colour\nSee 'barge images --help'."),
        "{err}"
    );
    // Before IMAGE (or exec's CONTAINER) a flag barge does not know is
    // one, not an image name; after it, it is the container's.
    for (args, verb, flag) in [
        (&["run", "--rm", "--bogus", "img"][..], "run", "--bogus"),
        (
            &["container", "create", "--colour=red", "img"][..],
            "create",
            "--colour",
        ),
        (&["exec", "-x", "c", "ls"][..], "exec", "-x"),
    ] {
        let (code, _, err) = run(&b, args);
        assert_eq!(
            (code, err.as_str()),
            (
                Some(125),
                format!("unknown flag: {flag}\nSee 'barge {verb} --help'.\n").as_str()
            ),
            "{args:?}"
        );
    }
}

#[test]
fn missing_arguments_say_how_many_with_the_usage() {
    let b = Barge::new();
    let (code, _, err) = run(&b, &["run"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with(
            "\"barge run\" requires at least 1 argument.\nSee 'barge run --help'.\n\n\
             Usage:  barge run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
             Create and run a new container from an image"
        ),
        "{err}"
    );
    for args in [&["exec"][..], &["exec", "ctr"]] {
        let (code, _, err) = run(&b, args);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.starts_with("\"barge exec\" requires at least 2 arguments."),
            "{err}"
        );
    }
    let (code, _, err) = run(&b, &["tag", "a"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("\"barge tag\" requires at least 2 arguments."), "{err}");
}

#[test]
fn help_verb_is_the_help_flag() {
    let b = Barge::new();
    let (code, out, _) = run(&b, &["help", "run"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Usage: barge run [OPTIONS] IMAGE [COMMAND] [ARG...]"),
        "{out}"
    );
    let (code, out, _) = run(&b, &["help", "network", "create"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Usage: barge network create"), "{out}");
    let (code, out, _) = run(&b, &["help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Commands:") && out.contains("  run "), "{out}");
}

#[test]
fn version_and_shell_completion() {
    let b = Barge::new();
    let (code, out, _) = run(&b, &["version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("Client: barge\n Version:           "), "{out}");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert!(out.contains(&format!(" OS/Arch:           linux/{arch}\n")), "{out}");
    let (_, out, _) = run(&b, &["version", "--format", "{{.Client.Os}}"]);
    assert_eq!(out, "linux\n");
    // bash takes the script and completes barge's verbs and flags with it.
    let (code, script, _) = run(&b, &["completion", "bash"]);
    assert_eq!(code, Some(0));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("barge.bash");
    std::fs::write(&file, &script).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(barge ru); COMP_CWORD=1; _barge barge ru barge; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let o = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&o.stdout);
    assert!(
        words.lines().any(|w| w == "run"),
        "{words} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for shell in ["zsh", "fish"] {
        let (code, script, _) = run(&b, &["completion", shell]);
        assert_eq!(code, Some(0));
        assert!(script.contains("barge") && script.contains("pull"), "{shell}");
    }
    let (code, _, err) = run(&b, &["completion", "tcsh"]);
    assert_eq!(code, Some(125), "{err}");
}
