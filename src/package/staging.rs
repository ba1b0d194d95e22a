//! [`StagingDir`]: an output folder that appears only when complete.
//!
//! Everything is written into a hidden sibling `.{name}.partial-{pid}`; [`StagingDir::commit`]
//! renames it onto the final path in one step. Dropping an uncommitted staging directory
//! deletes it, so an error (or a panic unwinding) never leaves a folder under the final name
//! that looks complete. A process killed outright leaves only the hidden `.partial` folder;
//! the next [`StagingDir::create`] for the same target removes such folders whose process
//! is gone (unix; a live process's folder, e.g. a concurrent conversion's, is left alone).

use std::path::{Path, PathBuf};

/// Why the final folder cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("{path} already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StagingError + '_ {
    move |source| StagingError::Io { path: path.to_path_buf(), source }
}

/// A hidden work folder that becomes `target` on [`commit`](StagingDir::commit).
#[derive(Debug)]
pub struct StagingDir {
    target: PathBuf,
    path: PathBuf,
    force: bool,
    committed: bool,
}

impl StagingDir {
    /// Creates the hidden work folder beside `target`. Fails early if `target` exists and
    /// `force` is false, or if the parent folder cannot be written.
    pub fn create(target: &Path, force: bool) -> Result<StagingDir, StagingError> {
        if target.exists() && !force {
            return Err(StagingError::Exists { path: target.to_path_buf() });
        }
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.exists() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        remove_stale_partials(parent, name);
        let path = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        std::fs::create_dir(&path).map_err(io(&path))?;
        Ok(StagingDir { target: target.to_path_buf(), path, force, committed: false })
    }

    /// The folder to write into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The final folder.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the work folder onto the target (replacing an existing target only when
    /// `force` was given; the old one is moved aside first and deleted after the swap).
    pub fn commit(mut self) -> Result<PathBuf, StagingError> {
        let target = self.target.clone();
        let aside = self.path.with_file_name(format!(
            ".{}.old-{}",
            target.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
            std::process::id()
        ));
        let had_old = target.exists();
        if had_old {
            if !self.force {
                return Err(StagingError::Exists { path: target });
            }
            std::fs::rename(&target, &aside).map_err(io(&target))?;
        }
        if let Err(source) = std::fs::rename(&self.path, &target) {
            if had_old {
                let _ = std::fs::rename(&aside, &target);
            }
            return Err(StagingError::Io { path: target, source });
        }
        self.committed = true;
        if had_old {
            let removed = if aside.is_dir() { std::fs::remove_dir_all(&aside) } else { std::fs::remove_file(&aside) };
            removed.map_err(io(&aside))?;
        }
        Ok(target)
    }
}

/// Whether process `pid` may still be running (unix: `kill(pid, 0)` does not report ESRCH;
/// elsewhere always true, so nothing is removed).
fn may_be_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
        // SAFETY: signal 0 only checks whether the process exists; nothing is delivered.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes `.{name}.partial-{pid}` folders in `parent` left by processes that no longer
/// exist (killed conversions). Best effort: errors are ignored, since a leftover hidden
/// folder never looks like a finished output.
fn remove_stale_partials(parent: &Path, name: &str) {
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !may_be_alive(pid) && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("anemllc-staging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn appears_only_on_commit() {
        let d = scratch("commit");
        let target = d.join("out");
        let s = StagingDir::create(&target, false).unwrap();
        std::fs::write(s.path().join("a"), b"1").unwrap();
        assert!(!target.exists());
        s.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "no leftovers");
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let d = scratch("drop");
        let target = d.join("out");
        {
            let s = StagingDir::create(&target, false).unwrap();
            std::fs::write(s.path().join("a"), b"1").unwrap();
        }
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn folders_of_dead_processes_are_removed_and_live_ones_kept() {
        let d = scratch("stale");
        let target = d.join("out");
        // A pid that has exited (its child was reaped) and one that exists (init).
        let dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        let mut dead = dead;
        dead.wait().unwrap();
        let stale = d.join(format!(".out.partial-{dead_pid}"));
        let live = d.join(".out.partial-1");
        let other = d.join(format!(".other.partial-{dead_pid}"));
        for dir in [&stale, &live, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        let s = StagingDir::create(&target, false).unwrap();
        assert!(!stale.exists(), "a dead process's folder goes");
        assert!(live.exists() && other.exists(), "a live process's folder and other targets' stay");
        s.commit().unwrap();
    }

    #[test]
    fn existing_target_needs_force() {
        let d = scratch("force");
        let target = d.join("out");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), b"0").unwrap();
        let e = StagingDir::create(&target, false).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        let s = StagingDir::create(&target, true).unwrap();
        std::fs::write(s.path().join("new"), b"1").unwrap();
        s.commit().unwrap();
        assert!(target.join("new").exists() && !target.join("old").exists());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }
}
