//! The output folder of a run: a lock so that two runs never write one folder, and outputs
//! written beside the previous ones (in `.partial/`) and swapped in only when the run is
//! complete, so a failed or interrupted run leaves the previous results intact.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Folder of the outputs of the run in progress.
pub const STAGING: &str = ".partial";
/// Folder the previous outputs are moved to during the swap (restored if a swap was cut).
const OLD: &str = ".previous";
/// The lock file.
pub const LOCK: &str = ".lock";

/// Refuses an empty output folder name (it would write into the working directory).
pub fn check_out(out: &Path) -> Result<()> {
    if out.as_os_str().is_empty() {
        return Err(Error::invalid(
            "output",
            "is empty, which would write into the working directory; give a folder name",
        ));
    }
    Ok(())
}

/// An output folder held by this process.
#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    _lock: RunLock,
}

impl OutDir {
    /// Creates `out` if needed, takes its lock, restores outputs of a swap that was cut short,
    /// and prepares an empty staging folder (keeping a store a forced run left there).
    pub fn open(out: &Path) -> Result<Self> {
        check_out(out)?;
        std::fs::create_dir_all(out).map_err(Error::io(out))?;
        let lock = RunLock::acquire(out)?;
        let dir = Self {
            root: out.to_path_buf(),
            _lock: lock,
        };
        dir.restore_cut_swap()?;
        let staging = dir.staging();
        if staging.exists() {
            for e in std::fs::read_dir(&staging).map_err(Error::io(&staging))? {
                let p = e.map_err(Error::io(&staging))?.path();
                if p.file_name().is_some_and(|n| n != "simulations") {
                    remove(&p)?;
                }
            }
        }
        std::fs::create_dir_all(&staging).map_err(Error::io(&staging))?;
        Ok(dir)
    }

    /// The output folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the run writes its outputs until [`OutDir::commit`].
    pub fn staging(&self) -> PathBuf {
        self.root.join(STAGING)
    }

    /// Moves everything staged into the output folder, replacing what was there, then
    /// removes the staging folder. Inputs are never staged, so never replaced.
    pub fn commit(&self) -> Result<()> {
        let staging = self.staging();
        let old = self.root.join(OLD);
        std::fs::create_dir_all(&old).map_err(Error::io(&old))?;
        let mut names = Vec::new();
        for e in std::fs::read_dir(&staging).map_err(Error::io(&staging))? {
            names.push(e.map_err(Error::io(&staging))?.file_name());
        }
        names.sort();
        for n in &names {
            let target = self.root.join(n);
            if target.exists() {
                rename(&target, &old.join(n))?;
            }
            rename(&staging.join(n), &target)?;
        }
        remove(&old)?;
        remove(&staging)
    }

    /// A swap cut short (crash between its renames) left previous outputs in `.previous/`:
    /// put back those that have no replacement, then drop the folder.
    fn restore_cut_swap(&self) -> Result<()> {
        let old = self.root.join(OLD);
        if !old.exists() {
            return Ok(());
        }
        for e in std::fs::read_dir(&old).map_err(Error::io(&old))? {
            let e = e.map_err(Error::io(&old))?;
            let target = self.root.join(e.file_name());
            if !target.exists() {
                rename(&e.path(), &target)?;
            }
        }
        remove(&old)
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(Error::io(to))
}

fn remove(p: &Path) -> Result<()> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p)(e)),
        _ => Ok(()),
    }
}

/// `OUT/.lock`, holding the pid and host of the process that writes `OUT`; removed on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether process `pid` runs on this machine (Linux: `/proc/PID`; elsewhere assume it does,
/// so a lock is never broken wrongly).
fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl RunLock {
    /// Takes the lock of folder `dir`. A lock held by a running process is an error naming
    /// it; a lock left by a process of this machine that no longer runs (a crash) is taken
    /// over with a note on stderr; one from another machine is an error that says how to
    /// remove it once that run is known to be over.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK);
        let me = format!("{} {}\n", std::process::id(), host_name());
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(me.as_bytes()).map_err(Error::io(&path))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Self::judge_existing(&path)?;
                }
                Err(e) => return Err(Error::io(&path)(e)),
            }
        }
        Err(Error::invalid(
            path.display().to_string(),
            "another run took this folder's lock at the same moment",
        ))
    }

    /// Removes a stale lock, or errors on a live or foreign one.
    fn judge_existing(path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut it = text.split_whitespace();
        let pid = it.next().and_then(|p| p.parse::<u32>().ok());
        let host = it.next().unwrap_or("").to_string();
        let here = host_name();
        match pid {
            Some(pid) if host == here && !process_alive(pid) => {
                eprintln!(
                    "note: {} was left by process {pid} on {host}, which no longer runs (a crash or kill); taking it over",
                    path.display()
                );
                remove(path)
            }
            Some(pid) if host == here => Err(Error::invalid(
                path.display().to_string(),
                format!(
                    "another neurosbi run (process {pid}) is writing this output folder; wait for it to finish, or use another folder with --out"
                ),
            )),
            _ => Err(Error::invalid(
                path.display().to_string(),
                format!(
                    "this output folder is locked by {} on host `{host}`; if that run is over, delete the lock file",
                    pid.map_or("an unknown process".to_string(), |p| format!("process {p}"))
                ),
            )),
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("neurosbi-outdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_second_holder_is_refused_and_a_dead_holder_is_taken_over() {
        let d = tmp("lock");
        let a = OutDir::open(&d).unwrap();
        let e = OutDir::open(&d).unwrap_err().to_string();
        assert!(
            e.contains("another neurosbi run") && e.contains(".lock"),
            "{e}"
        );
        drop(a);
        assert!(!d.join(LOCK).exists());
        // A pid that cannot be running (beyond Linux's pid_max).
        std::fs::write(d.join(LOCK), format!("4294967294 {}\n", host_name())).unwrap();
        OutDir::open(&d).unwrap();
        std::fs::write(d.join(LOCK), "17 some-other-host\n").unwrap();
        let e = OutDir::open(&d).unwrap_err().to_string();
        assert!(
            e.contains("some-other-host") && e.contains("delete the lock"),
            "{e}"
        );
    }

    #[test]
    fn commit_replaces_outputs_only_when_called_and_a_cut_swap_is_restored() {
        let d = tmp("swap");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("samples.csv"), "old").unwrap();
        std::fs::write(d.join("fit.toml"), "input").unwrap();
        {
            let o = OutDir::open(&d).unwrap();
            std::fs::write(o.staging().join("samples.csv"), "new").unwrap();
            // Dropped without commit: an interrupted run leaves the old results.
        }
        assert_eq!(
            std::fs::read_to_string(d.join("samples.csv")).unwrap(),
            "old"
        );
        let o = OutDir::open(&d).unwrap();
        assert!(!o.staging().join("samples.csv").exists());
        std::fs::write(o.staging().join("samples.csv"), "new").unwrap();
        o.commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("samples.csv")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("fit.toml")).unwrap(),
            "input"
        );
        drop(o);
        // A swap cut after moving the old file away and before moving the new one in.
        std::fs::create_dir_all(d.join(OLD)).unwrap();
        std::fs::rename(d.join("samples.csv"), d.join(OLD).join("samples.csv")).unwrap();
        OutDir::open(&d).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("samples.csv")).unwrap(),
            "new"
        );
        assert!(!d.join(OLD).exists());
        assert!(check_out(Path::new("")).is_err());
    }
}
