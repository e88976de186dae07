//! The organizers' live page end to end: the real binary fed by the
//! simulator, the page in headless Chromium (Debian's `chromium`, driven by
//! Playwright from npm; `tests/web/live_page.cjs`). The page's numbers must
//! move while the simulator sends, then equal `/v1/sql` for the page's own
//! clock, in English, French and Arabic (right to left). Screenshots are
//! kept in `test-artifacts/live-page/`.
//!
//! The tools come from `scripts/tools install`; a missing one fails the
//! test with that hint rather than skipping it.

mod common;

use common::{BIN, Server, get, wait_ready};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: &std::path::Path, what: &str) {
    assert!(
        path.exists(),
        "{what} not found at {}: run scripts/tools install, then eval \"$(scripts/tools env)\"",
        path.display()
    );
}

#[test]
fn the_live_page_moves_and_agrees_with_sql_in_three_languages() {
    let modules = PathBuf::from(std::env::var("FOOTFALL_NODE_MODULES").unwrap_or_else(|_| {
        repo()
            .join("tools/web/node_modules")
            .to_string_lossy()
            .into_owned()
    }));
    require(&modules.join("playwright-core"), "playwright-core");
    let chromium =
        std::env::var("FOOTFALL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(std::path::Path::new(&chromium), "chromium");
    let artifacts = repo().join("test-artifacts/live-page");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 0);
    let base = server.base();

    let mut browser = Command::new("node")
        .arg(repo().join("tests/web/live_page.cjs"))
        .env("BASE", &base)
        .env("ARTIFACTS", &artifacts)
        .env("FOOTFALL_NODE_MODULES", &modules)
        .env("FOOTFALL_CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs (scripts/tools install)");
    let mut said = BufReader::new(browser.stdout.take().unwrap()).lines();
    let ready = said.next().and_then(Result::ok);
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "the page did not load: {:?}",
        browser.wait()
    );
    // The sender runs on its own at full speed; it is stopped mid-day below.
    let mut sender = Command::new(BIN)
        .args([
            "sim", "--days", "1", "--seed", "7", "--batch", "200", "--target", &base,
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = said
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("the browser stopped: {:?}", browser.wait()));
    assert!(first.starts_with("changed"), "{first}");
    eprintln!("live page: {first}");

    // Stop the sender mid-afternoon with people inside, so the comparison
    // is on an open venue, not on the zeros after closing.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = get(&format!("{base}/v1/live/state"));
        let state: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let inside = state["zones"][0]["inside"].as_u64().unwrap_or(0);
        if state["open"] == true && inside > 300 {
            break;
        }
        assert!(
            sender.try_wait().unwrap().is_none(),
            "the simulated day ended before the venue filled: {body}"
        );
        assert!(Instant::now() < deadline, "the venue never filled: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    sender.kill().unwrap();
    sender.wait().unwrap();
    wait_ready(&base, Duration::from_secs(60));

    browser.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let rest: Vec<String> = said.map_while(Result::ok).collect();
    let status = browser.wait().unwrap();
    eprintln!("live page: {}", rest.join("\n live page: "));
    assert!(status.success(), "the browser test failed: {rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("ok"));
    for shot in ["en-moving", "en", "fr", "ar", "ar-phone"] {
        let png = artifacts.join(format!("{shot}.png"));
        let bytes = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 10_000, "{} is missing or empty", png.display());
    }
    drop(server);
}
