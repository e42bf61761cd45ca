use thiserror::Error;

/// One problem with a search definition or a suggestion, naming the field
/// (`parameters.lr.min`) it is about.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{path}: {message}")]
pub struct SearchError {
    pub path: String,
    pub message: String,
}

impl SearchError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SearchError {
            path: path.into(),
            message: message.into(),
        }
    }
}
