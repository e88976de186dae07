#!/usr/bin/env python3
"""An independent computation of footfall's analytic views.

Written from docs/sql.md (and the event contract in the README), not from the
Rust SQL: it reads the raw NDJSON the simulator wrote (what scanners and the
ticketing system sent), the venue TOML and the pseudonymisation key, computes
every view with Python and DuckDB, and compares each with what a running
server answers on POST /v1/sql. Exits 1 with the differences if any view
differs, 0 if all agree.

    views.py --venue VENUE.toml --events EVENTS.ndjson --key-file KEY --base URL

Sequence rules (stand visits, pole flows) are plain Python loops over each
badge's day; aggregations are DuckDB SQL over the cleaned events.
"""

import argparse
import bisect
import collections
import datetime as dt
import decimal
import hashlib
import hmac
import json
import re
import sys
import tempfile
import tomllib
import urllib.request
from zoneinfo import ZoneInfo

import duckdb

UTC = dt.timezone.utc
TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SCAN_FIELDS = {"type", "event_id", "ts", "badge_id", "scanner_id", "direction"}
TICKET_FIELDS = {"type", "event_id", "ts", "ticket_id", "badge_id", "action",
                 "ticket_type", "channel", "price", "currency"}
STEP = dt.timedelta(minutes=15)


def ms(t):
    """A UTC datetime as epoch milliseconds."""
    return int(round(t.timestamp() * 1000))


class Venue:
    def __init__(self, path):
        raw = tomllib.load(open(path, "rb"))
        self.id = raw["id"]
        self.tz = ZoneInfo(raw["time_zone"])
        self.stand_pole = {s["id"]: s["pole"] for s in raw.get("stands", [])}
        self.scanners = {}
        for s in raw["scanners"]:
            kind, zone = s["zone"].split(":", 1)
            self.scanners[s["id"]] = {
                "zone_kind": kind,
                "zone_id": zone,
                "pole_id": zone if kind == "pole" else self.stand_pole.get(zone) if kind == "stand" else None,
                "stand_id": zone if kind == "stand" else None,
                "room_id": zone if kind == "room" else None,
            }
        self.rooms = {r["id"]: r["capacity"] for r in raw.get("rooms", [])}
        self.hours = {}
        for d in raw["days"]:
            day = dt.date.fromisoformat(d["date"])
            self.hours[day] = (self.local(day, d["opens"]), self.local(day, d["closes"]))
        self.sessions = [
            {
                "session_id": s["id"], "room_id": s["room"], "title": s["title"], "kind": s["kind"],
                "starts_at": dt.datetime.fromisoformat(s["starts_at"]).replace(tzinfo=self.tz).astimezone(UTC),
                "ends_at": dt.datetime.fromisoformat(s["ends_at"]).replace(tzinfo=self.tz).astimezone(UTC),
            }
            for s in raw.get("sessions", [])
        ]

    def local(self, day, hhmm):
        t = dt.time.fromisoformat(hhmm)
        return dt.datetime.combine(day, t).replace(tzinfo=self.tz).astimezone(UTC)

    def local_day(self, t):
        return t.astimezone(self.tz).date()


def parse_ts(text):
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("no offset")
    return t.astimezone(UTC)


def read_events(path, venue, key):
    """The accepted events, first copy of each event_id, in file order."""
    seen = set()
    scans, tickets = [], []

    def pseudonym(badge):
        return hmac.new(key, badge.encode(), hashlib.sha256).hexdigest()[:32]

    for line in open(path, encoding="utf-8"):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if not isinstance(e, dict):
            continue
        kind = e.get("type")
        try:
            if kind == "badge_scan":
                if not set(e) <= SCAN_FIELDS or not {"event_id", "ts", "badge_id", "scanner_id"} <= set(e):
                    continue
                scanner = venue.scanners.get(e["scanner_id"])
                direction = e.get("direction", "in")
                if scanner is None or direction not in ("in", "out") or not e["badge_id"]:
                    continue
            elif kind == "ticket":
                if set(e) != TICKET_FIELDS or not e["badge_id"]:
                    continue
            else:
                continue
            if not TOKEN.match(e["event_id"]):
                continue
            ts = parse_ts(e["ts"])
        except (ValueError, TypeError, KeyError):
            continue
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        row = {"event_id": e["event_id"], "ts": ts, "local_day": venue.local_day(ts),
               "badge": pseudonym(e["badge_id"])}
        if kind == "badge_scan":
            row.update(scanner, direction=direction)
            scans.append(row)
        else:
            row.update(ticket_id=e["ticket_id"], action=e["action"], ticket_type=e["ticket_type"],
                       channel=e["channel"], price=decimal.Decimal(e["price"]))
            tickets.append(row)
    return scans, tickets


