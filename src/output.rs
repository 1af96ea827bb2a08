//! Where tlearn writes: run names, atomic file writes, and replacing a run's folder.
//!
//! The rules that keep a user's work safe live here, once: a run name is one plain path
//! component (so `runs/<name>` and `reports/<name>` never leave their folders); a file is
//! written under a temporary name and renamed into place, and the temporary file is removed
//! when writing fails; a folder is replaced only when everything in it is a file that tlearn
//! writes there, so a folder holding anything else is refused, never deleted.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest run name, in bytes (a file name on common file systems holds 255).
const MAX_NAME_LEN: usize = 200;

/// Errors of writing tlearn's outputs.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A run name that is not one plain path component.
    #[error("run name {name:?} {problem}: a run name is one plain folder name (letters, digits, '-', '_', '.'; not empty, not starting with '.', no '/')")]
    BadRunName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The folder to replace holds files tlearn did not write there.
    #[error("{dir} holds {} that tlearn did not write there ({}): it is left untouched. Choose another run name or output folder, or move those files away", if .foreign.len() == 1 { "a file" } else { "files" }, .foreign.join(", "))]
    Foreign {
        /// The folder.
        dir: PathBuf,
        /// Its entries that tlearn does not write (relative paths, a few at most).
        foreign: Vec<String>,
    },
    /// An output folder's path names something that is not a folder.
    #[error("{} is not a folder (a file, or a symbolic link): tlearn writes a folder there, so it leaves this one untouched. Choose another run name or output folder, or move it away", .0.display())]
    NotAFolder(PathBuf),
    /// Two outputs of one command would land in the same folder.
    #[error("{0} would receive both the model and the report: give --runs and --reports different folders")]
    SameFolder(PathBuf),
    /// A file system error.
    #[error("{path}: {}", describe_io(.source))]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// An I/O error, with what to do when the disk is full.
pub fn describe_io(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::StorageFull {
        "the disk is full: free some space and run the same command again (nothing was half-written)"
            .into()
    } else {
        error.to_string()
    }
}

/// An error kept as the cause of another, so `std::error::Error::source` chains reach it.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `what` followed by its cause's message (either may be missing), for error messages that
/// keep the cause as their source.
pub fn with_cause(what: &str, cause: &Option<Cause>) -> String {
    match cause {
        None => what.to_string(),
        Some(cause) if what.is_empty() => cause.to_string(),
        Some(cause) => format!("{what}: {cause}"),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The name of a run: one plain path component, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunName(String);

impl RunName {
    /// Checks `name`: not empty, not `.` or `..`, no separators or control characters, not
    /// hidden (tlearn's temporary folders start with '.'), at most 200 bytes.
    pub fn new(name: &str) -> Result<RunName, OutputError> {
        let bad = |problem| {
            Err(OutputError::BadRunName {
                name: name.to_string(),
                problem,
            })
        };
        if name.is_empty() {
            return bad("is empty");
        }
        if name == "." || name == ".." {
            return bad("names a folder above or at the output folder");
        }
        if name.starts_with('.') {
            return bad("starts with '.'");
        }
        if name.contains(['/', '\\']) {
            return bad("contains a path separator");
        }
        if name.chars().any(char::is_control) {
            return bad("contains a control character");
        }
        if name.len() > MAX_NAME_LEN {
            return bad("is longer than 200 bytes");
        }
        Ok(RunName(name.to_string()))
    }

    /// The last component of `dir` as a run name (`runs/finetune` -> `finetune`).
    pub fn of_folder(dir: &Path) -> Result<RunName, OutputError> {
        match dir.file_name() {
            Some(name) => RunName::new(&name.to_string_lossy()),
            None => RunName::new(&dir.to_string_lossy()),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sibling of `path` that tlearn owns while it works: `.NAME.TAG-PID-N`. Same folder, so
/// the final rename never crosses file systems; the process id and a counter keep concurrent
/// writers of one path apart.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.{tag}-{}-{n}", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced and renamed into
/// place: a crash or a full disk leaves the old file (or none), never half of the new one, and
/// the temporary file is removed when writing fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes, through a buffer: for files too large to hold in
/// memory twice.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(path))?;
    }
    let tmp = sibling(path, "partial");
    let written = std::fs::File::create(&tmp).and_then(|file| {
        let mut buffered = std::io::BufWriter::new(file);
        write(&mut buffered)?;
        buffered
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    });
    let result = written.and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

/// Refuses two output folders of one command that are the same place (`X` and `./X`, or the
/// same folder through a link), which would make one output overwrite the other.
pub fn check_apart(first: &Path, second: &Path) -> Result<(), OutputError> {
    let lexical = |p: &Path| -> PathBuf {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    };
    let same = match (first.canonicalize(), second.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => lexical(first) == lexical(second),
    };
    if same {
        Err(OutputError::SameFolder(first.to_path_buf()))
    } else {
        Ok(())
    }
}

/// Which entries (paths relative to the folder) tlearn writes into a kind of folder.
pub type Owned = fn(&Path) -> bool;

/// Refuses a folder `dir` that exists and holds anything `owned` does not accept (or is not
/// a folder); an absent folder is fine.
pub fn check_replaceable(dir: &Path, owned: Owned) -> Result<(), OutputError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    if !meta.is_dir() {
        return Err(OutputError::NotAFolder(dir.to_path_buf()));
    }
    let mut foreign = Vec::new();
    foreign_entries(dir, Path::new(""), owned, &mut foreign)?;
    if foreign.is_empty() {
        Ok(())
    } else {
        foreign.truncate(5);
        Err(OutputError::Foreign {
            dir: dir.to_path_buf(),
            foreign,
        })
    }
}

/// Collects the entries below `dir/rel` that `owned` does not accept (folders are accepted
/// when `owned` accepts them and everything in them is accepted too).
fn foreign_entries(
    dir: &Path,
    rel: &Path,
    owned: Owned,
    out: &mut Vec<String>,
) -> Result<(), OutputError> {
    let here = dir.join(rel);
    for entry in std::fs::read_dir(&here).map_err(io(&here))? {
        let entry = entry.map_err(io(&here))?;
        let rel = rel.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&here))?;
        if !owned(&rel) || kind.is_symlink() {
            out.push(rel.display().to_string());
        } else if kind.is_dir() {
            foreign_entries(dir, &rel, owned, out)?;
        }
    }
    Ok(())
}

/// Fills a new folder with `fill` and puts it in place of `dir`, which may exist only if it
/// holds nothing but what `owned` accepts (checked first, and again before the old one goes).
/// Until the new folder is complete the old one stays as it was.
pub fn replace_dir<E: From<OutputError>>(
    dir: &Path,
    owned: Owned,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    check_replaceable(dir, owned)?;
    let staged = sibling(dir, "partial");
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged).map_err(io(&staged))?;
    if let Err(e) = fill(&staged) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e);
    }
    let result = swap_in(&staged, dir, owned);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    result.map_err(E::from)
}

