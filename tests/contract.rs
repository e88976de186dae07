//! The shared contract check (`shared/checks/contract_smoke.py`) against a
//! fresh `footfall serve`.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn contract_smoke_passes_against_a_fresh_server() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/checks/contract_smoke.py");
    assert!(
        script.exists(),
        "the shared contract check is at {}",
        script.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path(), 0);
    let out = Command::new("python3")
        .arg(&script)
        .args(["--base", &server.base()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "contract_smoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("contract holds"), "{stdout}");
}
