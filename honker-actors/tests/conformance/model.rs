//! The model test at the store boundary: random sequences of the store's
//! own operations, applied through the store traits to a fresh store and
//! to a small reference model, compared after every step through the
//! store's own reads (`list_jobs`, `dead_in`, `job`, `dead_job`,
//! `queue_stats`).
//!
//! The operations: enqueue (priority, due now or later, attempts, unique
//! keys active or pending-only), claims by two workers on two queues,
//! ack, retry (now or later), fail and heartbeat by valid and stale
//! leases, cancel, requeue and purge of dead jobs one by one or by queue,
//! pause, resume, running limits and a named lock.
//!
//! Time never moves for the model, so every store passes it without a
//! clock of its own to move: a job is due now or in a day, a claim lasts
//! an hour. The format's rules in time (lapsed claims, expiry, misfires)
//! are `honker-core/tests/model.rs`'s, which moves SQLite's clock.
//!
//! Runs 24 cases by default; `HONKER_MODEL_CASES=n` runs `n`.

use std::collections::BTreeMap;
use std::time::Duration;

use honker_actors::core::{
    DeadFilter, EnqueueOptions, JobState, Lease, LiveState, RetryOutcome, Unique, CANCELLED,
};
use honker_actors::store::{BatchJob, Store};
use honker_actors::Error;
use proptest::prelude::*;

const QUEUES: [&str; 2] = ["a", "b"];
const WORKERS: [&str; 2] = ["w1", "w2"];
const LATER: Duration = Duration::from_secs(86_400);
const VISIBILITY: Duration = Duration::from_secs(3_600);

#[derive(Clone, Debug)]
enum Done {
    Ack,
    Retry { later: bool },
    Fail,
    Heartbeat,
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        queue: usize,
        later: bool,
        priority: i64,
        max_attempts: u32,
        /// A key (of 3) and whether it holds only while pending.
        unique: Option<(u8, bool)>,
    },
    /// Jobs enqueued in one batch (queue, priority, unique key); with
    /// `bad`, a last one whose options are refused, and so the whole
    /// batch is.
    Batch {
        jobs: Vec<(usize, i64, Option<u8>)>,
        bad: bool,
    },
    Claim {
        worker: usize,
        queue: usize,
        n: usize,
    },
    /// A worker reports on a lease it holds, or (stale) on any it held.
    Report {
        worker: usize,
        pick: usize,
        stale: bool,
        done: Done,
    },
    Cancel {
        pick: usize,
    },
    Requeue {
        pick: usize,
    },
    RequeueAll {
        queue: usize,
    },
    Purge {
        pick: usize,
    },
    PurgeAll {
        queue: usize,
    },
    Pause {
        queue: usize,
        paused: bool,
    },
    MaxRunning {
        queue: usize,
        n: Option<u32>,
    },
    Lock {
        owner: usize,
        take: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let done = prop_oneof![
        3 => Just(Done::Ack),
        2 => any::<bool>().prop_map(|later| Done::Retry { later }),
        1 => Just(Done::Fail),
        1 => Just(Done::Heartbeat),
    ];
    prop_oneof![
        5 => (
            0..2usize,
            prop::bool::weighted(0.2),
            -1..=2i64,
            1..=3u32,
            prop::option::weighted(0.3, (0..3u8, any::<bool>())),
        )
            .prop_map(|(queue, later, priority, max_attempts, unique)| Op::Enqueue {
                queue,
                later,
                priority,
                max_attempts,
                unique,
            }),
        1 => (
            prop::collection::vec((0..2usize, -1..=2i64, prop::option::weighted(0.4, 0..3u8)), 1..4),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(jobs, bad)| Op::Batch { jobs, bad }),
        4 => (0..2usize, 0..2usize, 1..=3usize)
            .prop_map(|(worker, queue, n)| Op::Claim { worker, queue, n }),
        5 => (0..2usize, any::<usize>(), prop::bool::weighted(0.25), done)
            .prop_map(|(worker, pick, stale, done)| Op::Report { worker, pick, stale, done }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Requeue { pick }),
        1 => (0..2usize).prop_map(|queue| Op::RequeueAll { queue }),
        1 => any::<usize>().prop_map(|pick| Op::Purge { pick }),
        1 => (0..2usize).prop_map(|queue| Op::PurgeAll { queue }),
        1 => (0..2usize, any::<bool>()).prop_map(|(queue, paused)| Op::Pause { queue, paused }),
        1 => (0..2usize, prop::option::of(1..=2u32))
            .prop_map(|(queue, n)| Op::MaxRunning { queue, n }),
        1 => (0..2usize, any::<bool>()).prop_map(|(owner, take)| Op::Lock { owner, take }),
    ]
}

