//! What a report's numbers cannot be trusted for, said in the report and on stderr: too few
//! test images, classes absent from a test split, a top-5 accuracy that cannot miss, and a
//! gallery without thumbnails (with the data folder that would give them, when one is found).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::format::per_split;
use super::run::{RunReport, GALLERY_MAX};
use crate::cache::{FeatureCache, Fingerprint};
use crate::dataset::stored_to_path;
use crate::options::Opt;
use crate::preprocess::DecodeLimits;

/// Below this many test images per split, an accuracy is too rough to compare runs by.
pub const MIN_TEST_IMAGES: usize = 30;

/// Every warning about `r`.
pub fn of(r: &RunReport) -> Vec<String> {
    let mut warnings = Vec::new();
    warnings.extend(few_test_images(r));
    warnings.extend(empty_classes(r));
    warnings.extend(trivial_top5(r));
    warnings.extend(unconverged(r));
    warnings.extend(missing_thumbnails(r));
    warnings
}

fn few_test_images(r: &RunReport) -> Option<String> {
    let counts = r.test_images();
    let least = counts.iter().copied().min()?;
    (least < MIN_TEST_IMAGES).then(|| {
        format!(
            "only {} test images per split (fewer than {MIN_TEST_IMAGES}): one image moves the accuracy by {:.1} points, so these accuracies are rough estimates (n is shown beside each)",
            per_split(&counts),
            100.0 / least.max(1) as f64
        )
    })
}

fn empty_classes(r: &RunReport) -> Vec<String> {
    r.splits
        .iter()
        .filter_map(|s| {
            let empty: Vec<&str> = s
                .metrics
                .per_class
                .iter()
                .filter(|c| c.support == 0)
                .map(|c| c.name.as_str())
                .collect();
            (!empty.is_empty()).then(|| {
                format!(
                    "split {}: no test images of {}: their recall and F1 count as 0 in this split's macro averages",
                    s.fit.split,
                    empty.join(", ")
                )
            })
        })
        .collect()
}

/// Fits whose solver stopped at its iteration limit: their validation scores (and so the
/// choice of C) may be below what the model can reach.
fn unconverged(r: &RunReport) -> Option<String> {
    let stopped: Vec<String> = r
        .splits
        .iter()
        .flat_map(|s| {
            let split = s.fit.split;
            s.fit
                .grid
                .iter()
                .filter(|g| !g.converged)
                .map(move |g| format!("C = {:e} in split {split}", g.c))
        })
        .collect();
    (!stopped.is_empty()).then(|| {
        format!(
            "the solver stopped at its iteration limit before converging for {}: those fits may score below what the model can reach; run again with a larger {}",
            stopped.join(", "),
            Opt::MaxIterations
        )
    })
}

fn trivial_top5(r: &RunReport) -> Option<String> {
    let k = r.class_names.len();
    (k <= 5).then(|| {
        format!("top-5 accuracy is 100% by construction with {k} classes (5 or fewer): it says nothing here")
    })
}

/// A warning when gallery images cannot be found under the data root.
fn missing_thumbnails(r: &RunReport) -> Option<String> {
    let shown: Vec<PathBuf> = r
        .wrong_images()
        .iter()
        .take(GALLERY_MAX)
        .map(|w| stored_to_path(&w.worst.path))
        .collect();
    let first = shown.first()?;
    let root = r.data_root.as_ref().map(PathBuf::from);
    let found = root.as_ref().map_or(0, |root| {
        shown.iter().filter(|p| root.join(p).is_file()).count()
    });
    if found == shown.len() {
        return None;
    }
    let recorded = FeatureCache::open_unlocked(Path::new(&r.cache))
        .and_then(|c| c.image_fingerprints())
        .ok();
    let same = |dir: &Path| holds_the_images(dir, &shown, recorded.as_ref());
    let fix = match find_data_root(root.as_deref(), first, &same) {
        Some(dir) => format!("`{} {}` would find them", Opt::Data, dir.display()),
        None => format!(
            "pass `{0}` with the folder that `tlearn features {0}` read",
            Opt::Data
        ),
    };
    Some(match &root {
        None => format!(
            "no thumbnails in the gallery: the data root is not known (image paths such as `{}` are relative to it); {fix}",
            first.display()
        ),
        Some(root) if found == 0 => format!(
            "no thumbnails in the gallery: `{}` does not hold the images (e.g. `{}`); {fix}",
            root.display(),
            first.display()
        ),
        Some(root) => format!(
            "{} of {} gallery images are missing under `{}`",
            shown.len() - found,
            shown.len(),
            root.display()
        ),
    })
}

/// Whether `dir` holds every one of `images` (paths relative to the data root) as the run saw
/// them: each file's content fingerprint is the one the run's cache recorded, so another data
/// set that only shares relative paths (`class_0/img_00.png`) is not taken for the run's. When
/// the cache cannot be read, holding every file is required.
fn holds_the_images(
    dir: &Path,
    images: &[PathBuf],
    recorded: Option<&HashMap<String, Fingerprint>>,
) -> bool {
    let limits = DecodeLimits::default();
    images.iter().all(|image| {
        let path = dir.join(image);
        let stored = crate::dataset::path_to_stored(image);
        match recorded.and_then(|r| r.get(&stored)) {
            Some(expected) => Fingerprint::of_file(&path, &limits) == *expected,
            None => path.is_file(),
        }
    })
}

/// A folder holding `image` (a path relative to the data root) that passes `same` (holds the
/// run's images): near the given root (its parents and sub-folders, for a data root one
/// level off), else in or below the working directory (two levels). A bounded look, not a search of
/// the disk.
fn find_data_root(
    given: Option<&Path>,
    image: &Path,
    same: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let children = |dir: &Path| -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .take(200)
            .collect();
        dirs.sort();
        dirs
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(given) = given {
        candidates.extend(given.ancestors().skip(1).take(3).map(Path::to_path_buf));
        candidates.extend(children(given));
    }
    let here = Path::new(".");
    for child in children(here) {
        candidates.extend(children(&child));
        candidates.push(child);
    }
    candidates
        .into_iter()
        .filter(|c| !c.as_os_str().is_empty())
        .find(|c| c.join(image).is_file() && same(c))
        .map(|c| c.strip_prefix("./").map_or(c.clone(), Path::to_path_buf))
}
