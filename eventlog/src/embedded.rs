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

use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use xxhash_rust::xxh3::xxh3_128;

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

/// How the embedded log behaves; defaults suit one fair on one machine.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Batches that may wait for the writer before appends are refused.
    /// 256 batches of 500 events is about a second of a busy fair's writes.
    pub queue_batches: usize,
    /// How long an append waits for room in the queue before giving up.
    pub queue_wait_ms: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            queue_batches: 256,
            queue_wait_ms: 1_000,
        }
    }
}

struct WriteRequest {
    batch: Vec<Append>,
    reply: oneshot::Sender<Result<Vec<Appended>, LogError>>,
}

/// The embedded log. Cheap to share behind an `Arc`.
pub struct EmbeddedLog {
    db: Arc<Database>,
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

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir/events.redb` and starts its writer
    /// thread. Fails when the directory or file cannot be used.
    pub fn open(dir: &Path, config: EmbeddedConfig) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("events.redb");
        let db = Database::create(&path)
            .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
        let db = Arc::new(db);

        // Make sure every table exists, so readers never meet a missing one.
        let mut txn = db.begin_write().map_err(unavailable)?;
        txn.set_quick_repair(true);
        for t in TABLES {
            txn.open_table(t).map_err(unavailable)?;
        }
        txn.open_table(IDS).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;

        let mut ends = [0i64; 3];
        {
            let read = db.begin_read().map_err(unavailable)?;
            for (i, t) in TABLES.into_iter().enumerate() {
                let table = read.open_table(t).map_err(unavailable)?;
                ends[i] = table
                    .last()
                    .map_err(unavailable)?
                    .map_or(0, |(k, _)| k.value() as i64 + 1);
            }
        }
        let (ends_tx, ends_rx) = watch::channel(ends);
        let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
        let writer_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("footfall-log-writer".into())
            .spawn(move || writer_loop(&writer_db, rx, ends, &ends_tx))
            .map_err(|e| unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            db,
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

fn writer_loop(
    db: &Database,
    mut rx: mpsc::Receiver<WriteRequest>,
    mut ends: [i64; 3],
    ends_tx: &watch::Sender<[i64; 3]>,
) {
    // A group is capped so one fsync's worth of latency stays short.
    const MAX_GROUP_RECORDS: usize = 20_000;
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        let mut records = group[0].batch.len();
        while records < MAX_GROUP_RECORDS {
            match rx.try_recv() {
                Ok(req) => {
                    records += req.batch.len();
                    group.push(req);
                }
                Err(_) => break,
            }
        }
        match write_group(db, &ends, &group) {
            Ok((outcomes, new_ends)) => {
                ends = new_ends;
                ends_tx.send_replace(ends);
                for (req, outcome) in group.into_iter().zip(outcomes) {
                    // The requester may have given up (client gone); the
                    // records are durable either way and a retry dedups.
                    let _ = req.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "embedded log commit failed");
                for req in group {
                    let _ = req.reply.send(Err(unavailable(&e)));
                }
            }
        }
    }
}

type GroupOutcome = (Vec<Vec<Appended>>, [i64; 3]);

fn write_group(
    db: &Database,
    ends: &[i64; 3],
    group: &[WriteRequest],
) -> Result<GroupOutcome, redb::Error> {
    let mut next = *ends;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_quick_repair(true);
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut ids = txn.open_table(IDS)?;
        let mut tables = [
            txn.open_table(TABLES[0])?,
            txn.open_table(TABLES[1])?,
            txn.open_table(TABLES[2])?,
        ];
        for req in group {
            let mut out = Vec::with_capacity(req.batch.len());
            for rec in &req.batch {
                if let Some(id) = &rec.dedup_id
                    && ids.insert(xxh3_128(id.as_bytes()), ())?.is_some()
                {
                    out.push(Appended::Duplicate);
                    continue;
                }
                let t = rec.topic.index();
                let offset = next[t];
                tables[t].insert(offset as u64, (rec.key.as_slice(), rec.value.as_slice()))?;
                next[t] += 1;
                out.push(Appended::Stored {
                    partition: 0,
                    offset,
                });
            }
            outcomes.push(out);
        }
    }
    txn.commit()?;
    Ok((outcomes, next))
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
            db: self.db.clone(),
            ends: self.ends.clone(),
            positions,
            announced: false,
        }))
    }

    async fn check(&self) -> Result<(), LogError> {
        match &self.writer {
            Some(writer) if !writer.is_closed() => Ok(()),
            _ => Err(LogError::Closed),
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
}

/// Reads all three topics of the embedded log.
struct EmbeddedSubscription {
    db: Arc<Database>,
    ends: watch::Receiver<[i64; 3]>,
    positions: [i64; 3],
    announced: bool,
}

impl EmbeddedSubscription {
    fn pending(&self) -> bool {
        let ends = *self.ends.borrow();
        (0..3).any(|i| self.positions[i] < ends[i])
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
            // Wake on the next commit, or give up after `wait`.
            self.ends.mark_unchanged();
            let _ = tokio::time::timeout(wait, self.ends.changed()).await;
        }
        let ends = *self.ends.borrow();
        let db = self.db.clone();
        let from = self.positions;
        let records = tokio::task::spawn_blocking(move || read_from(&db, from, ends, max))
            .await
            .map_err(|e| unavailable(format!("reader task failed: {e}")))?
            .map_err(unavailable)?;
        for r in &records {
            self.positions[r.stream.topic.index()] = r.offset + 1;
        }
        Ok(Polled::Records(records))
    }

    fn commit(&mut self, _positions: &[(Stream, i64)]) -> Result<(), LogError> {
        // The embedded log keeps no consumer offsets: the materialiser's
        // checkpoint is the only position, and lag is computed from it.
        Ok(())
    }
}

/// Reads up to `max` records, sharing the budget fairly across topics.
fn read_from(
    db: &Database,
    from: [i64; 3],
    ends: [i64; 3],
    max: usize,
) -> Result<Vec<Delivered>, redb::Error> {
    let read = db.begin_read()?;
    let mut out = Vec::new();
    let per_topic = (max / 3).max(1);
    for topic in Topic::ALL {
        let i = topic.index();
        if from[i] >= ends[i] {
            continue;
        }
        let table = read.open_table(TABLES[i])?;
        let stream = Stream {
            topic,
            partition: 0,
        };
        for entry in table.range(from[i] as u64..ends[i] as u64)?.take(per_topic) {
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
                Polled::Assigned(_) | Polled::Revoked(_) => {}
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
