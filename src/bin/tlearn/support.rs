//! What several commands share: stopping on Ctrl-C, and a benchmark's JSON on stdout and in
//! a `--json` file. A leaf of the binary: the commands use it, it uses none of them.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tlearn::options::Opt;
use tlearn::progress::Stop;

/// A stop token the first Ctrl-C raises (after saying `message`); a second Ctrl-C exits at once,
/// which is safe because every long job here can be abandoned at any point and resumed.
pub fn stop_on_ctrl_c(message: &'static str) -> Result<Arc<Stop>> {
    let stop = Arc::new(Stop::new());
    let handler_stop = stop.clone();
    ctrlc::set_handler(move || {
        if handler_stop.request() {
            std::process::exit(130);
        }
        eprintln!("\n{message}");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// What a benchmark's or a timing's JSON file is, in the record of tlearn's outputs.
const JSON_KIND: &str = "timing JSON";

/// The file `--json` names.
pub fn json_target(path: &std::path::Path) -> tlearn::output::Target {
    tlearn::output::Target::new(path)
        .kind(JSON_KIND)
        .option(Opt::Json)
}

/// Refuses, before the work, a `--json` file tlearn may not write.
pub fn check_json(path: Option<&std::path::Path>) -> Result<()> {
    path.map_or(Ok(()), |p| Ok(json_target(p).check()?))
}

/// Prints a benchmark's JSON on stdout and, when asked, writes it to a file too.
pub fn print_json(
    report: &impl serde::Serialize,
    target: Option<tlearn::output::Target>,
) -> Result<ExitCode> {
    let json = serde_json::to_string_pretty(report)?;
    println!("{json}");
    if let Some(target) = target {
        target.write((json + "\n").as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
