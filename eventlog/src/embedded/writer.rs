//! The embedded log's one writer thread: group commit, and recovery from a
//! failed commit by opening the file again.

use redb::{Database, Durability};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use xxhash_rust::xxh3::xxh3_128;

use super::{IDS, Shared, TABLES, WriteRequest, open_db, unavailable};
use crate::{Appended, LogError};

/// First wait before opening the file again when an open fails; it doubles
/// up to [`REOPEN_WAIT_MAX`]. A full disk is fixed by a person, so the wait
/// need not be short, only bounded.
const REOPEN_WAIT_FIRST: Duration = Duration::from_millis(100);
const REOPEN_WAIT_MAX: Duration = Duration::from_secs(5);
/// While the log cannot write and nobody appends, how often the writer
/// checks whether the disk takes writes again, so that readiness comes back
/// without waiting for a sender (which a load balancer may hold back while
/// the service is not ready).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// What the probe writes: room for a few batches, not just for one page.
const PROBE_BYTES: usize = 1 << 20;

/// The one thread that writes: group commit, and recovery from a failed one.
pub(super) struct Writer {
    pub(super) path: PathBuf,
    pub(super) cache_bytes: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) rx: mpsc::Receiver<WriteRequest>,
    /// Each topic's next offset, as of the last commit that succeeded.
    pub(super) ends: [i64; 3],
    pub(super) ends_tx: watch::Sender<[i64; 3]>,
}

/// What waiting for the next request gave.
enum Next {
    Request(WriteRequest),
    TimedOut,
    Closed,
}

impl Writer {
    pub(super) fn run(mut self) {
        let mut reopen_wait = REOPEN_WAIT_FIRST;
        loop {
            let current = self.shared.lock().db.clone();
            let db = match current {
                Some(db) => db,
                None => match self.reopen() {
                    Ok(db) => {
                        reopen_wait = REOPEN_WAIT_FIRST;
                        db
                    }
                    Err(fault) => {
                        tracing::warn!(error = %fault, retry_in_ms = reopen_wait.as_millis() as u64, "embedded log cannot be opened again");
                        self.shared.set_fault(Some(fault.clone()));
                        if !self.refuse_for(reopen_wait, &fault) {
                            return;
                        }
                        reopen_wait = (reopen_wait * 2).min(REOPEN_WAIT_MAX);
                        continue;
                    }
                },
            };
            let first = if self.shared.fault().is_some() {
                match self.next_within(PROBE_INTERVAL) {
                    Next::Request(req) => req,
                    Next::TimedOut => {
                        self.probe();
                        continue;
                    }
                    Next::Closed => break,
                }
            } else {
                match self.rx.blocking_recv() {
                    Some(req) => req,
                    None => break,
                }
            };
            let group = self.gather(first);
            self.commit(db, group);
        }
        if let Err(e) = self.close_db() {
            tracing::warn!(error = %e, "closing the embedded log failed; the next open recovers it");
        }
    }

    /// Adds what else waits to `first`, up to a cap so that one fsync's
    /// worth of latency stays short.
    fn gather(&mut self, first: WriteRequest) -> Vec<WriteRequest> {
        const MAX_GROUP_RECORDS: usize = 20_000;
        let mut records = first.batch.len();
        let mut group = vec![first];
        while records < MAX_GROUP_RECORDS {
            match self.rx.try_recv() {
                Ok(req) => {
                    records += req.batch.len();
                    group.push(req);
                }
                Err(_) => break,
            }
        }
        group
    }

    /// Commits one group and answers it. A failed commit leaves `db`
    /// unusable (redb latches I/O errors), so it is closed here and the
    /// next turn of [`Writer::run`] opens the file again.
    fn commit(&mut self, db: Arc<Database>, group: Vec<WriteRequest>) {
        match write_group(&db, &self.ends, &group) {
            Ok((outcomes, new_ends)) => {
                if self.shared.fault().is_some() {
                    tracing::info!("embedded log takes writes again");
                    self.shared.set_fault(None);
                }
                self.ends = new_ends;
                self.ends_tx.send_replace(new_ends);
                for (req, outcome) in group.into_iter().zip(outcomes) {
                    // The requester may have given up (client gone); the
                    // records are durable either way and a retry dedups.
                    let _ = req.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let fault = format!("cannot write {}: {e}", self.path.display());
                tracing::warn!(error = %fault, "embedded log commit failed; re-opening it");
                self.shared.set_fault(Some(fault.clone()));
                for req in group {
                    let _ = req.reply.send(Err(LogError::Unavailable(fault.clone())));
                }
                drop(db);
                // Its error is the one just reported.
                let _ = self.close_db();
            }
        }
    }

    /// Opens the file again after a failure and shares the new database.
    fn reopen(&mut self) -> Result<Arc<Database>, String> {
        let (db, ends) = open_db(&self.path, self.cache_bytes)?;
        // A commit that reported an error may still have reached the disk
        // (the error came after its header was written): the file, not
        // memory, says where each topic ends, so no offset is written twice.
        self.ends = ends;
        self.ends_tx
            .send_if_modified(|e| std::mem::replace(e, ends) != ends);
        let db = Arc::new(db);
        self.shared.lock().db = Some(db.clone());
        tracing::info!("embedded log re-opened");
        Ok(db)
    }

    /// Takes the database out of the shared slot, waits for the readers
    /// that hold it for one read, and closes it, which releases the file.
    fn close_db(&self) -> Result<(), redb::DatabaseError> {
        let Some(mut db) = self.shared.lock().db.take() else {
            return Ok(());
        };
        let db = loop {
            match Arc::try_unwrap(db) {
                Ok(db) => break db,
                // A read in progress; on a failed database it fails fast.
                Err(held) => {
                    db = held;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        db.close()
    }

    /// Waits up to `wait` for a request.
    fn next_within(&mut self, wait: Duration) -> Next {
        let deadline = Instant::now() + wait;
        loop {
            match self.rx.try_recv() {
                Ok(req) => return Next::Request(req),
                Err(mpsc::error::TryRecvError::Disconnected) => return Next::Closed,
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() >= deadline => {
                    return Next::TimedOut;
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// For `wait`, answers every request with `fault` at once rather than
    /// let it wait for a file that cannot be opened. False once the queue
    /// is closed.
    fn refuse_for(&mut self, wait: Duration, fault: &str) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left) {
                Next::Request(req) => {
                    let _ = req.reply.send(Err(unavailable(fault)));
                }
                Next::TimedOut => return true,
                Next::Closed => return false,
            }
        }
    }

    /// Whether the disk takes [`PROBE_BYTES`] now: a file beside the log,
    /// written, synced and removed. The database is not touched, so the
    /// probe cannot fail it again.
    fn probe(&self) {
        let path = self.path.with_extension("probe");
        let written = std::fs::File::create(&path).and_then(|mut file| {
            file.write_all(&vec![0u8; PROBE_BYTES])?;
            file.sync_all()
        });
        let _ = std::fs::remove_file(&path);
        match written {
            Ok(()) => {
                tracing::info!("the embedded log's disk takes writes again");
                self.shared.set_fault(None);
            }
            Err(e) => self
                .shared
                .set_fault(Some(format!("cannot write {}: {e}", path.display()))),
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
