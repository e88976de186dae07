//! The Kafka log against a real broker.
//!
//! Start one with `scripts/kafka start` (from the repository root) and
//! `export FOOTFALL_KAFKA_BOOTSTRAP=$(cat .kafka/bootstrap)`. Without the
//! variable these tests fail, unless `FOOTFALL_SKIP_KAFKA=1` says to skip.
//!
//! Each test uses its own topics (a random suffix) and consumer groups. The
//! outage test pauses the whole broker, so it holds [`BROKER`] exclusively
//! while every other test holds it shared.

use footfall_eventlog::kafka::{KafkaConfig, KafkaLog, SCHEMA_VERSION_HEADER};
use footfall_eventlog::{
    Append, Appended, Delivered, EventLog, LogError, Polled, StartAt, Stream, Subscription, Topic,
};
use footfall_testkit::unique;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// How long a test waits for something that should take a second or two.
const PATIENCE: Duration = Duration::from_secs(30);

fn bootstrap() -> Option<String> {
    footfall_testkit::kafka_bootstrap()
}

fn config(bootstrap: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new(bootstrap);
    c.topic_suffix = format!(".{}", unique("t"));
    c.message_timeout_ms = 5_000;
    c.metadata_timeout_ms = 2_000;
    c
}

async fn connect(config: KafkaConfig) -> KafkaLog {
    KafkaLog::connect(config)
        .await
        .expect("connect to the test broker")
}

/// Removes a test's topics, so a long-lived dev broker does not fill up.
async fn delete_topics(log: &KafkaLog) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &log.config().bootstrap_servers)
        .create()
        .expect("admin client");
    let names: Vec<&str> = Topic::ALL.iter().map(|&t| log.topic_name(t)).collect();
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
}

fn rec(topic: Topic, key: &str, value: &str, id: Option<&str>) -> Append {
    Append {
        topic,
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        dedup_id: id.map(str::to_owned),
    }
}

fn from_start() -> StartAt {
    Arc::new(|_| 0)
}

fn all_streams(log: &KafkaLog) -> BTreeSet<Stream> {
    let c = log.config();
    Topic::ALL
        .into_iter()
        .flat_map(|topic| {
            (0..c.partitions(topic) as i32).map(move |partition| Stream { topic, partition })
        })
        .collect()
}

/// Appends and maps each stored record to its (key, value).
async fn append_all(
    log: &KafkaLog,
    batch: Vec<Append>,
) -> BTreeMap<(Stream, i64), (Vec<u8>, Vec<u8>)> {
    let out = log.append(batch.clone()).await.expect("append");
    assert_eq!(out.len(), batch.len());
    let mut stored = BTreeMap::new();
    for (r, o) in batch.into_iter().zip(out) {
        let Appended::Stored { partition, offset } = o else {
            panic!("unexpected {o:?}")
        };
        let stream = Stream {
            topic: r.topic,
            partition,
        };
        assert!(
            stored.insert((stream, offset), (r.key, r.value)).is_none(),
            "two records at {stream}@{offset}"
        );
    }
    stored
}

/// Polls until `want` records came, then checks that no more follow.
async fn read(sub: &mut Box<dyn Subscription>, want: usize) -> (BTreeSet<Stream>, Vec<Delivered>) {
    let deadline = Instant::now() + PATIENCE;
    let mut assigned = BTreeSet::new();
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} records within {PATIENCE:?}",
            got.len()
        );
        match sub
            .poll(1000, Duration::from_millis(200))
            .await
            .expect("poll")
        {
            Polled::Assigned(s) => assigned.extend(s),
            Polled::Revoked(s) => panic!("unexpected revocation of {s:?}"),
            // An empty read would tell the materialiser it is caught up.
            Polled::Records(r) if assigned.is_empty() && r.is_empty() => {
                panic!("an empty read before the group assigned any partition")
            }
            Polled::Records(r) => got.extend(r),
            Polled::Joining => assert!(assigned.is_empty(), "joining after the assignment"),
        }
    }
    match sub
        .poll(1000, Duration::from_millis(300))
        .await
        .expect("poll")
    {
        Polled::Records(r) => assert!(r.is_empty(), "records beyond the {want} expected: {r:?}"),
        other => panic!("unexpected {other:?}"),
    }
    (assigned, got)
}

