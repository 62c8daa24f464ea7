//! A template's source as text and actions, each action as tokens.
//! Trim markers (`{{- ` and ` -}}`) and comments are handled here.

use crate::TemplateError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `.` alone.
    Dot,
    /// `.A.B`: fields of dot.
    Field(Vec<String>),
    /// `.A.B` straight after `)`: fields of the parenthesised value.
    Chain(Vec<String>),
    /// `$`, `$x`, `$x.A`: a variable and the fields read from it.
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Text(String),
    Action(Vec<Tok>),
}

fn err(msg: impl Into<String>) -> TemplateError {
    TemplateError::Parse(msg.into())
}

/// Splits `src` into text and actions; comments leave nothing.
pub fn segments(src: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut trim_next_text = false;
    while pos <= src.len() {
        let rest = &src[pos..];
        let start = rest.find("{{");
        let mut text = &rest[..start.unwrap_or(rest.len())];
        if trim_next_text {
            text = text.trim_start();
        }
        let Some(start) = start else {
            if !text.is_empty() {
                out.push(Segment::Text(text.to_string()));
            }
            break;
        };
        let mut inner = pos + start + 2;
        let after = &src[inner..];
        if after.starts_with('-') && after[1..].starts_with(char::is_whitespace) {
            text = text.trim_end();
            inner += 1;
        }
        if !text.is_empty() {
            out.push(Segment::Text(text.to_string()));
        }
        let line = src[..inner].matches('\n').count() + 1;
        let (toks, end, trim) = if src[inner..].trim_start().starts_with("/*") {
            comment(src, inner, line)?
        } else {
            action(src, inner, line)?
        };
        if let Some(toks) = toks {
            out.push(Segment::Action(toks));
        }
        trim_next_text = trim;
        pos = end;
    }
    Ok(out)
}

/// Where the action closing at or after `from` ends (`}}` or ` -}}`), and
/// whether it trims: `Some` end when `s[from..]` starts with one.
fn close_at(src: &str, from: usize) -> Option<(usize, bool)> {
    let s = &src[from..];
    let ws = s.len() - s.trim_start().len();
    if ws > 0 && s[ws..].starts_with("-}}") {
        return Some((from + ws + 3, true));
    }
    if s.starts_with("}}") {
        return Some((from + 2, false));
    }
    None
}

type Lexed = (Option<Vec<Tok>>, usize, bool);

fn comment(src: &str, inner: usize, line: usize) -> Result<Lexed, TemplateError> {
    let open = inner + (src[inner..].len() - src[inner..].trim_start().len());
    let close = src[open..]
        .find("*/")
        .ok_or_else(|| err(format!("line {line}: unclosed comment")))?;
    let after = open + close + 2;
    let (end, trim) =
        close_at(src, after).ok_or_else(|| err(format!("line {line}: comment ends before closing delimiter")))?;
    Ok((None, end, trim))
}

