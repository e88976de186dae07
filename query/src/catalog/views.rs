//! The analytic views over the event and dimension tables. Each is
//! documented in `docs/sql.md`; dashboards and reports use these, so they all
//! agree. Each is specified in `views/<name>.sql`, one file per view, so
//! that they read (and diff) as SQL. Most are created from their file;
//! `footfall_hourly` is counted by day (`super::hourly`), `stand_visits` and
//! `pole_moves` are walks over each badge's day (`super::sequence`), each
//! held to its file by tests.

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use super::{hourly, pole_moves, stand_visits};
use crate::config::QueryConfig;

/// How a view is made.
enum View {
    /// A `CREATE VIEW` statement.
    Sql(&'static str),
    /// `footfall_hourly`, counted by its operator (DataFusion's distinct
    /// counts held every group's badges at once).
    Hourly,
    /// `stand_visits`, walked by its operator (SQL paid per badge-day
    /// partition, several times the sort).
    StandVisits,
    /// `pole_moves`, walked likewise.
    PoleMoves,
}

/// Every view, in creation order (a view may use the ones before it).
const VIEWS: &[(&str, View)] = &[
    ("footfall_hourly", View::Hourly),
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
            View::Hourly => hourly::register(ctx).await,
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
