//! `deploy/compose.yaml` cannot start here (no Docker engine), so this
//! checks that it parses and agrees with the code: the Kafka image is the
//! version `scripts/kafka` runs, every footfall command and flag is one the
//! binary takes, ports line up with `--listen`, Prometheus scrapes exactly
//! the footfall services with a token that `deploy/make-tokens` makes and
//! the real server accepts, Grafana's provisioning points at the mounted
//! dashboards, and every file mounted from the repository exists.

mod common;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A YAML file as JSON, parsed by PyYAML (installed by `scripts/tools`).
fn yaml(path: &Path) -> Value {
    let python = std::env::var("FOOTFALL_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{python} runs (scripts/tools installs PyYAML): {e}"));
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("a string: {s}")))
        .collect()
}

/// The value after `flag` in a command line.
fn flag<'a>(command: &[&'a str], flag: &str) -> Option<&'a str> {
    command
        .iter()
        .position(|a| *a == flag)
        .map(|i| command[i + 1])
}

/// `SOURCE:TARGET[:ro]` volume entries as (source, target).
fn mounts(service: &Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .into_iter()
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap_or_else(|| panic!("{v}")).to_owned(),
            )
        })
        .collect()
}

/// Whether `path` inside the container lies in one of the service's mounts.
fn mounted(service: &Value, path: &str) -> bool {
    mounts(service)
        .iter()
        .any(|(_, target)| path == target || path.starts_with(&format!("{target}/")))
}

