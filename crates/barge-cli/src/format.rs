//! Output as the docker CLI prints it: aligned tables, human sizes and
//! durations, and `--format` templates (a subset of Go's text/template).

use serde_json::Value;
use std::fmt::Write as _;

/// Aligns tab-separated lines as Go's tabwriter does in docker
/// (minimum width 10, padding 3; the last cell of a line is not padded).
/// Prints `values` through `t`: aligned columns under a header for a
/// `table` template, else one line each.
pub fn print_rows(t: &Template, values: &[Value], header: &dyn Fn(&str) -> String) -> Result<(), TemplateError> {
    let mut lines = Vec::with_capacity(values.len() + 1);
    if t.table {
        lines.push(t.header(header));
    }
    for v in values {
        lines.push(t.render(v)?);
    }
    if t.table {
        print!("{}", tabulate(&lines));
    } else {
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}

/// `v` with every string (keys too) passed through
/// [`barge_registry::sanitize`]: what barge prints of an image's metadata
/// can hold no terminal escapes.
pub fn sanitized(v: &Value) -> Value {
    use barge_registry::sanitize;
    match v {
        Value::String(s) => Value::String(sanitize(s)),
        Value::Array(a) => Value::Array(a.iter().map(sanitized).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (sanitize(k), sanitized(v))).collect()),
        other => other.clone(),
    }
}

pub fn tabulate(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            let w = (cell.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for row in &rows {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(size, 3), UNITS[i])
}

/// docker's `units.BytesSize`: binary units, four significant digits (`1.555MiB`).
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g(size, 4), UNITS[i])
}

/// Go's `%.{precision}g`.
fn go_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", precision - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (precision as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs;
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let minutes = s / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = ((s as f64) / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", s / 3600 / 24 / 365)
}

/// `2 weeks ago`, or `N/A` for an unknown time.
pub fn since(created: Option<&str>, now: i64) -> String {
    match created.and_then(barge_oci::time::parse_rfc3339) {
        Some((t, _)) if t > 0 => format!("{} ago", human_duration(now - t)),
        _ => "N/A".into(),
    }
}

/// Go's `time.Time.String()` in UTC: `2024-01-02 15:04:05 +0000 UTC`.
pub fn go_time(created: Option<&str>) -> String {
    match created.and_then(barge_oci::time::parse_rfc3339) {
        Some((t, _)) => barge_oci::time::format_rfc3339(t)
            .replace('T', " ")
            .replace('Z', " +0000 UTC"),
        None => "0001-01-01 00:00:00 +0000 UTC".into(),
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `s` cut to `max` characters with an ellipsis, as docker's `Ellipsis`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Debug, thiserror::Error)]
#[error("template parsing error: {0}")]
pub struct TemplateError(String);

/// A parsed `--format` template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    /// Started with `table`: print a header row and align columns.
    pub table: bool,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Action(Expr),
}

#[derive(Debug, Clone)]
enum Expr {
    Field(Vec<String>),
    Str(String),
    Num(i64),
    Call(String, Vec<Expr>),
    /// `a | f x`: the value of each stage is the last argument of the next.
    Pipe(Vec<Expr>),
}

const FUNCS: [&str; 9] = [
    "json", "upper", "lower", "title", "truncate", "join", "index", "len", "println",
];

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let (table, body) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
            _ => (false, src),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| TemplateError(format!("unclosed action in {src:?}")))?;
            let inner = after[..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
            parts.push(Part::Action(parse_expr(inner)?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts, table })
    }

    /// The template applied to `v`, whose strings (image configs, labels,
    /// commands: text a registry chose) are [`sanitized`] first.
    pub fn render(&self, v: &Value) -> Result<String, TemplateError> {
        let v = &sanitized(v);
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action(e) => out.push_str(&display(&eval(e, v)?)),
            }
        }
        Ok(out)
    }

    /// The top-level fields the template reads (`Repository` of
    /// `{{.Repository}}`); `None` when it reads the whole value (`{{json .}}`).
    pub fn fields(&self) -> Option<std::collections::BTreeSet<String>> {
        fn walk(e: &Expr, out: &mut std::collections::BTreeSet<String>) -> bool {
            match e {
                Expr::Field(path) => match path.first() {
                    Some(f) => {
                        out.insert(f.clone());
                        true
                    }
                    None => false,
                },
                Expr::Call(_, args) | Expr::Pipe(args) => args.iter().all(|a| walk(a, out)),
                Expr::Str(_) | Expr::Num(_) => true,
            }
        }
        let mut out = std::collections::BTreeSet::new();
        for p in &self.parts {
            if let Part::Action(e) = p {
                if !walk(e, &mut out) {
                    return None;
                }
            }
        }
        Some(out)
    }

    /// The header row of a `table` template: each field replaced by its column name.
    pub fn header(&self, name_of: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action(e) => out.push_str(&header_of(e, name_of)),
            }
        }
        out
    }
}

