//! Tokens into a tree of nodes: text, actions and the control structures.

use crate::lex::{segments, Segment, Tok};
use crate::TemplateError;
use serde_json::Value;

/// Deeper nesting than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub pipe: Pipe,
    pub body: Vec<Node>,
    pub otherwise: Vec<Node>,
}

/// `$x := cmd | cmd …`.
#[derive(Debug, Clone)]
pub struct Pipe {
    pub decl: Vec<String>,
    /// `=` (set a variable declared before) rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
    /// The action's source, for error messages.
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Lit(Value),
    Sub(Box<Pipe>, Vec<String>),
}

fn err(msg: impl Into<String>) -> TemplateError {
    TemplateError::Parse(msg.into())
}

pub fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let mut p = Parser {
        segs: segments(src)?.into_iter(),
        vars: vec!["$".to_string()],
        ranges: 0,
    };
    match p.list(0)? {
        (nodes, Stop::Eof) => Ok(nodes),
        (_, Stop::End) => Err(err("unexpected {{end}}")),
        (_, Stop::Else(_)) => Err(err("unexpected {{else}}")),
    }
}

enum Stop {
    Eof,
    End,
    Else(Vec<Tok>),
}

struct Parser {
    segs: std::vec::IntoIter<Segment>,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    /// How many `range` bodies enclose the point being parsed.
    ranges: usize,
}

