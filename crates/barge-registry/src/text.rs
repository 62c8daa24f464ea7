//! Text a server chose, made safe to show.
//!
//! A registry's error body, a `WWW-Authenticate` realm, a `Location` or a
//! token server's reply can carry terminal escapes: a hostile one once
//! erased barge's error line and printed "Login Succeeded" in its place.
//! Every such string goes through [`sanitize`] before it becomes part of an
//! error, and the CLI passes every line it prints about a failure through it
//! again (tar entry names from an archive are text a stranger chose too).

use std::fmt::Write as _;

/// `text` with every control character (C0, DEL, C1, ESC among them) and
/// every bidirectional override written out as a visible escape
/// (`\x1b`, `\u{202e}`): nothing in it can move the cursor, clear a line,
/// change colours or reorder what is displayed.
pub fn sanitize(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    out
}

/// [`sanitize`] for an optional string.
pub(crate) fn sanitize_opt(text: Option<String>) -> Option<String> {
    text.map(|t| sanitize(&t))
}

fn needs_escape(c: char) -> bool {
    // `is_control` is exactly C0 (with ESC, CR, LF and TAB), DEL and C1.
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn escapes_become_visible() {
        assert_eq!(sanitize("plain text: ok"), "plain text: ok");
        assert_eq!(sanitize("a\x1b[2K\rLogin Succeeded"), "a\\x1b[2K\\x0dLogin Succeeded");
        assert_eq!(sanitize("x\ny\tz\x7f"), "x\\x0ay\\x09z\\x7f");
        assert_eq!(sanitize("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(sanitize("bidi\u{202e}txt"), "bidi\\u{202e}txt");
        assert_eq!(sanitize("ünïcödé ok"), "ünïcödé ok");
    }
}
