//! Image size as a candidate: the sides auto compares ([`AutoConfig::sizes`]), one cache per
//! side, each extracted like the default one (resumable, written where tlearn may write) and
//! checked to hold the same images and splits, so every size is scored on the same validation
//! images.

use std::path::PathBuf;

use super::{AutoConfig, AutoError};
use crate::backbone::{Descriptor, Pooling, Repr};
use crate::classify::data::CacheData;
use crate::extract::{ExtractConfig, MAX_SIZE, MIN_SIZE};
use crate::options::Opt;

/// The sides auto compares. `base` is the extraction's own (`--size`, else the backbone's):
/// its cache is `features.h5`, as without sizes (a run from before resumes), and the
/// fine-tuning stages read it; every other side has its own `features-<side>.h5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    /// The extraction's own side, in pixels.
    pub base: u32,
    /// Every side compared: `base` first, then the others, smallest first.
    pub all: Vec<u32>,
}

impl Sizes {
    /// The sides of `cfg`, checked before any work: each 32 to 2048 pixels, none twice, the
    /// base among them. No sides given: the base alone.
    pub fn of(cfg: &AutoConfig) -> Result<Sizes, AutoError> {
        let listed = || {
            let text: Vec<String> = cfg.sizes.iter().map(ToString::to_string).collect();
            text.join(",")
        };
        let bad = |why: String| {
            Err(AutoError::InvalidParams(format!(
                "{} {}: {why}",
                Opt::Sizes,
                listed()
            )))
        };
        for (i, &side) in cfg.sizes.iter().enumerate() {
            if !(MIN_SIZE..=MAX_SIZE).contains(&side) {
                return bad(format!(
                    "{side}: every side is {MIN_SIZE} to {MAX_SIZE} pixels"
                ));
            }
            if cfg.sizes[..i].contains(&side) {
                return bad(format!("{side} is given twice"));
            }
        }
        let base = match cfg.extract.size {
            Some(side) => side,
            None => {
                Descriptor::for_model(&cfg.extract.backbone)?
                    .preprocessing
                    .size
            }
        };
        if !cfg.sizes.is_empty() && !cfg.sizes.contains(&base) {
            return bad(format!(
                "the list must include {base}, the extraction's own size (the backbone's, or {size}): its cache is features.h5 and the fine-tuning stages read it (to use another size alone, give {size})",
                size = Opt::Size
            ));
        }
        let mut others: Vec<u32> = cfg.sizes.iter().copied().filter(|&s| s != base).collect();
        others.sort_unstable();
        Ok(Sizes {
            base,
            all: std::iter::once(base).chain(others).collect(),
        })
    }

    /// Whether more than one side is compared.
    pub fn several(&self) -> bool {
        self.all.len() > 1
    }

    /// The cache of `side`.
    pub fn cache(&self, cfg: &AutoConfig, side: u32) -> PathBuf {
        if side == self.base {
            cfg.cache()
        } else {
            cfg.out.join("cache").join(format!("features-{side}.h5"))
        }
    }

    /// The extraction of `side` into its cache: `reprs` at the base; at another side the
    /// pooled ones only, since flattened columns grow with the square of the side (VGG16's
    /// block5 at 448 px: 100 352 columns, 1.6 GB for the flowers' 4080 rows).
    pub fn extraction(&self, cfg: &AutoConfig, side: u32, reprs: &[Repr]) -> ExtractConfig {
        let at_base = side == self.base;
        ExtractConfig {
            reprs: reprs
                .iter()
                .filter(|r| at_base || r.pooling != Pooling::Flatten)
                .cloned()
                .collect(),
            size: if at_base {
                cfg.extract.size
            } else {
                Some(side)
            },
            cache: self.cache(cfg, side),
            ..cfg.extract.clone()
        }
    }

    /// The feature sets scored at `side`: all of `sets` at the base, the pooled ones elsewhere
    /// (what [`Sizes::extraction`] stores).
    pub fn sets(&self, side: u32, sets: &[Vec<Repr>]) -> Vec<Vec<Repr>> {
        let pooled = |set: &&Vec<Repr>| set.iter().all(|r| r.pooling != Pooling::Flatten);
        sets.iter()
            .filter(|set| side == self.base || pooled(set))
            .cloned()
            .collect()
    }

    /// About how many times the base's backbone time a row of `side` takes: the convolutions'
    /// work grows with the pixels.
    pub fn cost(&self, side: u32) -> f64 {
        (f64::from(side) / f64::from(self.base)).powi(2)
    }

    /// What the extractions will do, said before them: `rows` rows at each side, and the time
    /// each takes against the base's.
    pub fn plan(&self, rows: usize) -> String {
        let each: Vec<String> = self
            .all
            .iter()
            .map(|&side| {
                if side == self.base {
                    format!("{side} px ({rows} rows, the extraction's own size)")
                } else {
                    format!(
                        "{side} px ({rows} rows, about {:.1}x the backbone time of {} px)",
                        self.cost(side),
                        self.base
                    )
                }
            })
            .collect();
        format!(
            "comparing {} image sizes, one cache each: {}",
            self.all.len(),
            each.join(", ")
        )
    }
}

/// Refuses caches whose images, labels or splits differ from the first's: every size must be
/// scored on the same validation images (a cache made from other data, or before an image
/// changed, is removed by hand and extracted again).
pub fn same_rows(caches: &[CacheData]) -> Result<(), AutoError> {
    let Some(first) = caches.first() else {
        return Ok(());
    };
    for other in &caches[1..] {
        let same = other.paths == first.paths
            && other.labels == first.labels
            && other.parts == first.parts
            && other.usable == first.usable;
        if !same {
            return Err(AutoError::InvalidParams(format!(
                "{} and {} hold different images or splits, so their sizes would be scored on different validation images: remove {} to extract it again",
                first.path.display(),
                other.path.display(),
                other.path.display()
            )));
        }
    }
    Ok(())
}
