//! The event tables the materialiser writes.

use arrow::datatypes::SchemaRef;
use footfall_schemas::tables;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Scans,
    Tickets,
    Rejected,
}

impl TableKind {
    pub const ALL: [TableKind; 3] = [Self::Scans, Self::Tickets, Self::Rejected];

    pub fn name(self) -> &'static str {
        match self {
            Self::Scans => "scans",
            Self::Tickets => "tickets",
            Self::Rejected => "rejected",
        }
    }

    pub fn schema(self) -> SchemaRef {
        match self {
            Self::Scans => tables::SCANS.clone(),
            Self::Tickets => tables::TICKETS.clone(),
            Self::Rejected => tables::REJECTED.clone(),
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
