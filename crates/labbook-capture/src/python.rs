//! Installed Python distributions, read from the names of their metadata
//! directories only: opening hundreds of METADATA files would dominate the
//! time a capture takes.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::Package;

/// Lists the distributions installed in `site_paths`.
///
/// Each `name-version.dist-info` and `name-version.egg-info` entry counts;
/// names keep the spelling of the directory name. The result is sorted by
/// lowercased name; when a distribution appears in several paths, the first
/// path wins, as it does for Python's imports. Unreadable paths are skipped.
pub fn scan_python_packages(site_paths: &[PathBuf]) -> Vec<Package> {
    let mut seen = HashSet::new();
    let mut packages = Vec::new();
    for dir in site_paths {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        // Directory order is arbitrary; sorting makes the winner among
        // duplicates within one path the same on every run.
        names.sort_unstable();
        for file_name in names {
            let Some(package) = parse_metadata_dir(&file_name) else {
                continue;
            };
            if seen.insert(normalize(&package.name)) {
                packages.push(package);
            }
        }
    }
    packages.sort_by_cached_key(|p| (p.name.to_lowercase(), p.name.clone()));
    packages
}

/// Name and version from a metadata directory name. Legacy eggs may carry a
/// trailing Python tag (`foo-1.0-py3.11.egg-info`), which is not the version.
fn parse_metadata_dir(file_name: &str) -> Option<Package> {
    let (stem, is_egg) = if let Some(stem) = file_name.strip_suffix(".dist-info") {
        (stem, false)
    } else {
        (file_name.strip_suffix(".egg-info")?, true)
    };
    let (mut name, mut version) = stem.rsplit_once('-')?;
    if is_egg && is_python_tag(version) {
        (name, version) = name.rsplit_once('-')?;
    }
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some(Package {
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

fn is_python_tag(s: &str) -> bool {
    s.strip_prefix("py")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// PEP 503 comparison form, so that `Foo_Bar` and `foo-bar` are one package.
fn normalize(name: &str) -> String {
    name.to_lowercase().replace(['-', '.'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let p = parse_metadata_dir("numpy-2.1.0.dist-info");
        assert_eq!(
            p,
            Some(Package {
                name: "numpy".into(),
                version: "2.1.0".into()
            })
        );
        let p = parse_metadata_dir("typing_extensions-4.12.2.dist-info");
        assert_eq!(p.map(|p| p.name), Some("typing_extensions".to_owned()));
        let p = parse_metadata_dir("six-1.16.0-py3.11.egg-info");
        assert_eq!(p.map(|p| p.version), Some("1.16.0".to_owned()));
        assert_eq!(parse_metadata_dir("nodash.dist-info"), None);
        assert_eq!(parse_metadata_dir("numpy"), None);
        assert_eq!(parse_metadata_dir("numpy-1.0.pth"), None);
    }
}
