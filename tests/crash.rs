//! Crash test: `kill -9` at random moments while a scanner sends, repeated,
//! on the embedded log and on Kafka (ingest workers and query instances).
//!
//! After every kill the data dir must be consistent: each manifest's files
//! exist, read, hold the rows it says, and cover every log offset below its
//! checkpoint (an offset missing from the files is allowed only for a record
//! whose event id an earlier offset already holds). At the end every
//! acknowledged event is in `scans` exactly once on every query instance.
//!
//! `FOOTFALL_CRASH_RUNS` sets the kills per log (default 6 embedded, 4 on
//! Kafka, about 20 s in all); `FOOTFALL_CRASH_SEED` replays the kill
//! moments and victims of a printed seed. The summary lines go to stderr and
//! to `test-artifacts/crash-summary.txt`.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{Array, Int32Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::{Server, free_port, post, scans, sql, wait_ready};
use footfall_eventlog::{Stream, Topic};
use footfall_query::materialise::read_manifest;
use footfall_testkit::{kafka_bootstrap, unique};

/// Events per batch, as a scanner that buffered a few minutes sends them.
const BATCH: usize = 250;
/// Senders posting at once, so that a kill often finds batches in flight.
const SENDERS: usize = 2;
/// How long the tables may take to show what was acknowledged: on Kafka a
/// killed query instance's partitions move after the session timeout (6 s).
const PATIENCE: Duration = Duration::from_secs(120);

/// `[query]` settings that make flushes and checkpoints frequent, so that
/// kills land in the middle of them.
const QUERY_SETTINGS: &str = "[query]\nflush_interval_ms = 150\nbatch_linger_ms = 20\n";

fn runs(default: usize) -> usize {
    std::env::var("FOOTFALL_CRASH_RUNS")
        .ok()
        .map(|v| v.parse().expect("FOOTFALL_CRASH_RUNS is a number of kills"))
        .unwrap_or(default)
}

/// The seed of the kill moments: `FOOTFALL_CRASH_SEED` or a fresh one.
fn seed() -> u64 {
    std::env::var("FOOTFALL_CRASH_SEED").map_or_else(
        |_| rand::random(),
        |v| v.parse().expect("FOOTFALL_CRASH_SEED is a u64"),
    )
}

/// Scanners sending numbered batches (`s{thread}-{batch}-{i}`) like real
/// ones: a 2xx acknowledges the batch; an error or a refused connection
/// means the same batch again after a short wait, to the next target.
struct Scanners {
    stop: Arc<AtomicBool>,
    /// Held while the disk check reads the topic back: kcat reads to the
    /// end, which it never reaches while the scanners write at full speed.
    paused: Arc<AtomicBool>,
    acked_batches: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<Sent>>,
}

/// What one sender did: the batches acknowledged, and how many it sent at
/// least once (an unacknowledged one may still be in the log).
#[derive(Default)]
struct Sent {
    acked: Vec<usize>,
    sent: usize,
}

