//! What SQL can see: the event tables (snapshot of Parquet + memory), the
//! venue's dimension tables, and the analytic views.

mod by_day;
pub mod dimensions;
pub mod event_table;
mod hourly;
mod pole_moves;
mod sequence;
mod share;
pub mod stand_visits;
pub mod views;
