//! The models: an MLP autoencoder and its variational twin, and their losses.

pub mod autoencoder;
pub mod init;
pub mod loss;

pub use autoencoder::{AutoEncoder, DenseLayer, Encoded, Losses, ModelConfig, ModelKind};