impl Parser {
    fn list(&mut self, depth: usize) -> Result<(Vec<Node>, Stop), TemplateError> {
        if depth > MAX_DEPTH {
            return Err(err(format!("more than {MAX_DEPTH} nested actions")));
        }
        let mut nodes = Vec::new();
        while let Some(seg) = self.segs.next() {
            let toks = match seg {
                Segment::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Segment::Action(toks) => toks,
            };
            let keyword = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                _ => "",
            };
            match keyword {
                "end" | "break" | "continue" if toks.len() > 1 => {
                    return Err(err(format!("unexpected arguments after {{{{{keyword}}}}}")));
                }
                "end" => return Ok((nodes, Stop::End)),
                "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec()))),
                "break" | "continue" if self.ranges == 0 => {
                    return Err(err(format!("{{{{{keyword}}}}} outside {{{{range}}}}")));
                }
                "break" => nodes.push(Node::Break),
                "continue" => nodes.push(Node::Continue),
                "if" | "with" | "range" => nodes.push(self.branch(keyword, &toks[1..], depth + 1)?),
                "define" | "template" | "block" => {
                    return Err(err(format!("{{{{{keyword}}}}} is not supported in --format")));
                }
                _ => nodes.push(Node::Action(self.pipe(&toks, true, 1, depth)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn branch(&mut self, keyword: &str, toks: &[Tok], depth: usize) -> Result<Node, TemplateError> {
        let scope = self.vars.len();
        let pipe = self.pipe(toks, true, if keyword == "range" { 2 } else { 1 }, depth)?;
        let pipe_scope = self.vars.len();
        if keyword == "range" {
            self.ranges += 1;
        }
        let body = self.list(depth);
        self.vars.truncate(pipe_scope);
        if keyword == "range" {
            self.ranges -= 1;
        }
        let (body, stop) = body?;
        let otherwise = match stop {
            Stop::Eof => return Err(err(format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"))),
            Stop::End => Vec::new(),
            Stop::Else(rest) if rest.is_empty() => match self.list(depth)? {
                (nodes, Stop::End) => nodes,
                (_, Stop::Else(_)) => return Err(err("a second {{else}}")),
                (_, Stop::Eof) => return Err(err(format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"))),
            },
            // `{{else if …}}` / `{{else with …}}`: a branch inside the else
            // that takes the shared `{{end}}`.
            Stop::Else(rest) => match rest.first() {
                Some(Tok::Ident(k)) if (k == "if" || k == "with") && keyword != "range" => {
                    let k = k.clone();
                    vec![self.branch(&k, &rest[1..], depth + 1)?]
                }
                _ => return Err(err("{{else}} takes no arguments except if or with")),
            },
        };
        self.vars.truncate(scope);
        let b = Branch { pipe, body, otherwise };
        Ok(match keyword {
            "if" => Node::If(b),
            "with" => Node::With(b),
            _ => Node::Range(b),
        })
    }

    /// A pipeline, with at most `max_decl` variables declared before it.
    fn pipe(&mut self, toks: &[Tok], decl_ok: bool, max_decl: usize, depth: usize) -> Result<Pipe, TemplateError> {
        if depth > MAX_DEPTH {
            return Err(err(format!("more than {MAX_DEPTH} nested expressions")));
        }
        let text = describe(toks);
        let mut decl = Vec::new();
        let mut assign = false;
        let mut rest = toks;
        if decl_ok {
            let mut i = 0;
            let mut names = Vec::new();
            while let Some(Tok::Var(name, fields)) = rest.get(i) {
                if !fields.is_empty() {
                    break;
                }
                names.push(name.clone());
                match rest.get(i + 1) {
                    Some(Tok::Comma) => i += 2,
                    Some(Tok::Declare) | Some(Tok::Assign) => {
                        assign = rest.get(i + 1) == Some(&Tok::Assign);
                        decl = names;
                        rest = &rest[i + 2..];
                        break;
                    }
                    _ => break,
                }
            }
            if decl.len() > max_decl {
                return Err(err(format!("too many declarations in {text}")));
            }
            if decl.iter().any(|d| d == "$") {
                return Err(err("$ cannot be declared or assigned"));
            }
        }
        for d in &decl {
            if assign && !self.vars.contains(d) {
                return Err(err(format!("undefined variable: ${d}")));
            }
        }
        let mut cmds = Vec::new();
        let mut start = 0;
        let mut level = 0usize;
        for (i, t) in rest.iter().enumerate() {
            match t {
                Tok::LParen => level += 1,
                Tok::RParen => {
                    level = level
                        .checked_sub(1)
                        .ok_or_else(|| err(format!("unexpected ) in {text}")))?
                }
                Tok::Pipe if level == 0 => {
                    cmds.push(self.cmd(&rest[start..i], depth)?);
                    start = i + 1;
                }
                _ => {}
            }
        }
        if level != 0 {
            return Err(err(format!("unclosed ( in {text}")));
        }
        cmds.push(self.cmd(&rest[start..], depth)?);
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        if cmds
            .iter()
            .skip(1)
            .any(|c| !matches!(c.args.first(), Some(Arg::Func(_))))
        {
            return Err(err(format!("only a function can follow | in {text}")));
        }
        Ok(Pipe {
            decl,
            assign,
            cmds,
            text,
        })
    }

    fn cmd(&mut self, toks: &[Tok], depth: usize) -> Result<Cmd, TemplateError> {
        let mut args = Vec::new();
        let mut i = 0;
        while let Some(t) = toks.get(i) {
            i += 1;
            args.push(match t {
                Tok::Dot => Arg::Dot,
                Tok::Field(f) => Arg::Field(f.clone()),
                Tok::Var(name, fields) => {
                    if !self.vars.contains(name) {
                        return Err(err(format!("undefined variable: ${name}")));
                    }
                    Arg::Var(name.clone(), fields.clone())
                }
                Tok::Lit(v) => Arg::Lit(v.clone()),
                Tok::Ident(name) => match name.as_str() {
                    "true" => Arg::Lit(Value::Bool(true)),
                    "false" => Arg::Lit(Value::Bool(false)),
                    "nil" => Arg::Lit(Value::Null),
                    f if crate::funcs::exists(f) => Arg::Func(name.clone()),
                    _ => return Err(err(format!("function {name:?} not defined"))),
                },
                Tok::LParen => {
                    let mut level = 1;
                    let start = i;
                    while level > 0 {
                        match toks.get(i) {
                            Some(Tok::LParen) => level += 1,
                            Some(Tok::RParen) => level -= 1,
                            Some(_) => {}
                            None => return Err(err("unclosed (")),
                        }
                        i += 1;
                    }
                    let inner = self.pipe(&toks[start..i - 1], false, 0, depth + 1)?;
                    let chain = match toks.get(i) {
                        Some(Tok::Chain(f)) => {
                            i += 1;
                            f.clone()
                        }
                        _ => Vec::new(),
                    };
                    Arg::Sub(Box::new(inner), chain)
                }
                other => {
                    return Err(err(format!(
                        "unexpected {} in command",
                        describe(std::slice::from_ref(other))
                    )))
                }
            });
        }
        if args.is_empty() {
            return Err(err("missing value for command"));
        }
        // `.Label "key"`: docker's method with an argument (see `Exec::cmd`).
        if args.len() > 1 && !matches!(args[0], Arg::Func(_) | Arg::Field(_)) {
            return Err(err(format!(
                "can't give argument to non-function {}",
                describe(&toks[..1])
            )));
        }
        if matches!(args.first(), Some(Arg::Lit(Value::Null))) {
            return Err(err("nil is not a command"));
        }
        Ok(Cmd { args })
    }
}

/// Tokens as they were written, near enough for a message.
fn describe(toks: &[Tok]) -> String {
    let path = |f: &[String]| f.iter().map(|n| format!(".{n}")).collect::<String>();
    let words: Vec<String> = toks
        .iter()
        .map(|t| match t {
            Tok::Dot => ".".into(),
            Tok::Field(f) | Tok::Chain(f) => path(f),
            Tok::Var(n, f) if n == "$" => format!("${}", path(f)),
            Tok::Var(n, f) => format!("${n}{}", path(f)),
            Tok::Ident(n) => n.clone(),
            Tok::Lit(v) => v.to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Pipe => "|".into(),
            Tok::Declare => ":=".into(),
            Tok::Assign => "=".into(),
            Tok::Comma => ",".into(),
        })
        .collect();
    format!("<{}>", words.join(" "))
}

/// Collects the paths read from the data's root into `out`; false when the
/// whole root is read (`.` at the top, or `$`).
pub fn root_paths(nodes: &[Node], dot_is_root: bool, out: &mut Vec<Vec<String>>) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text(_) | Node::Break | Node::Continue => true,
        Node::Action(p) => pipe_paths(p, dot_is_root, out),
        Node::If(b) => {
            pipe_paths(&b.pipe, dot_is_root, out)
                && root_paths(&b.body, dot_is_root, out)
                && root_paths(&b.otherwise, dot_is_root, out)
        }
        Node::With(b) | Node::Range(b) => {
            pipe_paths(&b.pipe, dot_is_root, out)
                && root_paths(&b.body, false, out)
                && root_paths(&b.otherwise, dot_is_root, out)
        }
    })
}

fn pipe_paths(p: &Pipe, dot_is_root: bool, out: &mut Vec<Vec<String>>) -> bool {
    p.cmds.iter().flat_map(|c| &c.args).all(|a| match a {
        Arg::Dot => !dot_is_root,
        Arg::Field(f) => {
            if dot_is_root {
                out.push(f.clone());
            }
            true
        }
        Arg::Var(name, f) if name == "$" => {
            out.push(f.clone());
            !f.is_empty()
        }
        Arg::Var(..) | Arg::Func(_) | Arg::Lit(_) => true,
        Arg::Sub(inner, _) => pipe_paths(inner, dot_is_root, out),
    })
}
