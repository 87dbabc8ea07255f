//! Interop: a Python producer using the `honker` package enqueues jobs; our
//! typed pool runs them. The payload is plain JSON on both sides.
//!
//! Needs Python with `pip install honker==0.2.4`: set `HONKER_PYTHON` to
//! that interpreter, or run `.ci/run` once (it makes `target/interop-venv`).
//! Without it, the example says so and exits.
//!
//! Run: `cargo run --example interop`

use std::path::PathBuf;
use std::process::Command;

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Signup {
    email: String,
    plan: String,
}

#[job(queue = "signups")]
async fn welcome(ctx: JobContext, s: Signup) -> Result<(), JobError> {
    println!(
        "  rust worker: job {} welcomes {} ({} plan)",
        ctx.id(),
        s.email,
        s.plan
    );
    Ok(())
}

const PRODUCER: &str = r#"
import honker, sys
q = honker.open(sys.argv[1]).queue("signups")
for i, plan in enumerate(["free", "pro", "team"]):
    q.enqueue({"email": f"user{i}@example.com", "plan": plan}, priority=i)
print("python producer enqueued 3 signups")
"#;

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("HONKER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv/bin/python")
        });
    let ok = Command::new(&candidate)
        .args(["-c", "import honker"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(candidate)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(py) = python() else {
        println!(
            "skipped: no Python with the `honker` package (set HONKER_PYTHON, or run .ci/run once)"
        );
        return Ok(());
    };
    let path = honker_examples::fresh_db_path("honker-interop");
    let honker = Honker::open(&path)?;
    let out = Command::new(&py)
        .arg("-c")
        .arg(PRODUCER)
        .arg(&path)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "python producer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let pool = WorkerPool::builder(&honker)
        .register(welcome)
        .concurrency(1)
        .start()
        .await?;
    honker_examples::wait_until_drained(&honker, "signups").await?;
    pool.shutdown().await?;
    println!("all Python-enqueued jobs done, highest priority first");
    Ok(())
}
