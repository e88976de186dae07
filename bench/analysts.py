"""The analysts' questions for bench/run, in the SQL of each engine.

Five questions (issue 7), each asked four ways:

- `view`: footfall through its documented views (`POST /v1/sql`);
- `raw`: footfall through SQL on `scans` (and `opening_hours`), no view;
- `duckdb`, `chdb`: the peers, in-process, with SQL computing the same
  thing from the exported `scans` Parquet files: the comparison the bar uses,
  since footfall's views are computed from `scans` at query time too;
- `duckdb_views`, `chdb_views`: the peers reading the exported view files
  (the view already computed by footfall at export time), for reference.

Every way must give the same rows (compared after sorting, timestamps as
naive UTC ISO strings, doubles to 6 decimals). The raw SQL of the three
engines is one text per question; only the functions the dialects spell
differently are filled in per engine (`ENGINES`).
"""

import datetime as dt
import re
import decimal

# Functions the three dialects spell differently.
ENGINES = {
    "footfall": {
        "ms": "CAST({} AS BIGINT)",
        "median": "median(CAST({} AS DOUBLE))",
        "idiv": "(({}) / ({}))",
        "nullable": "{}",
    },
    "duckdb": {
        "ms": "epoch_ms({})",
        "median": "quantile_cont(CAST({} AS DOUBLE), 0.5)",
        "idiv": "(({}) // ({}))",
        "nullable": "{}",
    },
    "chdb": {
        "ms": "toUnixTimestamp64Milli({})",
        "median": "quantileExactInclusive(0.5)(CAST({} AS Float64))",
        "idiv": "intDiv({}, {})",
        # lead() past the last row gives the type's default (1970 for a
        # timestamp) unless the type is nullable.
        "nullable": "toNullable({})",
    },
}

DWELL_CAP_S = 7200  # footfall's default `stand_visit_dwell_cap_s`

