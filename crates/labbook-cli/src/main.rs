//! `labbook`: a local-first experiment tracker in one binary.
//!
//! This crate is only the command line: parsing, presentation and the
//! process wrapper of `labbook run`. Storage, capture and the query language
//! live in the other crates.

/// `say!` without its panic: a message to a stderr that is gone
/// (`labbook run … 2>&1 | head`) is dropped, not fatal.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod app;
mod commands;
mod error;
mod fmt;
mod signals;
mod style;
mod table;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::App;

/// A local-first ML experiment tracker: wrap any program with `labbook run`,
/// then list, compare and export what it did.
#[derive(Debug, Parser)]
#[command(
    name = "labbook",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// The store directory (a `.labbook` folder) to use instead of the nearest
    /// one found from the current directory upwards.
    #[arg(long, global = true, env = "LABBOOK_DIR", value_name = "PATH")]
    dir: Option<PathBuf>,

    /// A team server's database, `postgresql://user@host:port/db`, instead
    /// of a `.labbook` store: for `serve`, `user`, `token`, `perm` and `gc`. The
    /// password comes from PGPASSWORD or ~/.pgpass (never put it here, where
    /// `ps` shows it); the whole URL may also be in LABBOOK_STORE.
    #[arg(
        long,
        global = true,
        env = "LABBOOK_STORE",
        value_name = "URL",
        conflicts_with = "dir"
    )]
    store: Option<String>,

    /// Never color the output (also: NO_COLOR=1, or output that is not a terminal).
    #[arg(long, global = true)]
    no_color: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a `.labbook` store in the current directory (or --dir).
    Init(InitArgs),
    /// Run a program as a tracked run: its output, exit status, environment
    /// and system metrics are recorded.
    #[command(override_usage = "labbook run [OPTIONS] -- <COMMAND> [ARGS]...")]
    Run(RunArgs),
    /// List runs.
    Ls(LsArgs),
    /// Show everything about one run.
    Show(ShowArgs),
    /// Add tags to a run (or remove them with --remove).
    Tag(TagArgs),
    /// Append an entry to a run's notebook.
    Note(NoteArgs),
    /// Delete runs (soft: `labbook restore` brings them back; --purge
    /// deletes them for good, with their files).
    Rm(RmArgs),
    /// Restore deleted runs.
    Restore(RunsArgs),
    /// Export a run's metrics as CSV, JSON or Parquet.
    Export(ExportArgs),
    /// The model registry: registered models, their versions and aliases.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Versioned artifacts: datasets, models and files, immutable and
    /// deduplicated, with aliases.
    #[command(subcommand)]
    Artifact(commands::artifact::ArtifactCommand),
    /// The chain of artifacts and runs around a version or a run: what it
    /// came from and what came of it.
    Lineage(commands::artifact::LineageArgs),
    /// Free the contents no live artifact version, run file or MLflow
    /// artifact references (after `artifact rm`).
    Gc(commands::artifact::GcArgs),
    /// Copy the store to a new directory as one consistent state, while
    /// runs may be writing it (a plain file copy of a store in use can be
    /// torn).
    Backup(commands::backup::BackupArgs),
    /// Send runs to a labbook server (`labbook serve`): config, every
    /// point, output, notes, environment and files; run it again and only
    /// what is new goes, --watch follows runs still logging.
    Sync(commands::sync::SyncArgs),
    /// The users a `labbook serve --auth` lets in: add, ls, rm, passwd.
    #[command(subcommand)]
    User(commands::account::UserCommand),
    /// API tokens of users: create (shown once), ls, revoke.
    #[command(subcommand)]
    Token(commands::account::TokenCommand),
    /// Who may do what on a `labbook serve --auth`: a user's role (READ,
    /// EDIT, MANAGE, NO_PERMISSIONS) on a project or registered model.
    #[command(subcommand)]
    Perm(commands::account::PermCommand),
    /// Run a run again from its recorded code, data, environment and
    /// command, as a new run linked to it; --check compares the curves.
    Replay(commands::replay::ReplayArgs),
    /// Compare a replay's curves with its original's: a verdict per metric
    /// and overall (exit 0 reproduced, 1 diverged).
    CheckReplay(commands::replay::CheckReplayArgs),
    /// Hyperparameter sweeps from W&B sweep files, run offline: create,
    /// run (or join as an agent), list, status, stop, cancel.
    #[command(subcommand)]
    Sweep(commands::sweep::SweepCommand),
    /// Tonight's experiments, each with why it runs: add commands, a plan
    /// or a sweep; run them on free slots until the queue is empty or
    /// --until.
    #[command(subcommand)]
    Queue(commands::queue::QueueCommand),
    /// The morning report: what ran since a time, grouped by what it was
    /// for, each group's best run against the baseline.
    Report(commands::report::ReportArgs),
    /// The project's baseline run, which the report compares with.
    #[command(subcommand)]
    Baseline(commands::report::BaselineCommand),
    /// Serve the dashboard for this store in the browser.
    Ui(UiArgs),
    /// Serve this store to others: the dashboard, labbook's API and MLflow's
    /// tracking API (point MLFLOW_TRACKING_URI here). Creates the store if
    /// there is none.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Share the store with the directory's group (mode 2770, files 0660)
    /// instead of keeping it private to you (0700, files 0600). On an
    /// existing store, opens it to the group.
    #[arg(long)]
    shared: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (0.0.0.0 to reach it from other machines).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one); 5000 is MLflow's.
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Let in only the store's accounts (`labbook user`, `labbook token`):
    /// every request but /health must carry a token or a password.
    #[arg(long, conflicts_with = "no_auth")]
    auth: bool,
    /// With --auth: the role of a user on a project or registered model
    /// no one gave them one on (READ, EDIT, MANAGE or NO_PERMISSIONS).
    #[arg(
        long,
        value_name = "ROLE",
        default_value = "READ",
        value_parser = parse_role,
        requires = "auth",
        env = "LABBOOK_DEFAULT_PERMISSION"
    )]
    default_permission: labbook_core::account::Role,
    /// Where artifact contents go: `s3://bucket/prefix` (an S3-compatible
    /// server; credentials and endpoint from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION) or
    /// `file:///shared/path`. Recorded in the store on first use, so every
    /// later command on it finds them; default: the store's own folder.
    #[arg(long, value_name = "URL", value_parser = parse_artifacts, env = "LABBOOK_ARTIFACTS")]
    artifacts: Option<labbook_store::ArtifactLocation>,
    #[command(flatten)]
    guard: GuardArgs,
}

