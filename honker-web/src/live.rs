//! What changes while a page is open: commit events for the browser
//! (server-sent events), and a sampler that keeps the throughput of the
//! last minutes and when each running job was first seen running.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use honker_actors::core::RowTotals;
use honker_actors::store::Store;
use honker_actors::Honker;
use tokio::sync::watch;

/// How often the sampler reads the file's totals and running jobs, at most.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The sampler spends at most 1/this of the time reading (a large file
/// samples less often).
const SAMPLE_DUTY: u32 = 50;
/// With no page asked for and no event stream open this long, the
/// sampler stops (the next page starts it again).
const UNWATCHED_STOP: Duration = Duration::from_secs(60);
/// How many minutes of throughput are kept.
pub(crate) const MINUTES: usize = 15;
/// Commits closer together than this make one event.
const COALESCE: Duration = Duration::from_millis(150);
/// With no commit, pages still refresh this often (elapsed times move).
const TICK: Duration = Duration::from_secs(5);
/// How often a read-only dashboard looks for commits.
pub(crate) const WATCH_EVERY: Duration = Duration::from_millis(5);

/// Shared by the dashboard's requests.
#[derive(Clone)]
pub(crate) struct Live {
    commits: watch::Sender<u64>,
    history: Arc<Mutex<History>>,
    /// The sampler runs.
    sampling: Arc<AtomicBool>,
    /// When a page or event stream last asked (milliseconds since `epoch`).
    seen_ms: Arc<AtomicU64>,
    /// Event streams open now.
    streams: Arc<AtomicUsize>,
    epoch: Instant,
    /// Keeps the commit subscription alive.
    _keep: Arc<Mutex<Vec<Box<dyn std::any::Any + Send>>>>,
}

/// Jobs per minute, and first sightings of running jobs.
#[derive(Default)]
pub(crate) struct History {
    /// Minute start (unix s) -> (enqueued, finished).
    pub(crate) minutes: BTreeMap<i64, (i64, i64)>,
    last: Option<RowTotals>,
    /// Unix second the sampler first looked.
    pub(crate) since: Option<i64>,
    /// Job id -> (unix ms first seen running, seen from its start).
    pub(crate) running_since: HashMap<i64, (i64, bool)>,
}

impl History {
    /// Add one sample taken at unix second `now`.
    fn add(&mut self, now: i64, totals: RowTotals, running: &[i64]) {
        let first = self.since.is_none();
        self.since.get_or_insert(now);
        if let Some(last) = self.last {
            let enqueued = totals.issued.saturating_sub(last.issued).max(0);
            let stayed = (totals.live - last.live).saturating_add(totals.dead - last.dead);
            let finished = enqueued.saturating_sub(stayed).max(0);
            let minute = now - now.rem_euclid(60);
            let slot = self.minutes.entry(minute).or_default();
            slot.0 = slot.0.saturating_add(enqueued);
            slot.1 = slot.1.saturating_add(finished);
            while self.minutes.len() > MINUTES {
                self.minutes.pop_first();
            }
        }
        self.last = Some(totals);
        let now_ms = now.saturating_mul(1000);
        self.running_since.retain(|id, _| running.contains(id));
        for id in running {
            self.running_since.entry(*id).or_insert((now_ms, !first));
        }
    }

    /// The last `MINUTES` minutes up to `now`, oldest first, zero-filled.
    pub(crate) fn series(&self, now: i64) -> Vec<(i64, i64, i64)> {
        let this = now - now.rem_euclid(60);
        (0..MINUTES as i64)
            .rev()
            .map(|k| {
                let m = this - 60 * k;
                let (e, f) = self.minutes.get(&m).copied().unwrap_or_default();
                (m, e, f)
            })
            .collect()
    }
}

impl Live {
    pub(crate) fn new() -> Live {
        Live {
            commits: watch::channel(0).0,
            history: Arc::default(),
            sampling: Arc::default(),
            seen_ms: Arc::default(),
            streams: Arc::default(),
            epoch: Instant::now(),
            _keep: Arc::default(),
        }
    }