# name -> (view SQL, SQL on scans, SQL on the exported view files, order by)
# `{scans}`, `{opening_hours}`, `{footfall_hourly}`… name the relation;
# `{ms(x)}`-style calls are expanded per engine by `render`.
QUESTIONS = {
    "footfall per pole per hour": (
        "SELECT local_day, local_hour, zone_id AS pole_id, entries, visitors "
        "FROM footfall_hourly WHERE level = 'pole'",
        # `scans` holds each event once (docs/sql.md), so entries count rows.
        "SELECT local_day, local_hour, pole_id, count(*) AS entries, "
        "count(DISTINCT badge) AS visitors FROM {scans} "
        "WHERE direction = 'in' AND pole_id IS NOT NULL GROUP BY local_day, local_hour, pole_id",
        "SELECT local_day, local_hour, zone_id AS pole_id, entries, visitors "
        "FROM {footfall_hourly} WHERE level = 'pole'",
    ),
    "visits per stand per day": (
        "SELECT stand_id, local_day, count(*) AS visits FROM stand_visits GROUP BY stand_id, local_day",
        # A visit opens with an `in` at a stand not right after an `in` at
        # the same stand in the badge's sequence of the day.
        "SELECT stand_id, local_day, count(*) AS visits FROM ("
        " SELECT stand_id, local_day, zone_kind, direction,"
        "  LAG(CASE WHEN zone_kind = 'stand' AND direction = 'in' THEN stand_id END)"
        "   OVER (PARTITION BY badge, local_day ORDER BY ts, event_id) AS prev_in_stand"
        " FROM {scans}) s "
        "WHERE zone_kind = 'stand' AND direction = 'in' "
        "AND (prev_in_stand IS NULL OR prev_in_stand <> stand_id) "
        "GROUP BY stand_id, local_day",
        "SELECT stand_id, local_day, count(*) AS visits FROM {stand_visits} GROUP BY stand_id, local_day",
    ),
    "daily unique visitors": (
        "SELECT local_day, visitors FROM daily_attendance",
        "SELECT local_day, count(DISTINCT badge) AS visitors FROM {scans} "
        "WHERE zone_kind = 'gate' AND direction = 'in' GROUP BY local_day",
        "SELECT local_day, visitors FROM {daily_attendance}",
    ),
    "median dwell per stand": (
        "SELECT stand_id, {median(dwell_s)} AS median_dwell_s FROM stand_visits GROUP BY stand_id",
        # stand_visits' rules (docs/sql.md), keeping only what dwell needs: a
        # run of `in`s at one stand is a visit; the scan after its last `in`
        # (`next_ts` of the row whose next row is not an `in` there) closes it.
        "WITH marked AS ("
        " SELECT badge, local_day, ts, event_id, in_stand,"
        "  LAG(in_stand) OVER (PARTITION BY badge, local_day ORDER BY ts, event_id) AS prev_in_stand,"
        "  LEAD(in_stand) OVER (PARTITION BY badge, local_day ORDER BY ts, event_id) AS next_in_stand,"
        "  LEAD({nullable(ts)}) OVER (PARTITION BY badge, local_day ORDER BY ts, event_id) AS next_ts"
        " FROM (SELECT badge, local_day, ts, event_id,"
        "  CASE WHEN zone_kind = 'stand' AND direction = 'in' THEN stand_id END AS in_stand FROM {scans}) s"
        "), runs AS ("
        " SELECT *, SUM(CASE WHEN in_stand IS NOT NULL AND in_stand = prev_in_stand THEN 0 ELSE 1 END)"
        "  OVER (PARTITION BY badge, local_day ORDER BY ts, event_id"
        "        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run"
        " FROM marked"
        "), visits AS ("
        " SELECT local_day, in_stand AS stand_id, min(ts) AS entered_at,"
        "  max(CASE WHEN next_in_stand IS NULL OR next_in_stand <> in_stand THEN {ms(next_ts)} END) AS next_ms"
        " FROM runs WHERE in_stand IS NOT NULL GROUP BY badge, local_day, run, in_stand"
        "), timed AS ("
        " SELECT v.stand_id, {ms(v.entered_at)} AS entered_ms,"
        "  CASE WHEN v.next_ms IS NOT NULL THEN v.next_ms"
        "       WHEN o.closes_at IS NULL OR o.closes_at < v.entered_at THEN {ms(v.entered_at)}"
        "       ELSE {ms(o.closes_at)} END AS until_ms"
        " FROM visits v LEFT JOIN {opening_hours} o ON o.local_day = v.local_day"
        ") "
        "SELECT stand_id, {median(dwell_s)} AS median_dwell_s FROM ("
        " SELECT stand_id, CASE WHEN until_ms - entered_ms > " + str(DWELL_CAP_S * 1000) + ""
        "  THEN " + str(DWELL_CAP_S) + " ELSE {idiv(until_ms - entered_ms, 1000)} END AS dwell_s FROM timed"
        ") d GROUP BY stand_id",
        "SELECT stand_id, {median(dwell_s)} AS median_dwell_s FROM {stand_visits} GROUP BY stand_id",
    ),
    "pole-to-pole flows": (
        "SELECT local_day, from_pole, to_pole, moves, visitors FROM pole_flows",
        "SELECT local_day, prev_pole AS from_pole, pole_id AS to_pole, count(*) AS moves, "
        "count(DISTINCT badge) AS visitors FROM ("
        " SELECT local_day, badge, pole_id,"
        "  LAG(pole_id) OVER (PARTITION BY badge, local_day ORDER BY ts, event_id) AS prev_pole"
        " FROM {scans} WHERE pole_id IS NOT NULL) s "
        "WHERE prev_pole IS NOT NULL AND prev_pole <> pole_id "
        "GROUP BY local_day, prev_pole, pole_id",
        "SELECT local_day, from_pole, to_pole, moves, visitors FROM {pole_flows}",
    ),
}

RELATIONS = ("scans", "opening_hours", "footfall_hourly", "stand_visits", "daily_attendance", "pole_flows")


def render(sql, engine, export_dir=None):
    """The SQL for one engine: its functions, and its relations (footfall's
    tables, or the Parquet files of the export for the peers)."""

    fns = ENGINES[engine]

    def call(m):
        args = [a.strip() for a in m.group(2).split(",")]
        return fns[m.group(1)].format(*args)

    sql = re.sub(r"\{(\w+)\((.*?)\)\}", call, sql)
    for name in RELATIONS:
        if engine == "footfall":
            rel = name
        elif engine == "duckdb":
            rel = f"read_parquet('{export_dir}/{name}/*.parquet')"
        else:
            rel = f"file('{export_dir}/{name}/*.parquet', Parquet)"
        sql = sql.replace("{" + name + "}", rel)
    if engine == "chdb":
        # ClickHouse fills a LEFT JOIN's missing side with defaults unless told.
        sql += " SETTINGS join_use_nulls = 1"
    return sql


def normalise(table):
    """A pyarrow table as sorted tuples comparable across the engines."""

    def value(v):
        if isinstance(v, dt.datetime):
            if v.tzinfo is not None:
                v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return v.isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, (float, decimal.Decimal)):
            return round(float(v), 6)
        return v

    names = table.column_names
    rows = [tuple(value(r[n]) for n in names) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def differences(a, b, limit=3):
    """A short description of how two normalised results differ, or None."""
    if a == b:
        return None
    sa, sb = set(a), set(b)
    only_a, only_b = sorted(sa - sb, key=repr)[:limit], sorted(sb - sa, key=repr)[:limit]
    return f"{len(a)} vs {len(b)} rows; only in the first: {only_a}; only in the second: {only_b}"
