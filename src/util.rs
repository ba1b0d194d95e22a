//! Small filesystem helpers shared by the commands.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, then
/// rename. A reader never sees a half-written file.
///
/// The temporary file is `.{name}.tmp-{pid}` beside `path` (hidden, clearly not the output);
/// it is removed on every error this function sees. Only a process killed outright (SIGKILL,
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
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
