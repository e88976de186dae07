//! End to end on a real Apache Kafka broker (started by `scripts/kafka`):
//! ingest workers and query instances as separate `footfall` processes
//! sharing one data dir, fed by the simulator over HTTP. `footfall_hourly`
//! must equal the simulator's truth on every query instance, through a
//! `kill -9` of a query instance, a stopped broker, and a record on the
//! topic that is not an event.
//!
//! Each test has its own topics (a random suffix) and consumer group. The
//! broker outage test takes the broker for itself; the others share it.

mod common;

use common::{Server, assert_same, free_port, hourly, truth, wait_ready};
use footfall_testkit::{PausedBroker, kafka_bootstrap, unique};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

static BROKER: RwLock<()> = RwLock::new(());

/// How long a query instance may take to show what was acknowledged:
/// rebalances after a crash wait for the session timeout (6 s here).
const PATIENCE: Duration = Duration::from_secs(120);

/// One test's deployment: its settings file, topics and group.
struct Fair {
    bootstrap: String,
    dir: tempfile::TempDir,
    suffix: String,
    group: String,
}

impl Fair {
    /// A deployment on fresh topics; `kafka_extra` adds `[kafka]` settings.
    fn new(bootstrap: String, kafka_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let suffix = format!(".{}", unique("e2e"));
        // Small flush interval: peers see each other's rows within a second.
        let settings = format!(
            "[query]\nflush_interval_ms = 500\n\n[kafka]\ntopic_suffix = \"{suffix}\"\n\
             session_timeout_ms = 6000\n{kafka_extra}"
        );
        std::fs::write(dir.path().join("footfall.toml"), settings).unwrap();
        Self {
            bootstrap,
            group: unique("query"),
            suffix,
            dir,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn topic(&self, short: &str) -> String {
        format!("footfall.{short}.v1{}", self.suffix)
    }

    /// `footfall ingest|query --kafka …` on this fair's settings.
    fn start(&self, command: &str, port: u16) -> Server {
        let config = self.path("footfall.toml");
        Server::spawn(
            command,
            &self.data(),
            port,
            &[
                "--kafka",
                &self.bootstrap,
                "--config",
                config.to_str().unwrap(),
                "--group",
                &self.group,
            ],
        )
    }

    /// The simulator sending to the ingest workers, in the background.
    fn send(&self, days: &str, seed: &str, ingest: &[&Server]) -> Child {
        let targets: Vec<String> = ingest.iter().map(|s| s.base()).collect();
        Command::new(common::BIN)
            .args(["sim", "--days", days, "--seed", seed, "--batch", "300"])
            .args(["--target", &targets.join(","), "--truth"])
            .arg(self.path("truth.ndjson"))
            .args(["--retry-rate", "0.02", "--offline-rate", "0.1"])
            .args(["--retry-for-s", "180"])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }

    /// Writes raw lines to one partition of a topic with kcat, a Kafka
    /// client that is not ours.
    fn produce_raw(&self, short: &str, partition: u32, lines: &str) {
        let mut kcat = Command::new("kcat")
            .args(["-P", "-b", &self.bootstrap, "-t", &self.topic(short)])
            .args(["-p", &partition.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .expect("kcat runs (scripts/tools installs it)");
        use std::io::Write;
        kcat.stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(kcat.wait().unwrap().success(), "kcat produced");
    }

    /// Every record of a topic as kcat sees it: (key, headers, value).
    fn consume_raw(&self, short: &str) -> Vec<(String, String, String)> {
        let out = Command::new("kcat")
            .args(["-C", "-b", &self.bootstrap, "-t", &self.topic(short)])
            .args(["-o", "beginning", "-e", "-q", "-f", "%k\\t%h\\t%s\\n"])
            .output()
            .expect("kcat runs");
        assert!(out.status.success(), "kcat consumed");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let mut parts = l.splitn(3, '\t');
                let mut next = || parts.next().unwrap_or_default().to_owned();
                (next(), next(), next())
            })
            .collect()
    }
}

/// Polls an instance until `footfall_hourly` equals the truth; on timeout
/// fails with the differences.
fn wait_for_truth(base: &str, truth_file: &Path) {
    let want = truth(truth_file);
    assert!(want.len() > 100, "the truth has hours and zones");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = hourly(base);
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            assert_same(&got, &want);
            panic!("{base}: footfall_hourly differs from the truth");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn count(base: &str, sql: &str) -> u64 {
    common::sql(base, sql)[0]["n"].as_u64().unwrap()
}

fn assert_no_duplicates(base: &str) {
    let dup = count(
        base,
        "SELECT count(*) AS n FROM (SELECT event_id FROM scans GROUP BY event_id HAVING count(*) > 1)",
    );
    assert_eq!(dup, 0, "no event is counted twice");
}

#[test]
fn two_ingest_workers_and_two_query_instances_equal_the_truth() {
    let Some(bootstrap) = kafka_bootstrap() else {
        return;
    };
    let _shared = BROKER.read().unwrap_or_else(|p| p.into_inner());
    let fair = Fair::new(bootstrap, "");
    let q1 = fair.start("query", 0);
    let q2 = fair.start("query", 0);
    let i1 = fair.start("ingest", 0);
    let i2 = fair.start("ingest", 0);

    // A record that is not an event, first on its partition: it must be
    // rejected and the events after it still materialised.
    fair.produce_raw("scans", 0, "this is not an event\n");
    let mut sender = fair.send("1", "21", &[&i1, &i2]);
    assert!(sender.wait().unwrap().success(), "every batch acknowledged");

    for q in [&q1, &q2] {
        wait_for_truth(&q.base(), &fair.path("truth.ndjson"));
        wait_ready(&q.base(), PATIENCE);
        assert_no_duplicates(&q.base());
        let bad = count(
            &q.base(),
            "SELECT count(*) AS n FROM rejected WHERE code = 'bad_record'",
        );
        assert_eq!(bad, 1, "the poison record is in rejected, once");
    }

    // What is on the topic is plain JSON any client reads: key = the
    // pseudonymous badge, a schema-version header.
    let records = fair.consume_raw("scans");
    let events: Vec<_> = records
        .iter()
        .filter(|(_, _, v)| v.starts_with('{'))
        .collect();
    assert_eq!(
        events.len() + 1,
        records.len(),
        "all but the poison are JSON"
    );
    for (key, headers, value) in events {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(v["badge"].as_str(), Some(key.as_str()), "{value}");
        assert_eq!(key.len(), 32, "the badge is pseudonymised");
        assert!(headers.contains("schema-version="), "{headers}");
    }
    let scans = count(&q1.base(), "SELECT count(*) AS n FROM scans");
    assert!(
        records.len() as u64 > scans,
        "the topic holds every scan (and the retries the ingest workers could not tell apart)"
    );
}

#[test]
fn kill_9_of_a_query_instance_mid_stream_loses_nothing() {
    let Some(bootstrap) = kafka_bootstrap() else {
        return;
    };
    let _shared = BROKER.read().unwrap_or_else(|p| p.into_inner());
    let fair = Fair::new(bootstrap, "");
    let q1 = fair.start("query", 0);
    let port = free_port();
    let q2 = fair.start("query", port);
    let ingest = fair.start("ingest", 0);
    let mut sender = fair.send("2", "8", &[&ingest]);

    let deadline = Instant::now() + PATIENCE;
    while count(&q1.base(), "SELECT count(*) AS n FROM scans") < 30_000 {
        assert!(Instant::now() < deadline, "the sender makes progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    q2.kill9();
    let q2 = fair.start("query", port);
    assert!(sender.wait().unwrap().success(), "every batch acknowledged");

    for q in [&q1, &q2] {
        wait_for_truth(&q.base(), &fair.path("truth.ndjson"));
        assert_no_duplicates(&q.base());
    }
    drop(ingest);
}

#[test]
fn a_stopped_broker_answers_503_and_loses_nothing_once_it_is_back() {
    let Some(bootstrap) = kafka_bootstrap() else {
        return;
    };
    let _exclusive = BROKER.write().unwrap_or_else(|p| p.into_inner());
    let fair = Fair::new(
        bootstrap.clone(),
        "message_timeout_ms = 2000\nmetadata_timeout_ms = 1000\n",
    );
    let q = fair.start("query", 0);
    let ingest = fair.start("ingest", 0);
    let mut sender = fair.send("1", "33", &[&ingest]);

    let deadline = Instant::now() + PATIENCE;
    while count(&q.base(), "SELECT count(*) AS n FROM scans") < 10_000 {
        assert!(Instant::now() < deadline, "the sender makes progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    {
        let _paused = PausedBroker::start(&bootstrap);
        // Past the producer's timeout, a batch is refused with a 503 the
        // client can act on, not held. (The probe is of an unknown scanner:
        // it goes to the rejected topic, so whether it lands or not the
        // truth of footfall_hourly holds.)
        let t0 = Instant::now();
        let line = r#"{"type":"badge_scan","event_id":"outage-probe-1","ts":"2026-02-16T10:03:12Z","badge_id":"V-1","scanner_id":"outage-probe","direction":"in"}"#;
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/v1/events", ingest.base()))
            .body(format!("{line}\n"))
            .timeout(Duration::from_secs(30))
            .send()
            .expect("ingest answers while the broker is stopped");
        assert_eq!(answer.status().as_u16(), 503, "{:?}", answer.text());
        assert!(answer.headers().contains_key("retry-after"));
        assert!(t0.elapsed() < Duration::from_secs(15), "answered in time");
        assert_ne!(
            common::get(&format!("{}/readyz", ingest.base())).0,
            200,
            "not ready without a broker"
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(
        sender.wait().unwrap().success(),
        "every batch acknowledged in the end"
    );
    wait_for_truth(&q.base(), &fair.path("truth.ndjson"));
    assert_no_duplicates(&q.base());
}

#[test]
fn sigterm_with_the_broker_away_exits_promptly_and_keeps_what_was_read() {
    let Some(bootstrap) = kafka_bootstrap() else {
        return;
    };
    let _exclusive = BROKER.write().unwrap_or_else(|p| p.into_inner());
    let fair = Fair::new(bootstrap.clone(), "");
    let q = fair.start("query", 0);
    let ingest = fair.start("ingest", 0);
    let n = 500;
    let (code, body) = common::post(
        &format!("{}/v1/events", ingest.base()),
        &common::scans("away", n),
    );
    assert_eq!(code, 200, "{body}");
    let deadline = Instant::now() + PATIENCE;
    while count(&q.base(), "SELECT count(*) AS n FROM scans") < n as u64 {
        assert!(Instant::now() < deadline, "the scans become queryable");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _paused = PausedBroker::start(&bootstrap);
    // Leaving the consumer group needs the coordinator, which cannot
    // answer now: the close is bounded (5 s), not waited out.
    let t0 = Instant::now();
    let status = q.terminate_within(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the query instance exits 0 within 20 s of SIGTERM with the broker away ({status:?}, {:?})",
        t0.elapsed()
    );
    assert_eq!(
        common::checkpointed_rows(&fair.data(), "scans"),
        n as u64,
        "every scan read is in a checkpoint"
    );
    let t0 = Instant::now();
    let status = ingest.terminate_within(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the ingest worker exits 0 within 20 s of SIGTERM with the broker away ({status:?}, {:?})",
        t0.elapsed()
    );
}
