//! Two readers in one consumer group: the partitions are split, and handed
//! over at the checkpoint when a reader leaves.

use super::*;

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
                // Between a revocation and the next assignment: nothing held.
                Ok(Polled::Joining) if !positions.is_empty() => {
                    shared.violations.lock().unwrap().push(format!(
                        "{name} joining while it holds {:?}",
                        positions.keys().collect::<Vec<_>>()
                    ))
                }
                Ok(Polled::Joining) => {}
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
