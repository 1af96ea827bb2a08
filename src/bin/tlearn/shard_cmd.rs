//! `tlearn features --shard` and `tlearn cache merge`: extraction cut into shards, merged back.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use tlearn::cache::merge::{self, ShardId};
use tlearn::extract::{ExtractConfig, Summary};
use tlearn::shard::{self, ShardRequest};

/// Arguments of `tlearn cache`: a file to inspect, or a sub-command.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CacheArgs {
    /// The cache file to inspect.
    #[arg(required = true)]
    pub file: Option<PathBuf>,
    /// What to do instead of inspecting a file.
    #[command(subcommand)]
    pub command: Option<CacheCommand>,
}

/// `tlearn cache ...`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Merge the shards 0..N-1 of one `tlearn features --shard` plan into one cache, equal to a
    /// single-machine run's; checks everything first and writes nothing on any error.
    Merge {
        /// The merged cache to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Every shard file (any order), e.g. OUT/features.shard-*.h5.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
    /// Write a cache's features as OUT/features.npy (float32, rows x dims) and its rows as
    /// OUT/rows.csv (path, label, class, status, copy, split codes), row for row.
    Export {
        /// The folder to write into (neither file may exist there yet).
        #[arg(long)]
        npy: PathBuf,
        /// Export an incomplete cache's done rows only (default: an incomplete cache is refused).
        #[arg(long)]
        partial: bool,
        /// The cache file.
        cache: PathBuf,
    },
}

/// Runs a `tlearn cache` sub-command.
pub fn cache(command: CacheCommand) -> Result<ExitCode> {
    match command {
        CacheCommand::Merge { out, shards } => {
            let summary = merge::merge(&shards, &out)?;
            eprintln!(
                "{}: merged {} shards, {} rows of {} features ({} skipped)",
                out.display(),
                summary.shards,
                summary.rows,
                summary.dims,
                summary.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Export {
            npy,
            partial,
            cache,
        } => {
            let summary = tlearn::cache::export::export_npy(&cache, &npy, partial)?;
            let left_out = match summary.left_out {
                0 => String::new(),
                n => format!(" ({n} rows not done left out: --partial)"),
            };
            eprintln!(
                "{}: {} rows of {} features{left_out}; rows in {}",
                summary.features.display(),
                summary.rows,
                summary.dims,
                summary.rows_csv.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves `--shard` (from the environment for `auto`), points `cfg.out` at the shard's file
/// and runs (or resumes) that shard.
pub fn features(
    request: &ShardRequest,
    cfg: &mut ExtractConfig,
    stop: &tlearn::progress::Stop,
) -> Result<Summary> {
    let spec = request.resolve(|name| std::env::var(name).ok())?;
    cfg.cache = shard::shard_path(&cfg.cache, spec);
    eprintln!(
        "shard {} of {} (0-based) -> {}",
        spec.index,
        spec.count,
        cfg.cache.display()
    );
    Ok(shard::run(cfg, spec, stop)?)
}

/// One line saying which part of which plan a shard cache holds.
pub fn describe(shard: &ShardId, rows: usize) -> String {
    format!(
        "shard: {} of {} (0-based), rows {}..{} of {} (plan sha256 {}); merge with `tlearn cache merge`",
        shard.index,
        shard.count,
        shard.first_row,
        shard.first_row + rows,
        shard.plan_rows,
        shard.plan_sha256
    )
}
