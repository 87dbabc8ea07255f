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

/// Wait until `queue` has nothing waiting or running (polling its counts).
///
/// ```no_run
/// # async fn f(honker: &honker_actors::Honker) -> Result<(), honker_actors::Error> {
/// honker_examples::wait_until_drained(honker, "emails").await?;
/// # Ok(()) }
/// ```
pub async fn wait_until_drained(
    honker: &honker_actors::Honker,
    queue: &str,
) -> Result<(), honker_actors::Error> {
    let q = honker.queue(queue);
    loop {
        let s = q.stats().await?;
        if s.pending_due + s.scheduled + s.processing == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
