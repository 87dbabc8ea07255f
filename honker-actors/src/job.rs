//! Typed jobs: the [`Job`] trait, its options, and [`JobError`].

use std::any::TypeId;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::JobContext;

/// A typed background job: its name, queue, argument type, defaults, and
/// handler. `#[job]` generates an impl from an `async fn`; writing one by
/// hand works the same.
///
/// The payload on disk is the task envelope the `honker` Python package's
/// `@task` writes, `{"__honker_task__": {"task": NAME, "args": [..],
/// "kwargs": {..}}}`, so any number of jobs share a queue and Python and
/// Rust run each other's tasks by name. `Args` that serializes to a JSON
/// object travels as the keyword arguments, anything else as the one
/// positional argument; [`honker_core::TaskCall::decode`] gives the rules
/// for reading a call back. A [`RAW`](Job::RAW) job also runs payloads
/// with no envelope.
///
/// ```
/// use honker_actors::{Job, JobContext, JobError, JobOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Resize { image: String, width: u32 }
///
/// struct ResizeImage;
///
/// impl Job for ResizeImage {
///     const NAME: &'static str = "resize_image";
///     const QUEUE: &'static str = "images";
///     type Args = Resize;
///     type Output = ();
///     fn options() -> JobOptions {
///         JobOptions::default().max_attempts(5)
///     }
///     async fn run(&self, _ctx: JobContext, args: Resize) -> Result<(), JobError> {
///         if args.width == 0 { return Err(JobError::fail("width must be positive")); }
///         Ok(())
///     }
/// }
/// ```
pub trait Job: Send + Sync + 'static {
    /// The job's name: the task name its payloads carry, which a pool
    /// routes by (unique within a pool), and the `job` label of logs and
    /// metrics.
    const NAME: &'static str;
    /// The queue its rows go to (and a pool claims from). Default
    /// `"default"`, as in the Python package.
    const QUEUE: &'static str = "default";
    /// Whether a pool gives this job the raw payloads of its queue (no
    /// envelope, like Python's `q.enqueue({...})`). A queue's only job
    /// takes them without it; with several jobs, at most one is raw. Its
    /// own enqueues still write the envelope naming it.
    const RAW: bool = false;
    /// A schedule expression ([`honker_core::Schedule`]): a pool that
    /// registers this job registers the schedule under the job's name
    /// (its boundaries enqueue a call with no arguments, so `Args` is `()`
    /// or all-default) and fires the file's schedules. `None` by default.
    const CRON: Option<&'static str> = None;
    /// The argument, stored as the JSON payload.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What the handler returns. Anything but `()` is saved to
    /// `_honker_results` under the job id.
    type Output: Serialize + Send + 'static;

    /// Default options: attempts, priority, timeout, backoff, expiry.
    fn options() -> JobOptions {
        JobOptions::default()
    }

    /// Run the job once.
    fn run(
        &self,
        ctx: JobContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, JobError>> + Send;
}

/// How a job is retried and bounded. Every field has a default.
///
/// ```
/// use std::time::Duration;
/// use honker_actors::{Backoff, JobOptions};
/// let o = JobOptions::default()
///     .max_attempts(5)
///     .priority(10)
///     .timeout(Duration::from_secs(30))
///     .backoff(Backoff::fixed(Duration::from_secs(5)))
///     .expires(Duration::from_secs(3600));
/// assert_eq!(o.max_attempts, 5);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct JobOptions {
    /// Claims allowed before the job goes to `_honker_dead`. Default 3.
    pub max_attempts: u32,
    /// Default priority of enqueued jobs (higher first). Default 0.
    pub priority: i64,
    /// Longest a run may take; the handler future is dropped after it and
    /// the run counts as a retryable error. Default: none.
    pub timeout: Option<Duration>,
    /// Delay before each retry. Default: exponential with jitter.
    pub backoff: Backoff,
    /// Enqueued jobs expire (are never run) after this long. Default: never.
    pub expires: Option<Duration>,
    /// How long a saved result is kept. Default: one day.
    pub result_ttl: Option<Duration>,
    /// Enqueues are unique by the job's arguments. Default: not unique.
    pub unique: Option<UniqueArgs>,
}