impl Scanners {
    fn start(targets: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let acked_batches = Arc::new(AtomicUsize::new(0));
        let targets = Arc::new(targets);
        let threads = (0..SENDERS)
            .map(|t| {
                let (stop, paused, acked_batches, targets) = (
                    stop.clone(),
                    paused.clone(),
                    acked_batches.clone(),
                    targets.clone(),
                );
                std::thread::spawn(move || {
                    let mut sent = Sent::default();
                    let mut target = t;
                    'batches: for b in 0.. {
                        let body = scans(&format!("s{t}-{b}"), BATCH);
                        sent.sent = b + 1;
                        loop {
                            while paused.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            if stop.load(Ordering::SeqCst) {
                                break 'batches;
                            }
                            let url = format!("{}/v1/events", targets[target % targets.len()]);
                            let (code, answer) = post(&url, &body);
                            if (200..300).contains(&code) {
                                let answer: serde_json::Value =
                                    serde_json::from_str(&answer).unwrap();
                                let taken = answer["accepted"].as_u64().unwrap()
                                    + answer["duplicates"].as_u64().unwrap();
                                assert_eq!(taken, BATCH as u64, "every event taken: {answer}");
                                sent.acked.push(b);
                                acked_batches.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            assert!(
                                code == 0 || code >= 500,
                                "a valid batch got {code}: {answer}"
                            );
                            target += 1;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    sent
                })
            })
            .collect();
        Self {
            stop,
            paused,
            acked_batches,
            threads,
        }
    }

    /// Holds the scanners back (a batch in flight still ends) or lets them
    /// go on.
    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    fn acked_batches(&self) -> usize {
        self.acked_batches.load(Ordering::SeqCst)
    }

    /// Waits until another batch is acknowledged: the service takes events.
    fn wait_for_progress(&self) {
        let before = self.acked_batches();
        let deadline = Instant::now() + PATIENCE;
        while self.acked_batches() == before {
            assert!(Instant::now() < deadline, "no batch acknowledged");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops sending; the acknowledged ids and a test of whether an id was
    /// ever sent.
    fn stop(self) -> (HashSet<String>, impl Fn(&str) -> bool) {
        self.stop.store(true, Ordering::SeqCst);
        let sent: Vec<Sent> = self
            .threads
            .into_iter()
            .map(|t| {
                t.join()
                    .expect("every answer was a 2xx, a 5xx or no answer")
            })
            .collect();
        let acked = sent
            .iter()
            .enumerate()
            .flat_map(|(t, s)| {
                s.acked
                    .iter()
                    .flat_map(move |b| (0..BATCH).map(move |i| format!("s{t}-{b}-{i}")))
            })
            .collect();
        let sent_batches: Vec<usize> = sent.iter().map(|s| s.sent).collect();
        let was_sent = move |id: &str| {
            let Some(numbers) = id.strip_prefix('s') else {
                return false;
            };
            let mut parts = numbers.split('-');
            let mut next = || parts.next().and_then(|p| p.parse::<usize>().ok());
            match (next(), next(), next()) {
                (Some(t), Some(b), Some(i)) => t < SENDERS && b < sent_batches[t] && i < BATCH,
                _ => false,
            }
        };
        (acked, was_sent)
    }
}

/// Where each log record is, by (partition, offset): its event id. `None`
/// for the embedded log, which refuses a repeated event id, so every offset
/// below a checkpoint must be a row.
type LogIds = Option<HashMap<(i32, i64), String>>;

/// Checks every manifest of the data dir against its Parquet files; panics
/// with what is wrong. Read the manifests before the log: the log only
/// grows.
fn check_disk(data: &Path, log: impl FnOnce() -> LogIds) {
    let mut manifests = Vec::new();
    if let Ok(dir) = std::fs::read_dir(data.join("checkpoints")) {
        for entry in dir {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let manifest = read_manifest(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                    .unwrap_or_else(|| panic!("{} vanished", path.display()));
                manifests.push(manifest);
            }
        }
    }
    let log = log();
    for manifest in manifests {
        let stream: Stream = manifest.stream.parse().unwrap();
        // Offset -> event id (None for a rejected row) of every row.
        let mut rows: HashMap<i64, Option<String>> = HashMap::new();
        for file in &manifest.files {
            let path = data.join(&file.path);
            let read = read_positions(&path)
                .unwrap_or_else(|e| panic!("{stream}: {} named by the manifest: {e}", file.path));
            assert_eq!(
                read.len() as u64,
                file.rows,
                "{stream}: rows of {}",
                file.path
            );
            for (partition, offset, id) in read {
                assert_eq!(partition, stream.partition, "{stream}: {}", file.path);
                assert!(
                    offset < manifest.next_offset,
                    "{stream}: {} holds offset {offset}, past the checkpoint {}",
                    file.path,
                    manifest.next_offset
                );
                assert!(
                    rows.insert(offset, id).is_none(),
                    "{stream}: offset {offset} twice in the files"
                );
            }
        }
        if stream.topic != Topic::Scans {
            continue;
        }
        let ids: HashMap<&str, i64> = rows
            .iter()
            .filter_map(|(o, id)| id.as_deref().map(|id| (id, *o)))
            .collect();
        for offset in 0..manifest.next_offset {
            if rows.contains_key(&offset) {
                continue;
            }
            // Only a repeat of an event an earlier offset holds may be
            // missing from the files.
            let repeat = log.as_ref().and_then(|log| {
                let id = log.get(&(stream.partition, offset))?;
                ids.get(id.as_str()).filter(|first| **first < offset)
            });
            assert!(
                repeat.is_some(),
                "{stream}: offset {offset} is below the checkpoint {} but in no file",
                manifest.next_offset
            );
        }
    }
}

/// `(log_partition, log_offset, event_id)` of every row of a Parquet file.
fn read_positions(path: &Path) -> Result<Vec<(i32, i64, Option<String>)>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("no column {name}"))
        };
        let partitions = column("log_partition")?;
        let partitions = partitions.as_any().downcast_ref::<Int32Array>().unwrap();
        let offsets = column("log_offset")?;
        let offsets = offsets.as_any().downcast_ref::<Int64Array>().unwrap();
        let ids = column("event_id")?;
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..batch.num_rows() {
            let id = (!ids.is_null(i)).then(|| ids.value(i).to_owned());
            out.push((partitions.value(i), offsets.value(i), id));
        }
    }
    Ok(out)
}