fn header_of(e: &Expr, name_of: &dyn Fn(&str) -> String) -> String {
    match e {
        Expr::Field(path) => path.last().map(|f| name_of(f)).unwrap_or_default(),
        Expr::Call(_, args) => args.first().map(|a| header_of(a, name_of)).unwrap_or_default(),
        Expr::Pipe(stages) => stages.first().map(|a| header_of(a, name_of)).unwrap_or_default(),
        Expr::Str(_) | Expr::Num(_) => String::new(),
    }
}

fn tokenize(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut tok = String::from("\"");
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            tok.push(match n {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => tok.push(c),
                }
            }
            if !closed {
                return Err(TemplateError(format!("unterminated string in {s:?}")));
            }
            out.push(tok);
        } else {
            let mut tok = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                tok.push(c);
                chars.next();
            }
            out.push(tok);
        }
    }
    Ok(out)
}

fn parse_atom(tok: &str) -> Result<Expr, TemplateError> {
    if let Some(s) = tok.strip_prefix('"') {
        return Ok(Expr::Str(s.to_string()));
    }
    if tok == "." {
        return Ok(Expr::Field(Vec::new()));
    }
    if let Some(path) = tok.strip_prefix('.') {
        return Ok(Expr::Field(path.split('.').map(str::to_string).collect()));
    }
    if let Ok(n) = tok.parse::<i64>() {
        return Ok(Expr::Num(n));
    }
    Err(TemplateError(format!("function {tok:?} not defined")))
}

fn parse_expr(s: &str) -> Result<Expr, TemplateError> {
    let stages = split_pipes(s);
    if stages.len() > 1 {
        return Ok(Expr::Pipe(
            stages.iter().map(|st| parse_command(st)).collect::<Result<_, _>>()?,
        ));
    }
    parse_command(s)
}

