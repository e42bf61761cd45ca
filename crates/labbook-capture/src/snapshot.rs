//! Which files a run's code snapshot keeps, so a replay can rebuild the
//! code exactly as it ran: in a git repository, what the commit and the
//! diff cannot give back (untracked files that are not ignored, and the
//! changed tracked files whole, since a diff can be cut or binary); outside
//! one, the working directory's files that no ignore file, virtualenv or
//! the store itself claims. Only the choice is made here; the caller hashes
//! and stores the files, content-addressed, off the run's start path.

use std::path::{Path, PathBuf};

use labbook_core::redact::secret_file;
use serde::{Deserialize, Serialize};

use crate::GitState;

/// How much a snapshot may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// A larger file is left out.
    pub max_file_bytes: u64,
    /// Files past this many bytes in all are left out.
    pub max_total_bytes: u64,
    /// Entries looked at outside git: a run started in a home directory
    /// must not walk all of it.
    pub max_files: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        SnapshotLimits {
            max_file_bytes: 1024 * 1024,
            max_total_bytes: 20 * 1024 * 1024,
            max_files: 5000,
        }
    }
}

impl SnapshotLimits {
    /// The limits `LABBOOK_SNAPSHOT_MAX_FILE_BYTES`, `…_MAX_BYTES` and
    /// `…_MAX_FILES` set, or `None` when `LABBOOK_SNAPSHOT` is `0`, `off`
    /// or `false` (no snapshot). A value that is not a number is reported
    /// and the default kept.
    pub fn from_env(errors: &mut Vec<String>) -> Option<SnapshotLimits> {
        Self::from_vars(|name| std::env::var(name).ok(), errors)
    }

    fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        errors: &mut Vec<String>,
    ) -> Option<SnapshotLimits> {
        if var("LABBOOK_SNAPSHOT")
            .is_some_and(|v| matches!(v.trim().to_lowercase().as_str(), "0" | "off" | "false"))
        {
            return None;
        }
        let mut limits = SnapshotLimits::default();
        let mut read = |name: &str, slot: &mut u64| {
            if let Some(raw) = var(name) {
                match raw.trim().parse::<u64>() {
                    Ok(v) => *slot = v,
                    Err(_) => errors.push(format!(
                        "{name}={raw:?} is not a whole number of bytes; kept {}",
                        *slot
                    )),
                }
            }
        };
        read(
            "LABBOOK_SNAPSHOT_MAX_FILE_BYTES",
            &mut limits.max_file_bytes,
        );
        read("LABBOOK_SNAPSHOT_MAX_BYTES", &mut limits.max_total_bytes);
        let mut files = limits.max_files as u64;
        read("LABBOOK_SNAPSHOT_MAX_FILES", &mut files);
        limits.max_files = usize::try_from(files).unwrap_or(usize::MAX);
        Some(limits)
    }
}

/// What a snapshot's paths are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotBase {
    /// The repository's top level: the snapshot completes commit + diff.
    #[default]
    Git,
    /// The working directory, outside any repository: the snapshot is all
    /// of the code.
    Directory,
}

/// One file to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Relative to the base, `/`-separated.
    pub rel: String,
    /// Where it is now.
    pub path: PathBuf,
    /// Its size when chosen.
    pub size: u64,
}

/// A file left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Relative to the base.
    pub path: String,
    /// Why, in a phrase.
    pub reason: String,
}

/// The files a snapshot keeps and those it leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotPlan {
    /// What the paths are relative to.
    pub base: SnapshotBase,
    /// The base's path.
    pub root: PathBuf,
    /// The files to keep, by path.
    pub files: Vec<SnapshotFile>,
    /// The files left out.
    pub skipped: Vec<SkippedFile>,
    /// Tracked files deleted in the working tree (git only).
    pub deleted: Vec<String>,
    /// The kept files' bytes.
    pub bytes: u64,
}

