//! Which registered job runs a claimed row: by the task name in its
//! envelope, as the Python package's workers do, or, for a raw payload,
//! the queue's raw job.
//!
//! A queue's jobs are served together: a pool claims every row of the
//! queues its jobs use, so a row of a job it does not know goes to
//! `_honker_dead` as `unknown task` (Python's words), never to the wrong
//! handler.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::job::ErasedJob;
use crate::ConfigError;

/// The label metrics use for rows no registered job runs.
pub(crate) const UNROUTED: &str = "_unrouted";

/// The registered jobs of a pool, by name and by queue.
pub(crate) struct Routes {
    by_name: HashMap<&'static str, Arc<dyn ErasedJob>>,
    /// Each queue's jobs, by name (sorted, for messages).
    by_queue: BTreeMap<&'static str, Vec<Arc<dyn ErasedJob>>>,
    /// The job that takes a queue's raw payloads: its only job, or the
    /// one marked raw.
    raw: HashMap<&'static str, Arc<dyn ErasedJob>>,
}

/// Where a claimed row goes.
pub(crate) enum Route {
    /// Run it with this job.
    Run(Arc<dyn ErasedJob>),
    /// No job runs it: dead, with this reason.
    Dead(String),
}

impl Routes {
    /// Check the registered jobs and index them.
    pub(crate) fn new(jobs: Vec<Arc<dyn ErasedJob>>) -> Result<Routes, ConfigError> {
        if jobs.is_empty() {
            return Err(ConfigError::NoJobs);
        }
        let mut by_name: HashMap<&'static str, Arc<dyn ErasedJob>> = HashMap::new();
        let mut by_queue: BTreeMap<&'static str, Vec<Arc<dyn ErasedJob>>> = BTreeMap::new();
        for j in jobs {
            check(j.as_ref())?;
            if let Some(other) = by_name.get(j.name()) {
                if other.job_type() == j.job_type() {
                    return Err(ConfigError::RegisteredTwice { name: j.name() });
                }
                return Err(ConfigError::DuplicateJobName {
                    name: j.name(),
                    first_queue: other.queue(),
                    second_queue: j.queue(),
                });
            }
            by_name.insert(j.name(), j.clone());
            by_queue.entry(j.queue()).or_default().push(j);
        }
        let mut raw = HashMap::new();
        for (queue, jobs) in &mut by_queue {
            jobs.sort_by_key(|j| j.name());
            let marked: Vec<_> = jobs.iter().filter(|j| j.is_raw()).collect();
            if let [first, second, ..] = marked.as_slice() {
                return Err(ConfigError::SeveralRawJobs {
                    queue,
                    first: first.name(),
                    second: second.name(),
                });
            }
            let taker = match (marked.first(), jobs.as_slice()) {
                (Some(j), _) => Some((*j).clone()),
                (None, [only]) => Some(only.clone()),
                _ => None,
            };
            if let Some(j) = taker {
                raw.insert(*queue, j);
            }
        }
        Ok(Routes {
            by_name,
            by_queue,
            raw,
        })
    }

    /// The jobs with a schedule.
    pub(crate) fn scheduled(&self) -> Vec<Arc<dyn ErasedJob>> {
        let mut v: Vec<_> = self
            .by_name
            .values()
            .filter(|j| j.cron().is_some())
            .cloned()
            .collect();
        v.sort_by_key(|j| j.name());
        v
    }

