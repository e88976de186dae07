//! Prometheus and Grafana against the real thing: `promtool` on the alert
//! rules and on the `/metrics` output of a server fed by the simulator, and
//! a real Prometheus (Debian's `prometheus`, on loopback, temp storage)
//! scraping that server, through which every Grafana panel's query must be
//! valid and return data.
//!
//! The tools come from `scripts/tools install`; a missing one fails the
//! test with that hint rather than skipping it.

mod common;

use common::{BIN, free_port, get, sql, wait_ready};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from `scripts/tools install`, or a clear failure.
fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} is not installed: run scripts/tools install (Debian's prometheus package)")
    })
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = repo().join("dashboards/prometheus");
    let promtool = tool("promtool");
    let checked = run_ok(
        Command::new(&promtool)
            .args(["check", "rules", "rules/footfall.rules.yml"])
            .current_dir(&dir),
    );
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let mut tests: Vec<String> = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| format!("tests/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".yml"))
        .collect();
    tests.sort();
    assert!(tests.len() >= 2, "rule tests: {tests:?}");
    let tested = run_ok(
        Command::new(&promtool)
            .args(["test", "rules"])
            .args(&tests)
            .current_dir(&dir),
    );
    assert!(!tested.contains("FAILED"), "{tested}");
    // Every alert has a firing case and a quiet case in the unit tests.
    let rules = std::fs::read_to_string(dir.join("rules/footfall.rules.yml")).unwrap();
    let all_tests: String = tests
        .iter()
        .map(|t| std::fs::read_to_string(dir.join(t)).unwrap())
        .collect();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let cases: Vec<&str> = all_tests
            .split("alertname: ")
            .skip(1)
            .filter(|c| c.starts_with(alert))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert} has no quiet case"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_labels:")),
            "{alert} has no firing case"
        );
    }
}

/// `footfall serve` with the given settings file.
struct Footfall {
    child: Child,
    addr: SocketAddr,
}

