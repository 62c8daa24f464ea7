//! The Dockerfile grammar: parser directives, line continuations, comments,
//! instructions with their flags, exec (JSON) and shell forms, and the
//! variable substitution and word splitting docker applies to arguments.
//!
//! [`parse`] turns the text into [`Line`]s, each holding an [`Instruction`]
//! with its arguments in their parsed form. Everything that does not depend
//! on variables is checked here (flags, forms, modes); what does (a `$VAR`
//! in a path or a port) is kept as [`Args`] and substituted by the build
//! when it reaches the instruction, since ARG and ENV change the values.

use crate::BuildError;
use barge_oci::Digest;
use std::collections::BTreeMap;

/// One instruction, continuation lines joined, and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The line it starts on (1-based), for error messages.
    pub number: usize,
    /// The instruction as `Step n/N :` shows it: keyword, flags, arguments.
    pub shown: String,
    pub instruction: Instruction,
    /// The here-documents of a RUN, COPY or ADD, in the order written.
    pub heredocs: Vec<Heredoc>,
}

/// A here-document: `<<EOF` on an instruction's line, its text the lines
/// that follow up to `EOF` alone on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// The lines, each with its newline.
    pub content: String,
    /// `<<-EOF`: leading tabs are stripped from every line (and the end line).
    pub chomp: bool,
    /// Unquoted (`<<EOF`, not `<<"EOF"` or `<<'EOF'`): COPY substitutes variables.
    pub expand: bool,
}

impl Heredoc {
    /// The heredoc a word of the line starts (`<<EOF`, `<<-EOF`,
    /// `<<"EOF"`, `2<<EOF`): its name, whether it chomps, whether it
    /// expands. Quotes are matched in pairs around the name only.
    pub fn marker(word: &str) -> Option<(String, bool, bool)> {
        let rest = word
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .strip_prefix("<<")?;
        if rest.starts_with('<') {
            return None;
        }
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (name, quoted) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => (rest.strip_prefix(q)?.strip_suffix(q)?, true),
            _ => (rest, false),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        valid.then(|| (name.to_string(), chomp, !quoted))
    }

    /// The text as used: with `<<-`, every line's leading tabs removed.
    pub fn text(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

impl Line {
    /// An error of this instruction: `Dockerfile line N: KEYWORD: message`.
    pub fn error(&self, message: impl std::fmt::Display) -> BuildError {
        BuildError::Dockerfile {
            line: self.number,
            message: format!("{}: {message}", self.instruction.keyword()),
        }
    }
}

/// A Dockerfile instruction with its parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    /// `FROM [--platform=P] IMAGE [AS NAME]`: the words after the flags, and the platform.
    From {
        image: Args,
        platform: Option<Args>,
    },
    /// The command and its `--mount=` and `--network=` flags.
    Run(Command, RunFlags),
    Cmd(Command),
    Entrypoint(Command),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// `KEY=VALUE …`, or the legacy `KEY VALUE`.
    Env(Args),
    /// `NAME[=DEFAULT] …`.
    Arg(Args),
    /// `KEY=VALUE …`.
    Label(Args),
    /// `PORT[/PROTO] …`.
    Expose(Args),
    Volume(List),
    User(Args),
    Workdir(Args),
    Stopsignal(Args),
    /// `HEALTHCHECK NONE`, or its flags and CMD, as docker stores them.
    Healthcheck(barge_oci::image::Healthcheck),
    /// The shell of shell-form commands from here on (JSON form only).
    Shell(Vec<String>),
    /// The trigger, as written (checked to be an instruction ONBUILD may hold).
    Onbuild(String),
    /// The author, as written.
    Maintainer(String),
}

/// Arguments as written, substituted when the build reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub text: String,
    /// The escape character in force.
    pub escape: char,
}

impl Args {
    /// The arguments split into words, variables substituted.
    pub fn words(&self, vars: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
        words(&self.text, self.escape, vars)
    }
}

/// The command of RUN, CMD and ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["prog", "arg"]`: run as it is.
    Exec(Vec<String>),
    /// A command line, run through the SHELL (never empty).
    Shell(String),
}

/// A list of COPY/ADD or VOLUME: a JSON array, or words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum List {
    Exec(Vec<String>),
    Words(Args),
}

impl List {
    fn parse(args: &str, escape: char) -> List {
        match exec_form(args) {
            Some(a) => List::Exec(a),
            None => List::Words(Args {
                text: args.to_string(),
                escape,
            }),
        }
    }

    /// The items, variables substituted in the words form (never in JSON).
    pub fn items(&self, vars: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
        match self {
            List::Exec(a) => Ok(a.clone()),
            List::Words(w) => w.words(vars),
        }
    }
}

/// COPY and ADD: the flags and the sources and destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    /// `--from=STAGE` (refused by the build: one stage only).
    pub from: Option<String>,
    /// `--chown=USER[:GROUP]`, substituted and resolved in the image.
    pub chown: Option<Args>,
    /// `--chmod=MODE`, octal.
    pub chmod: Option<u32>,
    /// ADD's `--checksum=sha256:…`: what a URL source must hash to.
    pub checksum: Option<Digest>,
    /// Sources, then the destination.
    pub paths: List,
}

