//! The published JSON Schema files (`schemas/json/`) and the Rust parser
//! (`events::parse_event`, the reference) must give the same verdict on every
//! event in `tests/fixtures/`: files in `valid/` pass both, files in `invalid/`
//! fail both. The schema files must also name exactly the fields, enum values
//! and length limits that the Rust types accept.
//!
//! The schemas are compiled for draft 2020-12 with `format` asserted, and the
//! `$ref`s between the files are resolved from a registry built from the files
//! themselves: the test never touches the network.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use footfall_schemas::events::{
    BADGE_SCAN_FIELDS, Channel, Direction, TICKET_FIELDS, TicketAction, TicketType, parse_event,
};
use footfall_schemas::ids::{BadgeId, EventId, ScannerId, TicketId};
use jsonschema::{Registry, Validator};
use serde_json::Value;

const BADGE_SCAN_SCHEMA: &str = "badge_scan.v1.schema.json";
const TICKET_SCHEMA: &str = "ticket.v1.schema.json";
const EVENT_SCHEMA: &str = "event.v1.schema.json";

/// Fixtures on which the two sides are known to differ, and why. Each entry is
/// checked to still differ exactly this way, so a fix on either side fails the
/// test until the entry (and the README's note) is removed.
const KNOWN_DISAGREEMENTS: &[KnownDisagreement] = &[KnownDisagreement {
    file: "invalid/badge_scan_badge_id_65_e_acute_130_bytes.json",
    rust_accepts: false,
    schema_accepts: true,
    why: "schema gap: JSON Schema's maxLength counts characters, parse_event limits badge_id \
              to 128 UTF-8 bytes (see schemas/json/README.md)",
}];

struct KnownDisagreement {
    file: &'static str,
    rust_accepts: bool,
    schema_accepts: bool,
    why: &'static str,
}

fn json_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("json")
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn schema_doc(name: &str) -> Value {
    let path = json_dir().join(name);
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The three schema files, each compiled on its own against a registry that
/// holds all three under their `$id`s.
struct Schemas {
    event: Validator,
    badge_scan: Validator,
    ticket: Validator,
}

impl Schemas {
    fn load() -> Self {
        let docs: BTreeMap<&str, Value> = [BADGE_SCAN_SCHEMA, TICKET_SCHEMA, EVENT_SCHEMA]
            .into_iter()
            .map(|n| (n, schema_doc(n)))
            .collect();
        let registry = Registry::new()
            .extend(docs.values().map(|doc| (id_of(doc), doc)))
            .and_then(|builder| builder.prepare())
            .unwrap_or_else(|e| panic!("the schema files do not form a registry: {e}"));
        let build = |name: &str| {
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .offline()
                .with_registry(&registry)
                .build(&docs[name])
                .unwrap_or_else(|e| panic!("{name} does not compile: {e}"))
        };
        Self {
            event: build(EVENT_SCHEMA),
            badge_scan: build(BADGE_SCAN_SCHEMA),
            ticket: build(TICKET_SCHEMA),
        }
    }

    /// `None` when the text is accepted, else why not. For a rejection the
    /// errors of the schema of the event's own `type` are given, because
    /// `oneOf` alone only says that no branch matched.
    fn verdict(&self, text: &str) -> Option<String> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Some(format!("not JSON: {e}")),
        };
        if self.event.is_valid(&value) {
            return None;
        }
        let branch = match value.get("type").and_then(Value::as_str) {
            Some("badge_scan") => &self.badge_scan,
            Some("ticket") => &self.ticket,
            _ => &self.event,
        };
        let errors: Vec<String> = branch
            .iter_errors(&value)
            .map(|e| format!("{} at {:?}", e, e.instance_path().as_str()))
            .collect();
        Some(if errors.is_empty() {
            "rejected by the oneOf".to_owned()
        } else {
            errors.join("; ")
        })
    }
}

fn id_of(doc: &Value) -> &str {
    doc["$id"]
        .as_str()
        .expect("every schema file has a string $id (checked by schema_files_are_well_formed)")
}

fn rust_verdict(text: &str) -> Option<String> {
    parse_event(text).err().map(|e| e.to_string())
}

fn show(verdict: &Option<String>) -> String {
    match verdict {
        None => "accepted".to_owned(),
        Some(why) => format!("rejected ({why})"),
    }
}

