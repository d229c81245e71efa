//! The models: an MLP autoencoder and its variational twin (their losses are the fused
//! kernels of `crate::kernels`).

pub mod autoencoder;
pub mod init;
pub mod state_dict;
pub mod usage;

pub use autoencoder::{
    Arch, AutoEncoder, ConvLayer, DenseLayer, Encoded, Losses, ModelConfig, ModelKind,
};
pub use usage::{ACTIVE_VARIANCE, LatentUsage, latent_usage};
