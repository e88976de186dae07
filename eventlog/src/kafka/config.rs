//! Configuration of the Kafka log, and the librdkafka settings derived from
//! it. The settings that carry the delivery guarantee (idempotence, `acks`,
//! manual commits) are fixed here, not configurable: a config file must not
//! be able to weaken what a 2xx promises.

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::{LogError, Topic};

/// How footfall uses a Kafka cluster. Only `bootstrap_servers` is required;
/// every other field has a default that suits one fair on a small cluster.
///
/// ```toml
/// bootstrap_servers = "kafka-1:9092,kafka-2:9092"
/// replication_factor = 3
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Brokers to bootstrap from, `host:port`, comma-separated.
    pub bootstrap_servers: String,
    /// Appended to the three topic names (`footfall.scans.v1{suffix}`), so
    /// several fairs, or tests, can share a cluster. Empty by default. Only
    /// `[A-Za-z0-9._-]`, as Kafka topic names allow.
    #[serde(default)]
    pub topic_suffix: String,
    /// Partitions of the scans topic when footfall creates it (an existing
    /// topic is used as it is). Default 6: the most materialisers that can
    /// share the work, and 6 splits evenly over 1, 2, 3 or 6 of them.
    #[serde(default = "default_partitions")]
    pub scans_partitions: u32,
    /// Partitions of the tickets topic when created. Default 6, like scans:
    /// both are keyed by badge, so equal counts keep one visitor's scans and
    /// tickets on the same partition number (co-partitioned).
    #[serde(default = "default_partitions")]
    pub tickets_partitions: u32,
    /// Partitions of the rejected topic when created. Default 1: rejections
    /// are few, often have no usable badge to key on, nothing joins them
    /// with other topics, and one partition keeps them in arrival order for
    /// whoever is debugging a vendor's feed.
    #[serde(default = "default_rejected_partitions")]
    pub rejected_partitions: u32,
    /// Replication factor of created topics. Default 1 (a single local
    /// broker); use 3 on a real cluster. Created topics get
    /// `min.insync.replicas` = min(2, this), so `acks=all` means at least two
    /// copies whenever there can be two.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: u16,
    /// How long the producer waits to fill a batch (`linger.ms`). Default
    /// 5 ms: concurrent HTTP requests share produce requests, at a cost far
    /// below the one-second freshness budget.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Largest produce batch per partition (`batch.size`). Default 1 MB
    /// (librdkafka's), a few thousand events.
    #[serde(default = "default_batch_size_bytes")]
    pub batch_size_bytes: u64,
    /// How long a record may wait for its acknowledgement, retries
    /// included (`message.timeout.ms`). Past it `append` fails with
    /// [`LogError::Unavailable`] and the sender retries. Default 10 s: below
    /// usual HTTP client timeouts, so a broker outage becomes a 503, not a
    /// hung request. It also bounds `connect` (creating the topics and
    /// waiting for their leaders). Must be at least 1 (librdkafka's 0 means
    /// "forever").
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// Records the producer may hold unacknowledged
    /// (`queue.buffering.max.messages`). Past it `append` answers
    /// [`LogError::Full`] instead of buffering more. Default 100 000, a few
    /// seconds of a busy fair's peak.
    #[serde(default = "default_queue_max_messages")]
    pub queue_max_messages: u64,
    /// Bytes the producer may hold unacknowledged
    /// (`queue.buffering.max.kbytes`, rounded up to KiB). Default 64 MiB,
    /// instead of librdkafka's 1 GiB.
    #[serde(default = "default_queue_max_bytes")]
    pub queue_max_bytes: u64,
    /// Event ids remembered per process for best-effort deduplication of
    /// retries (0 turns it off). Default 100 000, about 4 MB: the retries
    /// of a busy fair's last several minutes.
    #[serde(default = "default_dedup_cache_ids")]
    pub dedup_cache_ids: usize,
    /// Budget of `check` and `end_offsets` (metadata and watermark
    /// requests). Default 2 s, to suit a readiness probe.
    #[serde(default = "default_metadata_timeout_ms")]
    pub metadata_timeout_ms: u64,
    /// How long a silent group member keeps its partitions
    /// (`session.timeout.ms`). A crashed materialiser's partitions wait this
    /// long before another member takes them over. Default 45 s
    /// (librdkafka's); the broker allows 6 s to 300 s by default.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// How long the rejected topic keeps its records (`retention.ms` when
    /// footfall creates it; an existing topic keeps its own). The binary
    /// sets it from `[query] rejected_retention_s`, so one limit covers
    /// the log and the tables: not a `[kafka]` key. `None` leaves the
    /// broker's default.
    #[serde(skip)]
    pub rejected_retention_ms: Option<u64>,
}

fn default_partitions() -> u32 {
    6
}
fn default_rejected_partitions() -> u32 {
    1
}
fn default_replication_factor() -> u16 {
    1
}
fn default_linger_ms() -> u64 {
    5
}
fn default_batch_size_bytes() -> u64 {
    1_000_000
}
fn default_message_timeout_ms() -> u64 {
    10_000
}
fn default_queue_max_messages() -> u64 {
    100_000
}
fn default_queue_max_bytes() -> u64 {
    64 << 20
}
fn default_dedup_cache_ids() -> usize {
    100_000
}
fn default_metadata_timeout_ms() -> u64 {
    2_000
}
fn default_session_timeout_ms() -> u64 {
    45_000
}