/// Uniqueness of a job's enqueues by its arguments (see
/// [`EnqueueBuilder::unique`](crate::EnqueueBuilder::unique)).
///
/// ```
/// use std::time::Duration;
/// use honker_actors::{JobOptions, UniqueArgs};
/// let o = JobOptions::default().unique(UniqueArgs::default().period(Duration::from_secs(3600)));
/// assert!(o.unique.is_some());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UniqueArgs {
    /// While a matching job blocks a duplicate (default: pending or running).
    pub while_: honker_core::UniqueWhile,
    /// Also for this long after the first enqueue.
    pub period: Option<Duration>,
}

impl UniqueArgs {
    /// Only while the matching job is pending.
    pub fn while_pending(mut self) -> Self {
        self.while_ = honker_core::UniqueWhile::Pending;
        self
    }
    /// Also for `d` after the first enqueue.
    pub fn period(mut self, d: Duration) -> Self {
        self.period = Some(d);
        self
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            max_attempts: honker_core::DEFAULT_MAX_ATTEMPTS,
            priority: 0,
            timeout: None,
            backoff: Backoff::default(),
            expires: None,
            result_ttl: Some(Duration::from_secs(24 * 3600)),
            unique: None,
        }
    }
}

impl JobOptions {
    /// Claims allowed (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// Default priority.
    pub fn priority(mut self, p: i64) -> Self {
        self.priority = p;
        self
    }
    /// Longest a run may take.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// Retry delays. Due times are whole seconds in the format: a retry
    /// is due at the first whole second at or after now + the delay, so
    /// sub-second delays round up (`#[job]` refuses them).
    pub fn backoff(mut self, b: Backoff) -> Self {
        self.backoff = b;
        self
    }
    /// Expiry of enqueued jobs.
    pub fn expires(mut self, d: Duration) -> Self {
        self.expires = Some(d);
        self
    }
    /// The options an enqueue of this job starts from: its priority,
    /// expiry and attempts.
    ///
    /// ```
    /// let o = honker_actors::JobOptions::default().priority(3).enqueue_options();
    /// assert_eq!((o.priority, o.max_attempts), (3, Some(3)));
    /// ```
    pub fn enqueue_options(&self) -> honker_core::EnqueueOptions {
        honker_core::EnqueueOptions {
            priority: self.priority,
            expires: self.expires,
            max_attempts: Some(self.max_attempts),
            ..honker_core::EnqueueOptions::default()
        }
    }
    /// Make enqueues unique by the job's arguments.
    pub fn unique(mut self, u: UniqueArgs) -> Self {
        self.unique = Some(u);
        self
    }
    /// How long saved results are kept (`None`: until swept by hand).
    pub fn result_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.result_ttl = ttl;
        self
    }
}

/// Delay before a retry, by attempt number. The format stores due times
/// in whole seconds: a retry is due at the first whole second at or after
/// now + the delay.
///
/// ```
/// use std::time::Duration;
/// use honker_actors::Backoff;
/// let b = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(60)).without_jitter();
/// assert_eq!(b.delay(1), Duration::from_secs(2));
/// assert_eq!(b.delay(3), Duration::from_secs(8));
/// assert_eq!(b.delay(30), Duration::from_secs(60));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    exponential: bool,
    jitter: bool,
}

impl Default for Backoff {
    /// Exponential from 2 s, capped at 1 h, with ±25 % jitter.
    fn default() -> Self {
        Backoff::exponential(Duration::from_secs(2), Duration::from_secs(3600))
    }
}

impl Backoff {
    /// `base * 2^(attempt-1)`, capped at `max`, with ±25 % jitter.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            exponential: true,
            jitter: true,
        }
    }
    /// Always `d`.
    pub fn fixed(d: Duration) -> Self {
        Backoff {
            base: d,
            max: d,
            exponential: false,
            jitter: false,
        }
    }
    /// No random spread (the default spreads retries of many jobs apart).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }
    /// The delay before the retry that follows run number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = if self.exponential {
            let shift = attempt.saturating_sub(1).min(30);
            self.base.saturating_mul(1u32 << shift).min(self.max)
        } else {
            self.base
        };
        if self.jitter && !d.is_zero() {
            // Checked: `mul_f64` panics when the product overflows.
            Duration::try_from_secs_f64(d.as_secs_f64() * rand::random_range(0.75..1.25))
                .unwrap_or(self.max)
                .min(self.max)
        } else {
            d
        }
    }
}

