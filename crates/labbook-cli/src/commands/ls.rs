//! `labbook ls`: one row per run, with the config keys that tell the runs
//! apart and their latest metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use labbook_core::query::{Expr, Field, SortKey, parse_filter, parse_sort};
use labbook_core::{ConfigValue, RunRecord};
use labbook_store::{Deleted, RunQuery, Store};

use crate::LsArgs;
use crate::app::{App, default_project, run_json, terminal_width};
use crate::fmt::{self, now_ms};
use crate::style::Painter;
use crate::table::{Align, Table, truncate};

/// Config and metric columns at most: more would not fit a terminal.
const MAX_KEY_COLUMNS: usize = 4;
/// Widest config value shown in a cell.
const MAX_VALUE_WIDTH: usize = 24;
/// Notes width when the terminal's width is unknown (output is piped).
const NOTES_WIDTH_PIPED: usize = 60;
/// Narrowest notes column worth printing.
const MIN_NOTES_WIDTH: usize = 12;

pub fn run(app: &App, args: LsArgs) -> Result<ExitCode> {
    // The query is checked before the store is opened: a typo should be
    // reported as such even where there is no store yet.
    let filter = args.filter.as_deref().map(parse_filter).transpose()?;
    let sort = args
        .sort
        .as_deref()
        .map(parse_sort)
        .transpose()?
        .unwrap_or_default();
    let (store, dir) = app.open_existing()?;
    app.reap(&*store);
    let project = if args.all_projects {
        None
    } else {
        Some(args.project.unwrap_or_else(|| default_project(&dir)))
    };
    // Only the page is read: a store of 100,000 runs lists its newest 50
    // as fast as one of 50.
    let (runs, total) = store.list_runs_counted(&RunQuery {
        project: project.clone(),
        project_ids: None,
        filter: filter.clone(),
        sort: sort.clone(),
        limit: (args.limit > 0).then_some(args.limit),
        offset: 0,
        deleted: if args.deleted {
            Deleted::Only
        } else {
            Deleted::Exclude
        },
    })?;
    // Runs missing a sort key come last: when the first page has none
    // with it, no run has it.
    refuse_unknown_sort_keys(&sort, &runs)?;
    let now = now_ms();
    let mut out = std::io::stdout().lock();

    if args.json {
        let items = runs
            .iter()
            .map(|r| run_json(r, now).map(serde_json::Value::Object))
            .collect::<Result<Vec<_>>>()?;
        return crate::fmt::print_json(&mut out, &items);
    }

    if runs.is_empty() {
        let what = match (filter.is_some(), args.deleted) {
            (true, _) => "no runs match the filter",
            (false, true) => "no deleted runs",
            (false, false) => "no runs",
        };
        match &project {
            Some(p) => say!("{what} in project {p}"),
            None => say!("{what}"),
        }
        if let (Some(project), None) = (&project, &filter) {
            hint_other_projects(app, &*store, project);
        }
        return Ok(ExitCode::SUCCESS);
    }

    let lines = render(
        &runs,
        now,
        project.is_none(),
        &ListedFields::of(filter.as_ref(), &sort),
        terminal_width(),
        app.out(),
    );
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if total > runs.len() {
        say!(
            "showing {} of {total} runs; use --limit N (0 for all) to see more",
            runs.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A sort key that none of the listed runs has orders nothing, and is most
/// likely a typo: it is refused, with the keys of that kind the runs do have.
fn refuse_unknown_sort_keys(sort: &[SortKey], runs: &[RunRecord]) -> Result<()> {
    const SHOWN: usize = 8;
    for key in sort {
        let (kind, name): (&str, &str) = match &key.field {
            Field::Config(k) | Field::Param(k) => ("config keys", k),
            Field::Metric(k, _) => ("metrics", k),
            Field::Summary(k) => ("summary keys", k),
            Field::Tag(k) => ("tags", k),
            Field::Attr(_) | Field::Dataset(_) => continue,
        };
        let keys_of = |run: &RunRecord| -> Vec<String> {
            match &key.field {
                Field::Config(_) | Field::Param(_) => run.config.keys().cloned().collect(),
                Field::Metric(..) => run.metrics.keys().cloned().collect(),
                Field::Summary(_) => run.summary.keys().cloned().collect(),
                _ => run.kv_tags.keys().cloned().collect(),
            }
        };
        let has = |run: &RunRecord| match &key.field {
            Field::Config(_) | Field::Param(_) => run.config.contains_key(name),
            Field::Metric(..) => run.metrics.contains_key(name),
            Field::Summary(_) => run.summary.contains_key(name),
            _ => run.kv_tags.contains_key(name),
        };
        // Only a refusal gathers the keys to name.
        if runs.is_empty() || runs.iter().any(has) {
            continue;
        }
        let known: BTreeSet<String> = runs.iter().flat_map(keys_of).collect();
        let hint = if known.is_empty() {
            format!("the listed runs have no {kind}")
        } else {
            let mut listed: Vec<&str> = known.iter().take(SHOWN).map(String::as_str).collect();
            if known.len() > SHOWN {
                listed.push("…");
            }
            format!("the listed runs have these {kind}: {}", listed.join(", "))
        };
        return Err(crate::error::hinted(
            format!("unknown sort key {}: no listed run has it", key.field),
            hint,
        ));
    }
    Ok(())
}

fn hint_other_projects(app: &App, store: &dyn Store, project: &str) {
    let Ok(projects) = store.list_projects() else {
        return;
    };
    let others: Vec<String> = projects
        .iter()
        .filter(|p| p.project.name != project && p.runs > 0 && p.is_listed())
        .map(|p| format!("{} ({})", p.project.name, p.runs))
        .collect();
    if !others.is_empty() {
        say!(
            "{}: other projects have runs: {}; use --all-projects or --project NAME",
            app.err().hint("hint"),
            others.join(", ")
        );
    }
}

/// Config and metric keys the filter or sort mentions: the user is
/// looking at them, so they get columns first.
#[derive(Debug, Default)]
struct ListedFields {
    config: Vec<String>,
    metrics: Vec<String>,
}

impl ListedFields {
    fn of(filter: Option<&Expr>, sort: &[SortKey]) -> Self {
        let mut fields = ListedFields::default();
        let mentioned = sort
            .iter()
            .map(|k| &k.field)
            .chain(filter.map(Expr::fields).unwrap_or_default());
        for field in mentioned {
            match field {
                Field::Config(k) if !fields.config.contains(k) => fields.config.push(k.clone()),
                Field::Metric(k, _) | Field::Summary(k) if !fields.metrics.contains(k) => {
                    fields.metrics.push(k.clone())
                }
                _ => {}
            }
        }
        fields
    }
}

/// Up to `MAX_KEY_COLUMNS` keys: the ones the query names first, then those
/// `keep` accepts, ordered by `rank` (lower first), then by how many runs
/// have them, then by name.
fn pick_columns<'a, K: Ord>(
    keys: impl Iterator<Item = &'a String>,
    preferred: &[String],
    keep: impl Fn(&str) -> bool,
    rank: impl Fn(&str) -> K,
) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for key in keys {
        *counts.entry(key.as_str()).or_default() += 1;
    }
    let mut columns: Vec<String> = preferred
        .iter()
        .filter(|k| counts.contains_key(k.as_str()))
        .cloned()
        .collect();
    let mut rest: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(k, _)| !columns.iter().any(|c| c == k) && keep(k))
        .collect();
    rest.sort_by(|a, b| {
        rank(a.0)
            .cmp(&rank(b.0))
            .then(b.1.cmp(&a.1))
            .then(a.0.cmp(b.0))
    });
    columns.extend(rest.into_iter().map(|(k, _)| k.to_string()));
    columns.truncate(MAX_KEY_COLUMNS);
    columns
}

