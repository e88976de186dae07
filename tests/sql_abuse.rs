//! SQL abuse against the real binary: statements that write, change
//! settings or read host files are refused; queries that would eat the
//! machine end at the memory limit, the timeout or the result cap; a
//! cancelled request stops its query; and ingest keeps answering quickly
//! meanwhile (its latency measured here, printed, and bounded).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, post, sql, wait_ready};

const TIMEOUT_MS: u64 = 5_000;
/// How late a query may stop after its timeout or its client going away.
const LATE_MS: u64 = 1_000;

fn scans(prefix: &str, n: usize) -> String {
    let venue = footfall_schemas::venue::reference();
    let ts = chrono::Utc::now().to_rfc3339();
    (0..n)
        .map(|i| {
            format!(
                "{{\"type\":\"badge_scan\",\"event_id\":\"{prefix}-{i}\",\"ts\":\"{ts}\",\"badge_id\":\"V-{i}\",\"scanner_id\":\"{}\"}}\n",
                venue.scanners[i % venue.scanners.len()].id
            )
        })
        .collect()
}

/// CPU time (user + system) the process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Disk the test's queries may spill to together.
const SPILL_BYTES: u64 = 256 << 20;
const SORTED: i64 = 2_500_000;
/// Sorts [`SORTED`] numbers as padded strings (about 110 MB of sort keys)
/// under a 128 MiB pool, and sums the values at every millionth place. The
/// padding sorts like the number alone: '-' is below every digit.
fn spilling_sort() -> String {
    format!(
        "SELECT sum(CASE WHEN rn % 1000000 = 0 THEN value ELSE 0 END) AS s, max(padded) AS top FROM (\
         SELECT value, padded, row_number() OVER (ORDER BY padded) AS rn FROM (\
         SELECT value, CAST(value AS VARCHAR) || '{PADDING}' AS padded FROM generate_series(1, {SORTED})))"
    )
}
const PADDING: &str = "-padding-so-the-sort-spills";

/// [`spilling_sort`]'s answer, computed here.
fn spilling_sort_answer() -> (i64, String) {
    let mut all: Vec<String> = (1..=SORTED).map(|v| format!("{v}{PADDING}")).collect();
    all.sort();
    let s = all
        .iter()
        .enumerate()
        .filter(|(i, _)| (i + 1) % 1_000_000 == 0)
        .map(|(_, v)| v[..v.find('-').unwrap()].parse::<i64>().unwrap())
        .sum();
    (s, all.pop().unwrap())
}

fn sql_error(base: &str, query: &str) -> (u16, serde_json::Value) {
    let (status, body) = post(&format!("{base}/v1/sql"), query);
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}

