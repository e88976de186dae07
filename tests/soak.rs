//! Soak test (issue 6): `footfall serve` on the embedded log, fed the
//! simulated fair at full speed, round after round, for
//! `FOOTFALL_SOAK_SECS` seconds (45 by default, for CI). By hand:
//!
//! ```sh
//! FOOTFALL_SOAK_SECS=1800 cargo test --release --workspace --test soak -- --nocapture
//! ```
//!
//! `footfall sim` writes the whole fair once, events and truth; a round
//! sends one fair day's lines (by the date of their `ts`; pre-fair ticket
//! sales go with the first day, a line without a readable `ts` with the
//! line before it) from four connections at once. The simulator only knows
//! the fair's seven days, so to go on without two rounds overlapping in the
//! truth, cycle N > 0 sends the fair again with `.cN` appended to every
//! event id and badge id: new visitors who behave the same, so that after
//! any round `footfall_hourly` must be exactly the truth times the cycles
//! that covered each day.
//!
//! After each round, once the server is ready (caught up): the table must
//! equal that, row for row, and the server's VmRSS and VmHWM are sampled,
//! printed and written to `test-artifacts/soak-memory.txt`. Rows are
//! flushed to Parquet every second (`flush_interval_ms`), so what may grow
//! is the live state (the materialiser's set of event ids seen, 18 to 36
//! bytes an id) and the working memory of the SQL that `settle` runs,
//! which the SQL pool bounds. At the end VmRSS must be within
//! [`BASE_BYTES`] + [`LIVE_BYTES_PER_EVENT`] per event + [`SQL_POOL_BYTES`]
//! + [`ALLOCATOR_BYTES`].
//! It was not, before redb's page cache was capped (`[embedded] cache_mib`,
//! 64 by default): at redb's 1 GiB default it held every page written, and
//! CI saw 1.83 GB at 1.44M events.

mod common;

use common::{HourlyRow, Server, assert_same, hourly, sim, truth, wait_ready};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DEFAULT_SECS: u64 = 45;
const BATCH_LINES: usize = 500;
const SENDERS: usize = 4;
/// Live state an accepted event may add: its id in the dedup set (at most
/// 36 bytes just after the set doubles) with room for the live counters.
const LIVE_BYTES_PER_EVENT: u64 = 64;
/// What the process holds whatever the data: code, runtimes, redb's 64 MiB
/// cache, DataFusion's session (a restarted server holds about 110 MB).
const BASE_BYTES: u64 = 256 << 20;
/// The SQL pool the soak's server runs with (`sql_memory_limit_bytes`).
/// `footfall_hourly` counts distinct badges per hour and zone from all of
/// `scans` at query time, so its working memory grows with the data
/// (235 MB at 620k events); the allocator keeps what a query freed.
const SQL_POOL_BYTES: u64 = 1 << 30;
/// What the allocator keeps beyond the pool's accounting (DataFusion counts
/// its buffers, not the allocator's free lists): a quarter of the pool.
const ALLOCATOR_BYTES: u64 = SQL_POOL_BYTES / 4;

/// One round's lines, and the fair day they belong to.
struct Day {
    date: String,
    lines: Vec<String>,
}

/// The simulated fair's lines grouped by fair day, in date order.
fn days_of(events: &Path, fair_days: &[String]) -> Vec<Day> {
    let mut days: BTreeMap<String, Vec<String>> =
        fair_days.iter().map(|d| (d.clone(), Vec::new())).collect();
    let first = fair_days.first().expect("the fair has days").clone();
    let mut current = first.clone();
    for line in std::fs::read_to_string(events).unwrap().lines() {
        if let Some(date) = field(line, "ts").and_then(|ts| ts.get(..10)) {
            current = if days.contains_key(date) {
                date.to_owned()
            } else if date < first.as_str() {
                first.clone()
            } else {
                panic!("a line dated {date}, after the fair: {line}")
            };
        }
        days.get_mut(&current).unwrap().push(line.to_owned());
    }
    days.into_iter()
        .map(|(date, lines)| Day { date, lines })
        .collect()
}

/// The string value of `"name":"…"` in a simulator line (compact JSON, no
/// escapes in ids or times), when the line holds all of it.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = line.find(&key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The line with `suffix` appended to its event id and badge id. A line
/// the simulator broke stays broken the same way: a cut line stays cut, a
/// line without a badge gets none.
fn renamed(line: &str, suffix: &str) -> String {
    let mut out = line.to_owned();
    for name in ["event_id", "badge_id"] {
        if let Some(value) = field(&out, name) {
            let key = format!("\"{name}\":\"{value}\"");
            out = out.replacen(&key, &format!("\"{name}\":\"{value}{suffix}\""), 1);
        }
    }
    out
}

/// Sends lines in batches from [`SENDERS`] connections, retrying what is
/// not acknowledged (503 while the log pushes back). Answers the events
/// accepted (new, not duplicates or rejected).
fn send(base: &str, lines: &[String]) -> u64 {
    let batches: Vec<String> = lines.chunks(BATCH_LINES).map(|c| c.join("\n")).collect();
    let next = AtomicUsize::new(0);
    let accepted = std::sync::atomic::AtomicU64::new(0);
    let url = format!("{base}/v1/events");
    std::thread::scope(|s| {
        for _ in 0..SENDERS {
            s.spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                while let Some(body) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let deadline = Instant::now() + Duration::from_secs(120);
                    let answer = loop {
                        let sent = client
                            .post(&url)
                            .header("content-type", "application/x-ndjson")
                            .body(body.clone())
                            .send();
                        match sent {
                            Ok(r) if r.status().is_success() => {
                                break r.json::<serde_json::Value>().unwrap();
                            }
                            Ok(r) if r.status().as_u16() != 503 => {
                                panic!("{url}: {} {}", r.status(), r.text().unwrap_or_default())
                            }
                            _ => {
                                assert!(Instant::now() < deadline, "{url} refused for 2 minutes");
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    };
                    accepted.fetch_add(answer["accepted"].as_u64().unwrap(), Ordering::Relaxed);
                }
            });
        }
    });
    accepted.into_inner()
}

