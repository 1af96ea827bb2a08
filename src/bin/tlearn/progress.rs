//! The progress bar on stderr: drawn here, from what the library reports.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tlearn::extract::{RowEvent, RowObserver};
use tlearn::progress::Observer;

/// A bar of rows, rate, elapsed time and ETA.
struct Bar(ProgressBar);

impl Observer<RowEvent> for Bar {
    fn observe(&mut self, event: RowEvent) {
        match event {
            RowEvent::Planned { rows, dims, bytes } => self
                .0
                .suspend(|| eprintln!("{}", planned_line(rows, dims, bytes))),
            RowEvent::Started { rows } => {
                self.0.set_length(rows as u64);
                self.0.set_style(
                    ProgressStyle::with_template(
                        "{bar:40.cyan/blue} {pos}/{len} rows  {per_sec}  elapsed {elapsed}  ETA {eta}",
                    )
                    .expect("valid template"),
                );
            }
            RowEvent::Written { rows } => self.0.inc(rows as u64),
            RowEvent::Finished => self.0.finish_and_clear(),
        }
    }
}

/// What a run will compute and the room its cache takes, said before the work.
fn planned_line(rows: usize, dims: usize, bytes: u64) -> String {
    format!(
        "computing {rows} rows of {dims} features: about {:.1} MB in the cache ({:.2} MB per row)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / rows.max(1) as f64
    )
}

/// Seconds between two progress lines when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// Progress as plain lines, for a stderr nobody watches live (a log file, a Slurm job): one
/// at the start, then at most every [`LINE_EVERY`] as rows finish, and one at the end.
struct Lines {
    rows: usize,
    done: usize,
    start: Instant,
    last: Instant,
}

impl Lines {
    fn print(&self) {
        let seconds = self.start.elapsed().as_secs_f64();
        let rate = self.done as f64 / seconds.max(1e-9);
        let eta = if rate > 0.0 {
            format!("{:.0} s", self.rows.saturating_sub(self.done) as f64 / rate)
        } else {
            "unknown".into()
        };
        eprintln!(
            "{}/{} rows  {rate:.1} rows/s  elapsed {seconds:.0} s  ETA {eta}",
            self.done, self.rows
        );
    }
}

impl Observer<RowEvent> for Lines {
    fn observe(&mut self, event: RowEvent) {
        match event {
            RowEvent::Planned { rows, dims, bytes } => {
                eprintln!("{}", planned_line(rows, dims, bytes))
            }
            RowEvent::Started { rows } => {
                (self.rows, self.done) = (rows, 0);
                (self.start, self.last) = (Instant::now(), Instant::now());
                self.print();
            }
            RowEvent::Written { rows } => {
                self.done += rows;
                if self.last.elapsed() >= LINE_EVERY {
                    self.last = Instant::now();
                    self.print();
                }
            }
            RowEvent::Finished => self.print(),
        }
    }
}

/// A progress bar for an extraction when `show` (plain lines at least every 30 s when stderr
/// is not a terminal), else none.
pub fn bar(show: bool) -> Option<RowObserver> {
    if !show {
        return None;
    }
    if std::io::stderr().is_terminal() {
        return Some(RowObserver::new(Bar(ProgressBar::new(0))));
    }
    let now = Instant::now();
    Some(RowObserver::new(Lines {
        rows: 0,
        done: 0,
        start: now,
        last: now,
    }))
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
