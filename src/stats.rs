//! Summary statistics of latent codes that both the figures and the measurements need:
//! per-dimension mean and spread, percentiles and the percentile box a plot spans.

/// Per-dimension mean and (population) standard deviation of `n * dim` codes.
pub fn mean_std(codes: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (codes.len() / dim).max(1) as f64;
    let mean: Vec<f64> = (0..dim)
        .map(|d| {
            codes
                .iter()
                .skip(d)
                .step_by(dim)
                .map(|&v| v as f64)
                .sum::<f64>()
                / n
        })
        .collect();
    let std = (0..dim)
        .map(|d| {
            let var = codes
                .iter()
                .skip(d)
                .step_by(dim)
                .map(|&v| (v as f64 - mean[d]).powi(2))
                .sum::<f64>()
                / n;
            var.sqrt()
        })
        .collect();
    (mean, std)
}

/// The `q`-th percentile (0-100) with linear interpolation, numpy's default.
pub fn percentile(values: &[f32], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The 1st-99th percentile box of 2-D codes: `([x_lo, y_lo], [x_hi, y_hi])`.
pub fn percentile_box(codes: &[f32], lo_q: f64, hi_q: f64) -> ([f64; 2], [f64; 2]) {
    let column = |d: usize| {
        codes
            .iter()
            .skip(d)
            .step_by(2)
            .copied()
            .collect::<Vec<f32>>()
    };
    let (x, y) = (column(0), column(1));
    (
        [percentile(&x, lo_q), percentile(&y, lo_q)],
        [percentile(&x, hi_q), percentile(&y, hi_q)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_per_dimension() {
        let (m, s) = mean_std(&[1.0, 10.0, 3.0, 10.0], 2);
        assert_eq!(m, vec![2.0, 10.0]);
        assert_eq!(s, vec![1.0, 0.0]);
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v: Vec<f32> = (1..=5).map(|i| i as f32).collect();
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert!((percentile(&v, 1.0) - 1.04).abs() < 1e-12);
        assert!((percentile(&v, 99.0) - 4.96).abs() < 1e-12);
    }
}