/// A live job as the model knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Live {
    queue: usize,
    priority: i64,
    /// As the store wrote it (read back after each write that sets it).
    run_at: i64,
    /// The worker holding it, when claimed.
    worker: Option<usize>,
    attempts: i64,
    max_attempts: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Dead {
    queue: usize,
    attempts: i64,
    last_error: String,
}

#[derive(Default)]
struct Model {
    live: BTreeMap<i64, Live>,
    dead: BTreeMap<i64, Dead>,
    /// Every job ever enqueued, to pick from, and its queue.
    ids: Vec<i64>,
    queue_of: BTreeMap<i64, usize>,
    /// Per worker: leases held now, and every lease ever handed out.
    held: [Vec<(usize, Lease)>; 2],
    history: [Vec<(usize, Lease)>; 2],
    /// job -> (queue, key, pending only), for unique jobs.
    unique: BTreeMap<i64, (usize, u8, bool)>,
    paused: [bool; 2],
    max_running: [Option<u32>; 2],
    lock: Option<usize>,
}

impl Model {
    /// The newest live job other than `except` holding `key` on `queue`.
    fn blocking(&self, queue: usize, key: u8, except: Option<i64>) -> Option<i64> {
        self.unique
            .iter()
            .filter(|&(&id, &(q, k, _))| q == queue && k == key && Some(id) != except)
            .filter(|&(id, &(_, _, pending_only))| {
                self.live
                    .get(id)
                    .is_some_and(|r| r.worker.is_none() || !pending_only)
            })
            .map(|(&id, _)| id)
            .max()
    }

    fn holds(&self, worker: usize, lease: Lease) -> bool {
        self.live
            .get(&lease.id)
            .is_some_and(|r| r.worker == Some(worker) && r.attempts == lease.attempts)
    }

    fn bury(&mut self, id: i64, attempts: i64, why: &str) {
        let r = self.live.remove(&id).expect("a live job");
        let dead = Dead {
            queue: r.queue,
            attempts,
            last_error: why.to_string(),
        };
        self.dead.insert(id, dead);
    }

    /// Claim order: priority first, then due time, then id.
    fn candidates(&self, queue: usize, now: i64) -> Vec<i64> {
        let mut c: Vec<(&i64, &Live)> = self
            .live
            .iter()
            .filter(|(_, r)| r.queue == queue && r.worker.is_none() && r.run_at <= now)
            .collect();
        c.sort_by_key(|(id, r)| (-r.priority, r.run_at, **id));
        c.into_iter().map(|(id, _)| *id).collect()
    }
}

struct Run<'a> {
    s: &'a dyn Store,
    m: Model,
}

