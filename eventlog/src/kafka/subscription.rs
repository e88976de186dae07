//! Reading the log as a member of a Kafka consumer group.
//!
//! Positions belong to the materialiser's checkpoint, not to Kafka: on every
//! assignment each partition starts at [`StartAt`], and Kafka's committed
//! offsets are written only for lag monitoring.
//!
//! Rebalances use the eager protocol (`roundrobin`): a rebalance first
//! revokes every partition of every member, then assigns the new split.
//! librdkafka hands both steps to [`GroupContext::rebalance`], which runs
//! inside our own `poll` (the task that awaits the consumer):
//!
//! - **assign**: the callback asks [`StartAt`] for each partition and assigns
//!   it at that offset, so no record before the checkpoint is fetched; the
//!   next `poll` reports [`Polled::Assigned`].
//! - **revoke**: the callback does *not* give the partitions up. The next
//!   `poll` reports [`Polled::Revoked`], and the partitions are released
//!   (and the group allowed to move on) only at the `poll` after that, or
//!   when the subscription is dropped. So the reader flushes its checkpoint
//!   before any other member can be assigned those partitions, and the new
//!   owner's [`StartAt`] sees that checkpoint: a hand-over neither loses nor
//!   repeats records. librdkafka pauses the partitions while the revocation
//!   waits, and records of a partition no longer owned are dropped.
//!
//! The guarantee has one limit: a member that does not poll for
//! `max.poll.interval.ms` (5 minutes), or that loses its session (45 s
//! without heartbeats), is expelled, and its partitions move without waiting
//! for its flush. The materialiser's deduplication by event id covers that.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{TopicNames, forward_log, unavailable};
use crate::{Delivered, LogError, Polled, StartAt, Stream};

/// An assignment change waiting to be reported by `poll`.
#[derive(Debug)]
enum Change {
    Assigned(Vec<Stream>),
    Revoked(Vec<Stream>),
}

#[derive(Debug, Default)]
struct GroupState {
    /// Changes in the order they happened, not reported yet.
    changes: VecDeque<Change>,
    /// Partitions this member reads, with the next offset it expects.
    owned: HashMap<Stream, i64>,
    /// The group has assigned this member its partitions (perhaps none) and
    /// not revoked them since.
    assigned: bool,
    /// A revocation is waiting for us to call `unassign`.
    release_pending: bool,
    /// The subscription is being dropped: release at once.
    closing: bool,
    /// The rebalance failed in a way the reader must hear about.
    failure: Option<String>,
}

/// Shared by the consumer's librdkafka callbacks and the subscription.
pub(super) struct GroupContext {
    names: TopicNames,
    start: StartAt,
    state: Mutex<GroupState>,
    /// Wakes a waiting `poll` when a change is queued.
    changed: Notify,
}

impl GroupContext {
    fn state(&self) -> MutexGuard<'_, GroupState> {
        // The state stays consistent between statements, so a panic
        // elsewhere while holding the lock leaves nothing half-done.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn streams(&self, tpl: &TopicPartitionList) -> Vec<Stream> {
        let mut streams: Vec<Stream> = tpl
            .elements()
            .iter()
            .filter_map(|e| {
                self.names.topic(e.topic()).map(|topic| Stream {
                    topic,
                    partition: e.partition(),
                })
            })
            .collect();
        streams.sort();
        streams
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let streams = self.streams(tpl);
        let mut positioned = TopicPartitionList::with_capacity(streams.len());
        let mut owned = HashMap::with_capacity(streams.len());
        for &stream in &streams {
            // The checkpoint decides; a negative answer means "from the start".
            let start = (self.start)(stream).max(0);
            owned.insert(stream, start);
            let name = self.names.name(stream.topic);
            if let Err(e) =
                positioned.add_partition_offset(name, stream.partition, Offset::Offset(start))
            {
                self.fail(format!("cannot position {stream} at {start}: {e}"));
                return;
            }
        }
        if let Err(e) = consumer.assign(&positioned) {
            self.fail(format!("cannot take the assigned partitions: {e}"));
            return;
        }
        tracing::info!(
            partitions = streams.len(),
            "kafka group assigned partitions"
        );
        let mut state = self.state();
        state.owned = owned;
        state.assigned = true;
        if !streams.is_empty() {
            state.changes.push_back(Change::Assigned(streams));
        }
        drop(state);
        self.changed.notify_one();
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let streams = self.streams(tpl);
        let mut state = self.state();
        // Eager: nothing stays assigned after a revocation.
        state.owned.clear();
        state.assigned = false;
        if state.closing || streams.is_empty() {
            drop(state);
            release(consumer);
            return;
        }
        tracing::info!(
            partitions = streams.len(),
            "kafka group revoking partitions"
        );
        state.release_pending = true;
        state.changes.push_back(Change::Revoked(streams));
        drop(state);
        self.changed.notify_one();
    }

    fn fail(&self, message: String) {
        tracing::warn!(error = %message, "kafka group rebalance failed");
        self.state().failure = Some(message);
        self.changed.notify_one();
    }
}

/// Gives up every partition, which lets a pending rebalance proceed.
fn release<C: ConsumerContext>(consumer: &impl Consumer<C>) {
    if let Err(e) = consumer.unassign() {
        tracing::warn!(error = %e, "kafka group could not release its partitions");
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        forward_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka consumer error");
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                // librdkafka asks for an unassign to resynchronise; the
                // reader must drop what it owned, like a revocation.
                tracing::warn!(error = ?other, "kafka group rebalance error");
                let mut state = self.state();
                state.assigned = false;
                let mut lost: Vec<Stream> = state.owned.drain().map(|(s, _)| s).collect();
                lost.sort();
                if !lost.is_empty() {
                    state.changes.push_back(Change::Revoked(lost));
                }
                drop(state);
                release(consumer);
                self.changed.notify_one();
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        // Commits only feed lag monitoring; one failing (during a
        // rebalance, say) is expected and harmless.
        if let Err(e) = result {
            tracing::debug!(error = %e, "kafka lag commit failed");
        }
    }
}

