//! The cache's layout on disk, written once: every dataset at its final size and every
//! attribute, made complete under a temporary name and renamed into place.

use std::path::Path;

use hdf5::plist::dataset_create::{AllocTime, FillTime};
use hdf5::types::{FixedAscii, VarLenUnicode};
use ndarray::{Array1, Array2};

use super::error::{hdf5_error, is_lock_error};
use super::{fingerprint, space, CacheError, Plan};

/// Version of the layout below; bump when it changes incompatibly.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest layout still read (version 1 lacks only the `fingerprint` dataset, which reading
/// does not need); resuming needs [`FORMAT_VERSION`].
pub(super) const OLDEST_READABLE_VERSION: u32 = 1;

/// Longest skip reason kept per row (fixed-length, so writing it never touches metadata).
pub(super) const REASON_LEN: usize = 200;

/// Fixed-length skip reason as stored.
pub(super) type Reason = FixedAscii<REASON_LEN>;

/// Writes every row's data into a newly laid out (temporary) cache file.
type FillRows<'a> = &'a mut dyn FnMut(&Path) -> Result<(), CacheError>;

/// Builds the complete file under a temporary name, then renames it into place; on failure
/// the temporary file is removed.
pub(super) fn create(path: &Path, plan: &Plan) -> Result<(), CacheError> {
    create_filled(path, plan, None)
}

/// [`create`]; with `fill`, which writes every row's data into the temporary file before the
/// rename, the features are not zeroed first (they would be written twice).
pub(super) fn create_filled(
    path: &Path,
    plan: &Plan,
    fill: Option<FillRows>,
) -> Result<(), CacheError> {
    let io = |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let needed = space::cache_bytes(plan.rows.len(), plan.identity.dims);
    if let Some(free) = space::available_bytes(path).filter(|free| *free < needed) {
        return Err(CacheError::DiskFull {
            path: path.to_path_buf(),
            free,
            needed: Some(needed),
        });
    }
    let partial = path.with_extension("h5.partial");
    // A partial file another process holds open is that process's creation, never removed.
    if let Err(e) = hdf5::File::open_rw(&partial) {
        if is_lock_error(&e) {
            return Err(CacheError::Busy {
                path: path.to_path_buf(),
            });
        }
    }
    let _ = std::fs::remove_file(&partial);
    let filled = write_layout(&partial, plan, fill.is_none())
        .map_err(|source| hdf5_error(path, source))
        .and_then(|()| fill.map_or(Ok(()), |fill| fill(&partial)));
    if let Err(error) = filled {
        // Judged (in hdf5_error) before the removal frees the space.
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, path).map_err(io)
}

/// HDF5 variable-length text; NULs (which HDF5 strings cannot hold) are dropped.
fn text(value: &str) -> VarLenUnicode {
    value.replace('\0', "").parse().expect("text without NUL")
}

fn write_layout(path: &Path, plan: &Plan, zero_features: bool) -> hdf5::Result<()> {
    let file = hdf5::File::create(path)?;
    create_features(&file, plan, zero_features)?;
    write_rows(&file, plan)?;
    write_identity_attrs(&file, plan)?;
    file.flush()?;
    file.close()
}

/// The `features` dataset, allocated whole (zeros when `zero_features`).
fn create_features(file: &hdf5::File, plan: &Plan, zero_features: bool) -> hdf5::Result<()> {
    let rows = plan.rows.len();
    let dims = plan.identity.dims;
    // About 512 KiB per chunk so a chunk fits HDF5's default 1 MiB chunk cache.
    let chunk_rows = (131_072 / dims.max(1)).clamp(1, rows.max(1));
    file.new_dataset::<f32>()
        .shape((rows, dims))
        .chunk((chunk_rows, dims))
        .alloc_time(Some(AllocTime::Early))
        .fill_time(if zero_features {
            FillTime::Alloc
        } else {
            FillTime::Never
        })
        .create("features")?;
    Ok(())
}

/// Every row's metadata (class names, paths, augmentation, label, image, copy, split parts),
/// and the per-row status, skip reason and fingerprint datasets, all "not done yet".
fn write_rows(file: &hdf5::File, plan: &Plan) -> hdf5::Result<()> {
    let rows = plan.rows.len();
    let strings = |values: Vec<VarLenUnicode>, name: &str| -> hdf5::Result<()> {
        file.new_dataset_builder()
            .with_data(&Array1::from(values))
            .create(name)?;
        Ok(())
    };
    strings(
        plan.class_names.iter().map(|s| text(s)).collect(),
        "class_names",
    )?;
    strings(plan.rows.iter().map(|r| text(&r.path)).collect(), "path")?;
    strings(
        plan.rows.iter().map(|r| text(&r.augment)).collect(),
        "augment",
    )?;
    file.new_dataset_builder()
        .with_data(&Array1::from_iter(plan.rows.iter().map(|r| r.label)))
        .create("label")?;
    file.new_dataset_builder()
        .with_data(&Array1::from_iter(plan.rows.iter().map(|r| r.image)))
        .create("image")?;
    file.new_dataset_builder()
        .with_data(&Array1::from_iter(plan.rows.iter().map(|r| r.copy)))
        .create("copy")?;
    let splits = plan.identity.splits;
    let parts = Array2::from_shape_fn((rows, splits), |(r, k)| plan.rows[r].parts[k]);
    file.new_dataset_builder()
        .with_data(&parts)
        .create("split")?;
    file.new_dataset_builder()
        .with_data(&Array1::<u8>::zeros(rows))
        .create("status")?;
    file.new_dataset_builder()
        .with_data(&Array1::from_elem(rows, Reason::new()))
        .create("skip_reason")?;
    fingerprint::create_dataset(file, rows)?;
    Ok(())
}

/// The identity and its parts as file attributes (the parts for h5py users).
fn write_identity_attrs(file: &hdf5::File, plan: &Plan) -> hdf5::Result<()> {
    let attr = |name: &str, value: String| -> hdf5::Result<()> {
        file.new_attr::<VarLenUnicode>()
            .create(name)?
            .write_scalar(&text(&value))
    };
    let identity = &plan.identity;
    attr("format_version", FORMAT_VERSION.to_string())?;
    attr(
        "identity",
        serde_json::to_string(identity).expect("identity serialises"),
    )?;
    attr("tlearn_version", env!("CARGO_PKG_VERSION").to_string())?;
    attr("model_sha256", identity.model_sha256.clone())?;
    attr("layers", identity.layers.join(","))?;
    attr(
        "pooling",
        serde_json::to_string(&identity.pooling).expect("serialises"),
    )?;
    attr(
        "preprocessing",
        serde_json::to_string(&identity.preprocessing).expect("serialises"),
    )?;
    attr("augment", identity.augment.clone())?;
    attr("seed", identity.seed.to_string())?;
    if let Some(backbone) = plan.backbone.as_ref().and_then(|b| b.to_str()) {
        attr("backbone", backbone.to_string())?;
    }
    // Which columns hold which layer:pooling, for h5py users (absent when not recorded).
    if let Some(columns) = identity.columns() {
        attr(
            "columns",
            serde_json::to_string(&columns).expect("serialises"),
        )?;
    }
    Ok(())
}
