#!/usr/bin/env python3
"""Freshness of the live floor: scan accepted -> visible in /metrics and on
the live page (/v1/live), and the cost of one /metrics scrape.

Standard library only. Against a running footfall (fed or not):

    footfall serve --listen 127.0.0.1:8080 --data-dir /tmp/ff &
    footfall sim --days 1 --target http://127.0.0.1:8080     # some history
    python3 bench/live_freshness.py --base http://127.0.0.1:8080 --samples 100

One scan at a time goes through a gate's in-lane (the venue's entries go up
by one); "accepted" is when POST /v1/events answers 200; "metrics" is when a
/metrics poll (every 5 ms) first shows the new count; "page" is when the
server-sent events stream the page reads first carries it.
"""

import argparse
import json
import re
import statistics
import threading
import time
import urllib.request
from datetime import datetime, timedelta


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def post(url, body):
    req = urllib.request.Request(
        url, data=body.encode(), method="POST", headers={"Content-Type": "application/x-ndjson"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def venue_entries_metric(text, venue_id):
    m = re.search(
        r'^footfall_floor_entries_total\{level="venue",zone="%s"\} (\S+)$' % re.escape(venue_id),
        text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


class PageStream(threading.Thread):
    """Follows /v1/live; remembers when each venue entries total first arrived."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base = base
        self.first_seen = {}
        self.lock = threading.Lock()

    def run(self):
        with urllib.request.urlopen(self.base + "/v1/live", timeout=3600) as r:
            data = []
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    state = json.loads("".join(data))
                    data = []
                    venue = next((z for z in state["zones"] if z["level"] == "venue"), None)
                    if venue:
                        with self.lock:
                            self.first_seen.setdefault(venue["entries_total"], time.perf_counter())

    def when(self, total):
        with self.lock:
            return self.first_seen.get(total)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="http://127.0.0.1:8080")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--scanner", default="gate-main-in")
    args = ap.parse_args()
    base = args.base.rstrip("/")

    state = json.loads(get(base + "/v1/live/state"))
    venue_id = state["venue_id"]
    clock = datetime.fromisoformat((state.get("clock") or datetime.utcnow().isoformat() + "Z").replace("Z", "+00:00"))
    page = PageStream(base)
    page.start()
    time.sleep(1.0)

    to_metrics, to_page = [], []
    run = int(time.time())
    for i in range(args.samples):
        before = venue_entries_metric(get(base + "/metrics").decode(), venue_id)
        ts = (clock + timedelta(seconds=i + 1)).isoformat().replace("+00:00", "Z")
        event = {
            "type": "badge_scan",
            "event_id": f"fresh-{run}-{i}",
            "ts": ts,
            "badge_id": f"F-{run % 100000}-{i}",
            "scanner_id": args.scanner,
            "direction": "in",
        }
        status, body = post(base + "/v1/events", json.dumps(event))
        accepted = time.perf_counter()
        if status != 200 or json.loads(body).get("accepted") != 1:
            raise SystemExit(f"not accepted: {status} {body!r}")
        deadline = accepted + 30
        while True:
            now_count = venue_entries_metric(get(base + "/metrics").decode(), venue_id)
            if now_count > before:
                to_metrics.append(time.perf_counter() - accepted)
                break
            if time.perf_counter() > deadline:
                raise SystemExit("not visible in /metrics within 30 s")
            time.sleep(0.005)
        while page.when(int(now_count)) is None:
            if time.perf_counter() > deadline:
                raise SystemExit("not on the page stream within 30 s")
            time.sleep(0.005)
        to_page.append(page.when(int(now_count)) - accepted)
        time.sleep(0.05)

    sizes, times = [], []
    for _ in range(100):
        t = time.perf_counter()
        body = get(base + "/metrics")
        times.append(time.perf_counter() - t)
        sizes.append(len(body))
    samples = sum(1 for l in body.decode().splitlines() if l and not l.startswith("#"))

    def show(name, xs):
        print(
            f"{name:<28} p50 {pct(xs, 50) * 1000:7.0f} ms   p99 {pct(xs, 99) * 1000:7.0f} ms"
            f"   mean {statistics.mean(xs) * 1000:7.0f} ms   n={len(xs)}"
        )

    show("accepted -> /metrics", to_metrics)
    show("accepted -> page (SSE)", to_page)
    print(
        f"/metrics scrape: {sizes[-1]} bytes, {samples} samples, "
        f"p50 {pct(times, 50) * 1000:.1f} ms, p99 {pct(times, 99) * 1000:.1f} ms (n=100)"
    )


if __name__ == "__main__":
    main()