/// What `footfall_hourly` must hold when `cycles` full cycles were sent and
/// the next one covered the days up to `through` (inclusive).
fn expected(truth: &[HourlyRow], cycles: u64, through: Option<&str>) -> Vec<HourlyRow> {
    let mut rows: Vec<HourlyRow> = truth
        .iter()
        .filter_map(|r| {
            let times = cycles + u64::from(through.is_some_and(|d| r.0.as_str() <= d));
            (times > 0).then(|| {
                let mut r = r.clone();
                r.4 *= times;
                r.5 *= times;
                r
            })
        })
        .collect();
    rows.sort();
    rows
}

/// Waits until `footfall_hourly` equals `want`: the server answers SQL
/// from what it has materialised, which catches up with the log within a
/// second or so. Fails with the differences if it still does not after two
/// minutes.
fn settle(base: &str, want: &[HourlyRow]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut got = hourly(base);
        got.sort();
        if got == want || Instant::now() >= deadline {
            assert_same(&got, want);
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

/// One sample, after a round.
struct Sample {
    round: usize,
    label: String,
    secs: f64,
    /// Events accepted so far (each is one more id in the dedup state).
    events: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

#[test]
fn the_fair_at_full_speed_matches_the_truth_and_memory_levels_off() {
    let secs: u64 = std::env::var("FOOTFALL_SOAK_SECS")
        .ok()
        .map(|s| {
            s.parse()
                .expect("FOOTFALL_SOAK_SECS is a number of seconds")
        })
        .unwrap_or(DEFAULT_SECS);
    println!(
        "soak for {secs} s (set FOOTFALL_SOAK_SECS to run longer: FOOTFALL_SOAK_SECS=1800 cargo test --release --workspace --test soak -- --nocapture)"
    );
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let truth_file = dir.path().join("truth.ndjson");
    sim(&[
        "--days",
        "0",
        "--seed",
        "29",
        "--out",
        events.to_str().unwrap(),
        "--truth",
        truth_file.to_str().unwrap(),
    ]);
    let truth = truth(&truth_file);
    let mut fair_days: Vec<String> = truth.iter().map(|r| r.0.clone()).collect();
    fair_days.dedup();
    let days = days_of(&events, &fair_days);
    assert_eq!(days.len(), 7, "the reference fair has seven days");

    let config = dir.path().join("soak.toml");
    std::fs::write(
        &config,
        format!("[query]\nflush_interval_ms = 1000\nsql_memory_limit_bytes = {SQL_POOL_BYTES}\n"),
    )
    .unwrap();
    let server = Server::spawn(
        "serve",
        &dir.path().join("data"),
        0,
        &["--config", config.to_str().unwrap()],
    );
    let base = server.base();
    wait_ready(&base, Duration::from_secs(60));
    let pid = server.child.id();

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut events_accepted = 0u64;
    let mut round = 0usize;
    'soak: for cycle in 0u64.. {
        for day in &days {
            let lines: Vec<String> = if cycle == 0 {
                day.lines.clone()
            } else {
                let suffix = format!(".c{cycle}");
                day.lines.iter().map(|l| renamed(l, &suffix)).collect()
            };
            events_accepted += send(&base, &lines);
            settle(&base, &expected(&truth, cycle, Some(day.date.as_str())));
            round += 1;
            let (rss_kib, hwm_kib) = memory_kib(pid);
            let sample = Sample {
                round,
                label: format!("cycle {cycle} day {}", day.date),
                secs: started.elapsed().as_secs_f64(),
                events: events_accepted,
                rss_kib,
                hwm_kib,
            };
            println!(
                "round {:3} ({}) at {:6.1} s: {:9} events, VmRSS {:7} KiB, VmHWM {:7} KiB",
                sample.round, sample.label, sample.secs, sample.events, rss_kib, hwm_kib
            );
            samples.push(sample);
            if started.elapsed() >= Duration::from_secs(secs) && round >= 3 {
                break 'soak;
            }
        }
    }
    write_samples(&samples);
    let last = samples.last().unwrap();
    let rss = last.rss_kib * 1024;
    let allowed =
        BASE_BYTES + last.events * LIVE_BYTES_PER_EVENT + SQL_POOL_BYTES + ALLOCATOR_BYTES;
    println!(
        "VmRSS {} MiB at {} events; allowed {} MiB (base + live state + SQL pool + allocator)",
        rss >> 20,
        last.events,
        allowed >> 20
    );
    assert!(
        rss <= allowed,
        "VmRSS {rss} bytes at {} events, more than the base, the live state and the SQL pool ({allowed}); see test-artifacts/soak-memory.txt",
        last.events
    );
}

fn write_samples(samples: &[Sample]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::from("round\tlabel\tsecs\tevents\tvm_rss_kib\tvm_hwm_kib\n");
    for s in samples {
        writeln!(
            text,
            "{}\t{}\t{:.1}\t{}\t{}\t{}",
            s.round, s.label, s.secs, s.events, s.rss_kib, s.hwm_kib
        )
        .unwrap();
    }
    std::fs::write(dir.join("soak-memory.txt"), text).unwrap();
}
