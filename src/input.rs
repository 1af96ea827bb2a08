//! Opening the files tlearn reads: only regular files. A FIFO, socket or device given or
//! listed as an image or a model is refused at once instead of blocking the run forever.

use std::fs::File;
use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// Opens `path` for reading if it is a regular file (after following symbolic links);
/// anything else is an [`ErrorKind::InvalidInput`] error that says what it is.
///
/// The file is opened without blocking (a FIFO with no writer would otherwise hang the open)
/// and checked on the open handle, so a file swapped after a check cannot slip through.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = open_nonblocking(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_dir() {
        "a folder"
    } else {
        special_kind(&kind)
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{what}, not a regular file: tlearn reads only regular files (give a file's path)"),
    ))
}

/// The whole content of a regular file ([`open_regular`]).
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The whole content of a regular file ([`open_regular`]) as UTF-8 text.
pub fn read_regular_to_string(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    open_regular(path)?.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_kind: &std::fs::FileType) -> &'static str {
    "a special file"
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_and_a_folder_are_refused_without_blocking_and_a_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.jpg");
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("FIFO"), "{err}");
        let err = open_regular(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        std::fs::write(dir.path().join("a.txt"), b"abc").unwrap();
        assert_eq!(read_regular(&dir.path().join("a.txt")).unwrap(), b"abc");
    }
}
