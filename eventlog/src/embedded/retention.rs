//! Retention of the rejected topic: its records hold the raw text of
//! refused events, which may name a badge in clear, so they are dropped
//! once older than the limit (`[query] rejected_retention_s`), as Kafka's
//! `retention.ms` drops them on the broker.
//!
//! Invariant: the topic's newest record is never deleted, only emptied of
//! its raw text. The log derives a topic's next offset from its last key
//! when it opens; deleting that key would hand its offset out again, and a
//! materialiser whose checkpoint is past it would skip the new record.

use redb::{Database, Durability, ReadableTable};
use std::borrow::Cow;

use footfall_schemas::events::parse_timestamp;
use footfall_schemas::record::RejectedRecord;

use super::TABLES;
use crate::Topic;

/// Deletes the rejected records received before `before_ms` (Unix time in
/// ms), but the newest, whose raw text is emptied instead. Records are
/// stored in the order they were received, so the scan stops at the first
/// recent one: a pass costs the records it expires. Answers the records
/// deleted or emptied. Fails when the database cannot be written.
pub(super) fn expire_rejected(db: &Database, before_ms: i64) -> Result<u64, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_quick_repair(true);
    let changed;
    {
        let mut table = txn.open_table(TABLES[Topic::Rejected.index()])?;
        let last = table.last()?.map(|(k, _)| k.value());
        let mut expired = Vec::new();
        let mut emptied = None;
        for entry in table.iter()? {
            let (offset, value) = entry?;
            let (key, value) = value.value();
            // Only footfall's ingest writes this topic; a record it cannot
            // date is kept rather than guessed about.
            let Ok(record) = serde_json::from_slice::<RejectedRecord>(value) else {
                continue;
            };
            let Ok(received) = parse_timestamp(record.received_at) else {
                continue;
            };
            if received.timestamp_millis() >= before_ms {
                break;
            }
            if Some(offset.value()) != last {
                expired.push(offset.value());
            } else if !record.raw.is_empty() {
                let kept = RejectedRecord {
                    raw: Cow::Borrowed(""),
                    ..record
                };
                let kept = serde_json::to_vec(&kept).expect("a record of strings serializes");
                emptied = Some((offset.value(), key.to_vec(), kept));
            }
        }
        for offset in &expired {
            table.remove(offset)?;
        }
        changed = expired.len() as u64 + u64::from(emptied.is_some());
        if let Some((offset, key, value)) = emptied {
            table.insert(offset, (key.as_slice(), value.as_slice()))?;
        }
    }
    txn.commit()?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{EmbeddedConfig, EmbeddedLog};
    use crate::{Append, EventLog, Polled};
    use std::sync::Arc;
    use std::time::Duration;

    fn rejected(received_at: &str, raw: &str) -> Append {
        let record = RejectedRecord {
            v: 1,
            received_at,
            code: "schema",
            message: Cow::Borrowed("badge_id is required"),
            event_id: None,
            raw: Cow::Borrowed(raw),
        };
        Append {
            topic: Topic::Rejected,
            key: Vec::new(),
            value: serde_json::to_vec(&record).unwrap(),
            dedup_id: None,
        }
    }

    /// The rejected topic's records: offset and value.
    async fn rejected_records(log: &EmbeddedLog) -> Vec<(i64, Vec<u8>)> {
        let mut sub = log.subscribe("g", Arc::new(|_| 0)).await.unwrap();
        let mut out = Vec::new();
        loop {
            match sub.poll(100, Duration::from_millis(20)).await.unwrap() {
                Polled::Records(r) if r.is_empty() => return out,
                Polled::Records(r) => out.extend(
                    r.into_iter()
                        .filter(|d| d.stream.topic == Topic::Rejected)
                        .map(|d| (d.offset, d.value)),
                ),
                Polled::Assigned(_) | Polled::Revoked(_) | Polled::Joining => {}
            }
        }
    }

    fn ms(ts: &str) -> i64 {
        parse_timestamp(ts).unwrap().timestamp_millis()
    }

    #[tokio::test]
    async fn old_records_go_the_newest_keeps_its_offset_without_raw_text() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
            log.append(vec![
                rejected("2026-02-15T10:00:00.000Z", "{\"badge_id\":\"V-1\""),
                rejected("2026-02-15T11:00:00.000Z", "{\"badge_id\":\"V-2\""),
                rejected("2026-02-15T12:00:00.000Z", "{\"badge_id\":\"V-3\""),
            ])
            .await
            .unwrap();
            let cut = ms("2026-02-15T11:30:00Z");
            assert_eq!(log.expire_rejected(cut).await.unwrap(), 2);
            assert_eq!(log.expire_rejected(cut).await.unwrap(), 0, "idempotent");
            let left = rejected_records(&log).await;
            assert_eq!(left.len(), 1);
            let record: RejectedRecord = serde_json::from_slice(&left[0].1).unwrap();
            assert_eq!(
                (left[0].0, record.raw.as_ref()),
                (2, "{\"badge_id\":\"V-3\"")
            );

            // Past the newest too: it stays, emptied, so that its offset is
            // not handed out again.
            let cut = ms("2026-02-16T00:00:00Z");
            assert_eq!(log.expire_rejected(cut).await.unwrap(), 1);
            assert_eq!(log.expire_rejected(cut).await.unwrap(), 0);
        }
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        let left = rejected_records(&log).await;
        assert_eq!(left.len(), 1);
        let record: RejectedRecord = serde_json::from_slice(&left[0].1).unwrap();
        assert_eq!(left[0].0, 2);
        assert_eq!(
            (record.raw.as_ref(), record.code, record.received_at),
            ("", "schema", "2026-02-15T12:00:00.000Z")
        );
        let out = log
            .append(vec![rejected("2026-02-16T10:00:00.000Z", "late")])
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![crate::Appended::Stored {
                partition: 0,
                offset: 3
            }]
        );
    }
}