#[test]
fn the_compose_file_agrees_with_the_code() {
    let deploy = repo().join("deploy");
    let compose = yaml(&deploy.join("compose.yaml"));
    let services = compose["services"].as_object().expect("services");

    // Kafka: Apache's image, the version scripts/kafka fetches with Maven.
    let pom = std::fs::read_to_string(repo().join("scripts/kafka-broker/pom.xml")).unwrap();
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the pom names the Kafka version");
    let kafka = &services["kafka"];
    assert_eq!(
        kafka["image"].as_str(),
        Some(format!("apache/kafka:{version}").as_str())
    );
    let advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        .as_str()
        .unwrap();
    assert_eq!(advertised, "PLAINTEXT://kafka:9092");

    // The footfall services: real subcommands and flags, consistent ports.
    let mut scraped_want = BTreeSet::new();
    let mut roles = BTreeSet::new();
    for (name, service) in services {
        if service["image"].as_str() != Some("footfall:latest") {
            continue;
        }
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some("deploy/Dockerfile")
        );
        assert!(repo().join("deploy/Dockerfile").is_file());
        let command = strings(&service["command"]);
        let sub = command[0];
        roles.insert(sub);
        let help = Command::new(common::BIN)
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(help.status.success(), "{name}: footfall {sub} exists");
        let help = String::from_utf8(help.stdout).unwrap();
        for arg in command.iter().filter(|a| a.starts_with("--")) {
            assert!(
                help.contains(&format!("{arg} ")),
                "{name}: footfall {sub} takes no {arg}"
            );
        }
        assert_eq!(flag(&command, "--kafka"), Some("kafka:9092"), "{name}");
        let listen = flag(&command, "--listen").expect("--listen");
        let port = listen.rsplit(':').next().unwrap();
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{name} listens in its container"
        );
        let published = strings(&service["ports"]);
        assert!(
            published
                .iter()
                .all(|p| p.starts_with("127.0.0.1:") && p.ends_with(&format!(":{port}"))),
            "{name}: ports {published:?} publish {port} on loopback"
        );
        scraped_want.insert(format!("{name}:{port}"));
        let auth = flag(&command, "--auth").expect("a non-loopback listener needs --auth");
        assert!(mounted(service, auth), "{name}: {auth} is mounted");
        if let Some(key) = flag(&command, "--pseudonym-key") {
            assert!(mounted(service, key), "{name}: {key} is on a volume");
        }
        if sub != "ingest" {
            let data = flag(&command, "--data-dir").unwrap();
            assert!(mounted(service, data), "{name}: {data} is a volume");
        }
        assert_eq!(
            service["depends_on"]["kafka"]["condition"],
            "service_healthy"
        );
    }
    assert_eq!(
        roles,
        BTreeSet::from(["ingest", "query"]),
        "the split deployment"
    );
    let ingest_keys: BTreeSet<&str> = services
        .values()
        .filter_map(|s| {
            let c = s["command"].as_array()?;
            (c.first()?.as_str()? == "ingest")
                .then(|| flag(&strings(&s["command"]), "--pseudonym-key"))?
        })
        .collect();
    assert_eq!(ingest_keys.len(), 1, "every ingest worker uses one key");

    // Every file or folder mounted from the repository exists; secrets the
    // user makes come from deploy/make-tokens.
    let secrets = ["./auth.toml", "./monitor.token"];
    for (name, service) in services {
        if service["volumes"].is_null() {
            continue;
        }
        for (source, _) in mounts(service) {
            if source.starts_with('.') && !secrets.contains(&source.as_str()) {
                assert!(
                    deploy.join(&source).exists(),
                    "{name} mounts {source}, which is missing"
                );
            }
        }
    }

    // Prometheus scrapes exactly the footfall services, loads the mounted
    // rules, with the token file that is mounted.
    let prometheus = &services["prometheus"];
    let (config_source, config_target) = mounts(prometheus)
        .into_iter()
        .find(|(_, t)| t == "/etc/prometheus/prometheus.yml")
        .expect("the config is mounted");
    let config = yaml(&deploy.join(config_source));
    let job = &config["scrape_configs"][0];
    let scraped: BTreeSet<String> = strings(&job["static_configs"][0]["targets"])
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(scraped, scraped_want);
    assert!(
        strings(&prometheus["command"])
            .contains(&format!("--config.file={config_target}").as_str())
    );
    let token_file = job["authorization"]["credentials_file"].as_str().unwrap();
    assert!(mounted(prometheus, token_file));
    for rules in strings(&config["rule_files"]) {
        let dir = rules.rsplit_once('/').unwrap().0;
        let (source, _) = mounts(prometheus)
            .into_iter()
            .find(|(_, t)| t == dir)
            .unwrap_or_else(|| panic!("{dir} is mounted"));
        let found = std::fs::read_dir(deploy.join(source))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "yml")
            })
            .count();
        assert!(found > 0, "{rules} matches rule files");
    }

    // Grafana: provisioning and dashboards where the provisioning says.
    let grafana = &services["grafana"];
    let (provisioning, _) = mounts(grafana)
        .into_iter()
        .find(|(_, t)| t == "/etc/grafana/provisioning")
        .expect("provisioning is mounted");
    let provider = yaml(&deploy.join(&provisioning).join("dashboards/footfall.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let (dashboards, _) = mounts(grafana)
        .into_iter()
        .find(|(_, t)| t == path)
        .expect("the dashboards folder is mounted where provisioning looks");
    assert!(
        std::fs::read_dir(deploy.join(dashboards)).unwrap().count() >= 3,
        "the three dashboards"
    );
    let datasource = yaml(
        &deploy
            .join(&provisioning)
            .join("datasources/prometheus.yml"),
    );
    assert_eq!(
        datasource["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
}

/// `deploy/make-tokens` makes an auth file the real server accepts, and a
/// monitor token that reads `/metrics` and nothing else.
#[test]
fn make_tokens_gives_an_auth_file_the_server_takes() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = dir.path().join("deploy");
    std::fs::create_dir(&deploy).unwrap();
    std::fs::copy(
        repo().join("deploy/make-tokens"),
        deploy.join("make-tokens"),
    )
    .unwrap();
    // Run through bash: executing a file just written races with other
    // threads' forks that still hold it open for writing (ETXTBSY).
    let status = Command::new("bash")
        .arg(deploy.join("make-tokens"))
        .arg(common::BIN)
        .status()
        .unwrap();
    assert!(status.success());
    let again = Command::new("bash")
        .arg(deploy.join("make-tokens"))
        .arg(common::BIN)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!again.success(), "never overwrites an auth file");

    let server = common::Server::spawn(
        "serve",
        &dir.path().join("data"),
        0,
        &["--auth", deploy.join("auth.toml").to_str().unwrap()],
    );
    let monitor = std::fs::read_to_string(deploy.join("monitor.token")).unwrap();
    let client = reqwest::blocking::Client::new();
    let ask = |path: &str, token: &str| {
        client
            .get(format!("{}{path}", server.base()))
            .bearer_auth(token.trim())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ask("/metrics", &monitor), 200);
    assert_eq!(ask("/metrics", "not-a-token"), 401);
    let organizer = std::fs::read_to_string(deploy.join("organizer.token")).unwrap();
    assert_eq!(ask("/metrics", &organizer), 200);
    assert_ne!(
        ask("/", &monitor),
        200,
        "a monitor token reads metrics only"
    );
}
