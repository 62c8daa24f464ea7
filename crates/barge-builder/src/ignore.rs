//! `.dockerignore` patterns and the glob matching COPY sources use.
//!
//! Patterns are matched against context-relative, `/`-separated paths,
//! segment by segment: `*` and `?` never cross `/`, `[…]` is a class,
//! `**` matches any number of segments. A pattern that matches a directory
//! matches everything below it. `!pattern` re-includes; the last matching
//! pattern wins.

/// Whether `pattern` has glob metacharacters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Matches one path segment against one pattern segment.
fn segment_matches(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            segment_matches(&pattern[1..], name) || (!name.is_empty() && segment_matches(pattern, &name[1..]))
        }
        (Some('?'), Some(_)) => segment_matches(&pattern[1..], &name[1..]),
        (Some('['), Some(&c)) => match class(&pattern[1..], c) {
            Some((true, rest)) => segment_matches(rest, &name[1..]),
            _ => false,
        },
        (Some('\\'), Some(&c)) if pattern.len() > 1 => pattern[1] == c && segment_matches(&pattern[2..], &name[1..]),
        (Some(&p), Some(&c)) => p == c && segment_matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// A `[…]` class after the `[`: whether `c` is in it, and the pattern after `]`.
fn class(p: &[char], c: char) -> Option<(bool, &[char])> {
    let (negated, mut i) = match p.first() {
        Some('^') | Some('!') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negated, &p[i + 1..]));
        }
        first = false;
        let lo = p[i];
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    None
}

fn segments_match(pattern: &[Vec<char>], path: &[Vec<char>]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(p) if p.iter().collect::<String>() == "**" => {
            (0..=path.len()).any(|skip| segments_match(&pattern[1..], &path[skip..]))
        }
        Some(p) => !path.is_empty() && segment_matches(p, &path[0]) && segments_match(&pattern[1..], &path[1..]),
    }
}

fn split(s: &str) -> Vec<Vec<char>> {
    s.split('/')
        .filter(|x| !x.is_empty() && *x != ".")
        .map(|x| x.chars().collect())
        .collect()
}

/// Whether the whole of `path` matches `pattern` (no directory prefix rule).
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    segments_match(&split(pattern), &split(path))
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<(bool, Vec<Vec<char>>)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (negated, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let p = p.trim_start_matches('/');
            let segs = split(p);
            if segs.is_empty() {
                continue;
            }
            rules.push((negated, segs));
        }
        Ignore { rules }
    }

    /// Whether `path` (context-relative) is left out of the context.
    pub fn excluded(&self, path: &str) -> bool {
        let segs = split(path);
        let mut excluded = false;
        for (negated, pattern) in &self.rules {
            // The path itself or one of its parent directories.
            if (1..=segs.len()).any(|n| segments_match(pattern, &segs[..n])) {
                excluded = !negated;
            }
        }
        excluded
    }

    /// Whether some `!` rule could re-include something below `dir`, so
    /// that an excluded directory must still be walked.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("*.txt", "a.txt"));
        assert!(!glob_matches("*.txt", "dir/a.txt"));
        assert!(glob_matches("*/a.txt", "dir/a.txt"));
        assert!(glob_matches("**/a.txt", "x/y/a.txt"));
        assert!(glob_matches("**/a.txt", "a.txt"));
        assert!(glob_matches("f?le[0-9].[!c]*", "file7.rs"));
        assert!(!glob_matches("f?le[0-9].[!c]*", "file7.c"));
        assert!(glob_matches("./src/*.rs", "src/main.rs"));
        assert!(!glob_matches("src", "src/main.rs"));
    }

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse("# comment\n*.log\nbuild/\n!build/keep.txt\n/secret\n**/*.tmp\n");
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("sub/a.log"), "*.log is for the top level only");
        assert!(ig.excluded("build"));
        assert!(ig.excluded("build/out.o"));
        assert!(!ig.excluded("build/keep.txt"));
        assert!(ig.excluded("secret/key"));
        assert!(ig.excluded("x/y/z.tmp"));
        assert!(!ig.excluded("Dockerfile"));
        assert!(ig.has_exceptions());
    }
}
