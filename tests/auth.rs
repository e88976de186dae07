//! Access control against the real binary: every role × every route, a
//! sponsor asking for another exhibitor's stand, tokens never in the logs,
//! and the loopback rule without an auth file.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, wait_ready};

const ROLES: [&str; 7] = [
    "none",
    "bad",
    "scanner",
    "analyst",
    "organizer",
    "sponsor",
    "monitor",
];

/// What a route answers a role: let through (with the status the route
/// itself gives), 401 (no valid token) or 403 (a valid token, wrong role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Pass(u16),
    Unauthorized,
    Forbidden,
}

struct Fixture {
    base: String,
    tokens: BTreeMap<&'static str, String>,
    own_stand: String,
    other_stand: String,
    own_exhibitor: String,
    other_exhibitor: String,
    _child: ChildGuard,
    stderr: std::path::PathBuf,
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `footfall serve --auth` on every interface (allowed with an auth
/// file), logging at debug level to a file.
fn start(dir: &std::path::Path) -> Fixture {
    let venue = footfall_schemas::venue::reference();
    let exhibitor = venue.stands[0].exhibitor_id.clone();
    let own_stand = venue.stands[0].id.clone();
    let other = venue
        .stands
        .iter()
        .find(|s| s.exhibitor_id != exhibitor)
        .unwrap();
    let (other_stand, other_exhibitor) = (other.id.clone(), other.exhibitor_id.clone());
    let mut tokens = BTreeMap::new();
    let mut file = String::new();
    for role in &ROLES[2..] {
        // Made by the binary itself, as an operator would.
        let mut args: Vec<&str> = vec!["auth", "token", "--name", role, "--role", role];
        if *role == "sponsor" {
            args.extend(["--exhibitor", exhibitor.as_str()]);
        }
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "footfall auth token --role {role}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let token = stderr.trim().rsplit(' ').next().unwrap().to_owned();
        let entry = String::from_utf8(out.stdout).unwrap();
        assert!(!entry.contains(&token), "the file never holds the token");
        file.push_str(&entry);
        tokens.insert(*role, token);
    }
    tokens.insert("bad", "ff_not-a-token-anyone-holds".to_owned());
    let auth = dir.join("auth.toml");
    std::fs::write(&auth, file).unwrap();

    let stderr = dir.join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--auth")
        .arg(&auth)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = loop {
        let line = lines.next().expect("the address line").unwrap();
        if let Some(rest) = line.strip_prefix("footfall listening on http://0.0.0.0:") {
            break rest.trim().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, Duration::from_secs(60));
    Fixture {
        base,
        tokens,
        own_stand,
        other_stand,
        own_exhibitor: exhibitor,
        other_exhibitor,
        _child: ChildGuard(child),
        stderr,
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn scan(n: usize) -> String {
    let venue = footfall_schemas::venue::reference();
    let ts = chrono::Utc::now().to_rfc3339();
    format!(
        "{{\"type\":\"badge_scan\",\"event_id\":\"auth-{n}\",\"ts\":\"{ts}\",\"badge_id\":\"V-1\",\"scanner_id\":\"{}\"}}\n",
        venue.scanners[0].id
    )
}

#[test]
fn every_role_against_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path());
    use Want::{Forbidden as F, Pass as P, Unauthorized as U};
    let own = format!("/v1/reports/stands/{}", f.own_stand);
    let other = format!("/v1/reports/stands/{}", f.other_stand);
    // Whether the report route exists in this build decides what a let-through
    // request gets (200, or 404 before it lands); either way the rule shows.
    let report_status = {
        let organizer = &f.tokens["organizer"];
        let status = client()
            .get(format!("{}{own}?format=json", f.base))
            .bearer_auth(organizer)
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert!(
            status == 200 || status == 404,
            "organizer's report: {status}"
        );
        status
    };
    let r = report_status;
    let e = client()
        .get(format!(
            "{}/v1/reports/exhibitors/{}?format=json",
            f.base, f.own_exhibitor
        ))
        .bearer_auth(&f.tokens["organizer"])
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert!(e == 200 || e == 404, "organizer's exhibitor report: {e}");
    // route → answers for [none, bad, scanner, analyst, organizer, sponsor, monitor]
    let table: Vec<(&str, String, [Want; 7])> = vec![
        ("GET", "/healthz".into(), [P(200); 7]),
        ("GET", "/readyz".into(), [P(200); 7]),
        ("POST", "/v1/events".into(), [U, U, P(200), F, F, F, F]),
        ("POST", "/v1/sql".into(), [U, U, F, P(200), P(200), F, F]),
        (
            "GET",
            format!("{own}?format=json"),
            [U, U, F, P(r), P(r), P(r), F],
        ),
        (
            "GET",
            format!("{other}?format=json"),
            [U, U, F, P(r), P(r), F, F],
        ),
        (
            "GET",
            format!("/v1/reports/exhibitors/{}?format=json", f.own_exhibitor),
            [U, U, F, P(e), P(e), P(e), F],
        ),
        (
            "GET",
            format!("/v1/reports/exhibitors/{}?format=json", f.other_exhibitor),
            [U, U, F, P(e), P(e), F, F],
        ),
        ("GET", "/".into(), [U, U, F, F, P(200), F, F]),
        ("GET", "/v1/live".into(), [U, U, F, F, P(200), F, F]),
        ("GET", "/v1/live/state".into(), [U, U, F, F, P(200), F, F]),
        ("GET", "/metrics".into(), [U, U, F, F, P(200), F, P(200)]),
        ("GET", "/no-such-route".into(), [U, U, F, F, P(404), F, F]),
    ];
    let mut n = 0;
    let mut failures = Vec::new();
    for (method, path, wants) in &table {
        for (role, want) in ROLES.iter().zip(wants) {
            n += 1;
            let url = format!("{}{path}", f.base);
            let mut request = match *method {
                "GET" => client().get(&url),
                _ => client().post(&url).body(if path == "/v1/events" {
                    scan(n)
                } else {
                    "SELECT count(*) AS n FROM scans".to_owned()
                }),
            };
            if let Some(token) = f.tokens.get(role) {
                request = request.bearer_auth(token);
            }
            // The SSE stream stays open: only its status is read.
            let response = request.send().unwrap();
            let status = response.status().as_u16();
            let got = match status {
                401 => {
                    assert!(
                        response
                            .headers()
                            .get_all("www-authenticate")
                            .iter()
                            .any(|v| v.to_str().unwrap().starts_with("Bearer")),
                        "a 401 names the scheme"
                    );
                    Want::Unauthorized
                }
                403 => Want::Forbidden,
                s => Want::Pass(s),
            };
            if got != *want {
                failures.push(format!(
                    "{role} {method} {path}: got {got:?}, want {want:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The rejected table's raw text is for organizers only, also inside a
    // subquery; an analyst reads the rest.
    for (role, query, want) in [
        ("analyst", "SELECT count(*) AS n FROM rejected", 403),
        (
            "analyst",
            "SELECT count(*) AS n FROM scans WHERE event_id IN (SELECT event_id FROM rejected)",
            403,
        ),
        ("analyst", "SELECT count(*) AS n FROM footfall_hourly", 200),
        ("organizer", "SELECT count(*) AS n FROM rejected", 200),
    ] {
        let response = client()
            .post(format!("{}/v1/sql", f.base))
            .bearer_auth(&f.tokens[role])
            .body(query)
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), want, "{role}: {query}");
    }

    // A browser sends the token as a Basic password, also to the live stream.
    let basic = client()
        .get(format!("{}/v1/live/state", f.base))
        .basic_auth("organizer", Some(&f.tokens["organizer"]))
        .send()
        .unwrap();
    assert_eq!(basic.status().as_u16(), 200);

    // No token reached the log, even at debug level.
    let log = std::fs::read_to_string(&f.stderr).unwrap();
    assert!(log.contains("access control on"), "the start is logged");
    for (role, token) in &f.tokens {
        assert!(
            !log.contains(token.as_str()),
            "the {role} token is in the log"
        );
    }
}

#[test]
fn without_an_auth_file_only_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "serve on 0.0.0.0 without --auth fails"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without an auth file"),
        "and says why: {stderr}"
    );

    // On loopback it starts, and says at start that nothing is protected.
    let stderr_file = dir.path().join("stderr.log");
    let mut child = ChildGuard(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let started = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("footfall listening on http://127.0.0.1:"));
    assert!(started);
    let log = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(log.contains("no auth file"), "{log}");
}
