//! `labbook ui` (the dashboard for this store) and `labbook serve` (the
//! same server for others, MLflow clients included), from this binary.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::app::App;
use crate::{ServeArgs, UiArgs};

/// Refuses an address other machines can reach unless `--no-auth` says
/// the operator means it: nothing would ask who is calling.
fn check_exposure(command: &str, addr: SocketAddr, allowed: bool) -> Result<()> {
    if addr.ip().is_loopback() || allowed {
        return Ok(());
    }
    Err(crate::error::hinted(
        format!(
            "labbook {command} will not listen on {} without accounts: anyone who can reach it could read and change every run",
            addr.ip()
        ),
        if command == "serve" {
            "pass --auth to let in only the store's accounts (`labbook user add`), or --no-auth on a network you trust"
        } else {
            "use `labbook serve --auth` to share the dashboard, or pass --no-auth on a network you trust"
        },
    ))
}

pub fn run(app: &App, args: UiArgs) -> Result<ExitCode> {
    check_exposure(
        "ui",
        SocketAddr::new(args.host, args.port),
        args.guard.no_auth,
    )?;
    let (store, dir) = app.open_existing()?;
    let open = args.open;
    let served = crate::app::ServedStore {
        read_only: store.read_only().map(str::to_string),
        shown: std::fs::canonicalize(&dir)
            .unwrap_or(dir)
            .display()
            .to_string(),
        local: Some(store.clone()),
        store,
    };
    serve_store(
        app,
        served,
        SocketAddr::new(args.host, args.port),
        args.guard.options(),
        "ui",
        move |url| {
            if open {
                // Best effort: a machine without a desktop has no opener.
                let _ = std::process::Command::new("xdg-open")
                    .arg(url)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
            }
        },
    )
}

pub fn serve(app: &App, args: ServeArgs) -> Result<ExitCode> {
    check_exposure(
        "serve",
        SocketAddr::new(args.host, args.port),
        args.guard.no_auth || args.auth,
    )?;
    let served = app.open_served_store()?;
    let store = &served.store;
    if let Some(location) = &args.artifacts {
        store.use_artifact_location(location).map_err(|e| {
            crate::error::hinted(
                format!("cannot keep artifacts in {}: {e}", location.url()),
                match location {
                    labbook_store::ArtifactLocation::S3 { .. } => {
                        "check the bucket exists and AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY reach it"
                    }
                    _ => "check the folder exists and this user may write it",
                },
            )
        })?;
    }
    if args.auth && store.users()?.is_empty() {
        return Err(crate::error::hinted(
            format!("--auth, but the store at {} has no users yet", served.shown),
            if app.team_store.is_some() {
                "add one with `labbook user add NAME` (same --store), then `labbook token create NAME`"
            } else {
                "add one with `labbook user add NAME` (same --dir), then `labbook token create NAME`"
            },
        ));
    }
    let mut options = args.guard.options();
    options.auth = args.auth;
    options.default_role = args.default_permission;
    // The reliability tests' hook; see labbook_server::TEST_HOLD_ENV.
    options.hold_after_commit = std::env::var(labbook_server::TEST_HOLD_ENV)
        .ok()
        .filter(|key| !key.is_empty());
    if let Some(key) = &options.hold_after_commit {
        eprintln!(
            "labbook serve: {} is set: log requests with a metric {key:?} are committed and never answered (a test hook; never set it in use)",
            labbook_server::TEST_HOLD_ENV
        );
    }
    serve_store(
        app,
        served,
        SocketAddr::new(args.host, args.port),
        options,
        "serve",
        |_| {},
    )
}

fn serve_store(
    app: &App,
    served: crate::app::ServedStore,
    addr: SocketAddr,
    options: labbook_server::ServerOptions,
    command: &str,
    on_ready: impl FnOnce(&str),
) -> Result<ExitCode> {
    let store = served.store;
    app.reap(&*store);
    let read_only = served
        .read_only
        .map(|why| format!(" (read-only: {why})"))
        .unwrap_or_default();
    let artifacts = match store.artifact_location() {
        labbook_store::ArtifactLocation::InStore if served.local.is_some() => None,
        labbook_store::ArtifactLocation::InStore => {
            Some("nowhere yet: uploads fail until it is started once with --artifacts".to_string())
        }
        elsewhere => Some(elsewhere.url()),
    };
    let shown = served.shown;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let served = runtime.block_on(labbook_server::serve(store, addr, options, |bound| {
        let url = format!("http://{bound}");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "labbook {command}: serving {shown} at {url}{read_only}"
        );
        if let Some(artifacts) = &artifacts {
            let _ = writeln!(out, "labbook {command}: artifact contents in {artifacts}");
        }
        if !labbook_server::has_dashboard() {
            let _ = writeln!(
                out,
                "labbook {command}: this binary was built without the dashboard's assets; run `make build` (the APIs work)"
            );
        }
        let _ = out.flush();
        on_ready(&url);
    }));
    if let Err(e) = &served
        && e.kind() == std::io::ErrorKind::AddrInUse
    {
        return Err(crate::error::hinted(
            format!("cannot serve on {addr}: the port is in use"),
            format!(
                "another program holds port {} (another `labbook {command}`?); choose one with --port N, or --port 0 for any free port",
                addr.port()
            ),
        ));
    }
    served.with_context(|| format!("cannot serve on {addr}"))?;
    Ok(ExitCode::SUCCESS)
}