/// Folders never walked outside git: the store, environments and caches.
fn excluded_dir(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(
        name,
        "node_modules" | "__pycache__" | "site-packages" | ".labbook" | "wandb" | "mlruns"
    ) || path.join("pyvenv.cfg").is_file()
        || path.join("conda-meta").is_dir()
}

/// Chooses the snapshot's files: from git's view of the tree when `git` is
/// given, else by walking `cwd`.
pub fn plan_snapshot(cwd: &Path, git: Option<&GitState>, limits: &SnapshotLimits) -> SnapshotPlan {
    match git {
        Some(git) => plan_git(git, limits),
        None => plan_directory(cwd, limits),
    }
}

fn plan_git(git: &GitState, limits: &SnapshotLimits) -> SnapshotPlan {
    let root = PathBuf::from(&git.root);
    let mut plan = SnapshotPlan {
        base: SnapshotBase::Git,
        root: root.clone(),
        ..SnapshotPlan::default()
    };
    let mut candidates: Vec<(&String, bool)> = git
        .changed
        .iter()
        .map(|p| (p, true))
        .chain(git.untracked.iter().map(|p| (p, false)))
        .collect();
    candidates.sort();
    candidates.dedup_by(|a, b| a.0 == b.0);
    for (rel, tracked) in candidates {
        let path = root.join(rel);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tracked => {
                plan.deleted.push(rel.clone());
            }
            Err(e) => plan.skip(rel, format!("cannot be read: {e}")),
            Ok(meta) => plan.consider(rel, path, &meta, limits),
        }
    }
    plan
}

fn plan_directory(cwd: &Path, limits: &SnapshotLimits) -> SnapshotPlan {
    let mut plan = SnapshotPlan {
        base: SnapshotBase::Directory,
        root: cwd.to_path_buf(),
        ..SnapshotPlan::default()
    };
    let walker = ignore::WalkBuilder::new(cwd)
        .hidden(true)
        .parents(false)
        .ignore(true)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| {
            !(entry.file_type().is_some_and(|t| t.is_dir()) && excluded_dir(entry.path()))
        })
        .build();
    let mut seen = 0usize;
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                plan.skip("", format!("walk: {e}"));
                continue;
            }
        };
        if entry.depth() == 0 || entry.file_type().is_some_and(|t| t.is_dir()) {
            continue;
        }
        seen += 1;
        if seen > limits.max_files {
            plan.skip(
                ".",
                format!(
                    "stopped after {} files (LABBOOK_SNAPSHOT_MAX_FILES)",
                    limits.max_files
                ),
            );
            break;
        }
        let Ok(rel) = entry.path().strip_prefix(cwd) else {
            continue;
        };
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        match std::fs::symlink_metadata(entry.path()) {
            Ok(meta) => plan.consider(&rel, entry.path().to_path_buf(), &meta, limits),
            Err(e) => plan.skip(&rel, format!("cannot be read: {e}")),
        }
    }
    plan
}

impl SnapshotPlan {
    fn skip(&mut self, path: &str, reason: String) {
        self.skipped.push(SkippedFile {
            path: path.to_owned(),
            reason,
        });
    }

    fn consider(
        &mut self,
        rel: &str,
        path: PathBuf,
        meta: &std::fs::Metadata,
        limits: &SnapshotLimits,
    ) {
        if secret_file(rel) {
            self.skip(rel, "named like a secret; never stored".into());
        } else if meta.file_type().is_symlink() {
            self.skip(rel, "a symbolic link".into());
        } else if !meta.is_file() {
            self.skip(rel, "not a regular file".into());
        } else if meta.len() > limits.max_file_bytes {
            self.skip(
                rel,
                format!(
                    "{} bytes, over the {}-byte cap per file (LABBOOK_SNAPSHOT_MAX_FILE_BYTES)",
                    meta.len(),
                    limits.max_file_bytes
                ),
            );
        } else if self.bytes + meta.len() > limits.max_total_bytes {
            self.skip(
                rel,
                format!(
                    "{} bytes; the snapshot would pass its {}-byte cap (LABBOOK_SNAPSHOT_MAX_BYTES)",
                    meta.len(),
                    limits.max_total_bytes
                ),
            );
        } else {
            self.bytes += meta.len();
            self.files.push(SnapshotFile {
                rel: rel.to_owned(),
                path,
                size: meta.len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, bytes: usize) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; bytes]).unwrap();
    }

