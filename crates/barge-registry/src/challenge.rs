//! `WWW-Authenticate` challenges (RFC 7235), as registries send them:
//! `Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"`
//! or `Basic realm="registry"`, possibly several in one header.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased scheme: `bearer`, `basic`, …
    pub scheme: String,
    /// Parameters with lower-cased names.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses every challenge in a header value. Malformed pieces are skipped:
/// a registry that sends garbage simply gets no credentials.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_ws_commas();
        if p.eof() {
            break;
        }
        let Some(tok) = p.token() else {
            // Not a token: skip one byte and resynchronise.
            p.i += 1;
            continue;
        };
        p.skip_ws();
        if p.peek() == Some(b'=') {
            // An auth-param belonging to the current challenge.
            p.i += 1;
            p.skip_ws();
            let value = if p.peek() == Some(b'"') { p.quoted() } else { p.token() };
            if let (Some(v), Some(c)) = (value, out.last_mut()) {
                c.params.entry(tok.to_ascii_lowercase()).or_insert(v);
            }
        } else {
            out.push(Challenge {
                scheme: tok.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(b) = self.peek() {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b);
            if !tchar {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut v = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return Some(String::from_utf8_lossy(&v).into_owned()),
                b'\\' => {
                    if let Some(n) = self.peek() {
                        v.push(n);
                        self.i += 1;
                    }
                }
                _ => v.push(b),
            }
        }
        None // unterminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_params() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn several_challenges_and_odd_spacing() {
        let c =
            parse(r#"Basic realm="x y", Bearer  realm = "https://a/t" , error="insufficient_scope",scope=repo:a:pull"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("x y"));
        assert_eq!(c[1].param("realm"), Some("https://a/t"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert_eq!(c[1].param("scope"), Some("repo:a:pull"));
    }

    #[test]
    fn escapes_and_garbage() {
        let c = parse(r#"Bearer realm="a\"b""#);
        assert_eq!(c[0].param("realm"), Some("a\"b"));
        assert!(parse("").is_empty());
        assert!(parse("=,,==\"").is_empty());
        let c = parse(r#"Bearer realm="unterminated"#);
        assert_eq!(c[0].param("realm"), None);
    }
}