def sequences(scans):
    """Each badge's scans of each local day, by ts then event_id."""
    by = collections.defaultdict(list)
    for s in scans:
        by[(s["badge"], s["local_day"])].append(s)
    for seq in by.values():
        seq.sort(key=lambda s: (s["ts"], s["event_id"]))
    return by


def stand_visits(seqs, venue, cap_s):
    visits = []
    for (badge, day), seq in seqs.items():
        i = 0
        while i < len(seq):
            s = seq[i]
            if not (s["zone_kind"] == "stand" and s["direction"] == "in"):
                i += 1
                continue
            j = i
            while j + 1 < len(seq) and seq[j + 1]["zone_kind"] == "stand" \
                    and seq[j + 1]["direction"] == "in" and seq[j + 1]["stand_id"] == s["stand_id"]:
                j += 1
            entered = s["ts"]
            if j + 1 < len(seq):
                nxt = seq[j + 1]
                left = nxt["ts"]
                is_out = nxt["zone_kind"] == "stand" and nxt["stand_id"] == s["stand_id"] and nxt["direction"] == "out"
                rule = "out" if is_out else "next_scan"
            else:
                closes = venue.hours.get(day, (None, None))[1]
                left = closes if closes is not None and closes >= entered else entered
                rule = "closing"
            if (left - entered).total_seconds() > cap_s:
                left = entered + dt.timedelta(seconds=cap_s)
                rule = "cap"
            dwell = (ms(left) - ms(entered)) // 1000
            visits.append((badge, s["stand_id"], s["pole_id"], day, entered, left, dwell, rule))
            i = j + 1
    return visits


def pole_flows(seqs):
    moves = collections.Counter()
    who = collections.defaultdict(set)
    for (badge, day), seq in seqs.items():
        poles = [s["pole_id"] for s in seq if s["pole_id"] is not None]
        for a, b in zip(poles, poles[1:]):
            if a != b:
                moves[(day, a, b)] += 1
                who[(day, a, b)].add(badge)
    return [(d, a, b, n, len(who[(d, a, b)])) for (d, a, b), n in moves.items()]


def occupancy(scans, visits, venue):
    """(level, zone, at) -> inside, from per-zone, per-day move times."""
    moves = collections.defaultdict(list)  # (level, zone, day) -> [(ms, delta)]
    for s in scans:
        if s["zone_kind"] == "gate":
            key = ("venue", venue.id)
        elif s["zone_kind"] == "room":
            key = ("room", s["zone_id"])
        else:
            continue
        moves[key + (s["local_day"],)].append((ms(s["ts"]), 1 if s["direction"] == "in" else -1))
    for (badge, stand, pole, day, entered, left, dwell, rule) in visits:
        moves[("stand", stand, day)].append((ms(entered), 1))
        moves[("stand", stand, day)].append((ms(left), -1))
    zones = {("venue", venue.id)}
    for sc in venue.scanners.values():
        if sc["zone_kind"] in ("stand", "room"):
            zones.add((sc["zone_kind"], sc["zone_id"]))
    rows = []
    for day, (opens, closes) in venue.hours.items():
        grid = []
        at = opens
        while at <= closes:
            grid.append(at)
            at += STEP
        pole_sum = collections.Counter()
        for level, zone in zones:
            ev = sorted(moves.get((level, zone, day), []))
            times = [t for t, _ in ev]
            prefix = [0]
            for _, d in ev:
                prefix.append(prefix[-1] + d)
            for at in grid:
                inside = max(0, prefix[bisect.bisect_left(times, ms(at))])
                rows.append((level, zone, ms(at), inside))
                if level == "stand":
                    pole_sum[(venue.stand_pole[zone], ms(at))] += inside
        poles = {venue.stand_pole[z] for (lvl, z) in zones if lvl == "stand"}
        for pole in poles:
            for at in grid:
                rows.append(("pole", pole, ms(at), pole_sum[(pole, ms(at))]))
    return rows


