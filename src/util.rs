//! Small helpers shared by the commands: files, signals, allocation, value scans.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, then
/// rename. A reader never sees a half-written file.
///
/// The temporary file is `.{name}.tmp-{pid}` beside `path` (hidden, clearly not the output);
/// it is removed on every error this function sees. Kill tests stop the process halfway
/// through writing it with [`test_pause`]`("write_atomic")`. Only a process killed outright (SIGKILL,
/// SIGINT without a handler) while writing can leave it behind, never a file under the final
/// name. On Unix the first call sets SIGXFSZ to "ignore" for the whole process, so a write
/// past the file-size limit (`ulimit -f`) fails with EFBIG, is cleaned up and reported,
/// instead of killing the process with a partial temporary file left over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    ignore_file_size_signal();
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        file.write_all(head)?;
        test_pause("write_atomic");
        file.write_all(tail)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The environment variable that names the point where [`test_pause`] stops the process.
pub const TEST_PAUSE_ENV: &str = "ANEMLLC_TEST_PAUSE";

/// A test hook: when `$ANEMLLC_TEST_PAUSE` equals `point`, prints `anemllc: paused at
/// {point}` on stderr and blocks forever, so a kill test can signal the process at exactly
/// this point instead of guessing with delays (`tests/hostile_inputs.rs`). Without the
/// variable (normal use) it only looks it up.
///
/// Points: `write_atomic`, in [`write_atomic`] with the first half of the bytes written to
/// the temporary file.
pub fn test_pause(point: &str) {
    if std::env::var_os(TEST_PAUSE_ENV).is_some_and(|v| v == point) {
        eprintln!("anemllc: paused at {point} ({TEST_PAUSE_ENV})");
        loop {
            std::thread::park();
        }
    }
}

/// Makes writes beyond RLIMIT_FSIZE fail with EFBIG instead of raising SIGXFSZ (whose
/// default action kills the process). Process-wide and idempotent.
#[cfg(unix)]
pub fn ignore_file_size_signal() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `signal` with SIG_IGN installs no handler code, so nothing can run in
        // signal context; it only changes the disposition of SIGXFSZ for this process.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    });
}

#[cfg(not(unix))]
pub fn ignore_file_size_signal() {}

/// Keeps freed large buffers in the heap (glibc) instead of returning each one to the
/// kernel. `run` allocates tensors of the same sizes on every call (the KV-state copy is
/// 33 MB on a 1B model) and `convert` one f32 working copy per weight (64 MB for a 1B MLP
/// matrix); with glibc's defaults each is a fresh mapping, so every 4 KB costs a page fault
/// and a zeroed page. Call before worker threads allocate anything large.
pub fn reuse_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The index of the first non-finite value (NaN or ±inf) of `data`, scanned in parallel:
/// a branch-free pass per run of values (it vectorises), the position searched only in a
/// run that has one.
pub fn first_non_finite(data: &[f32]) -> Option<usize> {
    use rayon::prelude::*;
    const RUN: usize = 1 << 16;
    data.par_chunks(RUN)
        .enumerate()
        .filter(|(_, run)| run.iter().fold(false, |bad, v| bad | !v.is_finite()))
        .filter_map(|(r, run)| run.iter().position(|v| !v.is_finite()).map(|i| r * RUN + i))
        .min()
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    /// The first bad value wins wherever the runs split, and NaN counts like ±inf.
    #[test]
    fn first_non_finite_finds_the_earliest_across_runs() {
        let mut v = vec![1.0f32; 3 * (1 << 16) + 5];
        assert_eq!(first_non_finite(&v), None);
        v[(1 << 16) * 2 + 7] = f32::INFINITY;
        v[(1 << 16) + 3] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some((1 << 16) + 3));
        v[0] = f32::NEG_INFINITY;
        assert_eq!(first_non_finite(&v), Some(0));
        assert_eq!(first_non_finite(&[]), None);
    }
}
