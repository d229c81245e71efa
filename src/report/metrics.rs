//! Numbers that describe a latent space, computed on the host from the codes.
//!
//! Each mirrors the PyTorch reference (scikit-learn's kNN vote, numpy's percentile and
//! histogram2d) so that the two implementations report comparable values.

use crate::stats::percentile_box;

/// Accuracy of a k-nearest-neighbour vote (Euclidean, uniform weights) of `query` codes
/// against `reference` codes; a tied vote goes to the smallest label, as in scikit-learn.
pub fn knn_accuracy(
    reference: &[f32],
    reference_labels: &[u8],
    query: &[f32],
    query_labels: &[u8],
    dim: usize,
    k: usize,
) -> f64 {
    if query_labels.is_empty() || reference_labels.is_empty() {
        return 0.0;
    }
    let correct = query
        .chunks_exact(dim)
        .zip(query_labels)
        .filter(|(q, label)| knn_vote(reference, reference_labels, q, dim, k) == **label)
        .count();
    correct as f64 / query_labels.len() as f64
}

fn knn_vote(reference: &[f32], labels: &[u8], q: &[f32], dim: usize, k: usize) -> u8 {
    // The k best (distance, index) pairs, kept sorted; k is tiny, so insertion is cheapest.
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, r) in reference.chunks_exact(dim).enumerate() {
        let d: f32 = r.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
        if best.len() < k || d < best[best.len() - 1].0 {
            let pos = best.partition_point(|&(bd, _)| bd <= d);
            best.insert(pos, (d, i));
            best.truncate(k);
        }
    }
    let mut votes = [0usize; 256];
    for &(_, i) in &best {
        votes[labels[i] as usize] += 1;
    }
    let top = votes.iter().copied().max().unwrap_or(0);
    votes.iter().position(|&v| v == top).unwrap_or(0) as u8
}

/// Share of empty cells of a `cells x cells` grid over the 1st-99th percentile box of 2-D
/// codes, counting only the codes inside the box (numpy histogram2d's binning).
pub fn empty_cell_share(codes: &[f32], cells: usize) -> f64 {
    let (lo, hi) = percentile_box(codes, 1.0, 99.0);
    let mut hist = vec![0usize; cells * cells];
    let bin = |v: f64, d: usize| -> usize {
        let width = hi[d] - lo[d];
        if width <= 0.0 {
            return 0;
        }
        (((v - lo[d]) / width * cells as f64).floor() as usize).min(cells - 1)
    };
    for p in codes.chunks_exact(2) {
        let (x, y) = (p[0] as f64, p[1] as f64);
        if x >= lo[0] && x <= hi[0] && y >= lo[1] && y <= hi[1] {
            hist[bin(x, 0) * cells + bin(y, 1)] += 1;
        }
    }
    hist.iter().filter(|&&c| c == 0).count() as f64 / hist.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knn_on_a_hand_made_set() {
        // Class 0 around (0,0), class 1 around (10,0).
        let reference = [
            0.0, 0.0, 0.5, 0.0, 0.0, 0.5, 10.0, 0.0, 10.5, 0.0, 10.0, 0.5,
        ];
        let labels = [0, 0, 0, 1, 1, 1];
        // (1,0) is near class 0 and (9,0) near class 1; (4.9,0) with k=3 still sees three class-0 points.
        let query = [1.0, 0.0, 9.0, 0.0, 4.9, 0.0];
        let acc = knn_accuracy(&reference, &labels, &query, &[0, 1, 1], 2, 3);
        assert!((acc - 2.0 / 3.0).abs() < 1e-12, "{acc}");
    }

    #[test]
    fn knn_breaks_ties_towards_the_smallest_label() {
        let reference = [-1.0, 0.0, 1.0, 0.0];
        let acc = knn_accuracy(&reference, &[7, 3], &[0.0, 0.0], &[3], 2, 2);
        assert_eq!(acc, 1.0);
    }

    #[test]
    fn empty_cells_of_hand_made_codes() {
        // 101 points evenly on the diagonal of the unit square: a 4x4 grid's 4 diagonal
        // cells are filled, the other 12 are empty.
        let codes: Vec<f32> = (0..=100).flat_map(|i| [i as f32 / 100.0; 2]).collect();
        assert!((empty_cell_share(&codes, 4) - 12.0 / 16.0).abs() < 1e-12);
        // A full uniform lattice leaves none empty.
        let lattice: Vec<f32> = (0..100)
            .flat_map(|i| [(i % 10) as f32 + 0.5, (i / 10) as f32 + 0.5])
            .collect();
        assert_eq!(empty_cell_share(&lattice, 5), 0.0);
    }
}

/// How abruptly a decoded grid changes from cell to cell: the mean absolute pixel difference
/// between horizontally and vertically adjacent images (mean, and the largest single jump).
/// A smooth morph between digits has small steps; a tear in the latent space shows as a jump.
pub fn grid_roughness(images: &[Vec<f32>], n: usize) -> (f64, f64) {
    let diff = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() as f64)
            .sum::<f64>()
            / a.len().max(1) as f64
    };
    let mut steps = Vec::new();
    for r in 0..n {
        for c in 0..n {
            let here = &images[r * n + c];
            if c + 1 < n {
                steps.push(diff(here, &images[r * n + c + 1]));
            }
            if r + 1 < n {
                steps.push(diff(here, &images[(r + 1) * n + c]));
            }
        }
    }
    let mean = steps.iter().sum::<f64>() / steps.len().max(1) as f64;
    let max = steps.iter().copied().fold(0.0, f64::max);
    (mean, max)
}

#[cfg(test)]
mod roughness_tests {
    use super::grid_roughness;

    #[test]
    fn roughness_of_a_hand_made_grid() {
        // A 2x2 grid of one-pixel images: 0, 0.5 / 0, 1. Steps: |0-.5|, |0-0|, |.5-1|, |0-1|.
        let images = vec![vec![0.0], vec![0.5], vec![0.0], vec![1.0]];
        let (mean, max) = grid_roughness(&images, 2);
        assert!((mean - 0.5).abs() < 1e-12 && (max - 1.0).abs() < 1e-12);
    }
}
