//! Applying a parsed template to a value, as Go's text/template does.

use crate::parse::{Arg, Branch, Cmd, Node, Pipe};
use crate::TemplateError;
use serde_json::Value;

/// How many `range` iterations one rendering may take: Go has no limit,
/// but `{{range 100000000000}}` should fail, not hang barge.
pub const MAX_ITERATIONS: u64 = 1_000_000;

/// The longest text one rendering or one function may produce.
pub const MAX_TEXT: usize = 16 << 20;

pub fn render(nodes: &[Node], data: &Value) -> Result<String, TemplateError> {
    let mut s = State {
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        iterations: 0,
    };
    s.walk(nodes, data)?;
    Ok(s.out)
}

pub struct State {
    vars: Vec<(String, Value)>,
    out: String,
    iterations: u64,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub fn fail(action: &str, message: impl Into<String>) -> TemplateError {
    TemplateError::Exec {
        action: action.to_string(),
        message: message.into(),
    }
}

impl State {
    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, TemplateError> {
        for n in nodes {
            let flow = match n {
                Node::Text(t) => {
                    self.out.push_str(t);
                    self.check_size("")?;
                    Flow::Normal
                }
                Node::Action(p) => {
                    let v = self.pipe(p, dot, true)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&display(&v));
                        self.check_size(&p.text)?;
                    }
                    Flow::Normal
                }
                Node::If(b) => self.scoped(|s| {
                    let v = s.pipe(&b.pipe, dot, true)?;
                    s.walk(if truth(&v) { &b.body } else { &b.otherwise }, dot)
                })?,
                Node::With(b) => self.scoped(|s| {
                    let v = s.pipe(&b.pipe, dot, true)?;
                    if truth(&v) {
                        s.walk(&b.body, &v)
                    } else {
                        s.walk(&b.otherwise, dot)
                    }
                })?,
                Node::Range(b) => self.scoped(|s| s.range(b, dot))?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn check_size(&self, text: &str) -> Result<(), TemplateError> {
        if self.out.len() > MAX_TEXT {
            return Err(fail(text, format!("the output passes {} MiB", MAX_TEXT >> 20)));
        }
        Ok(())
    }

    /// Runs `f`, then forgets the variables it declared.
    fn scoped(&mut self, f: impl FnOnce(&mut State) -> Result<Flow, TemplateError>) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        let r = f(self);
        self.vars.truncate(mark);
        r
    }

