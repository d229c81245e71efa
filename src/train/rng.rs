//! The random streams of a run, each derived from the seed and the epoch alone.
//!
//! Nothing carries random state from one epoch to the next, so a run resumed after epoch N
//! draws exactly what an uninterrupted run draws in epoch N+1.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

#[derive(Debug, Clone, Copy)]
#[repr(u64)]
enum Purpose {
    Shuffle = 1,
    Noise = 2,
    EvalNoise = 3,
    Binarize = 4,
}

fn stream(seed: u64, epoch: usize, purpose: Purpose) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((epoch as u64) << 8 | purpose as u64);
    rng
}

/// The order in which epoch `epoch` visits the `n` training images.
pub fn epoch_permutation(seed: u64, epoch: usize, n: usize) -> Vec<i64> {
    let mut perm: Vec<i64> = (0..n as i64).collect();
    perm.shuffle(&mut stream(seed, epoch, Purpose::Shuffle));
    perm
}

/// The VAE's reparameterisation noise for every step of an epoch, `n * latent` values.
pub fn epoch_noise(seed: u64, epoch: usize, n: usize, latent: usize) -> Vec<f32> {
    normals(&mut stream(seed, epoch, Purpose::Noise), n * latent)
}

/// Fixed noise for evaluating the VAE, identical after every epoch so epochs compare fairly.
pub fn eval_noise(seed: u64, n: usize) -> Vec<f32> {
    normals(&mut stream(seed, 0, Purpose::EvalNoise), n)
}

/// The uniform draws that binarise an epoch's batches afresh (`--binarize dynamic`), taken
/// in order, batch after batch.
pub fn binarize_stream(seed: u64, epoch: usize) -> ChaCha8Rng {
    stream(seed, epoch, Purpose::Binarize)
}

/// `n` uniform values in [0, 1) from `rng`.
pub fn uniforms(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    use rand::Rng;
    (0..n).map(|_| rng.random::<f32>()).collect()
}

fn normals(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_on_seed_and_epoch_only() {
        assert_eq!(epoch_permutation(0, 3, 100), epoch_permutation(0, 3, 100));
        assert_ne!(epoch_permutation(0, 3, 100), epoch_permutation(0, 4, 100));
        assert_ne!(epoch_permutation(0, 3, 100), epoch_permutation(1, 3, 100));
        let mut p = epoch_permutation(5, 1, 1000);
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
        let noise = epoch_noise(0, 1, 5000, 2);
        let mean = noise.iter().sum::<f32>() / noise.len() as f32;
        let var = noise.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / noise.len() as f32;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
    }
}
