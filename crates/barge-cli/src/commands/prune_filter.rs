//! `--filter` of `image prune` and `container prune` (docker 20.10's
//! `until=` and `label=`/`label!=`), and the time values docker takes for
//! `until=`, `logs --since` and `logs --until`.

use crate::failure::Failure;
use std::collections::BTreeMap;

/// One `label=K[=V]` (`negate` false) or `label!=K[=V]` (`negate` true).
struct LabelCond {
    negate: bool,
    key: String,
    value: Option<String>,
}

/// Which candidates a prune removes: all of `labels` hold and, with
/// `until`, the candidate was created before that Unix time.
pub struct PruneFilter {
    until: Option<i64>,
    labels: Vec<LabelCond>,
}

impl PruneFilter {
    /// No `--filter`: every candidate goes.
    pub fn none() -> PruneFilter {
        PruneFilter {
            until: None,
            labels: Vec::new(),
        }
    }

    /// Parses `--filter` values; an unknown key is refused with docker's
    /// message before anything is removed.
    pub fn parse(raw: &[String], now: i64) -> Result<PruneFilter, Failure> {
        let mut f = PruneFilter {
            until: None,
            labels: Vec::new(),
        };
        for item in raw {
            let (raw_key, value) = item
                .split_once('=')
                .ok_or_else(|| Failure::msg(format!("bad format of filter (expected name=value): {item}")))?;
            let (key, negate) = match raw_key.strip_suffix('!') {
                Some(k) => (k, true),
                None => (raw_key, false),
            };
            match (key, negate) {
                ("label", _) => {
                    let (k, v) = match value.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (value.to_string(), None),
                    };
                    f.labels.push(LabelCond {
                        negate,
                        key: k,
                        value: v,
                    });
                }
                ("until", false) => {
                    if f.until.is_some() {
                        return Err(Failure::msg("more than one until filter specified"));
                    }
                    f.until = Some(time_value(value, now).ok_or_else(|| {
                        Failure::msg(format!(
                            "invalid filter 'until={value}': a Unix time, an RFC 3339 time or a Go duration such as 24h or 1h30m"
                        ))
                    })?);
                }
                _ => return Err(Failure::msg(format!("invalid filter '{raw_key}'"))),
            }
        }
        Ok(f)
    }

    /// True when labels are asked about (reading an image's config is then needed).
    pub fn wants_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    /// True when a candidate with these labels, created at `created`
    /// (Unix seconds), is to be removed.
    pub fn selects(&self, labels: &BTreeMap<String, String>, created: i64) -> bool {
        if self.until.is_some_and(|u| created >= u) {
            return false;
        }
        self.labels.iter().all(|c| {
            let has = match &c.value {
                Some(v) => labels.get(&c.key).is_some_and(|x| x == v),
                None => labels.contains_key(&c.key),
            };
            has != c.negate
        })
    }
}

/// A time as docker takes it (`until=`, `--since`): a Go duration before
/// `now` (`10m`, `1h30m`, `1.5h`), a Unix time (`1700000000`, with an
/// optional `.fraction`), an RFC 3339 time or a date (`2024-01-31`, UTC).
pub fn time_value(v: &str, now: i64) -> Option<i64> {
    if v != "0" {
        if let Some(d) = go_duration_secs(v) {
            return Some(now - d);
        }
    }
    let whole = v.split_once('.').map_or(v, |(s, frac)| {
        if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) {
            s
        } else {
            v
        }
    });
    if let Ok(t) = whole.parse::<i64>() {
        return Some(t);
    }
    if let Some((t, _)) = barge_oci::time::parse_rfc3339(v) {
        return Some(t);
    }
    for suffix in ["Z", ":00Z", "T00:00:00Z"] {
        if let Some((t, _)) = barge_oci::time::parse_rfc3339(&format!("{v}{suffix}")) {
            return Some(t);
        }
    }
    None
}

/// Go's `time.ParseDuration`, in whole seconds (toward zero).
fn go_duration_secs(v: &str) -> Option<i64> {
    let (neg, mut rest) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += num.parse::<f64>().ok()? * scale;
        rest = next;
    }
    let secs = (nanos / 1e9).trunc();
    if !secs.is_finite() || secs > i64::MAX as f64 / 2.0 {
        return None;
    }
    Some(if neg { -(secs as i64) } else { secs as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_secs("24h"), Some(86400));
        assert_eq!(go_duration_secs("1h30m"), Some(5400));
        assert_eq!(go_duration_secs("1.5h"), Some(5400));
        assert_eq!(go_duration_secs("90s"), Some(90));
        assert_eq!(go_duration_secs("1500ms"), Some(1));
        assert_eq!(go_duration_secs("-10m"), Some(-600));
        assert_eq!(go_duration_secs("10"), None);
        assert_eq!(go_duration_secs("10d"), None);
        assert_eq!(go_duration_secs("h"), None);
    }

    #[test]
    fn time_values() {
        let now = 1_000_000;
        assert_eq!(time_value("10m", now), Some(now - 600));
        assert_eq!(time_value("0", now), Some(0));
        assert_eq!(time_value("1700000000", now), Some(1_700_000_000));
        assert_eq!(time_value("1700000000.5", now), Some(1_700_000_000));
        assert_eq!(time_value("1970-01-02T00:00:00Z", now), Some(86400));
        assert_eq!(time_value("1970-01-02", now), Some(86400));
        assert_eq!(time_value("yesterday", now), None);
    }

    #[test]
    fn filters() {
        let raw = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = PruneFilter::parse(&raw(&["label=a=1", "label!=b", "until=1h"]), 10_000)
            .map_err(|e| e.to_string())
            .unwrap();
        let l = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert!(f.selects(&l(&[("a", "1")]), 0));
        assert!(!f.selects(&l(&[("a", "1")]), 9_000), "created after until");
        assert!(!f.selects(&l(&[("a", "2")]), 0));
        assert!(!f.selects(&l(&[("a", "1"), ("b", "")]), 0));
        let e = PruneFilter::parse(&raw(&["dangling=true"]), 0).err().unwrap();
        assert_eq!(e.to_string(), "invalid filter 'dangling'");
        let e = PruneFilter::parse(&raw(&["until!=1h"]), 0).err().unwrap();
        assert_eq!(e.to_string(), "invalid filter 'until!'");
        assert!(PruneFilter::parse(&raw(&["until=soon"]), 0).is_err());
    }
}
