//! labbook's HTTP side. Only this crate knows HTTP and wire formats: with
//! the `serve` feature (the default) it is the server, turning the store's
//! Rust types into the JSON of docs/API.md and serving the dashboard's
//! embedded assets; with `client` it is the SDK's way to log into a server
//! ([`client`]). [`wire`] holds the write API's bodies both sides share.

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod sync;
pub mod wire;

#[cfg(feature = "serve")]
mod server;
#[cfg(feature = "serve")]
pub use server::*;

#[cfg(feature = "serve")]
mod access;
#[cfg(feature = "serve")]
pub use access::Viewer;
#[cfg(feature = "serve")]
mod api;
#[cfg(feature = "serve")]
mod assets;
#[cfg(feature = "serve")]
pub mod auth;
#[cfg(feature = "serve")]
mod error;
#[cfg(feature = "serve")]
mod events;
#[cfg(feature = "serve")]
mod guard;
#[cfg(feature = "serve")]
mod json;
#[cfg(feature = "serve")]
mod listen;
#[cfg(feature = "serve")]
mod mlflow;
#[cfg(feature = "serve")]
pub use mlflow::logged_model_by_id;

pub mod layout;
pub use layout::run_artifact_dir;
#[cfg(feature = "serve")]
mod preview;
#[cfg(feature = "serve")]
mod session;
#[cfg(feature = "serve")]
mod studies;
#[cfg(feature = "serve")]
mod test_hook;
#[cfg(feature = "serve")]
mod versions;
#[cfg(feature = "serve")]
pub use test_hook::TEST_HOLD_ENV;
