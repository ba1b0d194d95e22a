//! Writing a synthetic checkpoint folder: temporary folder, shards through mmap windows,
//! rename into place.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::Path;

use memmap2::MmapOptions;
use rayon::prelude::*;
use serde_json::json;

use super::layout::{self, ShardPlan};
use super::preset::TensorSpec;
use super::rng::{block_seed, fill_block};
use super::{SynthError, SynthOptions, SynthSummary, WINDOW_BYTES};
use crate::checkpoint::INDEX_FILE;

/// Generates the checkpoint described by `opts` into the folder `out`.
///
/// `out` must not exist unless `opts.force` (then it is replaced once the new folder is
/// complete); missing parent folders are created. Everything is written into
/// `.{name}.synth-tmp-{pid}` beside `out` and renamed at the end, so `out` never holds a
/// partial checkpoint; on error the temporary folder is removed.
pub fn generate(out: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
    if opts.max_shard_bytes == 0 {
        return Err(SynthError::Usage("--max-shard-bytes must be positive".into()));
    }
    if opts.block_elems == 0 {
        return Err(SynthError::Usage("--block-elems must be positive".into()));
    }
    let Some(name) = out.file_name().and_then(|n| n.to_str()) else {
        return Err(SynthError::Usage(format!("{}: not a usable output folder name", out.display())));
    };
    if out.symlink_metadata().is_ok() && !opts.force {
        return Err(SynthError::Exists { path: out.to_path_buf() });
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    ignore_file_size_signal();

    let tmp = parent.join(format!(".{name}.synth-tmp-{}", std::process::id()));
    if tmp.symlink_metadata().is_ok() {
        // Left over by a killed run that had our pid.
        remove_any(&tmp).map_err(io_at(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io_at(&tmp))?;
    let result = write_folder(&tmp, opts).and_then(|mut summary| {
        replace(&tmp, out, opts.force)?;
        summary.dir = out.to_path_buf();
        Ok(summary)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes every file of the checkpoint into the (empty) folder `dir`.
fn write_folder(dir: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
    let shape = opts.preset.shape();
    let tensors = shape.tensors();
    let plan = layout::plan(&tensors, opts.dtype, opts.max_shard_bytes);
    let total: u64 = plan.shards.iter().map(|s| s.len).sum();
    let mut progress = Progress::new(opts.progress, total);

    let mut files = Vec::new();
    for shard in &plan.shards {
        let path = dir.join(&shard.file_name);
        write_shard(&path, shard, &tensors, opts, &mut progress).map_err(io_at(&path))?;
        files.push((shard.file_name.clone(), shard.len));
    }
    drop(progress);

    let mut json_file = |name: &str, text: String| -> Result<(), SynthError> {
        let path = dir.join(name);
        std::fs::write(&path, &text).map_err(io_at(&path))?;
        files.push((name.to_string(), text.len() as u64));
        Ok(())
    };
    if let Some(index) = plan.index {
        json_file(INDEX_FILE, index)?;
    }
    let provenance = json!({
        "block_elems": opts.block_elems,
        "preset": opts.preset.name(),
        "seed": opts.seed,
    });
    json_file("config.json", pretty(&shape.config_json(opts.dtype.torch_dtype(), provenance)))?;
    json_file("generation_config.json", pretty(&shape.generation_config_json()))?;

    Ok(SynthSummary {
        dir: dir.to_path_buf(),
        bytes: files.iter().map(|f| f.1).sum(),
        files,
        tensors: tensors.len(),
        params: tensors.iter().map(TensorSpec::numel).sum(),
    })
}

/// `json.dumps(indent=2)` plus a final newline, as transformers writes its JSON files.
fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON of plain values");
    text.push('\n');
    text
}

/// One block of one tensor: `numel` elements at byte `offset` of the shard file.
struct Job {
    tensor: usize,
    block: u64,
    offset: u64,
    numel: u64,
}

/// Creates the shard file, writes its header, sizes it and fills its data window by window.
fn write_shard(
    path: &Path,
    shard: &ShardPlan,
    tensors: &[TensorSpec],
    opts: &SynthOptions,
    progress: &mut Progress,
) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
    file.write_all(&shard.header)?;
    allocate(&file, shard.len)?;
    progress.add(shard.header.len() as u64);

    let size = opts.dtype.size() as u64;
    let mut jobs = Vec::new();
    for p in &shard.tensors {
        let blocks = p.numel.div_ceil(opts.block_elems);
        for block in 0..blocks {
            let first = block * opts.block_elems;
            let numel = opts.block_elems.min(p.numel - first);
            jobs.push(Job { tensor: p.tensor, block, offset: p.file_offset + first * size, numel });
        }
    }

    let mut rest = &jobs[..];
    while !rest.is_empty() {
        // Take jobs (contiguous in the file) until the window is full; at least one.
        let start = rest[0].offset;
        let mut take = 0;
        while take < rest.len() && (take == 0 || rest[take].offset + rest[take].numel * size - start <= WINDOW_BYTES) {
            take += 1;
        }
        let (window, tail) = rest.split_at(take);
        rest = tail;
        let last = &window[take - 1];
        let len = usize::try_from(last.offset + last.numel * size - start).map_err(io::Error::other)?;
        fill_window(&file, start, len, window, tensors, opts)?;
        progress.add(len as u64);
    }
    Ok(())
}

/// Maps `len` bytes of `file` at `start` and fills the blocks of `jobs` (which tile that
/// range in order) in parallel.
fn fill_window(
    file: &File,
    start: u64,
    len: usize,
    jobs: &[Job],
    tensors: &[TensorSpec],
    opts: &SynthOptions,
) -> io::Result<()> {
    // SAFETY: the file was created by us (create_new) in our private temporary folder and is
    // already sized to cover this range; nobody else truncates or maps it while we write.
    let mut map = unsafe { MmapOptions::new().offset(start).len(len).map_mut(file)? };
    let size = opts.dtype.size();
    let mut slices = Vec::with_capacity(jobs.len());
    let mut bytes: &mut [u8] = &mut map;
    for job in jobs {
        debug_assert_eq!(job.offset - start, (len - bytes.len()) as u64);
        let (head, tail) = bytes.split_at_mut(job.numel as usize * size);
        slices.push((job, head));
        bytes = tail;
    }
    debug_assert!(bytes.is_empty());
    slices.into_par_iter().for_each(|(job, out)| {
        let seed = block_seed(opts.seed, job.tensor as u64, job.block);
        fill_block(out, opts.dtype, tensors[job.tensor].init, seed);
    });
    Ok(())
}

/// Sizes `file` to `len` bytes. On Linux the blocks are reserved with `fallocate`, so a full
/// disk is reported here (ENOSPC) instead of as SIGBUS while writing through the map.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let off = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: a plain syscall on a file descriptor we own; no memory is passed.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, off) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // Filesystems without fallocate: fall back to a sparse file.
        if !matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)) {
            return Err(err);
        }
    }
    file.set_len(len)
}