/// Splits on `|` outside string literals.
fn split_pipes(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut in_str = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            '|' if !in_str => out.push(String::new()),
            c => {
                if in_str && c == '\\' && !escaped {
                    escaped = true;
                } else {
                    if c == '"' && !escaped {
                        in_str = !in_str;
                    }
                    escaped = false;
                }
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

fn parse_command(s: &str) -> Result<Expr, TemplateError> {
    let toks = tokenize(s)?;
    let Some(first) = toks.first() else {
        return Err(TemplateError("missing value for command".into()));
    };
    if FUNCS.contains(&first.as_str()) {
        let args = toks[1..].iter().map(|t| parse_atom(t)).collect::<Result<Vec<_>, _>>()?;
        return Ok(Expr::Call(first.clone(), args));
    }
    if toks.len() > 1 {
        return Err(TemplateError(format!("can't give argument to non-function {first}")));
    }
    parse_atom(first)
}

fn eval(e: &Expr, v: &Value) -> Result<Value, TemplateError> {
    Ok(match e {
        Expr::Str(s) => Value::String(s.clone()),
        Expr::Num(n) => Value::from(*n),
        Expr::Field(path) => {
            let mut cur = v;
            for f in path {
                match cur.get(f) {
                    Some(next) => cur = next,
                    None if cur.is_object() => return Ok(Value::Null),
                    None => return Err(TemplateError(format!("can't evaluate field {f}"))),
                }
            }
            cur.clone()
        }
        Expr::Pipe(stages) => {
            let mut acc: Option<Value> = None;
            for st in stages {
                acc = Some(match (st, acc.take()) {
                    (Expr::Call(name, args), Some(prev)) => call(name, args, Some(prev), v)?,
                    (other, None) => eval(other, v)?,
                    (_, Some(_)) => return Err(TemplateError("only functions can follow a pipe".into())),
                });
            }
            acc.unwrap_or(Value::Null)
        }
        Expr::Call(name, args) => call(name, args, None, v)?,
    })
}

fn call(name: &str, args: &[Expr], piped: Option<Value>, v: &Value) -> Result<Value, TemplateError> {
    let mut a: Vec<Value> = args.iter().map(|x| eval(x, v)).collect::<Result<_, _>>()?;
    a.extend(piped);
    let arg = |i: usize| {
        a.get(i)
            .cloned()
            .ok_or_else(|| TemplateError(format!("wrong number of args for {name}")))
    };
    Ok({
        {
            match name {
                "json" => Value::String(serde_json::to_string(&arg(0)?).unwrap_or_default()),
                "upper" => Value::String(display(&arg(0)?).to_uppercase()),
                "lower" => Value::String(display(&arg(0)?).to_lowercase()),
                "title" => {
                    let s = display(&arg(0)?);
                    let mut c = s.chars();
                    Value::String(
                        c.next()
                            .map(|f| f.to_uppercase().chain(c).collect())
                            .unwrap_or_default(),
                    )
                }
                "truncate" => {
                    let n = arg(1)?.as_u64().unwrap_or(0) as usize;
                    Value::String(display(&arg(0)?).chars().take(n).collect())
                }
                "join" => {
                    let sep = display(&arg(1)?);
                    match arg(0)? {
                        Value::Array(items) => Value::String(items.iter().map(display).collect::<Vec<_>>().join(&sep)),
                        other => Value::String(display(&other)),
                    }
                }
                "index" => {
                    let key = arg(1)?;
                    match (arg(0)?, key) {
                        (Value::Object(m), Value::String(k)) => m.get(&k).cloned().unwrap_or(Value::Null),
                        (Value::Array(items), Value::Number(n)) => items
                            .get(n.as_u64().unwrap_or(u64::MAX) as usize)
                            .cloned()
                            .unwrap_or(Value::Null),
                        _ => Value::Null,
                    }
                }
                "len" => Value::from(match arg(0)? {
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    Value::String(s) => s.len(),
                    _ => 0,
                }),
                "println" => Value::String(format!("{}\n", a.iter().map(display).collect::<Vec<_>>().join(" "))),
                other => return Err(TemplateError(format!("function {other:?} not defined"))),
            }
        }
    })
}

/// How Go's templates print a value.
fn display(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(display).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut s = String::from("map[");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{k}:{}", display(v));
            }
            s.push(']');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1240), "1.24kB");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_500_000), "1.5MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }

    #[test]
    fn binary_sizes_like_docker_stats() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1023), "1023B");
        assert_eq!(binary_size(1_630_000), "1.554MiB");
        assert_eq!(binary_size(8_348_520_448), "7.775GiB");
        assert_eq!(binary_size(32 << 20), "32MiB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(59 * 60), "59 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(100 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let t = tabulate(&[
            "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE".into(),
            "busybox\tlatest\ta416a98b71e2\t2 weeks ago\t4.26MB".into(),
        ]);
        assert_eq!(
            t,
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\nbusybox      latest    a416a98b71e2   2 weeks ago   4.26MB\n"
        );
    }

    #[test]
    fn templates() {
        let v = json!({"Repository": "busybox", "Tag": "latest", "Labels": {"a": "b"}, "List": ["x", "y"]});
        let r = |t: &str| Template::parse(t).unwrap().render(&v).unwrap();
        assert_eq!(r("{{.Repository}}:{{.Tag}}"), "busybox:latest");
        assert_eq!(r("{{json .Labels}}"), r#"{"a":"b"}"#);
        assert_eq!(r("{{ .Repository | upper }}"), "BUSYBOX");
        assert_eq!(r("{{upper .Repository}}\\t{{index .Labels \"a\"}}"), "BUSYBOX\tb");
        assert_eq!(r("{{join .List \",\"}}"), "x,y");
        assert_eq!(r("{{.Missing}}"), "<no value>");
        let t = Template::parse("table {{.Repository}}\t{{.Tag}}").unwrap();
        assert!(t.table);
        assert_eq!(t.header(&|f| f.to_uppercase()), "REPOSITORY\tTAG");
        assert!(Template::parse("{{.Repository").is_err());
        assert!(Template::parse("{{nosuch .X}}").is_err());
    }
}