fn parse_artifacts(text: &str) -> Result<labbook_store::ArtifactLocation, String> {
    labbook_store::ArtifactLocation::parse(text)
}

fn parse_role(text: &str) -> Result<labbook_core::account::Role, String> {
    labbook_core::account::Role::parse(text).map_err(|e| e.to_string())
}

/// Who may reach the server and how much one request may ask of it.
#[derive(Debug, Args)]
struct GuardArgs {
    /// Host names answered besides IP addresses, localhost and this
    /// machine's name (a guard against DNS rebinding); comma-separated,
    /// `*.example.com` patterns, `*` for any.
    #[arg(
        long,
        value_name = "HOSTS",
        value_delimiter = ',',
        env = "LABBOOK_ALLOWED_HOSTS"
    )]
    allowed_hosts: Vec<String>,
    /// Origins whose web pages may call the API (CORS), e.g.
    /// http://localhost:8888; comma-separated. None by default.
    #[arg(
        long,
        value_name = "ORIGINS",
        value_delimiter = ',',
        env = "LABBOOK_CORS_ALLOWED_ORIGINS"
    )]
    cors_allowed_origins: Vec<String>,
    /// The largest artifact upload taken (e.g. 500MiB, 20GiB).
    #[arg(long, value_name = "SIZE", default_value = "5GiB", value_parser = parse_size)]
    max_upload_size: u64,
    /// Uploads are refused while they would leave less than this free on the
    /// store's disk (e.g. 1GiB; 0 for no reserve).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    min_free_space: u64,
    /// Listen on an address other machines can reach although labbook has
    /// no accounts yet: anyone who reaches the port can read and change
    /// every run. Without it, only loopback addresses are served.
    #[arg(long)]
    no_auth: bool,
}

