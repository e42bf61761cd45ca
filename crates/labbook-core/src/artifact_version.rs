//! Versioned artifacts (issue 11): names, aliases, references such as
//! `spirals:v3` or `spirals:best`, and a version's manifest with the one
//! canonical encoding its content digest is computed over. Pure rules; the
//! store hashes and keeps the bytes.

use std::fmt;

use crate::artifact::normalize_artifact_path;
use crate::error::ValidationError;

/// The alias every name's newest version carries; it moves on each new
/// version and cannot be set or removed by hand.
pub const LATEST: &str = "latest";

/// The name and type of the versions that hold runs' code snapshots (the
/// files a replay needs beside the commit and diff), one name per project.
pub const CODE_ARTIFACT: &str = "code";

const MAX_NAME: usize = 128;

/// Checks an artifact name: 1 to 128 of `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-` (a name is also a folder in downloads and a CLI word).
pub fn validate_artifact_name(name: &str) -> Result<(), ValidationError> {
    check_word("name", name, "an artifact name")
}

/// An artifact name made from a file or folder's name (`train.npz` →
/// `train.npz`, `my data/` → `my_data`): characters outside the name's
/// alphabet become `_`; `None` when nothing usable is left.
pub fn name_from_path(path: &std::path::Path) -> Option<String> {
    name_from_text(path.file_name()?.to_str()?)
}

/// An artifact name made from any text (an MLflow dataset's or model's
/// name): characters outside the name's alphabet become `_`, leading `.`
/// and `-` go; `None` when nothing usable is left.
pub fn name_from_text(base: &str) -> Option<String> {
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while name.starts_with(['.', '-']) {
        name.remove(0);
    }
    name.truncate(MAX_NAME);
    validate_artifact_name(&name).ok().map(|()| name)
}

/// Checks an artifact's type (`dataset`, `model`, …): the name's rules.
pub fn validate_artifact_type(kind: &str) -> Result<(), ValidationError> {
    check_word("type", kind, "an artifact type")
}

/// Checks an alias a user sets: the name's rules, and neither `latest`
/// (labbook moves it) nor `v` followed by digits (read as a version).
pub fn validate_alias(alias: &str) -> Result<(), ValidationError> {
    check_word("alias", alias, "an alias")?;
    if alias == LATEST {
        return Err(ValidationError::new(
            "alias",
            "'latest' always names the newest version and cannot be set by hand",
        ));
    }
    if looks_like_version(alias) {
        return Err(ValidationError::new(
            "alias",
            format!("{alias:?} reads as a version number; choose another alias"),
        ));
    }
    Ok(())
}

fn check_word(field: &str, word: &str, what: &str) -> Result<(), ValidationError> {
    let shown = crate::config::truncate_for_message(word);
    if word.is_empty() {
        return Err(ValidationError::new(
            field,
            format!("{what} cannot be empty"),
        ));
    }
    if word.len() > MAX_NAME {
        return Err(ValidationError::new(
            field,
            format!("{shown} is longer than {MAX_NAME} characters"),
        ));
    }
    if let Some(c) = word
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "{shown} contains {c:?}; {what} may use only letters, digits, '_', '.' and '-'"
            ),
        ));
    }
    if word.starts_with(['.', '-']) {
        return Err(ValidationError::new(
            field,
            format!("{shown} starts with {:?}", &word[..1]),
        ));
    }
    Ok(())
}

/// `v` and digits: a version, whether or not the number fits.
fn looks_like_version(word: &str) -> bool {
    word.strip_prefix('v')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Which version of a name a reference means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    /// `name:v3`.
    Number(u64),
    /// `name:best`, and `name` alone, which means `name:latest`.
    Alias(String),
}

/// `name:v3`, `name:alias` or `name` (its latest version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    pub name: String,
    pub version: VersionSelector,
}

impl ArtifactRef {
    pub fn parse(text: &str) -> Result<ArtifactRef, ValidationError> {
        let (name, selector) = match text.split_once(':') {
            Some((name, selector)) => (name, Some(selector)),
            None => (text, None),
        };
        validate_artifact_name(name)?;
        let version = match selector {
            None => VersionSelector::Alias(LATEST.to_string()),
            Some(s) if looks_like_version(s) => {
                VersionSelector::Number(s[1..].parse().map_err(|_| {
                    ValidationError::new(
                        "version",
                        format!(
                            "{} is not a version number labbook can hold",
                            crate::config::truncate_for_message(s)
                        ),
                    )
                })?)
            }
            Some(s) => {
                if s != LATEST {
                    validate_alias(s)?;
                }
                VersionSelector::Alias(s.to_string())
            }
        };
        Ok(ArtifactRef {
            name: name.to_string(),
            version,
        })
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            VersionSelector::Number(n) => write!(f, "{}:v{n}", self.name),
            VersionSelector::Alias(a) => write!(f, "{}:{a}", self.name),
        }
    }
}

