//! labbook's domain: runs, configs, metric points, the query language and
//! their validation. Pure data and logic; this crate never touches the
//! file system, the network, the clock or the OS, so every other crate can
//! trust it and test it without setup.

pub mod account;
pub mod artifact;
pub mod artifact_version;
pub mod config;
pub mod error;
pub mod ids;
pub mod lineage;
pub mod metric;
pub mod model;
pub mod query;
pub mod redact;
pub mod replay;
pub mod run;

pub use config::{Config, ConfigValue};
pub use error::ValidationError;
pub use lineage::{DatasetInput, ModelOutput};
pub use metric::{MetricKey, Point, SeriesColumns, SeriesSummary};
pub use run::{RunRecord, RunStatus};