impl GuardArgs {
    fn options(&self) -> labbook_server::ServerOptions {
        labbook_server::ServerOptions {
            guard: labbook_server::GuardOptions {
                allowed_hosts: self.allowed_hosts.clone(),
                cors_allowed_origins: self.cors_allowed_origins.clone(),
            },
            max_upload_bytes: self.max_upload_size,
            min_free_bytes: self.min_free_space,
            head_timeout: seconds_from_env("LABBOOK_HTTP_HEAD_TIMEOUT")
                .unwrap_or(labbook_server::HEAD_TIMEOUT),
            idle_timeout: seconds_from_env("LABBOOK_HTTP_IDLE_TIMEOUT")
                .unwrap_or(labbook_server::IDLE_TIMEOUT),
            ..Default::default()
        }
    }
}

/// A duration in seconds from the environment (docs/API.md, "Limits").
fn seconds_from_env(name: &str) -> Option<std::time::Duration> {
    let text = std::env::var(name).ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds))
}

/// A size such as `5GiB`, `500MB`, `1g` or `1048576` (bytes).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 500MiB or 5GiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?}: use B, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

#[derive(Debug, Args)]
struct UiArgs {
    /// Address to listen on (0.0.0.0 to reach it from other machines).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 5001)]
    port: u16,
    /// Open the dashboard in the default browser.
    #[arg(long)]
    open: bool,
    #[command(flatten)]
    guard: GuardArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Project of the run [default: $LABBOOK_PROJECT, else the name of the
    /// directory holding the store].
    #[arg(long, short = 'p')]
    project: Option<String>,
    /// Name of the run [default: a generated one such as swift-otter-42].
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// Group of the run (a sweep, a seed set).
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// A tag; repeat the flag or separate tags with commas.
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    tags: Vec<String>,
    /// What this run tests, in a sentence.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    why: Option<String>,
    /// A config value: KEY=VALUE, VALUE read as JSON when it parses
    /// (lr=0.1 is a number, name=abc a string, layers=[64,64] a list).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Do not sample the program's CPU, memory and GPU use.
    #[arg(long)]
    no_monitor: bool,
    /// Log into a `labbook serve` at this address instead of a store
    /// (e.g. http://10.0.0.5:5000).
    #[arg(long, env = "LABBOOK_URL", value_name = "URL")]
    url: Option<String>,
    /// Take over a run the server made (a sweep agent's claimed trial).
    #[arg(long, value_name = "RUN", requires = "url", hide = true)]
    attach: Option<String>,
    /// The program and its arguments (put them after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

#[derive(Debug, Args)]
struct LsArgs {
    /// Project to list [default: $LABBOOK_PROJECT, else the name of the
    /// directory holding the store].
    #[arg(long, short = 'p', conflicts_with = "all_projects")]
    project: Option<String>,
    /// List runs of every project.
    #[arg(long, short = 'A')]
    all_projects: bool,
    /// Keep runs matching an expression, e.g.
    /// 'config.lr > 0.01 and status = "finished"'.
    #[arg(long, short = 'f', value_name = "EXPR", allow_hyphen_values = true)]
    filter: Option<String>,
    /// Sort keys, comma-separated, `-` for descending, e.g. '-metrics.val/acc,created'.
    #[arg(long, short = 's', value_name = "SPEC", allow_hyphen_values = true)]
    sort: Option<String>,
    /// At most this many runs (0: all).
    #[arg(long, short = 'l', default_value_t = 50, value_name = "N")]
    limit: usize,
    /// List deleted runs (and only those).
    #[arg(long)]
    deleted: bool,
    /// Print a JSON array of runs instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// A run id, a unique id prefix, or a unique run name.
    run: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TagArgs {
    /// A run id, a unique id prefix, or a unique run name.
    run: String,
    /// Tags to add (or remove); commas separate several in one argument.
    #[arg(required = true)]
    tags: Vec<String>,
    /// Remove the tags instead of adding them.
    #[arg(long, short = 'r')]
    remove: bool,
}

#[derive(Debug, Args)]
struct NoteArgs {
    /// A run id, a unique id prefix, or a unique run name.
    run: String,
    /// The note; several words are joined with spaces.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    text: Vec<String>,
}

#[derive(Debug, Args)]
struct RmArgs {
    /// Run ids, unique id prefixes, or unique run names.
    #[arg(required = true)]
    runs: Vec<String>,
    /// Delete for good: the runs' records, metrics, output and files
    /// (`labbook gc` then frees contents nothing else references). Cannot
    /// be undone.
    #[arg(long)]
    purge: bool,
}

#[derive(Debug, Args)]
struct RunsArgs {
    /// Run ids, unique id prefixes, or unique run names.
    #[arg(required = true)]
    runs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List registered models.
    Ls {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one registered model: its versions, aliases, stages and runs.
    Show {
        /// The registered model's name.
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// A run id, a unique id prefix, or a unique run name.
    run: String,
    /// Output format [default: from the --output extension, else csv].
    #[arg(long, short = 'f', value_enum)]
    format: Option<ExportFormat>,
    /// Write to this file instead of stdout (required for parquet on a terminal).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Export only this metric key (repeatable) [default: every key].
    #[arg(long = "key", short = 'k', value_name = "KEY")]
    keys: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let app = match App::new(cli.dir.clone(), cli.no_color) {
        Ok(app) => app.with_team_store(cli.store.clone()),
        Err(e) => return error::report(&e, false),
    };
    if app.team_store.is_some()
        && !matches!(
            cli.command,
            Command::Serve(_)
                | Command::User(_)
                | Command::Token(_)
                | Command::Perm(_)
                | Command::Gc(_)
        )
    {
        let e = error::hinted(
            "--store (or LABBOOK_STORE) names a team server's database, which only `serve`, `user`, `token`, `perm` and `gc` use".to_string(),
            "use --dir for a .labbook store, or unset LABBOOK_STORE",
        );
        return error::report(&e, app.color_stderr);
    }
    let result = match cli.command {
        Command::Init(args) => commands::init::run(&app, args),
        Command::Run(args) => commands::run::run(&app, args),
        Command::Ls(args) => commands::ls::run(&app, args),
        Command::Show(args) => commands::show::run(&app, args),
        Command::Tag(args) => commands::edit::tag(&app, args),
        Command::Note(args) => commands::edit::note(&app, args),
        Command::Rm(args) => commands::edit::remove(&app, args),
        Command::Restore(args) => commands::edit::restore(&app, args),
        Command::Export(args) => commands::export::run(&app, args),
        Command::Models(ModelsCommand::Ls { json }) => commands::models::list(&app, json),
        Command::Models(ModelsCommand::Show { name, json }) => {
            commands::models::show(&app, &name, json)
        }
        Command::Artifact(command) => commands::artifact::run(&app, command),
        Command::Lineage(args) => commands::artifact::lineage(&app, args),
        Command::Sweep(command) => commands::sweep::run(&app, command),
        Command::Queue(command) => commands::queue::run(&app, command),
        Command::Report(args) => commands::report::report(&app, args),
        Command::Baseline(command) => commands::report::baseline(&app, command),
        Command::Gc(args) => commands::artifact::gc(&app, args),
        Command::Backup(args) => commands::backup::backup(&app, args),
        Command::Sync(args) => commands::sync::sync(&app, args),
        Command::User(command) => commands::account::user(&app, command),
        Command::Token(command) => commands::account::token(&app, command),
        Command::Perm(command) => commands::account::perm(&app, command),
        // An error is told from a divergence (1) by its own status.
        Command::Replay(args) => {
            return commands::replay::replay(&app, args).unwrap_or_else(|e| {
                error::report(&e, app.color_stderr);
                ExitCode::from(2)
            });
        }
        Command::CheckReplay(args) => {
            return commands::replay::check_replay(&app, args).unwrap_or_else(|e| {
                error::report(&e, app.color_stderr);
                ExitCode::from(2)
            });
        }
        Command::Ui(args) => commands::ui::run(&app, args),
        Command::Serve(args) => commands::ui::serve(&app, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => error::report(&e, app.color_stderr),
    }
}
