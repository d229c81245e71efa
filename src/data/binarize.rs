//! Binarised MNIST, the protocol of the VAE literature: each pixel becomes black or white,
//! white with probability its grey level / 255, so that the Bernoulli decoder models data
//! that really are binary and its likelihood compares with published ones.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Split;

/// `--binarize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Binarize {
    /// Grey levels as they are (the exercise's default).
    #[default]
    None,
    /// The training images drawn black and white once, with a fixed seed (the same set for
    /// every run).
    Static,
    /// A fresh black-and-white draw of a training image every time a step uses it.
    Dynamic,
}

impl Binarize {
    pub fn as_str(self) -> &'static str {
        match self {
            Binarize::None => "none",
            Binarize::Static => "static",
            Binarize::Dynamic => "dynamic",
        }
    }
}

/// The fixed seeds of the one-off draws: the test set (whenever binarising) and the static
/// training set. Fixed, not the run's seed, so that runs with different seeds are measured on
/// the same binary test images.
pub const TEST_SEED: u64 = 0x7e57;
pub const STATIC_TRAIN_SEED: u64 = 0x7a1;

/// Draws every pixel of `split` black (0) or white (255), white with probability grey / 255.
pub fn binarize_split(split: &mut Split, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in split.images.iter_mut() {
        let u: f32 = rng.random();
        *p = if u < *p as f32 / 255.0 { 255 } else { 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Black stays black, white stays white, and a grey level g turns white in a share g / 255
    /// of the pixels; the same seed draws the same image.
    #[test]
    fn grey_levels_become_white_with_their_probability() {
        let n = 20_000;
        let mut split = Split {
            images: [0u8, 255, 64, 191].repeat(n),
            labels: vec![0; n],
        };
        let original = split.clone();
        binarize_split(&mut split, 1);
        for (k, want) in [(0, 0.0), (1, 1.0), (2, 64.0 / 255.0), (3, 191.0 / 255.0)] {
            let white = split
                .images
                .iter()
                .skip(k)
                .step_by(4)
                .filter(|&&p| p == 255)
                .count();
            let share = white as f64 / n as f64;
            assert!((share - want).abs() < 0.01, "grey {k}: {share} vs {want}");
        }
        assert!(split.images.iter().all(|&p| p == 0 || p == 255));
        let mut again = original;
        binarize_split(&mut again, 1);
        assert_eq!(again.images, split.images);
    }
}
