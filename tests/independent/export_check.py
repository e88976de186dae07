#!/usr/bin/env python3
"""Opens a `footfall export` directory with DuckDB and checks that every table
and view in it holds exactly what the server answers on POST /v1/sql.

    export_check.py --export DIR --base URL

Prints one line per table; exits 1 if any differs.
"""

import argparse
import collections
import json
import os
import sys
import urllib.request

import duckdb


def server_rows(base, sql):
    request = urllib.request.Request(f"{base}/v1/sql?format=json", data=sql.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=300) as response:
        return [tuple(row.values()) for row in json.load(response)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--export", required=True)
    ap.add_argument("--base", required=True)
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.export, "schema.json")))
    con = duckdb.connect()
    failed = False
    for table in manifest["tables"]:
        name = table["name"]
        files = [os.path.join(args.export, f["path"]) for f in table["files"]]
        mine_cols, server_cols = [], []
        for c in table["columns"]:
            col, ty = c["name"], c["data_type"]
            q = f'"{col}"'
            if ty.startswith("Timestamp("):
                mine_cols.append(f"epoch_ms({q})")
                scale = 1000 if ty.startswith("Timestamp(Second") or ty.startswith("Timestamp(s") else 1
                server_cols.append(f"CAST({q} AS BIGINT) * {scale}")
            elif ty.startswith(("Date", "Decimal")):
                mine_cols.append(f"CAST({q} AS VARCHAR)")
                server_cols.append(f"CAST({q} AS VARCHAR)")
            elif ty.startswith("Float"):
                mine_cols.append(f"round({q}, 9)")
                server_cols.append(f"round({q}, 9)")
            else:
                mine_cols.append(q)
                server_cols.append(q)
        file_list = ", ".join(f"'{f}'" for f in files)
        mine = collections.Counter(con.execute(
            f"SELECT {', '.join(mine_cols)} FROM read_parquet([{file_list}])").fetchall())
        got = collections.Counter(server_rows(args.base, f'SELECT {", ".join(server_cols)} FROM "{name}"'))
        # JSON numbers come back as int or float: compare as given by each.
        if mine == got and sum(mine.values()) == table["rows"]:
            print(f"{name}: {table['rows']} rows in {len(files)} files agree")
            continue
        failed = True
        print(f"{name}: DIFFERS ({sum(mine.values())} rows in the export, {sum(got.values())} "
              f"from SQL, {table['rows']} in schema.json)")
        for row in list((mine - got).elements())[:5]:
            print(f"  only in the export: {row}")
        for row in list((got - mine).elements())[:5]:
            print(f"  only from SQL:      {row}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
