//! The progress bar on stderr: drawn here, from what the library reports.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use tlearn::extract::RowProgress;

/// A bar of rows, rate, elapsed time and ETA.
#[derive(Debug)]
struct Bar(ProgressBar);

impl RowProgress for Bar {
    fn start(&self, rows: usize) {
        self.0.set_length(rows as u64);
        self.0.set_style(
            ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} rows  {per_sec}  elapsed {elapsed}  ETA {eta}",
            )
            .expect("valid template"),
        );
    }

    fn advance(&self, rows: usize) {
        self.0.inc(rows as u64);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }

    fn planned(&self, rows: usize, dims: usize, bytes: u64) {
        self.0.suspend(|| {
            eprintln!(
                "computing {rows} rows of {dims} features: about {:.1} MB in the cache ({:.2} MB per row)",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / rows.max(1) as f64
            )
        });
    }
}

/// A progress bar for an extraction when `show`, else none.
pub fn bar(show: bool) -> Option<Arc<dyn RowProgress>> {
    show.then(|| Arc::new(Bar(ProgressBar::new(0))) as Arc<dyn RowProgress>)
}

/// The bar of one fine-tuning epoch: `steps` training steps, the message naming split and
/// epoch.
pub fn steps_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {bar:40.cyan/blue} {pos}/{len} steps  elapsed {elapsed}  ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// The bar of `tlearn predict`: images done, rate and ETA when the count is known, else a
/// counter; none for short lists or when not wanted.
pub struct ImageBar(Option<ProgressBar>);

impl ImageBar {
    /// A bar for `total` images (`None`: not known before they are read), shown when `show`
    /// and the list is longer than `above` images or of unknown length.
    pub fn new(total: Option<usize>, above: usize, show: bool) -> ImageBar {
        let template = match total {
            Some(n) if n <= above => return ImageBar(None),
            Some(_) => {
                "{bar:40.cyan/blue} {pos}/{len} images  {per_sec}  elapsed {elapsed}  ETA {eta}"
            }
            None => "{spinner} {pos} images  {per_sec}  elapsed {elapsed}",
        };
        ImageBar(show.then(|| {
            let bar = ProgressBar::new(total.unwrap_or(0) as u64);
            bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
            bar
        }))
    }

    /// One more image done.
    pub fn inc(&self) {
        self.0.iter().for_each(|b| b.inc(1));
    }

    /// Runs `f` (which prints) with the bar cleared, so its lines do not mix with the bar.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.iter().for_each(|b| b.finish_and_clear());
    }
}