/// Why a run did not succeed, and what to do about it.
///
/// Any `std::error::Error` converts into a retryable `JobError` (so `?`
/// works in handlers); [`JobError::fail`] sends the job to `_honker_dead`
/// at once; [`JobError::retry_after`] picks the delay.
///
/// ```
/// use std::time::Duration;
/// use honker_actors::JobError;
/// fn parse(s: &str) -> Result<u32, JobError> {
///     let n: u32 = s.parse()?;                  // retryable, with the parse error's message
///     if n == 0 { return Err(JobError::fail("zero is never valid")); }
///     Ok(n)
/// }
/// assert!(parse("x").unwrap_err().is_retryable());
/// assert!(!parse("0").unwrap_err().is_retryable());
/// let later = JobError::retry_after(Duration::from_secs(30)).with_message("rate limited");
/// assert_eq!(later.message(), "rate limited");
/// ```
#[derive(Debug)]
pub struct JobError {
    kind: ErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ErrorKind {
    Retry(Option<Duration>),
    Fail,
}

impl JobError {
    /// A retryable error: retried after the job's backoff.
    pub fn retry(message: impl std::fmt::Display) -> Self {
        JobError {
            kind: ErrorKind::Retry(None),
            message: message.to_string(),
        }
    }
    /// A retryable error, retried after `delay` instead of the backoff.
    pub fn retry_after(delay: Duration) -> Self {
        JobError {
            kind: ErrorKind::Retry(Some(delay)),
            message: format!("retry requested after {delay:?}"),
        }
    }
    /// A permanent error: the job goes to `_honker_dead` at once.
    pub fn fail(message: impl std::fmt::Display) -> Self {
        JobError {
            kind: ErrorKind::Fail,
            message: message.to_string(),
        }
    }
    /// Replace the message.
    pub fn with_message(mut self, message: impl std::fmt::Display) -> Self {
        self.message = message.to_string();
        self
    }
    /// The message recorded as the job's `last_error`.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether the job will be retried (attempts permitting).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Retry(_))
    }
    /// The explicit retry delay, if one was asked for.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::Retry(d) => d,
            ErrorKind::Fail => None,
        }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        JobError::retry(message)
    }
}

/// What one run of a handler came to, before it is written down.
#[derive(Debug)]
pub(crate) enum RunResult {
    /// Success; the JSON result to save, if the job has one.
    Done(Option<String>),
    /// A retryable error.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// A permanent error (including a payload that does not decode).
    Fail(String),
    /// The handler overran its timeout and was dropped.
    TimedOut(Duration),
    /// The pool stopped the run (shutdown past its grace period).
    Aborted,
}

/// A registered job with its types erased, as the pool holds it.
pub(crate) trait ErasedJob: Send + Sync {
    /// The job's Rust type, to tell one job registered twice from two
    /// jobs sharing a name.
    fn job_type(&self) -> std::any::TypeId;
    fn name(&self) -> &'static str;
    fn queue(&self) -> &'static str;
    fn is_raw(&self) -> bool;
    fn cron(&self) -> Option<&'static str>;
    fn options(&self) -> &JobOptions;
    /// Decode `payload` and run; `Err` carries a decode error.
    fn run(self: Arc<Self>, ctx: JobContext, payload: String) -> BoxFuture<'static, RunResult>;
}

pub(crate) struct Registered<J: Job> {
    job: J,
    options: JobOptions,
}

impl<J: Job> Registered<J> {
    pub(crate) fn erased(job: J) -> Arc<dyn ErasedJob> {
        Arc::new(Registered {
            job,
            options: J::options(),
        })
    }
}