/// What the tables hold of the sent events, once they hold every
/// acknowledged one (or [`PATIENCE`] passed).
struct Tally {
    lost: usize,
    doubled: u64,
}

fn final_tally(base: &str, acked: &HashSet<String>, was_sent: &impl Fn(&str) -> bool) -> Tally {
    let ids = || -> HashMap<String, u64> {
        let mut ids = HashMap::new();
        for row in sql(base, "SELECT event_id FROM scans") {
            *ids.entry(row["event_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        ids
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let held = ids();
        if acked.iter().all(|id| held.contains_key(id)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_ready(base, PATIENCE);
    let ids = ids();
    let unknown: Vec<_> = ids.keys().filter(|id| !was_sent(id)).take(5).collect();
    assert!(unknown.is_empty(), "{base}: ids nobody sent: {unknown:?}");
    let counts = sql(
        base,
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM scans",
    );
    let n = counts[0]["n"].as_u64().unwrap();
    let distinct = counts[0]["d"].as_u64().unwrap();
    assert_eq!(
        n,
        ids.values().sum::<u64>(),
        "{base}: SQL counts the same rows"
    );
    Tally {
        lost: acked.iter().filter(|id| !ids.contains_key(*id)).count(),
        doubled: (n - distinct).max(ids.values().map(|c| c - 1).sum()),
    }
}

/// Prints the summary line and keeps it, replacing the line of an earlier
/// run for the same log, in `test-artifacts/crash-summary.txt`.
fn summarise(log: &str, runs: usize, kills: usize, acked: usize, tally: &Tally, seed: u64) {
    static FILE: Mutex<()> = Mutex::new(());
    let line = format!(
        "crash test ({log}): runs {runs}, kills {kills}, acknowledged {acked}, lost {}, doubled {}, seed {seed}",
        tally.lost, tally.doubled
    );
    eprintln!("{line}");
    let _one_writer = FILE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crash-summary.txt");
    let prefix = format!("crash test ({log}):");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    lines.push(line);
    lines.sort();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

/// Waits before a kill: mostly while batches flow (so the kill lands
/// mid-batch, mid-flush or mid-checkpoint), sometimes right after the
/// start (mid-recovery).
fn wait_to_kill(rng: &mut StdRng, scanners: &Scanners) {
    if rng.random_bool(0.2) {
        std::thread::sleep(Duration::from_micros(rng.random_range(0..300_000)));
    } else {
        scanners.wait_for_progress();
        std::thread::sleep(Duration::from_micros(rng.random_range(0..1_000_000)));
    }
}

fn settings(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("footfall.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn kill_9_of_the_embedded_server_loses_and_doubles_no_acknowledged_event() {
    let (runs, seed) = (runs(6), seed());
    eprintln!("crash test (embedded): seed {seed} (FOOTFALL_CRASH_SEED replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = settings(dir.path(), QUERY_SETTINGS);
    let config = config.to_str().unwrap();
    let port = free_port();
    let start = || Server::spawn("serve", &data, port, &["--config", config]);

    let mut server = start();
    wait_ready(&server.base(), PATIENCE);
    let scanners = Scanners::start(vec![server.base()]);
    let mut kills = 0;
    for _ in 0..runs {
        wait_to_kill(&mut rng, &scanners);
        server.kill9();
        kills += 1;
        check_disk(&data, || None);
        server = start();
    }
    scanners.wait_for_progress();
    let (acked, was_sent) = scanners.stop();
    let tally = final_tally(&server.base(), &acked, &was_sent);
    check_disk(&data, || None);
    summarise("embedded", runs, kills, acked.len(), &tally, seed);
    assert_eq!((tally.lost, tally.doubled), (0, 0), "seed {seed}");
}

/// One process of the Kafka deployment, restarted on its port after a kill.
struct Process {
    command: &'static str,
    port: u16,
    server: Option<Server>,
}

#[test]
fn kill_9_of_ingest_workers_and_query_instances_on_kafka_loses_and_doubles_no_acknowledged_event() {
    let Some(bootstrap) = kafka_bootstrap() else {
        return;
    };
    let (runs, seed) = (runs(4), seed());
    eprintln!("crash test (Kafka): seed {seed} (FOOTFALL_CRASH_SEED replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let suffix = format!(".{}", unique("crash"));
    let config = settings(
        dir.path(),
        &format!(
            "{QUERY_SETTINGS}\n[kafka]\ntopic_suffix = \"{suffix}\"\nsession_timeout_ms = 6000\n"
        ),
    );
    let group = unique("crash");
    let start = |command: &str, port: u16| {
        Server::spawn(
            command,
            &data,
            port,
            &[
                "--kafka",
                &bootstrap,
                "--config",
                config.to_str().unwrap(),
                "--group",
                &group,
            ],
        )
    };
    let mut processes: Vec<Process> = ["query", "query", "ingest", "ingest"]
        .into_iter()
        .map(|command| {
            let port = free_port();
            Process {
                command,
                port,
                server: Some(start(command, port)),
            }
        })
        .collect();
    for p in &processes {
        wait_ready(&p.server.as_ref().unwrap().base(), PATIENCE);
    }
    let topic = format!("footfall.scans.v1{suffix}");
    let log = || Some(topic_ids(&bootstrap, &topic));

    let scanners = Scanners::start(
        processes
            .iter()
            .filter(|p| p.command == "ingest")
            .map(|p| p.server.as_ref().unwrap().base())
            .collect(),
    );
    let mut kills = 0;
    for _ in 0..runs {
        wait_to_kill(&mut rng, &scanners);
        let victim = &mut processes[rng.random_range(0..4)];
        victim.server.take().unwrap().kill9();
        kills += 1;
        scanners.pause(true);
        check_disk(&data, log);
        scanners.pause(false);
        victim.server = Some(start(victim.command, victim.port));
    }
    scanners.wait_for_progress();
    let (acked, was_sent) = scanners.stop();
    let mut worst = Tally {
        lost: 0,
        doubled: 0,
    };
    for p in processes.iter().filter(|p| p.command == "query") {
        let tally = final_tally(&p.server.as_ref().unwrap().base(), &acked, &was_sent);
        worst.lost = worst.lost.max(tally.lost);
        worst.doubled = worst.doubled.max(tally.doubled);
    }
    check_disk(&data, log);
    summarise("Kafka", runs, kills, acked.len(), &worst, seed);
    assert_eq!((worst.lost, worst.doubled), (0, 0), "seed {seed}");
}

/// Every record of a topic, read with kcat (a Kafka client that is not
/// ours): (partition, offset) -> event id.
fn topic_ids(bootstrap: &str, topic: &str) -> HashMap<(i32, i64), String> {
    let out = Command::new("kcat")
        .args(["-C", "-b", bootstrap, "-t", topic])
        .args(["-o", "beginning", "-e", "-q", "-f", "%p\\t%o\\t%s\\n"])
        .output()
        .expect("kcat runs (scripts/tools installs it)");
    assert!(out.status.success(), "kcat consumed {topic}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let mut next = || parts.next().unwrap_or_default();
            let (partition, offset, value) = (next(), next(), next());
            let value: serde_json::Value = serde_json::from_str(value).unwrap();
            (
                (partition.parse().unwrap(), offset.parse().unwrap()),
                value["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_disk_check_sees_an_offset_missing_from_the_files() {
    // The check itself must be able to fail: a manifest whose checkpoint
    // points one past what its files hold.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = settings(dir.path(), QUERY_SETTINGS);
    let server = Server::spawn("serve", &data, 0, &["--config", config.to_str().unwrap()]);
    wait_ready(&server.base(), PATIENCE);
    let (code, answer) = post(&format!("{}/v1/events", server.base()), &scans("x", 10));
    assert_eq!(code, 200, "{answer}");
    assert!(server.terminate().success());
    check_disk(&data, || None);

    let path = data.join("checkpoints/scans-0.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(manifest["next_offset"], 10);
    manifest["next_offset"] = 11.into();
    std::fs::write(&path, manifest.to_string()).unwrap();
    let failed = std::panic::catch_unwind(|| check_disk(&data, || None)).unwrap_err();
    let why = failed.downcast_ref::<String>().unwrap();
    assert!(
        why.contains("offset 10 is below the checkpoint 11"),
        "{why}"
    );
}
