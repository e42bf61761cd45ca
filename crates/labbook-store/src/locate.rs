//! Finding the store: like git finds `.git`.

use std::path::{Path, PathBuf};

/// The store directory's name.
pub const STORE_DIR: &str = ".labbook";

/// The store for `cwd`: `override_dir` (from `LABBOOK_DIR`) when given,
/// else the nearest `.labbook` in `cwd` or an ancestor.
pub fn find_store(cwd: &Path, override_dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = override_dir {
        return Some(absolute(cwd, dir));
    }
    cwd.ancestors()
        .map(|d| d.join(STORE_DIR))
        .find(|d| d.is_dir())
}

/// Where a first run creates the store when none is found: the enclosing
/// git repository's root, else `cwd`.
pub fn default_store(cwd: &Path) -> PathBuf {
    let root = cwd
        .ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(cwd);
    root.join(STORE_DIR)
}

/// `find_store`, falling back to `default_store`.
pub fn store_dir_for(cwd: &Path, override_dir: Option<&Path>) -> PathBuf {
    find_store(cwd, override_dir).unwrap_or_else(|| default_store(cwd))
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_store_like_git() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_store(&deep, None), None);
        std::fs::create_dir_all(tmp.path().join("a/.labbook")).unwrap();
        assert_eq!(find_store(&deep, None), Some(tmp.path().join("a/.labbook")));
        assert_eq!(
            find_store(&deep, Some(Path::new("x"))),
            Some(deep.join("x"))
        );
    }

    #[test]
    fn defaults_to_the_git_root_then_the_cwd() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("repo/src");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(default_store(&deep), deep.join(".labbook"));
        std::fs::create_dir_all(tmp.path().join("repo/.git")).unwrap();
        assert_eq!(default_store(&deep), tmp.path().join("repo/.labbook"));
    }
}
