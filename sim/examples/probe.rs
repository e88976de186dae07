// TEMPORARY probe (to be deleted): realism numbers and speed.
use footfall_sim::{SimConfig, Simulator};
use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let vpd: Option<u32> = args.get(1).and_then(|s| s.parse().ok());
    let days: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let venue = footfall_schemas::venue::reference();
    let config = SimConfig {
        visitors_per_day: vpd,
        days,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(&venue, config).unwrap();
    let start = Instant::now();
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create("/dev/null").unwrap());
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let analyse = vpd.unwrap_or(0) < 20000;
    let mut per_day: HashMap<String, u64> = HashMap::new();
    let mut room_in: HashMap<(String, String), u64> = HashMap::new();
    let mut gate: Vec<(i64, i32)> = Vec::new();
    let mut span: HashMap<(String, String), (i64, i64)> = HashMap::new();
    if args.get(3).map(String::as_str) == Some("fast") {
        while let Some(n) = sim.write_chunk(&mut out).unwrap() {
            lines += n as u64;
        }
        out.flush().unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "FAST lines {lines} in {secs:.2}s: {:.0} lines/s",
            lines as f64 / secs
        );
        println!("{:?}", sim.stats());
        return;
    }
    while let Some(chunk) = sim.next_chunk() {
        for o in &chunk {
            out.write_all(o.line.as_bytes()).unwrap();
            out.write_all(b"\n").unwrap();
            lines += 1;
            bytes += o.line.len() as u64 + 1;
            if analyse {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&o.line) {
                    if o.kind == footfall_sim::OutKind::Scan {
                        let ts = v["ts"].as_str().unwrap();
                        *per_day.entry(ts[..10].to_owned()).or_default() += 1;
                        let sc = v["scanner_id"].as_str().unwrap();
                        let t = chrono::DateTime::parse_from_rfc3339(ts)
                            .unwrap()
                            .timestamp_millis();
                        if sc.starts_with("room-") && v["direction"] == "in" {
                            *room_in
                                .entry((sc.to_owned(), ts[..13].to_owned()))
                                .or_default() += 1;
                        }
                        let key = (
                            v["badge_id"].as_str().unwrap().to_owned(),
                            ts[..10].to_owned(),
                        );
                        let e = span.entry(key).or_insert((t, t));
                        e.0 = e.0.min(t);
                        e.1 = e.1.max(t);
                    }
                }
            }
        }
    }
    out.flush().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "lines {lines} bytes {bytes} in {secs:.2}s: {:.0} lines/s, {:.0} MB/s",
        lines as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    println!("{:?}", sim.stats());
    if analyse {
        let mut d: Vec<_> = per_day.into_iter().collect();
        d.sort();
        println!("scans per ts-day {d:?}");
        let mut r: Vec<_> = room_in.into_iter().filter(|(_, n)| *n > 5).collect();
        r.sort();
        for x in r {
            println!("room {x:?}");
        }
        for (_, (a, b)) in &span {
            gate.push((*a, 1));
            gate.push((*b, -1));
        }
        gate.sort();
        let mut occ = 0;
        let mut peak = 0;
        let mut peak_t = 0;
        for (t, d) in gate {
            occ += d;
            if occ > peak {
                peak = occ;
                peak_t = t;
            }
            if t % 86_400_000 < 1000 {}
        }
        println!(
            "peak gate occupancy (out-scans missing inflate it) {peak} at {}",
            chrono::DateTime::from_timestamp_millis(peak_t).unwrap()
        );
    }
    let mut t = Vec::new();
    sim.truth().write_ndjson(&mut t).unwrap();
    println!("truth rows {} bytes {}", sim.truth().len(), t.len());
}