impl Instruction {
    /// The keyword, as error messages name it.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From { .. } => "FROM",
            Instruction::Run(..) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }

    /// The instruction `keyword` (upper case) names, from its flags and
    /// arguments; `None` for a keyword that is not an instruction. The
    /// error is the message, without the keyword.
    fn parse(
        keyword: &str,
        flags: &[(String, String)],
        args: &str,
        escape: char,
    ) -> Option<Result<Instruction, String>> {
        let words = || Args {
            text: args.to_string(),
            escape,
        };
        let i = match keyword {
            "FROM" => from(flags, words()),
            "RUN" => run(flags, args),
            "CMD" => command(args).map(Instruction::Cmd),
            "ENTRYPOINT" => command(args).map(Instruction::Entrypoint),
            "COPY" => copy(flags, args, escape, false).map(Instruction::Copy),
            "ADD" => copy(flags, args, escape, true).map(Instruction::Add),
            "ENV" => Ok(Instruction::Env(words())),
            "ARG" => Ok(Instruction::Arg(words())),
            "LABEL" => Ok(Instruction::Label(words())),
            "EXPOSE" => Ok(Instruction::Expose(words())),
            "VOLUME" => Ok(Instruction::Volume(List::parse(args, escape))),
            "USER" => Ok(Instruction::User(words())),
            "WORKDIR" => Ok(Instruction::Workdir(words())),
            "STOPSIGNAL" => Ok(Instruction::Stopsignal(words())),
            "HEALTHCHECK" => healthcheck(flags, args).map(Instruction::Healthcheck),
            "SHELL" => exec_form(args)
                .filter(|a| !a.is_empty())
                .map(Instruction::Shell)
                .ok_or_else(|| "needs the JSON form, e.g. SHELL [\"/bin/bash\", \"-c\"]".to_string()),
            "ONBUILD" => onbuild(args, escape).map(Instruction::Onbuild),
            "MAINTAINER" => Ok(Instruction::Maintainer(args.trim().to_string())),
            _ => return None,
        };
        Some(i)
    }
}

/// Instructions that take `--flag=value` options.
const FLAGGED: &[&str] = &["FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"];

/// The last value of a flag, as docker takes it.
fn flag<'f>(flags: &'f [(String, String)], name: &str) -> Option<&'f str> {
    flags.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The arguments as a JSON array of strings, if written that way.
fn exec_form(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn from(flags: &[(String, String)], image: Args) -> Result<Instruction, String> {
    if let Some((k, _)) = flags.iter().find(|(k, _)| k != "platform") {
        return Err(format!("unknown flag --{k}"));
    }
    let platform = flag(flags, "platform").map(|p| Args {
        text: p.to_string(),
        escape: image.escape,
    });
    Ok(Instruction::From { image, platform })
}

/// `HEALTHCHECK NONE`, or `HEALTHCHECK [--interval=…] … CMD command`:
/// `Test` is `["CMD", …]` for the exec form, `["CMD-SHELL", line]` for a
/// command line; durations in nanoseconds, zeros left out, as docker's.
fn healthcheck(flags: &[(String, String)], args: &str) -> Result<barge_oci::image::Healthcheck, String> {
    let mut h = barge_oci::image::Healthcheck::default();
    let (word, rest) = args.trim().split_once(char::is_whitespace).unwrap_or((args.trim(), ""));
    match word.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !flags.is_empty() || !rest.trim().is_empty() {
                return Err("NONE takes no flags and no arguments".into());
            }
            h.test = Some(vec!["NONE".into()]);
            return Ok(h);
        }
        "CMD" => {}
        _ => return Err("expected NONE or [OPTIONS] CMD command".into()),
    }
    h.test = Some(match command(rest)? {
        Command::Exec(argv) if argv.is_empty() => return Err("CMD needs a command".into()),
        Command::Exec(argv) => std::iter::once("CMD".to_string()).chain(argv).collect(),
        Command::Shell(text) => vec!["CMD-SHELL".into(), text],
    });
    for (k, v) in flags {
        let d = || -> Result<Option<i64>, String> {
            let ns = barge_oci::time::go_duration(v).map_err(|e| format!("--{k}={v}: {e}"))?;
            if ns != 0 && ns < 1_000_000 {
                return Err(format!("--{k}={v}: cannot be less than 1ms"));
            }
            Ok((ns != 0).then_some(ns))
        };
        match k.as_str() {
            "interval" => h.interval = d()?,
            "timeout" => h.timeout = d()?,
            "start-period" => h.start_period = d()?,
            "start-interval" => h.start_interval = d()?,
            "retries" => {
                let n: i64 = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("--retries={v}: expected a number, 0 or more"))?;
                h.retries = (n != 0).then_some(n);
            }
            _ => return Err(format!("unknown flag --{k}")),
        }
    }
    Ok(h)
}

/// An ONBUILD trigger: an instruction other than FROM, ONBUILD and
/// MAINTAINER, checked now so that a mistake shows here, not in the
/// build that uses the image.
fn onbuild(args: &str, escape: char) -> Result<String, String> {
    let trigger = args.trim();
    if trigger.is_empty() {
        return Err("needs an instruction".into());
    }
    let line = instruction(0, trigger, escape).map_err(|e| match e {
        BuildError::Dockerfile { message, .. } => message,
        other => other.to_string(),
    })?;
    match line.instruction {
        Instruction::From { .. } | Instruction::Onbuild(_) | Instruction::Maintainer(_) => {
            Err(format!("{} is not allowed as a trigger", line.instruction.keyword()))
        }
        _ => Ok(trigger.to_string()),
    }
}

