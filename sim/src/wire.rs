//! Line writing: records become wire-format v1 JSON lines (DESIGN.md,
//! "Events"), with fields in the documented order.
//!
//! Lines are assembled as bytes by hand for speed (a large run writes
//! millions per second). That is safe because every string written is ASCII
//! that needs no JSON escaping: venue scanner ids pass the loader's token rule
//! (`[A-Za-z0-9._:-]`), the currency is three capital letters, and badge,
//! ticket and event ids, words and prices are made here from ASCII letters,
//! digits and `-`. Tests parse every line.

use footfall_schemas::Venue;
use footfall_schemas::events::{Direction, TicketAction};
use std::ops::Range;

use crate::calendar::LocalClock;
use crate::config::TicketPrices;
use crate::emit::{Rec, RecKind};
use crate::faults::Malformed;
use crate::tickets::Badge;

/// Everything needed to write a record, besides the badge table.
pub(crate) struct LineWriter {
    /// Per scanner: writes `ts` with the local offset (see [`crate::faults::ScannerTraits`]).
    local_offset: Vec<bool>,
    /// Per scanner: `","scanner_id":"<id>","direction":"`, written whole.
    scanner_fields: Vec<Vec<u8>>,
    currency: Vec<u8>,
    unknown_scanner_prefix: Vec<u8>,
    /// `s<seed hex>-` and `t<seed hex>-`: event ids of different seeds differ.
    scan_id_prefix: Vec<u8>,
    ticket_id_prefix: Vec<u8>,
    clock: LocalClock,
}