/// Config keys whose values differ between the listed runs (a key some
/// runs lack counts as differing), the most widely set first.
fn config_columns(runs: &[RunRecord], preferred: &[String]) -> Vec<String> {
    let differs = |key: &str| {
        let first = runs.first().and_then(|r| r.config.get(key));
        runs.iter().any(|r| !same_value(r.config.get(key), first))
    };
    pick_columns(
        runs.iter().flat_map(|r| r.config.keys()),
        preferred,
        differs,
        |_| (),
    )
}

fn same_value(a: Option<&ConfigValue>, b: Option<&ConfigValue>) -> bool {
    match (a, b) {
        // NaN != NaN, but two runs with lr=NaN do not differ in lr.
        (Some(ConfigValue::Float(x)), Some(ConfigValue::Float(y))) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

/// Metric keys to show: the user's own before the `sys/` ones the wrapper
/// samples, the most widely logged first.
fn metric_columns(runs: &[RunRecord], preferred: &[String]) -> Vec<String> {
    pick_columns(
        runs.iter().flat_map(|r| r.metrics.keys()),
        preferred,
        |_| true,
        |k| k.starts_with("sys/"),
    )
}

fn render(
    runs: &[RunRecord],
    now: i64,
    all_projects: bool,
    listed: &ListedFields,
    width: Option<usize>,
    paint: Painter,
) -> Vec<String> {
    let config_keys = config_columns(runs, &listed.config);
    let metric_keys = metric_columns(runs, &listed.metrics);
    let projects: BTreeSet<&str> = runs.iter().map(|r| r.project.as_str()).collect();
    let show_project = all_projects && projects.len() > 1;
    let show_group = runs.iter().any(|r| r.group.is_some());
    let show_tags = runs.iter().any(|r| !r.tags.is_empty());
    let missing = paint.dim("-");

    // Each column with how much it is worth keeping when the terminal is
    // too narrow for all of them (the lowest goes first); ID, NAME and
    // NOTES always stay, NOTES shrinking to what is left.
    const ALWAYS: u8 = u8::MAX;
    let mut columns = vec![
        ("ID".to_string(), Align::Left, ALWAYS),
        ("NAME".into(), Align::Left, ALWAYS),
    ];
    if show_project {
        columns.push(("PROJECT".into(), Align::Left, 40));
    }
    if show_group {
        columns.push(("GROUP".into(), Align::Left, 30));
    }
    columns.push(("STATUS".into(), Align::Left, 90));
    columns.push(("CREATED".into(), Align::Left, 20));
    columns.push(("DURATION".into(), Align::Right, 10));
    // The first config key and the first metric tell runs apart best.
    for (i, key) in config_keys.iter().enumerate() {
        let worth = if i == 0 { 80 } else { 60 - i as u8 };
        columns.push((truncate(key, MAX_VALUE_WIDTH), Align::Right, worth));
    }
    for (i, key) in metric_keys.iter().enumerate() {
        let worth = if i == 0 { 85 } else { 50 - i as u8 };
        columns.push((truncate(key, MAX_VALUE_WIDTH), Align::Right, worth));
    }
    if show_tags {
        columns.push(("TAGS".into(), Align::Left, 5));
    }
    columns.push(("NOTES".into(), Align::Left, ALWAYS));

    let mut rows = Vec::with_capacity(runs.len());
    let mut notes = Vec::with_capacity(runs.len());
    for run in runs {
        let mut row = vec![paint.id(&run.id), truncate(&run.name, 40)];
        if show_project {
            row.push(truncate(&run.project, 24));
        }
        if show_group {
            row.push(
                run.group
                    .as_deref()
                    .map_or_else(|| missing.clone(), |g| truncate(g, 24)),
            );
        }
        row.push(paint.status(run.status));
        row.push(fmt::ago(now, run.created_ms));
        row.push(fmt::duration(run.duration_ms(now)));
        for key in &config_keys {
            row.push(match run.config.get(key) {
                Some(v) => truncate(&config_cell(v), MAX_VALUE_WIDTH),
                None => missing.clone(),
            });
        }
        for key in &metric_keys {
            row.push(match run.metrics.get(key) {
                Some(summary) => fmt::number(summary.last),
                None => missing.clone(),
            });
        }
        if show_tags {
            row.push(truncate(&run.tags.join(","), 24));
        }
        // Filled in once the other columns' widths are known.
        row.push(String::new());
        rows.push(row);
        notes.push(
            run.notes
                .as_deref()
                .and_then(|n| n.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("")
                .to_string(),
        );
    }
    let build = |columns: &[(String, Align, u8)], rows: &[Vec<String>]| {
        let mut table = Table::new(columns.iter().map(|(h, a, _)| (h.clone(), *a)).collect());
        for row in rows {
            table.push(row.clone());
        }
        table
    };
    let mut table = build(&columns, &rows);
    // One column spare: a line exactly as wide as the terminal wraps in some.
    while let Some(w) = width
        && table.width_before_last() + 1 + MIN_NOTES_WIDTH > w
    {
        let Some(drop) = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.2 != ALWAYS)
            .min_by_key(|(i, c)| (c.2, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
        else {
            break;
        };
        columns.remove(drop);
        for row in &mut rows {
            row.remove(drop);
        }
        table = build(&columns, &rows);
    }
    let used = table.width_before_last() + 1;
    let notes_width = match width {
        Some(w) => w.saturating_sub(used).max(MIN_NOTES_WIDTH),
        None => NOTES_WIDTH_PIPED,
    };
    table.set_last_column(notes.iter().map(|n| truncate(n, notes_width)));
    table.render(|h| paint.bold(h))
}

/// Hyperparameters as the user wrote them (`1.0`, `3e-4`), not rounded like
/// metrics: two runs whose lr differs in the fifth digit must look different.
fn config_cell(v: &ConfigValue) -> String {
    v.display()
}