/// Moves `staged` to `dir`: the old folder is renamed aside, the new one renamed in, then the
/// old one removed only if it still holds nothing but tlearn's files.
fn swap_in(staged: &Path, dir: &Path, owned: Owned) -> Result<(), OutputError> {
    if std::fs::symlink_metadata(dir).is_err() {
        return std::fs::rename(staged, dir).map_err(io(dir));
    }
    check_replaceable(dir, owned)?;
    let old = sibling(dir, "old");
    std::fs::rename(dir, &old).map_err(io(dir))?;
    if let Err(e) = std::fs::rename(staged, dir) {
        let _ = std::fs::rename(&old, dir);
        return Err(io(dir)(e));
    }
    check_replaceable(&old, owned)?;
    std::fs::remove_dir_all(&old).map_err(io(&old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_are_one_plain_component() {
        for good in ["svm-avg45", "a.b", "run_1", "ünïcode"] {
            assert_eq!(RunName::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "tab\there",
            "nl\n",
            "\u{7f}",
        ] {
            assert!(RunName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RunName::new(&"x".repeat(201)).is_err());
        assert!(RunName::of_folder(Path::new(".")).is_err());
        assert!(RunName::of_folder(Path::new("/")).is_err());
        assert!(RunName::of_folder(Path::new("runs/..")).is_err());
        assert_eq!(
            RunName::of_folder(Path::new("runs/ft")).unwrap().as_str(),
            "ft"
        );
    }

    fn only_txt(rel: &Path) -> bool {
        rel.extension().is_some_and(|e| e == "txt") || rel == Path::new("sub")
    }

    #[test]
    fn a_file_where_a_folder_goes_is_named_once_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run");
        std::fs::write(&file, "mine").unwrap();
        let err = check_replaceable(&file, only_txt).unwrap_err().to_string();
        assert!(err.contains("is not a folder (a file"), "{err}");
        assert!(!err.contains("(("), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    }

    #[test]
    fn a_folder_with_foreign_files_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");
        std::fs::create_dir_all(target.join("sub")).unwrap();
        std::fs::write(target.join("a.txt"), "old").unwrap();
        std::fs::write(target.join("sub/b.txt"), "old").unwrap();
        std::fs::write(target.join("sub/model.json"), "keep").unwrap();
        let err = replace_dir(&target, only_txt, |new: &Path| {
            std::fs::write(new.join("a.txt"), "new").map_err(io(new))
        })
        .unwrap_err();
        assert!(err.to_string().contains("sub/model.json"), "{err}");
        assert_eq!(
            std::fs::read(target.join("sub/model.json")).unwrap(),
            b"keep"
        );
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"old");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary folder is left behind");

        std::fs::remove_file(target.join("sub/model.json")).unwrap();
        replace_dir(&target, only_txt, |new: &Path| {
            std::fs::write(new.join("a.txt"), "new").map_err(io(new))
        })
        .unwrap();
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"new");
        assert!(
            !target.join("sub").exists(),
            "the old folder was replaced whole"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_fill_leaves_the_old_folder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("a.txt"), "old").unwrap();
        let err = replace_dir(&target, only_txt, |_: &Path| {
            Err(OutputError::SameFolder(PathBuf::from("x")))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/model.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        // Writing into a folder that is a file fails cleanly.
        let err = write_atomic(&path.join("x"), b"three").unwrap_err();
        assert!(matches!(err, OutputError::Io { .. }));
    }
}
