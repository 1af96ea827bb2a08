//! The integration tests as one binary (as ripgrep's): every file of this folder is a module,
//! so the library and the fixtures of `common` are compiled and linked once, not once per file.
//!
//! `cargo test --release --locked --test main` runs them all; a filter picks a module or a test
//! (`--test main -- auto::`, `--test main -- predict::export::`). The tests of all modules share
//! one process: a test that spawns a process, or that holds files a child must not inherit while
//! it runs, takes [`common::fixtures::serial`], the one lock; children are spawned through
//! [`common::fixtures::command`], which lets them inherit no file descriptor of another test.
//! `predict::export::bench_export` is an ignored test run by `make bench-export`; the merge
//! benchmark is `benches/merge.rs` (`make bench-merge`).

mod common;

mod auto;
mod browser;
mod classify;
mod cli;
mod commands;
mod extract;
mod finetune;
mod hostile;
mod inputs;
mod onnx;
mod predict;
mod quantize;
mod report;
mod safety;
mod shard;
mod slurm;
mod unlabeled;
mod vgg16;