/// One file of a version: where it sits in the artifact, its size, its
/// content hash (hex, as the store writes it) and, for a file that stays
/// where it is instead of being copied into the store, where that is
/// (a `file://` URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    pub size: u64,
    pub hash: String,
    pub reference: Option<String>,
}

/// A version's files, sorted by path, each path inside the artifact's root
/// and given once. Its digest (the store's hash of `canonical_bytes`) is
/// the version's identity: metadata is kept beside it, not in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<ManifestEntry>,
}

impl Manifest {
    pub fn new(mut entries: Vec<ManifestEntry>) -> Result<Manifest, ValidationError> {
        for e in &mut entries {
            let normalized = normalize_artifact_path(&e.path)?;
            if normalized.is_empty() {
                return Err(ValidationError::new("path", "a file needs a name"));
            }
            e.path = normalized;
            if e.hash.is_empty() || !e.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ValidationError::new(
                    "hash",
                    format!("{}: the hash must be hexadecimal", e.path),
                ));
            }
            e.hash.make_ascii_lowercase();
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(ValidationError::new(
                "path",
                format!("{} is added twice", w[0].path),
            ));
        }
        Ok(Manifest { entries })
    }

    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The bytes a version's digest is the hash of: a format tag, then per
    /// file a kind byte (`F` stored, `R` referenced), its path's length and
    /// path, its hash's length and hash, its size, and for a reference the
    /// URI's length and URI. Lengths make the encoding unambiguous whatever
    /// a path holds.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = b"labbook-manifest-1\n".to_vec();
        let field = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        for e in &self.entries {
            out.push(if e.reference.is_some() { b'R' } else { b'F' });
            field(&mut out, e.path.as_bytes());
            field(&mut out, e.hash.as_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            if let Some(uri) = &e.reference {
                field(&mut out, uri.as_bytes());
            }
        }
        out
    }
}

