//! labbook's hyperparameter search, pure: search spaces and W&B sweep files,
//! the samplers (grid, random, TPE) and the pruners (median, ASHA,
//! hyperband). Nothing here touches a file, the clock or the OS, and every
//! random draw comes from a generator seeded by the caller (the study's seed
//! and the trial's number), so a search replays exactly and a crashed worker
//! that samples again gets the same answer. Scheduling lives in the CLI and
//! the state in the store.

pub mod analysis;
pub mod command;
pub mod error;
pub mod grid;
pub mod pruner;
pub mod random;
pub mod space;
pub mod study;
pub mod sweep;
pub mod tpe;
pub mod trial;

pub use error::SearchError;
pub use space::{Domain, ParamSpec, Prior};
pub use trial::{AsObservation, Direction, Observation, TrialState};
