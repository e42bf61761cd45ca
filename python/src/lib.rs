//! `labbook._native`: the Rust core behind the `labbook` Python package.
//! The package's Python files only re-export these classes and hook into
//! the interpreter (atexit, signals, excepthook).

use pyo3::create_exception;
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use labbook_store::StoreError;

mod api;
mod artifact;
mod column;
mod convert;
mod run;
mod search_store;
mod study;

create_exception!(
    _native,
    LabbookError,
    PyRuntimeError,
    "A labbook store operation failed (the message says what and why)."
);

/// Maps store errors to the Python exceptions users expect: bad input is a
/// ValueError, a missing run a KeyError, anything else a LabbookError.
pub(crate) fn to_py_err(e: StoreError) -> PyErr {
    match e {
        StoreError::Invalid(v) => PyValueError::new_err(v.to_string()),
        StoreError::Query(q) => PyValueError::new_err(q.to_string()),
        StoreError::NotFound { .. } => PyKeyError::new_err(e.to_string()),
        other => LabbookError::new_err(other.to_string()),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LabbookError", m.py().get_type::<LabbookError>())?;
    m.add_class::<run::RunCore>()?;
    m.add_class::<run::ConfigView>()?;
    // A view is read like a dict (`isinstance(run.config.model, Mapping)`).
    m.py()
        .import("collections.abc")?
        .getattr("Mapping")?
        .call_method1("register", (m.py().get_type::<run::ConfigView>(),))?;
    m.add_class::<run::SummaryView>()?;
    m.add_class::<api::Api>()?;
    m.add_class::<column::Column>()?;
    m.add_class::<artifact::Artifact>()?;
    m.add_class::<artifact::ArtifactVersionView>()?;
    m.add_class::<study::StudyCore>()?;
    m.add_class::<search_store::SearchStore>()?;
    m.add(
        "DuplicateStudyError",
        m.py().get_type::<search_store::DuplicateStudyError>(),
    )?;
    m.add(
        "TrialFinishedError",
        m.py().get_type::<search_store::TrialFinishedError>(),
    )?;
    m.add_class::<study::TrialCore>()?;
    Ok(())
}
