//! How many threads a command uses: one budget for the whole process.

/// `--threads` resolved: every core this process may use when not given, and never more
/// (threads beyond the cores only wait for each other: 128 threads on 2 cores took 30 s for
/// one image), saying so when it caps.
pub fn threads(requested: Option<usize>) -> usize {
    let cores = tlearn::backbone::default_threads();
    match requested {
        Some(n) if n > cores => {
            eprintln!(
                "--threads {n}: this process may use {cores} cores, so tlearn uses {cores} threads"
            );
            cores
        }
        Some(n) => n,
        None => cores,
    }
}
