//! `WWW-Authenticate` headers: any bytes a registry sends parse without
//! panicking into lower-cased schemes and parameter names, and the
//! challenges written back out in canonical form parse to the same list.
#![no_main]

use barge_registry::{parse_challenges, Challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Header values are bytes; the client hands the parser what it got as text.
    let header = String::from_utf8_lossy(data);
    let challenges = parse_challenges(&header);
    for c in &challenges {
        assert!(!c.scheme.is_empty());
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        for name in c.params.keys() {
            assert!(!name.is_empty());
            assert_eq!(*name, name.to_ascii_lowercase());
        }
        let _ = (c.param("realm"), c.param("service"), c.param("scope"));
    }
    let rendered = render(&challenges);
    let again = parse_challenges(&rendered);
    assert_eq!(again, challenges, "{header:?} -> {rendered:?}");
});

/// `scheme name="value", name="value", scheme …` with `"` and `\` escaped.
fn render(challenges: &[Challenge]) -> String {
    let mut out = String::new();
    for (i, c) in challenges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&c.scheme);
        for (j, (k, v)) in c.params.iter().enumerate() {
            out.push_str(if j == 0 { " " } else { ", " });
            out.push_str(k);
            out.push_str("=\"");
            for ch in v.chars() {
                if ch == '"' || ch == '\\' {
                    out.push('\\');
                }
                out.push(ch);
            }
            out.push('"');
        }
    }
    out
}
