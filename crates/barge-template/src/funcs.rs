//! The functions a template can call: Go's built-ins and the docker CLI's.

use crate::exec::{fail, format_v, go_float, kind, truth, State, MAX_TEXT};
use crate::parse::Arg;
use crate::TemplateError;
use serde_json::Value;
use std::cmp::Ordering;

const NAMES: &[&str] = &[
    // Go's text/template
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice", "print", "printf", "println",
    // the docker CLI's (cli/templates)
    "json", "join", "split", "lower", "upper", "title", "truncate", "pad",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

pub fn call(
    s: &mut State,
    name: &str,
    args: &[Arg],
    piped: Option<Value>,
    dot: &Value,
    text: &str,
) -> Result<Value, TemplateError> {
    // `and` and `or` evaluate their arguments only as far as needed.
    if name == "and" || name == "or" {
        let n = args.len() + usize::from(piped.is_some());
        if n == 0 {
            return Err(fail(
                text,
                format!("wrong number of args for {name}: want at least 1 got 0"),
            ));
        }
        let mut last = Value::Null;
        for a in args {
            last = s.arg(a, dot, text)?;
            if truth(&last) != (name == "and") {
                return Ok(last);
            }
        }
        return Ok(piped.unwrap_or(last));
    }
    let mut v = Vec::with_capacity(args.len() + 1);
    for a in args {
        v.push(s.arg(a, dot, text)?);
    }
    v.extend(piped);
    let want = |n: usize| -> Result<(), TemplateError> {
        if v.len() == n {
            Ok(())
        } else {
            Err(fail(
                text,
                format!("wrong number of args for {name}: want {n} got {}", v.len()),
            ))
        }
    };
    let bad = |what: String| fail(text, format!("error calling {name}: {what}"));
    let out = builtin(name, &v, text, &want, &bad)?;
    match &out {
        Value::String(s) if s.len() > MAX_TEXT => Err(bad(format!("the result passes {} MiB", MAX_TEXT >> 20))),
        _ => Ok(out),
    }
}

fn builtin(
    name: &str,
    v: &[Value],
    text: &str,
    want: &dyn Fn(usize) -> Result<(), TemplateError>,
    bad: &dyn Fn(String) -> TemplateError,
) -> Result<Value, TemplateError> {
    Ok(match name {
        "not" => {
            want(1)?;
            Value::Bool(!truth(&v[0]))
        }
        "eq" => {
            if v.len() < 2 {
                return Err(fail(text, "missing argument for comparison"));
            }
            let mut any = false;
            for other in &v[1..] {
                any |= equal(&v[0], other).map_err(bad)?;
            }
            Value::Bool(any)
        }
        "ne" => {
            want(2)?;
            Value::Bool(!equal(&v[0], &v[1]).map_err(bad)?)
        }
        "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = order(&v[0], &v[1]).map_err(bad)?;
            Value::Bool(match name {
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
        "len" => {
            want(1)?;
            Value::from(match &v[0] {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                other => return Err(bad(format!("len of type {}", kind(other)))),
            })
        }
        "index" => {
            let Some((first, keys)) = v.split_first() else {
                return Err(fail(text, "wrong number of args for index: want at least 1 got 0"));
            };
            let mut cur = first.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Object(m), Value::String(key)) => m.get(key).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n
                            .as_u64()
                            .and_then(|i| usize::try_from(i).ok())
                            .filter(|i| *i < a.len());
                        a[i.ok_or_else(|| bad(format!("index out of range: {n}")))?].clone()
                    }
                    (Value::Null, _) => return Err(bad("index of untyped nil".into())),
                    (c, k) => return Err(bad(format!("can't index item of type {} with {}", kind(c), kind(k)))),
                };
            }
            cur
        }
        "slice" => {
            let Some((first, bounds)) = v.split_first() else {
                return Err(fail(text, "wrong number of args for slice: want at least 1 got 0"));
            };
            let len = match first {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                other => return Err(bad(format!("can't slice item of type {}", kind(other)))),
            };
            let idx: Vec<usize> = bounds
                .iter()
                .map(|b| b.as_u64().and_then(|i| usize::try_from(i).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("slice index is not a non-negative integer".into()))?;
            let (from, to) = match idx[..] {
                [] => (0, len),
                [i] => (i, len),
                [i, j] => (i, j),
                _ => return Err(bad("too many slice indexes".into())),
            };
            if from > to || to > len {
                return Err(bad(format!("slice bounds out of range [{from}:{to}]")));
            }
            match first {
                Value::String(s) => Value::String(
                    s.get(from..to)
                        .ok_or_else(|| bad("slice splits a character".into()))?
                        .to_string(),
                ),
                Value::Array(a) => Value::Array(a[from..to].to_vec()),
                _ => Value::Null,
            }
        }
        "print" => Value::String(sprint(v)),
        "println" => Value::String(format!("{}\n", v.iter().map(format_v).collect::<Vec<_>>().join(" "))),
        "printf" => {
            let Some((Value::String(f), rest)) = v.split_first() else {
                return Err(bad("the first argument must be a format string".into()));
            };
            Value::String(sprintf(f, rest))
        }
        "json" => {
            want(1)?;
            Value::String(serde_json::to_string(&v[0]).map_err(|e| bad(e.to_string()))?)
        }
        "join" => {
            want(2)?;
            let sep = format_v(&v[1]);
            match &v[0] {
                Value::Array(items) => Value::String(items.iter().map(format_v).collect::<Vec<_>>().join(&sep)),
                Value::Null => Value::String(String::new()),
                other => return Err(bad(format!("join of type {}", kind(other)))),
            }
        }
        "split" => {
            want(2)?;
            let (s, sep) = (format_v(&v[0]), format_v(&v[1]));
            if sep.is_empty() {
                Value::Array(s.chars().map(|c| Value::String(c.to_string())).collect())
            } else {
                Value::Array(s.split(sep.as_str()).map(|p| Value::String(p.to_string())).collect())
            }
        }
        "lower" => {
            want(1)?;
            Value::String(format_v(&v[0]).to_lowercase())
        }
        "upper" => {
            want(1)?;
            Value::String(format_v(&v[0]).to_uppercase())
        }
        "title" => {
            want(1)?;
            Value::String(title(&format_v(&v[0])))
        }
        "truncate" => {
            want(2)?;
            let n = int(&v[1]).ok_or_else(|| bad("the length must be an integer".into()))?;
            Value::String(format_v(&v[0]).chars().take(usize::try_from(n).unwrap_or(0)).collect())
        }
        "pad" => {
            want(3)?;
            let (pre, post) = match (int(&v[1]), int(&v[2])) {
                (Some(a), Some(b)) => (usize::try_from(a).unwrap_or(0), usize::try_from(b).unwrap_or(0)),
                _ => return Err(bad("the paddings must be integers".into())),
            };
            if pre.max(post) > MAX_WIDTH {
                return Err(bad(format!("a padding over {MAX_WIDTH}")));
            }
            Value::String(format!("{}{}{}", " ".repeat(pre), format_v(&v[0]), " ".repeat(post)))
        }
        other => return Err(fail(text, format!("function {other:?} not defined"))),
    })
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
            .map(|f| f as i64)
    })
}

