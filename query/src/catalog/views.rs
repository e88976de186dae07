//! The analytic views over the event and dimension tables. Each is
//! documented in `docs/sql.md`; dashboards and reports use these, so they all
//! agree. All but `footfall_hourly`, `stand_visits` and `pole_moves` live
//! in `views/<name>.sql`, one file per view, so that they read (and diff) as
//! SQL; `stand_visits` and `pole_moves` are walks over each badge's day
//! (`super::sequence`), specified by their SQL files.

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use super::{pole_moves, stand_visits};
use crate::config::QueryConfig;

/// `footfall_hourly(local_day, local_hour, level, zone_id, entries, visitors)`
///
/// `entries` are distinct `in` events of the zone in that local hour,
/// `visitors` the distinct badges among them. `scans` holds each event once
/// (a resent event carries its badge, the log's key, so it reaches the same
/// partition, where the materialiser drops it), so entries count rows: a second
/// distinct count, over event ids, would double the work and the memory of
/// the grouping. A pole's zone is its own scanners and its stands'
/// (`pole_id` is set on both); the venue's is its gates. Rows only where
/// entries > 0 (grouping guarantees it).
const FOOTFALL_HOURLY: &str = "
CREATE VIEW footfall_hourly AS
WITH entries AS (
    SELECT local_day, local_hour, badge, zone_kind, zone_id, pole_id
    FROM scans WHERE direction = 'in'
)
SELECT local_day, local_hour, 'venue' AS level, (SELECT venue_id FROM venue) AS zone_id,
       count(*) AS entries, count(DISTINCT badge) AS visitors
FROM entries WHERE zone_kind = 'gate' GROUP BY local_day, local_hour
UNION ALL
SELECT local_day, local_hour, 'pole', pole_id,
       count(*), count(DISTINCT badge)
FROM entries WHERE pole_id IS NOT NULL GROUP BY local_day, local_hour, pole_id
UNION ALL
SELECT local_day, local_hour, 'stand', zone_id,
       count(*), count(DISTINCT badge)
FROM entries WHERE zone_kind = 'stand' GROUP BY local_day, local_hour, zone_id
UNION ALL
SELECT local_day, local_hour, 'room', zone_id,
       count(*), count(DISTINCT badge)
FROM entries WHERE zone_kind = 'room' GROUP BY local_day, local_hour, zone_id
";

/// How a view is made.
enum View {
    /// A `CREATE VIEW` statement.
    Sql(&'static str),
    /// `stand_visits`, walked by its operator (SQL paid per badge-day
    /// partition, several times the sort).
    StandVisits,
    /// `pole_moves`, walked likewise.
    PoleMoves,
}

/// Every view, in creation order (a view may use the ones before it).
const VIEWS: &[(&str, View)] = &[
    ("footfall_hourly", View::Sql(FOOTFALL_HOURLY)),
    ("stand_visits", View::StandVisits),
    (
        "session_attendance",
        View::Sql(include_str!("views/session_attendance.sql")),
    ),
    ("pole_moves", View::PoleMoves),
    (
        "pole_flows",
        View::Sql(include_str!("views/pole_flows.sql")),
    ),
    (
        "daily_attendance",
        View::Sql(include_str!("views/daily_attendance.sql")),
    ),
    ("occupancy", View::Sql(include_str!("views/occupancy.sql"))),
    (
        "ticket_sales",
        View::Sql(include_str!("views/ticket_sales.sql")),
    ),
    ("no_shows", View::Sql(include_str!("views/no_shows.sql"))),
];

/// The names of the views, in creation order.
pub fn names() -> impl Iterator<Item = &'static str> {
    VIEWS.iter().map(|(name, _)| *name)
}

/// Creates every view in `ctx` for this configuration, in creation order.
/// Fails (naming the view) if one does not plan.
pub async fn register(ctx: &SessionContext, config: &QueryConfig) -> Result<()> {
    for (name, view) in VIEWS {
        let made = match view {
            View::Sql(sql) => ctx.sql(sql).await.map(|_| ()),
            View::StandVisits => stand_visits::register(ctx, config.stand_visit_dwell_cap_s).await,
            View::PoleMoves => pole_moves::register(ctx).await,
        };
        made.map_err(|e| e.context(format!("view {name}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_file_creates_the_view_it_is_named_after() {
        for (name, view) in VIEWS {
            if let View::Sql(sql) = view {
                assert!(
                    sql.contains(&format!("CREATE VIEW {name} AS")),
                    "{name} must create {name}"
                );
            }
        }
    }
}