#[test]
fn sql_abuse_is_refused_or_stopped_while_ingest_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("footfall.toml");
    std::fs::write(
        &cfg,
        format!(
            "[query]\nsql_memory_limit_bytes = {}\nsql_spill_bytes = {}\nsql_memory_pool = \"fair\"\nsql_timeout_ms = {TIMEOUT_MS}\nsql_threads = 2\n",
            128 << 20,
            SPILL_BYTES
        ),
    )
    .unwrap();
    let server = Server::spawn(
        "serve",
        &dir.path().join("data"),
        0,
        &["--config", cfg.to_str().unwrap()],
    );
    let base = server.base();
    let pid = server.child.id();
    wait_ready(&base, Duration::from_secs(60));
    let (code, body) = post(&format!("{base}/v1/events"), &scans("seed", 1000));
    assert_eq!(code, 200, "{body}");

    // Ingest latency, sampled all along: a 20-event batch every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, base) = (stop.clone(), base.clone());
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let (code, body) =
                    post(&format!("{base}/v1/events"), &scans(&format!("lat{i}"), 20));
                latencies.push(started.elapsed());
                assert_eq!(code, 200, "ingest answers during SQL abuse: {body}");
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            latencies
        })
    };

    // 1. Nothing that writes, changes settings or reads host files.
    let copy_target = dir.path().join("copied.csv");
    let copy = format!("COPY (SELECT 1) TO '{}'", copy_target.display());
    let refused = [
        "CREATE TABLE t (a INT)",
        "CREATE TABLE t AS SELECT * FROM scans",
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE VIEW v AS SELECT 1",
        "DROP VIEW footfall_hourly",
        "DROP TABLE scans",
        "INSERT INTO scans SELECT * FROM scans",
        "DELETE FROM scans",
        "UPDATE scans SET badge = 'x'",
        copy.as_str(),
        "SET datafusion.execution.batch_size = 1",
        "SET datafusion.runtime.memory_limit = '100G'",
        "PREPARE p AS SELECT 1",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'file:///etc/passwd'",
        "SELECT * FROM 'http://127.0.0.1:1/x.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('/etc/hostname')",
        "SELECT * FROM read_json('/etc/passwd')",
        "SELECT 1; DROP VIEW footfall_hourly",
    ];
    for query in refused {
        let (status, body) = sql_error(&base, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
        assert!(
            !body.to_string().contains("root:"),
            "{query} read a host file: {body}"
        );
    }
    assert!(!copy_target.exists(), "COPY wrote a file");
    // The catalog is intact, the settings unchanged.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sql(
        &base,
        "SELECT count(*) AS n FROM scans WHERE event_id LIKE 'seed-%'",
    )[0]["n"]
        != 1000
    {
        assert!(Instant::now() < deadline, "the seeded scans are queryable");
        std::thread::sleep(Duration::from_millis(50));
    }
    sql(&base, "SELECT * FROM footfall_hourly LIMIT 1");
    let batch = sql(
        &base,
        "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'",
    );
    assert_ne!(batch[0]["value"], "1");

    // 2. Queries that would eat the machine end with an error in time.
    let heavy = [
        (
            "cross join",
            "SELECT count(*) AS n FROM generate_series(1, 300000) a CROSS JOIN generate_series(1, 300000) b",
        ),
        (
            "huge generate_series",
            "SELECT * FROM generate_series(1, 100000000000)",
        ),
        (
            "wide COUNT(DISTINCT)",
            "SELECT count(DISTINCT value) AS n FROM generate_series(1, 2000000000)",
        ),
        (
            "huge GROUP BY",
            "SELECT value % 1000000000 AS k, count(*) AS n FROM generate_series(1, 2000000000) GROUP BY k",
        ),
        (
            "sort past memory and the spill cap",
            "SELECT value FROM generate_series(1, 2000000000) ORDER BY random()",
        ),
    ];
    let mut outcomes = Vec::new();
    for (name, query) in heavy {
        let started = Instant::now();
        let (status, body) = sql_error(&base, query);
        let took = started.elapsed();
        let code = body["code"].as_str().unwrap_or("?").to_owned();
        assert_eq!(status, 400, "{name}: {body}");
        assert!(
            ["memory_limit", "timeout", "result_too_large"].contains(&code.as_str()),
            "{name}: {body}"
        );
        // Every operator yields to the SQL runtime every few batches
        // (engine.rs, YieldEveryOperator), so the timeout stops a query
        // on time even on a loaded machine (before: 16.7 s for 8 s).
        assert!(
            took < Duration::from_millis(TIMEOUT_MS + LATE_MS),
            "{name} ended after {took:?}"
        );
        outcomes.push(format!("{name}: {code} after {:.1} s", took.as_secs_f64()));
    }

    // 3. A sort larger than the memory pool spills and answers right.
    let explained = sql(&base, &format!("EXPLAIN ANALYZE {}", spilling_sort()));
    let plan = explained.iter().map(|r| r.to_string()).collect::<String>();
    let spills: u64 = plan
        .split("spill_count=")
        .skip(1)
        .map(|rest| rest.split(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(spills > 0, "the sort spilled: {plan}");
    let answer = &sql(&base, &spilling_sort())[0];
    let answer = (
        answer["s"].as_i64().unwrap(),
        answer["top"].as_str().unwrap().to_owned(),
    );
    assert_eq!(answer, spilling_sort_answer());
    outcomes.push(format!(
        "sort past the memory pool: {spills} spills, answered right"
    ));

    // 4. A request that goes away: the server's CPU before and after.
    let cancelled = {
        let base = base.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_millis(1_000))
                .build()
                .unwrap();
            client
                .post(format!("{base}/v1/sql"))
                .body("SELECT count(*) FROM generate_series(1, 1000000) a CROSS JOIN generate_series(1, 1000000) b")
                .send()
                .is_err()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_millis(500));
    let busy = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
    assert!(cancelled.join().unwrap(), "the client gave up");
    // Well before the server's own timeout would stop it: hyper drops the
    // handler when the connection closes, the query task is aborted and
    // stops at its next yield.
    std::thread::sleep(Duration::from_millis(LATE_MS));
    let (c1, t1) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_millis(1_000));
    let idle = (cpu_seconds(pid) - c1) / t1.elapsed().as_secs_f64();
    outcomes.push(format!(
        "cancelled request: {busy:.2} cores while running, {idle:.2} after"
    ));
    // Ingest's sampler and the materialiser use a few hundredths of a core.
    assert!(
        idle < 0.25,
        "the cancelled query still runs: {busy:.2} cores before, {idle:.2} after"
    );

    stop.store(true, Ordering::SeqCst);
    let mut latencies = sampler.join().expect("ingest answered every batch");
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let (p50, p99, max) = (pick(0.5), pick(0.99), pick(1.0));
    eprintln!(
        "SQL abuse: {}\ningest during abuse: {} batches of 20, p50 {p50:?}, p99 {p99:?}, max {max:?}",
        outcomes.join("; "),
        latencies.len()
    );
    assert!(
        p99 < Duration::from_millis(1_000),
        "ingest p99 {p99:?} while SQL is abused"
    );
    // The server is still whole.
    assert_eq!(common::get(&format!("{base}/healthz")).0, 200);
    let want = 1000 + 20 * latencies.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = sql(&base, "SELECT count(*) AS n FROM scans")[0]["n"]
            .as_u64()
            .unwrap();
        if n == want {
            break;
        }
        assert!(Instant::now() < deadline, "{n} scans, {want} acknowledged");
        std::thread::sleep(Duration::from_millis(100));
    }
}
