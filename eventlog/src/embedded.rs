//! The embedded event log: one [redb] database file under the data dir.
//!
//! Why redb: a well-kept, pure-Rust, ACID key-value store with copy-on-write
//! B-trees. A commit with `Durability::Immediate` is fsync'd before it
//! returns and a crash leaves the last committed state, which is exactly the
//! guarantee the log promises; it needs no C++ toolchain (unlike RocksDB) and
//! one file is easy to back up.
//!
//! Layout: a table per topic (offset → (key, value)) and a table of the
//! hashes of every appended event id (xxh3-128, so the table stays small:
//! the chance of two of 50 million ids colliding is about 10⁻²³). Each topic
//! has one partition.
//!
//! Writes go through one thread that gathers all waiting batches into one
//! transaction (group commit): one fsync serves many concurrent requests. Its
//! queue is bounded; a full queue answers [`LogError::Full`].
//!
//! A commit that fails (a full or failing disk) answers its group
//! [`LogError::Unavailable`] and nothing of it is kept: records and their ids
//! are in one transaction, so a retry with the same ids is stored once. redb
//! cannot be used after an I/O error, so the writer then closes the database
//! and opens the file again (quick repair) before the next group, retrying
//! with backoff while it cannot; [`EventLog::check`] fails until the disk
//! takes writes again. No restart is needed.

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    Append, Appended, Delivered, EventLog, LogError, Polled, StartAt, Stream, Subscription, Topic,
};

type RecordTable = TableDefinition<'static, u64, (&'static [u8], &'static [u8])>;

const TABLES: [RecordTable; 3] = [
    TableDefinition::new("footfall.scans.v1"),
    TableDefinition::new("footfall.tickets.v1"),
    TableDefinition::new("footfall.rejected.v1"),
];
const IDS: TableDefinition<u128, ()> = TableDefinition::new("event_ids");

mod retention;
mod writer;

use writer::Writer;

/// How the embedded log behaves; defaults suit one fair on one machine.
/// The `[embedded]` section of the settings file.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Batches that may wait for the writer before appends are refused.
    /// 256 batches of 500 events is about a second of a busy fair's writes.
    pub queue_batches: usize,
    /// How long an append waits for room in the queue before giving up.
    pub queue_wait_ms: u64,
    /// redb's page cache in MiB. It holds the pages written as well as
    /// those read, so with redb's own default (1 GiB) the process grew with
    /// the log by up to that much, on top of the operating system's cache
    /// of the same file.
    pub cache_mib: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            queue_batches: 256,
            queue_wait_ms: 1_000,
            cache_mib: 64,
        }
    }
}

struct WriteRequest {
    batch: Vec<Append>,
    reply: oneshot::Sender<Result<Vec<Appended>, LogError>>,
}

/// The open database and whether it takes writes, shared by the writer and
/// every reader.
///
/// redb latches an I/O error: every later operation on that `Database`
/// fails with "previous I/O error, close and re-open", and it refuses to
/// open a file this process still holds. So nobody keeps the `Database`
/// beyond one read: readers fetch it here per read, and the writer, after a
/// failed commit, takes it out, waits for the readers to let go, closes it
/// and opens the file again.
#[derive(Default)]
struct Shared {
    state: Mutex<SharedState>,
}

