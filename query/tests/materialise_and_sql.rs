//! The query service on a real embedded log: materialisation with dedup,
//! restart from the checkpoint, the views, and the SQL guard rails.

use arrow::util::pretty::pretty_format_batches;
use footfall_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use footfall_eventlog::{Append, EventLog, Topic};
use footfall_query::{Query, QueryConfig, QueryError, QueryMetrics, QueryOptions};
use footfall_schemas::record::ScanRecord;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scan_record(id: &str, ts: &str, badge: &str, scanner: &str, direction: &str) -> Append {
    let venue = footfall_schemas::venue::reference();
    let s = venue.scanner(scanner).unwrap();
    let value = serde_json::to_vec(&ScanRecord {
        v: 1,
        event_id: id,
        ts,
        received_at: ts,
        badge,
        scanner_id: &s.id,
        zone_kind: s.zone_kind.as_str(),
        zone_id: &s.zone_id,
        pole_id: s.pole_id.as_deref(),
        stand_id: s.stand_id.as_deref(),
        room_id: s.room_id.as_deref(),
        direction,
    })
    .unwrap();
    Append {
        topic: Topic::Scans,
        key: badge.as_bytes().to_vec(),
        value,
        dedup_id: None,
    }
}

async fn start(dir: &Path, log: Arc<dyn EventLog>, config: QueryConfig) -> Arc<Query> {
    Query::start(QueryOptions {
        venue: Arc::new(footfall_schemas::venue::reference()),
        log,
        data_dir: dir.to_path_buf(),
        group: "test".into(),
        config,
        metrics: QueryMetrics::register(&prometheus::Registry::new()).unwrap(),
    })
    .await
    .unwrap()
}

async fn table(query: &Query, sql: &str) -> String {
    let result = query
        .engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&result.batches).unwrap().to_string()
}

