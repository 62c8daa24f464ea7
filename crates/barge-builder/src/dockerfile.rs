//! The Dockerfile grammar: parser directives, line continuations, comments,
//! instructions with their flags, exec (JSON) and shell forms, and the
//! variable substitution and word splitting docker applies to arguments.

use crate::BuildError;
use std::collections::BTreeMap;

/// One instruction, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line it starts on (1-based), for error messages.
    pub line: usize,
    /// Upper-cased keyword (`COPY`).
    pub keyword: String,
    /// `--name=value` flags before the arguments (COPY, ADD, FROM, RUN).
    pub flags: Vec<(String, String)>,
    /// The arguments as written, flags removed.
    pub args: String,
    /// The escape character in force.
    pub escape: char,
}

impl Instruction {
    /// The arguments as a JSON array of strings, if written that way.
    pub fn exec_form(&self) -> Option<Vec<String>> {
        let t = self.args.trim();
        if !t.starts_with('[') {
            return None;
        }
        serde_json::from_str::<Vec<String>>(t).ok()
    }

    /// The arguments split into words, variables substituted.
    pub fn words(&self, vars: &BTreeMap<String, String>) -> Result<Vec<String>, BuildError> {
        words(&self.args, self.escape, vars).map_err(|e| self.error(e))
    }

    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn error(&self, message: impl std::fmt::Display) -> BuildError {
        BuildError::Dockerfile {
            line: self.line,
            message: format!("{}: {message}", self.keyword),
        }
    }
}

const KNOWN: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "WORKDIR",
    "LABEL",
    "USER",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "SHELL",
    "MAINTAINER",
    "HEALTHCHECK",
    "ONBUILD",
];

/// Instructions that take `--flag=value` options.
const FLAGGED: &[&str] = &["FROM", "COPY", "ADD", "RUN"];

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Vec<Instruction>, BuildError> {
    let mut escape = '\\';
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    // Parser directives: leading `# key=value` comments.
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
    while let Some((i, raw)) = lines.next() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut logical = String::new();
        let mut current = raw.trim_end().to_string();
        loop {
            match current.strip_suffix(escape) {
                Some(head) => {
                    logical.push_str(head);
                    // Next non-comment, non-empty line continues this one.
                    let mut next = None;
                    for (_, l) in lines.by_ref() {
                        let t = l.trim();
                        if t.starts_with('#') || t.is_empty() {
                            continue;
                        }
                        next = Some(l.trim_end().to_string());
                        break;
                    }
                    match next {
                        Some(n) => current = n,
                        None => break,
                    }
                }
                None => {
                    logical.push_str(&current);
                    break;
                }
            }
        }
        let logical = logical.trim();
        let (word, rest) = logical.split_once(char::is_whitespace).unwrap_or((logical, ""));
        let keyword = word.to_ascii_uppercase();
        if !KNOWN.contains(&keyword.as_str()) {
            return Err(BuildError::Dockerfile {
                line: i + 1,
                message: format!("unknown instruction: {word}"),
            });
        }
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
        out.push(Instruction {
            line: i + 1,
            keyword,
            flags,
            args: rest.to_string(),
            escape,
        });
    }
    Ok(out)
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

/// Substitutes the variables of a `${…}` default, as written.
fn expand(word: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
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
pub fn pairs(
    ins: &Instruction,
    vars: &BTreeMap<String, String>,
    legacy: bool,
) -> Result<Vec<(String, String)>, BuildError> {
    let ws = ins.words(vars)?;
    if ws.is_empty() {
        return Err(ins.error("needs at least one argument"));
    }
    if legacy && !ws[0].contains('=') {
        let key = ws[0].clone();
        let rest = ins.args.trim_start()[ins.args.trim_start().find(char::is_whitespace).unwrap_or(0)..].trim();
        if rest.is_empty() {
            return Err(ins.error(format!("{key} needs a value")));
        }
        let value = words(rest, ins.escape, vars).map_err(|e| ins.error(e))?.join(" ");
        return Ok(vec![(key, value)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(ins.error(format!("{w:?}: empty name"))),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(ins.error(format!("{w:?} is not KEY=VALUE"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn continuations_comments_and_flags() {
        let df = "# syntax=docker/dockerfile:1\nFROM scratch\n\n# a comment\ncopy --chown=1:2 --chmod=755 \\\n  # inside\n  a b \\\n  /dst/\nCMD [\"/demo\"]\n";
        let ins = parse(df).unwrap();
        assert_eq!(ins.len(), 3);
        assert_eq!((ins[0].line, ins[0].keyword.as_str()), (2, "FROM"));
        assert_eq!(ins[1].keyword, "COPY");
        assert_eq!(ins[1].line, 5);
        assert_eq!(ins[1].flag("chown"), Some("1:2"));
        assert_eq!(ins[1].flag("chmod"), Some("755"));
        assert_eq!(ins[1].args.split_whitespace().collect::<Vec<_>>(), ["a", "b", "/dst/"]);
        assert_eq!(ins[2].exec_form().unwrap(), ["/demo"]);
        let e = parse("FROM scratch\nFROB x\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("unknown instruction: FROB"), "{e}");
    }

    #[test]
    fn escape_directive() {
        let ins = parse("# escape=`\nFROM scratch\nCOPY a `\n  c:\\dir\\\n").unwrap();
        assert_eq!(ins[1].args.split_whitespace().collect::<Vec<_>>(), ["a", "c:\\dir\\"]);
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
    fn env_pairs() {
        let ins = parse("ENV A=1 B=\"two words\" C=${A}x\nENV LEGACY some value\nLABEL novalue\n").unwrap();
        let v = vars(&[("A", "1")]);
        assert_eq!(
            pairs(&ins[0], &v, true).unwrap(),
            [
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "1x".into())
            ]
        );
        assert_eq!(
            pairs(&ins[1], &v, true).unwrap(),
            [("LEGACY".into(), "some value".into())]
        );
        assert!(pairs(&ins[2], &v, false).is_err());
    }
}
