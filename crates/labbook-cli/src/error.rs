//! How failures reach the user: one `error:` line, at most one `hint:` line,
//! exit status 1. Nothing the user typed should ever end in a panic.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use labbook_store::StoreError;

use crate::style::Painter;

/// An error that knows what the user can do about it.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// An error with a hint line.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

fn hint_for(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            return Some(h.hint.clone());
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            return match store {
                StoreError::NotFound { what: "run", id }
                    if id.len() < labbook_store::MIN_ID_PREFIX
                        && id.chars().all(|c| c.is_ascii_alphanumeric()) =>
                {
                    Some(format!(
                        "an id prefix needs at least {} characters; `labbook ls --all-projects` lists runs",
                        labbook_store::MIN_ID_PREFIX
                    ))
                }
                StoreError::NotFound { what: "run", .. } => Some(
                    "`labbook ls --all-projects` lists runs; `labbook ls --deleted` lists deleted ones"
                        .into(),
                ),
                StoreError::Busy(_) => {
                    Some("another labbook process is writing; retry in a moment".into())
                }
                _ => None,
            };
        }
    }
    None
}

/// Prints `e` as one line (its causes joined with `: `) plus a hint, and
/// returns exit status 1. A closed stdout (`labbook ls | head`) is not an
/// error worth a message.
pub fn report(e: &anyhow::Error, color: bool) -> ExitCode {
    let broken_pipe = e.chain().any(|c| {
        let kind = c
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    let paint = Painter::new(color);
    // One line even when a message (a query's input, an OS error) spans several.
    // A cause that its error already quotes (an OS error inside a store's
    // I/O error) is said once.
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    let message = message.replace(['\r', '\n'], " ");
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}: {message}", paint.error("error"));
    if let Some(hint) = hint_for(e) {
        let _ = writeln!(err, "{}: {hint}", paint.hint("hint"));
    }
    ExitCode::FAILURE
}