/// `(relative name such as "valid/x.json", text)`, sorted by name.
fn fixtures(kind: &str) -> Vec<(String, String)> {
    let dir = fixtures_dir().join(kind);
    let mut files: Vec<(String, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("a listed file has a name")
                .to_string_lossy()
                .into_owned();
            (format!("{kind}/{name}"), read(&path))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_fixture_gets_the_same_verdict_from_rust_and_schema() {
    let schemas = Schemas::load();
    let mut problems = Vec::new();
    let mut counts = BTreeMap::new();
    for (kind, expect_valid) in [("valid", true), ("invalid", false)] {
        let files = fixtures(kind);
        counts.insert(kind, files.len());
        for (name, text) in files {
            let rust = rust_verdict(&text);
            let schema = schemas.verdict(&text);
            let (rust_ok, schema_ok) = (rust.is_none(), schema.is_none());
            if let Some(known) = KNOWN_DISAGREEMENTS.iter().find(|k| k.file == name) {
                if (rust_ok, schema_ok) != (known.rust_accepts, known.schema_accepts) {
                    problems.push(format!(
                        "{name}: listed as a known disagreement ({}), but now parse_event {} and the schema {}; \
                         update KNOWN_DISAGREEMENTS and schemas/json/README.md",
                        known.why,
                        show(&rust),
                        show(&schema)
                    ));
                }
                continue;
            }
            if rust_ok == expect_valid && schema_ok == expect_valid {
                continue;
            }
            let expected = if expect_valid { "valid" } else { "invalid" };
            let agreement = if rust_ok == schema_ok {
                "they agree, against the fixture"
            } else {
                "DISAGREEMENT"
            };
            problems.push(format!(
                "{name}: expected {expected}; {agreement}\n    parse_event: {}\n    JSON Schema: {}",
                show(&rust),
                show(&schema)
            ));
        }
    }
    for known in KNOWN_DISAGREEMENTS {
        if !fixtures_dir().join(known.file).is_file() {
            problems.push(format!(
                "{}: listed in KNOWN_DISAGREEMENTS but missing",
                known.file
            ));
        }
    }
    eprintln!(
        "checked {} valid and {} invalid fixtures ({} known disagreements)",
        counts["valid"],
        counts["invalid"],
        KNOWN_DISAGREEMENTS.len()
    );
    // Guards against a moved or emptied fixture folder passing vacuously.
    assert!(
        counts["valid"] >= 25 && counts["invalid"] >= 40,
        "too few fixtures: {counts:?}"
    );
    assert!(
        problems.is_empty(),
        "{} fixture(s) failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn valid_fixtures_match_only_the_schema_of_their_type() {
    let schemas = Schemas::load();
    for (name, text) in fixtures("valid") {
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        let (own, other) = match value["type"].as_str() {
            Some("badge_scan") => (&schemas.badge_scan, &schemas.ticket),
            Some("ticket") => (&schemas.ticket, &schemas.badge_scan),
            other => panic!("{name}: a valid fixture with type {other:?}"),
        };
        assert!(
            own.is_valid(&value),
            "{name} fails the schema of its own type"
        );
        assert!(
            !other.is_valid(&value),
            "{name} also passes the schema of the other type"
        );
    }
}

fn properties(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["properties"]
        .as_object()
        .expect("a type schema has an object of properties")
}

fn names(values: &Value) -> BTreeSet<&str> {
    values
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

#[test]
fn schema_properties_and_required_lists_are_the_rust_fields() {
    for (file, fields) in [
        (BADGE_SCAN_SCHEMA, BADGE_SCAN_FIELDS),
        (TICKET_SCHEMA, TICKET_FIELDS),
    ] {
        let doc = schema_doc(file);
        let rust: BTreeSet<&str> = fields.iter().copied().collect();
        let schema: BTreeSet<&str> = properties(&doc).keys().map(String::as_str).collect();
        assert_eq!(
            schema, rust,
            "{file}: properties differ from the fields parse_event accepts"
        );
        // `direction` is the only optional field of either type.
        let optional: BTreeSet<&str> = rust.iter().copied().filter(|f| *f == "direction").collect();
        let required: BTreeSet<&str> = rust.difference(&optional).copied().collect();
        assert_eq!(names(&doc["required"]), required, "{file}: required list");
    }
}

#[test]
fn schema_enums_and_limits_are_the_rust_ones() {
    let scan = schema_doc(BADGE_SCAN_SCHEMA);
    let ticket = schema_doc(TICKET_SCHEMA);
    fn words<'a>(doc: &'a Value, field: &str) -> BTreeSet<&'a str> {
        names(&doc["properties"][field]["enum"])
    }
    let set = |words: &[&'static str]| words.iter().copied().collect::<BTreeSet<_>>();

    assert_eq!(
        words(&scan, "direction"),
        set(&[Direction::In.as_str(), Direction::Out.as_str()])
    );
    assert_eq!(
        scan["properties"]["direction"]["default"],
        Direction::In.as_str()
    );
    assert_eq!(
        words(&ticket, "action"),
        TicketAction::ALL
            .iter()
            .map(|w| w.as_str())
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        words(&ticket, "ticket_type"),
        TicketType::ALL
            .iter()
            .map(|w| w.as_str())
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        words(&ticket, "channel"),
        Channel::ALL
            .iter()
            .map(|w| w.as_str())
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(scan["properties"]["type"]["const"], "badge_scan");
    assert_eq!(ticket["properties"]["type"]["const"], "ticket");

    let limits = [
        (&scan, "event_id", EventId::MAX_LEN),
        (&scan, "scanner_id", ScannerId::MAX_LEN),
        (&scan, "badge_id", BadgeId::MAX_LEN),
        (&ticket, "event_id", EventId::MAX_LEN),
        (&ticket, "ticket_id", TicketId::MAX_LEN),
        (&ticket, "badge_id", BadgeId::MAX_LEN),
    ];
    for (doc, field, max) in limits {
        let property = &doc["properties"][field];
        assert_eq!(
            property["maxLength"].as_u64(),
            u64::try_from(max).ok(),
            "{} {field} maxLength",
            id_of(doc)
        );
        assert_eq!(property["minLength"], 1, "{} {field} minLength", id_of(doc));
    }
}

/// `event_id`, `ts` and `badge_id` are written out in both files so that each
/// file stands alone; they must not drift apart.
#[test]
fn shared_fields_are_defined_identically_in_both_files() {
    let scan = schema_doc(BADGE_SCAN_SCHEMA);
    let ticket = schema_doc(TICKET_SCHEMA);
    let rule = |doc: &Value, field: &str| {
        let mut property = doc["properties"][field].clone();
        let object = property
            .as_object_mut()
            .expect("a property schema is an object");
        object.remove("description");
        object.remove("examples");
        property
    };
    for field in ["event_id", "ts", "badge_id"] {
        assert_eq!(
            rule(&scan, field),
            rule(&ticket, field),
            "{field} differs between the two files"
        );
    }
    assert_eq!(
        rule(&scan, "event_id"),
        rule(&scan, "scanner_id"),
        "scanner_id follows the id rule"
    );
    assert_eq!(
        rule(&ticket, "event_id"),
        rule(&ticket, "ticket_id"),
        "ticket_id follows the id rule"
    );
}

#[test]
fn schema_files_are_well_formed() {
    for file in [BADGE_SCAN_SCHEMA, TICKET_SCHEMA, EVENT_SCHEMA] {
        let doc = schema_doc(file);
        assert_eq!(
            doc["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file} $schema"
        );
        assert_eq!(
            doc["$id"].as_str(),
            Some(format!("https://footfall.dev/schemas/{file}").as_str()),
            "{file} $id"
        );
        assert!(
            doc["title"].is_string() && doc["description"].is_string(),
            "{file} needs a title and a description"
        );
        assert!(
            jsonschema::meta::is_valid(&doc),
            "{file} is not a valid draft 2020-12 schema"
        );
    }
    for file in [BADGE_SCAN_SCHEMA, TICKET_SCHEMA] {
        let doc = schema_doc(file);
        assert_eq!(doc["type"], "object", "{file}");
        assert_eq!(
            doc["additionalProperties"], false,
            "{file} must reject unknown fields"
        );
        for (name, property) in properties(&doc) {
            assert!(
                property["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{file}: property {name} has no description"
            );
        }
    }
    let event = schema_doc(EVENT_SCHEMA);
    let refs: BTreeSet<&str> = event["oneOf"]
        .as_array()
        .expect("event.v1 is a oneOf")
        .iter()
        .map(|branch| branch["$ref"].as_str().expect("each branch is a $ref"))
        .collect();
    assert_eq!(refs, BTreeSet::from([BADGE_SCAN_SCHEMA, TICKET_SCHEMA]));
}

/// The README's examples are real events: both sides accept them.
#[test]
fn readme_examples_are_accepted_by_both() {
    let schemas = Schemas::load();
    let readme = read(&json_dir().join("README.md"));
    let examples: Vec<&str> = readme
        .split("```json\n")
        .skip(1)
        .map(|block| {
            block
                .split("```")
                .next()
                .expect("split yields at least one part")
                .trim()
        })
        .collect();
    assert!(
        examples.len() >= 2,
        "the README shows an example of each event type"
    );
    for example in examples {
        let rust = rust_verdict(example);
        let schema = schemas.verdict(example);
        assert!(
            rust.is_none() && schema.is_none(),
            "README example {example}\n    parse_event: {}\n    JSON Schema: {}",
            show(&rust),
            show(&schema)
        );
    }
}
