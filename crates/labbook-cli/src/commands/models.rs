//! `labbook models ls|show`: the model registry that MLflow clients fill
//! through `labbook serve` (`register_model`, aliases, stages).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};
use labbook_core::model::RegisteredModel;
use labbook_store::{Store, models};
use serde_json::{Value, json};

use crate::app::App;
use crate::fmt::{self, now_ms};
use crate::style::Painter;
use crate::table::{Align, Table};

fn aliases(m: &RegisteredModel, version: i64) -> String {
    m.aliases_of(version)
        .iter()
        .map(|a| format!("@{a}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn model_json(store: &dyn Store, m: &RegisteredModel) -> Value {
    let versions: Vec<Value> = m
        .versions
        .iter()
        .rev()
        .map(|v| {
            let run = v.run_id.as_deref().and_then(|id| store.get_run(id).ok());
            json!({
                "version": v.version,
                "stage": v.stage,
                "aliases": m.aliases_of(v.version),
                "source": v.source,
                "run_id": v.run_id,
                "run_name": run.as_ref().map(|r| r.name.clone()),
                "project": run.map(|r| r.project),
                "model_id": v.model_id,
                "description": v.description,
                "tags": v.tags,
                "created_ms": v.created_ms,
            })
        })
        .collect();
    json!({
        "name": m.name,
        "description": m.description,
        "tags": m.tags,
        "aliases": m.aliases,
        "created_ms": m.created_ms,
        "updated_ms": m.updated_ms,
        "versions": versions,
    })
}

pub fn list(app: &App, as_json: bool) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let all: Vec<RegisteredModel> = models::list(&*store, models::REGISTERED_MODEL)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let items: Vec<Value> = all.iter().map(|m| model_json(&*store, m)).collect();
        return crate::fmt::print_json(&mut out, &items);
    }
    if all.is_empty() {
        eprintln!(
            "no registered models yet (an MLflow client registers them through `labbook serve`)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let paint = app.out();
    let now = now_ms();
    let mut table = Table::new(vec![
        ("NAME".into(), Align::Left),
        ("VERSIONS".into(), Align::Right),
        ("LATEST".into(), Align::Right),
        ("ALIASES".into(), Align::Left),
        ("UPDATED".into(), Align::Left),
        ("DESCRIPTION".into(), Align::Left),
    ]);
    for m in &all {
        let latest = m.versions.iter().map(|v| v.version).max();
        let aliases: Vec<String> = m
            .aliases
            .iter()
            .map(|(alias, v)| format!("@{alias}=v{v}"))
            .collect();
        table.push(vec![
            paint.bold(&m.name),
            m.versions.len().to_string(),
            latest.map_or_else(|| "-".into(), |v| format!("v{v}")),
            if aliases.is_empty() {
                "-".into()
            } else {
                aliases.join(" ")
            },
            fmt::ago(now, m.updated_ms),
            m.description
                .as_deref()
                .and_then(|d| d.lines().next())
                .unwrap_or("")
                .to_string(),
        ]);
    }
    for line in table.render(|h| paint.dim(h)) {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(app: &App, name: &str, as_json: bool) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let Some(m) = models::get::<RegisteredModel>(&*store, models::REGISTERED_MODEL, name)? else {
        let known: Vec<RegisteredModel> = models::list(&*store, models::REGISTERED_MODEL)?;
        let names: Vec<&str> = known.iter().map(|m| m.name.as_str()).collect();
        if names.is_empty() {
            bail!("no registered model {name:?}: the registry is empty");
        }
        return Err(crate::error::hinted(
            format!("no registered model {name:?}"),
            format!("registered models: {}", names.join(", ")),
        ));
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        return crate::fmt::print_json(&mut out, &model_json(&*store, &m));
    }
    for line in render(&*store, &m, app.out()) {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render(store: &dyn Store, m: &RegisteredModel, paint: Painter) -> Vec<String> {
    let mut lines = vec![paint.bold(&m.name)];
    if let Some(description) = m.description.as_deref().filter(|d| !d.trim().is_empty()) {
        lines.extend(description.lines().map(|l| format!("  {l}")));
    }
    for (key, value) in &m.tags {
        lines.push(format!("  {} {key} = {value}", paint.dim("tag")));
    }
    lines.push(String::new());
    let mut table = Table::new(vec![
        ("VERSION".into(), Align::Right),
        ("ALIASES".into(), Align::Left),
        ("STAGE".into(), Align::Left),
        ("RUN".into(), Align::Left),
        ("CREATED".into(), Align::Left),
        ("SOURCE".into(), Align::Left),
    ]);
    for v in m.versions.iter().rev() {
        let run = v
            .run_id
            .as_deref()
            .map(|id| match store.get_run(id) {
                Ok(r) => format!("{} {}", paint.id(&r.id), r.name),
                Err(_) => id.to_string(),
            })
            .unwrap_or_else(|| "-".into());
        let aliases = aliases(m, v.version);
        table.push(vec![
            format!("v{}", v.version),
            if aliases.is_empty() {
                "-".into()
            } else {
                aliases
            },
            v.stage.clone(),
            run,
            fmt::iso_utc(v.created_ms),
            v.source.clone(),
        ]);
    }
    lines.extend(table.render(|h| paint.dim(h)));
    lines
}
