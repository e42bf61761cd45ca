//! A hook for the reliability tests, off unless `labbook serve` was started
//! with `LABBOOK_TEST_HOLD_AFTER_COMMIT=KEY` in its environment: the CLI
//! reads it once at start into [`crate::ServerOptions::hold_after_commit`],
//! so no request can arm it, and the server says on stderr that it is armed.
//!
//! Armed, a log request (labbook's `POST /api/v1/runs/{id}/log`, MLflow's
//! `runs/log-batch`) that carries a metric named KEY is committed as usual,
//! the server writes a line saying so to stderr, and the answer is never
//! sent. A test that then kills the server has a request that was committed
//! and provably not answered: the case where a client's retry must land
//! exactly once.

use std::convert::Infallible;

/// The environment variable that arms the hook (tests only).
pub const TEST_HOLD_ENV: &str = "LABBOOK_TEST_HOLD_AFTER_COMMIT";

/// Whether a request carrying metrics `keys` is to be held after its commit.
pub(crate) fn holds<'a>(armed: Option<&str>, mut keys: impl Iterator<Item = &'a str>) -> bool {
    armed.is_some_and(|key| keys.any(|k| k == key))
}

/// Never returns: the request's answer is held until the process dies.
pub(crate) async fn hold(what: &str, run_id: &str) -> Infallible {
    eprintln!("labbook test hook: committed {what} for run {run_id}; its answer is held");
    std::future::pending().await
}
