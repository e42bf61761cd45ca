//! `labbook report`: the morning report of a project (what started,
//! finished, failed, crashed or was pruned since a time, grouped by what it
//! was for, each group's best run against the baseline, with its curve),
//! as text, Markdown, HTML or JSON. And `labbook baseline`, the run the
//! report compares with.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};

use labbook_store::report::{BASELINE_TAG, Report, ReportGroup, ReportQuery, build_report};
use labbook_store::{ProjectPatch, ProjectRef, Store};

use crate::app::{App, default_project};
use crate::error::hinted;
use crate::fmt::{self, now_ms};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Md,
    Html,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// From when: a time of day (18:00, the last one past), a span back
    /// (12h, 90m, 2d) or a date (2026-12-02, 2026-12-02T18:00, …Z for UTC).
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Until when (same forms); default now.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write to this file instead of the terminal.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// The headline metric for groups without their own (NAME or
    /// NAME:max); by default guessed from the runs' metrics.
    #[arg(long)]
    pub metric: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Make a run the project's baseline.
    Set { run: String },
    /// Show the project's baseline.
    Show {
        #[arg(long)]
        project: Option<String>,
    },
    /// Forget the project's baseline.
    Clear {
        #[arg(long)]
        project: Option<String>,
    },
}

/// A `--since`/`--until` value as epoch ms.
pub fn parse_when(text: &str, now: i64) -> Result<i64> {
    let t = text.trim();
    let bad = || {
        hinted(
            format!("{t:?} is not a time"),
            "give a time of day (18:00), a span back (12h, 90m, 2d) or a date (2026-12-02T18:00)",
        )
    };
    if let Some(n) = t.strip_suffix('h').and_then(|n| n.parse::<f64>().ok()) {
        return Ok(now - (n * 3_600_000.0) as i64);
    }
    if let Some(n) = t.strip_suffix('m').and_then(|n| n.parse::<f64>().ok()) {
        return Ok(now - (n * 60_000.0) as i64);
    }
    if let Some(n) = t.strip_suffix('d').and_then(|n| n.parse::<f64>().ok()) {
        return Ok(now - (n * 86_400_000.0) as i64);
    }
    let offset = fmt::local_offset_ms(now);
    if let Some((h, m)) = t.split_once(':').filter(|(h, _)| h.len() <= 2)
        && let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>())
    {
        if !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        let local = now + offset;
        let midnight = local - local.rem_euclid(86_400_000);
        let mut at = midnight + (h * 60 + m) * 60_000;
        if at > local {
            at -= 86_400_000;
        }
        return Ok(at - offset);
    }
    // YYYY-MM-DD[THH:MM[:SS]][Z]
    let (body, utc) = match t.strip_suffix('Z') {
        Some(b) => (b, true),
        None => (t, false),
    };
    let (date, time) = body.split_once(['T', ' ']).unwrap_or((body, "00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let tm: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || tm.len() < 2 || tm.len() > 3 {
        return Err(bad());
    }
    let month_days = [
        31,
        28 + i64::from(d[0] % 4 == 0 && (d[0] % 100 != 0 || d[0] % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid_date = (1..=12).contains(&d[1])
        && (1..=month_days[(d[1].clamp(1, 12) - 1) as usize]).contains(&d[2]);
    let valid_time = (0..24).contains(&tm[0])
        && (0..60).contains(&tm[1])
        && tm.get(2).is_none_or(|s| (0..60).contains(s));
    if !valid_date || !valid_time {
        return Err(bad());
    }
    let days = days_from_civil(d[0], d[1], d[2]);
    let ms = ((days * 24 + tm[0]) * 60 + tm[1]) * 60_000 + tm.get(2).copied().unwrap_or(0) * 1000;
    Ok(if utc {
        ms
    } else {
        ms - fmt::local_offset_ms(ms)
    })
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn report(app: &App, args: ReportArgs) -> Result<ExitCode> {
    let (store, dir) = app.open_existing()?;
    app.reap(&*store);
    let now = now_ms();
    let since = parse_when(&args.since, now)?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_when(u, now))
        .transpose()?
        .unwrap_or(now);
    if since >= until {
        bail!(
            "--since ({}) is not before --until ({})",
            fmt::iso_utc(since),
            fmt::iso_utc(until)
        );
    }
    let project = args.project.unwrap_or_else(|| default_project(&dir));
    let report = build_report(
        &*store,
        &ReportQuery {
            project: Some(project),
            since_ms: since,
            until_ms: until,
            metric: args.metric,
        },
    )?;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Md => markdown(&report),
        Format::Html => html(&report),
        Format::Text => terminal(&report, app.out(), args.output.is_none()),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            say!("labbook: report written to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the report of a project since `since_ms` as Markdown (and HTML
/// beside it) under `.labbook/reports/`; the Markdown file's path.
pub fn write_report_file(
    _app: &App,
    store: &dyn Store,
    store_dir: &Path,
    project: &str,
    since_ms: i64,
) -> Result<PathBuf> {
    let now = now_ms();
    let report = build_report(
        store,
        &ReportQuery {
            project: Some(project.to_string()),
            since_ms,
            until_ms: now,
            metric: None,
        },
    )?;
    let dir = store_dir.join("reports");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp = fmt::iso_utc(now).replace(':', "");
    let md = dir.join(format!("report-{stamp}.md"));
    std::fs::write(&md, markdown(&report))
        .with_context(|| format!("cannot write {}", md.display()))?;
    let html_path = dir.join(format!("report-{stamp}.html"));
    std::fs::write(&html_path, html(&report))
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    Ok(md)
}

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn sparkline(values: &[f64]) -> String {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    if values.is_empty() || !lo.is_finite() {
        return String::new();
    }
    values
        .iter()
        .map(|v| {
            let i = if hi > lo {
                ((v - lo) / (hi - lo) * 7.0).round() as usize
            } else {
                3
            };
            BLOCKS[i.min(7)]
        })
        .collect()
}

fn counts_line(counts: &std::collections::BTreeMap<String, u64>) -> String {
    const ORDER: [&str; 7] = [
        "started", "finished", "pruned", "failed", "crashed", "killed", "running",
    ];
    let parts: Vec<String> = ORDER
        .iter()
        .filter_map(|k| {
            counts
                .get(*k)
                .filter(|n| **n > 0)
                .map(|n| format!("{n} {k}"))
        })
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

fn span(report: &Report) -> String {
    let hours = (report.until_ms - report.since_ms) as f64 / 3_600_000.0;
    format!(
        "{} → {} ({hours:.1} h)",
        fmt::iso_utc(report.since_ms),
        fmt::iso_utc(report.until_ms)
    )
}

fn group_heading(g: &ReportGroup) -> String {
    let plan = g
        .plan
        .as_deref()
        .map(|p| format!(" (plan {p})"))
        .unwrap_or_default();
    match g.kind.as_str() {
        "sweep" => format!("sweep {}{plan}", g.title),
        "study" => format!("study {}{plan}", g.title),
        _ => format!("{}{plan}", g.title),
    }
}

fn best_line(g: &ReportGroup, baseline: Option<&str>) -> Option<String> {
    let (m, b) = (g.metric.as_ref()?, g.best.as_ref()?);
    let mut line = format!(
        "best {} ({}) {} = {}",
        b.name,
        b.id,
        m.name,
        b.value.map(fmt::number).unwrap_or_else(|| "-".into())
    );
    if baseline == Some(b.id.as_str()) {
        line.push_str(" · the baseline");
    }
    if let (Some(base), Some(delta), Some(better)) =
        (g.baseline_value, g.delta, g.better_than_baseline)
    {
        let _ = write!(
            line,
            " · baseline {} · {}{} ({})",
            fmt::number(base),
            if delta >= 0.0 { "+" } else { "" },
            fmt::number(delta),
            if better { "better" } else { "not better" }
        );
    }
    Some(line)
}

fn terminal(r: &Report, out: crate::style::Painter, tty: bool) -> String {
    let paint = |f: &dyn Fn(&crate::style::Painter, &str) -> String, s: &str| {
        if tty { f(&out, s) } else { s.to_string() }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} · {}",
        paint(&|p, t| p.heading(t), "report"),
        paint(
            &|p, t| p.bold(t),
            r.project.as_deref().unwrap_or("all projects")
        ),
        span(r)
    );
    let _ = writeln!(s, "{}", counts_line(&r.counts));
    if let Some(b) = &r.baseline {
        let _ = writeln!(s, "baseline {} ({})", b.name, b.id);
    }
    for g in &r.groups {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{}  {}",
            paint(&|p, t| p.bold(t), &group_heading(g)),
            counts_line(&g.counts)
        );
        if let Some(why) = g.why.as_ref().filter(|w| g.kind != "why" || **w != g.title) {
            let _ = writeln!(s, "  why  {why}");
        }
        if let Some(line) = best_line(g, r.baseline.as_ref().map(|b| b.id.as_str())) {
            let _ = writeln!(s, "  {line}");
        }
        if !g.curve.is_empty() {
            let _ = writeln!(s, "  {}", sparkline(&g.curve));
        }
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", paint(&|p, t| p.heading(t), "failed and crashed"));
        for f in &r.failures {
            let _ = writeln!(
                s,
                "  {} ({}) {} · {}",
                f.run.name, f.run.id, f.run.status, f.group
            );
            for l in &f.last_lines {
                let _ = writeln!(s, "    {l}");
            }
        }
    }
    if !r.running.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{} {}",
            paint(&|p, t| p.heading(t), "still running"),
            r.running
                .iter()
                .map(|b| format!("{} ({})", b.name, b.id))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.queue_left.is_empty() {
        let _ = writeln!(
            s,
            "{} {} job(s)",
            paint(&|p, t| p.heading(t), "queue left"),
            r.queue_left.len()
        );
        for j in &r.queue_left {
            let _ = writeln!(
                s,
                "  #{} {}{}",
                j.number,
                j.what,
                j.why
                    .as_deref()
                    .map(|w| format!(" — {w}"))
                    .unwrap_or_default()
            );
        }
    }
    let _ = writeln!(s, "GPU-hours {:.2}", r.gpu_hours);
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Report: {}\n",
        r.project.as_deref().unwrap_or("all projects")
    );
    let _ = writeln!(s, "{}\n", span(r));
    let _ = writeln!(
        s,
        "**{}** · GPU-hours {:.2}\n",
        counts_line(&r.counts),
        r.gpu_hours
    );
    if let Some(b) = &r.baseline {
        let _ = writeln!(s, "Baseline: {} (`{}`)\n", b.name, b.id);
    }
    for g in &r.groups {
        let _ = writeln!(s, "## {}\n", md_escape(&group_heading(g)));
        if let Some(why) = g.why.as_ref().filter(|w| g.kind != "why" || **w != g.title) {
            let _ = writeln!(s, "*Why:* {}\n", md_escape(why));
        }
        let _ = writeln!(s, "{}\n", counts_line(&g.counts));
        if let Some(line) = best_line(g, r.baseline.as_ref().map(|b| b.id.as_str())) {
            let _ = writeln!(s, "{}\n", md_escape(&line));
        }
        if !g.curve.is_empty() {
            let _ = writeln!(s, "`{}`\n", sparkline(&g.curve));
        }
        if let Some(m) = &g.metric {
            let _ = writeln!(
                s,
                "| run | status | {} |\n|---|---|---|",
                md_escape(&m.name)
            );
            for b in &g.runs {
                let _ = writeln!(
                    s,
                    "| {} (`{}`) | {} | {} |",
                    md_escape(&b.name),
                    b.id,
                    b.status,
                    b.value.map(fmt::number).unwrap_or_else(|| "-".into())
                );
            }
            let _ = writeln!(s);
        }
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s, "## Failed and crashed\n");
        for f in &r.failures {
            let _ = writeln!(
                s,
                "- **{}** (`{}`) {} · {}",
                md_escape(&f.run.name),
                f.run.id,
                f.run.status,
                md_escape(&f.group)
            );
            if !f.last_lines.is_empty() {
                let _ = writeln!(s, "  ```\n  {}\n  ```", f.last_lines.join("\n  "));
            }
        }
        let _ = writeln!(s);
    }
    if !r.running.is_empty() {
        let _ = writeln!(s, "## Still running\n");
        for b in &r.running {
            let _ = writeln!(s, "- {} (`{}`)", md_escape(&b.name), b.id);
        }
        let _ = writeln!(s);
    }
    if !r.queue_left.is_empty() {
        let _ = writeln!(s, "## Queue left\n");
        for j in &r.queue_left {
            let _ = writeln!(
                s,
                "- #{} `{}`{}",
                j.number,
                md_escape(&j.what),
                j.why
                    .as_deref()
                    .map(|w| format!(" — {}", md_escape(w)))
                    .unwrap_or_default()
            );
        }
    }
    s
}

fn h(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn svg_curve(values: &[f64]) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let (w, hgt) = (240.0, 48.0);
    let pts: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = i as f64 / (values.len() - 1) as f64 * w;
            let y = if hi > lo {
                hgt - (v - lo) / (hi - lo) * (hgt - 4.0) - 2.0
            } else {
                hgt / 2.0
            };
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        r#"<svg class="curve" viewBox="0 0 {w} {hgt}" width="{w}" height="{hgt}" role="img" aria-label="curve from {} to {}"><polyline points="{}"/></svg>"#,
        fmt::number(values[0]),
        fmt::number(values[values.len() - 1]),
        pts.join(" ")
    )
}

fn html(r: &Report) -> String {
    let mut s = String::new();
    let title = format!(
        "labbook report: {}",
        r.project.as_deref().unwrap_or("all projects")
    );
    let _ = write!(
        s,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><style>
:root{{color-scheme:light dark;--bg:#f7f7f8;--fg:#1a1a1f;--muted:#5d5d68;--card:#fff;--border:#e4e4e9;--accent:#3b6fd8;--good:#1d8a4e;--bad:#c0392b}}
@media (prefers-color-scheme: dark){{:root{{--bg:#0f0f12;--fg:#ececf1;--muted:#a0a0ab;--card:#18181d;--border:#2a2a31;--accent:#7aa2f7;--good:#4ec27d;--bad:#ef6b5b}}}}
body{{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;background:var(--bg);color:var(--fg);margin:0;padding:32px}}
main{{max-width:960px;margin:0 auto}} h1{{font-size:22px;margin:0 0 4px}} .muted{{color:var(--muted)}}
.card{{background:var(--card);border:1px solid var(--border);border-radius:10px;padding:16px 20px;margin:16px 0}}
.card h2{{font-size:16px;margin:0 0 6px}} .kind{{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin-right:6px}}
.curve polyline{{fill:none;stroke:var(--accent);stroke-width:2}} table{{border-collapse:collapse;width:100%;margin-top:8px;font-size:14px}}
td,th{{text-align:left;padding:4px 8px;border-bottom:1px solid var(--border)}} td.num{{text-align:right;font-variant-numeric:tabular-nums}}
.good{{color:var(--good)}} .bad{{color:var(--bad)}} pre{{background:var(--bg);padding:8px;border-radius:6px;overflow:auto;font-size:13px}}
</style></head><body><main>"#,
        h(&title)
    );
    let _ = write!(
        s,
        "<h1>{}</h1><p class=\"muted\">{} · {} · GPU-hours {:.2}</p>",
        h(&title),
        h(&span(r)),
        h(&counts_line(&r.counts)),
        r.gpu_hours
    );
    if let Some(b) = &r.baseline {
        let _ = write!(
            s,
            "<p class=\"muted\">Baseline: {} ({})</p>",
            h(&b.name),
            h(&b.id)
        );
    }
    for g in &r.groups {
        let _ = write!(
            s,
            "<section class=\"card\"><h2><span class=\"kind\">{}</span>{}</h2>",
            h(&g.kind),
            h(&g.title)
        );
        if let Some(why) = g.why.as_ref().filter(|w| g.kind != "why" || **w != g.title) {
            let _ = write!(s, "<p><b>Why:</b> {}</p>", h(why));
        }
        let _ = write!(s, "<p class=\"muted\">{}</p>", h(&counts_line(&g.counts)));
        if let Some(line) = best_line(g, r.baseline.as_ref().map(|b| b.id.as_str())) {
            let class = match g.better_than_baseline {
                Some(true) => "good",
                Some(false) => "bad",
                None => "",
            };
            let _ = write!(s, "<p class=\"{class}\">{}</p>", h(&line));
        }
        s.push_str(&svg_curve(&g.curve));
        if let Some(m) = &g.metric {
            let _ = write!(
                s,
                "<table><tr><th>run</th><th>status</th><th>{}</th></tr>",
                h(&m.name)
            );
            for b in &g.runs {
                let _ = write!(
                    s,
                    "<tr><td>{} <span class=\"muted\">{}</span></td><td>{}</td><td class=\"num\">{}</td></tr>",
                    h(&b.name),
                    h(&b.id),
                    b.status,
                    b.value.map(fmt::number).unwrap_or_else(|| "-".into())
                );
            }
            s.push_str("</table>");
        }
        s.push_str("</section>");
    }
    if !r.failures.is_empty() {
        s.push_str("<section class=\"card\"><h2>Failed and crashed</h2>");
        for f in &r.failures {
            let _ = write!(
                s,
                "<p><b>{}</b> <span class=\"muted\">{} · {} · {}</span></p>",
                h(&f.run.name),
                h(&f.run.id),
                f.run.status,
                h(&f.group)
            );
            if !f.last_lines.is_empty() {
                let _ = write!(s, "<pre>{}</pre>", h(&f.last_lines.join("\n")));
            }
        }
        s.push_str("</section>");
    }
    if !r.running.is_empty() || !r.queue_left.is_empty() {
        s.push_str("<section class=\"card\"><h2>Still running and queued</h2><ul>");
        for b in &r.running {
            let _ = write!(
                s,
                "<li>running: {} <span class=\"muted\">{}</span></li>",
                h(&b.name),
                h(&b.id)
            );
        }
        for j in &r.queue_left {
            let _ = write!(
                s,
                "<li>queued #{}: <code>{}</code>{}</li>",
                j.number,
                h(&j.what),
                j.why
                    .as_deref()
                    .map(|w| format!(" — {}", h(w)))
                    .unwrap_or_default()
            );
        }
        s.push_str("</ul></section>");
    }
    s.push_str("</main></body></html>\n");
    s
}

pub fn baseline(app: &App, command: BaselineCommand) -> Result<ExitCode> {
    let (store, dir) = app.open_existing()?;
    match command {
        BaselineCommand::Set { run } => {
            let run = crate::app::resolve(&*store, &run)?;
            let project = store.project(ProjectRef::Name(&run.project))?;
            let mut tags = std::collections::BTreeMap::new();
            tags.insert(BASELINE_TAG.to_string(), run.id.clone());
            store.update_project(
                project.id,
                &ProjectPatch {
                    set_tags: tags,
                    now_ms: now_ms(),
                    ..ProjectPatch::default()
                },
            )?;
            say!(
                "labbook: {} ({}) is the baseline of project {}",
                run.name,
                run.id,
                run.project
            );
        }
        BaselineCommand::Show { project } => {
            let name = project.unwrap_or_else(|| default_project(&dir));
            let no_baseline = || {
                hinted(
                    format!("project {name} has no baseline"),
                    "labbook baseline set RUN",
                )
            };
            let p = store
                .project(ProjectRef::Name(&name))
                .map_err(|_| no_baseline())?;
            match p.tags.get(BASELINE_TAG) {
                Some(id) => match store.get_run(id) {
                    Ok(run) => println!("{} ({}) {}", run.name, run.id, run.status),
                    Err(_) => println!("{id} (no longer in the store)"),
                },
                None => return Err(no_baseline()),
            }
        }
        BaselineCommand::Clear { project } => {
            let name = project.unwrap_or_else(|| default_project(&dir));
            let p = store.project(ProjectRef::Name(&name))?;
            store.update_project(
                p.id,
                &ProjectPatch {
                    remove_tags: vec![BASELINE_TAG.to_string()],
                    now_ms: now_ms(),
                    ..ProjectPatch::default()
                },
            )?;
            say!("labbook: project {name} has no baseline now");
        }
    }
    Ok(ExitCode::SUCCESS)
}