def duck_views(con, venue):
    """The aggregate views in DuckDB SQL, from docs/sql.md."""
    out = {}
    out["session_attendance"] = con.execute("""
        SELECT s.session_id, s.room_id, s.title, s.kind, epoch_ms(s.starts_at), epoch_ms(s.ends_at),
               (SELECT count(DISTINCT c.badge) FROM scans c
                 WHERE c.zone_kind = 'room' AND c.room_id = s.room_id AND c.direction = 'in'
                   AND c.ts >= s.starts_at - INTERVAL 15 MINUTE AND c.ts < s.ends_at) AS attendees,
               r.capacity
        FROM sessions s JOIN rooms r USING (room_id)""").fetchall()
    out["session_attendance"] = [row + (row[6] / row[7] if row[7] else None,) for row in out["session_attendance"]]
    out["daily_attendance"] = con.execute("""
        WITH g AS (SELECT DISTINCT badge, local_day FROM scans WHERE zone_kind = 'gate' AND direction = 'in'),
             f AS (SELECT badge, min(local_day) AS first FROM g GROUP BY badge)
        SELECT strftime(g.local_day, '%Y-%m-%d'), count(*),
               count(*) FILTER (WHERE g.local_day = f.first),
               count(*) FILTER (WHERE g.local_day <> f.first)
        FROM g JOIN f USING (badge) GROUP BY g.local_day""").fetchall()
    out["ticket_sales"] = con.execute("""
        SELECT strftime(local_day, '%Y-%m-%d'), ticket_type, channel,
               count(*) FILTER (WHERE action = 'issued'), count(*) FILTER (WHERE action = 'cancelled'),
               coalesce(sum(price) FILTER (WHERE action = 'issued'), 0)
                 - coalesce(sum(price) FILTER (WHERE action = 'cancelled'), 0)
        FROM tickets GROUP BY ALL""").fetchall()
    out["no_shows"] = con.execute("""
        WITH ranked AS (
            SELECT *, row_number() OVER (PARTITION BY ticket_id ORDER BY ts DESC, event_id DESC) AS r FROM tickets),
             valid AS (SELECT * FROM ranked WHERE r = 1 AND action = 'issued')
        SELECT ticket_type, count(*),
               count(*) FILTER (WHERE badge NOT IN
                   (SELECT badge FROM scans WHERE zone_kind = 'gate' AND direction = 'in'))
        FROM valid GROUP BY ticket_type""").fetchall()
    return out


# Each view: the server's SELECT (instants as epoch ms, days as text) and how
# to normalise a value for comparison.
SERVER_SQL = {
    "stand_visits": "SELECT badge, stand_id, pole_id, CAST(local_day AS VARCHAR), CAST(entered_at AS BIGINT), "
                    "CAST(left_at AS BIGINT), dwell_s, closed_by FROM stand_visits",
    "session_attendance": "SELECT session_id, room_id, title, kind, CAST(starts_at AS BIGINT), "
                          "CAST(ends_at AS BIGINT), attendees, capacity, fill_ratio FROM session_attendance",
    "pole_flows": "SELECT CAST(local_day AS VARCHAR), from_pole, to_pole, moves, visitors FROM pole_flows",
    "daily_attendance": "SELECT CAST(local_day AS VARCHAR), visitors, new_visitors, returning_visitors "
                        "FROM daily_attendance",
    "occupancy": "SELECT level, zone_id, CAST(at AS BIGINT), inside FROM occupancy",
    "ticket_sales": "SELECT CAST(local_day AS VARCHAR), ticket_type, channel, issued, cancelled, "
                    "CAST(revenue AS VARCHAR) FROM ticket_sales",
    "no_shows": "SELECT ticket_type, tickets, no_shows FROM no_shows",
}


