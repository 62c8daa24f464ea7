//! runc's command line: global flags, a command, its flags, its operands.
//! Flags are spelled `--name value`, `--name=value`, `-name value` or a
//! short letter (urfave/cli's rules, which runc and its callers use).

use crate::OcirtError;

/// Flags before the command.
#[derive(Debug, Default, Clone)]
pub struct Global {
    pub root: Option<String>,
    pub log: Option<String>,
    pub log_json: bool,
    pub systemd_cgroup: bool,
}

/// A command with its flags (by long name) and operands.
#[derive(Debug, Default)]
pub struct Command {
    pub name: String,
    flags: Vec<(String, String)>,
    pub operands: Vec<String>,
}

impl Command {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.value(name).is_some_and(|v| v != "false")
    }

    /// The container ID, the first operand: runc's rule, so that it never
    /// names a path outside the state directory.
    pub fn id(&self) -> Result<&str, OcirtError> {
        let id = self
            .operands
            .first()
            .ok_or_else(|| OcirtError::Usage(format!("{}: a container ID is required", self.name)))?;
        let ok = !id.is_empty()
            && id != "."
            && id != ".."
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
        if !ok {
            return Err(OcirtError::Usage(format!("invalid container ID {id:?}")));
        }
        Ok(id)
    }
}

/// (long name, short letter, takes a value) of each command's flags.
fn flags_of(command: &str) -> &'static [(&'static str, &'static str, bool)] {
    const CREATE: &[(&str, &str, bool)] = &[
        ("bundle", "b", true),
        ("pid-file", "", true),
        ("console-socket", "", true),
        ("no-pivot", "", false),
        ("no-new-keyring", "", false),
        ("preserve-fds", "", true),
        ("detach", "d", false),
        ("keep", "", false),
        ("no-subreaper", "", false),
    ];
    match command {
        "create" | "run" => CREATE,
        "kill" => &[("all", "a", false)],
        "ps" => &[("format", "f", true)],
        "delete" => &[("force", "f", false)],
        "exec" => &[
            ("process", "p", true),
            ("detach", "d", false),
            ("pid-file", "", true),
            ("console-socket", "", true),
            ("tty", "t", false),
            ("cwd", "", true),
            ("env", "e", true),
            ("user", "u", true),
            ("cap", "c", true),
            ("no-new-privs", "", false),
            ("preserve-fds", "", true),
            ("process-label", "", true),
            ("apparmor", "", true),
            ("additional-gids", "g", true),
            ("ignore-paused", "", false),
        ],
        "spec" => &[("bundle", "b", true), ("rootless", "", false)],
        _ => &[],
    }
}

/// A flag's name and inline value: `--a=b`, `-a`, `--a`.
fn split_flag(arg: &str) -> Option<(String, Option<String>)> {
    let bare = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if bare.is_empty() {
        return None;
    }
    Some(match bare.split_once('=') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (bare.to_string(), None),
    })
}

/// Parses `barge-runtime [GLOBAL] COMMAND [FLAGS] OPERANDS`.
pub fn parse(args: &[String]) -> Result<(Global, Command), OcirtError> {
    let mut g = Global::default();
    let mut it = args.iter().peekable();
    let next_value = |name: &str, inline: Option<String>, it: &mut std::iter::Peekable<std::slice::Iter<String>>| {
        inline
            .or_else(|| it.next().cloned())
            .ok_or_else(|| OcirtError::Usage(format!("flag --{name} needs a value")))
    };
    let name = loop {
        let Some(arg) = it.next() else {
            return Err(OcirtError::Usage("no command given".into()));
        };
        let Some((flag, inline)) = split_flag(arg) else {
            break arg.clone();
        };
        match flag.as_str() {
            "root" => g.root = Some(next_value(&flag, inline, &mut it)?),
            "log" => g.log = Some(next_value(&flag, inline, &mut it)?),
            "log-format" => g.log_json = next_value(&flag, inline, &mut it)? == "json",
            "systemd-cgroup" => g.systemd_cgroup = inline.as_deref() != Some("false"),
            "debug" | "rootless" => {
                if flag == "rootless"
                    && inline.is_none()
                    && it.peek().is_some_and(|v| *v == "true" || *v == "false" || *v == "auto")
                {
                    it.next();
                }
            }
            "criu" => {
                next_value(&flag, inline, &mut it)?;
            }
            "version" | "v" => break "--version".into(),
            "help" | "h" => break "help".into(),
            _ => return Err(OcirtError::Usage(format!("unknown global flag {arg}"))),
        }
    };
    let known = flags_of(&name);
    let mut cmd = Command {
        name,
        ..Command::default()
    };
    let mut only_operands = false;
    while let Some(arg) = it.next() {
        // Once the ID is known, exec's command line is operands whatever it looks like.
        if only_operands || (cmd.name == "exec" && !cmd.operands.is_empty()) {
            cmd.operands.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_operands = true;
            continue;
        }
        // A negative signal number (`kill ID -9` is not runc's) stays an operand.
        let Some((flag, inline)) = split_flag(arg) else {
            cmd.operands.push(arg.clone());
            continue;
        };
        let Some(&(long, _, takes)) = known
            .iter()
            .find(|(l, s, _)| *l == flag || (!s.is_empty() && *s == flag))
        else {
            return Err(OcirtError::Usage(format!("{}: unknown flag {arg}", cmd.name)));
        };
        let value = if takes {
            next_value(long, inline, &mut it)?
        } else {
            inline.unwrap_or_else(|| "true".into())
        };
        cmd.flags.push((long.to_string(), value));
    }
    Ok((g, cmd))
}

/// The global flags of a command line that failed to parse further: where
/// to log the failure.
pub fn parse_global_only(args: &[String]) -> Global {
    let mut g = Global::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some((flag, inline)) = split_flag(arg) else { break };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag.as_str() {
            "log" => g.log = value(),
            "log-format" => g.log_json = value().as_deref() == Some("json"),
            "root" => g.root = value(),
            _ => {}
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn podmans_calls_parse() {
        let (g, c) = parse(&args(
            "--systemd-cgroup --root /run/x --log /l --log-format=json create --bundle /b --pid-file /p --console-socket /s c1",
        ))
        .unwrap();
        assert!(g.systemd_cgroup && g.log_json);
        assert_eq!(g.root.as_deref(), Some("/run/x"));
        assert_eq!(
            (c.name.as_str(), c.value("bundle"), c.id().unwrap()),
            ("create", Some("/b"), "c1")
        );
        let (_, c) = parse(&args("exec -d --pid-file /p --process /f c1")).unwrap();
        assert!(c.is_set("detach"));
        let (_, c) = parse(&args("exec c1 sh -c true")).unwrap();
        assert_eq!(c.operands, args("c1 sh -c true"));
        let (_, c) = parse(&args("kill --all c1 KILL")).unwrap();
        assert!(c.is_set("all"));
        assert_eq!(c.operands, args("c1 KILL"));
        let (_, c) = parse(&args("delete -f c1")).unwrap();
        assert!(c.is_set("force"));
    }

    #[test]
    fn ids_never_name_paths() {
        for bad in ["../x", "a/b", "..", ".", ""] {
            let c = Command {
                name: "state".into(),
                operands: vec![bad.into()],
                ..Command::default()
            };
            assert!(c.id().is_err(), "{bad}");
        }
        assert!(parse(&args("create --bogus x")).is_err());
    }
}
