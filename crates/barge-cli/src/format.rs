//! Output as the docker CLI prints it: aligned tables, human sizes and
//! durations, and `--format` templates (a subset of Go's text/template).

use serde_json::Value;

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

/// A listing row as `--format json` prints it: without `Label`, the map
/// rows carry for templates' `.Label "KEY"` (docker's method, which its
/// JSON leaves out).
pub fn json_row(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("Label");
    }
    v
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

pub use barge_template::TemplateError;

/// A parsed `--format` template: Go's text/template (barge-template) with
/// the docker CLI's `table` directive and `\t`/`\n` escapes.
#[derive(Debug, Clone)]
pub struct Template {
    inner: barge_template::Template,
    /// Started with `table`: print a header row and align columns.
    pub table: bool,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let (table, body) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
            _ => (false, src),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Template {
            inner: barge_template::Template::parse(&body)?,
            table,
        })
    }

    /// The template applied to `v`, whose strings (image configs, labels,
    /// commands: text a registry chose) are [`sanitized`] first.
    pub fn render(&self, v: &Value) -> Result<String, TemplateError> {
        self.inner.render(&sanitized(v))
    }

    /// The top-level fields the template reads (`Repository` of
    /// `{{.Repository}}`); `None` when it reads the whole value (`{{json .}}`).
    pub fn fields(&self) -> Option<std::collections::BTreeSet<String>> {
        self.inner.root_fields()
    }

    /// The header row of a `table` template, as docker makes it: the
    /// template applied to a value whose every field read is its column name.
    pub fn header(&self, name_of: &dyn Fn(&str) -> String) -> String {
        let mut names = Value::Object(serde_json::Map::new());
        for path in self.inner.root_paths().unwrap_or_default() {
            let Some((last, parents)) = path.split_last() else {
                continue;
            };
            let mut cur = &mut names;
            for p in parents {
                let Value::Object(m) = cur else { break };
                cur = m
                    .entry(p.clone())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
            }
            if let Value::Object(m) = cur {
                m.insert(last.clone(), Value::String(name_of(last)));
            }
        }
        self.inner.render(&names).unwrap_or_default()
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
