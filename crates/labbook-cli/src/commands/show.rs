//! `labbook show RUN`: everything known about one run.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use labbook_core::{ConfigValue, RunRecord};
use labbook_store::{NoteEntry, Store};
use serde_json::Value;

use crate::ShowArgs;
use crate::app::{App, resolve, run_json};
use crate::fmt::{self, now_ms};
use crate::style::Painter;
use crate::table::{Align, Table, display_width};

pub fn run(app: &App, args: ShowArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    app.reap(&*store);
    let run = resolve(&*store, &args.run)?;
    let environment = store.environment(&run.id)?;
    let notebook = store.notes(&run.id)?;
    let artifacts = artifacts_of(&*store, &run)?;
    let models: Vec<Value> = run
        .outputs
        .iter()
        .map(|o| {
            let model = labbook_server::logged_model_by_id(&*store, &o.model_id);
            serde_json::json!({
                "model_id": o.model_id,
                "step": o.step,
                "name": model.as_ref().map(|m| m.name.clone()),
                "model_type": model.and_then(|m| m.model_type),
            })
        })
        .collect();
    let now = now_ms();
    let mut out = std::io::stdout().lock();

    if args.json {
        let mut object = run_json(&run, now)?;
        object.insert("environment".into(), environment.unwrap_or(Value::Null));
        object.insert("notebook".into(), serde_json::to_value(&notebook)?);
        object.insert("parent".into(), serde_json::json!(run.parent_id()));
        object.insert("models".into(), Value::Array(models));
        object.insert(
            "artifacts".into(),
            artifacts
                .iter()
                .map(|(path, size)| serde_json::json!({ "path": path, "size": size }))
                .collect(),
        );
        let keys = store.series_keys(&run.id)?;
        object.insert(
            "metric_keys".into(),
            keys.into_iter()
                .map(|(key, count)| serde_json::json!({ "key": key, "count": count }))
                .collect(),
        );
        return crate::fmt::print_json(&mut out, &Value::Object(object));
    }

    let mut lines = render(&run, environment.as_ref(), &notebook, now, app.out());
    lineage_sections(&mut lines, &run, &models, &artifacts, app.out());
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A run's files (path under its artifact root, size), every one.
fn artifacts_of(store: &dyn Store, run: &RunRecord) -> Result<Vec<(String, u64)>> {
    let Some(base) = labbook_server::run_artifact_dir(store, run) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    let mut folders = vec![base.clone()];
    while let Some(dir) = folders.pop() {
        for entry in store.list_artifacts(&dir)? {
            if entry.is_dir {
                folders.push(entry.path);
            } else {
                let rel = entry
                    .path
                    .strip_prefix(&format!("{base}/"))
                    .unwrap_or(&entry.path)
                    .to_string();
                files.push((rel, entry.size));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The most files `show` lists before it says how many more there are.
const ARTIFACTS_SHOWN: usize = 20;

/// Tags, datasets, models and files: what the run is tied to.
fn lineage_sections(
    lines: &mut Vec<String>,
    run: &RunRecord,
    models: &[Value],
    artifacts: &[(String, u64)],
    paint: Painter,
) {
    let (system, own): (Vec<_>, Vec<_>) = run
        .kv_tags
        .iter()
        .partition(|(k, _)| k.starts_with("mlflow."));
    if !run.kv_tags.is_empty() {
        section(lines, paint, "tags");
        let width = own.iter().map(|(k, _)| display_width(k)).max().unwrap_or(0);
        for (key, value) in &own {
            let pad = width - display_width(key);
            let value = value.lines().next().unwrap_or("");
            lines.push(format!("  {key}{} = {value}", " ".repeat(pad)));
        }
        if !system.is_empty() {
            let names: Vec<&str> = system.iter().map(|(k, _)| k.as_str()).collect();
            lines.push(paint.dim(&format!(
                "  + {} system {} ({}); --json shows them",
                system.len(),
                if system.len() == 1 { "tag" } else { "tags" },
                names.join(", ")
            )));
        }
    }
    if !run.inputs.is_empty() {
        section(lines, paint, "datasets");
        let mut table = Table::new(vec![
            ("NAME".into(), Align::Left),
            ("DIGEST".into(), Align::Left),
            ("CONTEXT".into(), Align::Left),
            ("SOURCE".into(), Align::Left),
        ]);
        for d in &run.inputs {
            table.push(vec![
                d.name.clone(),
                d.digest.clone(),
                d.context().unwrap_or("-").to_string(),
                d.source.clone(),
            ]);
        }
        lines.extend(
            table
                .render(|h| paint.dim(h))
                .into_iter()
                .map(|l| format!("  {l}")),
        );
    }
    if !models.is_empty() {
        section(lines, paint, "models");
        let mut table = Table::new(vec![
            ("NAME".into(), Align::Left),
            ("MODEL ID".into(), Align::Left),
        ]);
        for m in models {
            table.push(vec![
                m["name"]
                    .as_str()
                    .unwrap_or("(not in this store)")
                    .to_string(),
                m["model_id"].as_str().unwrap_or("").to_string(),
            ]);
        }
        lines.extend(
            table
                .render(|h| paint.dim(h))
                .into_iter()
                .map(|l| format!("  {l}")),
        );
    }
    if !artifacts.is_empty() {
        section(lines, paint, "artifacts");
        let mut table = Table::new(vec![
            ("PATH".into(), Align::Left),
            ("SIZE".into(), Align::Right),
        ]);
        for (path, size) in artifacts.iter().take(ARTIFACTS_SHOWN) {
            table.push(vec![path.clone(), fmt::bytes(*size)]);
        }
        lines.extend(
            table
                .render(|h| paint.dim(h))
                .into_iter()
                .map(|l| format!("  {l}")),
        );
        if artifacts.len() > ARTIFACTS_SHOWN {
            lines.push(paint.dim(&format!(
                "  … {} more (labbook show --json lists them all)",
                artifacts.len() - ARTIFACTS_SHOWN
            )));
        }
    }
}

fn render(
    run: &RunRecord,
    env: Option<&Value>,
    notebook: &[NoteEntry],
    now: i64,
    paint: Painter,
) -> Vec<String> {
    let mut lines = vec![format!(
        "{}  {}  {}",
        paint.bold(&run.name),
        paint.id(&run.id),
        paint.status(run.status)
    )];
    let mut facts: Vec<(&str, String)> = vec![("project", run.project.clone())];
    if let Some(parent) = run.parent_id() {
        facts.push(("parent", parent.to_string()));
    }
    if let Some(group) = &run.group {
        facts.push(("group", group.clone()));
    }
    if !run.tags.is_empty() {
        facts.push(("tags", run.tags.join(", ")));
    }
    facts.push((
        "created",
        format!(
            "{} ({})",
            fmt::iso_utc(run.created_ms),
            fmt::ago(now, run.created_ms)
        ),
    ));
    if let Some(ended) = run.ended_ms {
        facts.push(("ended", fmt::iso_utc(ended)));
    }
    let duration = fmt::duration(run.duration_ms(now));
    facts.push((
        "duration",
        if run.status.is_terminal() {
            duration
        } else {
            format!("{duration} so far")
        },
    ));
    let mut host = Vec::new();
    if let Some(h) = &run.host {
        host.push(h.clone());
    }
    if let Some(pid) = run.pid {
        host.push(format!("pid {pid}"));
    }
    if let Some(code) = run.exit_code {
        host.push(format!("exit code {code}"));
    }
    if !host.is_empty() {
        facts.push(("host", host.join(" · ")));
    }
    if let Some(env) = env {
        env_facts(env, &mut facts);
    }
    if let Some(deleted) = run.deleted_ms {
        facts.push((
            "deleted",
            format!("{} (labbook restore {})", fmt::iso_utc(deleted), run.id),
        ));
    }
    let label_width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (label, value) in facts {
        lines.push(format!(
            "  {}  {value}",
            paint.dim(&format!("{label:label_width$}"))
        ));
    }

    if let Some(why) = run.notes.as_deref().filter(|n| !n.trim().is_empty()) {
        section(&mut lines, paint, "why");
        lines.extend(why.lines().map(|l| format!("  {l}")));
    }

    if !notebook.is_empty() {
        section(&mut lines, paint, "notebook");
        for entry in notebook {
            let mut text = entry.text.lines();
            lines.push(format!(
                "  {}  {}",
                paint.dim(&fmt::iso_utc(entry.created_ms)),
                text.next().unwrap_or("")
            ));
            // Continuation lines line up under the first.
            let indent = " ".repeat(2 + 20 + 2);
            lines.extend(text.map(|l| format!("{indent}{l}")));
        }
    }

    if !run.config.is_empty() {
        section(&mut lines, paint, "config");
        let width = run
            .config
            .keys()
            .map(|k| display_width(k))
            .max()
            .unwrap_or(0);
        for (key, value) in &run.config {
            let pad = width - display_width(key);
            lines.push(format!(
                "  {key}{} = {}",
                " ".repeat(pad),
                config_value(value)
            ));
        }
    }

    if !run.metrics.is_empty() {
        section(&mut lines, paint, "metrics");
        let mut table = Table::new(vec![
            ("KEY".into(), Align::Left),
            ("COUNT".into(), Align::Right),
            ("LAST".into(), Align::Right),
            ("MIN".into(), Align::Right),
            ("MAX".into(), Align::Right),
        ]);
        let mut keys: Vec<&String> = run.metrics.keys().collect();
        keys.sort_by_key(|k| (k.starts_with("sys/"), k.as_str()));
        for key in keys {
            let Some(m) = run.metrics.get(key) else {
                continue;
            };
            let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), fmt::number);
            table.push(vec![
                key.clone(),
                m.count.to_string(),
                fmt::number(m.last),
                opt(m.min),
                opt(m.max),
            ]);
        }
        lines.extend(
            table
                .render(|h| paint.dim(h))
                .into_iter()
                .map(|l| format!("  {l}")),
        );
    }

    if !run.summary.is_empty() {
        section(&mut lines, paint, "summary");
        let width = run
            .summary
            .keys()
            .map(|k| display_width(k))
            .max()
            .unwrap_or(0);
        for (key, value) in &run.summary {
            let pad = width - display_width(key);
            lines.push(format!(
                "  {key}{} = {}",
                " ".repeat(pad),
                json_value(value)
            ));
        }
    }

    if let Some(error) = run.error.as_deref().filter(|e| !e.trim().is_empty()) {
        section(&mut lines, paint, "error");
        lines.extend(error.lines().map(|l| format!("  {l}")));
    }
    lines
}

fn section(lines: &mut Vec<String>, paint: Painter, title: &str) {
    lines.push(String::new());
    lines.push(paint.heading(title));
}

/// Lines from the captured environment: command, cwd, git, system, Python.
fn env_facts(env: &Value, facts: &mut Vec<(&str, String)>) {
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(command) = env.get("command").and_then(Value::as_array) {
        let words: Vec<String> = command
            .iter()
            .filter_map(Value::as_str)
            .map(shell_quote)
            .collect();
        if !words.is_empty() {
            facts.push(("command", words.join(" ")));
        }
    }
    if let Some(cwd) = str_of(env, "cwd").filter(|c| !c.is_empty()) {
        facts.push(("cwd", cwd));
    }
    if let Some(git) = env.get("git").filter(|g| g.is_object()) {
        facts.push(("git", git_line(git)));
    }
    if let Some(code) = env.get("code").filter(|c| c.is_object()) {
        facts.push(("code", code_line(code)));
    }
    if let Some(of) = env.pointer("/replay/of").and_then(Value::as_str) {
        facts.push((
            "replay of",
            format!("{of} · labbook check-replay {of} <this run>"),
        ));
    }
    let mut system = Vec::new();
    if let Some(os) = str_of(env, "os") {
        system.push(os);
    }
    if let Some(cpus) = env
        .get("cpu_count")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
    {
        system.push(format!("{cpus} CPUs"));
    }
    if let Some(bytes) = env.get("memory_bytes").and_then(Value::as_u64) {
        system.push(format!("{:.0} GiB RAM", bytes as f64 / (1u64 << 30) as f64));
    }
    if let Some(gpus) = env
        .get("gpus")
        .and_then(Value::as_array)
        .filter(|g| !g.is_empty())
    {
        let name = gpus
            .first()
            .and_then(|g| str_of(g, "name"))
            .unwrap_or_else(|| "GPU".into());
        system.push(format!("{} × {name}", gpus.len()));
    }
    if !system.is_empty() {
        facts.push(("system", system.join(" · ")));
    }
    if let Some(python) = env.get("python").filter(|p| p.is_object()) {
        let version = str_of(python, "version").unwrap_or_default();
        let packages = python
            .get("packages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        facts.push(("python", format!("{version} ({packages} packages)")));
    }
}

/// `code:v3 · 2 files, 3.4 KiB · 1 left out (big.bin: …)`, or why the
/// snapshot was not kept.
fn code_line(code: &Value) -> String {
    let num = |k: &str| code.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut parts = vec![match code.get("version").and_then(Value::as_str) {
        Some(v) => format!("{v} · {} files, {}", num("files"), fmt::bytes(num("bytes"))),
        None if num("files") == 0 => "snapshot: nothing beside the commit".into(),
        None => "snapshot not kept".into(),
    }];
    if let Some(error) = code.get("error").and_then(Value::as_str) {
        parts.push(error.to_owned());
    }
    if let Some(skipped) = code
        .get("skipped")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        let first = skipped
            .first()
            .and_then(|s| s.get("path"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        parts.push(format!(
            "{} left out ({first}{})",
            skipped.len(),
            if skipped.len() > 1 { ", …" } else { "" }
        ));
    }
    parts.join(" · ")
}

/// `a1b2c3d on main · dirty: 14 changed lines · not in the diff (secrets):
/// .env · 2 untracked files`.
fn git_line(git: &Value) -> String {
    let mut parts = Vec::new();
    let commit = git
        .get("commit")
        .and_then(Value::as_str)
        .map(|c| c.chars().take(7).collect::<String>());
    let branch = git.get("branch").and_then(Value::as_str);
    parts.push(match (commit, branch) {
        (Some(c), Some(b)) => format!("{c} on {b}"),
        (Some(c), None) => format!("{c} (detached)"),
        (None, Some(b)) => format!("no commits yet on {b}"),
        (None, None) => "no commits yet".into(),
    });
    if git.get("dirty").and_then(Value::as_bool) == Some(true) {
        let diff = git.get("diff").and_then(Value::as_str).unwrap_or("");
        let changed = changed_lines(diff);
        let more = if git.get("diff_truncated").and_then(Value::as_bool) == Some(true) {
            "+"
        } else {
            ""
        };
        let s = if changed == 1 && more.is_empty() {
            ""
        } else {
            "s"
        };
        parts.push(format!("dirty: {changed}{more} changed line{s}"));
        // Said here, since the diff itself gives no sign of what it lacks.
        let excluded: Vec<&str> = git
            .get("diff_excluded")
            .and_then(Value::as_array)
            .map(|files| files.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !excluded.is_empty() {
            parts.push(format!(
                "not in the diff (secrets): {}",
                excluded.join(", ")
            ));
        }
    } else {
        parts.push("clean".into());
    }
    let untracked = git
        .get("untracked")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if untracked > 0 {
        let s = if untracked == 1 { "" } else { "s" };
        parts.push(format!("{untracked} untracked file{s}"));
    }
    parts.join(" · ")
}

/// Added and removed lines of a unified diff, file headers excluded.
pub fn changed_lines(diff: &str) -> usize {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count()
}

/// Quotes a word for a POSIX shell when it needs it, so a printed command
/// can be pasted back.
fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn config_value(v: &ConfigValue) -> String {
    match v {
        ConfigValue::Str(s) => format!("{s:?}"),
        other => other.display(),
    }
}

fn json_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), fmt::number),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_skip_headers() {
        let diff =
            "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1,2 @@\n-old\n+new\n+more\n context\n";
        assert_eq!(changed_lines(diff), 3);
    }

    #[test]
    fn code_line_says_what_the_snapshot_kept_and_left_out() {
        let code = serde_json::json!({
            "version": "code:v3", "files": 2, "bytes": 3500,
            "skipped": [{"path": "big.bin", "reason": "over the cap"}, {"path": ".env", "reason": "secret"}],
        });
        let line = code_line(&code);
        assert!(line.starts_with("code:v3 · 2 files, "), "{line}");
        assert!(line.ends_with("2 left out (big.bin, …)"), "{line}");
        let remote = serde_json::json!({"files": 1, "error": "not stored: url="});
        assert_eq!(code_line(&remote), "snapshot not kept · not stored: url=");
    }

    #[test]
    fn git_line_names_the_files_left_out_of_the_diff() {
        let git = serde_json::json!({
            "commit": "0123456789", "branch": "main", "dirty": true,
            "diff": "+a\n", "diff_excluded": [".env", "key.pem"], "untracked": []
        });
        assert_eq!(
            git_line(&git),
            "0123456 on main · dirty: 1 changed line · not in the diff (secrets): .env, key.pem"
        );
        let old = serde_json::json!({"commit": "0123456789", "dirty": true, "diff": ""});
        assert_eq!(
            git_line(&old),
            "0123456 (detached) · dirty: 0 changed lines"
        );
    }

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("train.py"), "train.py");
        assert_eq!(shell_quote("--lr=0.1"), "--lr=0.1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
