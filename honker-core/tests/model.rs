//! A model-based randomized test: random sequences of queue operations are
//! applied to a real file database and to a small reference model of the
//! honker semantics (the rules the format's bindings share, and the queue
//! controls pause and running limit, unique jobs, named locks and
//! schedules), and the two are compared after every
//! step. (The rate limit counts in real-time windows, which the simulated
//! clock cannot move: its unit and process tests cover it.)
//!
//! Time: SQLite's clock cannot be stopped, so every time the test writes is
//! a whole number of `U` (500 s) away from "now" (a claim visibility, a
//! heartbeat, an expiry, a delay), and the passing of time is simulated by
//! shifting every stored time of `_honker_live` back by `2U`. Real time
//! moves a few seconds at most during a case, far less than `U`, so whether
//! a time has passed is never in doubt: deadlines (claims, expiries,
//! delays) sit an odd number of `U` from now and never on it, and the only
//! time that sits on "now" is a `run_at` of "due now", which is due.
//!
//! Runs 128 cases by default; `HONKER_MODEL_CASES=n` runs `n`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use honker_core::{
    ack, cancel, claim_batch, enqueue, fail, has_claimable, heartbeat, next_claim_at,
    next_expiry_at, pending_due_count, queue_stats, release, requeue_dead, retry, stats,
    sweep_expired, EnqueueOptions, Lease, RetryOutcome, CANCELLED,
};
use proptest::prelude::*;
use rusqlite::Connection;

/// The unit of model time, in seconds.
const U: i64 = 500;
const QUEUES: [&str; 2] = ["a", "b"];
const POOLS: [&str; 2] = ["p1", "p2"];

fn units(n: u8) -> Duration {
    Duration::from_secs(U as u64 * u64::from(n))
}

// ------------------------------------------------------------------ ops

#[derive(Clone, Debug)]
enum Outcome {
    Ack,
    /// Delay in units: 0 (due now) or odd.
    Retry(u8),
    Fail,
    /// Extension in odd units.
    Heartbeat(u8),
    Release,
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        queue: usize,
        /// None: due now; else odd units.
        delay: Option<u8>,
        max_attempts: u32,
        /// Odd units.
        expires: Option<u8>,
        priority: i64,
        /// A uniqueness key (of 3) and whether it holds only while pending.
        unique: Option<(u8, bool)>,
    },
    Claim {
        pool: usize,
        queue: usize,
        n: usize,
        /// Odd units.
        visibility: u8,
    },
    Outcome {
        pool: usize,
        /// Index into the leases the pool holds, or into every lease it
        /// ever held when `stale`.
        pick: usize,
        stale: bool,
        outcome: Outcome,
    },
    Cancel {
        pick: usize,
    },
    /// Shift every stored live time back by `2U * k`.
    Advance(u8),
    /// Move a pool's claim deadlines into the past.
    Lapse {
        pool: usize,
    },
    /// The pool forgets its leases; its rows stay processing until they lapse.
    Crash {
        pool: usize,
    },
    /// The pool releases every lease it holds.
    Shutdown {
        pool: usize,
    },
    Sweep,
    /// An operator requeues a dead job (fresh attempts, due now).
    Requeue {
        pick: usize,
    },
    /// Pause (or resume) a queue for every worker.
    Pause {
        queue: usize,
        paused: bool,
    },
    /// Set (or lift) a queue's running limit across workers.
    MaxRunning {
        queue: usize,
        n: Option<u32>,
    },
    /// An operator requeues every dead job of a queue.
    RequeueAll {
        queue: usize,
    },
    /// An operator purges a dead job, or every dead job of a queue.
    Purge {
        pick: usize,
        all_of: Option<usize>,
    },
    /// A named lock taken (or released) by one of two owners.
    Lock {
        owner: usize,
        take: bool,
    },
    /// Register schedule `which` (of 2) every `every` units (1 or 3),
    /// into queue `queue`.
    Register {
        which: usize,
        every: u8,
        queue: usize,
    },
    /// A scheduler looks for due boundaries, `late` units after the
    /// earliest (0: on time).
    Fire {
        late: u8,
    },
    /// An operator runs schedule `which` (of 2) now, outside its timetable.
    RunNow {
        which: usize,
    },
}

