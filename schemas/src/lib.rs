//! The shapes every footfall component agrees on: the v1 wire events sent by
//! scanners and ticketing, the enriched records kept in the event log, the
//! Arrow schemas of the SQL tables, and the venue model.
//!
//! Invariant: a value of [`events::Event`] or of a venue type is valid by
//! construction. Raw input is parsed once, here, and nowhere else.

pub mod events;
pub mod ids;
pub mod record;
pub mod tables;
pub mod venue;

pub use events::{Event, EventError, RejectCode};
pub use venue::{Venue, VenueError, ZoneKind};

/// The wire format version; carried in every log record and Kafka header.
pub const SCHEMA_VERSION: u32 = 1;
