//! What footfall's tests share across crates: the address and controls of
//! the real Kafka broker that `scripts/kafka start` runs (no fake broker),
//! and names unique per test so tests can share that broker; a small tmpfs
//! to fill for disk-full tests.

pub mod tmpfs;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the repository")
        .to_path_buf()
}

/// The broker's bootstrap address from `FOOTFALL_KAFKA_BOOTSTRAP`. `None`
/// (the test skips) only when `FOOTFALL_SKIP_KAFKA=1`; otherwise a missing
/// broker fails the test with how to start one.
pub fn kafka_bootstrap() -> Option<String> {
    match std::env::var("FOOTFALL_KAFKA_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => Some(b.trim().to_owned()),
        _ if std::env::var("FOOTFALL_SKIP_KAFKA").as_deref() == Ok("1") => {
            eprintln!("skipped: FOOTFALL_SKIP_KAFKA=1 and no FOOTFALL_KAFKA_BOOTSTRAP");
            None
        }
        _ => panic!(
            "FOOTFALL_KAFKA_BOOTSTRAP is not set. These tests need a real Kafka broker: run \
             `scripts/kafka start` from the repository root, then \
             `export FOOTFALL_KAFKA_BOOTSTRAP=$(cat .kafka/bootstrap)` (or set FOOTFALL_SKIP_KAFKA=1 to skip them)"
        ),
    }
}

/// A name no other test, run or process uses: `prefix-pid-nanos-n`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The broker's state dir, as `scripts/kafka` finds it.
pub fn kafka_dir() -> PathBuf {
    std::env::var_os("FOOTFALL_KAFKA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".kafka"))
}

/// Runs `scripts/kafka ACTION` on the broker of [`kafka_dir`]; panics if it
/// fails.
pub fn kafka_script(action: &str) {
    let script = repo_root().join("scripts/kafka");
    let status = std::process::Command::new(&script)
        .arg(action)
        .env("FOOTFALL_KAFKA_DIR", kafka_dir())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(status.success(), "`scripts/kafka {action}` failed");
}

/// The broker stays stopped (`SIGSTOP`) while this lives, and is resumed
/// even if the test panics.
#[derive(Debug)]
pub struct PausedBroker(());

impl PausedBroker {
    /// Pauses the broker at `bootstrap`, after checking that the state dir
    /// is that broker's.
    pub fn start(bootstrap: &str) -> Self {
        let dir = kafka_dir();
        let theirs = std::fs::read_to_string(dir.join("bootstrap")).unwrap_or_default();
        assert_eq!(
            theirs.trim(),
            bootstrap,
            "this test pauses the broker of {} (set FOOTFALL_KAFKA_DIR to the state dir of the broker at \
             FOOTFALL_KAFKA_BOOTSTRAP)",
            dir.display()
        );
        kafka_script("pause");
        Self(())
    }
}

impl Drop for PausedBroker {
    fn drop(&mut self) {
        kafka_script("resume");
    }
}
