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
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// How long a test waits for something that should take a second or two.
const PATIENCE: Duration = Duration::from_secs(30);

fn bootstrap() -> Option<String> {
    match std::env::var("FOOTFALL_KAFKA_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => Some(b.trim().to_owned()),
        _ if std::env::var("FOOTFALL_SKIP_KAFKA").as_deref() == Ok("1") => {
            eprintln!("skipped: FOOTFALL_SKIP_KAFKA=1 and no FOOTFALL_KAFKA_BOOTSTRAP");
            None
        }
        _ => panic!(
            "FOOTFALL_KAFKA_BOOTSTRAP is not set. These tests need a real Kafka broker: run \
             `scripts/kafka start` from the repository root, then \
             `export FOOTFALL_KAFKA_BOOTSTRAP=$(cat .kafka/bootstrap)` (or set FOOTFALL_SKIP_KAFKA=1 to skip them)"
        ),
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
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
            Polled::Records(r) => got.extend(r),
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

/// What the readers of the group test share: a stand-in for the
/// materialisers' checkpoints (flushed on revocation) and what they saw.
#[derive(Default)]
struct Group {
    checkpoint: Mutex<HashMap<Stream, i64>>,
    seen: Mutex<Vec<(&'static str, Delivered)>>,
    events: Mutex<Vec<(&'static str, &'static str, Vec<Stream>)>>,
    current: Mutex<HashMap<&'static str, BTreeSet<Stream>>>,
    starts: Mutex<Vec<(&'static str, Stream, i64)>>,
    violations: Mutex<Vec<String>>,
}

/// Reads like a materialiser: positions from the checkpoint on assignment,
/// checkpoint flushed on revocation and before leaving.
fn spawn_reader(
    log: Arc<KafkaLog>,
    group_name: String,
    name: &'static str,
    shared: Arc<Group>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start: StartAt = {
            let shared = shared.clone();
            Arc::new(move |s: Stream| {
                let at = shared
                    .checkpoint
                    .lock()
                    .unwrap()
                    .get(&s)
                    .copied()
                    .unwrap_or(0);
                shared.starts.lock().unwrap().push((name, s, at));
                at
            })
        };
        let mut sub = log.subscribe(&group_name, start).await.expect("subscribe");
        let mut positions: HashMap<Stream, i64> = HashMap::new();
        let flush = |positions: &mut HashMap<Stream, i64>, streams: &[Stream]| {
            let mut cp = shared.checkpoint.lock().unwrap();
            for s in streams {
                if let Some(p) = positions.remove(s) {
                    cp.insert(*s, p);
                }
            }
        };
        while !stop.load(Ordering::SeqCst) {
            match sub.poll(500, Duration::from_millis(100)).await {
                Ok(Polled::Assigned(streams)) => {
                    let cp = shared.checkpoint.lock().unwrap();
                    for s in &streams {
                        positions.insert(*s, cp.get(s).copied().unwrap_or(0));
                    }
                    drop(cp);
                    shared
                        .current
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_default()
                        .extend(streams.iter().copied());
                    shared
                        .events
                        .lock()
                        .unwrap()
                        .push((name, "assigned", streams));
                }
                Ok(Polled::Revoked(streams)) => {
                    flush(&mut positions, &streams);
                    let mut current = shared.current.lock().unwrap();
                    let mine = current.entry(name).or_default();
                    for s in &streams {
                        mine.remove(s);
                    }
                    drop(current);
                    shared
                        .events
                        .lock()
                        .unwrap()
                        .push((name, "revoked", streams));
                }
                Ok(Polled::Records(records)) => {
                    for d in records {
                        match positions.get_mut(&d.stream) {
                            Some(next) if *next == d.offset => *next += 1,
                            Some(next) => shared.violations.lock().unwrap().push(format!(
                                "{name} got {}@{} but expected offset {next}",
                                d.stream, d.offset
                            )),
                            None => shared.violations.lock().unwrap().push(format!(
                                "{name} got {}@{} of a stream it does not own",
                                d.stream, d.offset
                            )),
                        }
                        shared.seen.lock().unwrap().push((name, d));
                    }
                }
                Err(e) => shared
                    .violations
                    .lock()
                    .unwrap()
                    .push(format!("{name} poll failed: {e}")),
            }
        }
        // Leaving: flush, then drop the subscription (which leaves the group).
        let owned: Vec<Stream> = positions.keys().copied().collect();
        flush(&mut positions, &owned);
        shared.current.lock().unwrap().remove(name);
        drop(sub);
    })
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spread(topic_prefix: &str, n: usize, round: usize) -> Vec<Append> {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.push(rec(
            Topic::Scans,
            &format!("badge-{i}"),
            &format!("{topic_prefix}-scan-{round}-{i}"),
            None,
        ));
        if i % 4 == 0 {
            batch.push(rec(
                Topic::Tickets,
                &format!("badge-{i}"),
                &format!("{topic_prefix}-ticket-{round}-{i}"),
                None,
            ));
        }
        if i % 10 == 0 {
            batch.push(rec(
                Topic::Rejected,
                "",
                &format!("{topic_prefix}-bad-{round}-{i}"),
                None,
            ));
        }
    }
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_splits_the_partitions_and_hands_them_over_at_the_checkpoint() {
    let Some(bootstrap) = bootstrap() else { return };
    let _shared = BROKER.read().await;
    let log = Arc::new(connect(config(&bootstrap)).await);
    let every = all_streams(&log);
    let group_name = unique("g");
    let g = Arc::new(Group::default());
    let mut stored = append_all(&log, spread("x", 60, 1)).await;

    // A alone gets everything and reads the first round (not flushed yet).
    let stop_a = Arc::new(AtomicBool::new(false));
    let a = spawn_reader(
        log.clone(),
        group_name.clone(),
        "A",
        g.clone(),
        stop_a.clone(),
    );
    let n = stored.len();
    wait_for("A to read round 1", || g.seen.lock().unwrap().len() >= n).await;
    assert_eq!(g.current.lock().unwrap()["A"], every);

    // B joins: the two split the partitions between them.
    let t0 = Instant::now();
    let stop_b = Arc::new(AtomicBool::new(false));
    let b = spawn_reader(
        log.clone(),
        group_name.clone(),
        "B",
        g.clone(),
        stop_b.clone(),
    );
    wait_for("A and B to split the partitions", || {
        let current = g.current.lock().unwrap();
        let (Some(ca), Some(cb)) = (current.get("A"), current.get("B")) else {
            return false;
        };
        !ca.is_empty()
            && !cb.is_empty()
            && ca.is_disjoint(cb)
            && ca.union(cb).copied().collect::<BTreeSet<_>>() == every
    })
    .await;
    eprintln!("join rebalance took {:?}", t0.elapsed());
    let b_share = g.current.lock().unwrap()["B"].clone();

    stored.append(&mut append_all(&log, spread("x", 60, 2)).await);
    let n = stored.len();
    wait_for("A and B to read round 2", || {
        g.seen.lock().unwrap().len() >= n
    })
    .await;
    assert!(
        g.seen.lock().unwrap().iter().any(|(r, _)| *r == "B"),
        "B read nothing"
    );

    // B leaves: A takes its partitions over from B's checkpoint.
    let t0 = Instant::now();
    stop_b.store(true, Ordering::SeqCst);
    b.await.expect("reader B");
    wait_for("A to own every partition again", || {
        g.current.lock().unwrap().get("A") == Some(&every)
    })
    .await;
    eprintln!("leave rebalance took {:?}", t0.elapsed());

    // Where B's checkpoint must be: the end of each partition before round 3.
    let before_round_3: HashMap<Stream, i64> =
        stored.keys().fold(HashMap::new(), |mut ends, (s, o)| {
            let end = ends.entry(*s).or_insert(0);
            *end = (*end).max(o + 1);
            ends
        });
    stored.append(&mut append_all(&log, spread("x", 60, 3)).await);
    let n = stored.len();
    wait_for("A to read round 3", || g.seen.lock().unwrap().len() >= n).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // room for a stray duplicate
    stop_a.store(true, Ordering::SeqCst);
    a.await.expect("reader A");

    let violations = g.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");

    // Every stored record was read exactly once, by one of the two.
    let mut expected = stored.clone();
    for (reader, d) in g.seen.lock().unwrap().iter() {
        let Some((key, value)) = expected.remove(&(d.stream, d.offset)) else {
            panic!(
                "{reader} read {}@{} again (or it was never stored)",
                d.stream, d.offset
            )
        };
        assert_eq!((&d.key, &d.value), (&key, &value));
    }
    assert!(
        expected.is_empty(),
        "never read: {:?}",
        expected.keys().collect::<Vec<_>>()
    );

    // A saw the hand-over as Revoked then Assigned, and started B's former
    // partitions where B's checkpoint said.
    let events = g.events.lock().unwrap().clone();
    let a_events: Vec<(&str, usize)> = events
        .iter()
        .filter(|e| e.0 == "A")
        .map(|e| (e.1, e.2.len()))
        .collect();
    assert!(a_events.len() >= 5, "A's events: {a_events:?}");
    assert_eq!(
        a_events.last(),
        Some(&("assigned", every.len())),
        "A's events: {a_events:?}"
    );
    assert_eq!(
        a_events[a_events.len() - 2].0,
        "revoked",
        "A's events: {a_events:?}"
    );
    let starts = g.starts.lock().unwrap().clone();
    for s in &b_share {
        let (_, _, at) = starts
            .iter()
            .rev()
            .find(|(r, st, _)| *r == "A" && st == s)
            .expect("A started B's partition");
        assert_eq!(
            *at,
            before_round_3.get(s).copied().unwrap_or(0),
            "A's start of {s}, taken over from B"
        );
    }
    delete_topics(&log).await;
}

/// The broker's state dir, as `scripts/kafka` would find it.
fn kafka_dir() -> PathBuf {
    std::env::var_os("FOOTFALL_KAFKA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.kafka"))
}

fn kafka_script(action: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka");
    let status = std::process::Command::new(&script)
        .arg(action)
        .env("FOOTFALL_KAFKA_DIR", kafka_dir())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(status.success(), "`scripts/kafka {action}` failed");
}

/// The broker stays paused while this lives, resumed even if a test panics.
struct Paused;

impl Paused {
    fn start(bootstrap: &str) -> Self {
        let dir = kafka_dir();
        let theirs = std::fs::read_to_string(dir.join("bootstrap")).unwrap_or_default();
        assert_eq!(
            theirs.trim(),
            bootstrap,
            "the outage test pauses the broker of {} (set FOOTFALL_KAFKA_DIR to the state dir of the broker at \
             FOOTFALL_KAFKA_BOOTSTRAP)",
            dir.display()
        );
        kafka_script("pause");
        Paused
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        kafka_script("resume");
    }
}

#[tokio::test]
async fn a_paused_broker_fails_appends_in_time_and_they_recover_after() {
    let Some(bootstrap) = bootstrap() else { return };
    let _exclusive = BROKER.write().await;
    let mut config = config(&bootstrap);
    config.message_timeout_ms = 2_000;
    config.metadata_timeout_ms = 1_000;
    let log = connect(config).await;
    let batch = |round: &str| -> Vec<Append> {
        (0..20)
            .map(|i| {
                rec(
                    Topic::Scans,
                    &format!("badge-{i}"),
                    "v",
                    Some(&format!("{round}-{i}")),
                )
            })
            .collect()
    };
    log.append(batch("warm"))
        .await
        .expect("append before the outage");
    let mut sub = log
        .subscribe(&unique("g"), from_start())
        .await
        .expect("subscribe");
    read(&mut sub, 20).await;

    let paused = Paused::start(&bootstrap);
    let t0 = Instant::now();
    let failed = tokio::time::timeout(Duration::from_secs(10), log.append(batch("during")))
        .await
        .expect("append must give up within a few message timeouts");
    let took = t0.elapsed();
    assert!(
        matches!(failed, Err(LogError::Unavailable(_) | LogError::Full)),
        "{failed:?}"
    );
    eprintln!("append failed after {took:?} with {failed:?}");
    assert!(
        log.check().await.is_err(),
        "check while the broker is paused"
    );
    // A reader just sees no records: no hang, no error.
    let polled = tokio::time::timeout(
        Duration::from_secs(5),
        sub.poll(100, Duration::from_millis(300)),
    )
    .await
    .expect("poll returns within its wait while the broker is paused");
    assert!(
        matches!(&polled, Ok(Polled::Records(r)) if r.is_empty()),
        "{polled:?}"
    );
    drop(paused);

    // The same log, no restart: the client's retry goes through.
    let t0 = Instant::now();
    let deadline = t0 + PATIENCE;
    let out = loop {
        match log.append(batch("during")).await {
            Ok(out) => break out,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "appends still fail {PATIENCE:?} after resume: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    eprintln!("append succeeded {:?} after resume", t0.elapsed());
    assert_eq!(out.len(), 20);
    assert!(
        out.iter().all(|o| matches!(o, Appended::Stored { .. })),
        "{out:?}"
    );
    log.check().await.expect("check after resume");

    // The reader goes on by itself and gets the retried batch (and perhaps
    // the failed one too, if it landed after all: deduplicated downstream).
    let mut want: BTreeSet<(Stream, i64)> = out
        .iter()
        .map(|o| match o {
            Appended::Stored { partition, offset } => (
                Stream {
                    topic: Topic::Scans,
                    partition: *partition,
                },
                *offset,
            ),
            Appended::Duplicate => unreachable!("checked above"),
        })
        .collect();
    let mut extra = 0;
    let deadline = Instant::now() + PATIENCE;
    while !want.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} records of the retried batch never read",
            want.len()
        );
        if let Polled::Records(r) = sub
            .poll(100, Duration::from_millis(200))
            .await
            .expect("poll after resume")
        {
            for d in r {
                if !want.remove(&(d.stream, d.offset)) {
                    extra += 1;
                }
            }
        }
    }
    eprintln!(
        "after resume the reader read the retried batch and {extra} copies from the failed attempt"
    );
    drop(sub);
    delete_topics(&log).await;
}

#[tokio::test]
async fn an_unreachable_cluster_fails_connect_in_time() {
    // No broker needed: nothing listens on port 1.
    let mut config = KafkaConfig::new("127.0.0.1:1");
    config.message_timeout_ms = 1_000;
    let t0 = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), KafkaLog::connect(config))
        .await
        .expect("connect gives up within about message_timeout_ms");
    assert!(
        matches!(result, Err(LogError::Unavailable(_))),
        "{result:?}"
    );
    eprintln!("connect to nowhere failed after {:?}", t0.elapsed());
}