impl Footfall {
    fn start(data_dir: &Path, settings: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(settings)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the footfall binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("footfall printed its address").unwrap();
            if let Some(rest) = line.strip_prefix("footfall listening on http://") {
                break rest.trim().parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Footfall {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus on a free loopback port with temp storage, scraping
/// `target` every second and evaluating footfall's rules.
struct Prometheus {
    child: Child,
    base: String,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Self {
        let rules = repo().join("dashboards/prometheus/rules/footfall.rules.yml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: footfall\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&format!("{base}/-/ready")).0 != 200 {
            assert!(Instant::now() < deadline, "prometheus not ready in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, base }
    }

    /// An instant query; the `data.result` array. Panics on an error answer.
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            &[("query", expr)],
        )
        .unwrap();
        let (code, body) = get(url.as_str());
        assert_eq!(code, 200, "{expr}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn wait_for(&self, expr: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.query(expr).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no result for {expr} in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample of `/metrics` text, by its exact series.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Metric family names in `/metrics` text (from the TYPE lines).
fn families(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `footfall_*` metric name a text mentions, without the
/// `_bucket`/`_sum`/`_count` series suffixes of histograms.
fn mentioned(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("footfall_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.ends_with('_') {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| known.contains(*b)))
            .unwrap_or(&name);
        out.insert(base.to_owned());
    }
    out
}

#[test]
fn metrics_pass_promtool_and_every_grafana_panel_returns_data() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("footfall.toml");
    std::fs::write(&settings, "[query]\nstand_metrics = true\n").unwrap();
    let server = Footfall::start(&dir.path().join("data"), &settings);
    let base = server.base();
    let prometheus = Prometheus::start(dir.path(), server.addr);

    common::sim(&["--days", "1", "--seed", "3", "--target", &base]);
    wait_ready(&base, Duration::from_secs(60));
    // SQL traffic, for the SQL panels.
    for _ in 0..3 {
        sql(&base, "SELECT count(*) AS n FROM scans");
    }
    // The live state has caught up with the tables once its entries equal
    // footfall_hourly's (it refreshes within a second of each publish).
    let hourly = sql(
        &base,
        "SELECT level, zone_id, sum(entries) AS entries FROM footfall_hourly GROUP BY level, zone_id",
    );
    assert!(
        hourly.len() > 100,
        "stands, poles, rooms, venue: {}",
        hourly.len()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (code, metrics) = get(&format!("{base}/metrics"));
        assert_eq!(code, 200);
        let differing: Vec<String> = hourly
            .iter()
            .filter_map(|r| {
                let (level, zone) = (r["level"].as_str()?, r["zone_id"].as_str()?);
                let want = r["entries"].as_f64()?;
                let series =
                    format!("footfall_floor_entries_total{{level=\"{level}\",zone=\"{zone}\"}}");
                (sample(&metrics, &series) != Some(want))
                    .then(|| format!("{series}: {:?} vs {want}", sample(&metrics, &series)))
            })
            .collect();
        if differing.is_empty() {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "entries in /metrics differ from footfall_hourly: {:#?}",
            &differing[..differing.len().min(10)]
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    // promtool's linter on the real output: names, units, suffixes, help.
    let mut check = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every metric is documented, and the docs name no metric that is not there.
    let names = families(&metrics);
    let docs = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    // The docs' tables: one row per metric, starting with its name.
    let documented: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("footfall_"))
        .map(str::to_owned)
        .collect();
    let undocumented: Vec<_> = names.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&names).collect();
    assert!(
        phantom.is_empty(),
        "docs/metrics.md names unknown metrics: {phantom:?}"
    );
    for family in [
        "footfall_floor_occupancy_persons",
        "footfall_floor_capacity_persons",
        "footfall_floor_tickets_total",
        "footfall_floor_rejected_events_total",
        "footfall_floor_scanner_last_seen_timestamp_seconds",
        "footfall_materialiser_freshness_seconds",
        "footfall_materialiser_lag_events",
        "footfall_ingest_log_append_duration_seconds",
        "footfall_sql_query_duration_seconds",
    ] {
        assert!(names.contains(family), "{family} missing from /metrics");
    }

    // Prometheus has scraped the fed server a few times and loaded the rules.
    prometheus.wait_for(
        "count_over_time(footfall_floor_clock_timestamp_seconds[5m]) >= 5",
        Duration::from_secs(30),
    );
    let (code, rules) = get(&format!("{}/api/v1/rules", prometheus.base));
    assert_eq!(code, 200);
    assert_eq!(rules.matches("\"health\":\"ok\"").count(), 5, "{rules}");

    // Every panel of every dashboard: a valid query that returns data.
    let stand = prometheus.query("topk(1, footfall_floor_entries_total{level=\"stand\"})");
    let stand = stand[0]["metric"]["zone"].as_str().unwrap().to_owned();
    let mut checked = 0;
    for name in ["live-floor", "pipeline", "stand"] {
        let path = repo().join(format!("dashboards/grafana/dashboards/{name}.json"));
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for var in dashboard["templating"]["list"].as_array().unwrap() {
            if let Some(q) = var["query"]["query"].as_str() {
                // label_values(SELECTOR, LABEL): the values Grafana would offer.
                let inner = q
                    .strip_prefix("label_values(")
                    .unwrap()
                    .trim_end_matches(')');
                let (selector, label) = inner.rsplit_once(',').unwrap();
                let values = prometheus.query(&format!("count by ({}) ({selector})", label.trim()));
                assert!(!values.is_empty(), "{name}: variable {q} offers nothing");
            }
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(
                panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}/{title} has no description"
            );
            let Some(targets) = panel["targets"].as_array() else {
                continue;
            };
            for target in targets {
                let expr = target["expr"].as_str().unwrap().replace("$stand", &stand);
                let unknown: Vec<_> = mentioned(&expr, &names)
                    .difference(&names)
                    .cloned()
                    .collect();
                assert!(
                    unknown.is_empty(),
                    "{name}/{title} uses unknown metrics {unknown:?}"
                );
                let result = prometheus.query(&expr);
                assert!(!result.is_empty(), "{name}/{title}: no data for {expr}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "only {checked} panel queries");
}
