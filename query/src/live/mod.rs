//! The live floor: a task that follows the materialiser's snapshots and
//! rebuilds the [`LiveState`] (occupancy, entries, scanners, sessions,
//! alerts), exports it as Prometheus metrics and streams it to the live page
//! over server-sent events (`GET /v1/live`).
//!
//! Invariant: the state is a function of the snapshot, the venue and the
//! clock, so a restart (which rebuilds the snapshot from the checkpoint and
//! the log) rebuilds the same floor; nothing here needs saving.
//!
//! It runs on a thread of its own with a one-threaded runtime, so the
//! queries behind it use at most one core and never delay ingest or SQL.

mod compute;
pub mod routes;
pub mod state;

pub use compute::Owned;
pub use state::LiveState;

use arrow::array::{Array, TimestampMillisecondArray};
use datafusion::prelude::SessionContext;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

use footfall_eventlog::{EventLog, Topic};
use footfall_schemas::Venue;

use crate::config::QueryConfig;
use crate::materialise::Progress;
use crate::metrics::QueryMetrics;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::table_kind::TableKind;

/// Longest the state goes without a refresh when nothing is published: the
/// clock moves (closing time, sessions, silent scanners) even when the log
/// does not.
const IDLE_REFRESH: Duration = Duration::from_secs(5);
/// How often the state is refreshed while the materialiser replays the log
/// after a start, before it first catches up: each refresh would show a
/// moment long past, and takes a core from the replay.
const REPLAY_REFRESH: Duration = Duration::from_secs(5);
/// The replay is over once the materialiser has made queryable a record
/// received this recently, even if no read has found the log empty yet: a
/// steady stream of scans (a busy fair, an instance started while ingest
/// runs) may never leave it empty, and the floor would then lag by
/// [`REPLAY_REFRESH`] for as long as the stream lasts.
const PRESENT: Duration = Duration::from_secs(2);
/// How often the log's end offsets are asked for, for the lag.
const LAG_REFRESH: Duration = Duration::from_secs(1);

/// The handle to the live task: the latest state, for routes and metrics.
pub struct Live {
    state: watch::Receiver<Arc<LiveState>>,
    /// Dropping it stops the task.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// What the live task reads.
pub struct LiveOptions {
    pub venue: Arc<Venue>,
    /// The SQL session (event, dimension tables and views).
    pub ctx: SessionContext,
    pub snapshot: Arc<SharedSnapshot>,
    pub progress: watch::Receiver<Progress>,
    pub log: Arc<dyn EventLog>,
    pub config: QueryConfig,
    pub metrics: QueryMetrics,
}

impl Live {
    /// Starts the live task on its own thread. Fails if the thread cannot
    /// start.
    pub fn start(options: LiveOptions) -> std::io::Result<Self> {
        let (state_tx, state) = watch::channel(Arc::new(LiveState::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("footfall-live".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::error!(error = %e, "the live state cannot start");
                        return;
                    }
                };
                runtime.block_on(Follower::new(options, state_tx).run(stopped));
            })?;
        Ok(Self { state, _stop: stop })
    }

    /// The latest live state.
    pub fn current(&self) -> Arc<LiveState> {
        self.state.borrow().clone()
    }

    /// A receiver that sees every new state.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LiveState>> {
        self.state.clone()
    }
}

/// The task's own state between refreshes.
struct Follower {
    options: LiveOptions,
    out: watch::Sender<Arc<LiveState>>,
    /// Identities of the in-memory batches already seen, for freshness.
    seen_batches: HashSet<usize>,
    /// Newest `received_at` among the batches seen (epoch ms).
    newest_received_ms: Option<i64>,
    lag_events: i64,
    behind_since: Option<Instant>,
    last_lag_check: Option<Instant>,
}

impl Follower {
    fn new(options: LiveOptions, out: watch::Sender<Arc<LiveState>>) -> Self {
        Self {
            options,
            out,
            seen_batches: HashSet::new(),
            newest_received_ms: None,
            lag_events: 0,
            behind_since: None,
            last_lag_check: None,
        }
    }

