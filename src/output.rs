//! Where tlearn writes, and what it may replace: the one place that decides.
//!
//! The rules that keep a user's work safe live here, once:
//! - tlearn replaces only files it can prove it made: every folder it writes into holds a
//!   record ([`MANIFEST`]) of the files it wrote there, with their kind and sha256; a file the
//!   record does not list, or whose bytes changed since, is never replaced;
//! - never through a symbolic link (tlearn creates none), never onto an input of the command;
//! - a run name is one plain path component (so `runs/<name>` and `reports/<name>` never
//!   leave their folders);
//! - a file is written under a temporary name and renamed into place (the temporary file is
//!   removed when writing fails); a folder is replaced whole, only when everything in it is
//!   tlearn's.
//!
//! Commands check their outputs with [`Target::check`] before any work, so a refusal changes
//! nothing; the same check runs again when the file is written.

mod manifest;

pub use manifest::MANIFEST;
use manifest::{Made, Manifest};

use crate::options::Opt;
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
    #[error("{dir} holds {} that tlearn did not write there, or that changed since ({}): the folder is left as it is. Choose another run name or output folder, or move {} away", if .foreign.len() == 1 { "an entry" } else { "entries" }, .foreign.join(", "), if .foreign.len() == 1 { "it" } else { "them" })]
    Foreign {
        /// The folder.
        dir: PathBuf,
        /// Its entries that tlearn does not write (relative paths, a few at most).
        foreign: Vec<String>,
    },
    /// A path tlearn will not write: what is there, and what to do instead.
    #[error("{path} {why}: it is left as it is. {advice}")]
    Refused {
        /// The file or folder.
        path: PathBuf,
        /// What is there (or what the path is).
        why: String,
        /// What to do instead, with the setting to change.
        advice: String,
    },
    /// Two outputs of one command would land in the same folder.
    #[error("{0} would receive both the model and the report: give {runs} and {reports} different folders", runs = Opt::Runs, reports = Opt::Reports)]
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

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
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

/// The folder `path` is written into (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Writes what `write` writes to `path` through a temporary file in the same folder, synced
/// and renamed into place; the temporary file is removed when writing fails. No ownership
/// check: callers are [`Target`] and the record itself.
fn write_raw(
    path: &Path,
    write: &mut dyn FnMut(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    std::fs::create_dir_all(folder_of(path)).map_err(io(path))?;
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

/// Writes `bytes` to `path` through a temporary file in the same folder, synced and renamed into
/// place: a crash or a full disk leaves the old file (or none), never half of the new one. The
/// file must be absent or one tlearn wrote ([`Target::check`]); it is recorded as tlearn's.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    Target::new(path).write(bytes)
}

/// [`write_atomic`] of what `write` writes, through a buffer: for files too large to hold in
/// memory twice.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    Target::new(path).write_with(write)
}

