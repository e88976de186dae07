//! Sponsor reports end to end: a simulated day of the reference fair is sent
//! to the real binary; the report of its busiest exhibitor is rendered in
//! headless Chromium (playwright-core, `tools/web/check-report.mjs`), every
//! number on the page must equal SQL over `stand_visits`, and a screenshot is
//! kept in `test-artifacts/`. `footfall report --pdf` prints it to PDF.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use support::{Keyed, root};

/// A count as the report must show it.
fn shown(n: u64) -> String {
    if n < 5 { "<5".into() } else { n.to_string() }
}

fn duration(s: u64) -> String {
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

fn nearest_rank(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn node_tools() -> std::path::PathBuf {
    let web = root("tools/web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `scripts/tools install` (or use scripts/test)"
    );
    let chromium =
        std::env::var("FOOTFALL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run `scripts/tools install`"
    );
    web
}

fn n(row: &serde_json::Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {row}"))
}

#[test]
fn the_report_page_shows_what_sql_says() {
    let web = node_tools();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let status = Command::new(support::BIN)
        .args(["sim", "--days", "1", "--seed", "8", "--out"])
        .arg(&events)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    let server = Keyed::start(
        &dir.path().join("data"),
        &root("venues/agadir-sse-2026.toml"),
    );
    let accepted = server.send(&std::fs::read_to_string(&events).unwrap(), 5000);
    server.wait_for_events(accepted, Duration::from_secs(120));

    // The busiest exhibitor, and what SQL says about its stands.
    let top = &server.sql(
        "SELECT s.exhibitor, count(*) AS n FROM stand_visits v JOIN stands s ON s.stand_id = v.stand_id \
         GROUP BY s.exhibitor ORDER BY n DESC, s.exhibitor LIMIT 1",
    )[0];
    let exhibitor = top["exhibitor"].as_str().unwrap().to_owned();
    let mine = format!("(SELECT stand_id FROM stands WHERE exhibitor = '{exhibitor}')");
    let summary = &server.sql(&format!(
        "SELECT count(*) AS visits, count(DISTINCT badge) AS visitors FROM stand_visits \
         WHERE stand_id IN {mine}"
    ))[0];
    let returning = server.sql(&format!(
        "SELECT count(*) AS n FROM (SELECT badge FROM stand_visits WHERE stand_id IN {mine} \
         GROUP BY badge HAVING count(DISTINCT local_day) >= 2) r"
    ))[0]["n"]
        .as_u64()
        .unwrap();
    let mut dwell: Vec<u64> = server
        .sql(&format!(
            "SELECT dwell_s FROM stand_visits WHERE stand_id IN {mine}"
        ))
        .iter()
        .map(|r| n(r, "dwell_s"))
        .collect();
    dwell.sort_unstable();
    let ranks = server.sql(&format!(
        "WITH per AS (SELECT s.stand_id, s.pole_id, count(v.badge) AS visits FROM stands s \
                      LEFT JOIN stand_visits v ON v.stand_id = s.stand_id GROUP BY s.stand_id, s.pole_id), \
              ranked AS (SELECT stand_id, visits, \
                                rank() OVER (PARTITION BY pole_id ORDER BY visits DESC) AS rank, \
                                count(*) OVER (PARTITION BY pole_id) AS of FROM per) \
         SELECT * FROM ranked WHERE stand_id IN {mine}"
    ));
    let days = server.sql(&format!(
        "SELECT CAST(o.local_day AS VARCHAR) AS d, count(v.badge) AS n FROM opening_hours o \
         LEFT JOIN stand_visits v ON v.local_day = o.local_day AND v.stand_id IN {mine} \
         GROUP BY o.local_day"
    ));

    // The page, rendered by Chromium.
    let html_path = dir.path().join("report.html");
    let (code, html) = common_get(&format!(
        "{}/v1/reports/exhibitors/{exhibitor}",
        server.base
    ));
    assert_eq!(code, 200, "{html}");
    std::fs::write(&html_path, &html).unwrap();
    let artifacts = root("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join(format!("report-{exhibitor}.png"));
    let output = Command::new("node")
        .arg(web.join("check-report.mjs"))
        .arg(&html_path)
        .arg(&screenshot)
        .output()
        .expect("node runs (scripts/tools install)");
    assert!(
        output.status.success(),
        "check-report.mjs: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        page["external"],
        serde_json::json!([]),
        "no external request"
    );
    assert_eq!(
        page["phone_overflow"], false,
        "readable on a phone; too wide: {}",
        page["too_wide"]
    );
    let mut on_page: BTreeMap<(String, String), String> = BTreeMap::new();
    for m in page["metrics"].as_array().unwrap() {
        assert_eq!(m["visible"], true, "{m} is on the page");
        let key = (
            m["metric"].as_str().unwrap().to_owned(),
            m["key"].as_str().unwrap_or("").to_owned(),
        );
        on_page.insert(key, m["text"].as_str().unwrap().to_owned());
    }
    let metric = |name: &str, key: &str| {
        on_page
            .get(&(name.to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_else(|| panic!("{name}/{key} is not on the page: {on_page:?}"))
    };
    assert_eq!(metric("visits", ""), shown(n(summary, "visits")));
    assert!(
        n(summary, "visits") >= 5,
        "the busiest stand shows real numbers"
    );
    assert_eq!(metric("unique_visitors", ""), shown(n(summary, "visitors")));
    assert_eq!(metric("returning_visitors", ""), shown(returning));
    assert_eq!(
        metric("median_dwell", ""),
        duration(nearest_rank(&dwell, 0.5))
    );
    assert_eq!(metric("p90_dwell", ""), duration(nearest_rank(&dwell, 0.9)));
    for r in &ranks {
        let stand = r["stand_id"].as_str().unwrap();
        assert_eq!(metric("stand_visits", stand), shown(n(r, "visits")));
        assert_eq!(
            metric("rank", stand),
            format!("{} of {}", n(r, "rank"), n(r, "of"))
        );
    }
    for d in &days {
        let day = d["d"].as_str().unwrap();
        assert_eq!(metric("day", &day[5..]), shown(n(d, "n")), "{day}");
    }
    assert!(screenshot.exists());
    eprintln!("screenshot: {}", screenshot.display());

    // The other formats and the errors.
    let (code, json) = common_get(&format!(
        "{}/v1/reports/exhibitors/{exhibitor}?format=json",
        server.base
    ));
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["visits"], n(summary, "visits"));
    let (code, csv) = common_get(&format!(
        "{}/v1/reports/exhibitors/{exhibitor}?format=csv",
        server.base
    ));
    assert_eq!(code, 200);
    assert!(csv.contains(&format!("summary,visits,{}\n", n(summary, "visits"))));
    let (code, body) = common_get(&format!("{}/v1/reports/stands/NOPE", server.base));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no stand \\\"NOPE\\\""), "{body}");
    let (code, _) = common_get(&format!(
        "{}/v1/reports/exhibitors/{exhibitor}?format=docx",
        server.base
    ));
    assert_eq!(code, 400);

    // The command: all formats, PDF printed by Chromium.
    let out = dir.path().join("reports");
    let status = Command::new(support::BIN)
        .args([
            "report",
            "--exhibitor",
            &exhibitor,
            "--pdf",
            "--server",
            &server.base,
            "--out-dir",
        ])
        .arg(&out)
        .arg("--web-tools")
        .arg(&web)
        .status()
        .unwrap();
    assert!(status.success());
    for ext in ["html", "csv", "json"] {
        assert!(out.join(format!("{exhibitor}.{ext}")).exists(), "{ext}");
    }
    let pdf = std::fs::read(out.join(format!("{exhibitor}.pdf"))).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
}

fn common_get(url: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new().get(url).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}
