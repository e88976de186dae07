//! What the load generators of `bench/run` share: reading input files and
//! summarising latencies. Each binary prints one JSON object on stdout.

use anyhow::{Context, bail};
use std::path::Path;
use std::time::Duration;

/// One record of a topic dump: `topic<TAB>key<TAB>value`, as
/// `kcat -f '%t\t%k\t%s\n'` writes them.
#[derive(Debug)]
pub struct Dumped {
    pub topic: String,
    pub key: String,
    pub value: String,
}

/// Reads a topic dump; fails on a line that is not three tab-separated
/// fields, or on an empty dump.
pub fn read_dump(path: &Path) -> anyhow::Result<Vec<Dumped>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut records = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(topic), Some(key), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("{}: not topic<TAB>key<TAB>value: {line:?}", path.display());
        };
        records.push(Dumped {
            topic: topic.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
    if records.is_empty() {
        bail!("{}: empty", path.display());
    }
    Ok(records)
}

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug)]
pub struct Latencies {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[i - 1].as_secs_f64() * 1e3
        };
        Some(Self {
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = Latencies::of(&mut s).unwrap();
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        assert!(Latencies::of(&mut []).is_none());
    }
}