/// One file a command is about to write, with what it must never replace: anything tlearn did
/// not write (or that changed since), a link, a folder, the command's inputs, and a file tlearn
/// wrote as another kind of output.
#[derive(Debug, Clone)]
pub struct Target {
    path: PathBuf,
    kind: Option<&'static str>,
    option: Option<(Opt, &'static str)>,
    inputs: Vec<(PathBuf, &'static str)>,
}

impl Target {
    /// The file at `path`, of no particular kind, named by no flag.
    pub fn new(path: &Path) -> Target {
        Target {
            path: path.to_path_buf(),
            kind: None,
            option: None,
            inputs: Vec::new(),
        }
    }

    /// What the file is ("classifier model", "timing JSON"...): a file tlearn wrote as another
    /// kind is not replaced.
    pub fn kind(mut self, kind: &'static str) -> Target {
        self.kind = Some(kind);
        self
    }

    /// The setting that named the path, for the messages.
    pub fn option(mut self, option: Opt) -> Target {
        self.option = Some((option, ""));
        self
    }

    /// The setting that named the path, with a note on how it did (" (beside it, ...)").
    pub fn option_with(mut self, option: Opt, note: &'static str) -> Target {
        self.option = Some((option, note));
        self
    }

    /// A file or folder the command reads: the target must be neither it nor inside it.
    pub fn reading(mut self, input: &Path) -> Target {
        self.inputs.push((input.to_path_buf(), "an input"));
        self
    }

    /// Another output of the same command (a file or folder): the target must not be it.
    pub fn beside(mut self, output: &Path) -> Target {
        self.inputs.push((output.to_path_buf(), "another output"));
        self
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What to do instead of writing here.
    fn advice(&self) -> String {
        match self.option {
            Some((option, note)) => {
                format!("Give {option}{note} another path, or move what is there away")
            }
            None => "Move it away, or write somewhere else".into(),
        }
    }

    fn refuse(&self, path: &Path, why: impl Into<String>) -> OutputError {
        OutputError::Refused {
            path: path.to_path_buf(),
            why: why.into(),
            advice: self.advice(),
        }
    }

    /// Refuses (changing nothing) a path tlearn may not write: checked before any work.
    pub fn check(&self) -> Result<(), OutputError> {
        if self.check_place()? {
            self.check_recorded()
        } else {
            Ok(())
        }
    }

    /// [`Self::check`] without the record: for files whose own contents prove they are
    /// tlearn's (a feature cache). Says whether a regular file is there.
    pub fn check_place(&self) -> Result<bool, OutputError> {
        let path = &self.path;
        if path.as_os_str().to_string_lossy().ends_with('/') {
            return Err(self.refuse(path, "names a folder (it ends with '/'), not a file"));
        }
        self.check_folders()?;
        self.check_not_input()?;
        let meta = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            other => other.map_err(io(path))?,
        };
        if meta.is_symlink() {
            Err(self.refuse(
                path,
                "is a symbolic link (tlearn never writes through a link)",
            ))
        } else if meta.is_dir() {
            Err(self.refuse(path, "is a folder, and a file is written here"))
        } else if !meta.is_file() {
            Err(self.refuse(path, "is not a regular file (a FIFO, socket or device)"))
        } else {
            Ok(true)
        }
    }

    /// Refuses a path below a file: the nearest existing folder above it must be a folder.
    fn check_folders(&self) -> Result<(), OutputError> {
        for above in self.path.ancestors().skip(1) {
            if above.as_os_str().is_empty() {
                return Ok(());
            }
            match std::fs::metadata(above) {
                Ok(meta) if meta.is_dir() => return Ok(()),
                Ok(_) => {
                    let why = format!(
                        "is a file, not a folder, so {} cannot be written below it",
                        self.path.display()
                    );
                    return Err(self.refuse(above, why));
                }
                Err(_) => continue,
            }
        }
        Ok(())
    }

    /// Refuses the command's own inputs (the same file, or a file inside an input folder).
    fn check_not_input(&self) -> Result<(), OutputError> {
        let target = resolved(&self.path);
        for (input, what) in &self.inputs {
            let input_path = resolved(input);
            if target == input_path || target.starts_with(&input_path) {
                let why = format!("is {what} of this command ({})", input.display());
                return Err(self.refuse(&self.path, why));
            }
        }
        Ok(())
    }

    /// Refuses an existing file that the folder's record does not list as tlearn's, with the
    /// same bytes and kind.
    fn check_recorded(&self) -> Result<(), OutputError> {
        let name = file_name(&self.path);
        let manifest = Manifest::read(folder_of(&self.path))?;
        let Some(made) = manifest.get(&name) else {
            return Err(self.refuse(&self.path, "was not written by tlearn"));
        };
        if let (Some(was), Some(now)) = (&made.kind, self.kind) {
            if was != now {
                let why = format!("is a {was} tlearn wrote, not a {now}");
                return Err(self.refuse(&self.path, why));
            }
        }
        if manifest::sha256_of(&self.path)? != made.sha256 {
            return Err(self.refuse(&self.path, "changed since tlearn wrote it"));
        }
        Ok(())
    }

    /// Writes `bytes` to the file atomically, once [`Self::check`] passes, and records it.
    pub fn write(&self, bytes: &[u8]) -> Result<(), OutputError> {
        self.write_checked(
            &mut |file| file.write_all(bytes),
            Some(manifest::sha256(bytes)),
        )
    }

    /// [`Self::write`] of what `write` writes, through a buffer.
    pub fn write_with(
        &self,
        write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
    ) -> Result<(), OutputError> {
        let mut write = Some(write);
        self.write_checked(&mut |file| write.take().expect("written once")(file), None)
    }

    /// Checks, writes and records the file, holding the folder's lock throughout.
    fn write_checked(
        &self,
        write: &mut dyn FnMut(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
        sha256: Option<String>,
    ) -> Result<(), OutputError> {
        self.check()?;
        let dir = folder_of(&self.path);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let _lock = manifest::lock(dir)?;
        self.check()?;
        write_raw(&self.path, write)?;
        let sha256 = match sha256 {
            Some(sha) => sha,
            None => manifest::sha256_of(&self.path)?,
        };
        let mut record = Manifest::read(dir)?;
        let made = Made {
            kind: self.kind.map(String::from),
            sha256,
        };
        record.insert(file_name(&self.path), made);
        record.write(dir)
    }
}

/// The last component of `path`, as the record names it.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// `path` with every link in its existing part resolved (an absent tail kept as given).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(full) = path.canonicalize() {
        return full;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => resolved(dir).join(name),
        _ => std::env::current_dir().map_or(path.to_path_buf(), |cwd| cwd.join(path)),
    }
}

/// Refuses a run folder (`runs/NAME`, `reports/NAME`) that is a link or a file: tlearn makes
/// run folders itself and never writes through a link.
pub fn check_run_folder(dir: &Path) -> Result<(), OutputError> {
    let refuse = |why: &str| OutputError::Refused {
        path: dir.to_path_buf(),
        why: why.into(),
        advice: format!(
            "Choose another run name ({}), or replace it with a folder of your own runs",
            Opt::Run
        ),
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(dir)(e)),
        Ok(meta) if meta.is_symlink() => Err(refuse(
            "is a symbolic link (tlearn never writes through a link)",
        )),
        Ok(meta) if !meta.is_dir() => Err(refuse("is a file, not a run folder")),
        Ok(_) => Ok(()),
    }
}

