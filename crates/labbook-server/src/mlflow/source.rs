//! Which model-version sources a server accepts: MLflow's rules, so that a
//! version can never point the server at files outside what its run or
//! logged model holds (`/etc`, `file:///etc/passwd`, `../../x`, another
//! run's artifacts).

use percent_encoding::percent_decode_str;

use super::MlflowError;

/// A URI split as Python's `urlsplit` splits it (what MLflow's checks see).
#[derive(Debug, PartialEq)]
pub struct Uri<'a> {
    pub scheme: String,
    pub netloc: &'a str,
    pub path: &'a str,
}

pub fn split(uri: &str) -> Uri<'_> {
    let (scheme, rest) = match uri.split_once(':') {
        Some((s, rest))
            if s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s.to_ascii_lowercase(), rest)
        }
        _ => (String::new(), uri),
    };
    let (netloc, rest) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?', '#']).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    Uri {
        scheme,
        netloc,
        path,
    }
}

/// Decodes `%xx` (and `+` as a space) until nothing changes, as an attacker
/// may encode `..` more than once.
fn unquote_fully(text: &str) -> String {
    let mut current = text.to_string();
    // Each round at least shortens the text, so this ends.
    loop {
        let next = percent_decode_str(&current.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        if next == current {
            return current;
        }
        current = next;
    }
}

fn is_local(uri: &Uri<'_>) -> bool {
    uri.scheme.is_empty() || uri.scheme == "file"
}

fn path_parts(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty())
        .map(unquote_fully)
        .collect()
}

/// Whether `source` names `root` or something under it.
fn within(source: &str, root: &str) -> bool {
    let (s, r) = (split(source), split(root));
    let root_parts = path_parts(r.path);
    let source_parts = path_parts(s.path);
    s.scheme == r.scheme
        && s.netloc.eq_ignore_ascii_case(r.netloc)
        && !root_parts.is_empty()
        && source_parts.starts_with(&root_parts)
}

/// `mlflow-artifacts:` URIs and HTTP URLs of the proxied artifact route:
/// files this server serves, so they must belong to the run or model.
fn is_served_artifact(source: &str) -> bool {
    let uri = split(source);
    if uri.scheme == "mlflow-artifacts" {
        return true;
    }
    let route = ["api", "2.0", "mlflow-artifacts", "artifacts"];
    let parts = path_parts(uri.path);
    matches!(uri.scheme.as_str(), "http" | "https")
        && parts.windows(route.len()).any(|w| w == route)
}

fn relative_refusal(source: &str) -> MlflowError {
    MlflowError::invalid(format!(
        "Invalid model version source: '{source}'. If supplying a source as an http, https, \
         local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be \
         provided without relative path references present. Please provide an absolute path."
    ))
}

fn not_contained(source: &str, by: &str) -> MlflowError {
    MlflowError::invalid(format!(
        "Invalid model version source: '{source}'. The {by} request parameter must identify \
         the resource that contains the source."
    ))
}

fn local_refusal(source: &str, by: &str, what: &str) -> MlflowError {
    MlflowError::invalid(format!(
        "Invalid model version source: '{source}'. To use a local path as a model version \
         source, the {by} request parameter has to be specified and the local path has to be \
         contained within the artifact directory of the {what} specified by the {by}."
    ))
}

/// A path that, decoded, is absolute and has no `.` or `..` segment and no
/// NUL; anything else could walk out of where it seems to point.
fn check_absolute(source: &str) -> Result<(), MlflowError> {
    let decoded = unquote_fully(source);
    if decoded.split('/').any(|p| p == "..") {
        return Err(relative_refusal(source));
    }
    let path = split(&decoded).path.trim_end_matches('/').to_string();
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    if collapsed.contains('\0')
        || !collapsed.starts_with('/')
        || collapsed.split('/').any(|p| p == "." || p == "..")
    {
        return Err(relative_refusal(source));
    }
    Ok(())
}

