//! Prints what labbook would record for a run started here, as JSON, and how
//! long the capture took (on stderr).
//!
//! `cargo run -p labbook-capture --example capture [DIR]`

use labbook_capture::{CaptureOptions, capture};

fn main() {
    let cwd = std::env::args_os()
        .nth(1)
        .map(Into::into)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let env = capture(&CaptureOptions {
        cwd,
        ..CaptureOptions::default()
    });
    match serde_json::to_string_pretty(&env) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("cannot serialize: {e}"),
    }
    eprintln!("capture took {} us", env.capture_micros);
}
