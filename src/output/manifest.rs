//! The record of what tlearn wrote in a folder: `.tlearn-outputs.json`, one per folder tlearn
//! writes into, listing each file it wrote there with its kind and sha256. A file is tlearn's
//! to replace only while the record lists it with the bytes it has now.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{io, OutputError};

/// The record's file name, in each folder tlearn writes into.
pub const MANIFEST: &str = ".tlearn-outputs.json";

/// The `format` field of every record.
const FORMAT: &str = "tlearn-outputs";

/// What tlearn wrote in one folder, by file name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Manifest {
    format: String,
    files: BTreeMap<String, Made>,
}

/// One file tlearn wrote: what it is and its bytes' sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Made {
    /// What wrote it (a model, a report, a timing JSON...); `None` for any other output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The sha256 of its bytes, as written.
    pub sha256: String,
}

/// The sha256 of `bytes`, in hex.
pub(super) fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The sha256 of the file at `path`, in hex, read in pieces.
pub(super) fn sha256_of(path: &Path) -> Result<String, OutputError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok(format!("{:x}", hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

impl Manifest {
    /// The record of `dir` (empty when there is none). A record that is a link, or that is not
    /// tlearn's, is refused: tlearn would have to replace it.
    pub fn read(dir: &Path) -> Result<Manifest, OutputError> {
        let path = record_path(dir);
        let meta = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            other => other.map_err(io(&path))?,
        };
        let parsed = meta
            .is_file()
            .then(|| std::fs::read(&path).ok())
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
            .filter(|m| m.format == FORMAT);
        parsed.ok_or_else(|| OutputError::Refused {
            path: path.clone(),
            why: "is not the record of outputs tlearn keeps there".into(),
            advice: "tlearn writes nothing into this folder until it is moved away".into(),
        })
    }

    /// What the record says of the file `name`, if anything.
    pub fn get(&self, name: &str) -> Option<&Made> {
        self.files.get(name)
    }

    /// Records that tlearn wrote `name` (replacing what the record said of it).
    pub fn insert(&mut self, name: String, made: Made) {
        self.files.insert(name, made);
    }

    /// Writes the record of `dir` (through a temporary file, renamed into place).
    pub fn write(mut self, dir: &Path) -> Result<(), OutputError> {
        self.format = FORMAT.into();
        let path = record_path(dir);
        let text = serde_json::to_string_pretty(&self).expect("record serialises") + "\n";
        super::write_raw(&path, &mut |file| {
            std::io::Write::write_all(file, text.as_bytes())
        })
    }
}

/// Holds the lock of `dir`'s record while alive, so two tlearn processes writing into one
/// folder never lose each other's entries.
pub(super) struct Locked(#[allow(dead_code)] std::fs::File);

/// Takes the lock of `dir`'s record (blocking while another tlearn holds it).
pub(super) fn lock(dir: &Path) -> Result<Locked, OutputError> {
    let handle = std::fs::File::open(dir).map_err(io(dir))?;
    handle.lock().map_err(io(dir))?;
    Ok(Locked(handle))
}

/// Records every file below `dir` (which tlearn has just filled), one record per folder.
pub(super) fn seal(dir: &Path, kind: &str) -> Result<(), OutputError> {
    let mut manifest = Manifest::default();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io(&path))?;
        if file_type.is_dir() {
            seal(&path, kind)?;
        } else if file_type.is_file() && entry.file_name() != MANIFEST {
            let made = Made {
                kind: Some(kind.to_string()),
                sha256: sha256_of(&path)?,
            };
            manifest.insert(entry.file_name().to_string_lossy().into_owned(), made);
        }
    }
    manifest.write(dir)
}
