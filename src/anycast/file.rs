//! The operator's withdrawal kept across restarts: a small JSON file
//! (`{"withdrawn": true}`) written whole (a temporary file renamed over it), like the node
//! states' admin overrides.

use std::path::{Path, PathBuf};

/// What the file holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Kept {
    /// `ctl anycast withdraw` is in force.
    withdrawn: bool,
}

/// Why the file cannot be read or written.
#[derive(Debug)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "anycast state file {}: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for FileError {}

/// Whether the operator's withdrawal is kept in `path`; a missing file means no.
pub fn read(path: &Path) -> Result<bool, FileError> {
    let err = |message: String| FileError {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Kept>(&bytes)
            .map(|k| k.withdrawn)
            .map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Keeps the operator's withdrawal (or its absence) in `path`.
pub fn write(path: &Path, withdrawn: bool) -> Result<(), FileError> {
    let err = |e: std::io::Error| FileError {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_vec(&Kept { withdrawn }).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("signpost-anycast-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.anycast");
        assert!(!super::read(&path).unwrap());
        super::write(&path, true).unwrap();
        assert!(super::read(&path).unwrap());
        super::write(&path, false).unwrap();
        assert!(!super::read(&path).unwrap());
        std::fs::write(&path, "not json").unwrap();
        assert!(super::read(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