async fn count(query: &Query, sql: &str) -> i64 {
    let result = query.engine.query(sql).await.unwrap();
    let col = result.batches[0].column(0);
    col.as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

async fn wait_for(query: &Query, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = count(query, sql).await;
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: still {n}, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn scanners() -> (String, String, String) {
    let venue = footfall_schemas::venue::reference();
    let gate = venue
        .scanners
        .iter()
        .find(|s| s.zone_kind.as_str() == "gate")
        .unwrap()
        .id
        .clone();
    let mut stands = venue
        .scanners
        .iter()
        .filter(|s| s.zone_kind.as_str() == "stand");
    let a = stands.next().unwrap();
    let b = stands.find(|s| s.pole_id == a.pole_id).unwrap();
    (gate, a.id.clone(), b.id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_restart_and_hourly() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(&dir.path().join("log"), EmbeddedConfig::default()).unwrap());
    let (gate, s1, s2) = scanners();
    let config = QueryConfig {
        flush_interval_ms: 200,
        ..QueryConfig::default()
    };
    let query = start(dir.path(), log.clone(), config.clone()).await;
    log.append(vec![
        scan_record("e1", "2026-02-15T00:30:00.000Z", "a", &gate, "in"),
        scan_record("e2", "2026-02-15T02:30:00.000Z", "b", &gate, "in"),
        scan_record("e3", "2026-02-16T10:15:00.000Z", "a", &s1, "in"),
        scan_record("e3", "2026-02-16T10:15:00.000Z", "a", &s1, "in"), // a duplicate that reached the log
        scan_record("e4", "2026-02-16T10:20:00.000Z", "b", &s1, "in"),
        scan_record("e5", "2026-02-16T10:40:00.000Z", "a", &s2, "in"),
        scan_record("e6", "2026-02-16T10:50:00.000Z", "a", &s2, "out"),
        Append {
            topic: Topic::Scans,
            key: vec![],
            value: b"not json".to_vec(),
            dedup_id: None,
        },
    ])
    .await
    .unwrap();
    wait_for(&query, "SELECT count(*) FROM scans", 6).await;
    wait_for(
        &query,
        "SELECT count(*) FROM rejected WHERE code = 'bad_record'",
        1,
    )
    .await;
    let hourly = "SELECT CAST(local_hour AS VARCHAR) AS h, level, entries, visitors FROM footfall_hourly \
                  WHERE level <> 'stand' ORDER BY h, level";
    let before = table(&query, hourly).await;
    let expected = "\
+---------------------+-------+---------+----------+
| h                   | level | entries | visitors |
+---------------------+-------+---------+----------+
| 2026-02-15T01:00:00 | venue | 1       | 1        |
| 2026-02-15T02:00:00 | venue | 1       | 1        |
| 2026-02-16T10:00:00 | pole  | 3       | 2        |
+---------------------+-------+---------+----------+";
    assert_eq!(before, expected);

    // Stop (flushes), restart from the checkpoint: same answers, and an old
    // event id sent again is still a duplicate.
    tokio::task::spawn_blocking({
        let q = query.clone();
        move || q.shutdown()
    })
    .await
    .unwrap()
    .unwrap();
    drop(query);
    let files = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .count();
    assert!(files >= 1, "a checkpoint was written");
    let query = start(dir.path(), log.clone(), config).await;
    log.append(vec![scan_record(
        "e1",
        "2026-02-15T00:30:00.000Z",
        "a",
        &gate,
        "in",
    )])
    .await
    .unwrap();
    log.append(vec![scan_record(
        "e7",
        "2026-02-16T11:00:00.000Z",
        "c",
        &gate,
        "in",
    )])
    .await
    .unwrap();
    wait_for(&query, "SELECT count(*) FROM scans", 7).await;
    assert_eq!(
        count(&query, "SELECT count(*) FROM scans WHERE event_id = 'e1'").await,
        1
    );
    let after = table(
        &query,
        &hourly.replace(
            "WHERE",
            "WHERE local_hour < TIMESTAMP '2026-02-16 11:00:00' AND",
        ),
    )
    .await;
    assert_eq!(after, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_read_only_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(&dir.path().join("log"), EmbeddedConfig::default()).unwrap());
    let config = QueryConfig {
        sql_memory_limit_bytes: 64 << 20,
        sql_timeout_ms: 1_500,
        ..QueryConfig::default()
    };
    let query = start(dir.path(), log, config).await;

    for sql in [
        "DROP TABLE scans",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO scans SELECT * FROM scans",
        "DELETE FROM scans",
        "COPY (SELECT 1) TO '/tmp/footfall-copy.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let err = query.engine.query(sql).await.expect_err(sql);
        assert!(
            matches!(err, QueryError::NotReadOnly(_) | QueryError::Sql(_)),
            "{sql}: {err:?}"
        );
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{sql}");
    }
    assert!(!Path::new("/tmp/footfall-copy.csv").exists());
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
    ] {
        let err = query.engine.query(sql).await.expect_err(sql);
        assert!(matches!(err, QueryError::Sql(_)), "{sql}: {err:?}");
    }

    let err = query
        .engine
        .query("SELECT count(DISTINCT a.value + b.value * 1000000) FROM generate_series(1, 3000000) a, generate_series(1, 1000) b")
        .await
        .expect_err("a runaway query is stopped");
    assert!(
        matches!(err, QueryError::MemoryLimit(_) | QueryError::Timeout(_)),
        "{err:?}"
    );
    let err = query
        .engine
        .query("SELECT max(a.value * b.value) FROM generate_series(1, 100000) a, generate_series(1, 100000) b")
        .await
        .expect_err("a runaway query is stopped");
    assert!(
        matches!(err, QueryError::MemoryLimit(_) | QueryError::Timeout(_)),
        "{err:?}"
    );
    // And the engine carries on.
    assert_eq!(
        count(&query, "SELECT count(*) FROM stands").await as usize,
        footfall_schemas::venue::reference().stands.len()
    );
    let cols = count(
        &query,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'scans'",
    )
    .await;
    assert_eq!(cols, 15);
}
