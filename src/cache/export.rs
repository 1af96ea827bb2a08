//! A cache exported to the folder OUT: a cache's features as `OUT/features.npy` (float32, rows x
//! dims, NumPy's format 1.0) and its rows as `OUT/rows.csv`, for tools that read neither HDF5
//! nor tlearn's layout. The cache passes the structural check every reader uses first.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CacheError, Contents, FeatureCache, RowStatus};
use crate::options::Opt;
use crate::output::OutputError;

/// Errors of an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The cache could not be read, or failed its check.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A file could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// An output file is there already; it is not replaced.
    #[error("{} exists already: it is left as it is. Give {opt_npy} another folder, or move it away", .0.display(), opt_npy = Opt::Npy)]
    Exists(PathBuf),
    /// Some rows are not computed yet (a stopped extraction): exporting them as zeros would
    /// pass for features.
    #[error("cache {} is incomplete: {missing} of {rows} rows are not computed yet (its extraction was stopped). Run the same `tlearn features` command again to finish it, or pass {opt_partial} to export only the {done} done rows", cache.display(), opt_partial = Opt::Partial)]
    Incomplete {
        /// The cache file.
        cache: PathBuf,
        /// Rows not computed.
        missing: usize,
        /// Rows done.
        done: usize,
        /// Rows of the cache.
        rows: usize,
    },
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// Rows written (every row of the cache in order; with `partial`, the done rows only).
    pub rows: usize,
    /// Rows of the cache left out (`partial`: rows not done).
    pub left_out: usize,
    /// Values per row.
    pub dims: usize,
    /// The `.npy` file.
    pub features: PathBuf,
    /// The CSV of rows.
    pub rows_csv: PathBuf,
}

/// Writes `out/features.npy` and `out/rows.csv` of the cache at `cache`; refuses to replace
/// either file (and anything tlearn did not write, links, the cache itself). Row i of both is
/// row i of the cache; rows of skipped images hold zeros in the features and say so in the
/// CSV's `status`. An incomplete cache (rows not computed yet) is refused, unless `partial`:
/// then only the done rows are written, in order. The two files are written as one: when the
/// second cannot be written the first is removed, so a rerun finds neither.
pub fn export_npy(cache: &Path, out: &Path, partial: bool) -> Result<ExportSummary, ExportError> {
    let (features, rows_csv) = (out.join("features.npy"), out.join("rows.csv"));
    let target = |path: &Path| {
        crate::output::Target::new(path)
            .option(Opt::Npy)
            .reading(cache)
    };
    for path in [&features, &rows_csv] {
        if target(path).check_place()? {
            return Err(ExportError::Exists(path.clone()));
        }
    }
    let contents = FeatureCache::open(cache)?.contents()?;
    let rows = exported_rows(&contents, partial)?;
    let dims = contents.features.ncols();
    target(&features).write_with(|file| {
        file.write_all(&npy_header(rows.len(), dims))?;
        for &row in &rows {
            let values = contents.features.row(row);
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            file.write_all(&bytes)?;
        }
        Ok(())
    })?;
    if let Err(e) = target(&rows_csv).write(&rows_table(&contents, &rows)) {
        let _ = std::fs::remove_file(&features);
        return Err(e.into());
    }
    Ok(ExportSummary {
        rows: rows.len(),
        left_out: contents.status.len() - rows.len(),
        dims,
        features,
        rows_csv,
    })
}

/// The rows to export: all when none is missing; the done ones when `partial`; else refused.
fn exported_rows(contents: &Contents, partial: bool) -> Result<Vec<usize>, ExportError> {
    let status = &contents.status;
    let count = |s: RowStatus| status.iter().filter(|x| **x == s).count();
    let (missing, done) = (count(RowStatus::Missing), count(RowStatus::Done));
    if partial && done > 0 {
        return Ok((0..status.len())
            .filter(|&r| status[r] == RowStatus::Done)
            .collect());
    }
    if missing > 0 || done == 0 {
        return Err(ExportError::Incomplete {
            cache: contents.path.clone(),
            missing,
            done,
            rows: status.len(),
        });
    }
    Ok((0..status.len()).collect())
}

/// The header of a C-ordered little-endian float32 array of `rows x dims`, format version 1.0:
/// magic, version, header length, then the dictionary padded with spaces and ended by a newline
/// so the data starts on a multiple of 64 bytes.
fn npy_header(rows: usize, dims: usize) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dims}), }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    let len = u16::try_from(dict.len()).expect("a shape's header is short");
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// One CSV line per row: path (as stored, relative to the data root), label, class, status,
/// copy, then the part code (0 train, 1 val, 2 test) in each split (none for unlabeled images,
/// whose label is -1 and class empty).
fn rows_table(c: &Contents, rows: &[usize]) -> Vec<u8> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut header = ["path", "label", "class", "status", "copy"]
        .map(String::from)
        .to_vec();
    header.extend((0..c.parts.ncols()).map(|s| format!("split_{s}")));
    csv.write_record(&header).expect("writing to memory");
    for &row in rows {
        let path = &c.paths[row];
        let status = match c.status[row] {
            RowStatus::Done => "done",
            RowStatus::Skipped => "skipped",
            RowStatus::Missing => "missing",
        };
        // Unlabeled images: label -1 (as the cache stores it), no class name.
        let (label, class) = match &c.labels {
            Some(labels) => (labels[row].to_string(), c.class_names[labels[row]].clone()),
            None => (super::UNLABELED.to_string(), String::new()),
        };
        let mut fields = vec![
            path.clone(),
            label,
            class,
            status.to_string(),
            c.copies[row].to_string(),
        ];
        fields.extend(c.parts.row(row).iter().map(|p| (*p as u8).to_string()));
        csv.write_record(&fields).expect("writing to memory");
    }
    csv.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_names_the_shape() {
        let header = npy_header(3758, 25088);
        assert_eq!(header.len() % 64, 0);
        assert!(header.starts_with(b"\x93NUMPY\x01\x00"));
        let text = String::from_utf8_lossy(&header[10..]);
        assert!(
            text.contains("'shape': (3758, 25088)") && text.ends_with('\n'),
            "{text}"
        );
    }
}