fn odd(max: u8) -> impl Strategy<Value = u8> {
    (0..=max / 2).prop_map(|k| 2 * k + 1)
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Ack),
        2 => prop_oneof![Just(0u8), odd(3)].prop_map(Outcome::Retry),
        1 => Just(Outcome::Fail),
        2 => odd(5).prop_map(Outcome::Heartbeat),
        1 => Just(Outcome::Release),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            0..2usize,
            prop::option::of(odd(5)),
            1..=3u32,
            prop::option::weighted(0.3, odd(7)),
            -1..=2i64,
            prop::option::weighted(0.3, (0..3u8, prop::bool::ANY)),
        )
            .prop_map(|(queue, delay, max_attempts, expires, priority, unique)| Op::Enqueue {
                queue,
                delay,
                max_attempts,
                expires,
                priority,
                unique,
            }),
        4 => (0..2usize, 0..2usize, 1..=4usize, odd(3)).prop_map(|(pool, queue, n, visibility)| {
            Op::Claim { pool, queue, n, visibility }
        }),
        5 => (0..2usize, any::<usize>(), prop::bool::weighted(0.25), outcome()).prop_map(
            |(pool, pick, stale, outcome)| Op::Outcome { pool, pick, stale, outcome }
        ),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (1..=3u8).prop_map(Op::Advance),
        1 => (0..2usize).prop_map(|pool| Op::Lapse { pool }),
        1 => (0..2usize).prop_map(|pool| Op::Crash { pool }),
        1 => (0..2usize).prop_map(|pool| Op::Shutdown { pool }),
        1 => Just(Op::Sweep),
        1 => any::<usize>().prop_map(|pick| Op::Requeue { pick }),
        1 => (0..2usize, prop::bool::weighted(0.5)).prop_map(|(queue, paused)| Op::Pause { queue, paused }),
        1 => (0..2usize, prop::option::of(1..=3u32)).prop_map(|(queue, n)| Op::MaxRunning { queue, n }),
        1 => (0..2usize).prop_map(|queue| Op::RequeueAll { queue }),
        1 => (any::<usize>(), prop::option::weighted(0.3, 0..2usize))
            .prop_map(|(pick, all_of)| Op::Purge { pick, all_of }),
        1 => (0..2usize, prop::bool::ANY).prop_map(|(owner, take)| Op::Lock { owner, take }),
        1 => (0..2usize, prop_oneof![Just(1u8), Just(3u8)], 0..2usize)
            .prop_map(|(which, every, queue)| Op::Register { which, every, queue }),
        1 => (0..3u8).prop_map(|late| Op::Fire { late }),
        1 => (0..2usize).prop_map(|which| Op::RunNow { which }),
    ]
}

// ------------------------------------------------------------------ model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pending,
    Processing,
}

/// A live row as stored, times in unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Live {
    queue: String,
    state: State,
    priority: i64,
    run_at: i64,
    worker: Option<String>,
    claim_expires_at: Option<i64>,
    attempts: i64,
    max_attempts: i64,
    expires_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Dead {
    queue: String,
    priority: i64,
    attempts: i64,
    max_attempts: i64,
    last_error: String,
}

#[derive(Default)]
struct Pool {
    held: Vec<Lease>,
    history: Vec<Lease>,
}

#[derive(Default)]
struct Model {
    live: BTreeMap<i64, Live>,
    dead: BTreeMap<i64, Dead>,
    acked: BTreeSet<i64>,
    enqueued: Vec<i64>,
    pools: [Pool; 2],
    /// Per queue: paused, and the running limit.
    paused: [bool; 2],
    max_running: [Option<u32>; 2],
    /// job -> (queue, key, holds only while pending), for unique jobs.
    unique_of: HashMap<i64, (usize, u8, bool)>,
    /// Dead jobs an operator purged: gone for good.
    purged: BTreeSet<i64>,
    /// The holder of the named lock, if any.
    lock: Option<usize>,
    /// Schedules: name -> (queue, interval s, next_fire_at).
    schedules: BTreeMap<String, (usize, i64, i64)>,
    /// Every (schedule, boundary) fired so far: never twice.
    fired: BTreeSet<(String, i64)>,
}

/// How many units `t` lies from `now`, rounded: real time moving a few
/// seconds never changes it.
fn pos(t: i64, now: i64) -> i64 {
    let d = t - now;
    (d + d.signum() * U / 2) / U
}

/// [`pos`] of a deadline, which never sits on "now".
fn deadline_pos(t: i64, now: i64, what: &str) -> i64 {
    let p = pos(t, now);
    assert_ne!(p, 0, "test design: {what} {t} sits on now {now}");
    p
}

impl Live {
    fn expired(&self, now: i64) -> bool {
        self.expires_at
            .is_some_and(|e| deadline_pos(e, now, "expires_at") < 0)
    }
    fn lapsed(&self, now: i64) -> bool {
        self.claim_expires_at
            .is_some_and(|c| deadline_pos(c, now, "claim_expires_at") < 0)
    }
    fn due(&self, now: i64) -> bool {
        pos(self.run_at, now) <= 0
    }
    /// What the claim would take (or dead-letter).
    fn claimable(&self, now: i64) -> bool {
        !self.expired(now)
            && match self.state {
                State::Pending => self.due(now),
                State::Processing => self.lapsed(now),
            }
    }
}

impl Model {
    /// A schedule enqueued job `id` (a boundary fired, or run now): a
    /// pending row of `queue` with the schedule's defaults.
    fn schedule_enqueued(&mut self, id: i64, queue: usize, run_at: i64) {
        self.enqueued.push(id);
        self.live.insert(
            id,
            Live {
                queue: QUEUES[queue].to_string(),
                state: State::Pending,
                priority: 0,
                run_at,
                worker: None,
                claim_expires_at: None,
                attempts: 0,
                max_attempts: 3,
                expires_at: None,
            },
        );
    }