/// What changed between two versions of an artifact, by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Manifest {
    pub fn diff(&self, newer: &Manifest) -> ManifestDiff {
        let mut out = ManifestDiff::default();
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &newer.entries);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.path == y.path => {
                    if x.hash != y.hash || x.size != y.size || x.reference != y.reference {
                        out.changed.push(x.path.clone());
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.path < y.path => {
                    out.removed.push(x.path.clone());
                    i += 1;
                }
                (Some(x), None) => {
                    out.removed.push(x.path.clone());
                    i += 1;
                }
                (_, Some(y)) => {
                    out.added.push(y.path.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(path: &str, size: u64, hash: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            size,
            hash: hash.into(),
            reference: None,
        }
    }

    #[test]
    fn references_name_a_version_an_alias_or_the_latest() {
        let parsed = |t: &str| ArtifactRef::parse(t).map(|r| (r.name, r.version));
        assert_eq!(
            parsed("spirals:v3"),
            Ok(("spirals".into(), VersionSelector::Number(3)))
        );
        assert_eq!(
            parsed("spirals:best"),
            Ok(("spirals".into(), VersionSelector::Alias("best".into())))
        );
        assert_eq!(
            parsed("spirals"),
            Ok(("spirals".into(), VersionSelector::Alias(LATEST.into())))
        );
        assert_eq!(
            parsed("spirals:latest"),
            Ok(("spirals".into(), VersionSelector::Alias(LATEST.into())))
        );
        for bad in [
            "",
            ":v1",
            "a/b:v1",
            "spirals:",
            "spirals:a/b",
            "sp rals",
            ".hidden",
            "x:y:z",
        ] {
            assert!(ArtifactRef::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Hostile sizes and shapes: one clear error naming the field, no panic.
        let long = "a".repeat(100_000);
        let err = ArtifactRef::parse(&long).unwrap_err();
        assert_eq!(err.field(), "name");
        assert!(err.to_string().contains("longer than 128"), "{err}");
        assert_eq!(
            ArtifactRef::parse(&format!("a:{long}"))
                .unwrap_err()
                .field(),
            "alias"
        );
        assert_eq!(
            ArtifactRef::parse(&":".repeat(10_000)).unwrap_err().field(),
            "name"
        );
        assert_eq!(
            ArtifactRef::parse("../../etc:v1").unwrap_err().field(),
            "name"
        );
        assert_eq!(
            ArtifactRef::parse("a:v99999999999999999999999")
                .unwrap_err()
                .field(),
            "version"
        );
        assert!(ArtifactRef::parse("nul\0:v1").is_err());
    }

    #[test]
    fn aliases_cannot_be_latest_a_version_or_hold_separators() {
        assert!(validate_alias("best").is_ok());
        for bad in ["latest", "v2", "a/b", "a:b", "", "-x"] {
            let err = validate_alias(bad).expect_err(bad);
            assert_eq!(err.field(), "alias");
        }
        // Not a version: a v with no digits, or digits with more after them.
        assert!(validate_alias("v").is_ok());
        assert!(validate_alias("v2b").is_ok());
    }

    #[test]
    fn a_manifest_is_sorted_normalized_and_refuses_escapes_and_repeats() {
        let m = Manifest::new(vec![entry("b/./x", 2, "AB"), entry("a", 1, "cd")]).unwrap();
        let paths: Vec<_> = m.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "b/x"]);
        assert_eq!(m.entries()[1].hash, "ab");
        assert_eq!(m.total_size(), 3);
        assert!(Manifest::new(vec![entry("../x", 1, "ab")]).is_err());
        assert!(Manifest::new(vec![entry("a", 1, "zz")]).is_err());
        let twice = Manifest::new(vec![entry("a", 1, "ab"), entry("./a", 1, "ab")]);
        assert_eq!(twice.unwrap_err().field(), "path");
    }

    #[test]
    fn the_canonical_bytes_follow_content_not_order_and_tell_paths_apart() {
        let one = Manifest::new(vec![entry("a", 1, "ab"), entry("b", 2, "cd")]).unwrap();
        let other_order = Manifest::new(vec![entry("b", 2, "cd"), entry("a", 1, "ab")]).unwrap();
        assert_eq!(one.canonical_bytes(), other_order.canonical_bytes());
        // Lengths keep "ab"+"c" and "a"+"bc" apart.
        let x = Manifest::new(vec![entry("ab", 1, "c0")]).unwrap();
        let y = Manifest::new(vec![entry("a", 1, "bc0")]).unwrap();
        assert_ne!(x.canonical_bytes(), y.canonical_bytes());
        let bigger = Manifest::new(vec![entry("a", 2, "ab"), entry("b", 2, "cd")]).unwrap();
        assert_ne!(one.canonical_bytes(), bigger.canonical_bytes());
    }

    #[test]
    fn a_diff_lists_added_removed_and_changed_files() {
        let v1 = Manifest::new(vec![
            entry("a", 1, "aa"),
            entry("b", 1, "bb"),
            entry("c", 1, "cc"),
        ])
        .unwrap();
        let v2 = Manifest::new(vec![
            entry("b", 1, "bb"),
            entry("c", 2, "c2"),
            entry("d", 1, "dd"),
        ])
        .unwrap();
        let d = v1.diff(&v2);
        assert_eq!(d.added, ["d"]);
        assert_eq!(d.removed, ["a"]);
        assert_eq!(d.changed, ["c"]);
        assert_eq!(v1.diff(&v1), ManifestDiff::default());
    }

    proptest! {
        #[test]
        fn references_print_as_they_parse(name in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", n in 0u64..10_000, alias in "[A-Za-z_][A-Za-z0-9_.-]{0,10}") {
            let by_number = ArtifactRef { name: name.clone(), version: VersionSelector::Number(n) };
            prop_assert_eq!(ArtifactRef::parse(&by_number.to_string()), Ok(by_number));
            if validate_alias(&alias).is_ok() {
                let by_alias = ArtifactRef { name, version: VersionSelector::Alias(alias) };
                prop_assert_eq!(ArtifactRef::parse(&by_alias.to_string()), Ok(by_alias));
            }
        }

        #[test]
        fn a_diff_of_any_two_manifests_accounts_for_every_path(
            a in proptest::collection::btree_map("[a-c]{1,2}", 0u64..3, 0..6),
            b in proptest::collection::btree_map("[a-c]{1,2}", 0u64..3, 0..6),
        ) {
            let make = |m: &std::collections::BTreeMap<String, u64>| Manifest::new(m.iter().map(|(p, s)| entry(p, *s, "ab")).collect()).unwrap();
            let d = make(&a).diff(&make(&b));
            for p in a.keys() {
                prop_assert_eq!(b.contains_key(p), !d.removed.contains(p));
                prop_assert_eq!(b.get(p).is_some_and(|s| s != &a[p]), d.changed.contains(p));
            }
            for p in b.keys() {
                prop_assert_eq!(!a.contains_key(p), d.added.contains(p));
            }
        }
    }
}
