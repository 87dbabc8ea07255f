//! Interop: Python and Rust run each other's tasks on one SQLite file.
//!
//! A Python producer calls `@q.task` functions (`greet(name="ada")`) and
//! enqueues a raw payload; Rust `#[job]`s with the same task names run
//! them. Then Rust enqueues a task that Python's `run_workers` runs, and
//! Rust reads its result, typed.
//!
//! Needs Python with `pip install honker==0.2.4`: set `HONKER_PYTHON` to
//! that interpreter, or run `.ci/run` once (it makes `target/interop-venv`).
//! Without it, the example says so and exits.
//!
//! Run: `cargo run --example interop`

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Greet {
    name: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Signup {
    email: String,
    plan: String,
}

/// Python's `greet(name="ada")` lands here: its keyword arguments are the
/// fields of `Greet`.
#[job(queue = "tasks", name = "greet")]
async fn greet(ctx: JobContext, g: Greet) -> Result<String, JobError> {
    println!("  rust worker: job {} greets {}", ctx.id(), g.name);
    Ok(format!("hello {}", g.name))
}

/// Python's `shout("hey", 3)`: several positional arguments, a tuple.
#[job(queue = "tasks", name = "shout")]
async fn shout(ctx: JobContext, (word, times): (String, usize)) -> Result<String, JobError> {
    println!("  rust worker: job {} shouts {word} x{times}", ctx.id());
    Ok(word.to_uppercase().repeat(times))
}

/// The only job of queue `signups`: it runs Python's raw `q.enqueue({...})`.
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
import honker, json, sys
db = honker.open(sys.argv[1])
tasks = db.queue("tasks")

@tasks.task(name="greet")
def greet(name): ...

@tasks.task(name="shout")
def shout(word, times): ...

ids = [greet(name="ada").id, shout("hey", 3).id]
signups = db.queue("signups")
for i, plan in enumerate(["free", "pro"]):
    signups.enqueue({"email": f"user{i}@example.com", "plan": plan}, priority=i)
print(json.dumps(ids))
"#;

const CONSUMER: &str = r#"
import asyncio, honker, sys
db = honker.open(sys.argv[1])
q = db.queue("py_tasks")

@q.task(name="wordcount")
def wordcount(text):
    print(f"  python worker: counting words of {text!r}")
    return len(text.split())

async def main():
    stop = asyncio.Event()
    workers = asyncio.create_task(db.run_workers(queue="py_tasks", concurrency=1, stop_event=stop))
    while q.get_result(int(sys.argv[2]))[0] is False:
        await asyncio.sleep(0.02)
    stop.set()
    await workers

asyncio.run(main())
"#;

fn run_python(
    py: &PathBuf,
    script: &str,
    args: &[&str],
) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new(py).arg("-c").arg(script).args(args).output()?;
    if !out.status.success() {
        return Err(format!("python failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

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
    let db = path.to_str().ok_or("the database path is not UTF-8")?;

    // Python calls its tasks; Rust runs them.
    let ids: Vec<i64> = serde_json::from_str(run_python(&py, PRODUCER, &[db])?.trim())?;
    println!("python enqueued greet(name=\"ada\"), shout(\"hey\", 3) and 2 raw signups");
    let pool = WorkerPool::builder(&honker)
        .register(greet)
        .register(shout)
        .register(welcome)
        .concurrency(2)
        .start()
        .await?;
    for id in ids {
        let answer: String = honker.result(id, Duration::from_secs(30)).await?;
        println!("  result of job {id}: {answer:?}");
    }
    honker_examples::wait_until_drained(&honker, "signups").await?;
    pool.shutdown().await?;

    // Rust calls a Python task; Python runs it; Rust reads the typed result.
    let job = honker
        .queue("py_tasks")
        .enqueue_task("wordcount", "the quick brown fox", Default::default())
        .await?;
    print!("{}", run_python(&py, CONSUMER, &[db, &job.to_string()])?);
    let words: usize = honker.result(job, Duration::from_secs(30)).await?;
    println!("rust read the python result of job {job}: {words} words");
    Ok(())
}