/// `eq`: values of one basic kind; numbers compare by value.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Ok(match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        }),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            Err("non-comparable type".into())
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Ok(i.cmp(&j)),
            _ => x
                .as_f64()
                .zip(y.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                .ok_or_else(|| "incomparable numbers".into()),
        },
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
            Err("incompatible types for comparison".into())
        }
        _ => Err("invalid type for comparison".into()),
    }
}

/// strings.Title: the first letter of each word in upper case.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

/// fmt.Sprint: a space between operands when neither is a string.
fn sprint(v: &[Value]) -> String {
    let mut out = String::new();
    for (i, x) in v.iter().enumerate() {
        if i > 0 && !x.is_string() && !v[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&format_v(x));
    }
    out
}

/// fmt's limit on widths and precisions (`%!(BADWIDTH)` above it).
const MAX_WIDTH: usize = 1_000_000;

/// fmt.Sprintf for the verbs templates use: %v %s %q %d %x %X %o %b %c
/// %f %e %g %t %%, with flags `-+ 0#`, width and precision (numbers or
/// `*`). What Go marks as an error (`%!d(string=x)`) is marked the same.
fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut number = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let n = args.get(next).and_then(int);
                next += 1;
                return n.and_then(|n| usize::try_from(n).ok());
            }
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            digits.parse().ok()
        };
        let mut width = number(&mut chars);
        let mut precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars).unwrap_or(0))
        } else {
            None
        };
        if width.is_some_and(|w| w > MAX_WIDTH) {
            out.push_str("%!(BADWIDTH)");
            width = None;
        }
        if precision.is_some_and(|p| p > MAX_WIDTH) {
            out.push_str("%!(BADPREC)");
            precision = None;
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let body = match verb_body(verb, arg, &flags, precision) {
            Some(b) => b,
            None => {
                out.push_str(&format!("%!{verb}({}={})", kind(arg), format_v(arg)));
                continue;
            }
        };
        out.push_str(&pad_to(body, width, &flags, verb));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", kind(a), format_v(a)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn verb_body(verb: char, arg: &Value, flags: &str, precision: Option<usize>) -> Option<String> {
    let signed = |s: String, neg: bool| -> String {
        if neg {
            s
        } else if flags.contains('+') {
            format!("+{s}")
        } else if flags.contains(' ') {
            format!(" {s}")
        } else {
            s
        }
    };
    Some(match verb {
        'v' | 's' => {
            let s = format_v(arg);
            match (verb, precision) {
                ('s', Some(p)) => s.chars().take(p).collect(),
                _ => s,
            }
        }
        'q' => match arg {
            Value::String(s) => quote(s),
            Value::Number(_) => {
                let c = char::from_u32(u32::try_from(int(arg)?).ok()?)?;
                format!("'{}'", c.escape_default())
            }
            _ => return None,
        },
        't' => arg.as_bool()?.to_string(),
        'd' => {
            let n = int(arg)?;
            signed(n.to_string(), n < 0)
        }
        'x' | 'X' | 'o' | 'b' | 'c' => match arg {
            Value::String(s) if verb == 'x' || verb == 'X' => {
                let h: String = s.bytes().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' {
                    h.to_uppercase()
                } else {
                    h
                }
            }
            _ => {
                let n = int(arg)?;
                let (neg, m) = (n < 0, n.unsigned_abs());
                let digits = match verb {
                    'x' => format!("{m:x}"),
                    'X' => format!("{m:X}"),
                    'o' => format!("{m:o}"),
                    'b' => format!("{m:b}"),
                    _ => return char::from_u32(u32::try_from(n).ok()?).map(String::from),
                };
                let prefix = match (flags.contains('#'), verb) {
                    (true, 'x') => "0x",
                    (true, 'X') => "0X",
                    (true, 'o') => "0",
                    _ => "",
                };
                signed(format!("{}{prefix}{digits}", if neg { "-" } else { "" }), neg)
            }
        },
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
            let f = arg.as_f64()?;
            let s = match verb {
                'f' | 'F' => format!("{f:.*}", precision.unwrap_or(6)),
                'e' | 'E' => go_exp(f, precision.unwrap_or(6), verb == 'E'),
                _ => match precision {
                    None => go_float(f),
                    Some(p) => format!("{:.*}", p.saturating_sub(1), f),
                },
            };
            signed(s, f.is_sign_negative())
        }
        _ => return None,
    })
}

/// `%e`: `1.500000e+00`.
fn go_exp(f: f64, precision: usize, upper: bool) -> String {
    let s = format!("{f:.precision$e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let out = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

/// strconv.Quote, near enough: Rust's escapes are Go's for text.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pad_to(body: String, width: Option<usize>, flags: &str, verb: char) -> String {
    let Some(w) = width else { return body };
    let len = body.chars().count();
    if len >= w {
        return body;
    }
    let fill = w - len;
    if flags.contains('-') {
        format!("{body}{}", " ".repeat(fill))
    } else if flags.contains('0') && "dxXobfFeEgG".contains(verb) {
        let (sign, digits) = match body.strip_prefix(['-', '+', ' ']) {
            Some(rest) => body.split_at(body.len() - rest.len()),
            None => ("", body.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}