    /// The queues the jobs use, sorted.
    pub(crate) fn queues(&self) -> Vec<&'static str> {
        self.by_queue.keys().copied().collect()
    }

    /// The job registered under `name`.
    pub(crate) fn job(&self, name: &str) -> Option<&Arc<dyn ErasedJob>> {
        self.by_name.get(name)
    }

    /// Where a row of `queue` with `payload` goes.
    pub(crate) fn route(&self, queue: &str, payload: &str) -> Route {
        // The common case reads only the payload's first bytes; the worker
        // reads the whole call (and refuses a malformed one) before it runs.
        let name = match honker_core::leading_task_name(payload) {
            Some(name) => Ok(Some(std::borrow::Cow::Borrowed(name))),
            None => honker_core::task_name(payload),
        };
        match name {
            Ok(Some(name)) => match self.by_name.get(name.as_ref()) {
                Some(j) => Route::Run(j.clone()),
                None => Route::Dead(format!(
                    "unknown task: {}. Registered tasks: [{}]",
                    py_repr(&name),
                    self.names()
                )),
            },
            Ok(None) => match self.raw.get(queue) {
                Some(j) => Route::Run(j.clone()),
                None => Route::Dead(format!(
                    "raw (non-task) payload on queue {queue:?}, whose jobs [{}] all take task \
                     payloads; mark one #[job(raw)] to run raw payloads",
                    self.by_queue
                        .get(queue)
                        .map(|jobs| jobs.iter().map(|j| py_repr(j.name())).collect::<Vec<_>>())
                        .unwrap_or_default()
                        .join(", ")
                )),
            },
            Err(e) => Route::Dead(e.to_string()),
        }
    }

    fn names(&self) -> String {
        let mut names: Vec<_> = self.by_name.keys().map(|n| py_repr(n)).collect();
        names.sort();
        names.join(", ")
    }
}

/// One job's own options, before any routing.
fn check(j: &dyn ErasedJob) -> Result<(), ConfigError> {
    if j.name().is_empty() {
        return Err(ConfigError::EmptyJobName { queue: j.queue() });
    }
    if let Err(honker_core::Error::InvalidQueueName { reason, .. }) =
        honker_core::validate_queue_name(j.queue())
    {
        return Err(ConfigError::InvalidQueueName {
            job: j.name(),
            queue: j.queue(),
            reason,
        });
    }
    let opts = j.options();
    if opts.max_attempts == 0 {
        return Err(ConfigError::ZeroMaxAttempts(j.name()));
    }
    if opts.result_ttl.is_some_and(|t| t.is_zero()) {
        return Err(ConfigError::ZeroResultTtl(j.name()));
    }
    Ok(())
}

