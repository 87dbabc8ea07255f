//! `#[job]`: turns an `async fn` into a typed honker job.
//!
//! Built like `sqlx-macros`: `parse` reads and checks the attribute and
//! the function once, into a `JobDef` of plain values, and reports every
//! mistake at its span; `expand` writes the code from a `JobDef` and
//! checks nothing. The expansion is thin: a unit struct named after the
//! function that implements `honker_actors::Job`, whose `run` calls the
//! function's body, and three associated functions (`enqueue`, `builder`,
//! `enqueue_tx`) that call `honker_actors::EnqueueBuilder`. All logic lives
//! in `honker-actors`.

use proc_macro::TokenStream;

mod expand;
mod options;
mod parse;
#[cfg(test)]
mod tests;
mod types;

/// Turn an `async fn` into a typed job.
///
/// ```ignore
/// use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Email { to: String }
///
/// /// Sends one email.
/// #[job(queue = "emails", max_attempts = 5, timeout = "30s",
///       backoff = "exponential(2s, 1h)", expires = "1d")]
/// async fn send_email(ctx: JobContext, email: Email) -> Result<(), JobError> {
///     println!("attempt {}: mailing {}", ctx.attempt(), email.to);
///     Ok(())
/// }
///
/// # async fn demo(honker: &Honker) -> honker_actors::Result<()> {
/// send_email::enqueue(honker, Email { to: "a@b.c".into() }).await?;
/// let pool = WorkerPool::builder(honker).register(send_email).start().await?;
/// # Ok(()) }
/// ```
///
/// # What it generates
///
/// A unit struct `name` (documented by the function's `///` comments) that
/// implements `honker_actors::Job`: register it with
/// `WorkerPool::builder(&h).register(name)`. And three ways to enqueue:
/// `name::enqueue(&h, args).await`, `name::builder(args)` (per-job delay,
/// priority, expiry, attempts) `.enqueue(&h).await`, and
/// `name::enqueue_tx(&conn, args)` inside the application's own
/// transaction. Each returns a `JobHandle<name>`: the job id, and
/// `.result(&h, timeout)` typed by the function's output.
///
/// The job's name (the function's name, or `name = "..."`) is the task
/// name its payloads carry, in the envelope the Python package's `@task`
/// writes: many jobs share a queue, a pool routes each row to the job it
/// names, and a Python `@q.task(name = "...")` of the same name runs it (or
/// is run by it).
///
/// # The function
///
/// - `async fn name(args: T)` or `async fn name(ctx: JobContext, args: T)`;
///   not generic, no `self`.
/// - The argument is the job's payload: `T` is serialized to JSON on
///   enqueue and deserialized from the stored payload for each run, so it
///   must be an **owned** type (`Serialize + DeserializeOwned`). A
///   reference or a lifetime is a compile error: take `String` instead of
///   `&str`, `Vec<T>` instead of `&[T]`, `T` instead of `&T`. The context
///   is taken by value too (`JobContext`, not `&JobContext`).
/// - It returns `Result<O, E>`, or an alias of it (`anyhow::Result<O>`). An
///   `O` other than `()` is saved as the job's result. An `E` that is a
///   `JobError` says retry or fail; any other error (a `std::error::Error`,
///   or anything that displays, like `anyhow::Error`) is retryable, with
///   its message.
///
/// # Options
///
/// All optional; each one's default is that of `JobOptions`.
///
/// | option | value | meaning |
/// |---|---|---|
/// | `queue` | `"emails"` | the queue (default: `default`, as in the Python package); 1 to 128 bytes of ASCII letters, digits and `_ - . : /`, checked here as at run time |
/// | `name` | `"myapp.send_email"` | the task name (default: the function's name); unique within a pool |
/// | `raw` | (no value) | a pool gives this job its queue's payloads without an envelope (Python's `q.enqueue({...})`); a queue's only job takes them anyway; its own enqueues still write the envelope |
/// | `max_attempts` | `5` | claims before the job goes to `_honker_dead` (at least 1) |
/// | `priority` | `10`, `-1` | default priority, higher first (an integer literal) |
/// | `timeout` | `"30s"`, `"1500ms"` | longest a run may take, then it counts as a retryable error |
/// | `backoff` | `"5s"` or `"exponential(2s, 1h)"` | delay before a retry: fixed (`"0s"` retries at once), or doubling from the base up to the cap, with jitter |
/// | `expires` | `"1d"` | a job not started this long after it is enqueued is never run |
/// | `unique` | (no value), `"active"`, `"pending"` | enqueues are unique by the job's arguments: while an equal job is pending or running (or only pending), an enqueue inserts nothing and returns that job's handle (`is_duplicate()`) |
/// | `unique_period` | `"1h"` | also refuse an equal job for this long after the first enqueue, whatever became of it (implies `unique`) |
/// | `cron` | `"0 3 * * *"`, `"*/10 * * * * *"`, `"@every 5m"` | a schedule: a pool that registers the job registers it and fires the file's schedules (each boundary enqueues a call with no arguments: take `()`); `ctx.scheduled_at()` gives the boundary |
/// | `result_ttl` | `"1h"` | how long a saved result is kept (default one day; Python's `@task` keeps an hour) |
///
/// Durations are a whole number and a unit: `ms`, `s`, `m`, `h`, `d`.
/// `backoff`, `expires`, `result_ttl` and `unique_period` set due times stored on disk, and the honker
/// format stores those in whole seconds (peers compare them with SQLite's
/// `unixepoch()`): they must be whole seconds, so `"250ms"` or `"1500ms"`
/// is a compile error that names the rounded-up value to use (`"1s"`,
/// `"2s"`). `timeout` is an in-process timer and keeps millisecond
/// precision.
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    match parse::JobDef::parse(attr.into(), item.into()) {
        Ok(def) => expand::expand(&def).into(),
        // Keep the function as written, so the errors are all the user sees.
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(original);
            out.into()
        }
    }
}