impl Run<'_> {
    async fn now(&self) -> i64 {
        self.s.now().await.unwrap()
    }

    /// The model's record of job `id`, just enqueued and inserted.
    fn admit(
        &mut self,
        id: i64,
        queue: usize,
        priority: i64,
        run_at: i64,
        max_attempts: u32,
        unique: Option<(u8, bool)>,
    ) {
        if let Some((key, pending_only)) = unique {
            self.m.unique.insert(id, (queue, key, pending_only));
        }
        self.m.ids.push(id);
        self.m.queue_of.insert(id, queue);
        let live = Live {
            queue,
            priority,
            run_at,
            worker: None,
            attempts: 0,
            max_attempts: i64::from(max_attempts),
        };
        self.m.live.insert(id, live);
    }

    async fn run_at(&self, id: i64) -> i64 {
        self.s.job(id).await.unwrap().expect("a live job").run_at
    }

    async fn step(&mut self, op: &Op) {
        let s = self.s;
        match *op {
            Op::Enqueue {
                queue,
                later,
                priority,
                max_attempts,
                unique,
            } => {
                let mut o = EnqueueOptions::default()
                    .priority(priority)
                    .max_attempts(max_attempts);
                if later {
                    o = o.delay(LATER);
                }
                let mut blocked = None;
                if let Some((key, pending_only)) = unique {
                    let mut u = Unique::key(format!("k{key}"));
                    if pending_only {
                        u = u.while_pending();
                    }
                    o = o.unique(u);
                    blocked = self.m.blocking(queue, key, None);
                }
                let before = self.now().await;
                let e = s.enqueue(QUEUES[queue], "{}".into(), o).await.unwrap();
                if let Some(holder) = blocked {
                    assert_eq!(
                        (e.id, e.duplicate),
                        (holder, true),
                        "a duplicate of its holder"
                    );
                    return;
                }
                assert!(!e.duplicate, "nothing holds the key: {op:?}");
                let run_at = self.run_at(e.id).await;
                let after = self.now().await;
                let wait = if later { LATER.as_secs() as i64 } else { 0 };
                // A delay ends no sooner than asked: in the second it ends,
                // or the next; no delay is due now.
                assert!(
                    (before + wait..=after + wait + i64::from(later)).contains(&run_at),
                    "due at the delay's end: {run_at} for {before}..={after} + {wait}"
                );
                self.admit(e.id, queue, priority, run_at, max_attempts, unique);
            }
            Op::Batch { ref jobs, bad } => {
                let mut batch = Vec::new();
                for &(queue, priority, key) in jobs {
                    let mut o = EnqueueOptions::default().priority(priority);
                    if let Some(key) = key {
                        o = o.unique(Unique::key(format!("k{key}")));
                    }
                    batch.push(BatchJob {
                        queue: QUEUES[queue].into(),
                        payload: "{}".into(),
                        opts: o,
                    });
                }
                if bad {
                    batch.push(BatchJob {
                        queue: QUEUES[0].into(),
                        payload: "{}".into(),
                        opts: EnqueueOptions::default().max_attempts(0),
                    });
                    let refused = s.enqueue_batch(batch).await;
                    assert!(
                        matches!(refused, Err(Error::InvalidOption(_))),
                        "{refused:?}"
                    );
                    // Nothing of it was written: the comparison after the
                    // step finds every table as the model has it.
                    return;
                }
                let before = self.now().await;
                let done = s.enqueue_batch(batch).await.unwrap();
                let after = self.now().await;
                assert_eq!(done.len(), jobs.len());
                for (&(queue, priority, key), e) in jobs.iter().zip(done) {
                    if let Some(holder) = key.and_then(|k| self.m.blocking(queue, k, None)) {
                        assert_eq!(
                            (e.id, e.duplicate),
                            (holder, true),
                            "a duplicate of its holder"
                        );
                        continue;
                    }
                    assert!(!e.duplicate, "nothing holds the key: {op:?}");
                    let run_at = self.run_at(e.id).await;
                    assert!((before..=after).contains(&run_at), "due now: {run_at}");
                    self.admit(e.id, queue, priority, run_at, 3, key.map(|k| (k, false)));
                }
            }
            Op::Claim { worker, queue, n } => {
                let running = self
                    .m
                    .live
                    .values()
                    .filter(|r| r.queue == queue && r.worker.is_some())
                    .count();
                let room = match (self.m.paused[queue], self.m.max_running[queue]) {
                    (true, _) => 0,
                    (false, Some(max)) => (max as usize).saturating_sub(running),
                    (false, None) => usize::MAX,
                };
                let now = self.now().await;
                let want: Vec<i64> = self
                    .m
                    .candidates(queue, now)
                    .into_iter()
                    .take(n.min(room))
                    .collect();
                let got = s
                    .claim(QUEUES[queue], WORKERS[worker], n, VISIBILITY)
                    .await
                    .unwrap();
                let ids: Vec<i64> = got.iter().map(|j| j.id).collect();
                assert_eq!(ids, want, "which jobs, in claim order");
                let after = self.now().await;
                for j in got {
                    let r = self.m.live.get_mut(&j.id).unwrap();
                    r.worker = Some(worker);
                    r.attempts += 1;
                    assert_eq!(j.attempts, r.attempts, "the claim counts an attempt");
                    let lasts = VISIBILITY.as_secs() as i64;
                    assert!(
                        (now + lasts..=after + lasts).contains(&j.claim_expires_at),
                        "the claim lasts its visibility"
                    );
                    self.m.held[worker].push((queue, j.lease()));
                    self.m.history[worker].push((queue, j.lease()));
                }
            }
            Op::Report {
                worker,
                pick,
                stale,
                ref done,
            } => {
                let from = if stale {
                    &self.m.history[worker]
                } else {
                    &self.m.held[worker]
                };
                if from.is_empty() {
                    return;
                }
                let (queue, lease) = from[pick % from.len()];
                let (q, w) = (QUEUES[queue], WORKERS[worker]);
                let valid = self.m.holds(worker, lease);
                match done {
                    Done::Ack => {
                        let acked = s.ack_in(q, w, vec![lease]).await.unwrap();
                        assert_eq!(acked, if valid { vec![lease.id] } else { vec![] }, "ack");
                        if valid {
                            self.m.live.remove(&lease.id);
                        }
                    }
                    Done::Retry { later } => {
                        let delay = if *later { LATER } else { Duration::ZERO };
                        let before = self.now().await;
                        let got = s
                            .retry_in(q, w, lease, delay, "again".into())
                            .await
                            .unwrap();
                        let want = match self.m.live.get(&lease.id) {
                            _ if !valid => RetryOutcome::Lost,
                            Some(r) if lease.attempts < r.max_attempts => RetryOutcome::Retried,
                            _ => RetryOutcome::Dead,
                        };
                        assert_eq!(got, want, "retry");
                        match want {
                            RetryOutcome::Retried => {
                                let run_at = self.run_at(lease.id).await;
                                let after = self.now().await;
                                let d = delay.as_secs() as i64;
                                assert!(
                                    (before + d..=after + d + i64::from(*later)).contains(&run_at),
                                    "retried: {run_at} for {before}..={after} + {d}"
                                );
                                let r = self.m.live.get_mut(&lease.id).unwrap();
                                r.worker = None;
                                r.run_at = run_at;
                            }
                            RetryOutcome::Dead => {
                                self.m.bury(lease.id, lease.attempts, "again");
                            }
                            _ => {}
                        }
                    }
                    Done::Fail => {
                        let failed = s.fail_in(q, w, lease, "broken".into()).await.unwrap();
                        assert_eq!(failed, valid, "fail");
                        if valid {
                            self.m.bury(lease.id, lease.attempts, "broken");
                        }
                    }
                    Done::Heartbeat => {
                        let until = s.heartbeat_in(q, w, lease, VISIBILITY * 2).await.unwrap();
                        assert_eq!(until.is_some(), valid, "heartbeat");
                        if let Some(until) = until {
                            let now = self.now().await;
                            let lasts = 2 * VISIBILITY.as_secs() as i64;
                            assert!(until > now + lasts - 5 && until <= now + lasts, "extended");
                        }
                        // A heartbeat keeps the lease.
                        return;
                    }
                }
                self.m.held[worker].retain(|&(_, l)| l != lease);
            }
            Op::Cancel { pick } => {
                let Some(&id) = pick_of(&self.m.ids, pick) else {
                    return;
                };
                let Some(queue) = self.queue_of(id) else {
                    return;
                };
                let live = self.m.live.contains_key(&id);
                assert_eq!(
                    s.cancel_in(QUEUES[queue], id).await.unwrap(),
                    live,
                    "cancel"
                );
                if live {
                    let attempts = self.m.live[&id].attempts;
                    self.m.bury(id, attempts, CANCELLED);
                }
            }
            Op::Requeue { pick } => {
                let Some(&id) = pick_of(&self.m.ids, pick) else {
                    return;
                };
                let Some(queue) = self.queue_of(id) else {
                    return;
                };
                let dead = self.m.dead.contains_key(&id);
                let r = s.requeue_dead_in(QUEUES[queue], id).await;
                let holder = self
                    .m
                    .unique
                    .get(&id)
                    .and_then(|&(q, k, _)| self.m.blocking(q, k, Some(id)));
                match (dead, holder) {
                    (true, Some(holder)) => {
                        assert!(
                            matches!(&r, Err(Error::UniqueConflict { job_id, holder: h, .. })
                                if *job_id == id && *h == holder),
                            "{r:?}"
                        );
                    }
                    _ => {
                        assert_eq!(r.unwrap(), dead, "requeue");
                        if dead {
                            self.revive(id).await;
                        }
                    }
                }
            }
            Op::RequeueAll { queue } => {
                let filter = DeadFilter::default().queue(QUEUES[queue]);
                let n = s.requeue_dead_where(filter).await.unwrap();
                // In id order, each against the jobs put back before it.
                let dead: Vec<i64> = self
                    .m
                    .dead
                    .iter()
                    .filter(|(_, d)| d.queue == queue)
                    .map(|(id, _)| *id)
                    .collect();
                let mut back = 0;
                for id in dead {
                    let taken = self
                        .m
                        .unique
                        .get(&id)
                        .is_some_and(|&(q, k, _)| self.m.blocking(q, k, Some(id)).is_some());
                    if !taken {
                        self.revive(id).await;
                        back += 1;
                    }
                }
                assert_eq!(n, back, "requeued by queue");
            }
            Op::Purge { pick } => {
                let Some(&id) = pick_of(&self.m.ids, pick) else {
                    return;
                };
                let Some(queue) = self.queue_of(id) else {
                    return;
                };
                let dead = self.m.dead.remove(&id).is_some();
                assert_eq!(
                    s.purge_dead_in(QUEUES[queue], id).await.unwrap(),
                    dead,
                    "purge"
                );
            }
            Op::PurgeAll { queue } => {
                let filter = DeadFilter::default().queue(QUEUES[queue]);
                let n = s.purge_dead_where(filter).await.unwrap();
                let before = self.m.dead.len();
                self.m.dead.retain(|_, d| d.queue != queue);
                assert_eq!(n, before - self.m.dead.len(), "purged by queue");
            }
            Op::Pause { queue, paused } => {
                let q = QUEUES[queue];
                let changed = if paused {
                    s.pause_queue(q).await.unwrap()
                } else {
                    s.resume_queue(q).await.unwrap()
                };
                assert_eq!(changed, self.m.paused[queue] != paused, "a change is told");
                self.m.paused[queue] = paused;
                assert_eq!(s.queue_controls(q).await.unwrap().paused, paused);
            }
            Op::MaxRunning { queue, n } => {
                s.set_max_running(QUEUES[queue], n).await.unwrap();
                self.m.max_running[queue] = n;
            }
            Op::Lock { owner, take } => {
                let ttl = Duration::from_secs(3_600);
                if take {
                    let free = self.m.lock.is_none_or(|h| h == owner);
                    let got = s.try_lock("l", WORKERS[owner], ttl).await.unwrap();
                    assert_eq!(got, free, "try_lock");
                    if free {
                        self.m.lock = Some(owner);
                    }
                } else {
                    let mine = self.m.lock == Some(owner);
                    assert_eq!(s.unlock("l", WORKERS[owner]).await.unwrap(), mine, "unlock");
                    if mine {
                        self.m.lock = None;
                    }
                }
                // Whoever holds it (or nobody) renews; the other cannot.
                for (o, w) in WORKERS.iter().enumerate() {
                    let renewed = s.renew_lock("l", w, ttl).await.unwrap();
                    assert_eq!(renewed, self.m.lock == Some(o), "only the holder renews");
                }
            }
        }
    }

    fn queue_of(&self, id: i64) -> Option<usize> {
        self.m.queue_of.get(&id).copied()
    }

    /// Dead job `id` requeued: pending, due now, attempts from 0.
    async fn revive(&mut self, id: i64) {
        let d = self.m.dead.remove(&id).expect("dead");
        let row = self.s.job(id).await.unwrap().expect("live again");
        assert_eq!((row.attempts, row.state), (0, JobState::Pending), "fresh");
        assert!(row.run_at <= self.now().await, "due now");
        let live = Live {
            queue: d.queue,
            priority: row.priority,
            run_at: row.run_at,
            worker: None,
            attempts: 0,
            max_attempts: row.max_attempts,
        };
        self.m.live.insert(id, live);
    }

    /// The store, read through its own operations, is the model.
    async fn check(&self) {
        let s = self.s;
        let now = self.now().await;
        for (queue, q) in QUEUES.iter().enumerate() {
            let mut live = BTreeMap::new();
            for state in [LiveState::Pending, LiveState::Scheduled, LiveState::Running] {
                let rows = s.list_jobs(q, state, 1_000, 0).await.unwrap();
                for row in rows {
                    let worker = row.worker_id.as_deref().map(|w| {
                        WORKERS
                            .iter()
                            .position(|x| *x == w)
                            .unwrap_or_else(|| panic!("a worker of the test: {w}"))
                    });
                    let state_ok = match state {
                        LiveState::Running => row.state == JobState::Processing,
                        LiveState::Pending => row.run_at <= now && worker.is_none(),
                        LiveState::Scheduled => row.run_at > now && worker.is_none(),
                    };
                    assert!(state_ok, "listed as {state:?}: {row:?}");
                    let r = Live {
                        queue,
                        priority: row.priority,
                        run_at: row.run_at,
                        worker,
                        attempts: row.attempts,
                        max_attempts: row.max_attempts,
                    };
                    assert!(live.insert(row.id, r).is_none(), "listed once: {}", row.id);
                }
            }
            let want: BTreeMap<i64, Live> = self
                .m
                .live
                .iter()
                .filter(|(_, r)| r.queue == queue)
                .map(|(id, r)| (*id, r.clone()))
                .collect();
            assert_eq!(live, want, "live jobs of {q}");

            let dead: BTreeMap<i64, Dead> = s
                .dead_in(q, 1_000, 0)
                .await
                .unwrap()
                .into_iter()
                .map(|d| {
                    let last_error = d.last_error.unwrap_or_default();
                    (
                        d.id,
                        Dead {
                            queue,
                            attempts: d.attempts,
                            last_error,
                        },
                    )
                })
                .collect();
            let want: BTreeMap<i64, Dead> = self
                .m
                .dead
                .iter()
                .filter(|(_, d)| d.queue == queue)
                .map(|(id, d)| (*id, d.clone()))
                .collect();
            assert_eq!(dead, want, "dead jobs of {q}");

            let st = s.queue_stats(q).await.unwrap();
            let count = |f: &dyn Fn(&Live) -> bool| {
                self.m
                    .live
                    .values()
                    .filter(|r| r.queue == queue && f(r))
                    .count() as i64
            };
            assert_eq!(
                (st.pending_due, st.scheduled, st.processing, st.dead),
                (
                    count(&|r| r.worker.is_none() && r.run_at <= now),
                    count(&|r| r.worker.is_none() && r.run_at > now),
                    count(&|r| r.worker.is_some()),
                    want.len() as i64,
                ),
                "stats of {q}"
            );
        }
        // A job is in one table at most, as `job` and `dead_job` say.
        for &id in &self.m.ids {
            let (live, dead) = (s.job(id).await.unwrap(), s.dead_job(id).await.unwrap());
            assert_eq!(live.is_some(), self.m.live.contains_key(&id), "job {id}");
            assert_eq!(
                dead.is_some(),
                self.m.dead.contains_key(&id),
                "dead job {id}"
            );
        }
    }
}

fn pick_of<T>(v: &[T], pick: usize) -> Option<&T> {
    (!v.is_empty()).then(|| &v[pick % v.len()])
}

fn cases() -> u32 {
    std::env::var("HONKER_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_store_behaves_as_the_model_under_random_operations(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (_guard, h) = crate::conformance::honker();
            let mut run = Run { s: h.store(), m: Model::default() };
            for op in &ops {
                run.step(op).await;
                run.check().await;
            }
        });
    }
}
