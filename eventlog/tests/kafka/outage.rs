//! The broker paused past the producer timeout, then resumed; and a
//! cluster that never answers.

use super::*;
use footfall_testkit::PausedBroker;

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

    let paused = PausedBroker::start(&bootstrap);
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