    /// The newest job other than `except` that holds `key` of `queue` at
    /// `now`: live in a state its rule names, and still able to run (not
    /// what the expiry sweep would take).
    fn blocking(&self, queue: usize, key: u8, except: Option<i64>, now: i64) -> Option<i64> {
        self.unique_of
            .iter()
            .filter(|&(&id, &(q, k, _))| q == queue && k == key && Some(id) != except)
            .filter(|&(id, &(_, _, pending_only))| {
                self.live.get(id).is_some_and(|r| {
                    r.queue == QUEUES[queue]
                        && (r.state == State::Pending
                            || (!pending_only && r.state == State::Processing))
                        && !(r.expired(now) && (r.state == State::Pending || r.lapsed(now)))
                })
            })
            .map(|(&id, _)| id)
            .max()
    }

    /// Whether requeueing dead job `id` would give its key a second job.
    fn requeue_conflicts(&self, id: i64, now: i64) -> bool {
        self.unique_of
            .get(&id)
            .is_some_and(|&(q, k, _)| self.blocking(q, k, Some(id), now).is_some())
    }

    /// Dead job `id` requeued: live, pending, fresh attempts, due at
    /// `run_at`.
    fn revive(&mut self, id: i64, run_at: i64) {
        let d = self.dead.remove(&id).expect("a dead row");
        self.live.insert(
            id,
            Live {
                queue: d.queue,
                state: State::Pending,
                priority: d.priority,
                run_at,
                worker: None,
                claim_expires_at: None,
                attempts: 0,
                max_attempts: d.max_attempts,
                expires_at: None,
            },
        );
    }

    /// A valid claim given back: pending, its attempt returned.
    fn release(&mut self, id: i64) {
        let r = self.live.get_mut(&id).unwrap();
        r.state = State::Pending;
        r.attempts -= 1;
        r.worker = None;
        r.claim_expires_at = None;
    }

    fn move_to_dead(&mut self, id: i64, attempts: i64, why: &str) {
        let row = self.live.remove(&id).expect("live row");
        self.dead.insert(
            id,
            Dead {
                queue: row.queue,
                priority: row.priority,
                attempts,
                max_attempts: row.max_attempts,
                last_error: why.to_string(),
            },
        );
    }

    /// Whether `lease` is the valid claim of `pool` now.
    ///
    /// A lease is its token (id, attempts) and the worker, as in the
    /// database. Note: a requeue from dead resets attempts to 0, so a later
    /// claim of the same job by the same pool hands out a token an earlier
    /// claim already had; a stale lease from before the requeue then
    /// completes the new claim. The model agrees with the database there (it
    /// cannot tell the two claims apart either); the pool must.
    fn holds(&self, pool: &str, lease: Lease, now: i64) -> bool {
        self.live.get(&lease.id).is_some_and(|r| {
            r.state == State::Processing
                && r.worker.as_deref() == Some(pool)
                && r.attempts == lease.attempts
                && !r.lapsed(now)
        })
    }

    /// The claim's candidates of `queue` in claim order.
    fn candidates(&self, queue: &str, now: i64) -> Vec<i64> {
        let mut c: Vec<(&i64, &Live)> = self
            .live
            .iter()
            .filter(|(_, r)| r.queue == queue && r.claimable(now))
            .collect();
        c.sort_by(|(ia, a), (ib, b)| {
            b.priority
                .cmp(&a.priority)
                .then(a.run_at.cmp(&b.run_at))
                .then(ia.cmp(ib))
        });
        c.into_iter().map(|(id, _)| *id).collect()
    }

    fn next_claim_at(&self, queue: &str, now: i64) -> Option<i64> {
        self.live
            .values()
            .filter(|r| r.queue == queue)
            .filter_map(|r| match r.state {
                State::Pending => (pos(r.run_at, now) > 0
                    && r.expires_at.is_none_or(|e| e > r.run_at))
                .then_some(r.run_at),
                State::Processing => (!r.lapsed(now)).then(|| r.claim_expires_at.unwrap() + 1),
            })
            .min()
    }

    fn next_expiry_at(&self, queue: &str, now: i64) -> Option<i64> {
        self.live
            .values()
            .filter(|r| r.queue == queue)
            .filter_map(|r| r.expires_at)
            .filter(|&e| deadline_pos(e, now, "expires_at") > 0)
            .min()
    }
}

// ------------------------------------------------------------------ the database

