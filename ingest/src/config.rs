//! Ingest settings. Limits are in bytes and milliseconds, as named.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest request body read, compressed or not. 16 MiB holds about
    /// 60,000 scans: far beyond a scanner's batch, small enough for memory.
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, so a small bomb cannot take
    /// memory. Scans compress about 8:1; 64 MiB leaves room.
    pub max_decompressed_bytes: usize,
    /// Largest single event. A scan is about 150 bytes; 16 KiB is generous.
    pub max_event_bytes: usize,
    /// Most events in one batch; each gets a line in the answer.
    pub max_events: usize,
    /// How far ahead of the received time an event's `ts` may be before it is
    /// refused as `clock_skew`. Five minutes, per the contract.
    pub max_clock_skew_ms: i64,
    /// The `Retry-After` sent with a 503, in seconds.
    pub retry_after_s: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_event_bytes: 16 << 10,
            max_events: 50_000,
            max_clock_skew_ms: 5 * 60 * 1000,
            retry_after_s: 1,
        }
    }
}