/// `RUN --mount=type=cache,target=DIR[,id=ID][,sharing=shared|locked|private]
/// [,readonly][,mode=OCTAL][,uid=N][,gid=N]`: a directory kept in the
/// store across builds, mounted where the command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMount {
    /// Where it is mounted: absolute, or against WORKDIR.
    pub target: String,
    /// The cache's name: `id=`, else the target as written.
    pub id: String,
    /// `locked` and `private`: one RUN at a time uses it (barge makes no
    /// private copies; `private` waits as `locked` does).
    pub exclusive: bool,
    pub readonly: bool,
    /// Owner and mode of the directory when first made.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `RUN --mount=type=secret,id=ID[,target=FILE][,required][,mode=OCTAL]
/// [,uid=N][,gid=N]`: a `--secret` of the build, as a read-only file
/// (a copy with that owner and mode) for the one command, never in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub id: String,
    /// `target=`, else `/run/secrets/ID`.
    pub target: String,
    /// Without it, a secret the build was not given is not mounted.
    pub required: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// RUN's flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFlags {
    pub mounts: Vec<RunMount>,
    /// `--network=default|none|host`; `None` is the build's.
    pub network: Option<RunNetwork>,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    /// The build's network.
    Default,
    None,
    /// Only when the build was given `--network host`.
    Host,
}

/// `RUN --mount=type=bind,target=PATH[,source=PATH][,from=STAGE|IMAGE][,rw]`:
/// a file or directory of the context (default) or of a stage or image,
/// for the one command. It gets a copy: `rw` writes go nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub target: String,
    /// In the context or the stage; empty for its root.
    pub source: String,
    pub from: Option<String>,
    pub rw: bool,
}

/// What `RUN --mount=` gives the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    Bind(BindMount),
    Cache(CacheMount),
    Secret(SecretMount),
}

fn run(flags: &[(String, String)], args: &str) -> Result<Instruction, String> {
    let mut f = RunFlags::default();
    for (k, v) in flags {
        match (k.as_str(), v.as_str()) {
            ("mount", v) => f.mounts.push(mount(v)?),
            ("network", "default") => f.network = Some(RunNetwork::Default),
            ("network", "none") => f.network = Some(RunNetwork::None),
            ("network", "host") => f.network = Some(RunNetwork::Host),
            ("network", v) => return Err(format!("--network={v}: expected default, none or host")),
            _ => return Err(format!("the flag --{k} is not supported")),
        }
    }
    Ok(Instruction::Run(command(args)?, f))
}

/// One `--mount=` value: `type=cache` or `type=secret`.
fn mount(spec: &str) -> Result<RunMount, String> {
    let mut kind = "bind";
    let (mut target, mut id, mut mode, mut sharing) = (None, None, None, None);
    let (mut readonly, mut required, mut uid, mut gid) = (false, false, 0, 0);
    let (mut from, mut source, mut rw) = (None, None, false);
    let number = |k: &str, v: &str, radix: u32| {
        u32::from_str_radix(v, radix).map_err(|_| format!("--mount={spec}: {k}={v} is not a number"))
    };
    let yes = |k: &str, v: &str| match v {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("--mount={spec}: {k}={v}: expected true or false")),
    };
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match k.to_ascii_lowercase().as_str() {
            "type" => kind = v,
            "target" | "dst" | "destination" => target = Some(v.to_string()),
            "id" => id = Some(v.to_string()),
            "sharing" => match v {
                "shared" | "locked" | "private" => sharing = Some(v != "shared"),
                _ => {
                    return Err(format!(
                        "--mount={spec}: sharing={v}: expected shared, locked or private"
                    ))
                }
            },
            "readonly" | "ro" => readonly = yes(k, v)?,
            "required" => required = yes(k, v)?,
            "mode" => mode = Some(number(k, v, 8)? & 0o7777),
            "uid" => uid = number(k, v, 10)?,
            "gid" => gid = number(k, v, 10)?,
            "from" => from = Some(v.to_string()),
            "source" | "src" => source = Some(v.to_string()),
            "rw" | "readwrite" => rw = yes(k, v)?,
            _ => return Err(format!("--mount={spec}: unknown option {part:?}")),
        }
    }
    let target = target.filter(|t| !t.is_empty());
    let id = id.filter(|i| !i.is_empty());
    if kind != "bind" && (from.is_some() || source.is_some() || rw) {
        return Err(format!("--mount={spec}: from=, source= and rw are for type=bind"));
    }
    match kind {
        "cache" => {
            let target = target.ok_or_else(|| format!("--mount={spec}: needs target=DIR"))?;
            Ok(RunMount::Cache(CacheMount {
                id: id.unwrap_or_else(|| target.clone()),
                target,
                exclusive: sharing.unwrap_or(false),
                readonly,
                mode: mode.unwrap_or(0o755),
                uid,
                gid,
            }))
        }
        "secret" => {
            if sharing.is_some() {
                return Err(format!("--mount={spec}: sharing= is for type=cache"));
            }
            // BuildKit: the id defaults to the target's file name.
            let id = id
                .or_else(|| target.as_deref().and_then(|t| t.rsplit('/').next()).map(str::to_string))
                .filter(|i| !i.is_empty())
                .ok_or_else(|| format!("--mount={spec}: needs id=ID"))?;
            Ok(RunMount::Secret(SecretMount {
                target: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                id,
                required,
                mode: mode.unwrap_or(0o400),
                uid,
                gid,
            }))
        }
        "bind" => {
            let target = target.ok_or_else(|| format!("--mount={spec}: needs target=PATH"))?;
            Ok(RunMount::Bind(BindMount {
                target,
                source: source.unwrap_or_default(),
                from: from.filter(|f| !f.is_empty()),
                rw,
            }))
        }
        _ => Err(format!(
            "--mount=type={kind} is not supported (bind, cache and secret are; tmpfs and ssh mounts are not yet)"
        )),
    }
}

