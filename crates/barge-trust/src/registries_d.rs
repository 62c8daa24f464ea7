//! `registries.d`: per-registry settings of containers' tools, as YAML files
//! (`default-docker:` and `docker: {SCOPE: …}`). barge reads one setting,
//! `use-sigstore-attachments`: whether sigstore signatures are looked up
//! (and written) for a scope, as podman and skopeo do.
//!
//! The files are read with a small parser for the block-mapping subset of
//! YAML these files use (indented `key: value` pairs, comments, quotes).

use crate::policy::scopes;
use crate::TrustError;
use barge_oci::Reference;
use std::collections::BTreeMap;
use std::path::Path;

const KEY: &str = "use-sigstore-attachments";

/// The `use-sigstore-attachments` settings of a registries.d directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesD {
    default: Option<bool>,
    scopes: BTreeMap<String, bool>,
}

/// A YAML block-mapping node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Scalar(String),
    Map(Vec<(String, Node)>),
}

impl RegistriesD {
    /// Reads every `*.yaml` / `*.yml` file of `dir` (none if the directory does not exist).
    pub fn load(dir: &Path) -> Result<RegistriesD, TrustError> {
        let mut out = RegistriesD::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(TrustError::RegistriesD {
                    path: dir.to_path_buf(),
                    msg: e.to_string(),
                })
            }
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| TrustError::RegistriesD {
                path: f.clone(),
                msg: e.to_string(),
            })?;
            out.merge(&text)
                .map_err(|msg| TrustError::RegistriesD { path: f.clone(), msg })?;
        }
        Ok(out)
    }

    /// Adds the settings of one file's text.
    pub fn merge(&mut self, text: &str) -> Result<(), String> {
        let Node::Map(top) = parse(text)? else {
            return Err("not a mapping".into());
        };
        for (k, v) in top {
            match (k.as_str(), v) {
                ("default-docker", Node::Map(m)) => {
                    if let Some(b) = flag(&m)? {
                        self.default = Some(b);
                    }
                }
                ("docker", Node::Map(m)) => {
                    for (scope, v) in m {
                        if let Node::Map(inner) = v {
                            if let Some(b) = flag(&inner)? {
                                self.scopes.insert(scope, b);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether sigstore attachments are used for `image`: the most specific scope, else `default-docker`.
    pub fn use_sigstore_attachments(&self, image: &Reference) -> bool {
        scopes(image)
            .iter()
            .filter(|s| !s.is_empty())
            .find_map(|s| self.scopes.get(s).copied())
            .or(self.default)
            .unwrap_or(false)
    }
}

fn flag(m: &[(String, Node)]) -> Result<Option<bool>, String> {
    match m.iter().find(|(k, _)| k == KEY) {
        None => Ok(None),
        Some((_, Node::Scalar(s))) => match s.as_str() {
            "true" | "True" | "TRUE" | "yes" | "on" => Ok(Some(true)),
            "false" | "False" | "FALSE" | "no" | "off" => Ok(Some(false)),
            other => Err(format!("{KEY}: {other:?} is not a boolean")),
        },
        Some(_) => Err(format!("{KEY} is not a boolean")),
    }
}

struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

fn parse(text: &str) -> Result<Node, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let body = strip_comment(raw);
        if body.trim().is_empty() || body.trim() == "---" {
            continue;
        }
        let indent = body.len() - body.trim_start_matches(' ').len();
        if body[indent..].starts_with('\t') {
            return Err(format!("line {}: tabs cannot indent YAML", i + 1));
        }
        lines.push(Line {
            number: i + 1,
            indent,
            text: body.trim(),
        });
    }
    let mut at = 0;
    let indent = lines.first().map_or(0, |l| l.indent);
    let node = block(&lines, &mut at, indent)?;
    match lines.get(at) {
        Some(l) => Err(format!("line {}: unexpected indentation", l.number)),
        None => Ok(node),
    }
}

fn block(lines: &[Line], at: &mut usize, indent: usize) -> Result<Node, String> {
    let mut map = Vec::new();
    while let Some(line) = lines.get(*at) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return Err(format!("line {}: unexpected indentation", line.number));
        }
        let (key, value) = split_key(line.text).ok_or(format!("line {}: expected \"key: value\"", line.number))?;
        *at += 1;
        let value = if value.is_empty() {
            match lines.get(*at) {
                Some(next) if next.indent > indent => block(lines, at, next.indent)?,
                _ => Node::Scalar(String::new()),
            }
        } else {
            Node::Scalar(unquote(value))
        };
        map.push((unquote(key), value));
    }
    Ok(Node::Map(map))
}

/// Splits `key: value` at the first `:` outside quotes that ends the line or is followed by a space.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ':') => {
                let rest = &text[i + 1..];
                if rest.is_empty() || rest.starts_with(' ') {
                    return Some((text[..i].trim(), rest.trim()));
                }
            }
            _ => {}
        }
    }
    None
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    line
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse_default_tag(s).expect("ref")
    }

    #[test]
    fn scopes_and_default_decide() {
        let mut d = RegistriesD::default();
        d.merge(
            "# registries.d\ndefault-docker:\n  lookaside: https://x/y # where\n\ndocker:\n  localhost:5000/signed:\n    use-sigstore-attachments: true\n  \"localhost:5000\":\n    use-sigstore-attachments: false\n",
        )
        .expect("parses");
        assert!(d.use_sigstore_attachments(&r("localhost:5000/signed:v1")));
        assert!(!d.use_sigstore_attachments(&r("localhost:5000/other")));
        assert!(!d.use_sigstore_attachments(&r("quay.io/a/b")));
        d.merge("default-docker:\n    use-sigstore-attachments: true\n")
            .expect("parses");
        assert!(d.use_sigstore_attachments(&r("quay.io/a/b")));
        assert!(!d.use_sigstore_attachments(&r("localhost:5000/other")));
    }

    #[test]
    fn malformed_yaml_is_an_error() {
        let mut d = RegistriesD::default();
        assert!(d.merge("docker:\n  a:\n     b: 1\n    c: 2\n").is_err());
        assert!(d.merge("default-docker:\n  use-sigstore-attachments: maybe\n").is_err());
        assert!(d.merge("just text\n").is_err());
    }
}
