//! The event log: footfall's source of truth. Ingest appends enriched events;
//! the materialiser reads them back by (topic, partition, offset).
//!
//! Two implementations share one contract:
//! - [`embedded::EmbeddedLog`], on local disk for a single machine;
//! - `kafka::KafkaLog`, on Apache Kafka when the fair outgrows one machine.
//!
//! Delivery guarantee: when [`EventLog::append`] returns `Ok`, every record
//! it reports as [`Appended::Stored`] is durable (fsync'd on disk, or
//! acknowledged by all in-sync Kafka replicas). On error, nothing is promised
//! about the batch and the sender retries it with the same event ids, which is
//! safe because readers deduplicate by event id.

pub mod embedded;
mod error;
pub mod kafka;

use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

pub use error::LogError;

/// The streams of the log. Names are those of the Kafka topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Scans,
    Tickets,
    Rejected,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Scans, Topic::Tickets, Topic::Rejected];

    pub fn name(self) -> &'static str {
        match self {
            Self::Scans => "footfall.scans.v1",
            Self::Tickets => "footfall.tickets.v1",
            Self::Rejected => "footfall.rejected.v1",
        }
    }

    /// A short name for metrics, files and log lines.
    pub fn short(self) -> &'static str {
        match self {
            Self::Scans => "scans",
            Self::Tickets => "tickets",
            Self::Rejected => "rejected",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One partition of one topic: the unit of ordering, offsets and checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stream {
    pub topic: Topic,
    pub partition: i32,
}

impl std::str::FromStr for Stream {
    type Err = String;

    /// Parses the [`Display`](fmt::Display) form, `scans-3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a stream (like scans-0)");
        let (short, partition) = s.rsplit_once('-').ok_or_else(bad)?;
        let topic = Topic::ALL
            .into_iter()
            .find(|t| t.short() == short)
            .ok_or_else(bad)?;
        let partition: i32 = partition.parse().map_err(|_| bad())?;
        if partition < 0 {
            return Err(bad());
        }
        Ok(Self { topic, partition })
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic.short(), self.partition)
    }
}

/// A record to append.
#[derive(Clone, Debug)]
pub struct Append {
    pub topic: Topic,
    /// Partitioning key: the pseudonymous badge, so one visitor's events stay
    /// in order on one partition.
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The sender's idempotency key. The embedded log refuses a second record
    /// with the same id exactly; Kafka ingest workers do it best effort.
    pub dedup_id: Option<String>,
}

/// What became of one appended record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    Stored {
        partition: i32,
        offset: i64,
    },
    /// Its `dedup_id` was appended before; nothing was written.
    Duplicate,
}

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub stream: Stream,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Where a reader starts each stream it is given: the offset after its last
/// checkpoint. Called when a stream is assigned, before any record of it is
/// read, so records before the checkpoint are never delivered again.
pub type StartAt = std::sync::Arc<dyn Fn(Stream) -> i64 + Send + Sync>;

/// What a subscription yields.
#[derive(Debug)]
pub enum Polled {
    /// These streams are now this reader's, positioned by the subscription's
    /// [`StartAt`]; records of them follow.
    Assigned(Vec<Stream>),
    /// These streams are leaving this reader: it should checkpoint them now.
    Revoked(Vec<Stream>),
    /// Records in offset order within each stream. None means the streams
    /// this reader holds are read to their end.
    Records(Vec<Delivered>),
    /// The reader holds no assignment yet: its group is forming, or
    /// rebalancing between a revocation and the next assignment. Nothing is
    /// read, and the log is not known to be read to its end.
    Joining,
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends a batch durably, answering one outcome per record in order.
    ///
    /// Fails with [`LogError::Unavailable`] when the log cannot take writes
    /// now (retry later) and [`LogError::Full`] when it pushes back.
    async fn append(&self, batch: Vec<Append>) -> Result<Vec<Appended>, LogError>;

    /// Starts reading every topic as a member of `group`, each stream from
    /// the offset `start` gives for it.
    async fn subscribe(
        &self,
        group: &str,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, LogError>;

    /// Whether the log answers now.
    async fn check(&self) -> Result<(), LogError>;

    /// Number of records in each stream (the next offset), for lag.
    async fn end_offsets(&self) -> Result<Vec<(Stream, i64)>, LogError>;

    /// Drops the rejected records received before `before_ms` (Unix time
    /// in ms): the retention of their raw text has passed. Answers how many
    /// records it dropped or emptied. Kafka's rejected topic expires them
    /// by itself (`retention.ms`, set when footfall creates it), so the
    /// default does nothing. Fails when the log cannot be written now; the
    /// next pass tries again.
    async fn expire_rejected(&self, _before_ms: i64) -> Result<u64, LogError> {
        Ok(0)
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// Waits up to `wait` for at most `max` records or an assignment change.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, LogError>;

    /// Records the position read so far, for lag monitoring only: the
    /// materialiser's checkpoint, not this, decides where reading resumes.
    fn commit(&mut self, positions: &[(Stream, i64)]) -> Result<(), LogError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_reads_back_from_its_name() {
        for topic in Topic::ALL {
            let stream = Stream {
                topic,
                partition: 11,
            };
            assert_eq!(stream.to_string().parse::<Stream>(), Ok(stream));
        }
        for bad in ["scans", "scans-", "scans--1", "visits-0", "scans-x", ""] {
            assert!(bad.parse::<Stream>().is_err(), "{bad}");
        }
    }
}