#[derive(Default)]
struct SharedState {
    /// `None` while the writer re-opens the file, and once the log closed.
    db: Option<Arc<Database>>,
    /// Why the log cannot write, since the last failed commit or open, until
    /// a commit or a probe succeeds.
    fault: Option<String>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedState> {
        // Nothing panics while holding the lock, and the state stays
        // consistent even if something did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The database to read, or why there is none now.
    fn db(&self) -> Result<Arc<Database>, LogError> {
        let state = self.lock();
        match (&state.db, &state.fault) {
            (Some(db), _) => Ok(db.clone()),
            (None, Some(fault)) => Err(LogError::Unavailable(fault.clone())),
            (None, None) => Err(LogError::Closed),
        }
    }

    fn fault(&self) -> Option<String> {
        self.lock().fault.clone()
    }

    fn set_fault(&self, fault: Option<String>) {
        self.lock().fault = fault;
    }
}

/// The embedded log. Cheap to share behind an `Arc`.
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    /// Taken on drop so the writer thread ends; then it is joined, so the
    /// database file is closed when the log is gone.
    writer: Option<mpsc::Sender<WriteRequest>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    ends: watch::Receiver<[i64; 3]>,
    queue_wait: Duration,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("ends", &*self.ends.borrow())
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

/// Opens (or creates) the database at `path` and reads each topic's end.
/// Fails, saying why, when the file cannot be opened or written.
fn open_db(path: &Path, cache_bytes: usize) -> Result<(Database, [i64; 3]), String> {
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(redb::Error::from)
        .and_then(|db| {
            let ends = prepare(&db)?;
            Ok((db, ends))
        })
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Makes sure every table exists, so readers never meet a missing one, and
/// returns each topic's next offset.
fn prepare(db: &Database) -> Result<[i64; 3], redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    for t in TABLES {
        txn.open_table(t)?;
    }
    txn.open_table(IDS)?;
    txn.commit()?;

    let mut ends = [0i64; 3];
    let read = db.begin_read()?;
    for (i, t) in TABLES.into_iter().enumerate() {
        let table = read.open_table(t)?;
        ends[i] = table.last()?.map_or(0, |(k, _)| k.value() as i64 + 1);
    }
    Ok(ends)
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir/events.redb` and starts its writer
    /// thread. Fails when the directory or file cannot be used.
    pub fn open(dir: &Path, config: EmbeddedConfig) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("events.redb");
        let cache_bytes = config.cache_mib << 20;
        let (db, ends) = open_db(&path, cache_bytes).map_err(LogError::Unavailable)?;
        let shared = Arc::new(Shared::default());
        shared.lock().db = Some(Arc::new(db));
        let (ends_tx, ends_rx) = watch::channel(ends);
        let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
        let writer = Writer {
            path,
            cache_bytes,
            shared: shared.clone(),
            rx,
            ends,
            ends_tx,
        };
        let thread = std::thread::Builder::new()
            .name("footfall-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            shared,
            writer: Some(tx),
            writer_thread: Some(thread),
            ends: ends_rx,
            queue_wait: Duration::from_millis(config.queue_wait_ms),
        })
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        // Closing the queue ends the writer after the batches already queued.
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, batch: Vec<Append>) -> Result<Vec<Appended>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let writer = self.writer.as_ref().ok_or(LogError::Closed)?;
        match writer
            .send_timeout(WriteRequest { batch, reply }, self.queue_wait)
            .await
        {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(LogError::Full),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(LogError::Closed),
        }
        answer.await.map_err(|_| LogError::Closed)?
    }

    async fn subscribe(
        &self,
        _group: &str,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, LogError> {
        // One reader gets every stream: there is one partition per topic.
        let positions = Topic::ALL.map(|topic| {
            start(Stream {
                topic,
                partition: 0,
            })
            .max(0)
        });
        Ok(Box::new(EmbeddedSubscription {
            shared: self.shared.clone(),
            ends: self.ends.clone(),
            positions,
            announced: false,
            behind: false,
            ahead: None,
        }))
    }

    /// Fails with [`LogError::Unavailable`] from a failed commit until a
    /// commit or the writer's probe of the disk succeeds, so that `/readyz`
    /// says the log cannot write while it cannot.
    async fn check(&self) -> Result<(), LogError> {
        match &self.writer {
            Some(writer) if !writer.is_closed() => {}
            _ => return Err(LogError::Closed),
        }
        match self.shared.fault() {
            Some(fault) => Err(LogError::Unavailable(fault)),
            None => Ok(()),
        }
    }

    async fn end_offsets(&self) -> Result<Vec<(Stream, i64)>, LogError> {
        let ends = *self.ends.borrow();
        Ok(Topic::ALL
            .into_iter()
            .map(|topic| {
                (
                    Stream {
                        topic,
                        partition: 0,
                    },
                    ends[topic.index()],
                )
            })
            .collect())
    }

    async fn expire_rejected(&self, before_ms: i64) -> Result<u64, LogError> {
        let db = self.shared.db()?;
        tokio::task::spawn_blocking(move || retention::expire_rejected(&db, before_ms))
            .await
            .map_err(|e| unavailable(format!("retention task failed: {e}")))?
            .map_err(unavailable)
    }
}

/// Reads all three topics of the embedded log.
struct EmbeddedSubscription {
    /// Where the database is fetched for each read, never kept: the writer
    /// may have to close and re-open it.
    shared: Arc<Shared>,
    ends: watch::Receiver<[i64; 3]>,
    positions: [i64; 3],
    announced: bool,
    /// A read filled its budget since the last empty poll: the reader is
    /// catching up (a replay). The poll that then finds nothing left says
    /// so at once instead of waiting, so the reader knows the replay is
    /// complete without a pause; in steady state empty polls still wait.
    behind: bool,
    /// While catching up, the next read, started when the last one
    /// returned, so that reading the log overlaps the reader's work on what
    /// it was given (a replay's two halves on two cores).
    ahead: Option<ReadAhead>,
}

/// A read started before it was asked for.
struct ReadAhead {
    from: [i64; 3],
    max: usize,
    read: tokio::task::JoinHandle<Result<Vec<Delivered>, redb::Error>>,
}

impl EmbeddedSubscription {
    fn pending(&self) -> bool {
        let ends = *self.ends.borrow();
        (0..3).any(|i| self.positions[i] < ends[i])
    }

    /// Starts reading up to `max` records from the current positions.
    fn start_read(&self, max: usize) -> Result<ReadAhead, LogError> {
        let ends = *self.ends.borrow();
        let db = self.shared.db()?;
        let from = self.positions;
        Ok(ReadAhead {
            from,
            max,
            read: tokio::task::spawn_blocking(move || read_from(&db, from, ends, max)),
        })
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, LogError> {
        if !self.announced {
            self.announced = true;
            return Ok(Polled::Assigned(
                Topic::ALL
                    .into_iter()
                    .map(|topic| Stream {
                        topic,
                        partition: 0,
                    })
                    .collect(),
            ));
        }
        if !self.pending() {
            if std::mem::take(&mut self.behind) {
                return Ok(Polled::Records(Vec::new()));
            }
            // Wake on the next commit, or give up after `wait`.
            self.ends.mark_unchanged();
            let _ = tokio::time::timeout(wait, self.ends.changed()).await;
        }
        let read = match self.ahead.take() {
            Some(ahead) if ahead.from == self.positions && ahead.max == max => ahead,
            _ => self.start_read(max)?,
        };
        let records = read
            .read
            .await
            .map_err(|e| unavailable(format!("reader task failed: {e}")))?
            .map_err(unavailable)?;
        for r in &records {
            self.positions[r.stream.topic.index()] = r.offset + 1;
        }
        let full = records.len() >= max.max(1);
        self.behind |= full;
        if full && self.pending() {
            // Should the log be unavailable now, the next poll says so.
            self.ahead = self.start_read(max).ok();
        }
        Ok(Polled::Records(records))
    }

    fn commit(&mut self, _positions: &[(Stream, i64)]) -> Result<(), LogError> {
        // The embedded log keeps no consumer offsets: the materialiser's
        // checkpoint is the only position, and lag is computed from it.
        Ok(())
    }
}

/// Reads up to `max` records, sharing the budget fairly across topics: a
/// topic with less left than its share leaves the rest to the others, so a
/// replay reads full batches even though scans are nearly all records.
fn read_from(
    db: &Database,
    from: [i64; 3],
    ends: [i64; 3],
    max: usize,
) -> Result<Vec<Delivered>, redb::Error> {
    let read = db.begin_read()?;
    let left = |topic: &Topic| (ends[topic.index()] - from[topic.index()]).max(0) as usize;
    let mut budget = max.max(1).min(Topic::ALL.iter().map(left).sum());
    let mut out = Vec::with_capacity(budget);
    let mut topics = Topic::ALL;
    topics.sort_by_key(left);
    for (n, topic) in topics.into_iter().enumerate() {
        let i = topic.index();
        let take = left(&topic).min(budget.div_ceil(topics.len() - n));
        if take == 0 {
            continue;
        }
        budget -= take;
        let table = read.open_table(TABLES[i])?;
        let stream = Stream {
            topic,
            partition: 0,
        };
        for entry in table.range(from[i] as u64..from[i] as u64 + take as u64)? {
            let (k, v) = entry?;
            let (key, value) = v.value();
            out.push(Delivered {
                stream,
                offset: k.value() as i64,
                key: key.to_vec(),
                value: value.to_vec(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn rec(topic: Topic, id: Option<&str>, value: &str) -> Append {
        Append {
            topic,
            key: b"k".to_vec(),
            value: value.as_bytes().to_vec(),
            dedup_id: id.map(str::to_owned),
        }
    }

    async fn drain(sub: &mut Box<dyn Subscription>) -> Vec<Delivered> {
        let mut all = Vec::new();
        loop {
            match sub.poll(1000, Duration::from_millis(50)).await.unwrap() {
                Polled::Records(r) if r.is_empty() => return all,
                Polled::Records(r) => all.extend(r),
                Polled::Assigned(_) | Polled::Revoked(_) | Polled::Joining => {}
            }
        }
    }

    #[tokio::test]
    async fn appends_dedup_and_replays_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
            let out = log
                .append(vec![
                    rec(Topic::Scans, Some("a"), "1"),
                    rec(Topic::Scans, Some("a"), "1 again"),
                    rec(Topic::Tickets, Some("t"), "2"),
                    rec(Topic::Rejected, None, "bad"),
                    rec(Topic::Rejected, None, "bad"),
                ])
                .await
                .unwrap();
            assert_eq!(
                out,
                vec![
                    Appended::Stored {
                        partition: 0,
                        offset: 0
                    },
                    Appended::Duplicate,
                    Appended::Stored {
                        partition: 0,
                        offset: 0
                    },
                    Appended::Stored {
                        partition: 0,
                        offset: 0
                    },
                    Appended::Stored {
                        partition: 0,
                        offset: 1
                    },
                ]
            );
        }
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        let out = log
            .append(vec![
                rec(Topic::Scans, Some("a"), "x"),
                rec(Topic::Scans, Some("b"), "3"),
            ])
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![
                Appended::Duplicate,
                Appended::Stored {
                    partition: 0,
                    offset: 1
                }
            ]
        );

        let mut sub = log.subscribe("g", Arc::new(|_| 0)).await.unwrap();
        let all = drain(&mut sub).await;
        let scans: Vec<_> = all
            .iter()
            .filter(|d| d.stream.topic == Topic::Scans)
            .map(|d| d.value.clone())
            .collect();
        assert_eq!(scans, vec![b"1".to_vec(), b"3".to_vec()]);
        assert_eq!(all.len(), 5);

        let start: StartAt = Arc::new(|s: Stream| match s.topic {
            Topic::Scans | Topic::Tickets => 1,
            Topic::Rejected => 2,
        });
        let mut sub = log.subscribe("g", start).await.unwrap();
        let again = drain(&mut sub).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].offset, 1);
    }

    /// A replay reads ahead while its reader works: every record comes once,
    /// in order, across full polls, appends made between polls, and a reader
    /// that changes its batch size mid-replay.
    #[tokio::test]
    async fn a_replay_reading_ahead_delivers_each_record_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        let batch = |from: usize, n: usize| {
            (from..from + n)
                .map(|i| rec(Topic::Scans, Some(&format!("e{i}")), &i.to_string()))
                .collect::<Vec<_>>()
        };
        log.append(batch(0, 2500)).await.unwrap();
        let mut sub = log.subscribe("g", Arc::new(|_| 0)).await.unwrap();
        let mut values = Vec::new();
        let mut polls = 0;
        loop {
            // Smaller batches after the third poll: a read started ahead
            // with the old size is not what the reader asked for.
            let max = if polls < 3 { 300 } else { 170 };
            match sub.poll(max, Duration::from_millis(50)).await.unwrap() {
                Polled::Records(r) if r.is_empty() => break,
                Polled::Records(r) => {
                    assert!(r.len() <= max);
                    values.extend(r.into_iter().map(|d| d.value));
                    polls += 1;
                    if polls == 2 {
                        // Appended after a read-ahead started: read later.
                        log.append(batch(2500, 400)).await.unwrap();
                    }
                }
                Polled::Assigned(_) | Polled::Revoked(_) | Polled::Joining => {}
            }
        }
        let expected: Vec<Vec<u8>> = (0..2900).map(|i| i.to_string().into_bytes()).collect();
        assert_eq!(values, expected);
    }

    /// A real full disk: a small tmpfs, filled. The refused batch is kept
    /// nowhere, `check` fails, readers never panic; once space is freed the
    /// same log becomes ready by itself and takes the same batch once.
    #[tokio::test]
    async fn a_full_disk_refuses_batches_then_recovers_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let disk = footfall_testkit::tmpfs::Tmpfs::mount(&dir.path().join("disk"), 8);
        let log_dir = disk.path().join("log");
        let log = EmbeddedLog::open(&log_dir, EmbeddedConfig::default()).unwrap();
        let mut sub = log.subscribe("g", Arc::new(|_| 0)).await.unwrap();
        log.append(vec![rec(Topic::Scans, Some("before"), "0")])
            .await
            .unwrap();

        let mut read = Vec::new();
        disk.fill("ballast");
        // 1 MiB of new records, where less than a page is left.
        let big = "x".repeat(16 << 10);
        let batch = || -> Vec<Append> {
            (0..64)
                .map(|i| rec(Topic::Scans, Some(&format!("full-{i}")), &big))
                .collect()
        };
        for attempt in 0..3 {
            match log.append(batch()).await {
                Err(LogError::Unavailable(why)) => {
                    assert!(why.contains("No space left on device"), "{why}")
                }
                other => panic!("attempt {attempt} on a full disk: {other:?}"),
            }
            assert!(matches!(log.check().await, Err(LogError::Unavailable(_))));
            match sub.poll(1000, Duration::ZERO).await {
                Ok(Polled::Records(r)) => read.extend(r),
                Ok(_) | Err(LogError::Unavailable(_)) => {}
                Err(e) => panic!("a reader during the outage: {e}"),
            }
        }
        assert_eq!(log.end_offsets().await.unwrap()[0].1, 1);

        // The disk has room again: readiness comes back without an append.
        std::fs::remove_file(disk.path().join("ballast")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(e) = log.check().await {
            assert!(Instant::now() < deadline, "still not ready: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stored = log.append(batch()).await.unwrap();
        let offsets: Vec<i64> = stored
            .iter()
            .map(|a| match a {
                Appended::Stored { offset, .. } => *offset,
                Appended::Duplicate => panic!("the refused batch left an id behind"),
            })
            .collect();
        assert_eq!(offsets, (1..65).collect::<Vec<_>>());
        assert_eq!(
            log.append(batch()).await.unwrap(),
            vec![Appended::Duplicate; 64]
        );
        read.extend(drain(&mut sub).await);
        let offsets: Vec<i64> = read.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, (0..65).collect::<Vec<_>>(), "each record once");
        drop(sub);
        drop(log);

        let log = EmbeddedLog::open(&log_dir, EmbeddedConfig::default()).unwrap();
        assert_eq!(log.end_offsets().await.unwrap()[0].1, 65);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap());
        let mut sub = log.subscribe("g", Arc::new(|_| 0)).await.unwrap();
        assert!(matches!(
            sub.poll(10, Duration::ZERO).await.unwrap(),
            Polled::Assigned(_)
        ));
        let writer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer
                .append(vec![rec(Topic::Scans, Some("z"), "v")])
                .await
                .unwrap();
        });
        match sub.poll(10, Duration::from_secs(10)).await.unwrap() {
            Polled::Records(r) => assert_eq!(r.len(), 1),
            other => panic!("expected records, got {other:?}"),
        }
    }
}
