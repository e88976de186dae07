//! Sends simulated lines to a footfall server the way scanners do: in send
//! order, in batches, paced against the simulated clock (or as fast as
//! possible), retrying a batch with the same event ids until it is
//! acknowledged, so a restart of the server loses nothing. Given several
//! servers (ingest workers), it sends each batch to the next one in turn,
//! and a batch that failed to the next one too, as a load balancer would.

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

use footfall_sim::Outgoing;

use crate::AppError;

pub struct Sender {
    client: reqwest::Client,
    urls: Vec<String>,
    /// Index of the server the next attempt goes to.
    next: usize,
    /// Lines per batch.
    pub batch: usize,
    /// Simulated seconds per wall-clock second; `None` for as fast as possible.
    pub speed: Option<f64>,
    /// How long one batch is retried before the sender gives up.
    pub retry_for: Duration,
    /// When paced, the longest wait for the next line: a longer quiet spell
    /// (the night, the weeks of online sales before the fair) is skipped.
    /// `None` keeps real gaps.
    pub max_idle: Option<Duration>,
    /// When paced, lines sent before this instant go at once (the weeks of
    /// ticket sales before the fair); pacing starts from it.
    pub fast_until: Option<DateTime<Utc>>,
    clock: Option<(DateTime<Utc>, Instant)>,
    pending: Vec<String>,
    pub stats: SendStats,
}

#[derive(Clone, Debug, Default)]
pub struct SendStats {
    pub lines: u64,
    pub batches: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Batches sent again after a failure.
    pub retries: u64,
}

impl Sender {
    /// A sender to these servers (at least one: an empty list panics).
    pub fn new(servers: &[String], batch: usize, speed: Option<f64>, retry_for: Duration) -> Self {
        assert!(!servers.is_empty(), "a sender needs a server");
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client without TLS or proxies builds"),
            urls: servers
                .iter()
                .map(|s| format!("{}/v1/events", s.trim_end_matches('/')))
                .collect(),
            next: 0,
            batch: batch.max(1),
            speed,
            retry_for,
            max_idle: None,
            fast_until: None,
            clock: None,
            pending: Vec::new(),
            stats: SendStats::default(),
        }
    }

    /// Queues a line, waiting first until its send time when paced. Fails
    /// when a batch cannot be delivered within `retry_for`.
    pub async fn push(&mut self, out: Outgoing) -> Result<(), AppError> {
        let fast = self.fast_until.is_some_and(|t| out.send_at < t);
        if let Some(speed) = self.speed.filter(|_| !fast) {
            let (sim_start, wall_start) = *self.clock.get_or_insert((out.send_at, Instant::now()));
            let sim_elapsed = (out.send_at - sim_start).to_std().unwrap_or_default();
            let mut due = wall_start + sim_elapsed.div_f64(speed);
            if let Some(max_idle) = self.max_idle
                && due > Instant::now() + max_idle
            {
                // Skip the quiet spell: this line becomes due now.
                self.clock = Some((out.send_at, Instant::now()));
                due = Instant::now();
            }
            if due > Instant::now() {
                // Scanners upload what they have before waiting.
                self.flush().await?;
                tokio::time::sleep_until(due.into()).await;
            }
        }
        self.pending.push(out.line);
        if self.pending.len() >= self.batch {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what is queued. Fails as [`Sender::push`].
    pub async fn flush(&mut self) -> Result<(), AppError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut body = self.pending.join("\n");
        body.push('\n');
        let lines = self.pending.len() as u64;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.post(&body).await {
                Ok(answer) => {
                    self.stats.lines += lines;
                    self.stats.batches += 1;
                    self.stats.accepted += answer.accepted;
                    self.stats.duplicates += answer.duplicates;
                    self.stats.rejected += answer.rejected;
                    self.pending.clear();
                    return Ok(());
                }
                Err(Retry::No(why)) => return Err(AppError::Remote(why)),
                Err(Retry::Yes(why)) => {
                    if started.elapsed() > self.retry_for {
                        return Err(AppError::Remote(format!(
                            "gave up after {:?}: {why}",
                            self.retry_for
                        )));
                    }
                    self.stats.retries += 1;
                    tracing::debug!(%why, "batch not acknowledged; sending it again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn post(&mut self, body: &str) -> Result<Answer, Retry> {
        let url = &self.urls[self.next % self.urls.len()];
        self.next = self.next.wrapping_add(1);
        let response = self
            .client
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| Retry::Yes(format!("cannot reach {url}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Retry::Yes(format!("reading the answer: {e}")))?;
        if status.is_server_error() {
            return Err(Retry::Yes(format!("{status}: {text}")));
        }
        if !status.is_success() {
            return Err(Retry::No(format!(
                "the server refused a batch: {status}: {text}"
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| Retry::No(format!("unexpected answer {text:?}: {e}")))
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

enum Retry {
    Yes(String),
    No(String),
}