    fn keep(&self, thing: Box<dyn std::any::Any + Send>) {
        self._keep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thing);
    }

    /// Count `honker`'s commits (its own, and other processes' through its
    /// commit watcher).
    pub(crate) fn follow_commits(&self, honker: &Honker) {
        let tx = self.commits.clone();
        let guard = honker.on_commit(move || tx.send_modify(|v| *v = v.wrapping_add(1)));
        self.keep(Box::new(guard));
    }

    /// Note that someone looks, and start the sampler if it is not
    /// running (on the current runtime).
    pub(crate) fn ensure_sampler(&self, honker: &Honker) {
        self.touch();
        if self.sampling.swap(true, Ordering::AcqRel) {
            return;
        }
        let history = Arc::downgrade(&self.history);
        let honker = honker.clone();
        let me = self.clone_for_sampler();
        tokio::spawn(async move {
            loop {
                let Some(history) = history.upgrade() else {
                    return; // the dashboard is gone
                };
                let started = Instant::now();
                match sample(honker.store()).await {
                    Ok((now, totals, running)) => history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .add(now, totals, &running),
                    Err(e) => tracing::debug!(error = %e, "dashboard sample failed"),
                }
                drop(history);
                let took = started.elapsed();
                tokio::time::sleep(SAMPLE_EVERY.max(took * SAMPLE_DUTY)).await;
                if me.unwatched() {
                    me.sampling.store(false, Ordering::Release);
                    // A page that came in between saw it running: carry on
                    // for it, unless one started anew meanwhile.
                    if me.unwatched() || me.sampling.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
            }
        });
    }

    /// What the sampler needs (not the history: it holds that weakly).
    fn clone_for_sampler(&self) -> Live {
        Live {
            commits: self.commits.clone(),
            history: Arc::default(),
            sampling: self.sampling.clone(),
            seen_ms: self.seen_ms.clone(),
            streams: self.streams.clone(),
            epoch: self.epoch,
            _keep: Arc::default(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.seen_ms.store(ms, Ordering::Relaxed);
    }

    fn unwatched(&self) -> bool {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let idle = ms.saturating_sub(self.seen_ms.load(Ordering::Relaxed));
        self.streams.load(Ordering::Relaxed) == 0
            && idle > u64::try_from(UNWATCHED_STOP.as_millis()).unwrap_or(u64::MAX)
    }

    /// Read the history.
    pub(crate) fn history<T>(&self, f: impl FnOnce(&History) -> T) -> T {
        f(&self.history.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The totals and the running jobs' ids (up to 5,000).
async fn sample(store: &dyn Store) -> honker_actors::Result<(i64, RowTotals, Vec<i64>)> {
    let now = store.now().await?;
    let totals = store.row_totals().await?;
    let running = store.running_ids(5_000).await?;
    Ok((now, totals, running))
}

/// Counts an open event stream while it lives.
struct Streaming(Arc<AtomicUsize>);

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET /events`: a `change` event after commits (coalesced), a `tick`
/// every few seconds otherwise.
pub(crate) async fn events(
    State(state): State<Arc<crate::State>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    state.live.ensure_sampler(&state.honker);
    let rx = state.live.commits.subscribe();
    state.live.streams.fetch_add(1, Ordering::Relaxed);
    let open = Streaming(state.live.streams.clone());
    let stream = futures::stream::unfold((rx, open), |(mut rx, open)| async move {
        let name = tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return None;
                }
                tokio::time::sleep(COALESCE).await;
                rx.borrow_and_update();
                "change"
            }
            () = tokio::time::sleep(TICK) => "tick",
        };
        let n = *rx.borrow();
        Some((
            Ok(Event::default().event(name).data(n.to_string())),
            (rx, open),
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The throughput chart: enqueued and finished jobs per minute, as SVG.
pub(crate) fn chart(series: &[(i64, i64, i64)]) -> String {
    const W: i64 = 720;
    const H: i64 = 120;
    let n = i64::try_from(series.len()).unwrap_or(1).max(1);
    let top = series
        .iter()
        .map(|s| s.1.max(s.2))
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = W / n;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {W} {}\" width=\"100%\" style=\"display:block\" role=img aria-label=\"jobs per minute\">",
        H + 18
    );
    for (i, (minute, enq, fin)) in series.iter().enumerate() {
        let x = i64::try_from(i).unwrap_or(0) * bar;
        let h = |v: i64| (v.saturating_mul(H) / top).clamp(0, H);
        let label = crate::html::time(*minute);
        svg.push_str(&format!(
            "<g><title>{label}: {enq} enqueued, {fin} finished</title>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#c9d6f5\"/>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#2f5fd0\"/></g>",
            x + 2,
            H - h(*enq),
            bar / 2 - 2,
            h(*enq),
            x + bar / 2,
            H - h(*fin),
            bar / 2 - 2,
            h(*fin),
        ));
    }
    svg.push_str(&format!(
        "<text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#6b7385\">{} min ago</text>\
         <text x=\"{W}\" y=\"{}\" font-size=\"11\" fill=\"#6b7385\" text-anchor=\"end\">now · peak {top}/min</text></svg>",
        H + 14,
        n,
        H + 14
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(live: i64, dead: i64, issued: i64) -> RowTotals {
        RowTotals { live, dead, issued }
    }

    #[test]
    fn throughput_is_enqueued_minus_what_stayed() {
        let mut h = History::default();
        h.add(600, t(10, 0, 10), &[1]);
        // 5 more enqueued; 8 of the 15 finished, 1 died.
        h.add(601, t(6, 1, 15), &[1, 2]);
        assert_eq!(h.minutes.get(&600), Some(&(5, 8)));
        let s = h.series(601);
        assert_eq!(s.len(), MINUTES);
        assert_eq!(s.last(), Some(&(600, 5, 8)));
        // Seen at the first sample: not from its start. Seen later: from it.
        assert!(!h.running_since[&1].1);
        assert!(h.running_since[&2].1);
        h.add(602, t(6, 1, 15), &[2]);
        assert!(
            !h.running_since.contains_key(&1),
            "finished jobs are forgotten"
        );
        // A purge counts as rows leaving the file.
        h.add(603, t(6, 0, 15), &[]);
        assert_eq!(h.minutes.get(&600), Some(&(5, 9)));
    }

    #[test]
    fn the_chart_scales_to_its_peak() {
        let svg = chart(&[(0, 0, 0), (60, 10, 5)]);
        assert!(svg.contains("10 enqueued, 5 finished"));
        assert!(svg.contains("peak 10/min"));
        // It fills its card, however wide (no fixed pixel width).
        assert!(
            svg.contains("width=\"100%\"") && !svg.contains("max-width"),
            "{svg}"
        );
    }
}
