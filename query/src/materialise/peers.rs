//! The streams other materialisers own.
//!
//! Query instances of one consumer group share a data dir: each checkpoints
//! the streams (partitions) it owns, and reads the others' manifests, so any
//! instance answers SQL for the whole fair. What a peer holds in memory only
//! shows up here once that peer flushes (its flush interval at most).
//!
//! Files named by a committed manifest are never deleted (only files no
//! manifest names are, by the stream's owner, after a while), so a snapshot
//! built from a manifest read here stays readable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use footfall_eventlog::Stream;

use super::checkpoint::{self, Manifest};

pub struct Peers {
    manifests: BTreeMap<Stream, (SystemTime, Manifest)>,
    last_read: Option<Instant>,
    every: Duration,
}

impl Peers {
    /// Reads the peers' manifests at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            manifests: BTreeMap::new(),
            last_read: None,
            every,
        }
    }

    /// Makes the next [`Peers::refresh`] read, whenever it comes.
    pub fn expire(&mut self) {
        self.last_read = None;
    }

    /// Re-reads the manifests of the streams `owned` does not name, when
    /// due, skipping those whose file did not change. Answers whether what
    /// the peers have committed changed. A manifest that cannot be read is
    /// logged and its last good version kept.
    pub fn refresh(&mut self, data_dir: &Path, owned: &impl Fn(Stream) -> bool) -> bool {
        if self.last_read.is_some_and(|t| t.elapsed() < self.every) {
            return false;
        }
        self.last_read = Some(Instant::now());
        let dir = data_dir.join("checkpoints");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let had = !self.manifests.is_empty();
                self.manifests.clear();
                return had;
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list the checkpoints");
                return false;
            }
        };
        let mut changed = false;
        let mut present = BTreeSet::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stream) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<Stream>().ok())
            else {
                continue;
            };
            if owned(stream) {
                continue;
            }
            present.insert(stream);
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if self
                .manifests
                .get(&stream)
                .is_some_and(|(seen, _)| *seen == modified)
            {
                continue;
            }
            match checkpoint::read_manifest(&entry.path()) {
                Ok(Some(manifest)) => {
                    self.manifests.insert(stream, (modified, manifest));
                    changed = true;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%stream, error = %e, "cannot read a peer's checkpoint"),
            }
        }
        let before = self.manifests.len();
        self.manifests.retain(|stream, _| present.contains(stream));
        changed || before != self.manifests.len()
    }

    /// The peers' last committed manifests.
    pub fn manifests(&self) -> impl Iterator<Item = (Stream, &Manifest)> {
        self.manifests.iter().map(|(s, (_, m))| (*s, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_eventlog::Topic;

    fn stream(partition: i32) -> Stream {
        Stream {
            topic: Topic::Scans,
            partition,
        }
    }

    #[test]
    fn reads_what_others_own_and_follows_their_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut peers = Peers::new(Duration::ZERO);
        assert!(!peers.refresh(dir.path(), &|_| false));

        let mut m = Manifest::empty(stream(0));
        checkpoint::save(dir.path(), stream(0), &m).unwrap();
        checkpoint::save(dir.path(), stream(1), &Manifest::empty(stream(1))).unwrap();
        std::fs::write(dir.path().join("checkpoints/notes.txt"), "not a stream").unwrap();
        let mine = |s: Stream| s == stream(1);
        assert!(peers.refresh(dir.path(), &mine));
        let seen: Vec<Stream> = peers.manifests().map(|(s, _)| s).collect();
        assert_eq!(seen, [stream(0)]);
        assert!(!peers.refresh(dir.path(), &mine), "nothing changed");

        std::thread::sleep(Duration::from_millis(10));
        m.next_offset = 42;
        checkpoint::save(dir.path(), stream(0), &m).unwrap();
        assert!(peers.refresh(dir.path(), &mine));
        assert_eq!(peers.manifests().next().unwrap().1.next_offset, 42);

        // Taking the stream over drops the peer's view of it.
        assert!(peers.refresh(dir.path(), &|_| true));
        assert_eq!(peers.manifests().count(), 0);
    }
}