def norm(value):
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, decimal.Decimal):
        return str(value.quantize(decimal.Decimal("0.01")))
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return ms(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def server_rows(base, sql):
    # A JSON object keeps the SELECT's column order; json.load keeps it too.
    request = urllib.request.Request(f"{base}/v1/sql?format=json", data=sql.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=300) as response:
        rows = json.load(response)
    return [tuple(norm(v) for v in row.values()) for row in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venue", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--dwell-cap-s", type=int, default=7200)
    args = ap.parse_args()

    venue = Venue(args.venue)
    key = bytes.fromhex(open(args.key_file).read().strip())
    scans, tickets = read_events(args.events, venue, key)
    seqs = sequences(scans)
    visits = stand_visits(seqs, venue, args.dwell_cap_s)

    con = duckdb.connect()
    with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as f:
        for s in scans:
            f.write(json.dumps({k: (v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime)
                                    else v.isoformat() if isinstance(v, dt.date) else v)
                                for k, v in s.items()}) + "\n")
        scans_file = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as f:
        for t in tickets:
            f.write(json.dumps({k: (v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime)
                                    else v.isoformat() if isinstance(v, dt.date)
                                    else str(v) if isinstance(v, decimal.Decimal) else v)
                                for k, v in t.items()}) + "\n")
        tickets_file = f.name
    con.execute(f"""CREATE TABLE scans AS SELECT * FROM read_json('{scans_file}', columns = {{
        event_id: 'VARCHAR', ts: 'TIMESTAMP', local_day: 'DATE', badge: 'VARCHAR', zone_kind: 'VARCHAR',
        zone_id: 'VARCHAR', pole_id: 'VARCHAR', stand_id: 'VARCHAR', room_id: 'VARCHAR', direction: 'VARCHAR'}})""")
    con.execute(f"""CREATE TABLE tickets AS SELECT * FROM read_json('{tickets_file}', columns = {{
        event_id: 'VARCHAR', ts: 'TIMESTAMP', local_day: 'DATE', badge: 'VARCHAR', ticket_id: 'VARCHAR',
        action: 'VARCHAR', ticket_type: 'VARCHAR', channel: 'VARCHAR', price: 'DECIMAL(12,2)'}})""")
    con.execute("CREATE TABLE rooms (room_id VARCHAR, capacity BIGINT)")
    con.executemany("INSERT INTO rooms VALUES (?, ?)", list(venue.rooms.items()))
    con.execute("CREATE TABLE sessions (session_id VARCHAR, room_id VARCHAR, title VARCHAR, kind VARCHAR, "
                "starts_at TIMESTAMP, ends_at TIMESTAMP)")
    con.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)", [
        (s["session_id"], s["room_id"], s["title"], s["kind"],
         s["starts_at"].replace(tzinfo=None), s["ends_at"].replace(tzinfo=None)) for s in venue.sessions])

    mine = duck_views(con, venue)
    mine["stand_visits"] = visits
    mine["pole_flows"] = pole_flows(seqs)
    mine["occupancy"] = occupancy(scans, visits, venue)

    n_scans = server_rows(args.base, "SELECT count(*) AS n FROM scans")[0][0]
    n_tickets = server_rows(args.base, "SELECT count(*) AS n FROM tickets")[0][0]
    print(f"events: {len(scans)} scans, {len(tickets)} tickets here; "
          f"{n_scans} scans, {n_tickets} tickets on the server")
    failed = (n_scans, n_tickets) != (len(scans), len(tickets))
    for name, sql in SERVER_SQL.items():
        want = collections.Counter(tuple(norm(v) for v in row) for row in mine[name])
        got = collections.Counter(server_rows(args.base, sql))
        if want == got:
            print(f"{name}: {sum(got.values())} rows agree")
            continue
        failed = True
        missing = list((want - got).elements())[:5]
        extra = list((got - want).elements())[:5]
        print(f"{name}: DIFFERS ({sum(want.values())} rows here, {sum(got.values())} on the server)")
        for row in missing:
            print(f"  only here:      {row}")
        for row in extra:
            print(f"  only on server: {row}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