    fn range(&mut self, b: &Branch, dot: &Value) -> Result<Flow, TemplateError> {
        let v = self.pipe(&b.pipe, dot, false)?;
        let items: Vec<(Value, Value)> = match v {
            Value::Array(a) => a.into_iter().enumerate().map(|(i, e)| (Value::from(i), e)).collect(),
            Value::Object(m) => {
                let mut items: Vec<_> = m.into_iter().map(|(k, e)| (Value::String(k), e)).collect();
                items.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
                items
            }
            Value::Number(n) => match n.as_u64() {
                Some(n) if n > MAX_ITERATIONS - self.iterations => {
                    return Err(fail(
                        &b.pipe.text,
                        format!("more than {MAX_ITERATIONS} range iterations"),
                    ))
                }
                Some(n) => (0..n).map(|i| (Value::from(i), Value::from(i))).collect(),
                None => return Err(fail(&b.pipe.text, format!("range can't iterate over {n}"))),
            },
            Value::Null => Vec::new(),
            other => {
                return Err(fail(
                    &b.pipe.text,
                    format!("range can't iterate over {}", display(&other)),
                ))
            }
        };
        if items.is_empty() {
            return self.walk(&b.otherwise, dot);
        }
        let mark = self.vars.len();
        for (key, elem) in items {
            self.iterations += 1;
            if self.iterations > MAX_ITERATIONS {
                return Err(fail(
                    &b.pipe.text,
                    format!("more than {MAX_ITERATIONS} range iterations"),
                ));
            }
            self.vars.truncate(mark);
            match b.pipe.decl.as_slice() {
                [e] => self.vars.push((e.clone(), elem.clone())),
                [k, e] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((e.clone(), elem.clone()));
                }
                _ => {}
            }
            if let Flow::Break = self.walk(&b.body, &elem)? {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    /// The pipeline's value; with `bind`, its declarations take it.
    pub fn pipe(&mut self, p: &Pipe, dot: &Value, bind: bool) -> Result<Value, TemplateError> {
        let mut val = None;
        for c in &p.cmds {
            val = Some(self.cmd(c, dot, val.take(), &p.text)?);
        }
        let v = val.unwrap_or(Value::Null);
        if bind {
            for name in &p.decl {
                match (p.assign, self.vars.iter_mut().rev().find(|(n, _)| n == name)) {
                    (true, Some(slot)) => slot.1 = v.clone(),
                    (true, None) => return Err(fail(&p.text, format!("undefined variable: ${name}"))),
                    (false, _) => self.vars.push((name.clone(), v.clone())),
                }
            }
        }
        Ok(v)
    }

    fn cmd(&mut self, c: &Cmd, dot: &Value, piped: Option<Value>, text: &str) -> Result<Value, TemplateError> {
        match &c.args[..] {
            [Arg::Func(name), args @ ..] => crate::funcs::call(self, name, args, piped, dot, text),
            [one] if piped.is_none() => self.arg(one, dot, text),
            // docker's objects have methods that take a key (`.Label
            // "com.example.x"`): a field holding a map, given one string,
            // is that map's value for it ("" when missing), as the method
            // returns.
            [field @ Arg::Field(_), key] if piped.is_none() => {
                match (self.arg(field, dot, text)?, self.arg(key, dot, text)?) {
                    (Value::Object(m), Value::String(k)) => {
                        Ok(m.get(&k).cloned().unwrap_or_else(|| Value::String(String::new())))
                    }
                    _ => Err(fail(text, "can't give argument to non-function")),
                }
            }
            _ => Err(fail(text, "can't give argument to non-function")),
        }
    }

    pub fn arg(&mut self, a: &Arg, dot: &Value, text: &str) -> Result<Value, TemplateError> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(path) => fields(dot, path, text),
            Arg::Var(name, path) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| fail(text, format!("undefined variable: ${name}")))?;
                fields(&v, path, text)
            }
            Arg::Func(name) => crate::funcs::call(self, name, &[], None, dot, text),
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Sub(p, path) => {
                let v = self.pipe(p, dot, false)?;
                fields(&v, path, text)
            }
        }
    }
}

/// `v.A.B`: a missing key of an object is nil (`<no value>`), a field of
/// anything but an object is an error, as for Go's maps.
fn fields(v: &Value, path: &[String], text: &str) -> Result<Value, TemplateError> {
    let mut cur = v;
    for f in path {
        cur = match cur {
            Value::Object(m) => match m.get(f) {
                Some(next) => next,
                None => return Ok(Value::Null),
            },
            Value::Null => return Err(fail(text, format!("nil pointer evaluating .{f}"))),
            other => return Err(fail(text, format!("can't evaluate field {f} in type {}", kind(other)))),
        };
    }
    Ok(cur.clone())
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
pub fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// How an action prints its value: nil (a missing map key) as `<no value>`.
pub fn display(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        other => format_v(other),
    }
}

/// fmt's `%v`: nil inside a value is `<nil>`, maps print with sorted keys.
pub fn format_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::Array(a) => format!("[{}]", a.iter().map(format_v).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", format_v(&m[k.as_str()])))
                .collect();
            format!("map[{}]", body.join(" "))
        }
    }
}

/// A JSON number as Go prints an int or a float64 with `%v`.
pub fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    go_float(n.as_f64().unwrap_or(0.0))
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits, with an
/// exponent below 1e-4 and from 1e6 on (so `%v` of 1e6 is `1e+06`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Rust's `{:e}` gives the shortest digits that read back: `d.ddde±x`.
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}
