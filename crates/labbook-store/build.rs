//! Builds the empty store a new `.labbook` starts from: the migrations run
//! once here, at build time, so that creating a store is writing a file,
//! not running the whole schema's SQL (see `src/sqlite/template.rs`).
//!
//! The file is kept as its non-zero extents: an empty store is mostly the
//! zeros of empty 32 KiB pages.

use std::io::Write as _;
use std::path::PathBuf;

#[path = "src/sqlite/schema.rs"]
mod schema;

/// Bytes of zeros that end an extent; shorter runs stay inside one.
const GAP: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=src/sqlite/schema.rs");
    println!("cargo::rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let db = out_dir.join("empty_store.db");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    {
        let mut conn = rusqlite::Connection::open(&db)?;
        conn.execute_batch("PRAGMA page_size=32768; PRAGMA journal_mode=DELETE;")?;
        let tx = conn.transaction()?;
        for migration in schema::MIGRATIONS {
            tx.execute_batch(migration)?;
        }
        tx.execute_batch(&format!(
            "PRAGMA user_version = {}",
            schema::MIGRATIONS.len()
        ))?;
        tx.commit()?;
        // Written into the header: every connection opens it in WAL mode.
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    }
    let bytes = std::fs::read(&db)?;
    let mut out = Vec::new();
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        while i < bytes.len() && i - end <= GAP {
            if bytes[i] != 0 {
                end = i + 1;
            }
            i += 1;
        }
        out.extend_from_slice(&(start as u64).to_le_bytes());
        out.extend_from_slice(&((end - start) as u64).to_le_bytes());
        out.extend_from_slice(&bytes[start..end]);
        i = end;
    }
    std::fs::File::create(out_dir.join("empty_store.extents"))?.write_all(&out)?;
    Ok(())
}
