//! [`DirectFile`]: an append-mostly file writer that bypasses the page cache where the
//! platform allows it (Linux `O_DIRECT`), for the large `weight.bin` files.
//!
//! Why: copying a payload into the page cache costs CPU time in the writing thread; on the
//! VMs this project is measured on it ran at ~0.2–0.5 GB/s (`dd` of 1 GiB: 5.9 s buffered,
//! 5.3 s of it system time, against 0.8 s with `oflag=direct`), a tenth of a 1B LUT6
//! convert's CPU. Direct writes hand the bytes to the device without that copy.
//!
//! Direct I/O needs the buffer address, the file offset and the length aligned to the
//! device's block size, so bytes are staged in a [`BLOCK`]-aligned buffer and written a
//! whole buffer at a time; a partial last block is written zero-padded and the file is then
//! cut back to its real length. Anything else falls back to ordinary writes:
//!
//! - a file system that refuses `O_DIRECT` (tmpfs, some network file systems) or a device
//!   that refuses a direct write (`EINVAL`): the same staging, written through the cache;
//! - a seek back (the blob writer rewrites its header at the end): everything staged is
//!   written out, `O_DIRECT` is cleared, and later writes go to their offset directly.
//!
//! Invariants: bytes `[0, staged_from)` are on the file (possibly followed by zero padding
//! past `end` until the next stage write or [`DirectFile::into_file`]); `stage[..fill]`
//! holds bytes `[staged_from, end)`; `staged_from` is a multiple of [`BLOCK`]. The file
//! content read back after `flush` or `into_file` is exactly what was written, as with a
//! plain `File`.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// Alignment of direct writes (a multiple of every common logical block size).
pub const BLOCK: usize = 4096;

/// Bytes staged before a write: large enough that each system call moves a lot.
const STAGE: usize = 4 << 20;

/// A writer for one file, see the module docs.
pub struct DirectFile {
    file: File,
    /// `BLOCK`-aligned staging window into `storage` (`window..window + capacity`).
    storage: Vec<u8>,
    window: usize,
    capacity: usize,
    fill: usize,
    /// File offset of the first staged byte.
    staged_from: u64,
    /// Logical length: every byte written so far ends here.
    end: u64,
    /// Writes go through `O_DIRECT`.
    direct: bool,
    /// After a seek back: no staging, each write goes straight to `pos`.
    positioned: bool,
    pos: u64,
}

impl DirectFile {
    /// Wraps a newly created, empty `file` open for writing, turning on direct I/O where the
    /// platform and file system allow it.
    pub fn new(file: File) -> DirectFile {
        DirectFile::with_stage(file, STAGE, true)
    }

    /// As [`DirectFile::new`] with a staging size (a positive multiple of [`BLOCK`]) and
    /// whether to try direct I/O at all (tests exercise both paths).
    pub fn with_stage(file: File, stage: usize, try_direct: bool) -> DirectFile {
        assert!(stage > 0 && stage.is_multiple_of(BLOCK), "stage must be a positive multiple of {BLOCK}");
        let storage = vec![0u8; stage + BLOCK];
        let window = storage.as_ptr().align_offset(BLOCK);
        let direct = try_direct && set_direct(&file, true).is_ok();
        DirectFile {
            file,
            storage,
            window,
            capacity: stage,
            fill: 0,
            staged_from: 0,
            end: 0,
            direct,
            positioned: false,
            pos: 0,
        }
    }