/// A member of a consumer group reading the three topics.
pub(super) struct KafkaSubscription {
    consumer: StreamConsumer<GroupContext>,
    /// `poll` reported a revocation: release the partitions on the next one.
    release_due: bool,
    /// A record received after a change that `poll` had to report first.
    carry: Option<Delivered>,
}

impl KafkaSubscription {
    pub(super) fn new(
        config: &super::KafkaConfig,
        names: TopicNames,
        group: &str,
        start: StartAt,
    ) -> Result<Self, LogError> {
        let context = GroupContext {
            names,
            start,
            state: Mutex::default(),
            changed: Notify::new(),
        };
        let consumer: StreamConsumer<GroupContext> = config
            .consumer(group)
            .create_with_context(context)
            .map_err(|e| LogError::Invalid(format!("cannot create the kafka consumer: {e}")))?;
        let ctx = consumer.context().clone();
        let topics: Vec<&str> = crate::Topic::ALL
            .iter()
            .map(|&t| ctx.names.name(t))
            .collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| LogError::Invalid(format!("cannot subscribe: {e}")))?;
        Ok(Self {
            consumer,
            release_due: false,
            carry: None,
        })
    }

    fn context(&self) -> &GroupContext {
        self.consumer.context()
    }

    /// The oldest unreported change, with its consequences for the carried
    /// record and the next release.
    fn next_change(&mut self) -> Option<Polled> {
        let change = self.context().state().changes.pop_front()?;
        Some(match change {
            Change::Assigned(streams) => Polled::Assigned(streams),
            Change::Revoked(streams) => {
                if self
                    .carry
                    .as_ref()
                    .is_some_and(|c| streams.contains(&c.stream))
                {
                    self.carry = None;
                }
                self.release_due = true;
                Polled::Revoked(streams)
            }
        })
    }

    /// The record, if it belongs to a partition we own at or past the
    /// position we expect; anything else is left over from before a change.
    fn accept(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> Option<Delivered> {
        let topic = self.context().names.topic(message.topic())?;
        let stream = Stream {
            topic,
            partition: message.partition(),
        };
        let offset = message.offset();
        let mut state = self.context().state();
        let next = state.owned.get_mut(&stream)?;
        if offset < *next {
            tracing::debug!(%stream, offset, expected = *next, "dropping a record before the start offset");
            return None;
        }
        *next = offset + 1;
        Some(Delivered {
            stream,
            offset,
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
        })
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        let pending = {
            let mut state = self.context().state();
            state.closing = true;
            std::mem::take(&mut state.release_pending)
        };
        if pending {
            release(&self.consumer);
        }
        // Dropping the consumer then leaves the group (librdkafka's close).
    }
}

#[async_trait::async_trait]
impl crate::Subscription for KafkaSubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled, LogError> {
        if self.release_due {
            self.release_due = false;
            let pending = std::mem::take(&mut self.context().state().release_pending);
            if pending {
                release(&self.consumer);
            }
        }
        if let Some(failure) = self.context().state().failure.take() {
            return Err(LogError::Unavailable(failure));
        }
        if let Some(change) = self.next_change() {
            return Ok(change);
        }

        let deadline = Instant::now() + wait;
        let mut records: Vec<Delivered> = self.carry.take().into_iter().collect();
        while records.len() < max.max(1) {
            let received = if records.is_empty() {
                tokio::select! {
                    biased;
                    r = self.consumer.recv() => Some(r),
                    () = self.context().changed.notified() => None,
                    () = tokio::time::sleep_until(deadline) => None,
                }
            } else {
                // Have some: take only what is already here, latency first.
                tokio::time::timeout(Duration::ZERO, self.consumer.recv())
                    .await
                    .ok()
            };
            let changed = !self.context().state().changes.is_empty();
            match received {
                Some(Ok(message)) => {
                    if let Some(record) = self.accept(&message) {
                        if changed {
                            // It came after the change: report that first.
                            self.carry = Some(record);
                        } else {
                            records.push(record);
                        }
                    }
                }
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(unavailable(format!("kafka consumer failed: {e}")));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    // Broker down, topic metadata missing…: librdkafka
                    // retries on its own; records just stop meanwhile.
                    tracing::debug!(error = %e, "kafka consumer error");
                }
                None => {
                    if changed || !records.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                    continue; // a wake-up left over from a change already reported
                }
            }
            if changed {
                break;
            }
        }
        if records.is_empty() {
            if let Some(failure) = self.context().state().failure.take() {
                return Err(LogError::Unavailable(failure));
            }
            if let Some(change) = self.next_change() {
                return Ok(change);
            }
            if !self.context().state().assigned {
                return Ok(Polled::Joining);
            }
        }
        Ok(Polled::Records(records))
    }

    fn commit(&mut self, positions: &[(Stream, i64)]) -> Result<(), LogError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(positions.len());
        for &(stream, next) in positions {
            let name = self.context().names.name(stream.topic);
            tpl.add_partition_offset(name, stream.partition, Offset::Offset(next.max(0)))
                .map_err(|e| LogError::Invalid(format!("cannot commit {stream} at {next}: {e}")))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|e| unavailable(format!("kafka commit failed: {e}")))
    }
}