    fn rels(plan: &SnapshotPlan) -> Vec<&str> {
        plan.files.iter().map(|f| f.rel.as_str()).collect()
    }

    #[test]
    fn git_keeps_changed_and_untracked_within_caps() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.py", 10);
        write(dir.path(), "helper.py", 20);
        write(dir.path(), "big.bin", 2000);
        write(dir.path(), ".env", 5);
        write(dir.path(), "b.py", 900);
        let git = GitState {
            root: dir.path().to_string_lossy().into_owned(),
            changed: vec!["train.py".into(), "removed.py".into()],
            untracked: vec![
                "helper.py".into(),
                "big.bin".into(),
                ".env".into(),
                "b.py".into(),
            ],
            ..GitState::default()
        };
        let limits = SnapshotLimits {
            max_file_bytes: 1000,
            max_total_bytes: 500,
            max_files: 10,
        };
        let plan = plan_snapshot(dir.path(), Some(&git), &limits);
        assert_eq!(plan.base, SnapshotBase::Git);
        assert_eq!(rels(&plan), ["helper.py", "train.py"]);
        assert_eq!(plan.bytes, 30);
        assert_eq!(plan.deleted, ["removed.py"]);
        let skipped: Vec<(&str, &str)> = plan
            .skipped
            .iter()
            .map(|s| (s.path.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].0 == ".env" && skipped[0].1.contains("secret"));
        assert!(skipped[1].0 == "b.py" && skipped[1].1.contains("snapshot would pass"));
        assert!(skipped[2].0 == "big.bin" && skipped[2].1.contains("per file"));
    }

    #[test]
    fn directory_walk_skips_ignored_hidden_and_environments() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "train.py", 5);
        write(d, "lib/util.py", 5);
        write(d, ".gitignore", 10);
        std::fs::write(d.join(".gitignore"), "data/\n*.ckpt\n").unwrap();
        write(d, "data/x.csv", 5);
        write(d, "model.ckpt", 5);
        write(d, ".labbook/labbook.db", 5);
        write(d, "venv/pyvenv.cfg", 5);
        write(d, "venv/lib/site.py", 5);
        write(d, "lib/__pycache__/util.pyc", 5);
        let plan = plan_snapshot(d, None, &SnapshotLimits::default());
        assert_eq!(plan.base, SnapshotBase::Directory);
        assert_eq!(rels(&plan), ["lib/util.py", "train.py"]);

        let few = SnapshotLimits {
            max_files: 1,
            ..SnapshotLimits::default()
        };
        let plan = plan_snapshot(d, None, &few);
        assert_eq!(plan.files.len(), 1);
        assert!(plan.skipped[0].reason.contains("stopped after 1 files"));
    }

    #[test]
    fn limits_from_the_environment() {
        let mut errors = Vec::new();
        let off = SnapshotLimits::from_vars(
            |n| (n == "LABBOOK_SNAPSHOT").then(|| "off".into()),
            &mut errors,
        );
        assert_eq!(off, None);
        let set = SnapshotLimits::from_vars(
            |n| match n {
                "LABBOOK_SNAPSHOT_MAX_BYTES" => Some("100".into()),
                "LABBOOK_SNAPSHOT_MAX_FILE_BYTES" => Some("lots".into()),
                _ => None,
            },
            &mut errors,
        )
        .unwrap();
        assert_eq!(set.max_total_bytes, 100);
        assert_eq!(set.max_file_bytes, 1024 * 1024);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("LABBOOK_SNAPSHOT_MAX_FILE_BYTES"));
    }
}