    /// Whether writes currently bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct && !self.positioned
    }

    /// Writes the staged bytes at `staged_from`, zero-padded to a whole block; with
    /// `advance` (a full stage) the window then moves past them.
    fn write_stage(&mut self, advance: bool) -> io::Result<()> {
        if self.fill == 0 {
            return Ok(());
        }
        let padded = self.fill.next_multiple_of(BLOCK);
        let (w, fill) = (self.window, self.fill);
        self.storage[w + fill..w + padded].fill(0);
        let bytes = &self.storage[w..w + padded];
        let result = self.file.write_all_at(bytes, self.staged_from);
        match result {
            // EINVAL is `InvalidInput` on every platform.
            Err(e) if self.direct && e.kind() == io::ErrorKind::InvalidInput => {
                // The device or file system refused a direct write: go through the cache.
                set_direct(&self.file, false)?;
                self.direct = false;
                self.file.write_all_at(&self.storage[w..w + padded], self.staged_from)?;
            }
            other => other?,
        }
        if advance {
            self.staged_from += self.fill as u64;
            self.fill = 0;
        }
        Ok(())
    }

    /// Writes out everything staged and cuts the file to its logical length.
    fn settle(&mut self) -> io::Result<()> {
        self.write_stage(false)?;
        if self.fill.is_multiple_of(BLOCK) {
            self.staged_from += self.fill as u64;
            self.fill = 0;
        }
        self.file.set_len(self.end)
    }

    /// Leaves staging for positioned writes (see the module docs).
    fn leave_staging(&mut self) -> io::Result<()> {
        if self.positioned {
            return Ok(());
        }
        self.settle()?;
        if self.direct {
            set_direct(&self.file, false)?;
            self.direct = false;
        }
        self.positioned = true;
        self.pos = self.end;
        Ok(())
    }

    /// Writes out everything and returns the file, whose length is the logical length.
    pub fn into_file(mut self) -> io::Result<File> {
        if !self.positioned {
            self.settle()?;
        }
        if self.direct {
            set_direct(&self.file, false)?;
        }
        Ok(self.file)
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.positioned {
            self.file.write_all_at(data, self.pos)?;
            self.pos += data.len() as u64;
            self.end = self.end.max(self.pos);
            return Ok(data.len());
        }
        let n = data.len().min(self.capacity - self.fill);
        let at = self.window + self.fill;
        self.storage[at..at + n].copy_from_slice(&data[..n]);
        self.fill += n;
        self.end += n as u64;
        if self.fill == self.capacity {
            self.write_stage(true)?;
        }
        Ok(n)
    }

    /// Makes everything written so far part of the file (a partial block is written padded
    /// and written again when more bytes follow).
    fn flush(&mut self) -> io::Result<()> {
        if self.positioned { Ok(()) } else { self.settle() }
    }
}

impl Seek for DirectFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let current = if self.positioned { self.pos } else { self.end };
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.end.checked_add_signed(d),
            SeekFrom::Current(d) => current.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the file"))?;
        if !self.positioned && target == self.end {
            return Ok(target);
        }
        self.leave_staging()?;
        self.pos = target;
        Ok(target)
    }
}

/// Turns `O_DIRECT` on or off for `file`.
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl with F_GETFL/F_SETFL on a descriptor this `File` owns and keeps open for
    // the duration of the call; it reads and sets status flags only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Direct I/O through `O_DIRECT` is Linux's; elsewhere writes go through the cache.
#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, on: bool) -> io::Result<()> {
    if on { Err(io::Error::new(io::ErrorKind::Unsupported, "no O_DIRECT on this platform")) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("anemllc-direct-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("f.bin")
    }

    /// Deterministic pseudo-random bytes.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Writes of every size across stage boundaries, a flush in the middle, then a header
    /// patch at offset 0 and a seek back to the end, as the blob writer does: the file holds
    /// exactly the bytes a `Vec` model holds, direct or not.
    #[test]
    fn content_equals_a_plain_model() {
        for try_direct in [true, false] {
            let path = temp(&format!("model-{try_direct}"));
            let mut f = DirectFile::with_stage(File::create(&path).unwrap(), 2 * BLOCK, try_direct);
            let mut model = Vec::new();
            for (i, n) in [64usize, 1, 4095, 4097, 8192, 3, 9000, 0, 100, 12288].into_iter().enumerate() {
                let chunk = bytes(n, i as u64);
                f.write_all(&chunk).unwrap();
                model.extend_from_slice(&chunk);
                if i == 4 {
                    f.flush().unwrap();
                    assert_eq!(std::fs::read(&path).unwrap(), model, "after a flush mid-stream");
                }
            }
            assert_eq!(f.seek(SeekFrom::Start(0)).unwrap(), 0);
            f.write_all(&[0xAB; 64]).unwrap();
            model[..64].fill(0xAB);
            assert_eq!(f.seek(SeekFrom::Start(model.len() as u64)).unwrap(), model.len() as u64);
            f.flush().unwrap();
            let file = f.into_file().unwrap();
            drop(file);
            assert_eq!(std::fs::read(&path).unwrap(), model, "try_direct = {try_direct}");
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        }
    }

    /// Without a seek back, `into_file` alone leaves the exact bytes (no padding).
    #[test]
    fn into_file_cuts_the_padding() {
        let path = temp("cut");
        let mut f = DirectFile::with_stage(File::create(&path).unwrap(), BLOCK, true);
        let data = bytes(3 * BLOCK + 17, 7);
        f.write_all(&data).unwrap();
        drop(f.into_file().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), data);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