fn db_live(c: &Connection) -> BTreeMap<i64, Live> {
    let mut s = c
        .prepare(
            "SELECT id, queue, state, priority, run_at, worker_id, claim_expires_at,
                    attempts, max_attempts, expires_at, typeof(run_at),
                    typeof(claim_expires_at), typeof(expires_at)
             FROM _honker_live ORDER BY id",
        )
        .unwrap();
    s.query_map([], |r| {
        for (i, col) in [(10, "run_at"), (11, "claim_expires_at"), (12, "expires_at")] {
            let t: String = r.get(i)?;
            assert!(t == "integer" || t == "null", "{col} stored as {t}");
        }
        let state: String = r.get(2)?;
        Ok((
            r.get(0)?,
            Live {
                queue: r.get(1)?,
                state: match state.as_str() {
                    "pending" => State::Pending,
                    "processing" => State::Processing,
                    other => panic!("state {other}"),
                },
                priority: r.get(3)?,
                run_at: r.get(4)?,
                worker: r.get(5)?,
                claim_expires_at: r.get(6)?,
                attempts: r.get(7)?,
                max_attempts: r.get(8)?,
                expires_at: r.get(9)?,
            },
        ))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

fn db_dead(c: &Connection) -> BTreeMap<i64, Dead> {
    let mut s = c
        .prepare(
            "SELECT id, queue, priority, attempts, max_attempts, last_error
             FROM _honker_dead ORDER BY id",
        )
        .unwrap();
    s.query_map([], |r| {
        let last_error: Option<String> = r.get(5)?;
        let last_error = last_error.expect("a dead row carries a reason");
        assert!(!last_error.is_empty(), "a dead row carries a reason");
        Ok((
            r.get(0)?,
            Dead {
                queue: r.get(1)?,
                priority: r.get(2)?,
                attempts: r.get(3)?,
                max_attempts: r.get(4)?,
                last_error,
            },
        ))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

fn now(c: &Connection) -> i64 {
    honker_core::now(c).unwrap()
}

// ------------------------------------------------------------------ the run

struct Run {
    c: Connection,
    m: Model,
    /// attempts of every row last seen, to check they never decrease.
    attempts: HashMap<i64, i64>,
    /// ids whose claim a step released (their attempts go back by one).
    released: BTreeSet<i64>,
    /// ids a step requeued from dead (their attempts start again at 0).
    requeued: BTreeSet<i64>,
    _dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let c = honker_core::open(dir.path().join("model.db")).unwrap();
        Run {
            c,
            m: Model::default(),
            attempts: HashMap::new(),
            released: BTreeSet::new(),
            requeued: BTreeSet::new(),
            _dir: dir,
        }
    }

    fn step(&mut self, op: &Op) {
        self.released.clear();
        self.requeued.clear();
        let c = &self.c;
        let t = now(c);
        match *op {
            Op::Enqueue {
                queue,
                delay,
                max_attempts,
                expires,
                priority,
                unique,
            } => {
                let mut o = EnqueueOptions::default()
                    .max_attempts(max_attempts)
                    .priority(priority);
                if let Some((key, pending_only)) = unique {
                    let mut u = honker_core::Unique::key(format!("k{key}"));
                    if pending_only {
                        u = u.while_pending();
                    }
                    o = o.unique(u);
                    if let Some(e) = expires {
                        o = o.expires(units(e));
                    }
                    // The model: a live job holding the key in a state its
                    // rule names, and able to run, blocks the enqueue (the
                    // newest of them).
                    let blocking = self.m.blocking(queue, key, None, t);
                    let done = honker_core::enqueue_outcome(c, QUEUES[queue], "{}", &o).unwrap();
                    if let Some(id) = blocking {
                        assert_eq!((done.id, done.duplicate), (id, true), "a duplicate");
                        return;
                    }
                    assert!(!done.duplicate, "nothing blocks key {key}");
                    self.m.unique_of.insert(done.id, (queue, key, pending_only));
                    let job = honker_core::get_job(c, done.id).unwrap().unwrap();
                    self.m.enqueued.push(done.id);
                    self.m.live.insert(
                        done.id,
                        Live {
                            queue: QUEUES[queue].to_string(),
                            state: State::Pending,
                            priority,
                            run_at: job.run_at,
                            worker: None,
                            claim_expires_at: None,
                            attempts: 0,
                            max_attempts: i64::from(max_attempts),
                            expires_at: job.expires_at,
                        },
                    );
                    return;
                }
                if let Some(d) = delay {
                    o = o.delay(units(d));
                }
                if let Some(e) = expires {
                    o = o.expires(units(e));
                }
                let id = enqueue(c, QUEUES[queue], "{}", &o).unwrap();
                let job = honker_core::get_job(c, id).unwrap().unwrap();
                let t = now(c);
                assert_eq!(pos(job.run_at, t), delay.map_or(0, i64::from));
                if let Some(e) = expires {
                    assert_eq!(
                        deadline_pos(job.expires_at.unwrap(), t, "expires_at"),
                        i64::from(e)
                    );
                }
                self.m.enqueued.push(id);
                self.m.live.insert(
                    id,
                    Live {
                        queue: QUEUES[queue].to_string(),
                        state: State::Pending,
                        priority,
                        run_at: job.run_at,
                        worker: None,
                        claim_expires_at: None,
                        attempts: 0,
                        max_attempts: i64::from(max_attempts),
                        expires_at: job.expires_at,
                    },
                );
            }
            Op::Claim {
                pool,
                queue,
                n,
                visibility,
            } => {
                let q = QUEUES[queue];
                // The queue's controls first: a paused queue gives nothing;
                // a running limit, only the room left (valid claims count).
                let running = self
                    .m
                    .live
                    .values()
                    .filter(|r| r.queue == q && r.state == State::Processing && !r.lapsed(t))
                    .count();
                let room = match (self.m.paused[queue], self.m.max_running[queue]) {
                    (true, _) => 0,
                    (false, Some(max)) => (max as usize).saturating_sub(running),
                    (false, None) => usize::MAX,
                };
                let n_eff = n.min(room);
                // The model's claim: walk the candidates in claim order,
                // dead-lettering exhausted rows, until n_eff are claimed.
                let mut expected = Vec::new();
                let mut exhausted = Vec::new();
                let candidates = if n_eff == 0 {
                    Vec::new()
                } else {
                    self.m.candidates(q, t)
                };
                for id in candidates {
                    if expected.len() == n_eff {
                        break;
                    }
                    let r = &self.m.live[&id];
                    if r.attempts >= r.max_attempts {
                        exhausted.push((id, r.attempts));
                    } else {
                        expected.push(id);
                    }
                }
                let before = now(c);
                let jobs = claim_batch(c, q, POOLS[pool], n, units(visibility)).unwrap();
                let after = now(c);
                let got: Vec<i64> = jobs.iter().map(|j| j.id).collect();
                assert_eq!(got, expected, "claimed ids in claim order");
                for w in jobs.windows(2) {
                    let key = |j: &honker_core::ClaimedJob| (-j.priority, j.run_at, j.id);
                    assert!(key(&w[0]) < key(&w[1]), "claim order");
                }
                for (id, attempts) in exhausted {
                    self.m.move_to_dead(id, attempts, "max attempts exceeded");
                }
                for j in jobs {
                    assert!(j.run_at <= after, "claimed before its run_at");
                    assert!(
                        j.expires_at.is_none_or(|e| e > before),
                        "claimed after expiry"
                    );
                    assert_eq!(
                        deadline_pos(j.claim_expires_at, after, "claim_expires_at"),
                        i64::from(visibility)
                    );
                    let r = self.m.live.get_mut(&j.id).unwrap();
                    r.state = State::Processing;
                    r.worker = Some(POOLS[pool].to_string());
                    r.attempts += 1;
                    r.claim_expires_at = Some(j.claim_expires_at);
                    assert_eq!(j.attempts, r.attempts);
                    let lease = j.lease();
                    self.m.pools[pool].held.push(lease);
                    self.m.pools[pool].history.push(lease);
                }
            }
            Op::Outcome {
                pool,
                pick,
                stale,
                ref outcome,
            } => {
                let p = &self.m.pools[pool];
                let from = if stale { &p.history } else { &p.held };
                if from.is_empty() {
                    return;
                }
                let lease = from[pick % from.len()];
                let worker = POOLS[pool];
                let valid = self.m.holds(worker, lease, t);
                let snapshot = (db_live(c), db_dead(c));
                let done = |m: &mut Model| m.pools[pool].held.retain(|l| *l != lease);
                match outcome {
                    Outcome::Ack => {
                        assert_eq!(ack(c, worker, lease).unwrap(), valid, "ack");
                        if valid {
                            self.m.live.remove(&lease.id);
                            self.m.acked.insert(lease.id);
                        }
                        done(&mut self.m);
                    }
                    Outcome::Retry(d) => {
                        let got = retry(c, worker, lease, units(*d), "retry error").unwrap();
                        let want = if !valid {
                            RetryOutcome::Lost
                        } else if lease.attempts < self.m.live[&lease.id].max_attempts {
                            RetryOutcome::Retried
                        } else {
                            RetryOutcome::Dead
                        };
                        assert_eq!(got, want, "retry");
                        match want {
                            RetryOutcome::Retried => {
                                let run_at =
                                    honker_core::get_job(c, lease.id).unwrap().unwrap().run_at;
                                assert_eq!(pos(run_at, now(c)), i64::from(*d));
                                let r = self.m.live.get_mut(&lease.id).unwrap();
                                r.state = State::Pending;
                                r.run_at = run_at;
                                r.worker = None;
                                r.claim_expires_at = None;
                            }
                            RetryOutcome::Dead => {
                                self.m.move_to_dead(lease.id, lease.attempts, "retry error")
                            }
                            RetryOutcome::Lost => {}
                        }
                        done(&mut self.m);
                    }
                    Outcome::Fail => {
                        assert_eq!(fail(c, worker, lease, "fail error").unwrap(), valid, "fail");
                        if valid {
                            self.m.move_to_dead(lease.id, lease.attempts, "fail error");
                        }
                        done(&mut self.m);
                    }
                    Outcome::Heartbeat(e) => {
                        let got = heartbeat(c, worker, lease, units(*e)).unwrap();
                        assert_eq!(got.is_some(), valid, "heartbeat");
                        if let Some(until) = got {
                            let r = self.m.live.get_mut(&lease.id).unwrap();
                            let old = r.claim_expires_at.unwrap();
                            assert!(until >= old, "a heartbeat never shortens a claim");
                            let t = now(c);
                            assert_eq!(
                                deadline_pos(until, t, "claim_expires_at"),
                                deadline_pos(old, t, "claim_expires_at").max(i64::from(*e))
                            );
                            r.claim_expires_at = Some(until);
                        }
                    }
                    Outcome::Release => {
                        let n = release(c, worker, &[lease]).unwrap();
                        assert_eq!(n, usize::from(valid), "release");
                        if valid {
                            self.m.release(lease.id);
                            self.released.insert(lease.id);
                        }
                        done(&mut self.m);
                    }
                }
                if !valid {
                    assert_eq!(
                        (db_live(c), db_dead(c)),
                        snapshot,
                        "an outcome with a lost lease changes no row"
                    );
                }
            }
            Op::Cancel { pick } => {
                if self.m.enqueued.is_empty() {
                    return;
                }
                let id = self.m.enqueued[pick % self.m.enqueued.len()];
                let live = self.m.live.contains_key(&id);
                assert_eq!(cancel(c, id).unwrap(), live, "cancel");
                if live {
                    let attempts = self.m.live[&id].attempts;
                    self.m.move_to_dead(id, attempts, CANCELLED);
                }
            }
            Op::Advance(k) => {
                let by = 2 * U * i64::from(k);
                c.execute(
                    "UPDATE _honker_live SET run_at = run_at - ?1,
                       claim_expires_at = claim_expires_at - ?1, expires_at = expires_at - ?1",
                    [by],
                )
                .unwrap();
                for r in self.m.live.values_mut() {
                    r.run_at -= by;
                    r.claim_expires_at = r.claim_expires_at.map(|x| x - by);
                    r.expires_at = r.expires_at.map(|x| x - by);
                }
            }
            Op::Lapse { pool } => {
                c.execute(
                    "UPDATE _honker_live SET claim_expires_at = unixepoch() - ?2
                     WHERE worker_id = ?1 AND state = 'processing'",
                    rusqlite::params![POOLS[pool], U],
                )
                .unwrap();
                let db = db_live(c);
                for (id, r) in self.m.live.iter_mut() {
                    if r.state == State::Processing && r.worker.as_deref() == Some(POOLS[pool]) {
                        r.claim_expires_at = db[id].claim_expires_at;
                    }
                }
            }
            Op::Crash { pool } => self.m.pools[pool].held.clear(),
            Op::Shutdown { pool } => {
                let held = std::mem::take(&mut self.m.pools[pool].held);
                // One lease after the other, as `release` does: after a
                // requeue the pool can hold the same token twice (see
                // `Model::holds`), and only the first release finds it.
                let mut valid = 0;
                for l in &held {
                    if self.m.holds(POOLS[pool], *l, t) {
                        self.m.release(l.id);
                        self.released.insert(l.id);
                        valid += 1;
                    }
                }
                assert_eq!(release(c, POOLS[pool], &held).unwrap(), valid, "shutdown");
            }
            Op::Pause { queue, paused } => {
                let q = QUEUES[queue];
                let changed = if paused {
                    honker_core::pause_queue(c, q).unwrap()
                } else {
                    honker_core::resume_queue(c, q).unwrap()
                };
                assert_eq!(
                    changed,
                    self.m.paused[queue] != paused,
                    "pause reports a change"
                );
                self.m.paused[queue] = paused;
            }
            Op::MaxRunning { queue, n } => {
                honker_core::set_max_running(c, QUEUES[queue], n).unwrap();
                self.m.max_running[queue] = n;
            }
            Op::Requeue { pick } => {
                if self.m.enqueued.is_empty() {
                    return;
                }
                let id = self.m.enqueued[pick % self.m.enqueued.len()];
                let dead = self.m.dead.contains_key(&id);
                if dead && self.m.requeue_conflicts(id, t) {
                    let e = requeue_dead(c, id).unwrap_err();
                    assert!(
                        matches!(e, honker_core::Error::UniqueConflict { .. }),
                        "{e}"
                    );
                    return;
                }
                assert_eq!(requeue_dead(c, id).unwrap(), dead, "requeue_dead");
                if dead {
                    let run_at = honker_core::get_job(c, id).unwrap().unwrap().run_at;
                    assert_eq!(pos(run_at, now(c)), 0, "due now");
                    self.m.revive(id, run_at);
                    self.requeued.insert(id);
                }
            }
            Op::RequeueAll { queue } => {
                let q = QUEUES[queue];
                let candidates: Vec<i64> = self
                    .m
                    .dead
                    .iter()
                    .filter(|(id, d)| d.queue == q && !self.m.live.contains_key(id))
                    .map(|(id, _)| *id)
                    .collect();
                let filter = honker_core::DeadFilter::default().queue(q);
                let n = honker_core::requeue_dead_where(c, &filter).unwrap();
                // In id order, each against the jobs put back before it.
                let mut ids = Vec::new();
                for id in candidates {
                    if !self.m.requeue_conflicts(id, t) {
                        self.m.revive(id, 0);
                        ids.push(id);
                    }
                }
                assert_eq!(n, ids.len(), "requeued by filter");
                for id in ids {
                    let run_at = honker_core::get_job(c, id).unwrap().unwrap().run_at;
                    self.m.live.get_mut(&id).expect("revived").run_at = run_at;
                    self.requeued.insert(id);
                }
            }
            Op::Lock { owner, take } => {
                let name = POOLS[owner];
                let ttl = Duration::from_secs(3600);
                if take {
                    let free = self.m.lock.is_none_or(|h| h == owner);
                    assert_eq!(
                        honker_core::try_lock(c, "l", name, ttl).unwrap(),
                        free,
                        "try_lock"
                    );
                    if free {
                        self.m.lock = Some(owner);
                    }
                } else {
                    let mine = self.m.lock == Some(owner);
                    assert_eq!(honker_core::unlock(c, "l", name).unwrap(), mine, "unlock");
                    if mine {
                        self.m.lock = None;
                    }
                }
                let holder = honker_core::lock_holder(c, "l").unwrap().map(|(o, _)| o);
                assert_eq!(
                    holder.as_deref(),
                    self.m.lock.map(|o| POOLS[o]),
                    "lock holder"
                );
            }
            Op::Register {
                which,
                every,
                queue,
            } => {
                let name = format!("s{which}");
                let interval = U * i64::from(every);
                let mut spec = honker_core::ScheduleSpec::new(
                    &name,
                    QUEUES[queue],
                    &format!("@every {interval}s"),
                    "{}",
                );
                spec.misfire = honker_core::Misfire::All;
                honker_core::register_schedule(c, &spec).unwrap();
                let stored = honker_core::get_schedule(c, &name).unwrap().unwrap();
                match self.m.schedules.get(&name) {
                    // Unchanged: its next boundary stays.
                    Some(&(q, i, next)) if q == queue && i == interval => {
                        assert_eq!(stored.next_fire_at, next, "re-registered unchanged")
                    }
                    _ => {
                        assert_eq!(
                            pos(stored.next_fire_at, t),
                            i64::from(every),
                            "first boundary"
                        );
                        // New or changed: a new schedule from now on.
                        self.m.fired.retain(|(n, _)| *n != name);
                        self.m
                            .schedules
                            .insert(name, (queue, interval, stored.next_fire_at));
                    }
                }
            }
            Op::Fire { late } => {
                let Some(earliest) = self.m.schedules.values().map(|s| s.2).min() else {
                    return;
                };
                let at = earliest + i64::from(late) * U;
                let fired = honker_core::fire_due(c, at).unwrap();
                let mut expect = Vec::new();
                for (name, (queue, interval, next)) in self.m.schedules.iter_mut() {
                    while *next <= at {
                        expect.push((name.clone(), *next, *queue));
                        *next += *interval;
                    }
                }
                let mut got: Vec<(String, i64)> = fired
                    .iter()
                    .map(|f| (f.schedule.clone(), f.boundary))
                    .collect();
                got.sort();
                let mut want: Vec<(String, i64)> =
                    expect.iter().map(|(n, b, _)| (n.clone(), *b)).collect();
                want.sort();
                assert_eq!(got, want, "boundaries fired at {at}");
                for f in &fired {
                    assert!(
                        self.m.fired.insert((f.schedule.clone(), f.boundary)),
                        "boundary fired twice: {f:?}"
                    );
                    let job = honker_core::get_job(c, f.job_id).unwrap().unwrap();
                    let queue = expect.iter().find(|e| e.0 == f.schedule).unwrap().2;
                    self.m.schedule_enqueued(f.job_id, queue, job.run_at);
                }
            }
            Op::RunNow { which } => {
                let name = format!("s{which}");
                let ran = honker_core::run_schedule_now(c, &name).unwrap();
                let Some(&(queue, _, next)) = self.m.schedules.get(&name) else {
                    assert_eq!(ran, None, "run-now of a schedule never registered");
                    return;
                };
                let id = ran.expect("run-now of a registered schedule enqueues");
                let stored = honker_core::get_schedule(c, &name).unwrap().unwrap();
                assert_eq!(stored.next_fire_at, next, "run-now leaves the timetable");
                let job = honker_core::get_job(c, id).unwrap().unwrap();
                assert!(pos(job.run_at, t) <= 0, "run-now is due now");
                self.m.schedule_enqueued(id, queue, job.run_at);
            }
            Op::Purge { pick, all_of } => match all_of {
                Some(queue) => {
                    let q = QUEUES[queue];
                    let before = self.m.dead.len();
                    let gone: Vec<i64> = self
                        .m
                        .dead
                        .iter()
                        .filter(|(_, d)| d.queue == q)
                        .map(|(id, _)| *id)
                        .collect();
                    self.m.purged.extend(gone);
                    self.m.dead.retain(|_, d| d.queue != q);
                    let filter = honker_core::DeadFilter::default().queue(q);
                    let n = honker_core::purge_dead_where(c, &filter).unwrap();
                    assert_eq!(n, before - self.m.dead.len(), "purged by filter");
                }
                None => {
                    if self.m.enqueued.is_empty() {
                        return;
                    }
                    let id = self.m.enqueued[pick % self.m.enqueued.len()];
                    let Some(queue) = self.m.dead.get(&id).map(|d| d.queue.clone()) else {
                        assert!(!honker_core::purge_dead_in(c, "a", id).unwrap());
                        assert!(!honker_core::purge_dead_in(c, "b", id).unwrap());
                        return;
                    };
                    assert!(honker_core::purge_dead_in(c, &queue, id).unwrap());
                    self.m.dead.remove(&id);
                    self.m.purged.insert(id);
                }
            },
            Op::Sweep => {
                let expired: Vec<i64> = self
                    .m
                    .live
                    .iter()
                    .filter(|(_, r)| r.expired(t) && (r.state == State::Pending || r.lapsed(t)))
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(sweep_expired(c, None).unwrap(), expired.len(), "sweep");
                for id in expired {
                    let attempts = self.m.live[&id].attempts;
                    self.m.move_to_dead(id, attempts, "expired");
                }
            }
        }
    }

    fn check(&mut self, op: &Op) {
        let c = &self.c;
        let live = db_live(c);
        let dead = db_dead(c);
        assert_eq!(live, self.m.live, "live rows after {op:?}");
        assert_eq!(dead, self.m.dead, "dead rows after {op:?}");
        // Every enqueued id is in exactly one of live, dead, acked, purged.
        for id in &self.m.enqueued {
            let places = usize::from(live.contains_key(id))
                + usize::from(dead.contains_key(id))
                + usize::from(self.m.acked.contains(id))
                + usize::from(self.m.purged.contains(id));
            assert_eq!(places, 1, "job {id} is in {places} places after {op:?}");
        }
        assert_eq!(
            live.len() + dead.len() + self.m.acked.len() + self.m.purged.len(),
            self.m.enqueued.len()
        );
        // Attempts never decrease, except that a release gives back the
        // attempt of the claim it releases, and a requeue from dead starts
        // them again at 0 (which reuses fencing tokens: see the note on
        // `Model::holds`).
        let seen = live
            .iter()
            .map(|(id, r)| (*id, r.attempts))
            .chain(dead.iter().map(|(id, d)| (*id, d.attempts)));
        for (id, a) in seen {
            if let Some(&before) = self.attempts.get(&id) {
                let floor = if self.requeued.contains(&id) {
                    0
                } else if self.released.contains(&id) {
                    before - 1
                } else {
                    before
                };
                assert!(
                    a >= floor,
                    "attempts of {id} went {before} -> {a} after {op:?}"
                );
            }
            self.attempts.insert(id, a);
        }
        // The read paths agree with the model.
        let t = now(c);
        for q in QUEUES {
            let rows = || self.m.live.values().filter(|r| r.queue == q);
            let s = queue_stats(c, q).unwrap();
            let pending = || rows().filter(|r| r.state == State::Pending);
            let due = pending().filter(|r| r.due(t) && !r.expired(t)).count() as i64;
            let scheduled = pending().filter(|r| !r.due(t) && !r.expired(t)).count() as i64;
            let processing = rows().filter(|r| r.state == State::Processing).count() as i64;
            let dead_n = self.m.dead.values().filter(|d| d.queue == q).count() as i64;
            assert_eq!(
                (s.pending_due, s.scheduled, s.processing, s.dead),
                (due, scheduled, processing, dead_n),
                "queue_stats({q}) after {op:?}"
            );
            let next_due = pending()
                .filter(|r| !r.due(t) && !r.expired(t))
                .map(|r| r.run_at)
                .min();
            assert_eq!(s.next_due_at, next_due, "next_due_at({q}) after {op:?}");
            let all = stats(c).unwrap();
            if let Some(a) = all.iter().find(|a| a.queue == q) {
                // Read a moment apart: an age may have ticked over a second.
                let age = |x: &honker_core::QueueStats| x.oldest_pending_age.unwrap_or(-9);
                assert!((age(a) - age(&s)).abs() <= 1, "ages of {q}: {a:?} {s:?}");
                let same = honker_core::QueueStats {
                    oldest_pending_age: s.oldest_pending_age,
                    ..a.clone()
                };
                assert_eq!(same, s, "stats and queue_stats agree on {q}");
            }
            let due_any = pending().filter(|r| r.due(t)).count() as i64;
            assert_eq!(
                pending_due_count(c, q).unwrap(),
                due_any,
                "pending_due_count({q})"
            );
            assert_eq!(
                has_claimable(c, q).unwrap(),
                rows().any(|r| r.claimable(t)),
                "has_claimable({q}) after {op:?}"
            );
            assert_eq!(
                next_claim_at(c, q).unwrap(),
                self.m.next_claim_at(q, t),
                "next_claim_at({q}) after {op:?}"
            );
            assert_eq!(
                next_expiry_at(c, q).unwrap(),
                self.m.next_expiry_at(q, t),
                "next_expiry_at({q}) after {op:?}"
            );
        }
    }
}

fn cases() -> u32 {
    std::env::var("HONKER_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_database_behaves_like_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut run = Run::new();
        for op in &ops {
            run.step(op);
            run.check(op);
        }
    }
}