/// Refuses a path that exists and is not a folder (links followed): a folder tlearn writes
/// into, `advice` saying what to do instead.
pub fn check_folder(dir: &Path, advice: &str) -> Result<(), OutputError> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(OutputError::Refused {
            path: dir.to_path_buf(),
            why: "is a file, not a folder".into(),
            advice: advice.into(),
        }),
        _ => Ok(()),
    }
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

/// Refuses a folder `dir` that exists and holds anything `owned` does not accept or that its
/// records do not list as tlearn's (or that is a link or not a folder); an absent folder is fine.
pub fn check_replaceable(dir: &Path, owned: Owned) -> Result<(), OutputError> {
    check_run_folder(dir)?;
    if !dir.exists() {
        return Ok(());
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

/// Collects the entries below `dir/rel` that are not tlearn's: not accepted by `owned`, links,
/// or files the folder's record does not list with their bytes (folders are accepted when
/// `owned` accepts them and everything in them is tlearn's too).
fn foreign_entries(
    dir: &Path,
    rel: &Path,
    owned: Owned,
    out: &mut Vec<String>,
) -> Result<(), OutputError> {
    let here = dir.join(rel);
    let record = Manifest::read(&here).ok();
    if record.is_none() {
        out.push(rel.join(MANIFEST).display().to_string());
    }
    for entry in std::fs::read_dir(&here).map_err(io(&here))? {
        let entry = entry.map_err(io(&here))?;
        let name = entry.file_name();
        if name == MANIFEST {
            continue;
        }
        let rel = rel.join(&name);
        let kind = entry.file_type().map_err(io(&here))?;
        let recorded = |path: &Path| -> Result<bool, OutputError> {
            let made = record.as_ref().and_then(|r| r.get(&name.to_string_lossy()));
            Ok(made.is_some() && made.map(|m| &m.sha256) == Some(&manifest::sha256_of(path)?))
        };
        if !owned(&rel) || kind.is_symlink() {
            out.push(rel.display().to_string());
        } else if kind.is_dir() {
            foreign_entries(dir, &rel, owned, out)?;
        } else if !kind.is_file() || !recorded(&entry.path())? {
            out.push(rel.display().to_string());
        }
    }
    Ok(())
}

/// Fills a new folder with `fill` and puts it in place of `dir`, which may exist only if
/// everything in it is tlearn's (checked first, and again before the old one goes); the new
/// folder's files are recorded as `kind`. Until the new folder is complete the old one stays.
pub fn replace_dir<E: From<OutputError>>(
    dir: &Path,
    owned: Owned,
    kind: &str,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    check_replaceable(dir, owned)?;
    let staged = sibling(dir, "partial");
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged).map_err(io(&staged))?;
    let filled = fill(&staged).and_then(|()| Ok(manifest::seal(&staged, kind)?));
    if let Err(e) = filled {
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

    /// Fills a staged folder with `a.txt` and `sub/b.txt` holding `text`.
    fn fill(text: &'static str) -> impl FnOnce(&Path) -> Result<(), OutputError> {
        move |new: &Path| {
            std::fs::create_dir_all(new.join("sub")).map_err(io(new))?;
            std::fs::write(new.join("a.txt"), text).map_err(io(new))?;
            std::fs::write(new.join("sub/b.txt"), text).map_err(io(new))
        }
    }

    #[test]
    fn a_file_where_a_folder_goes_is_named_once_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run");
        std::fs::write(&file, "mine").unwrap();
        let err = check_replaceable(&file, only_txt).unwrap_err().to_string();
        assert!(err.contains("is a file, not a run folder"), "{err}");
        assert!(!err.contains("(("), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    }

    #[test]
    fn a_folder_with_foreign_files_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");
        replace_dir(&target, only_txt, "test", fill("old")).unwrap();
        std::fs::write(target.join("sub/model.json"), "keep").unwrap();
        let err = replace_dir(&target, only_txt, "test", fill("new")).unwrap_err();
        assert!(err.to_string().contains("sub/model.json"), "{err}");
        assert_eq!(
            std::fs::read(target.join("sub/model.json")).unwrap(),
            b"keep"
        );
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"old");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary folder is left behind");

        // A file of tlearn's that changed since, or one with an owned name it did not write,
        // is foreign too.
        std::fs::remove_file(target.join("sub/model.json")).unwrap();
        std::fs::write(target.join("a.txt"), "edited").unwrap();
        let err = replace_dir(&target, only_txt, "test", fill("new")).unwrap_err();
        assert!(err.to_string().contains("a.txt"), "{err}");
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"edited");
        let mine = dir.path().join("mine");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("a.txt"), "mine").unwrap();
        assert!(replace_dir(&mine, only_txt, "test", fill("new")).is_err());
        assert_eq!(std::fs::read(mine.join("a.txt")).unwrap(), b"mine");

        std::fs::remove_file(target.join("a.txt")).unwrap();
        replace_dir(&target, only_txt, "test", |new: &Path| {
            std::fs::write(new.join("a.txt"), "new").map_err(io(new))
        })
        .unwrap();
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"new");
        assert!(
            !target.join("sub").exists(),
            "the old folder was replaced whole"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_failed_fill_leaves_the_old_folder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");
        replace_dir(&target, only_txt, "test", fill("old")).unwrap();
        let err = replace_dir(&target, only_txt, "test", |_: &Path| {
            Err(OutputError::SameFolder(PathBuf::from("x")))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_unchanged_files_tlearn_wrote_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let target = Target::new(&path).kind("timing JSON").option(Opt::Json);
        target.write(b"one").unwrap();
        target.write(b"two").unwrap();
        // Another kind of output, a changed file, a user's file, a link: all refused.
        let other = Target::new(&path).kind("classifier model");
        assert!(other
            .write(b"x")
            .unwrap_err()
            .to_string()
            .contains("timing JSON"));
        std::fs::write(&path, "edited").unwrap();
        let err = target.write(b"three").unwrap_err().to_string();
        assert!(
            err.contains("changed since") && err.contains(&Opt::Json.to_string()),
            "{err}"
        );
        let user = dir.path().join("user.txt");
        std::fs::write(&user, "mine").unwrap();
        let err = write_atomic(&user, b"x").unwrap_err().to_string();
        assert!(err.contains("not written by tlearn"), "{err}");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&user, &link).unwrap();
        assert!(write_atomic(&link, b"x").is_err());
        assert_eq!(std::fs::read(&user).unwrap(), b"mine");
        assert_eq!(std::fs::read(&path).unwrap(), b"edited");
        // An input, or a file inside an input folder, is never an output.
        let input = Target::new(&dir.path().join("new.json")).reading(dir.path());
        assert!(input.check().unwrap_err().to_string().contains("input"));
        // Below a file: the file is named.
        let below = Target::new(&user.join("x.json"));
        let err = below.check().unwrap_err().to_string();
        assert!(err.starts_with(&user.display().to_string()), "{err}");
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/model.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "the file and the record: {names:?}");
        // Writing below a file fails cleanly, naming the file.
        let err = write_atomic(&path.join("x"), b"three").unwrap_err();
        assert!(
            matches!(&err, OutputError::Refused { path: p, .. } if *p == path),
            "{err}"
        );
    }
}
