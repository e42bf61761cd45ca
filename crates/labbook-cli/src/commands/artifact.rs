//! `labbook artifact …`, `labbook lineage` and `labbook gc`: versioned
//! artifacts from the command line. Everything they do is a call into the
//! store (`labbook_store::versions`); this file parses and prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use labbook_core::artifact_version::Manifest;
use labbook_store::versions::{
    ArtifactVersion, EdgeRole, LineageGraph, LineageNode, LineageStart, NewArtifactVersion,
    Placement, VersionSource,
};
use labbook_store::{SqliteStore, Store, StoreError};

use crate::app::App;
use crate::fmt::{self, now_ms};
use crate::style::Painter;
use crate::table::{Align, Table};

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// List artifacts: names, types, versions, aliases, sizes.
    Ls(LsArgs),
    /// Show one version: files, sizes, digest, metadata, the run that
    /// produced it and the runs that used it.
    Show(ShowArgs),
    /// Log a file or folder as a new version of an artifact (no new version
    /// when its contents are those of an existing one).
    Log(LogArgs),
    /// Copy a version's files into a folder (hard links where possible).
    Get(GetArgs),
    /// Files added, removed and changed between two versions.
    Diff(DiffArgs),
    /// Point an alias at a version (or remove it with --remove).
    Alias(AliasArgs),
    /// Delete a version (soft: its contents stay until `labbook gc`).
    Rm(RefArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this project's artifacts [default: every project].
    #[arg(long, short = 'p')]
    project: Option<String>,
    /// Only artifacts of this type (dataset, model, …).
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    kind: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RefArgs {
    /// `name:v3`, `name:alias`, or `name` (its latest version).
    reference: String,
    /// The project holding the name [default: the one project that has it].
    #[arg(long, short = 'p')]
    project: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    at: RefArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Files or folders (a folder's files go at the artifact's root).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The artifact's name [default: the first path's name].
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// Its type.
    #[arg(long = "type", short = 't', default_value = "dataset")]
    kind: String,
    /// Project [default: $LABBOOK_PROJECT, else the store's directory name].
    #[arg(long, short = 'p')]
    project: Option<String>,
    /// An alias to point at the version (repeatable).
    #[arg(long = "alias", short = 'a', value_name = "ALIAS")]
    aliases: Vec<String>,
    /// Record the files where they are (hashes only) instead of copying them.
    #[arg(long)]
    reference: bool,
    /// The run that produced it (id, prefix or name).
    #[arg(long)]
    run: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    at: RefArgs,
    /// The folder to lay the files out in [default: ./artifacts/NAME:vN].
    #[arg(long, short = 'o', value_name = "DIR")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older version.
    from: String,
    /// The newer version.
    to: String,
    #[arg(long, short = 'p')]
    project: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct AliasArgs {
    #[command(flatten)]
    at: RefArgs,
    /// The alias (`best`, `prod`, …).
    alias: String,
    /// Remove the alias instead of setting it.
    #[arg(long, short = 'r')]
    remove: bool,
}

#[derive(Debug, Args)]
pub struct LineageArgs {
    /// `name:v3`, `name:alias`, a run id, prefix or name.
    reference: String,
    #[arg(long, short = 'p')]
    project: Option<String>,
    /// Print the graph as JSON (nodes and edges).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be freed, and free nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(app: &App, command: ArtifactCommand) -> Result<ExitCode> {
    match command {
        ArtifactCommand::Ls(args) => list(app, args),
        ArtifactCommand::Show(args) => show(app, args),
        ArtifactCommand::Log(args) => log(app, args),
        ArtifactCommand::Get(args) => get(app, args),
        ArtifactCommand::Diff(args) => diff(app, args),
        ArtifactCommand::Alias(args) => alias(app, args),
        ArtifactCommand::Rm(args) => remove(app, args),
    }
}

fn resolve(store: &SqliteStore, at: &RefArgs) -> Result<ArtifactVersion> {
    match store.resolve_artifact(at.project.as_deref(), &at.reference) {
        Ok(v) => Ok(v),
        Err(e @ StoreError::NotFound { .. }) => Err(crate::error::hinted(
            e.to_string(),
            "`labbook artifact ls` lists artifacts; `labbook artifact show NAME` their versions",
        )),
        Err(e @ StoreError::Ambiguous { .. }) => Err(crate::error::hinted(
            e.to_string(),
            "name the project with --project",
        )),
        Err(e) => Err(e.into()),
    }
}

fn version_json(v: &ArtifactVersion) -> Value {
    let mut value = serde_json::to_value(v).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("ref".into(), Value::String(v.reference()));
    }
    value
}

