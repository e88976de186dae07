//! A small tmpfs mounted for one test, so that a full disk is a real
//! `ENOSPC` from the kernel rather than a fake storage backend.
//!
//! Mounting needs root (tests run as root on the development machines and
//! in CI). A refused mount fails the test and says so: a disk-full test that
//! skipped itself silently would prove nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory while this lives; unmounted on drop, also
/// when the test panics.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB on `dir` (created if missing).
    /// Panics, saying why, when `mount` is refused.
    pub fn mount(dir: &Path, size_mib: u32) -> Self {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} was refused ({}): this test needs root to mount a small \
             tmpfs it can fill; run it as root (as CI does)",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `name` until the file system refuses with `ENOSPC`; returns
    /// the bytes written. Any other error panics.
    pub fn fill(&self, name: &str) -> u64 {
        let path = self.dir.join(name);
        let mut file = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        // Big chunks first, then pages, so that less than a page is left.
        for chunk in [1 << 20, 4096] {
            let bytes = vec![0xA5u8; chunk];
            loop {
                match file.write_all(&bytes) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        file.metadata().map_or(0, |m| m.len())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a process that still has a file open there (a server the
        // test has not reaped yet) cannot keep the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