/// CMD/ENTRYPOINT/RUN arguments: the exec form, or a shell command line.
fn command(args: &str) -> Result<Command, String> {
    if let Some(argv) = exec_form(args) {
        return Ok(Command::Exec(argv));
    }
    match args.trim() {
        "" => Err("needs a command".into()),
        text => Ok(Command::Shell(text.to_string())),
    }
}

fn copy(flags: &[(String, String)], args: &str, escape: char, add: bool) -> Result<CopyArgs, String> {
    if let Some((k, _)) = flags
        .iter()
        .find(|(k, _)| !(matches!(k.as_str(), "chown" | "chmod" | "from") || (add && k == "checksum")))
    {
        return Err(format!("the flag --{k} is not supported"));
    }
    let checksum = match flag(flags, "checksum") {
        Some(c) => Some(
            c.strip_prefix("sha256:")
                .and_then(|hex| Digest::from_hex(hex).ok())
                .ok_or_else(|| format!("--checksum={c}: expected sha256: and 64 hexadecimal digits"))?,
        ),
        None => None,
    };
    let chmod = match flag(flags, "chmod") {
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("--chmod={m}: expected an octal mode such as 755"))?,
        ),
        None => None,
    };
    Ok(CopyArgs {
        from: flag(flags, "from").map(str::to_string),
        chown: flag(flags, "chown").map(|c| Args {
            text: c.to_string(),
            escape,
        }),
        chmod,
        checksum,
        paths: List::parse(args, escape),
    })
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Vec<Line>, BuildError> {
    let mut lines = text.lines().enumerate().peekable();
    let escape = directives(&mut lines)?;
    let mut out = Vec::new();
    while let Some((i, raw)) = lines.next() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let logical = join_continued(raw, &mut lines, escape);
        let mut line = instruction(i + 1, logical.trim(), escape)?;
        line.heredocs = heredocs(&line, &mut lines)?;
        out.push(line);
    }
    Ok(out)
}

/// The here-documents a RUN, COPY or ADD line (not in JSON form) opens,
/// each taking the lines that follow up to its name alone on a line.
fn heredocs(line: &Line, lines: &mut Lines) -> Result<Vec<Heredoc>, BuildError> {
    let text = match &line.instruction {
        Instruction::Run(Command::Shell(text), _) => text.as_str(),
        Instruction::Copy(CopyArgs {
            paths: List::Words(a), ..
        })
        | Instruction::Add(CopyArgs {
            paths: List::Words(a), ..
        }) => a.text.as_str(),
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let Some((name, chomp, expand)) = Heredoc::marker(word) else {
            continue;
        };
        let mut content = String::new();
        loop {
            let Some((_, l)) = lines.next() else {
                return Err(line.error(format!("the here-document <<{name} has no line {name} to end it")));
            };
            let end = if chomp { l.trim_start_matches('\t') } else { l };
            if end == name {
                break;
            }
            content.push_str(l);
            content.push('\n');
        }
        out.push(Heredoc {
            name,
            content,
            chomp,
            expand,
        });
    }
    Ok(out)
}

type Lines<'t> = std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'t>>>;

/// Parser directives, leading `# key=value` comments: the escape character.
fn directives(lines: &mut Lines) -> Result<char, BuildError> {
    let mut escape = '\\';
    while let Some((_, l)) = lines.peek() {
        let Some(body) = l.trim().strip_prefix('#') else { break };
        let Some((k, v)) = body.split_once('=') else { break };
        match k.trim().to_ascii_lowercase().as_str() {
            "escape" => {
                escape = match v.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(BuildError::Dockerfile {
                            line: 1,
                            message: format!("invalid escape directive {other:?}: use \\ or `"),
                        })
                    }
                }
            }
            "syntax" | "check" => {}
            _ => break,
        }
        lines.next();
    }
    Ok(escape)
}

/// `first` with the lines it continues (an escape at the end) joined to it.
fn join_continued(first: &str, lines: &mut Lines, escape: char) -> String {
    let mut logical = String::new();
    let mut current = first.trim_end().to_string();
    loop {
        match current.strip_suffix(escape) {
            Some(head) => {
                logical.push_str(head);
                // Next non-comment, non-empty line continues this one.
                let next = lines.by_ref().map(|(_, l)| l).find(|l| {
                    let t = l.trim();
                    !(t.starts_with('#') || t.is_empty())
                });
                match next {
                    Some(n) => current = n.trim_end().to_string(),
                    None => break,
                }
            }
            None => {
                logical.push_str(&current);
                break;
            }
        }
    }
    logical
}

/// One logical line: keyword, flags, arguments.
fn instruction(number: usize, logical: &str, escape: char) -> Result<Line, BuildError> {
    let (word, rest) = logical.split_once(char::is_whitespace).unwrap_or((logical, ""));
    let keyword = word.to_ascii_uppercase();
    let mut rest = rest.trim_start();
    let mut flags = Vec::new();
    if FLAGGED.contains(&keyword.as_str()) {
        while let Some(f) = rest.strip_prefix("--") {
            let (tok, after) = f.split_once(char::is_whitespace).unwrap_or((f, ""));
            let (k, v) = tok.split_once('=').unwrap_or((tok, ""));
            flags.push((k.to_string(), v.to_string()));
            rest = after.trim_start();
        }
    }
    let fail = |message| BuildError::Dockerfile { line: number, message };
    let instruction = Instruction::parse(&keyword, &flags, rest, escape)
        .ok_or_else(|| fail(format!("unknown instruction: {word}")))?
        .map_err(|m| fail(format!("{keyword}: {m}")))?;
    let shown: String = flags.iter().map(|(k, v)| format!("--{k}={v} ")).collect();
    Ok(Line {
        number,
        shown: format!("{keyword} {shown}{rest}"),
        instruction,
        heredocs: Vec::new(),
    })
}

