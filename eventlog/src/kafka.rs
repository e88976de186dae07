//! The event log on Apache Kafka, through librdkafka (rust-rdkafka).
//!
//! Topics are `footfall.scans.v1`, `footfall.tickets.v1` and
//! `footfall.rejected.v1` (plus [`KafkaConfig::topic_suffix`]), created by
//! [`KafkaLog::connect`] when missing. Records are keyed by the pseudonymous
//! badge, so one visitor's events keep their order on one partition; the
//! value is the event's JSON and every record carries the header
//! `schema-version: 1`.
//!
//! # Delivery guarantee
//!
//! [`KafkaLog::append`] answers `Ok` only once Kafka has acknowledged every
//! record of the batch with `acks=all` (written by all in-sync replicas), and
//! reports where each landed. The producer is idempotent, so librdkafka's own
//! retries never duplicate nor reorder records within a partition. Anything
//! else is an error and the sender retries the whole batch with the same event
//! ids: a record may then be in the log twice (one copy landed before the
//! failure was noticed, say after a timeout), never zero times once a 2xx was
//! sent. The materialiser deduplicates by event id, exactly, so the tables
//! count each event once: at-least-once in the log, exactly-once in effect.
//!
//! Errors: a full local queue is [`LogError::Full`] at once (push back, never
//! an unbounded buffer); a record not acknowledged within
//! [`KafkaConfig::message_timeout_ms`] (broker down, partition leaderless) is
//! [`LogError::Unavailable`]. Neither needs a restart: the same `KafkaLog`
//! serves the next append when the broker is back (a producer that hits a
//! fatal idempotence error is replaced by a new one).
//!
//! # Best effort
//!
//! Appends skip an event id this process appended successfully in the
//! recent past ([`KafkaConfig::dedup_cache_ids`] ids), answering
//! [`Appended::Duplicate`], which spares the log most retry copies. It is
//! best effort only: other ingest workers, a restart, concurrent retries or
//! an id older than the window append again. The materialiser's
//! deduplication is the one that counts.
//!
//! # Reading
//!
//! [`EventLog::subscribe`] joins a consumer group (eager `roundrobin`
//! assignment, no auto-commit). On every assignment each partition starts
//! at the subscription's [`StartAt`], the materialiser's checkpoint; Kafka's
//! committed offsets only feed lag monitoring. A revocation is reported by
//! `poll` as [`crate::Polled::Revoked`] *before* the partitions are released:
//! they are given up at the next `poll` (or when the subscription is
//! dropped), so the reader's checkpoint is flushed before another member
//! starts them. That holds while members poll at least every
//! `max.poll.interval.ms` (5 minutes) and keep their session (45 s); an
//! expelled member's partitions move without waiting, and the
//! materialiser's deduplication covers the overlap. Details in
//! `kafka/subscription.rs`.

mod config;
mod recent;
mod subscription;

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::xxh3_128;

pub use config::KafkaConfig;
use recent::RecentIds;

use crate::{Append, Appended, EventLog, LogError, StartAt, Stream, Subscription, Topic};

/// Longest a segment of the rejected topic stays open (one day), so that
/// its records are deleted within a day of their retention's end.
const REJECTED_SEGMENT_MS_MAX: u64 = 24 * 3600 * 1000;

/// The header every appended record carries, naming the version of the
/// JSON in its value.
pub const SCHEMA_VERSION_HEADER: &str = "schema-version";
const SCHEMA_VERSION: &str = "1";

/// The Kafka topic names of the three streams.
#[derive(Clone, Debug)]
struct TopicNames([String; 3]);

impl TopicNames {
    fn new(config: &KafkaConfig) -> Self {
        Self(Topic::ALL.map(|t| config.topic_name(t)))
    }

    fn name(&self, topic: Topic) -> &str {
        &self.0[topic.index()]
    }

    fn topic(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|&t| self.name(t) == name)
    }
}

/// Sends librdkafka's own log lines and errors to `tracing`.
struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        forward_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // "All brokers down" and the like: librdkafka keeps retrying.
        tracing::warn!(error = %error, reason, "kafka client error");
    }
}