/// A name the way Python's `repr` prints a string, as its messages do.
fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Registered;
    use crate::{Job, JobContext, JobError, JobOptions};

    macro_rules! job {
        ($ty:ident, $name:literal, $queue:literal, $raw:literal) => {
            struct $ty;
            impl Job for $ty {
                const NAME: &'static str = $name;
                const QUEUE: &'static str = $queue;
                const RAW: bool = $raw;
                type Args = serde_json::Value;
                type Output = ();
                async fn run(&self, _: JobContext, _: serde_json::Value) -> Result<(), JobError> {
                    Ok(())
                }
            }
        };
    }
    job!(Welcome, "send_welcome", "emails", false);
    job!(Newsletter, "send_newsletter", "emails", false);
    job!(Bounce, "bounce", "emails", true);
    job!(Report, "report", "reports", false);
    job!(Report2, "report", "other", false);
    job!(Bounce2, "bounce2", "emails", true);

    fn routes(jobs: Vec<Arc<dyn ErasedJob>>) -> Routes {
        Routes::new(jobs).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ran(r: Route) -> &'static str {
        match r {
            Route::Run(j) => j.name(),
            Route::Dead(why) => panic!("dead: {why}"),
        }
    }

    fn dead(r: Route) -> String {
        match r {
            Route::Run(j) => panic!("ran {}", j.name()),
            Route::Dead(why) => why,
        }
    }

    fn task(name: &str) -> String {
        honker_core::task_payload(name, &serde_json::json!({})).unwrap()
    }

    #[test]
    fn rows_go_to_the_job_their_task_names_and_unknown_names_to_dead() {
        let r = routes(vec![
            Registered::erased(Welcome),
            Registered::erased(Newsletter),
            Registered::erased(Report),
        ]);
        assert_eq!(r.queues(), vec!["emails", "reports"]);
        assert_eq!(
            ran(r.route("emails", &task("send_welcome"))),
            "send_welcome"
        );
        assert_eq!(
            ran(r.route("emails", &task("send_newsletter"))),
            "send_newsletter"
        );
        // By name, as Python does: a task enqueued on another queue still runs.
        assert_eq!(ran(r.route("emails", &task("report"))), "report");
        let why = dead(r.route("emails", &task("send_invoice")));
        assert_eq!(
            why,
            "unknown task: 'send_invoice'. Registered tasks: ['report', 'send_newsletter', 'send_welcome']"
        );
    }

    #[test]
    fn raw_payloads_go_to_the_only_job_or_the_raw_one_else_to_dead() {
        let r = routes(vec![
            Registered::erased(Welcome),
            Registered::erased(Report),
        ]);
        assert_eq!(ran(r.route("emails", r#"{"to":"a"}"#)), "send_welcome");
        assert_eq!(ran(r.route("reports", "7")), "report");
        let r = routes(vec![
            Registered::erased(Welcome),
            Registered::erased(Newsletter),
        ]);
        let why = dead(r.route("emails", r#"{"to":"a"}"#));
        assert!(
            why.contains("raw") && why.contains("'send_welcome'"),
            "{why}"
        );
        let r = routes(vec![
            Registered::erased(Welcome),
            Registered::erased(Bounce),
            Registered::erased(Newsletter),
        ]);
        assert_eq!(ran(r.route("emails", r#"{"to":"a"}"#)), "bounce");
        // A raw job still runs envelopes naming it.
        assert_eq!(ran(r.route("emails", &task("bounce"))), "bounce");
    }

    #[test]
    fn malformed_envelopes_go_to_dead_naming_the_problem() {
        let r = routes(vec![Registered::erased(Welcome)]);
        let why = dead(r.route("emails", r#"{"__honker_task__": {"args": []}}"#));
        assert!(why.starts_with("malformed task envelope"), "{why}");
        let why = dead(r.route("emails", "{nope"));
        assert!(why.starts_with("payload is not JSON"), "{why}");
    }

    #[test]
    fn registrations_that_cannot_route_are_refused() {
        let e = Routes::new(vec![
            Registered::erased(Report),
            Registered::erased(Report2),
        ])
        .err()
        .unwrap();
        assert!(
            matches!(e, ConfigError::DuplicateJobName { name: "report", .. }),
            "{e}"
        );
        let e = Routes::new(vec![Registered::erased(Report), Registered::erased(Report)])
            .err()
            .unwrap();
        assert_eq!(e, ConfigError::RegisteredTwice { name: "report" });
        assert_eq!(
            e.to_string(),
            r#"job "report" is registered twice; register it once"#
        );
        let e = Routes::new(vec![
            Registered::erased(Bounce),
            Registered::erased(Bounce2),
        ])
        .err()
        .unwrap();
        assert!(
            matches!(
                e,
                ConfigError::SeveralRawJobs {
                    queue: "emails",
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            Routes::new(vec![]).err(),
            Some(ConfigError::NoJobs)
        ));
    }

    #[test]
    fn a_zero_result_ttl_is_refused() {
        struct Keeps;
        impl Job for Keeps {
            const NAME: &'static str = "keeps";
            type Args = ();
            type Output = u32;
            fn options() -> JobOptions {
                JobOptions::default().result_ttl(Some(std::time::Duration::ZERO))
            }
            async fn run(&self, _: JobContext, _: ()) -> Result<u32, JobError> {
                Ok(1)
            }
        }
        let e = Routes::new(vec![Registered::erased(Keeps)]).err().unwrap();
        assert!(matches!(e, ConfigError::ZeroResultTtl("keeps")), "{e}");
    }

    #[test]
    fn names_print_as_python_prints_them() {
        assert_eq!(py_repr("a"), "'a'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\"b"), "'a\\'\"b'");
    }
}