/// The first segment of a `runs:/<id>/…` URI.
fn runs_uri_run(source: &str) -> Option<&str> {
    let uri = split(source);
    let id = uri.path.strip_prefix('/')?.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

/// The logged model a `models:/<model_id>` URI names (one segment, no
/// alias); `models:/<name>/<version>` names a registered model instead.
fn models_uri_model(source: &str) -> Option<&str> {
    let rest = split(source).path.trim_start_matches('/');
    (!rest.is_empty() && !rest.contains('/') && !rest.contains('@')).then_some(rest)
}

/// Which version of a registered model a `models:/` URI names.
#[derive(Debug, PartialEq)]
pub enum VersionRef<'a> {
    Number(i64),
    Alias(&'a str),
    /// `latest`: the newest version.
    Latest,
    /// A legacy stage: the newest version in it.
    Stage(&'a str),
}

/// The registered model and version a `models:/<name>/<version>` (or
/// `models:/<name>@<alias>`) source names: a copy of that version.
pub fn registered_version(source: &str) -> Option<(&str, VersionRef<'_>)> {
    let uri = split(source);
    if uri.scheme != "models" || !uri.netloc.is_empty() {
        return None;
    }
    let rest = uri.path.strip_prefix('/')?;
    if let Some((name, alias)) = rest.split_once('@') {
        return (!name.is_empty() && !alias.is_empty() && !alias.contains('/'))
            .then_some((name, VersionRef::Alias(alias)));
    }
    let (name, version) = rest.rsplit_once('/')?;
    if name.is_empty() || version.is_empty() {
        return None;
    }
    let reference = match version.parse::<i64>() {
        Ok(n) => VersionRef::Number(n),
        Err(_) if version.eq_ignore_ascii_case("latest") => VersionRef::Latest,
        Err(_) => VersionRef::Stage(version),
    };
    Some((name, reference))
}

/// Where a source must lie, as the run or logged model it claims to come
/// from says: `None` when that run or model does not exist.
pub struct Owner {
    pub artifact_root: Option<String>,
}

/// MLflow's checks of a version made from a run (`model_id` empty).
pub fn check_run_source(
    source: &str,
    run_id: &str,
    run: impl FnOnce(&str) -> Owner,
) -> Result<(), MlflowError> {
    let uri = split(source);
    if is_local(&uri) {
        // This server keeps every artifact in its own store: no run's
        // artifacts are a local directory a version could point into.
        return Err(local_refusal(source, "run_id", "run"));
    }
    check_absolute(source)?;
    match uri.scheme.as_str() {
        "runs" => {
            if uri.netloc.is_empty() && !run_id.is_empty() && runs_uri_run(source) == Some(run_id) {
                return Ok(());
            }
            return Err(not_contained(source, "run_id"));
        }
        "models" if !uri.netloc.is_empty() || models_uri_model(source).is_some() => {
            return Err(not_contained(source, "model_id"));
        }
        _ => {}
    }
    if is_served_artifact(source) {
        let root = if run_id.is_empty() {
            None
        } else {
            run(run_id).artifact_root
        };
        return match root {
            Some(root) if within(source, &root) => Ok(()),
            _ => Err(not_contained(source, "run_id")),
        };
    }
    Ok(())
}

/// MLflow's checks of a version made from a logged model.
pub fn check_model_source(
    source: &str,
    model_id: &str,
    model: impl FnOnce(&str) -> Owner,
) -> Result<(), MlflowError> {
    let uri = split(source);
    if is_local(&uri) {
        return Err(local_refusal(source, "model_id", "run"));
    }
    check_absolute(source)?;
    match uri.scheme.as_str() {
        "models" if !uri.netloc.is_empty() => return Err(not_contained(source, "model_id")),
        "models" => {
            if let Some(named) = models_uri_model(source) {
                return if named == model_id {
                    Ok(())
                } else {
                    Err(not_contained(source, "model_id"))
                };
            }
        }
        "runs" => return Err(not_contained(source, "model_id")),
        _ => {}
    }
    if is_served_artifact(source) {
        return match model(model_id).artifact_root {
            Some(root) if within(source, &root) => Ok(()),
            _ => Err(not_contained(source, "model_id")),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_models_uri_names_a_registered_version_or_not() {
        use VersionRef::*;
        assert_eq!(
            registered_version("models:/clf/3"),
            Some(("clf", Number(3)))
        );
        assert_eq!(
            registered_version("models:/clf@champion"),
            Some(("clf", Alias("champion")))
        );
        assert_eq!(
            registered_version("models:/clf/latest"),
            Some(("clf", Latest))
        );
        assert_eq!(
            registered_version("models:/clf/Production"),
            Some(("clf", Stage("Production")))
        );
        for other in [
            "models:/m-abc",
            "models://host/clf/1",
            "runs:/abc/model",
            "models:/clf@",
            "models:/@a",
            "models:/clf/",
        ] {
            assert_eq!(registered_version(other), None, "{other}");
        }
    }

    fn run_root(id: &str) -> Owner {
        Owner {
            artifact_root: (id == "r1").then(|| "mlflow-artifacts:/1/r1/artifacts".to_string()),
        }
    }

    #[test]
    fn splits_like_python() {
        assert_eq!(
            split("mlflow-artifacts://Host:5000/a/b?x#y"),
            Uri {
                scheme: "mlflow-artifacts".into(),
                netloc: "Host:5000",
                path: "/a/b"
            }
        );
        assert_eq!(split("../../x").scheme, "");
        assert_eq!(split("S3://b/k").scheme, "s3");
    }

    #[test]
    fn sources_that_reach_outside_are_refused() {
        for source in [
            "/etc",
            "file:///etc/passwd",
            "../../x",
            "model",
            "mlflow-artifacts:/../../etc",
            "mlflow-artifacts://host:5000/a/..%2f..%2fetc",
            "mlflow-artifacts:/1/r1/artifacts/%252e%252e/x",
            "http://h/api/2.0/mlflow-artifacts/artifacts/../../x",
            "s3://bucket/models/../../other",
            "s3://bucket/models/./x",
            "s3://bucket/models/%00",
            "s3://bucket",
            "runs:/r2/model",
            "runs://host/r1/model",
            "mlflow-artifacts:/1/r2/artifacts/model",
            "mlflow-artifacts:/1/r1/artifacts-other/model",
            "models:/m-123",
        ] {
            assert!(
                check_run_source(source, "r1", run_root).is_err(),
                "{source}"
            );
        }
        assert!(check_run_source("runs:/r1/model", "", run_root).is_err());
        assert!(check_run_source("mlflow-artifacts:/1/r1/artifacts/m", "r9", run_root).is_err());
    }

    #[test]
    fn sources_inside_their_run_or_elsewhere_are_accepted() {
        for source in [
            "s3://bucket/models/model",
            "gs://b/k/model",
            "runs:/r1/model",
            "mlflow-artifacts:/1/r1/artifacts/model",
            "MLFLOW-ARTIFACTS:/1/r1/artifacts/model",
            "http://h/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/x",
            "models:/registered/3",
        ] {
            let root = |id: &str| {
                let mut owner = run_root(id);
                if source.starts_with("http") {
                    owner.artifact_root =
                        Some("http://h/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts".into());
                }
                owner
            };
            assert!(check_run_source(source, "r1", root).is_ok(), "{source}");
        }
    }

    #[test]
    fn a_model_source_names_its_model() {
        let root = |id: &str| Owner {
            artifact_root: (id == "m-1").then(|| "mlflow-artifacts:/1/models/m-1/artifacts".into()),
        };
        assert!(check_model_source("models:/m-1", "m-1", root).is_ok());
        assert!(
            check_model_source("mlflow-artifacts:/1/models/m-1/artifacts", "m-1", root).is_ok()
        );
        for source in [
            "models:/m-2",
            "runs:/r1/model",
            "mlflow-artifacts:/1/models/m-2/artifacts",
            "/etc",
        ] {
            assert!(check_model_source(source, "m-1", root).is_err(), "{source}");
        }
    }
}