fn list(app: &App, args: LsArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let names = store.artifact_names(args.project.as_deref(), args.kind.as_deref())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return crate::fmt::print_json(&mut out, &names);
    }
    if names.is_empty() {
        eprintln!(
            "no artifacts yet: log one with run.log_artifact(...) in Python or `labbook artifact log PATH`"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let paint = app.out();
    let now = now_ms();
    let mut table = Table::new(vec![
        ("PROJECT".into(), Align::Left),
        ("NAME".into(), Align::Left),
        ("TYPE".into(), Align::Left),
        ("VERSIONS".into(), Align::Right),
        ("LATEST".into(), Align::Right),
        ("SIZE".into(), Align::Right),
        ("UPDATED".into(), Align::Left),
        ("ALIASES".into(), Align::Left),
    ]);
    for n in &names {
        let aliases: Vec<String> = n
            .aliases
            .iter()
            .filter(|(a, _)| a != "latest")
            .map(|(a, v)| format!("@{a}=v{v}"))
            .collect();
        table.push(vec![
            n.project.clone(),
            paint.bold(&n.name),
            n.kind.clone(),
            n.versions.to_string(),
            n.latest.map_or_else(|| "-".into(), |v| format!("v{v}")),
            fmt::bytes(n.latest_size),
            fmt::ago(now, n.updated_ms),
            aliases.join(" "),
        ]);
    }
    for line in table.render(|h| paint.dim(h)) {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(app: &App, args: ShowArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let v = resolve(&store, &args.at)?;
    let manifest = store.artifact_manifest(v.id)?;
    let edges = store.artifact_edges(v.id)?;
    let run_name = |id: &str| store.get_run(id).map(|r| r.name).ok();
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = version_json(&v);
        if let Value::Object(map) = &mut value {
            map.insert(
                "file_list".into(),
                manifest
                    .entries()
                    .iter()
                    .map(|e| json!({"path": e.path, "size": e.size, "hash": e.hash, "reference": e.reference}))
                    .collect(),
            );
            map.insert(
                "runs".into(),
                edges
                    .iter()
                    .map(|e| json!({"run_id": e.run_id, "run_name": run_name(&e.run_id), "role": e.role, "created_ms": e.created_ms}))
                    .collect(),
            );
            map.insert(
                "versions".into(),
                store
                    .artifact_versions(&v.project, &v.name)?
                    .iter()
                    .map(|o| json!({"version": o.version, "digest": o.digest, "aliases": o.aliases, "deleted": o.deleted_ms.is_some()}))
                    .collect(),
            );
        }
        return crate::fmt::print_json(&mut out, &value);
    }
    let paint = app.out();
    let now = now_ms();
    let mut lines = vec![format!(
        "{}  {}{}",
        paint.bold(&v.reference()),
        paint.dim(&v.kind),
        if v.deleted_ms.is_some() {
            format!(
                "  {}",
                paint.warn(if v.purged {
                    "deleted, contents freed"
                } else {
                    "deleted"
                })
            )
        } else {
            String::new()
        }
    )];
    let field = |k: &str, val: String| format!("  {}  {val}", paint.dim(&format!("{k:<9}")));
    lines.push(field("project", v.project.clone()));
    lines.push(field("digest", v.digest.clone()));
    lines.push(field(
        "size",
        format!("{} in {} files", fmt::bytes(v.size), v.files),
    ));
    lines.push(field(
        "created",
        format!(
            "{} ({})",
            fmt::iso_utc(v.created_ms),
            fmt::ago(now, v.created_ms)
        ),
    ));
    if !v.aliases.is_empty() {
        lines.push(field(
            "aliases",
            v.aliases
                .iter()
                .map(|a| format!("@{a}"))
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
    if let Some(d) = &v.description {
        lines.push(field("about", d.lines().next().unwrap_or("").to_string()));
    }
    if let Value::Object(meta) = &v.metadata
        && !meta.is_empty()
    {
        lines.push(String::new());
        lines.push(paint.heading("Metadata"));
        for (k, val) in meta {
            lines.push(format!("  {}  {}", paint.dim(k), val));
        }
    }
    lines.push(String::new());
    lines.push(paint.heading("Runs"));
    if edges.is_empty() {
        lines.push(format!("  {}", paint.dim("none (logged outside a run)")));
    }
    for e in &edges {
        let verb = match e.role {
            EdgeRole::Output => "produced by",
            EdgeRole::Input => "used by    ",
        };
        lines.push(format!(
            "  {verb}  {}  {}",
            paint.id(e.run_id.get(..8).unwrap_or(&e.run_id)),
            run_name(&e.run_id).unwrap_or_else(|| "(deleted run)".into())
        ));
    }
    lines.push(String::new());
    lines.push(paint.heading(&format!("Files ({})", v.files)));
    let mut table = Table::new(vec![
        ("PATH".into(), Align::Left),
        ("SIZE".into(), Align::Right),
        ("HASH".into(), Align::Left),
    ]);
    for e in manifest.entries().iter().take(FILES_SHOWN) {
        table.push(vec![
            e.path.clone(),
            fmt::bytes(e.size),
            match &e.reference {
                Some(r) => format!("{}  {}", &e.hash[..12.min(e.hash.len())], paint.dim(r)),
                None => e.hash[..12.min(e.hash.len())].to_string(),
            },
        ]);
    }
    for line in table.render(|h| paint.dim(h)) {
        lines.push(format!("  {line}"));
    }
    if manifest.entries().len() > FILES_SHOWN {
        lines.push(paint.dim(&format!(
            "  … and {} more (--json lists every file)",
            manifest.entries().len() - FILES_SHOWN
        )));
    }
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The most files `artifact show` prints.
const FILES_SHOWN: usize = 30;

fn log(app: &App, args: LogArgs) -> Result<ExitCode> {
    let (store, dir) = app.open_existing()?;
    let run = match &args.run {
        Some(r) => Some(crate::app::resolve(&*store, r)?),
        None => None,
    };
    let project = match (&args.project, &run) {
        (Some(p), _) => p.clone(),
        (None, Some(r)) => r.project.clone(),
        (None, None) => crate::app::default_project(&dir),
    };
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            labbook_core::artifact_version::name_from_path(&args.paths[0]).ok_or_else(|| {
                crate::error::hinted(
                    format!("{} gives no artifact name", args.paths[0].display()),
                    "name it with --name",
                )
            })?
        }
    };
    let sources = args
        .paths
        .iter()
        .map(|p| {
            if p.is_dir() {
                VersionSource::Dir {
                    path: p.clone(),
                    prefix: String::new(),
                }
            } else {
                VersionSource::File {
                    path: p.clone(),
                    name: String::new(),
                }
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let logged = store.log_artifact_version(&NewArtifactVersion {
        project,
        name,
        kind: args.kind.clone(),
        sources,
        aliases: args.aliases.clone(),
        run_id: run.as_ref().map(|r| r.id.clone()),
        in_place: args.reference,
        now_ms: now_ms(),
        ..Default::default()
    })?;
    // Shown among the run's own files too, where MLflow clients list them.
    if logged.new_edge
        && let Some(run) = &run
        && let Some(dir) = labbook_server::run_artifact_dir(&*store, run)
    {
        store.link_version_files(
            logged.version.id,
            &format!("{dir}/{}", logged.version.name),
            now_ms(),
        )?;
    }
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = version_json(&logged.version);
        if let Value::Object(map) = &mut value {
            map.insert("created".into(), json!(logged.created));
            map.insert("bytes_stored".into(), json!(logged.bytes_stored));
            map.insert("cached_files".into(), json!(logged.cached_files));
            map.insert("seconds".into(), json!(elapsed.as_secs_f64()));
        }
        return crate::fmt::print_json(&mut out, &value);
    }
    let paint = app.out();
    let v = &logged.version;
    if logged.created {
        writeln!(
            out,
            "logged {}  {} in {} files, {} new, in {}",
            paint.bold(&v.reference()),
            fmt::bytes(v.size),
            v.files,
            fmt::bytes(logged.bytes_stored),
            fmt::duration(elapsed.as_millis() as i64)
        )?;
    } else {
        writeln!(
            out,
            "unchanged: {} already holds these contents (nothing stored)",
            paint.bold(&v.reference())
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn get(app: &App, args: GetArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let v = resolve(&store, &args.at)?;
    let dest = args
        .output
        .unwrap_or_else(|| PathBuf::from("artifacts").join(format!("{}:v{}", v.name, v.version)));
    store.download_artifact_version(&v, &dest, Placement::Link)?;
    let paint = app.out();
    writeln!(
        std::io::stdout().lock(),
        "{} → {}  ({} in {} files)",
        paint.bold(&v.reference()),
        dest.display(),
        fmt::bytes(v.size),
        v.files
    )?;
    Ok(ExitCode::SUCCESS)
}

fn diff(app: &App, args: DiffArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let at = |reference: &str| RefArgs {
        reference: reference.to_string(),
        project: args.project.clone(),
    };
    let a = resolve(&store, &at(&args.from))?;
    let b = resolve(&store, &at(&args.to))?;
    let (ma, mb): (Manifest, Manifest) = (
        store.artifact_manifest(a.id)?,
        store.artifact_manifest(b.id)?,
    );
    let d = ma.diff(&mb);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &json!({"from": a.reference(), "to": b.reference(), "added": d.added, "removed": d.removed, "changed": d.changed}),
        )?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let paint = app.out();
    writeln!(
        out,
        "{} → {}: {} added, {} removed, {} changed",
        paint.bold(&a.reference()),
        paint.bold(&b.reference()),
        d.added.len(),
        d.removed.len(),
        d.changed.len()
    )?;
    for (mark, paths) in [("+", &d.added), ("-", &d.removed), ("~", &d.changed)] {
        for p in paths {
            writeln!(out, "  {mark} {p}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn alias(app: &App, args: AliasArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let v = resolve(&store, &args.at)?;
    let paint = app.out();
    let mut out = std::io::stdout().lock();
    if args.remove {
        if !store.remove_artifact_alias(&v, &args.alias)? {
            bail!("{} has no alias @{}", v.name, args.alias);
        }
        writeln!(out, "removed @{} from {}", args.alias, v.name)?;
    } else {
        store.set_artifact_alias(v.id, &args.alias)?;
        writeln!(out, "@{} → {}", args.alias, paint.bold(&v.reference()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(app: &App, args: RefArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let v = resolve(&store, &args)?;
    if v.deleted_ms.is_some() {
        bail!("{} is already deleted", v.reference());
    }
    store.delete_artifact_version(v.id, now_ms())?;
    writeln!(
        std::io::stdout().lock(),
        "deleted {} (its contents are freed by `labbook gc`)",
        app.out().bold(&v.reference())
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn lineage(app: &App, args: LineageArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let as_version = RefArgs {
        reference: args.reference.clone(),
        project: args.project.clone(),
    };
    // A reference with a colon is a version; without one, a run if one
    // has that id, prefix or name, else an artifact's latest version.
    let run = if args.reference.contains(':') {
        None
    } else {
        match store.resolve_run(&args.reference, args.project.as_deref()) {
            Ok(run) => Some(run),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    };
    let start = match run {
        Some(run) => LineageStart::Run(run.id),
        None => LineageStart::Version(resolve(&store, &as_version)?.id),
    };
    let graph = store.lineage(&start)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return crate::fmt::print_json(&mut out, &graph);
    }
    for line in render_lineage(&graph, app.out()) {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn node_label(node: &LineageNode, paint: Painter) -> String {
    match node {
        LineageNode::Artifact {
            name,
            version,
            artifact_type,
            deleted,
            ..
        } => format!(
            "{}  {}{}",
            paint.bold(&format!("{name}:v{version}")),
            paint.dim(artifact_type),
            if *deleted { " (deleted)" } else { "" }
        ),
        LineageNode::Run {
            id, name, status, ..
        } => format!(
            "run {}  {}  {}",
            paint.id(id.get(..8).unwrap_or(id)),
            name,
            paint.dim(status)
        ),
    }
}

/// The graph as two indented trees from the root: what it came from
/// (upstream) and what came of it (downstream). Walked with an explicit
/// stack; a node met twice is printed once and then referred to.
fn render_lineage(graph: &LineageGraph, paint: Painter) -> Vec<String> {
    let node = |id: &str| graph.nodes.iter().find(|n| n.id() == id);
    let mut lines = Vec::new();
    let Some(root) = node(&graph.root) else {
        return lines;
    };
    lines.push(node_label(root, paint));
    for (upstream, title, arrow) in [(true, "upstream", "↑"), (false, "downstream", "↓")] {
        let next = |id: &str| -> Vec<&str> {
            graph
                .edges
                .iter()
                .filter_map(|e| {
                    if upstream {
                        (e.to == id).then_some(e.from.as_str())
                    } else {
                        (e.from == id).then_some(e.to.as_str())
                    }
                })
                .collect()
        };
        let first = next(&graph.root);
        if first.is_empty() {
            lines.push(paint.dim(&format!("  {arrow} nothing {title}")));
            continue;
        }
        let mut seen = std::collections::HashSet::from([graph.root.as_str()]);
        let mut stack: Vec<(&str, usize)> = first.into_iter().rev().map(|id| (id, 1)).collect();
        while let Some((id, depth)) = stack.pop() {
            let Some(n) = node(id) else { continue };
            let indent = "   ".repeat(depth - 1);
            if !seen.insert(id) {
                lines.push(format!(
                    "  {indent}{arrow} {} {}",
                    node_label(n, paint),
                    paint.dim("(above)")
                ));
                continue;
            }
            lines.push(format!("  {indent}{arrow} {}", node_label(n, paint)));
            for child in next(id).into_iter().rev() {
                stack.push((child, depth + 1));
            }
        }
    }
    if graph.truncated {
        lines.push(
            paint.dim("  … the graph goes on beyond this depth (--json has what was walked)"),
        );
    }
    lines
}

pub fn gc(app: &App, args: GcArgs) -> Result<ExitCode> {
    // A team database's contents are collected by any one of its machines.
    let store: std::sync::Arc<dyn labbook_store::Store> = if app.team_store.is_some() {
        app.open_served_store()?.store
    } else {
        app.open_existing()?.0
    };
    let report = store.gc(args.dry_run, now_ms())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return crate::fmt::print_json(&mut out, &report);
    }
    let paint = app.out();
    let verb = if args.dry_run { "would free" } else { "freed" };
    if args.dry_run {
        for v in &report.versions_purged {
            writeln!(out, "  version  {v}  (deleted)")?;
        }
        for b in &report.blobs {
            writeln!(out, "  blob     {}  {}", b.hash, fmt::bytes(b.size))?;
        }
    }
    writeln!(
        out,
        "{verb} {} in {} blobs ({} scanned){}{}",
        paint.bold(&fmt::bytes(report.bytes)),
        report.blobs.len(),
        report.blobs_scanned,
        if report.versions_purged.is_empty() {
            String::new()
        } else {
            format!(", from {} deleted versions", report.versions_purged.len())
        },
        if report.stale_temp_files > 0 {
            format!(", and {} stale temporary files", report.stale_temp_files)
        } else {
            String::new()
        }
    )?;
    Ok(ExitCode::SUCCESS)
}
