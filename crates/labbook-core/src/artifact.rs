//! Artifact paths: the one rule that keeps every read and write inside the
//! artifact root, whatever a client sends.

use crate::error::ValidationError;

/// Normalizes a relative artifact path (`a/./b/` → `a/b`; empty is the
/// root) and rejects any that could leave the root: absolute paths, `..`,
/// backslashes, drive letters, NUL and control characters.
pub fn normalize_artifact_path(path: &str) -> Result<String, ValidationError> {
    let bad = |why: &str| {
        Err(ValidationError::new(
            "path",
            format!("{} {why}", crate::config::truncate_for_message(path)),
        ))
    };
    if path.starts_with('/') {
        return bad("is absolute; artifact paths are relative to the artifact root");
    }
    if path.contains('\\') {
        return bad("contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if path.len() > 4096 {
        return bad("is longer than 4096 bytes");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => return bad("contains '..'; paths cannot leave the artifact root"),
            p if p.len() >= 2 && p.as_bytes()[1] == b':' && parts.is_empty() => {
                return bad("starts with a drive letter");
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        assert_eq!(
            normalize_artifact_path("a/./b/").ok().as_deref(),
            Some("a/b")
        );
        assert_eq!(normalize_artifact_path("").ok().as_deref(), Some(""));
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\..\\b",
            "C:/x",
            "a/\0",
        ] {
            assert!(normalize_artifact_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
