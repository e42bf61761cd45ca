//! MLflow's REST API and labbook's own API: whatever a client sends, the
//! answer is never a 5xx (the check is in ../checks, shared with the stable
//! tests of `make test`).
#![no_main]

use std::sync::OnceLock;

include!("../checks/mlflow_request.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static SERVER: OnceLock<Server> = OnceLock::new();
    check(SERVER.get_or_init(Server::open), data);
});
