//! The state file: admin overrides as JSON, written atomically so that a crash leaves either
//! the old file or the new one.

use std::collections::BTreeMap;
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
}

impl std::fmt::Display for StateFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateFileError::Read(p, e) => write!(f, "{}: {e}", p.display()),
            StateFileError::Parse(p, e) => write!(f, "{}: bad state file: {e}", p.display()),
            StateFileError::Write(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for StateFileError {}

#[derive(Serialize, Deserialize, Default)]
struct StateFile {
    overrides: Vec<Override>,
}

/// Reads the overrides in `path`; a missing file has none. Overrides with an unknown state are
/// skipped.
pub(super) fn read(path: &Path) -> Result<BTreeMap<String, Override>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(StateFileError::Read(path.into(), e)),
    };
    let f: StateFile =
        serde_json::from_slice(&bytes).map_err(|e| StateFileError::Parse(path.into(), e))?;
    Ok(f.overrides
        .into_iter()
        .filter(|o| State::parse(&o.state).is_some())
        .map(|o| (o.node.clone(), o))
        .collect())
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
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| StateFileError::Write(path.into(), e))
}
