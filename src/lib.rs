//! latentlab: train an AE and a VAE with a 2-D latent on MNIST-family images, on the CPU or a
//! GPU through Burn, and show what their latent spaces look like.
//!
//! The modules form floors; each imports only from the floors below it (`tests/it/layers.rs`
//! checks this on every test run):
//!
//! 1. ground: `atomic` (writes that never leave half a file), `stats` (percentiles, means),
//!    `device` (opening the CPU or GPU backend; the CPU's threads), `kernels` (the fused
//!    operations and their reference tensor code);
//! 2. `model`: the AE and VAE, their initialisation and losses;
//! 3. `data`: IDX files and the data sets, fetched where needed;
//! 4. `config`: the settings of a training run;
//! 5. `run`: a run directory, read and written (config, metrics, checkpoints, snapshots);
//! 6. `train`: runs epochs, saves each one, returns the trained session; knows nothing of
//!    figures;
//! 7. `plot`, then `explorer`, `export`, then `report`: read a finished run and draw, export or
//!    measure it;
//! 8. `cli` (the flags), `error` (one error type, exit statuses), `commands` (the only place
//!    that sequences train -> save -> measure -> draw; `commands::output` is the one output
//!    pipeline every command that writes figures goes through).

pub mod atomic;
pub mod device;
pub mod kernels;
pub mod stats;

pub mod model;

pub mod data;

pub mod config;

pub mod run;

pub mod train;

pub mod explorer;
pub mod export;
pub mod plot;
pub mod report;

pub mod cli;
pub mod commands;
pub mod error;