impl<J: Job> ErasedJob for Registered<J> {
    fn job_type(&self) -> std::any::TypeId {
        std::any::TypeId::of::<J>()
    }
    fn name(&self) -> &'static str {
        J::NAME
    }
    fn queue(&self) -> &'static str {
        J::QUEUE
    }
    fn is_raw(&self) -> bool {
        J::RAW
    }
    fn cron(&self) -> Option<&'static str> {
        J::CRON
    }
    fn options(&self) -> &JobOptions {
        &self.options
    }
    fn run(self: Arc<Self>, ctx: JobContext, payload: String) -> BoxFuture<'static, RunResult> {
        Box::pin(async move {
            let args = match decode_call::<J>(&payload) {
                Ok(a) => a,
                Err(why) => return RunResult::Fail(why),
            };
            match self.job.run(ctx, args).await {
                Ok(out) => match encode_output::<J::Output>(&out) {
                    Ok(result) => RunResult::Done(result),
                    // The run's one product cannot be kept: not a success.
                    Err(why) => RunResult::Fail(why),
                },
                Err(e) => match e.kind {
                    ErrorKind::Retry(after) => RunResult::Retry {
                        after,
                        error: e.message,
                    },
                    ErrorKind::Fail => RunResult::Fail(e.message),
                },
            }
        })
    }
}

/// The argument of a stored payload: a task call's arguments, or a raw
/// payload as it is; why not, for the dead row's `last_error`.
pub(crate) fn decode_args<A: DeserializeOwned>(payload: &str) -> Result<A, String> {
    args_of(honker_core::read_payload(payload))
}

fn args_of<A: DeserializeOwned>(
    read: Result<honker_core::Payload<'_>, honker_core::TaskError>,
) -> Result<A, String> {
    match read {
        Ok(honker_core::Payload::Task(call)) => call.decode().map_err(|e| e.to_string()),
        Ok(honker_core::Payload::Raw(raw)) => serde_json::from_str(raw).map_err(|e| {
            format!(
                "payload does not decode into {}: {e}",
                std::any::type_name::<A>()
            )
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// The argument of `J` in a payload routed to it; a call naming another
/// task is refused (routing reads only the name's first bytes).
fn decode_call<J: Job>(payload: &str) -> Result<J::Args, String> {
    match honker_core::read_payload(payload) {
        Ok(honker_core::Payload::Task(call)) if call.name != J::NAME => {
            Err(format!("routed to {} but calls {:?}", J::NAME, call.name))
        }
        read => args_of(read),
    }
}

/// The payload a typed enqueue of `J` writes: always the envelope naming
/// `J`, raw jobs included, so a row is only ever run by the job it was
/// written for, and an argument that itself holds the envelope key is
/// carried inside it, never read as a call.
pub(crate) fn encode_args<J: Job>(args: &J::Args) -> Result<String, crate::Error> {
    honker_core::task_payload(J::NAME, args).map_err(crate::Error::Serialize)
}

/// The JSON to save for a job's output; `None` for `()`; why not when the
/// output does not serialize.
fn encode_output<O: Serialize + 'static>(out: &O) -> Result<Option<String>, String> {
    if TypeId::of::<O>() == TypeId::of::<()>() {
        return Ok(None);
    }
    serde_json::to_string(out)
        .map(Some)
        .map_err(|e| format!("the job's output does not serialize to JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_retries_within_a_quarter_of_the_delay() {
        let b = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(3600));
        let delays: Vec<f64> = (0..2000).map(|_| b.delay(1).as_secs_f64()).collect();
        assert!(
            delays.iter().all(|d| (1.5..2.5).contains(d)),
            "within ±25 %"
        );
        let below = delays.iter().filter(|d| **d < 2.0).count();
        // Both halves are used, roughly evenly: a spread, not a constant.
        assert!(
            (700..1300).contains(&below),
            "{below} of 2000 below the base"
        );
        let b = b.without_jitter();
        assert_eq!(b.delay(1), Duration::from_secs(2));
        assert_eq!(b.delay(2), Duration::from_secs(4));
    }

    #[test]
    fn jitter_never_exceeds_the_cap_and_extreme_inputs_never_panic() {
        let b = Backoff::exponential(Duration::from_secs(60), Duration::from_secs(100));
        assert!((0..500).all(|_| b.delay(10) <= Duration::from_secs(100)));
        let huge = Backoff::exponential(Duration::MAX, Duration::MAX);
        assert!(huge.delay(u32::MAX) >= Duration::from_secs(u64::MAX / 2));
        assert_eq!(Backoff::fixed(Duration::MAX).delay(0), Duration::MAX);
    }
}
