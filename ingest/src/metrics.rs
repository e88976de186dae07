//! Ingest's metrics, registered in the server's registry. Names follow
//! `footfall_ingest_<name>_<unit>[_total]`; labels come from bounded sets
//! (event type, outcome, reject code, HTTP status class).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use footfall_schemas::RejectCode;

#[derive(Clone)]
pub struct IngestMetrics {
    /// Events by `type` (badge_scan, ticket, unknown) and `outcome`
    /// (accepted, duplicate, rejected).
    pub events: IntCounterVec,
    /// Rejected events by `code`.
    pub rejected: IntCounterVec,
    /// Batches by `status` (HTTP status code).
    pub requests: IntCounterVec,
    /// Time from request to answer, by `status`.
    pub request_duration: HistogramVec,
    /// Time the event log took to hold a batch durably.
    pub append_duration: HistogramVec,
}

/// Latency buckets in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl IngestMetrics {
    /// Registers ingest's metrics. Fails if they are registered twice.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let events = IntCounterVec::new(
            Opts::new(
                "footfall_ingest_events_total",
                "Events received, by type and outcome.",
            ),
            &["type", "outcome"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "footfall_ingest_rejected_total",
                "Events rejected, by code.",
            ),
            &["code"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "footfall_ingest_requests_total",
                "Batches answered, by HTTP status.",
            ),
            &["status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "footfall_ingest_request_duration_seconds",
                "Time to answer a batch.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["status"],
        )?;
        let append_duration = HistogramVec::new(
            HistogramOpts::new(
                "footfall_ingest_log_append_duration_seconds",
                "Time for the event log to hold a batch.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(append_duration.clone()))?;
        // Every code appears from the start, so rates work before the first reject.
        for code in RejectCode::ALL {
            rejected.with_label_values(&[code.as_str()]);
        }
        Ok(Self {
            events,
            rejected,
            requests,
            request_duration,
            append_duration,
        })
    }
}
