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
}

/// A progress bar for an extraction when `show`, else none.
pub fn bar(show: bool) -> Option<Arc<dyn RowProgress>> {
    show.then(|| Arc::new(Bar(ProgressBar::new(0))) as Arc<dyn RowProgress>)
}
