//! Container names in docker's `adjective_surname` style, and IDs.

const ADJECTIVES: &[&str] = &[
    "agile", "amber", "ardent", "bold", "brave", "breezy", "bright", "calm", "candid", "clever", "cosmic", "crisp",
    "daring", "deft", "eager", "earnest", "elated", "epic", "fervent", "fleet", "focused", "frosty", "gallant",
    "gentle", "gifted", "glowing", "hardy", "hearty", "humble", "jolly", "keen", "kind", "lively", "lucid", "lucky",
    "mellow", "merry", "mighty", "modest", "nimble", "noble", "patient", "placid", "plucky", "polite", "proud",
    "quiet", "radiant", "rapid", "serene", "sharp", "silent", "sincere", "snappy", "steady", "stoic", "sunny", "swift",
    "tender", "tidy", "upbeat", "valiant", "vivid", "warm", "witty", "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "al-khwarizmi",
    "babbage",
    "bardeen",
    "bell",
    "bohr",
    "boole",
    "cannon",
    "carson",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "hamilton",
    "hawking",
    "hopper",
    "hypatia",
    "jackson",
    "johnson",
    "kepler",
    "knuth",
    "kovalevskaya",
    "lamarr",
    "lamport",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "planck",
    "ramanujan",
    "ritchie",
    "sagan",
    "shannon",
    "somerville",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "volta",
    "wiles",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            // getrandom only fails on ancient kernels; fall back to the clock.
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                for (i, b) in buf.iter_mut().enumerate().skip(filled) {
                    *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151) ^ std::process::id() as u8;
                }
                filled = N;
            }
        }
    }
    buf
}

/// A new 64-hex-digit container ID.
pub fn new_id() -> String {
    random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

/// A random `adjective_surname`; `attempt` > 0 appends a number, as docker
/// does when a name is taken.
pub fn generate(attempt: u32) -> String {
    let r = random_bytes::<4>();
    let a = ADJECTIVES[(u16::from_le_bytes([r[0], r[1]]) as usize) % ADJECTIVES.len()];
    let s = SURNAMES[(u16::from_le_bytes([r[2], r[3]]) as usize) % SURNAMES.len()];
    if attempt == 0 {
        format!("{a}_{s}")
    } else {
        format!("{a}_{s}{attempt}")
    }
}

/// docker's rule for `--name`: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(new_id(), id);
        let n = generate(0);
        assert!(valid(&n) && n.contains('_'), "{n}");
        assert!(generate(3).ends_with('3'));
        assert!(valid("web-1") && valid("a.b_c"));
        assert!(!valid("-x") && !valid("a") && !valid("a/b") && !valid(""));
    }
}