/// Splits `s` into words as docker does for ENV, LABEL, COPY and the like:
/// whitespace separates words, quotes group and are removed, the escape
/// character escapes the next one, and `$VAR`, `${VAR}`, `${VAR:-word}`,
/// `${VAR:+word}` are substituted (not inside single quotes).
pub fn words(s: &str, escape: char, vars: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                cur.push(n);
                in_word = true;
                i += 2;
                continue;
            }
            cur.push(c);
            i += 1;
            continue;
        }
        match c {
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    cur.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unmatched single quote".into());
                }
                i += 1;
            }
            '"' => {
                in_word = true;
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unmatched double quote".into());
                    };
                    if c == '"' {
                        i += 1;
                        break;
                    }
                    if c == escape && matches!(chars.get(i + 1), Some('"' | '$') | Some('\\')) {
                        cur.push(chars[i + 1]);
                        i += 2;
                    } else if c == '$' {
                        i = substitute(&chars, i, vars, &mut cur)?;
                    } else {
                        cur.push(c);
                        i += 1;
                    }
                }
            }
            '$' => {
                in_word = true;
                i = substitute(&chars, i, vars, &mut cur)?;
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                i += 1;
            }
            c => {
                cur.push(c);
                in_word = true;
                i += 1;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// A COPY here-document's text with its variables substituted: `$VAR`,
/// `${VAR…}` as in words, `\$` a plain `$`; quotes and everything else
/// stay as written.
pub fn expand_text(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    substitute_all(text, true, vars)
}

/// Substitutes the variables of a `${…}` default, as written.
fn expand(word: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    substitute_all(word, false, vars)
}

/// Every `$…` of `text` substituted; `\$` a plain `$` when `escapes`.
fn substitute_all(text: &str, escapes: bool, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if escapes && chars[i] == '\\' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if chars[i] == '$' {
            i = substitute(&chars, i, vars, &mut out)?;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Expands one `$…` at `chars[i]` into `out`; returns the index after it.
fn substitute(chars: &[char], i: usize, vars: &BTreeMap<String, String>, out: &mut String) -> Result<usize, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.get(i + 1) {
        Some('{') => {
            // The matching brace: defaults may hold substitutions of their own.
            let mut depth = 0;
            let mut close = None;
            for (k, &c) in chars.iter().enumerate().skip(i + 2) {
                match c {
                    '{' if chars[k - 1] == '$' => depth += 1,
                    '}' if depth == 0 => {
                        close = Some(k);
                        break;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let close = close.ok_or("missing } in a ${…} substitution")?;
            let inner: String = chars[i + 2..close].iter().collect();
            let name_end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_end);
            if name.is_empty() {
                return Err(format!("bad substitution ${{{inner}}}"));
            }
            let value = vars.get(name);
            let set = value.is_some_and(|v| !v.is_empty());
            let word = |w: &str| expand(w, vars);
            let expanded = match op {
                "" => value.cloned().unwrap_or_default(),
                o if o.starts_with(":-") => {
                    if set {
                        value.cloned().unwrap_or_default()
                    } else {
                        word(&o[2..])?
                    }
                }
                o if o.starts_with(":+") => {
                    if set {
                        word(&o[2..])?
                    } else {
                        String::new()
                    }
                }
                o if o.starts_with('-') => match value {
                    Some(v) => v.clone(),
                    None => word(&o[1..])?,
                },
                o if o.starts_with('+') => match value {
                    Some(_) => word(&o[1..])?,
                    None => String::new(),
                },
                _ => return Err(format!("unsupported substitution ${{{inner}}}")),
            };
            out.push_str(&expanded);
            Ok(close + 1)
        }
        Some(&c) if is_name(c) => {
            let end = chars[i + 1..]
                .iter()
                .position(|&c| !is_name(c))
                .map(|p| p + i + 1)
                .unwrap_or(chars.len());
            let name: String = chars[i + 1..end].iter().collect();
            out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
            Ok(end)
        }
        _ => {
            out.push('$');
            Ok(i + 1)
        }
    }
}

/// `KEY=VALUE` pairs of ENV, LABEL and ARG; also the legacy `ENV KEY VALUE` form
/// when `legacy` is allowed.
pub fn pairs(args: &Args, vars: &BTreeMap<String, String>, legacy: bool) -> Result<Vec<(String, String)>, String> {
    let ws = args.words(vars)?;
    let Some(first) = ws.first() else {
        return Err("needs at least one argument".into());
    };
    if legacy && !first.contains('=') {
        let key = first.clone();
        let text = args.text.trim_start();
        let rest = text[text.find(char::is_whitespace).unwrap_or(text.len())..].trim();
        if rest.is_empty() {
            return Err(format!("{key} needs a value"));
        }
        let value = words(rest, args.escape, vars)?.join(" ");
        return Ok(vec![(key, value)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{w:?}: empty name")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("{w:?} is not KEY=VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn args(text: &str) -> Args {
        Args {
            text: text.into(),
            escape: '\\',
        }
    }

    /// The one instruction of `text`.
    fn one(text: &str) -> Instruction {
        let mut lines = parse(text).unwrap();
        assert_eq!(lines.len(), 1, "{text}");
        lines.remove(0).instruction
    }

    /// The message of the error `text` gives.
    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn continuations_comments_and_flags() {
        let df = "# syntax=docker/dockerfile:1\nFROM scratch\n\n# a comment\ncopy --chown=1:2 --chmod=755 \\\n  # inside\n  a b \\\n  /dst/\nCMD [\"/demo\"]\n";
        let lines = parse(df).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].number, 2);
        assert_eq!(lines[1].number, 5);
        assert_eq!(lines[1].shown, "COPY --chown=1:2 --chmod=755 a b   /dst/");
        let Instruction::Copy(c) = &lines[1].instruction else {
            panic!("{:?}", lines[1].instruction)
        };
        assert_eq!(c.chown, Some(args("1:2")));
        assert_eq!(c.chmod, Some(0o755));
        assert_eq!(c.paths.items(&BTreeMap::new()).unwrap(), ["a", "b", "/dst/"]);
        assert_eq!(
            lines[2].instruction,
            Instruction::Cmd(Command::Exec(vec!["/demo".into()]))
        );
        let e = error("FROM scratch\nFROB x\n");
        assert!(e.contains("line 2") && e.contains("unknown instruction: FROB"), "{e}");
    }

    #[test]
    fn heredocs_take_the_lines_up_to_their_name() {
        let df = "# syntax=docker/dockerfile:1.4\nFROM scratch\nRUN <<EOF\necho a\n\n# not a comment\nEOF\n\
                  RUN 3<<-\"ONE\" cat /dev/fd/3 <<'TWO' && x\n\tone $A\n\tONE\ntwo\nTWO\nCOPY <<conf.txt /etc/\nk=$V\nconf.txt\nCMD [\"<<EOF\"]\n";
        let lines = parse(df).unwrap();
        assert_eq!(lines.len(), 5);
        let docs = |i: usize| -> Vec<(String, String, bool, bool)> {
            lines[i]
                .heredocs
                .iter()
                .map(|h| (h.name.clone(), h.text(), h.chomp, h.expand))
                .collect()
        };
        assert_eq!(
            lines[1].instruction,
            Instruction::Run(Command::Shell("<<EOF".into()), RunFlags::default())
        );
        assert_eq!(
            docs(1),
            [("EOF".into(), "echo a\n\n# not a comment\n".into(), false, true)]
        );
        assert_eq!(
            docs(2),
            [
                ("ONE".into(), "one $A\n".into(), true, false),
                ("TWO".into(), "two\n".into(), false, false)
            ]
        );
        assert_eq!(lines[2].heredocs[0].content, "\tone $A\n", "kept as written");
        assert_eq!(docs(3), [("conf.txt".into(), "k=$V\n".into(), false, true)]);
        assert_eq!(lines[3].number, 13);
        assert!(lines[4].heredocs.is_empty(), "no heredocs in JSON form");
        for word in ["<<<EOF", "<<", "<<\"EOF", "a<<EOF"] {
            assert_eq!(Heredoc::marker(word), None, "{word}");
        }
        let e = error("FROM scratch\nRUN <<EOF\necho\n");
        assert!(
            e.contains("line 2: RUN: the here-document <<EOF has no line EOF to end it"),
            "{e}"
        );
    }

    #[test]
    fn escape_directive() {
        let lines = parse("# escape=`\nFROM scratch\nCOPY a `\n  c:\\dir\\\n").unwrap();
        let Instruction::Copy(c) = &lines[1].instruction else {
            panic!("{:?}", lines[1].instruction)
        };
        assert_eq!(c.paths.items(&BTreeMap::new()).unwrap(), ["a", "c:\\dir\\"]);
        let e = error("# escape=x\nFROM scratch\n");
        assert!(
            e.contains("line 1") && e.contains("invalid escape directive \"x\""),
            "{e}"
        );
    }

    #[test]
    fn from_with_and_without_a_platform() {
        assert_eq!(
            one("FROM busybox AS base"),
            Instruction::From {
                image: args("busybox AS base"),
                platform: None
            }
        );
        assert_eq!(
            one("from --platform=linux/arm64 busybox"),
            Instruction::From {
                image: args("busybox"),
                platform: Some(args("linux/arm64"))
            }
        );
        let e = error("FROM --pull=always busybox");
        assert!(e.contains("line 1: FROM: unknown flag --pull"), "{e}");
    }

    #[test]
    fn commands_in_exec_and_shell_form() {
        let exec = || Command::Exec(vec!["sh".into(), "-c".into(), "echo hi".into()]);
        assert_eq!(
            one(r#"RUN ["sh", "-c", "echo hi"]"#),
            Instruction::Run(exec(), RunFlags::default())
        );
        assert_eq!(one(r#"CMD ["sh", "-c", "echo hi"]"#), Instruction::Cmd(exec()));
        assert_eq!(
            one("ENTRYPOINT  echo $HOME  "),
            Instruction::Entrypoint(Command::Shell("echo $HOME".into()))
        );
        // Not a JSON array of strings: a command line, as docker takes it.
        assert_eq!(
            one("RUN [1, 2]"),
            Instruction::Run(Command::Shell("[1, 2]".into()), RunFlags::default())
        );
        assert_eq!(one("CMD []"), Instruction::Cmd(Command::Exec(vec![])));
        for keyword in ["RUN", "CMD", "ENTRYPOINT"] {
            let e = error(&format!("FROM scratch\n{keyword}\n"));
            assert!(e.contains(&format!("line 2: {keyword}: needs a command")), "{e}");
        }
        let e = error("RUN --network=bridge make");
        assert!(
            e.contains("RUN: --network=bridge: expected default, none or host"),
            "{e}"
        );
        let e = error("RUN --security=insecure make");
        assert!(e.contains("RUN: the flag --security is not supported"), "{e}");
    }

    #[test]
    fn run_mounts() {
        let Instruction::Run(c, RunFlags { mounts, network }) = one(
            "RUN --mount=type=cache,target=/root/.cache --mount=type=cache,id=apt,dst=/var/cache/apt,sharing=locked,mode=0700,uid=1,gid=2,ro \\\n\
             --mount=type=secret,id=token --network=none --mount=type=secret,target=/etc/key.pem,required,uid=5,mode=440 make",
        ) else {
            panic!()
        };
        assert_eq!(c, Command::Shell("make".into()));
        assert_eq!(network, Some(RunNetwork::None));
        let Instruction::Run(_, RunFlags { mounts: binds, .. }) =
            one("RUN --mount=target=/src --mount=type=bind,from=build,source=/out/app,target=/app,rw make")
        else {
            panic!()
        };
        let bind = |target: &str, source: &str, from: Option<&str>, rw| {
            RunMount::Bind(BindMount {
                target: target.into(),
                source: source.into(),
                from: from.map(str::to_string),
                rw,
            })
        };
        assert_eq!(
            binds,
            [
                bind("/src", "", None, false),
                bind("/app", "/out/app", Some("build"), true)
            ]
        );
        let cache = |target: &str, id: &str, exclusive, readonly, mode, uid, gid| {
            RunMount::Cache(CacheMount {
                target: target.into(),
                id: id.into(),
                exclusive,
                readonly,
                mode,
                uid,
                gid,
            })
        };
        let secret = |id: &str, target: &str, required, mode, uid| {
            RunMount::Secret(SecretMount {
                id: id.into(),
                target: target.into(),
                required,
                mode,
                uid,
                gid: 0,
            })
        };
        assert_eq!(
            mounts,
            [
                cache("/root/.cache", "/root/.cache", false, false, 0o755, 0, 0),
                cache("/var/cache/apt", "apt", true, true, 0o700, 1, 2),
                secret("token", "/run/secrets/token", false, 0o400, 0),
                secret("key.pem", "/etc/key.pem", true, 0o440, 5),
            ]
        );
        for (bad, expected) in [
            (
                "RUN --mount=type=ssh,target=/x make",
                "--mount=type=ssh is not supported (bind, cache and secret are",
            ),
            ("RUN --mount=source=a make", "needs target=PATH"),
            (
                "RUN --mount=type=cache,target=/x,source=a make",
                "from=, source= and rw are for type=bind",
            ),
            (
                "RUN --mount=type=tmpfs,target=/t make",
                "--mount=type=tmpfs is not supported",
            ),
            ("RUN --mount=type=cache make", "needs target=DIR"),
            ("RUN --mount=type=secret make", "needs id=ID"),
            (
                "RUN --mount=type=secret,id=a,sharing=locked make",
                "sharing= is for type=cache",
            ),
            ("RUN --mount=type=cache,target=/x,mode=9 make", "mode=9 is not a number"),
            (
                "RUN --mount=type=cache,target=/x,sharing=all make",
                "sharing=all: expected shared",
            ),
            (
                "RUN --mount=type=cache,target=/x,color=red make",
                "unknown option \"color=red\"",
            ),
        ] {
            let e = error(bad);
            assert!(e.contains("line 1: RUN: ") && e.contains(expected), "{bad}: {e}");
        }
    }

    #[test]
    fn copy_and_add_flags_and_forms() {
        let Instruction::Add(c) = one(r#"ADD --from=build --chown=app ["a b", "/dst/"]"#) else {
            panic!()
        };
        assert_eq!(c.from.as_deref(), Some("build"));
        assert_eq!(c.chown, Some(args("app")));
        assert_eq!(c.chmod, None);
        assert_eq!(c.paths, List::Exec(vec!["a b".into(), "/dst/".into()]));
        // The last of a repeated flag counts.
        let Instruction::Copy(c) = one("COPY --chmod=600 --chmod=0750 a /b") else {
            panic!()
        };
        assert_eq!(c.chmod, Some(0o750));
        assert_eq!(c.paths, List::Words(args("a /b")));
        for bad in ["x", "8", "17777"] {
            let e = error(&format!("FROM scratch\nCOPY --chmod={bad} a /b"));
            assert!(
                e.contains(&format!(
                    "line 2: COPY: --chmod={bad}: expected an octal mode such as 755"
                )),
                "{e}"
            );
        }
        let e = error("ADD --checksum=sha256:00 a /b");
        assert!(e.contains("--checksum=sha256:00: expected sha256: and 64"), "{e}");
        let e = error("COPY --checksum=sha256:00 a /b");
        assert!(e.contains("COPY: the flag --checksum is not supported"), "{e}");
    }

    #[test]
    fn metadata_instructions_keep_their_arguments() {
        assert_eq!(one("ENV A=1 B=2"), Instruction::Env(args("A=1 B=2")));
        assert_eq!(one("ARG V=1"), Instruction::Arg(args("V=1")));
        assert_eq!(one("LABEL a=b"), Instruction::Label(args("a=b")));
        assert_eq!(one("EXPOSE 80/udp"), Instruction::Expose(args("80/udp")));
        assert_eq!(one("USER app:app"), Instruction::User(args("app:app")));
        assert_eq!(one("WORKDIR /srv/$APP"), Instruction::Workdir(args("/srv/$APP")));
        assert_eq!(one("STOPSIGNAL SIGINT"), Instruction::Stopsignal(args("SIGINT")));
        assert_eq!(
            one("MAINTAINER  Jo <jo@example.org> "),
            Instruction::Maintainer("Jo <jo@example.org>".into())
        );
        assert_eq!(one("VOLUME /a /b"), Instruction::Volume(List::Words(args("/a /b"))));
        assert_eq!(
            one(r#"VOLUME ["/a"]"#),
            Instruction::Volume(List::Exec(vec!["/a".into()]))
        );
        assert_eq!(
            one(r#"SHELL ["/bin/bash", "-c"]"#),
            Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert_eq!(one("ONBUILD  RUN x "), Instruction::Onbuild("RUN x".into()));
        for (bad, expected) in [
            ("ONBUILD FROM x", "line 1: ONBUILD: FROM is not allowed as a trigger"),
            ("ONBUILD ONBUILD RUN x", "ONBUILD is not allowed as a trigger"),
            ("ONBUILD FROB", "ONBUILD: unknown instruction: FROB"),
            ("ONBUILD", "ONBUILD: needs an instruction"),
        ] {
            let e = error(bad);
            assert!(e.contains(expected), "{bad}: {e}");
        }
        // Only FROM, RUN, COPY and ADD take flags: elsewhere `--x` is an argument.
        assert_eq!(one("ENV --x=1"), Instruction::Env(args("--x=1")));
        for bad in ["SHELL /bin/bash -c", "SHELL []"] {
            let e = error(bad);
            assert!(e.contains("line 1: SHELL: needs the JSON form"), "{e}");
        }
    }

    #[test]
    fn healthchecks_as_docker_stores_them() {
        let h = |text: &str| match one(text) {
            Instruction::Healthcheck(h) => serde_json::to_value(h).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(h("HEALTHCHECK NONE"), serde_json::json!({"Test": ["NONE"]}));
        assert_eq!(
            h("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0s --retries=3 CMD curl -f http://x/ || exit 1"),
            serde_json::json!({
                "Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"],
                "Interval": 90_000_000_000i64,
                "Timeout": 500_000_000,
                "Retries": 3
            })
        );
        assert_eq!(
            h(r#"healthcheck --start-interval=1.5s cmd ["/probe", "-q"]"#),
            serde_json::json!({"Test": ["CMD", "/probe", "-q"], "StartInterval": 1_500_000_000})
        );
        for (bad, expected) in [
            ("HEALTHCHECK --interval=5 CMD x", "--interval=5: expected a duration"),
            ("HEALTHCHECK --timeout=10us CMD x", "cannot be less than 1ms"),
            ("HEALTHCHECK --retries=-1 CMD x", "--retries=-1: expected a number"),
            ("HEALTHCHECK --bogus=1 CMD x", "unknown flag --bogus"),
            ("HEALTHCHECK --interval=1s NONE", "NONE takes no flags"),
            ("HEALTHCHECK true", "expected NONE or [OPTIONS] CMD command"),
            ("HEALTHCHECK CMD", "needs a command"),
        ] {
            let e = error(bad);
            assert!(
                e.contains("line 1: HEALTHCHECK: ") && e.contains(expected),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn substitution_and_quotes() {
        let v = vars(&[("A", "x"), ("E", "")]);
        let w = |s: &str| words(s, '\\', &v).unwrap();
        assert_eq!(w("$A ${A}y \"$A z\" '$A'"), ["x", "xy", "x z", "$A"]);
        assert_eq!(
            w("${B:-def} ${A:-def} ${A:+alt} ${B:+alt}end ${E:-empty} ${E-unset}"),
            ["def", "x", "alt", "end", "empty", ""]
        );
        assert_eq!(w(r"\$A a\ b"), ["$A", "a b"]);
        assert_eq!(w("${B:-${A}y} ${B:-${C:-deep}}"), ["xy", "deep"]);
        assert!(words("\"open", '\\', &v).is_err());
        assert!(words("${A", '\\', &v).is_err());
    }

    #[test]
    fn heredoc_text_substitution() {
        let v = vars(&[("A", "x")]);
        assert_eq!(
            expand_text("a=$A \"${A}\" \\$A ${B:-d} 'q'\n", &v).unwrap(),
            "a=x \"x\" $A d 'q'\n"
        );
    }

    #[test]
    fn env_pairs() {
        let v = vars(&[("A", "1")]);
        assert_eq!(
            pairs(&args("A=1 B=\"two words\" C=${A}x"), &v, true).unwrap(),
            [
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "1x".into())
            ]
        );
        assert_eq!(
            pairs(&args("LEGACY some value"), &v, true).unwrap(),
            [("LEGACY".into(), "some value".into())]
        );
        assert_eq!(
            pairs(&args("novalue"), &v, false).unwrap_err(),
            "\"novalue\" is not KEY=VALUE"
        );
        // A key alone is no legacy pair: it was once taken as its own value.
        assert_eq!(pairs(&args("LEGACY"), &v, true).unwrap_err(), "LEGACY needs a value");
        assert_eq!(pairs(&args("=x"), &v, false).unwrap_err(), "\"=x\": empty name");
        assert_eq!(pairs(&args(""), &v, true).unwrap_err(), "needs at least one argument");
    }
}