    async fn run(mut self, mut stopped: tokio::sync::oneshot::Receiver<()>) {
        let interval = Duration::from_millis(self.options.config.live_interval_ms.max(10));
        let mut seen_generation = u64::MAX;
        let mut last_refresh: Option<Instant> = None;
        let mut progress = self.options.progress.clone();
        let mut replaying = true;
        loop {
            let generation = self.options.snapshot.generation();
            if generation != seen_generation {
                seen_generation = generation;
                self.observe_freshness(&self.options.snapshot.get());
            }
            replaying &= !progress.borrow().caught_up
                && !shows_present(self.newest_received_ms, SystemTime::now());
            let every = if replaying {
                interval.max(REPLAY_REFRESH)
            } else {
                interval
            };
            if last_refresh.is_none_or(|t| t.elapsed() >= every) {
                self.refresh().await;
                last_refresh = Some(Instant::now());
            }
            // Wake on the next publish (at once if one came meanwhile), but
            // refresh no more often than `every`. While replaying, look at
            // every publish (it may bring the present) and wake when the
            // replay ends or `every` has passed.
            let wait = last_refresh.map_or(every, |t| every.saturating_sub(t.elapsed()));
            tokio::select! {
                _ = &mut stopped => return,
                _ = self.options.snapshot.changed() => {
                    if !replaying {
                        tokio::select! {
                            _ = &mut stopped => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                _ = progress.wait_for(|p| p.caught_up), if replaying => {}
                _ = tokio::time::sleep(if replaying { wait } else { IDLE_REFRESH.max(interval) }) => {}
            }
        }
    }

    async fn refresh(&mut self) {
        let started = Instant::now();
        let owned = self.owned();
        self.check_lag().await;
        let o = &self.options;
        let wall = chrono::Utc::now();
        match compute::compute(&o.ctx, &o.venue, &owned, wall, self.lag_events).await {
            Ok(state) => {
                o.metrics.update_floor(&state, o.config.stand_metrics);
                let _ = self.out.send(Arc::new(state));
            }
            Err(e) => tracing::warn!(error = %e, "the live state could not be refreshed"),
        }
        o.metrics
            .live_refresh_duration
            .observe(started.elapsed().as_secs_f64());
    }

    /// The partitions the materialiser reads, per table.
    fn owned(&self) -> Owned {
        let progress = self.options.progress.borrow();
        let of = |topic: Topic| -> Vec<i32> {
            progress
                .positions
                .keys()
                .filter(|s| s.topic == topic)
                .map(|s| s.partition)
                .collect()
        };
        Owned {
            scans: of(Topic::Scans),
            tickets: of(Topic::Tickets),
            rejected: of(Topic::Rejected),
        }
    }

    /// Records not yet materialised, and for how long the materialiser has
    /// been behind. Asks the log at most once per [`LAG_REFRESH`].
    async fn check_lag(&mut self) {
        if self
            .last_lag_check
            .is_some_and(|t| t.elapsed() < LAG_REFRESH)
        {
            return;
        }
        self.last_lag_check = Some(Instant::now());
        let ends = match tokio::time::timeout(
            Duration::from_secs(2),
            self.options.log.end_offsets(),
        )
        .await
        {
            Ok(Ok(ends)) => ends,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot read the log's end offsets");
                return;
            }
            Err(_) => return,
        };
        let positions = self.options.progress.borrow().positions.clone();
        let m = &self.options.metrics;
        let mut total = 0;
        for topic in Topic::ALL {
            let lag: i64 = ends
                .iter()
                .filter(|(s, _)| s.topic == topic)
                .filter_map(|(s, end)| positions.get(s).map(|pos| (end - pos).max(0)))
                .sum();
            m.lag_events.with_label_values(&[topic.short()]).set(lag);
            total += lag;
        }
        self.lag_events = total;
        let now = Instant::now();
        let seconds = if total == 0 {
            self.behind_since = None;
            0.0
        } else {
            let since = *self.behind_since.get_or_insert(now);
            // Behind by the age of the newest record read, when known.
            let newest_age = self.newest_received_ms.map(|ms| {
                let now_ms = chrono::Utc::now().timestamp_millis();
                (now_ms - ms).max(0) as f64 / 1000.0
            });
            newest_age.unwrap_or_else(|| now.duration_since(since).as_secs_f64())
        };
        m.lag_seconds.set(seconds);
    }

    /// Observes received → queryable for the rows of each in-memory batch
    /// seen for the first time.
    fn observe_freshness(&mut self, snapshot: &Snapshot) {
        let Some(published) = snapshot.published_at else {
            return;
        };
        let published_ms = published
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut now_seen = HashSet::new();
        for kind in [TableKind::Scans, TableKind::Tickets] {
            let histogram = self
                .options
                .metrics
                .freshness
                .with_label_values(&[kind.name()]);
            for batch in &snapshot.table(kind).batches {
                let Some(first) = batch.columns().first() else {
                    continue;
                };
                // Batches are shared Arcs: the same batch keeps its address
                // from snapshot to snapshot until it is flushed.
                let id = Arc::as_ptr(first) as *const () as usize;
                now_seen.insert(id);
                if self.seen_batches.contains(&id) {
                    continue;
                }
                let Some(received) = batch
                    .column_by_name("received_at")
                    .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
                else {
                    continue;
                };
                for i in 0..received.len() {
                    if received.is_valid(i) {
                        let ms = received.value(i);
                        histogram.observe((published_ms - ms).max(0) as f64 / 1000.0);
                        self.newest_received_ms = self.newest_received_ms.max(Some(ms));
                    }
                }
            }
        }
        self.seen_batches = now_seen;
    }
}

/// Whether the newest record made queryable was received within
/// [`PRESENT`] of `now` (a clock behind `received_at` counts as present).
fn shows_present(newest_received_ms: Option<i64>, now: SystemTime) -> bool {
    let Some(received) = newest_received_ms else {
        return false;
    };
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    now_ms.saturating_sub(received) < PRESENT.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_ends_at_records_received_within_the_present() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
        };
        assert!(!shows_present(None, now), "nothing materialised yet");
        assert!(
            !shows_present(Some(ms(now - Duration::from_secs(3600))), now),
            "an hour-old record is the past"
        );
        assert!(!shows_present(Some(ms(now - PRESENT)), now));
        assert!(shows_present(
            Some(ms(now - Duration::from_millis(300))),
            now
        ));
        assert!(
            shows_present(Some(ms(now + Duration::from_secs(1))), now),
            "ingest's clock a little ahead"
        );
    }
}