fn forward_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", fac, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice => tracing::info!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", fac, "{message}")
        }
    }
}

fn unavailable(e: impl fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

/// What a failed produce means for the sender.
fn produce_error(e: &KafkaError) -> LogError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => LogError::Full,
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
            LogError::Invalid(format!("record too large for kafka: {e}"))
        }
        _ => unavailable(format!("kafka did not store the batch: {e}")),
    }
}

/// The event log on a Kafka cluster. Cheap to share behind an `Arc`; all
/// appends share one producer.
pub struct KafkaLog {
    config: KafkaConfig,
    names: TopicNames,
    producer: RwLock<FutureProducer<LogContext>>,
    recent: Mutex<RecentIds>,
}

impl fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaLog")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .field("topics", &self.names.0)
            .finish()
    }
}

fn new_producer(config: &KafkaConfig) -> Result<FutureProducer<LogContext>, LogError> {
    config
        .producer()
        .create_with_context(LogContext)
        .map_err(|e| LogError::Invalid(format!("cannot create the kafka producer: {e}")))
}

impl KafkaLog {
    /// Connects to the cluster, creates the three topics when missing and
    /// waits until each has a leader for every partition.
    ///
    /// Fails with [`LogError::Invalid`] for a bad configuration (including
    /// a replication factor the cluster cannot meet), and with
    /// [`LogError::Unavailable`] when the cluster does not answer within
    /// [`KafkaConfig::message_timeout_ms`].
    pub async fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        config.validate()?;
        let names = TopicNames::new(&config);
        let producer = new_producer(&config)?;
        let log = Self {
            recent: Mutex::new(RecentIds::new(config.dedup_cache_ids)),
            names,
            producer: RwLock::new(producer),
            config,
        };
        let deadline = Instant::now() + Duration::from_millis(log.config.message_timeout_ms);
        log.create_topics(deadline).await?;
        let partitions = log.wait_for_leaders(deadline).await?;
        tracing::info!(
            bootstrap = %log.config.bootstrap_servers,
            scans = partitions[0],
            tickets = partitions[1],
            rejected = partitions[2],
            "kafka log connected"
        );
        Ok(log)
    }

    /// The configuration this log was connected with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The Kafka topic that holds `topic`.
    pub fn topic_name(&self, topic: Topic) -> &str {
        self.names.name(topic)
    }

    fn producer(&self) -> FutureProducer<LogContext> {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn recent(&self) -> MutexGuard<'_, RecentIds> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idempotent producer that raised a fatal error (say, a sequence
    /// gap after a long outage) refuses every later record: replace it.
    fn renew_if_fatal(&self, used: &FutureProducer<LogContext>) {
        let Some((code, reason)) = used.client().fatal_error() else {
            return;
        };
        let mut current = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if current.client().native_ptr() != used.client().native_ptr() {
            return; // another append replaced it already
        }
        tracing::warn!(error = %code, reason, "kafka producer failed fatally, starting a new one");
        match new_producer(&self.config) {
            Ok(fresh) => *current = fresh,
            Err(e) => tracing::warn!(error = %e, "cannot replace the kafka producer"),
        }
    }

    async fn create_topics(&self, deadline: Instant) -> Result<(), LogError> {
        let admin: AdminClient<LogContext> = self
            .config
            .admin()
            .create_with_context(LogContext)
            .map_err(|e| LogError::Invalid(format!("cannot create the kafka admin client: {e}")))?;
        let replication = i32::from(self.config.replication_factor);
        let min_insync = replication.min(2).to_string();
        // Kafka deletes whole segments once their newest record is past
        // `retention.ms`; rolling a segment at least daily bounds how long a
        // rejected record outlives the limit to a day.
        let rejected_retention = self.config.rejected_retention_ms.map(|ms| {
            (
                ms.to_string(),
                ms.clamp(1, REJECTED_SEGMENT_MS_MAX).to_string(),
            )
        });
        let topics: Vec<NewTopic<'_>> = Topic::ALL
            .iter()
            .map(|&t| {
                // `validate` keeps partition counts within i32.
                let partitions = i32::try_from(self.config.partitions(t)).unwrap_or(i32::MAX);
                let topic = NewTopic::new(
                    self.names.name(t),
                    partitions,
                    TopicReplication::Fixed(replication),
                )
                .set("min.insync.replicas", &min_insync);
                match (t, &rejected_retention) {
                    (Topic::Rejected, Some((retention, segment))) => topic
                        .set("retention.ms", retention)
                        .set("segment.ms", segment),
                    _ => topic,
                }
            })
            .collect();
        let budget = deadline.saturating_duration_since(Instant::now());
        let options = AdminOptions::new()
            .request_timeout(Some(budget))
            .operation_timeout(Some(budget));
        let results = tokio::time::timeout(budget, admin.create_topics(&topics, &options))
            .await
            .map_err(|_| unavailable("kafka did not answer the topic creation in time"))?
            .map_err(|e| unavailable(format!("cannot create the kafka topics: {e}")))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "created kafka topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((
                    name,
                    code @ (RDKafkaErrorCode::InvalidReplicationFactor
                    | RDKafkaErrorCode::InvalidPartitions
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::InvalidConfig
                    | RDKafkaErrorCode::PolicyViolation
                    | RDKafkaErrorCode::TopicAuthorizationFailed),
                )) => {
                    return Err(LogError::Invalid(format!(
                        "cannot create kafka topic {name}: {code}"
                    )));
                }
                Err((name, code)) => {
                    return Err(unavailable(format!(
                        "cannot create kafka topic {name}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Polls metadata until every partition of the three topics has a
    /// leader; answers their partition counts.
    async fn wait_for_leaders(&self, deadline: Instant) -> Result<[usize; 3], LogError> {
        loop {
            let producer = self.producer();
            let names = self.names.clone();
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            let outcome = tokio::task::spawn_blocking(move || {
                let mut counts = [0usize; 3];
                for t in Topic::ALL {
                    let md = producer
                        .client()
                        .fetch_metadata(Some(names.name(t)), budget)
                        .map_err(|e| e.to_string())?;
                    let Some(topic) = md.topics().first() else {
                        return Err("no metadata".to_string());
                    };
                    if let Some(e) = topic.error() {
                        return Err(format!("{}: {:?}", names.name(t), e));
                    }
                    let ready = topic
                        .partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0);
                    if topic.partitions().is_empty() || !ready {
                        return Err(format!("{} has partitions without a leader", names.name(t)));
                    }
                    counts[t.index()] = topic.partitions().len();
                }
                Ok(counts)
            })
            .await
            .map_err(|e| unavailable(format!("metadata task failed: {e}")))?;
            match outcome {
                Ok(counts) => return Ok(counts),
                Err(e) if Instant::now() >= deadline => {
                    return Err(unavailable(format!("kafka topics not ready in time: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    /// Sends every new record of the batch at once and waits for all the
    /// acknowledgements. Fails with [`LogError::Full`] when the producer
    /// queue is full, [`LogError::Unavailable`] when a record is not
    /// acknowledged within `message_timeout_ms`, [`LogError::Invalid`] for a
    /// record larger than the broker accepts. After a failure some records
    /// may have landed; the retry is deduplicated downstream.
    async fn append(&self, batch: Vec<Append>) -> Result<Vec<Appended>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Option<u128>> = batch
            .iter()
            .map(|r| r.dedup_id.as_ref().map(|id| xxh3_128(id.as_bytes())))
            .collect();
        let mut outcomes: Vec<Option<Appended>> = vec![None; batch.len()];
        {
            let recent = self.recent();
            let mut in_batch = HashSet::with_capacity(batch.len());
            for (outcome, id) in outcomes.iter_mut().zip(&ids) {
                if let Some(id) = *id
                    && (recent.contains(id) || !in_batch.insert(id))
                {
                    *outcome = Some(Appended::Duplicate);
                }
            }
        }

        let producer = self.producer();
        let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
            key: SCHEMA_VERSION_HEADER,
            value: Some(SCHEMA_VERSION),
        });
        let mut pending = Vec::with_capacity(batch.len());
        for (i, rec) in batch.iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(self.names.name(rec.topic))
                .payload(rec.value.as_slice())
                .headers(headers.clone());
            if !rec.key.is_empty() {
                record = record.key(rec.key.as_slice());
            }
            match producer.send_result(record) {
                Ok(delivery) => pending.push((i, delivery)),
                Err((e, _)) => {
                    // Records already queued still go out; the retry of the
                    // whole batch is deduplicated downstream.
                    self.renew_if_fatal(&producer);
                    return Err(produce_error(&e));
                }
            }
        }

        let mut failure = None;
        let mut acknowledged = Vec::with_capacity(pending.len());
        for (i, delivery) in pending {
            match delivery.await {
                Ok(Ok(d)) => {
                    outcomes[i] = Some(Appended::Stored {
                        partition: d.partition,
                        offset: d.offset,
                    });
                    acknowledged.extend(ids[i]);
                }
                Ok(Err((e, _))) => {
                    failure.get_or_insert_with(|| produce_error(&e));
                }
                Err(_canceled) => {
                    failure.get_or_insert(LogError::Closed);
                }
            }
        }
        if !acknowledged.is_empty() {
            let mut recent = self.recent();
            for id in acknowledged {
                recent.insert(id);
            }
        }
        if let Some(failure) = failure {
            self.renew_if_fatal(&producer);
            return Err(failure);
        }
        outcomes
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                LogError::Invalid("internal: a record of the batch has no outcome".into())
            })
    }

    /// Joins consumer group `group` on the three topics. The consumer is
    /// created at once; joining the group happens in the background and
    /// shows as [`crate::Polled::Assigned`] from `poll`. Fails only with a
    /// configuration librdkafka refuses ([`LogError::Invalid`]).
    async fn subscribe(
        &self,
        group: &str,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, LogError> {
        let sub =
            subscription::KafkaSubscription::new(&self.config, self.names.clone(), group, start)?;
        Ok(Box::new(sub))
    }

    /// A metadata request for the scans topic within `metadata_timeout_ms`.
    async fn check(&self) -> Result<(), LogError> {
        let producer = self.producer();
        if let Some((code, reason)) = producer.client().fatal_error() {
            self.renew_if_fatal(&producer);
            return Err(unavailable(format!(
                "kafka producer failed: {code}: {reason}"
            )));
        }
        let name = self.names.name(Topic::Scans).to_owned();
        let timeout = Duration::from_millis(self.config.metadata_timeout_ms);
        let md = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(Some(&name), timeout)
        })
        .await
        .map_err(|e| unavailable(format!("metadata task failed: {e}")))?
        .map_err(|e| unavailable(format!("kafka does not answer: {e}")))?;
        match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            _ => Err(unavailable(format!(
                "kafka topic {} is not available",
                self.names.name(Topic::Scans)
            ))),
        }
    }

    /// The high watermark of every partition of the three topics, within
    /// `metadata_timeout_ms` in all.
    async fn end_offsets(&self) -> Result<Vec<(Stream, i64)>, LogError> {
        let producer = self.producer();
        let names = self.names.clone();
        let deadline = Instant::now() + Duration::from_millis(self.config.metadata_timeout_ms);
        tokio::task::spawn_blocking(move || {
            let client = producer.client();
            let left = || deadline.saturating_duration_since(Instant::now());
            let mut ends = Vec::new();
            for topic in Topic::ALL {
                let name = names.name(topic);
                let md = client
                    .fetch_metadata(Some(name), left())
                    .map_err(|e| unavailable(format!("kafka does not answer: {e}")))?;
                let partitions = match md.topics().first() {
                    Some(t) if t.error().is_none() => {
                        t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>()
                    }
                    _ => return Err(unavailable(format!("kafka topic {name} is not available"))),
                };
                for partition in partitions {
                    let (_low, high) =
                        client
                            .fetch_watermarks(name, partition, left())
                            .map_err(|e| {
                                unavailable(format!(
                                    "cannot read the end of {name}-{partition}: {e}"
                                ))
                            })?;
                    ends.push((Stream { topic, partition }, high));
                }
            }
            ends.sort();
            Ok(ends)
        })
        .await
        .map_err(|e| unavailable(format!("watermark task failed: {e}")))?
    }
}