fn action(src: &str, inner: usize, line: usize) -> Result<Lexed, TemplateError> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = inner;
    let mut after_paren = false;
    loop {
        if let Some((end, trim)) = close_at(src, i) {
            return Ok((Some(toks), end, trim));
        }
        let Some(&c) = b.get(i) else {
            return Err(err(format!("line {line}: unclosed action")));
        };
        let was_paren = std::mem::take(&mut after_paren);
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                toks.push(Tok::RParen);
                after_paren = true;
                i += 1;
            }
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (fields, end) = fields(src, i);
                toks.push(match (fields.is_empty(), was_paren) {
                    (true, _) => Tok::Dot,
                    (false, true) => Tok::Chain(fields),
                    (false, false) => Tok::Field(fields),
                });
                i = end;
            }
            b'$' => {
                let name_end = word_end(src, i + 1);
                let name = if name_end == i + 1 { "$" } else { &src[i + 1..name_end] };
                let (fields, end) = fields(src, name_end);
                toks.push(Tok::Var(name.to_string(), fields));
                i = end;
            }
            b'"' => {
                let (s, end) = quoted(src, i, line)?;
                toks.push(Tok::Lit(Value::String(s)));
                i = end;
            }
            b'`' => {
                let close = src[i + 1..]
                    .find('`')
                    .ok_or_else(|| err(format!("line {line}: unterminated raw quoted string")))?;
                toks.push(Tok::Lit(Value::String(src[i + 1..i + 1 + close].to_string())));
                i += close + 2;
            }
            b'\'' => {
                let rest = &src[i + 1..];
                let mut chars = rest.chars();
                let (ch, len) = match (chars.next(), chars.next()) {
                    (Some('\\'), Some(e)) => {
                        let ch = match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '0' => '\0',
                            '\\' | '\'' | '"' => e,
                            _ => return Err(err(format!("line {line}: bad character constant"))),
                        };
                        (ch, 1 + e.len_utf8())
                    }
                    (Some(ch), _) => (ch, ch.len_utf8()),
                    (None, _) => return Err(err(format!("line {line}: bad character constant"))),
                };
                if rest.as_bytes().get(len) != Some(&b'\'') {
                    return Err(err(format!("line {line}: unterminated character constant")));
                }
                toks.push(Tok::Lit(Value::from(ch as u32)));
                i += len + 2;
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let end = number_end(src, i);
                let text = &src[i..end];
                toks.push(Tok::Lit(
                    number(text).ok_or_else(|| err(format!("line {line}: bad number syntax: {text:?}")))?,
                ));
                i = end;
            }
            c if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let end = word_end(src, i);
                if end == i {
                    return Err(err(format!("line {line}: unexpected character in action")));
                }
                toks.push(Tok::Ident(src[i..end].to_string()));
                i = end;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(format!("line {line}: unexpected {ch:?} in action")));
            }
        }
    }
}

fn word_end(src: &str, from: usize) -> usize {
    src[from..]
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(src.len(), |(n, _)| from + n)
}

/// `.A.B` from `from` (at a `.` or not): the names and where they end.
fn fields(src: &str, mut from: usize) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    while src[from..].starts_with('.') {
        let end = word_end(src, from + 1);
        if end == from + 1 {
            if out.is_empty() {
                from += 1;
            }
            break;
        }
        out.push(src[from + 1..end].to_string());
        from = end;
    }
    (out, from)
}

fn number_end(src: &str, from: usize) -> usize {
    let b = src.as_bytes();
    let mut i = from;
    if matches!(b.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    while let Some(&c) = b.get(i) {
        let exp_sign = matches!(c, b'+' | b'-') && matches!(b.get(i.wrapping_sub(1)), Some(b'e' | b'E'));
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exp_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

fn number(text: &str) -> Option<Value> {
    let t = text.replace('_', "");
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let radix = [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)]
        .iter()
        .find_map(|(p, r)| digits.strip_prefix(p).map(|d| (d, *r)));
    if let Some((d, r)) = radix {
        let n = i64::from_str_radix(d, r).ok()?;
        return Some(Value::from(if neg { -n } else { n }));
    }
    if let Ok(n) = t.parse::<i64>() {
        return Some(Value::from(n));
    }
    if let Ok(n) = t.parse::<u64>() {
        return Some(Value::from(n));
    }
    let f: f64 = t.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// A Go interpreted string starting at `src[from] == '"'`.
fn quoted(src: &str, from: usize, line: usize) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = src[from + 1..].char_indices();
    let bad = || err(format!("line {line}: unterminated quoted string"));
    while let Some((n, c)) = chars.next() {
        match c {
            '"' => return Ok((out, from + 1 + n + 1)),
            '\n' => return Err(bad()),
            '\\' => {
                let (_, e) = chars.next().ok_or_else(bad)?;
                let hex = |chars: &mut std::str::CharIndices, len: usize| -> Result<char, TemplateError> {
                    let digits: String = chars.by_ref().take(len).map(|(_, c)| c).collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| err(format!("line {line}: bad escape \\{e}{digits}")))
                };
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'v' => '\x0b',
                    '\\' | '"' | '\'' => e,
                    'x' => hex(&mut chars, 2)?,
                    'u' => hex(&mut chars, 4)?,
                    'U' => hex(&mut chars, 8)?,
                    other => return Err(err(format!("line {line}: unknown escape \\{other}"))),
                });
            }
            c => out.push(c),
        }
    }
    Err(bad())
}
