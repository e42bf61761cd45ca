//! `labbook ui`: the dashboard for this store, served from this binary.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use labbook_store::Store;

use crate::UiArgs;
use crate::app::App;

pub fn run(app: &App, args: UiArgs) -> Result<ExitCode> {
    let (store, dir) = app.open_existing()?;
    app.reap(&*store);
    let store: Arc<dyn Store> = store;
    let addr = SocketAddr::new(args.host, args.port);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let shown_dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let open = args.open;
    let served = runtime.block_on(labbook_server::serve(store, addr, |bound| {
        let url = format!("http://{bound}");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "labbook ui: serving {} at {url}", shown_dir.display());
        if !labbook_server::has_dashboard() {
            let _ = writeln!(
                out,
                "labbook ui: this binary was built without the dashboard's assets; run `make build` (the JSON API works)"
            );
        }
        let _ = out.flush();
        if open {
            // Best effort: a machine without a desktop has no opener.
            let _ = std::process::Command::new("xdg-open")
                .arg(&url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
    }));
    served.with_context(|| format!("cannot serve on {addr}"))?;
    Ok(ExitCode::SUCCESS)
}
