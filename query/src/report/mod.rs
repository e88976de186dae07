//! Sponsor reports: what one exhibitor's stands got, computed from
//! `stand_visits` and `tickets` (so a report agrees with SQL), and rendered as
//! self-contained HTML, CSV or JSON.
//!
//! Invariant: a report shows nothing that could single out a visitor. Every
//! count below [`MIN_SHOWN`] is shown as "<5", dwell percentiles are withheld
//! under [`MIN_SHOWN`] visits, and other exhibitors appear only through the
//! pole's median stand and a rank.

mod render;

use chrono::{TimeZone, Timelike, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use footfall_schemas::Venue;

use crate::Query;
use crate::error::QueryError;
use crate::format::Format;
use crate::snapshot::Snapshot;

pub use render::{csv, html};

/// Smallest count shown as a number.
pub const MIN_SHOWN: u64 = 5;

/// A count as a report shows it: the number from [`MIN_SHOWN`] on, else
/// "<5" (in JSON too: a number or the string "<5").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count(pub u64);

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 < MIN_SHOWN {
            write!(f, "<{MIN_SHOWN}")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for Count {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 < MIN_SHOWN {
            s.serialize_str(&self.to_string())
        } else {
            s.serialize_u64(self.0)
        }
    }
}

/// One stand of the report, against its pole.
#[derive(Clone, Debug, Serialize)]
pub struct StandLine {
    pub stand_id: String,
    pub pole_id: String,
    pub pole_name: String,
    pub visits: Count,
    /// 1 for the pole's most visited stand; ties share a rank.
    pub rank_in_pole: usize,
    pub stands_in_pole: usize,
    /// Visits of the pole's median stand (stands without visits included).
    pub pole_median_visits: f64,
}

/// A sponsor report for one stand or all the stands of one exhibitor.
#[derive(Clone, Debug, Serialize)]
pub struct StandReport {
    pub exhibitor: String,
    pub exhibitor_name: String,
    pub venue: String,
    pub stands: Vec<StandLine>,
    /// Rows of `stand_visits` at these stands.
    pub visits: Count,
    /// Distinct badges among them.
    pub unique_visitors: Count,
    /// Visitors with visits here on two or more local days.
    pub returning_visitors: Count,
    /// Nearest-rank median and 90th percentile of `dwell_s`; absent under
    /// 5 visits.
    pub median_dwell_s: Option<u64>,
    pub p90_dwell_s: Option<u64>,
    /// Visits by local day (every day of the venue, zeros included).
    pub visits_per_day: Vec<(String, Count)>,
    /// Visits by local hour of `entered_at` (0-23), over all days.
    pub visits_per_hour: Vec<(u32, Count)>,
    /// The local hour with the most visits (the earliest on a tie).
    pub peak_hour: Option<u32>,
    /// Unique visitors by the type of their valid ticket (`none` without one).
    pub visitor_mix: Vec<(String, Count)>,
}

/// What the reports are built from: every stand visit, read once per
/// snapshot of the tables, so that `footfall report --all` does not recompute
/// the view for each exhibitor.
#[derive(Debug)]
struct Visits {
    rows: Vec<Visit>,
    /// Indexes into `rows` of each stand's visits.
    by_stand: HashMap<String, Vec<usize>>,
    /// Ticket type of each badge's valid ticket.
    ticket_type: HashMap<String, String>,
}

#[derive(Debug)]
struct Visit {
    badge: String,
    stand_id: String,
    local_day: String,
    entered_ms: i64,
    dwell_s: u64,
}

/// Builds reports, caching the visits of the current snapshot.
#[derive(Default)]
pub struct Reports {
    cache: Mutex<Option<(Weak<Snapshot>, Arc<Visits>)>>,
}

impl Reports {
    /// The report of one stand. Fails with `NotFound` for an unknown stand.
    pub async fn stand(&self, query: &Query, stand_id: &str) -> Result<StandReport, QueryError> {
        let stand = query
            .venue
            .stand(stand_id)
            .ok_or_else(|| QueryError::NotFound(format!("no stand {stand_id:?} at this venue")))?;
        let stands = vec![stand.id.clone()];
        self.build(query, &stand.exhibitor_id, &stands).await
    }

    /// The report of all the stands of one exhibitor. Fails with `NotFound`
    /// for an exhibitor without stands at this venue.
    pub async fn exhibitor(
        &self,
        query: &Query,
        exhibitor: &str,
    ) -> Result<StandReport, QueryError> {
        let stands: Vec<String> = query
            .venue
            .stands
            .iter()
            .filter(|s| s.exhibitor_id == exhibitor)
            .map(|s| s.id.clone())
            .collect();
        if stands.is_empty() {
            return Err(QueryError::NotFound(format!(
                "no exhibitor {exhibitor:?} at this venue"
            )));
        }
        self.build(query, exhibitor, &stands).await
    }

    async fn visits(&self, query: &Query) -> Result<Arc<Visits>, QueryError> {
        let snapshot = query.snapshot.get();
        if let Some((seen, visits)) = self.cache.lock().map_err(poisoned)?.as_ref()
            && seen.upgrade().is_some_and(|s| Arc::ptr_eq(&s, &snapshot))
        {
            return Ok(visits.clone());
        }
        let rows = rows(
            query,
            "SELECT badge, stand_id, CAST(local_day AS VARCHAR) AS local_day, \
             CAST(entered_at AS BIGINT) AS entered_ms, dwell_s FROM stand_visits",
        )
        .await?
        .into_iter()
        .map(|r| {
            Ok(Visit {
                badge: text(&r, "badge")?,
                stand_id: text(&r, "stand_id")?,
                local_day: text(&r, "local_day")?,
                entered_ms: r["entered_ms"].as_i64().ok_or_else(|| shape(&r))?,
                dwell_s: r["dwell_s"].as_u64().ok_or_else(|| shape(&r))?,
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
        // A badge's valid ticket: its ticket whose latest event is `issued`.
        let ticket_type = rows_map(
            query,
            "WITH latest AS ( \
                 SELECT ticket_id, last_value(action ORDER BY ts, event_id) AS action, \
                        last_value(ticket_type ORDER BY ts, event_id) AS ticket_type, \
                        last_value(badge ORDER BY ts, event_id) AS badge \
                 FROM tickets GROUP BY ticket_id) \
             SELECT badge, max(ticket_type) AS ticket_type FROM latest \
             WHERE action = 'issued' GROUP BY badge",
        )
        .await?;
        let mut by_stand: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, v) in rows.iter().enumerate() {
            by_stand.entry(v.stand_id.clone()).or_default().push(i);
        }
        let visits = Arc::new(Visits {
            rows,
            by_stand,
            ticket_type,
        });
        *self.cache.lock().map_err(poisoned)? = Some((Arc::downgrade(&snapshot), visits.clone()));
        Ok(visits)
    }

    async fn build(
        &self,
        query: &Query,
        exhibitor: &str,
        stands: &[String],
    ) -> Result<StandReport, QueryError> {
        let visits = self.visits(query).await?;
        Ok(compute(&query.venue, &visits, exhibitor, stands))
    }
}

fn compute(venue: &Venue, visits: &Visits, exhibitor: &str, stands: &[String]) -> StandReport {
    let ours: Vec<&Visit> = stands
        .iter()
        .filter_map(|s| visits.by_stand.get(s))
        .flatten()
        .map(|&i| &visits.rows[i])
        .collect();
    let per_stand: HashMap<&str, u64> = visits
        .by_stand
        .iter()
        .map(|(stand, rows)| (stand.as_str(), rows.len() as u64))
        .collect();
    let stand_lines = stands
        .iter()
        .filter_map(|id| venue.stand(id))
        .map(|stand| {
            let pole: Vec<u64> = venue
                .stands
                .iter()
                .filter(|s| s.pole_id == stand.pole_id)
                .map(|s| per_stand.get(s.id.as_str()).copied().unwrap_or(0))
                .collect();
            let mine = per_stand.get(stand.id.as_str()).copied().unwrap_or(0);
            StandLine {
                stand_id: stand.id.clone(),
                pole_id: stand.pole_id.clone(),
                pole_name: venue
                    .pole(&stand.pole_id)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                visits: Count(mine),
                rank_in_pole: 1 + pole.iter().filter(|&&n| n > mine).count(),
                stands_in_pole: pole.len(),
                pole_median_visits: median(&pole),
            }
        })
        .collect();

    let badges: BTreeSet<&str> = ours.iter().map(|v| v.badge.as_str()).collect();
    let mut days_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for v in &ours {
        days_of
            .entry(v.badge.as_str())
            .or_default()
            .insert(v.local_day.as_str());
    }
    let returning = days_of.values().filter(|d| d.len() >= 2).count() as u64;

    let mut dwell: Vec<u64> = ours.iter().map(|v| v.dwell_s).collect();
    dwell.sort_unstable();
    let shown = dwell.len() as u64 >= MIN_SHOWN;

    let mut per_day: BTreeMap<String, u64> =
        venue.days.iter().map(|d| (d.date.to_string(), 0)).collect();
    let mut per_hour = [0u64; 24];
    for v in &ours {
        *per_day.entry(v.local_day.clone()).or_default() += 1;
        if let Some(t) = Utc.timestamp_millis_opt(v.entered_ms).single() {
            per_hour[t.with_timezone(&venue.time_zone).hour() as usize] += 1;
        }
    }
    let peak_hour = per_hour
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .max_by(|(ha, a), (hb, b)| a.cmp(b).then(hb.cmp(ha)))
        .map(|(h, _)| h as u32);
    let (first, last) = per_hour
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .fold((24, 0), |(lo, hi), (h, _)| (lo.min(h), hi.max(h)));
    let visits_per_hour = if first > last {
        Vec::new()
    } else {
        (first..=last)
            .map(|h| (h as u32, Count(per_hour[h])))
            .collect()
    };

    let mut mix: BTreeMap<String, u64> = BTreeMap::new();
    for badge in &badges {
        let kind = visits
            .ticket_type
            .get(*badge)
            .cloned()
            .unwrap_or_else(|| "none".into());
        *mix.entry(kind).or_default() += 1;
    }

    let exhibitor_name = venue
        .stands
        .iter()
        .find(|s| s.exhibitor_id == exhibitor)
        .map(|s| s.exhibitor_name.clone())
        .unwrap_or_else(|| exhibitor.to_owned());
    StandReport {
        exhibitor: exhibitor.to_owned(),
        exhibitor_name,
        venue: venue.name.clone(),
        stands: stand_lines,
        visits: Count(ours.len() as u64),
        unique_visitors: Count(badges.len() as u64),
        returning_visitors: Count(returning),
        median_dwell_s: shown.then(|| nearest_rank(&dwell, 0.5)),
        p90_dwell_s: shown.then(|| nearest_rank(&dwell, 0.9)),
        visits_per_day: per_day.into_iter().map(|(d, n)| (d, Count(n))).collect(),
        visits_per_hour,
        peak_hour,
        visitor_mix: mix.into_iter().map(|(k, n)| (k, Count(n))).collect(),
    }
}

/// The value at rank ceil(p * n) of a sorted, non-empty slice.
fn nearest_rank(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median (mean of the middle two for an even count); 0 when empty.
fn median(values: &[u64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2] as f64,
        n => (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0,
    }
}

/// The answer of one query as JSON rows.
async fn rows(query: &Query, sql: &str) -> Result<Vec<serde_json::Value>, QueryError> {
    let result = query.engine.query(sql).await?;
    let body = Format::Json.encode(&result)?;
    serde_json::from_slice(&body).map_err(|e| QueryError::Internal(format!("report rows: {e}")))
}

async fn rows_map(query: &Query, sql: &str) -> Result<HashMap<String, String>, QueryError> {
    rows(query, sql)
        .await?
        .into_iter()
        .map(|r| Ok((text(&r, "badge")?, text(&r, "ticket_type")?)))
        .collect()
}

fn text(row: &serde_json::Value, key: &str) -> Result<String, QueryError> {
    row[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| shape(row))
}

fn shape(row: &serde_json::Value) -> QueryError {
    QueryError::Internal(format!("a report query returned an unexpected row: {row}"))
}

fn poisoned<T>(_: T) -> QueryError {
    QueryError::Internal("the report cache lock is poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_hidden_in_every_format() {
        assert_eq!(Count(4).to_string(), "<5");
        assert_eq!(Count(5).to_string(), "5");
        assert_eq!(serde_json::to_string(&Count(0)).unwrap(), "\"<5\"");
        assert_eq!(serde_json::to_string(&Count(12)).unwrap(), "12");
    }

    #[test]
    fn percentiles_by_nearest_rank_and_medians() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(nearest_rank(&v, 0.5), 50);
        assert_eq!(nearest_rank(&v, 0.9), 90);
        assert_eq!(nearest_rank(&[7], 0.9), 7);
        assert_eq!(median(&[3, 1, 2]), 2.0);
        assert_eq!(median(&[4, 1, 2, 3]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
