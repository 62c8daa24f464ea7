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

pub use barge_records::{new_id, random_bytes, valid_name as valid};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names() {
        let n = generate(0);
        assert!(valid(&n) && n.contains('_'), "{n}");
        assert!(generate(3).ends_with('3'));
        assert!(valid("web-1") && valid("a.b_c"));
        assert!(!valid("-x") && !valid("a") && !valid("a/b") && !valid(""));
    }
}