/// Replaces `out` by the finished folder `tmp`.
fn replace(tmp: &Path, out: &Path, force: bool) -> Result<(), SynthError> {
    if out.symlink_metadata().is_err() {
        return std::fs::rename(tmp, out).map_err(io_at(out));
    }
    if !force {
        return Err(SynthError::Exists { path: out.to_path_buf() });
    }
    // Move the old output aside first: a folder cannot be renamed over a non-empty one.
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let old = tmp.with_file_name(format!(".{name}.synth-old-{}", std::process::id()));
    if old.symlink_metadata().is_ok() {
        remove_any(&old).map_err(io_at(&old))?;
    }
    std::fs::rename(out, &old).map_err(io_at(out))?;
    if let Err(e) = std::fs::rename(tmp, out) {
        let _ = std::fs::rename(&old, out);
        return Err(io_at(out)(e));
    }
    remove_any(&old).map_err(io_at(&old))
}

/// Removes a file, symlink or folder tree.
fn remove_any(path: &Path) -> io::Result<()> {
    if path.symlink_metadata()?.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
}

/// Attaches `path` to an I/O error.
fn io_at(path: &Path) -> impl Fn(io::Error) -> SynthError + '_ {
    move |source| SynthError::Io { path: path.to_path_buf(), source }
}

/// A `\r`-updated "written / total" line on stderr, only when stderr is a terminal.
struct Progress {
    enabled: bool,
    done: u64,
    total: u64,
}

impl Progress {
    fn new(requested: bool, total: u64) -> Self {
        Progress { enabled: requested && io::stderr().is_terminal(), done: 0, total }
    }

    fn add(&mut self, bytes: u64) {
        self.done += bytes;
        if self.enabled {
            let pct = self.done as f64 * 100.0 / self.total.max(1) as f64;
            eprint!("\rsynth: {:.2} / {:.2} GB ({pct:.0}%)", self.done as f64 / 1e9, self.total as f64 / 1e9);
        }
    }
}

impl Drop for Progress {
    /// Clears the line, also when a write failed (the error message follows).
    fn drop(&mut self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}

/// Makes writes beyond RLIMIT_FSIZE fail with EFBIG instead of raising SIGXFSZ (whose
/// default action kills the process, leaving the temporary folder behind).
#[cfg(unix)]
fn ignore_file_size_signal() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `signal` with SIG_IGN installs no handler code; it only changes the
        // disposition of SIGXFSZ for this process.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    });
}

#[cfg(not(unix))]
fn ignore_file_size_signal() {}
