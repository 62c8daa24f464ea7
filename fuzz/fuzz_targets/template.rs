//! `--format` templates: the template is the user's, the data is an
//! image's or a registry's (hostile). Whatever the input, parsing and
//! rendering return a value or an error, never panic or overflow the
//! stack. The input is a template, a NUL, then the JSON data.
#![no_main]

use barge_template::Template;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (src, json) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(src) = std::str::from_utf8(src) else { return };
    let value: serde_json::Value = serde_json::from_slice(json).unwrap_or(serde_json::Value::Null);
    if let Ok(t) = Template::parse(src) {
        let _ = t.render(&value);
        let _ = t.root_paths();
    }
});
