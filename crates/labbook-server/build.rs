//! The dashboard's assets are embedded from `web/dist` (built by `npm run
//! build`, which `make build` runs first). A checkout that has not built them
//! still compiles: the folder is created empty and the server says how to
//! build the dashboard instead of serving it.

fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    println!("cargo:rerun-if-changed=../../web/dist");
}