impl LineWriter {
    pub fn new(
        venue: &Venue,
        seed: u64,
        local_offset: Vec<bool>,
        prices: &TicketPrices,
        unknown_scanner_prefix: &str,
    ) -> Self {
        Self {
            local_offset,
            scanner_fields: venue
                .scanners
                .iter()
                .map(|s| format!(r#"","scanner_id":"{}","direction":""#, s.id).into_bytes())
                .collect(),
            currency: prices.currency.clone().into_bytes(),
            unknown_scanner_prefix: unknown_scanner_prefix.as_bytes().to_vec(),
            scan_id_prefix: format!("s{seed:x}-").into_bytes(),
            ticket_id_prefix: format!("t{seed:x}-").into_bytes(),
            clock: LocalClock::new(venue.time_zone),
        }
    }

    /// Appends the line of `rec` (no newline) to `out`. Returns where its
    /// event id sits in `out`, or `None` when the line is cut before it can
    /// be read (a truncated malformed line).
    pub fn write(
        &mut self,
        badges: &[Badge],
        rec: &Rec,
        out: &mut Vec<u8>,
    ) -> Option<Range<usize>> {
        let start = out.len();
        match rec.kind {
            RecKind::Scan(direction) => Some(self.scan(out, badges, rec, direction, None)),
            RecKind::Ticket(action) => Some(self.ticket(out, badges, rec, action)),
            RecKind::Malformed(how, direction) => {
                let id = self.scan(out, badges, rec, direction, Some(how));
                if how != Malformed::Truncated {
                    return Some(id);
                }
                // Cut somewhere past the type, never at the very end: a line
                // that still parses would not be malformed.
                let len = (out.len() - start) as u64;
                out.truncate(start + 24 + (rec.id.wrapping_mul(7919) % (len - 26)) as usize);
                None
            }
        }
    }

    /// Writes `"event_id":"…"` content; returns its range in `out`.
    fn event_id(out: &mut Vec<u8>, prefix: &[u8], n: u64) -> Range<usize> {
        let start = out.len();
        out.extend_from_slice(prefix);
        push_num(out, n, 1);
        start..out.len()
    }

    fn scan(
        &mut self,
        out: &mut Vec<u8>,
        badges: &[Badge],
        rec: &Rec,
        direction: Direction,
        broken: Option<Malformed>,
    ) -> Range<usize> {
        let scanner = rec.what as usize;
        out.extend_from_slice(br#"{"type":"badge_scan","event_id":""#);
        let id = Self::event_id(out, &self.scan_id_prefix, rec.id);
        out.extend_from_slice(br#"","ts":""#);
        let offset = self.local_offset[scanner].then(|| self.clock.offset_secs(rec.ts_ms()));
        push_ts(out, rec.ts_ms(), offset, true);
        if broken != Some(Malformed::MissingBadge) {
            out.extend_from_slice(br#"","badge_id":""#);
            push_badge_id(out, &badges[rec.badge as usize]);
        }
        if broken == Some(Malformed::UnknownScanner) {
            out.extend_from_slice(br#"","scanner_id":""#);
            out.extend_from_slice(&self.unknown_scanner_prefix);
            out.push(b'-');
            push_num(out, rec.id % 16, 1);
            out.extend_from_slice(br#"","direction":""#);
        } else {
            out.extend_from_slice(&self.scanner_fields[scanner]);
        }
        out.extend_from_slice(direction.as_str().as_bytes());
        out.push(b'"');
        if broken == Some(Malformed::UnknownField) {
            out.extend_from_slice(br#","colour":"blue""#);
        }
        out.push(b'}');
        id
    }

    fn ticket(
        &mut self,
        out: &mut Vec<u8>,
        badges: &[Badge],
        rec: &Rec,
        action: TicketAction,
    ) -> Range<usize> {
        let b = &badges[rec.badge as usize];
        out.extend_from_slice(br#"{"type":"ticket","event_id":""#);
        let id = Self::event_id(out, &self.ticket_id_prefix, rec.id);
        out.extend_from_slice(br#"","ts":""#);
        // The ticketing system writes local time to the second.
        let offset = self.clock.offset_secs(rec.ts_ms());
        push_ts(out, rec.ts_ms(), Some(offset), false);
        out.extend_from_slice(br#"","ticket_id":"T-"#);
        push_num(out, u64::from(rec.badge) + 1, 7);
        out.extend_from_slice(br#"","badge_id":""#);
        push_badge_id(out, b);
        out.extend_from_slice(br#"","action":""#);
        out.extend_from_slice(action.as_str().as_bytes());
        out.extend_from_slice(br#"","ticket_type":""#);
        out.extend_from_slice(b.kind.as_str().as_bytes());
        out.extend_from_slice(br#"","channel":""#);
        out.extend_from_slice(b.channel.as_str().as_bytes());
        out.extend_from_slice(br#"","price":""#);
        push_num(out, u64::from(b.price_cents / 100), 1);
        out.push(b'.');
        push_num(out, u64::from(b.price_cents % 100), 2);
        out.extend_from_slice(br#"","currency":""#);
        out.extend_from_slice(&self.currency);
        out.extend_from_slice(b"\"}");
        id
    }
}

fn push_badge_id(out: &mut Vec<u8>, b: &Badge) {
    let (prefix, width) = b.prefix();
    out.extend_from_slice(prefix.as_bytes());
    push_num(out, u64::from(b.num), width);
}

/// `n` in decimal, zero-padded to at least `width` digits (at most 20).
fn push_num(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i.min(buf.len() - width.min(20))..]);
}

fn two(buf: &mut [u8], at: usize, n: u32) {
    buf[at] = b'0' + (n / 10 % 10) as u8;
    buf[at + 1] = b'0' + (n % 10) as u8;
}

/// RFC 3339: `2026-02-16T10:03:12.120Z`, or with `±hh:mm` when an offset
/// (seconds east of UTC) is given; milliseconds optional.
pub(crate) fn push_ts(out: &mut Vec<u8>, utc_ms: i64, offset_secs: Option<i32>, millis: bool) {
    let local_ms = utc_ms + i64::from(offset_secs.unwrap_or(0)) * 1000;
    let (y, m, d) = civil_from_days(local_ms.div_euclid(86_400_000));
    let in_day = local_ms.rem_euclid(86_400_000);
    let secs = (in_day / 1000) as u32;
    let mut b = *b"0000-00-00T00:00:00.000+00:00";
    two(&mut b, 0, (y / 100) as u32);
    two(&mut b, 2, (y % 100) as u32);
    two(&mut b, 5, m);
    two(&mut b, 8, d);
    two(&mut b, 11, secs / 3600);
    two(&mut b, 14, secs / 60 % 60);
    two(&mut b, 17, secs % 60);
    let mut end = 19;
    if millis {
        let ms = (in_day % 1000) as u32;
        b[20] = b'0' + (ms / 100) as u8;
        two(&mut b, 21, ms % 100);
        end = 23;
    }
    match offset_secs {
        None => {
            b[end] = b'Z';
            end += 1;
        }
        Some(o) => {
            b[end] = if o < 0 { b'-' } else { b'+' };
            let o = o.unsigned_abs() / 60;
            two(&mut b, end + 1, o / 60);
            b[end + 3] = b':';
            two(&mut b, end + 4, o % 60);
            end += 6;
        }
    }
    out.extend_from_slice(&b[..end]);
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, SecondsFormat, Utc};

    #[test]
    fn timestamps_match_chrono() {
        for ms in [
            0i64,
            1_771_236_192_120,
            1_771_120_800_000,
            951_782_400_999,
            4_102_444_799_001,
            1_709_164_800_000,
        ] {
            let t = DateTime::<Utc>::from_timestamp_millis(ms).expect("in range");
            let mut s = Vec::new();
            push_ts(&mut s, ms, None, true);
            assert_eq!(
                String::from_utf8(s).expect("ASCII"),
                t.to_rfc3339_opts(SecondsFormat::Millis, true)
            );
            for offset in [3600, -9000, 0, 19800] {
                let mut s = Vec::new();
                push_ts(&mut s, ms, Some(offset), false);
                let fixed = chrono::FixedOffset::east_opt(offset).expect("a valid offset");
                assert_eq!(
                    String::from_utf8(s).expect("ASCII"),
                    t.with_timezone(&fixed)
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                );
            }
        }
    }

    #[test]
    fn numbers() {
        let mut s = Vec::new();
        push_num(&mut s, 42, 6);
        push_num(&mut s, 0, 1);
        push_num(&mut s, 1_234_567, 4);
        push_num(&mut s, u64::MAX, 25);
        assert_eq!(
            String::from_utf8(s).expect("ASCII"),
            format!("00004201234567{}", u64::MAX)
        );
    }
}
