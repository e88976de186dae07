//! The venue as the simulated visitors see it: which scanners they pass at
//! each gate, pole, stand and room, how attractive each stand and pole is, and
//! which zones each scanner counts for (the truth's view).
//!
//! Invariant: built once from a loaded [`Venue`]; every index here points
//! into `venue.scanners`, `venue.poles`, `venue.stands` or `venue.rooms`.

use footfall_schemas::{Venue, ZoneKind};
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use std::collections::HashMap;

/// A gate's lanes. When a gate's scanners are not split by direction, both
/// lists hold all of them.
#[derive(Clone, Debug)]
pub(crate) struct GateLanes {
    pub entry: Vec<u32>,
    pub exit: Vec<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct StandSpot {
    pub scanners: Vec<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct PoleSpot {
    pub entrance: Vec<u32>,
    /// Stands with at least one scanner, in file order (the aisle order).
    pub stands: Vec<StandSpot>,
    /// Cumulative stand popularity, for weighted picks.
    pub stand_cdf: Vec<f64>,
    /// How much a pole draws visitors before personal taste: bigger poles
    /// have more to see.
    pub pull: f64,
    /// Chance, after each stand, of moving on to another pole: visitors see
    /// more stands in a bigger pole (about its size to the power 0.7).
    pub move_on: f64,
}

/// The zones one scanner counts for, as indices per level.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ScannerZones {
    pub gate: bool,
    pub pole: Option<u32>,
    pub stand: Option<u32>,
    pub room: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct Layout {
    pub gates: Vec<GateLanes>,
    pub poles: Vec<PoleSpot>,
    pub rooms: Vec<Vec<u32>>,
    pub zones: Vec<ScannerZones>,
    /// A scanner id prefix no venue scanner has: malformed lines use it.
    pub unknown_scanner_prefix: String,
}

impl Layout {
    /// `rng` draws the stand popularities, fixed for the whole run.
    pub fn new(venue: &Venue, rng: &mut impl Rng) -> Self {
        let pole_index: HashMap<&str, u32> = venue
            .poles
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i as u32))
            .collect();
        let stand_index: HashMap<&str, u32> = venue
            .stands
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i as u32))
            .collect();
        let room_index: HashMap<&str, u32> = venue
            .rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i as u32))
            .collect();
        let gate_index: HashMap<&str, usize> = venue
            .gates
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.as_str(), i))
            .collect();

        let mut gates = vec![
            GateLanes {
                entry: Vec::new(),
                exit: Vec::new()
            };
            venue.gates.len()
        ];
        let mut pole_entrances = vec![Vec::new(); venue.poles.len()];
        let mut stand_scanners = vec![Vec::new(); venue.stands.len()];
        let mut rooms = vec![Vec::new(); venue.rooms.len()];
        let mut zones = Vec::with_capacity(venue.scanners.len());
        for (i, s) in venue.scanners.iter().enumerate() {
            let i = i as u32;
            let mut z = ScannerZones {
                pole: s
                    .pole_id
                    .as_deref()
                    .and_then(|p| pole_index.get(p).copied()),
                ..Default::default()
            };
            match s.zone_kind {
                ZoneKind::Gate => {
                    z.gate = true;
                    if let Some(&g) = gate_index.get(s.zone_id.as_str()) {
                        // Lane direction is only in the name; the venue model has none.
                        let lower = s.id.to_ascii_lowercase();
                        if lower.contains("out") || lower.contains("exit") {
                            gates[g].exit.push(i);
                        } else {
                            gates[g].entry.push(i);
                        }
                    }
                }
                ZoneKind::Pole => {
                    if let Some(p) = z.pole {
                        pole_entrances[p as usize].push(i);
                    }
                }
                ZoneKind::Stand => {
                    z.stand = s
                        .stand_id
                        .as_deref()
                        .and_then(|st| stand_index.get(st).copied());
                    if let Some(st) = z.stand {
                        stand_scanners[st as usize].push(i);
                    }
                }
                ZoneKind::Room => {
                    z.room = s
                        .room_id
                        .as_deref()
                        .and_then(|r| room_index.get(r).copied());
                    if let Some(r) = z.room {
                        rooms[r as usize].push(i);
                    }
                }
            }
            zones.push(z);
        }
        for g in &mut gates {
            if g.entry.is_empty() {
                g.entry = g.exit.clone();
            }
            if g.exit.is_empty() {
                g.exit = g.entry.clone();
            }
        }
        gates.retain(|g| !g.entry.is_empty());

        // Popularity is heavy-tailed: a few stands draw crowds.
        let popularity = LogNormal::new(0.0, 0.7).expect("constant parameters are valid");
        let mut poles: Vec<PoleSpot> = pole_entrances
            .into_iter()
            .map(|entrance| PoleSpot {
                entrance,
                stands: Vec::new(),
                stand_cdf: Vec::new(),
                pull: 0.0,
                move_on: 1.0,
            })
            .collect();
        for (st, stand) in venue.stands.iter().enumerate() {
            let Some(&p) = pole_index.get(stand.pole_id.as_str()) else {
                continue;
            };
            let scanners = std::mem::take(&mut stand_scanners[st]);
            if scanners.is_empty() {
                continue;
            }
            let pole = &mut poles[p as usize];
            let last = pole.stand_cdf.last().copied().unwrap_or(0.0);
            pole.stand_cdf.push(last + popularity.sample(rng));
            pole.stands.push(StandSpot { scanners });
        }
        for pole in &mut poles {
            let scanned = !pole.entrance.is_empty() || !pole.stands.is_empty();
            pole.pull = if scanned {
                (pole.stands.len() as f64 + 4.0).powf(0.6)
            } else {
                0.0
            };
            pole.move_on = 1.0 / (1.0 + 0.35 * (pole.stands.len() as f64).powf(0.7));
        }

        let mut unknown_scanner_prefix = String::from("unregistered");
        while venue
            .scanners
            .iter()
            .any(|s| s.id.starts_with(&unknown_scanner_prefix))
        {
            unknown_scanner_prefix.push('x');
        }
        Self {
            gates,
            poles,
            rooms,
            zones,
            unknown_scanner_prefix,
        }
    }
}

impl PoleSpot {
    /// A stand index by popularity.
    pub fn popular_stand(&self, rng: &mut impl Rng) -> Option<usize> {
        let total = *self.stand_cdf.last()?;
        let u = rng.random::<f64>() * total;
        Some(
            self.stand_cdf
                .partition_point(|&c| c <= u)
                .min(self.stands.len() - 1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reference_layout() {
        let venue = footfall_schemas::venue::reference();
        let layout = Layout::new(&venue, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        assert_eq!(layout.gates.len(), 2);
        for g in &layout.gates {
            assert_eq!((g.entry.len(), g.exit.len()), (1, 1));
            assert_ne!(g.entry, g.exit);
        }
        assert_eq!(layout.poles.len(), 4);
        assert_eq!(layout.poles[0].stands.len(), 180);
        assert!(layout.poles.iter().all(|p| p.entrance.len() == 1));
        assert_eq!(layout.rooms.len(), 3);
        assert!(
            venue
                .scanner(&format!("{}-1", layout.unknown_scanner_prefix))
                .is_none()
        );
    }
}
