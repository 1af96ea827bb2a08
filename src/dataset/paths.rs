//! The lossless text form of image paths kept in caches and reports: any file name (Linux
//! names are any bytes) written as UTF-8 text, and back.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The lossless text form of a relative path kept in caches and reports: components joined by
/// `/`; valid UTF-8 is kept as it is, except `%`, written `%25`; every byte that is not part of
/// valid UTF-8 (Linux file names are any bytes) is written `%XX` (two upper-case hex digits).
/// [`stored_to_path`] is its inverse.
pub fn path_to_stored(relative: &Path) -> String {
    let mut out = String::new();
    for (i, part) in relative.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        escape_component(part, &mut out);
    }
    out
}

/// The path a [`path_to_stored`] text stands for (relative; join it to the data root).
/// A `%` not followed by two hex digits is kept as it is.
pub fn stored_to_path(stored: &str) -> PathBuf {
    let bytes = stored.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(os_string_from_bytes(out))
}

/// Appends one path component in the stored form.
fn escape_component(part: &OsStr, out: &mut String) {
    for chunk in os_bytes(part).utf8_chunks() {
        out.push_str(&chunk.valid().replace('%', "%25"));
        for byte in chunk.invalid() {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(unix)]
pub(super) fn os_bytes(s: &OsStr) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(s.as_bytes())
}

#[cfg(not(unix))]
pub(super) fn os_bytes(s: &OsStr) -> std::borrow::Cow<'_, [u8]> {
    match s.to_string_lossy() {
        std::borrow::Cow::Borrowed(t) => std::borrow::Cow::Borrowed(t.as_bytes()),
        std::borrow::Cow::Owned(t) => std::borrow::Cow::Owned(t.into_bytes()),
    }
}

#[cfg(unix)]
pub(super) fn os_string_from_bytes(bytes: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(bytes)
}

#[cfg(not(unix))]
pub(super) fn os_string_from_bytes(bytes: Vec<u8>) -> OsString {
    OsString::from(String::from_utf8_lossy(&bytes).into_owned())
}
