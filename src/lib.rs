//! latentlab: train an AE and a VAE with a 2-D latent on MNIST-family images, on the CPU or a
//! GPU through Burn, and show what their latent spaces look like.
//!
//! The flow is cli -> config -> train -> run/report: `cli` parses, `config` holds the
//! settings, `train` runs epochs on a `device`, `run` writes the run directory and `report`
//! turns a finished run into numbers and figures.

pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod explorer;
pub mod kernels;
pub mod model;
pub mod plot;
pub mod report;
pub mod run;
pub mod train;
