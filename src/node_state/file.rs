//! The state file: admin overrides as JSON, written atomically so that a crash leaves either
//! the old file or the new one.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Override;
use crate::health::State;

/// Why the state file could not be read or written.
#[derive(Debug)]
pub enum StateFileError {
    /// The file exists but cannot be read.
    Read(PathBuf, std::io::Error),
    /// The file is not a state file.
    Parse(PathBuf, serde_json::Error),
    /// The new file could not be written.
    Write(PathBuf, std::io::Error),
    /// The directory the file is to be written in does not exist or is not a directory.
    Directory(PathBuf, std::io::Error),
    /// The path names no file (it is empty or ends in `..`).
    NoFileName(PathBuf),
}

impl std::fmt::Display for StateFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateFileError::Read(p, e) => write!(f, "{}: {e}", p.display()),
            StateFileError::Parse(p, e) => write!(f, "{}: bad state file: {e}", p.display()),
            StateFileError::Write(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            StateFileError::Directory(p, e) => write!(
                f,
                "state file {}: its directory cannot be used: {e}",
                p.display()
            ),
            StateFileError::NoFileName(p) => {
                write!(f, "state file {:?} names no file", p.display())
            }
        }
    }
}

impl std::error::Error for StateFileError {}

#[derive(Serialize, Default)]
struct StateFile {
    overrides: Vec<Override>,
}

/// A state file as read: each override decoded on its own, so that one with a state this
/// version does not know is dropped alone.
#[derive(Deserialize)]
struct StateFileRead {
    overrides: Vec<serde_json::Value>,
}

/// Reads the overrides in `path`; a missing file has none. Overrides with an unknown state are
/// dropped, each with a warning.
pub(super) fn read(path: &Path) -> Result<BTreeMap<String, Override>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(StateFileError::Read(path.into(), e)),
    };
    let parse = |e| StateFileError::Parse(path.into(), e);
    let f: StateFileRead = serde_json::from_slice(&bytes).map_err(parse)?;
    let mut out = BTreeMap::new();
    for value in f.overrides {
        let state = value.get("state").and_then(|s| s.as_str());
        if let Some(state) = state
            && State::parse(state).is_none()
        {
            let node = value.get("node").and_then(|n| n.as_str()).unwrap_or("");
            tracing::warn!(
                path = %path.display(),
                node = %node.escape_debug(),
                state = %state.escape_debug(),
                "state file: override with an unknown state dropped (expected up, down or drain)"
            );
            continue;
        }
        let o: Override = serde_json::from_value(value).map_err(parse)?;
        out.insert(o.node.clone(), o);
    }
    Ok(out)
}

/// The temporary file a write of `path` goes through: `.NAME.tmp` beside it. Never `path`
/// itself (not even for a state file named `x.tmp`), and different for every file name, so
/// `state.json` and `state.yaml` in one directory do not share one.
pub(super) fn temporary(path: &Path) -> Result<PathBuf, StateFileError> {
    let name = path
        .file_name()
        .ok_or_else(|| StateFileError::NoFileName(path.into()))?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".tmp");
    Ok(path.with_file_name(tmp))
}

/// The directory `path` is written in (`.` for a bare file name).
fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Checks, before the server starts, that `path` can be written where it is: its directory
/// exists and is a directory (an error), and a file can be created there (a warning: the
/// server serves anyway, and every `set` reports the failure).
pub(super) fn check_writable(path: &Path) -> Result<(), StateFileError> {
    let tmp = temporary(path)?;
    let dir = directory(path);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(StateFileError::Directory(
                path.into(),
                std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", dir.display()),
                ),
            ));
        }
        Err(e) => {
            return Err(StateFileError::Directory(
                path.into(),
                std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())),
            ));
        }
    }
    match std::fs::File::create(&tmp) {
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp);
        }
        Err(e) => tracing::warn!(
            path = %path.display(),
            "the state file cannot be written ({e}): `set` and `clear` will fail until it can"
        ),
    }
    Ok(())
}

/// Writes `overrides` to `path` through a temporary file, fsync and rename.
pub(super) fn write(
    path: &Path,
    overrides: &BTreeMap<String, Override>,
) -> Result<(), StateFileError> {
    let f = StateFile {
        overrides: overrides.values().cloned().collect(),
    };
    let text = serde_json::to_vec_pretty(&f).expect("overrides serialise");
    let tmp = temporary(path)?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        StateFileError::Write(path.into(), e)
    })?;
    // The new file is in place: from here on the write has happened (a caller that undid its
    // change now would disagree with the file). A directory that cannot be synced only makes
    // the rename less durable across a power cut.
    if let Err(e) = std::fs::File::open(directory(path)).and_then(|d| d.sync_all()) {
        tracing::warn!(path = %path.display(), "cannot sync the state file's directory: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_file_is_never_the_target_nor_shared() {
        let t = |p: &str| temporary(Path::new(p)).unwrap();
        assert_eq!(t("x.tmp"), PathBuf::from(".x.tmp.tmp"));
        assert_eq!(
            t("/var/lib/s/state.json"),
            PathBuf::from("/var/lib/s/.state.json.tmp")
        );
        assert_ne!(t("/d/state.json"), t("/d/state.yaml"));
        assert!(temporary(Path::new("/d/..")).is_err());
    }
}