#[tokio::test]
async fn every_record_comes_back_once_where_append_said() {
    let Some(bootstrap) = bootstrap() else { return };
    let _shared = BROKER.read().await;
    let log = connect(config(&bootstrap)).await;

    let mut stored = BTreeMap::new();
    let t0 = Instant::now();
    for b in 0..3 {
        let mut batch = Vec::new();
        for i in 0..40 {
            let key = if i % 10 == 9 {
                String::new()
            } else {
                format!("badge-{}", i % 13)
            };
            batch.push(rec(
                Topic::Scans,
                &key,
                &format!("{{\"scan\":\"{b}-{i}\"}}"),
                Some(&format!("s{b}-{i}")),
            ));
        }
        for i in 0..8 {
            batch.push(rec(
                Topic::Tickets,
                &format!("badge-{i}"),
                &format!("{{\"ticket\":\"{b}-{i}\"}}"),
                Some(&format!("t{b}-{i}")),
            ));
        }
        for i in 0..3 {
            batch.push(rec(
                Topic::Rejected,
                "",
                &format!("{{\"bad\":\"{b}-{i}\"}}"),
                None,
            ));
        }
        stored.append(&mut append_all(&log, batch).await);
    }
    eprintln!(
        "appended {} records in 3 batches in {:?}",
        stored.len(),
        t0.elapsed()
    );
    assert_eq!(stored.len(), 3 * 51);

    let t0 = Instant::now();
    let group = unique("g");
    let mut sub = log
        .subscribe(&group, from_start())
        .await
        .expect("subscribe");
    let (assigned, got) = read(&mut sub, stored.len()).await;
    eprintln!("subscribed and read them back in {:?}", t0.elapsed());
    assert_eq!(assigned, all_streams(&log));

    let mut expected = stored.clone();
    let mut last: HashMap<Stream, i64> = HashMap::new();
    for d in got {
        let Some((key, value)) = expected.remove(&(d.stream, d.offset)) else {
            panic!("unexpected or repeated record {}@{}", d.stream, d.offset)
        };
        assert_eq!((d.key, d.value), (key, value), "{}@{}", d.stream, d.offset);
        let prev = last.insert(d.stream, d.offset);
        assert!(
            prev.is_none_or(|p| p < d.offset),
            "{} out of order",
            d.stream
        );
    }
    assert!(expected.is_empty());

    // Freshness with a reader already assigned: append → delivered.
    let t0 = Instant::now();
    stored
        .append(&mut append_all(&log, vec![rec(Topic::Scans, "late", "late", Some("late"))]).await);
    let acked = t0.elapsed();
    let late = loop {
        match sub
            .poll(10, Duration::from_millis(100))
            .await
            .expect("poll")
        {
            Polled::Records(r) if r.is_empty() => {
                assert!(t0.elapsed() < PATIENCE, "the late record never came")
            }
            Polled::Records(r) => break r,
            other => panic!("unexpected {other:?}"),
        }
    };
    eprintln!(
        "one record: acknowledged after {acked:?}, delivered {:?} after append",
        t0.elapsed()
    );
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].value, b"late");

    // Lag commits reach Kafka under the group.
    let positions: Vec<(Stream, i64)> = {
        let mut ends: BTreeMap<Stream, i64> = BTreeMap::new();
        for (s, o) in stored.keys() {
            ends.insert(*s, o + 1);
        }
        ends.into_iter().collect()
    };
    sub.commit(&positions).expect("commit");
    let probe: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .create()
        .expect("probe");
    let mut tpl = TopicPartitionList::new();
    for (s, _) in &positions {
        tpl.add_partition(log.topic_name(s.topic), s.partition);
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let committed = probe
            .committed_offsets(tpl.clone(), Duration::from_secs(2))
            .expect("committed offsets");
        let got: Vec<(Stream, i64)> = positions
            .iter()
            .map(|(s, _)| {
                let at = committed
                    .find_partition(log.topic_name(s.topic), s.partition)
                    .and_then(|e| e.offset().to_raw());
                (*s, at.unwrap_or(-1))
            })
            .collect();
        if got == positions {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "committed {got:?}, want {positions:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The ends are one past the last stored offset of each partition.
    let ends = log.end_offsets().await.expect("end offsets");
    assert_eq!(
        ends.iter().map(|(s, _)| *s).collect::<BTreeSet<_>>(),
        all_streams(&log)
    );
    for (stream, end) in ends {
        let want = stored
            .keys()
            .filter(|(s, _)| *s == stream)
            .map(|(_, o)| o + 1)
            .max()
            .unwrap_or(0);
        assert_eq!(end, want, "end of {stream}");
    }
    log.check().await.expect("check");
    drop(sub);
    delete_topics(&log).await;
}

#[tokio::test]
async fn each_partition_starts_where_start_at_says() {
    let Some(bootstrap) = bootstrap() else { return };
    let _shared = BROKER.read().await;
    let log = connect(config(&bootstrap)).await;

    // One key: all scans on one partition, offsets 0..10.
    let scans: Vec<Append> = (0..10)
        .map(|i| rec(Topic::Scans, "one-badge", &format!("s{i}"), None))
        .collect();
    let stored = append_all(&log, scans).await;
    let scans_stream = stored.keys().next().expect("stored").0;
    assert!(stored.keys().all(|(s, _)| *s == scans_stream));
    assert_eq!(
        stored.keys().map(|(_, o)| *o).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    let tickets = append_all(
        &log,
        (0..3)
            .map(|i| rec(Topic::Tickets, "one-badge", &format!("t{i}"), None))
            .collect(),
    )
    .await;

    let asked = Arc::new(Mutex::new(BTreeSet::new()));
    let start: StartAt = {
        let asked = asked.clone();
        Arc::new(move |s: Stream| {
            asked.lock().unwrap().insert(s);
            if s == scans_stream { 4 } else { 0 }
        })
    };
    let mut sub = log.subscribe(&unique("g"), start).await.expect("subscribe");
    let (assigned, got) = read(&mut sub, 6 + 3).await;
    assert_eq!(
        *asked.lock().unwrap(),
        assigned,
        "start is asked for each assigned stream"
    );

    let scans_read: Vec<(i64, Vec<u8>)> = got
        .iter()
        .filter(|d| d.stream == scans_stream)
        .map(|d| (d.offset, d.value.clone()))
        .collect();
    let want: Vec<(i64, Vec<u8>)> = (4..10).map(|i| (i, format!("s{i}").into_bytes())).collect();
    assert_eq!(scans_read, want);
    let tickets_read: BTreeSet<(Stream, i64)> = got
        .iter()
        .filter(|d| d.stream.topic == Topic::Tickets)
        .map(|d| (d.stream, d.offset))
        .collect();
    assert_eq!(tickets_read, tickets.keys().copied().collect());
    drop(sub);
    delete_topics(&log).await;
}

#[tokio::test]
async fn a_recent_event_id_is_not_appended_twice() {
    let Some(bootstrap) = bootstrap() else { return };
    let _shared = BROKER.read().await;
    let config = config(&bootstrap);
    let log = connect(config.clone()).await;

    let first = log
        .append(vec![
            rec(Topic::Scans, "b1", "a", Some("ev-a")),
            rec(Topic::Scans, "b2", "b", Some("ev-b")),
        ])
        .await
        .expect("append");
    assert!(
        first.iter().all(|o| matches!(o, Appended::Stored { .. })),
        "{first:?}"
    );
    let second = log
        .append(vec![
            rec(Topic::Scans, "b1", "a again", Some("ev-a")),
            rec(Topic::Scans, "b3", "c", Some("ev-c")),
            rec(Topic::Scans, "b3", "c in the same batch", Some("ev-c")),
            rec(Topic::Rejected, "", "no id", None),
            rec(Topic::Rejected, "", "no id", None),
        ])
        .await
        .expect("append");
    assert_eq!(second[0], Appended::Duplicate);
    assert!(matches!(second[1], Appended::Stored { .. }));
    assert_eq!(second[2], Appended::Duplicate);
    assert!(
        matches!(second[3], Appended::Stored { .. })
            && matches!(second[4], Appended::Stored { .. })
    );

    let mut sub = log
        .subscribe(&unique("g"), from_start())
        .await
        .expect("subscribe");
    let (_, got) = read(&mut sub, 5).await;
    let mut values: Vec<&[u8]> = got.iter().map(|d| d.value.as_slice()).collect();
    values.sort();
    assert_eq!(values, [&b"a"[..], b"b", b"c", b"no id", b"no id"]);
    drop(sub);

    // Best effort only: another process (here a second log) does not know
    // the id; the materialiser's dedup is the exact one.
    let other = connect(config).await;
    let again = other
        .append(vec![rec(Topic::Scans, "b1", "a", Some("ev-a"))])
        .await
        .expect("append");
    assert!(matches!(again[0], Appended::Stored { .. }));
    delete_topics(&log).await;
}

#[tokio::test]
async fn records_that_are_not_ours_are_delivered_and_ours_carry_the_schema_version() {
    let Some(bootstrap) = bootstrap() else { return };
    let _shared = BROKER.read().await;
    let log = connect(config(&bootstrap)).await;
    let scans = log.topic_name(Topic::Scans).to_owned();

    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("raw producer");
    let timeout = Duration::from_secs(5);
    raw.send(
        FutureRecord::to(&scans).key("raw").payload("not json"),
        timeout,
    )
    .await
    .expect("raw send");
    raw.send(
        FutureRecord::<(), [u8]>::to(&scans).payload(&b"{\"type\":\"badge_scan\""[..]),
        timeout,
    )
    .await
    .expect("raw send");
    raw.send(FutureRecord::<str, ()>::to(&scans).key("no value"), timeout)
        .await
        .expect("raw send");
    log.append(vec![rec(
        Topic::Scans,
        "ours",
        "{\"ok\":true}",
        Some("ours-1"),
    )])
    .await
    .expect("append");

    let mut sub = log
        .subscribe(&unique("g"), from_start())
        .await
        .expect("subscribe");
    let (_, got) = read(&mut sub, 4).await;
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = got.into_iter().map(|d| (d.key, d.value)).collect();
    pairs.sort();
    let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"".to_vec(), b"{\"type\":\"badge_scan\"".to_vec()),
        (b"no value".to_vec(), b"".to_vec()),
        (b"ours".to_vec(), b"{\"ok\":true}".to_vec()),
        (b"raw".to_vec(), b"not json".to_vec()),
    ];
    assert_eq!(pairs, want);
    drop(sub);

    // A plain consumer sees the header on our record only.
    // Assigned by hand; librdkafka still wants a group id for that.
    let plain: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique("plain"))
        .create()
        .expect("plain consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..log.config().scans_partitions as i32 {
        tpl.add_partition_offset(&scans, p, Offset::Beginning)
            .expect("tpl");
    }
    plain.assign(&tpl).expect("assign");
    let mut headers = BTreeMap::new();
    while headers.len() < 4 {
        let m = tokio::time::timeout(PATIENCE, plain.recv())
            .await
            .expect("plain read in time")
            .expect("plain read");
        let version = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == SCHEMA_VERSION_HEADER)
                .and_then(|h| h.value.map(<[u8]>::to_vec))
        });
        headers.insert(m.payload().unwrap_or_default().to_vec(), version);
    }
    assert_eq!(headers[&b"{\"ok\":true}"[..]], Some(b"1".to_vec()));
    assert_eq!(headers[&b"not json"[..]], None);
    delete_topics(&log).await;
}

#[tokio::test]
async fn the_rejected_topic_is_created_with_the_retention_limit() {
    let Some(bootstrap) = bootstrap() else { return };
    let _shared = BROKER.read().await;
    let mut config = config(&bootstrap);
    config.rejected_retention_ms = Some(5 * 24 * 3600 * 1000);
    let log = connect(config).await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let topics = [Topic::Rejected, Topic::Scans]
        .map(|t| rdkafka::admin::ResourceSpecifier::Topic(log.topic_name(t)));
    let described = admin
        .describe_configs(&topics, &AdminOptions::new())
        .await
        .expect("describe the topics");
    let value = |i: usize, name: &str| {
        described[i]
            .as_ref()
            .expect("the topic is described")
            .get(name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value(0, "retention.ms").as_deref(), Some("432000000"));
    assert_eq!(
        value(0, "segment.ms").as_deref(),
        Some("86400000"),
        "daily segments"
    );
    assert_ne!(
        value(1, "retention.ms").as_deref(),
        Some("432000000"),
        "only the rejected topic"
    );
    delete_topics(&log).await;
}

mod group;
mod outage;
