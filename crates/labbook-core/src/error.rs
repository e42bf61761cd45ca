use thiserror::Error;

/// Input that labbook refuses, always naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
}

impl ValidationError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ValidationError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub fn field(&self) -> &str {
        match self {
            ValidationError::Invalid { field, .. } => field,
        }
    }
}