impl KafkaConfig {
    /// The defaults, on these brokers.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic_suffix: String::new(),
            scans_partitions: default_partitions(),
            tickets_partitions: default_partitions(),
            rejected_partitions: default_rejected_partitions(),
            replication_factor: default_replication_factor(),
            linger_ms: default_linger_ms(),
            batch_size_bytes: default_batch_size_bytes(),
            message_timeout_ms: default_message_timeout_ms(),
            queue_max_messages: default_queue_max_messages(),
            queue_max_bytes: default_queue_max_bytes(),
            dedup_cache_ids: default_dedup_cache_ids(),
            session_timeout_ms: default_session_timeout_ms(),
            metadata_timeout_ms: default_metadata_timeout_ms(),
            rejected_retention_ms: None,
        }
    }

    /// The Kafka topic that holds `topic`.
    pub fn topic_name(&self, topic: Topic) -> String {
        format!("{}{}", topic.name(), self.topic_suffix)
    }

    /// Partitions `topic` is created with.
    pub fn partitions(&self, topic: Topic) -> u32 {
        match topic {
            Topic::Scans => self.scans_partitions,
            Topic::Tickets => self.tickets_partitions,
            Topic::Rejected => self.rejected_partitions,
        }
    }

    /// Checks what librdkafka would not, or would only report obscurely.
    pub(super) fn validate(&self) -> Result<(), LogError> {
        let invalid = |m: String| Err(LogError::Invalid(format!("kafka config: {m}")));
        if self.bootstrap_servers.trim().is_empty() {
            return invalid("bootstrap_servers is empty".into());
        }
        if !self
            .topic_suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return invalid(format!(
                "topic_suffix {:?} may only hold [A-Za-z0-9._-]",
                self.topic_suffix
            ));
        }
        if self.topic_name(Topic::Rejected).len() > 249 {
            return invalid(
                "topic_suffix makes topic names longer than Kafka's 249 characters".into(),
            );
        }
        for topic in Topic::ALL {
            if !(1..=i32::MAX as u32).contains(&self.partitions(topic)) {
                return invalid(format!("{}_partitions must be at least 1", topic.short()));
            }
        }
        if self.replication_factor == 0 || self.replication_factor > i16::MAX as u16 {
            return invalid("replication_factor must be between 1 and 32767".into());
        }
        if self.message_timeout_ms == 0 || self.message_timeout_ms <= self.linger_ms {
            return invalid("message_timeout_ms must be at least 1 and above linger_ms".into());
        }
        if self.message_timeout_ms > i32::MAX as u64 {
            return invalid("message_timeout_ms is too large".into());
        }
        if self.queue_max_messages == 0 || self.queue_max_bytes == 0 || self.batch_size_bytes == 0 {
            return invalid(
                "queue_max_messages, queue_max_bytes and batch_size_bytes must be at least 1"
                    .into(),
            );
        }
        if self.metadata_timeout_ms == 0 {
            return invalid("metadata_timeout_ms must be at least 1".into());
        }
        if self.session_timeout_ms < 3_000 {
            return invalid("session_timeout_ms must be at least 3000 (three heartbeats)".into());
        }
        Ok(())
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", "footfall");
        c
    }

    /// The producer: idempotent (retries never duplicate or reorder a
    /// partition), `acks=all` (acknowledged by every in-sync replica),
    /// bounded local queue.
    pub(super) fn producer(&self) -> ClientConfig {
        let mut c = self.client();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            // The Java client's partitioner: a badge lands on the same
            // partition whichever client wrote it.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_size_bytes.to_string())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                self.queue_max_bytes.div_ceil(1024).to_string(),
            )
            // The app creates its topics; a typo must not create one.
            .set("allow.auto.create.topics", "false");
        c
    }

    /// A group member that starts where the caller says and commits only
    /// when asked (for lag monitoring).
    pub(super) fn consumer(&self, group: &str) -> ClientConfig {
        let mut c = self.client();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Eager assignment: every rebalance revokes everything, then
            // assigns with offsets chosen by the subscription. Round robin
            // spreads the partitions of all three topics over the members.
            .set("partition.assignment.strategy", "roundrobin")
            // Members notice a rebalance within a second instead of three:
            // consumption of the whole group pauses until all have rejoined.
            .set("heartbeat.interval.ms", "1000")
            .set("session.timeout.ms", self.session_timeout_ms.to_string());
        c
    }

    /// Admin and metadata requests.
    pub(super) fn admin(&self) -> ClientConfig {
        self.client()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bootstrap_is_required_and_typos_are_refused() {
        let c: KafkaConfig = toml::from_str(r#"bootstrap_servers = "b:9092""#).unwrap();
        assert_eq!(c, KafkaConfig::new("b:9092"));
        assert!(c.validate().is_ok());
        let typo = toml::from_str::<KafkaConfig>("bootstrap_servers = \"b:9092\"\nlinger = 5");
        assert!(typo.is_err());
    }

    #[test]
    fn unsafe_values_are_refused() {
        let mut c = KafkaConfig::new("b:9092");
        c.message_timeout_ms = 0;
        assert!(c.validate().is_err());
        let mut c = KafkaConfig::new("b:9092");
        c.topic_suffix = "a/b".into();
        assert!(c.validate().is_err());
        let mut c = KafkaConfig::new("b:9092");
        c.rejected_partitions = 0;
        assert!(c.validate().is_err());
        c = KafkaConfig::new("b:9092");
        c.topic_suffix = ".t-1_x".into();
        assert!(c.validate().is_ok());
        assert_eq!(c.topic_name(Topic::Scans), "footfall.scans.v1.t-1_x");
    }
}
