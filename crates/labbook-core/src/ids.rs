//! Run ids and readable names. Randomness comes from the caller so that this
//! crate stays free of OS calls.

/// Length of a run id: 36^8 ≈ 2.8e12 ids, so a project with a million runs
/// sees a collision with probability ≈ 2e-1 over its life; the store retries
/// on the unique constraint, so a collision costs a retry, never data.
pub const RUN_ID_LEN: usize = 8;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A run id from 64 random bits: lowercase base36, always starting with a
/// letter so it never parses as a number in a shell or a filter.
pub fn run_id_from_bits(mut bits: u64) -> String {
    let mut id = String::with_capacity(RUN_ID_LEN);
    id.push(ALPHABET[10 + (bits % 26) as usize] as char);
    bits /= 26;
    for _ in 1..RUN_ID_LEN {
        id.push(ALPHABET[(bits % 36) as usize] as char);
        bits /= 36;
    }
    id
}

/// Whether `s` has the shape of a run id (used to tell ids from names).
pub fn looks_like_run_id(s: &str) -> bool {
    s.len() == RUN_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        && s.as_bytes()[0].is_ascii_lowercase()
}

const ADJECTIVES: &[&str] = &[
    "amber", "ancient", "bold", "brave", "bright", "calm", "clever", "cosmic", "crimson",
    "curious", "daring", "dashing", "deep", "divine", "dry", "eager", "early", "electric",
    "elegant", "fancy", "fearless", "fiery", "fine", "fluent", "fresh", "frosty", "gentle",
    "giddy", "glad", "golden", "graceful", "grand", "hardy", "hidden", "honest", "icy", "jolly",
    "keen", "kind", "lively", "lucid", "lucky", "lunar", "misty", "modest", "nimble", "noble",
    "olive", "patient", "peach", "polar", "proud", "quick", "quiet", "rapid", "rare", "restful",
    "rosy", "royal", "rustic", "sage", "scarlet", "serene", "sharp", "shy", "silent", "silver",
    "sleek", "smooth", "snowy", "solar", "stellar", "stoic", "sunny", "swift", "tidy", "twilight",
    "upbeat", "valiant", "vivid", "warm", "wild", "wise", "witty", "young", "zesty",
];

const NOUNS: &[&str] = &[
    "aurora", "badger", "bay", "breeze", "brook", "canyon", "cedar", "cloud", "comet", "coral",
    "cosmos", "crane", "creek", "dawn", "delta", "dew", "dream", "dune", "eagle", "ember",
    "falcon", "fern", "field", "firefly", "flower", "forest", "fox", "frog", "galaxy", "glade",
    "glacier", "grove", "harbor", "hawk", "haze", "heron", "hill", "island", "lake", "leaf",
    "lynx", "maple", "meadow", "mesa", "moon", "moss", "mountain", "nebula", "oak", "ocean",
    "orbit", "otter", "owl", "paper", "pebble", "pine", "planet", "pond", "prairie", "puffin",
    "rain", "raven", "reef", "ridge", "river", "sea", "shadow", "sky", "snow", "sparrow", "spring",
    "star", "stone", "storm", "sun", "sunset", "thunder", "tide", "tree", "valley", "violet",
    "water", "wave", "willow", "wind", "wolf",
];

/// A readable run name such as `swift-otter-42`, from 64 random bits.
pub fn run_name_from_bits(bits: u64) -> String {
    let adjective = ADJECTIVES[(bits % ADJECTIVES.len() as u64) as usize];
    let rest = bits / ADJECTIVES.len() as u64;
    let noun = NOUNS[(rest % NOUNS.len() as u64) as usize];
    let number = (rest / NOUNS.len() as u64) % 100;
    format!("{adjective}-{noun}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        for bits in [0u64, 1, 42, u64::MAX, 0xdead_beef_cafe_f00d] {
            let id = run_id_from_bits(bits);
            assert!(looks_like_run_id(&id), "{id}");
        }
        assert_ne!(run_id_from_bits(1), run_id_from_bits(2));
        assert!(!looks_like_run_id("12345678"));
        assert!(!looks_like_run_id("swift-otter-42"));
    }

    #[test]
    fn names_are_readable() {
        let name = run_name_from_bits(123_456_789);
        assert_eq!(name.split('-').count(), 3, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
