//! Helpers shared by the examples.

use std::path::PathBuf;

/// Where an example keeps its database: `$HONKER_EXAMPLE_DIR` if set, else
/// the system temp directory. Any earlier copy of the file is removed, so
/// each run starts from an empty queue.
///
/// ```
/// let p = honker_examples::fresh_db_path("doc-example");
/// assert!(p.ends_with("doc-example.db"));
/// ```
pub fn fresh_db_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("HONKER_EXAMPLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        // Absent is fine: we only want a clean slate.
        let _absent_ok = std::fs::remove_file(PathBuf::from(p));
    }
    path
}
