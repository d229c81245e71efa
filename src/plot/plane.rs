//! Which plane of the latent space a figure shows. With `--latent 2` it is the whole space;
//! with more dimensions, the two that vary most over the test codes (for a VAE, the most
//! active units), every other dimension held at a fixed value (its mean over the codes, or
//! the prior's 0).

use crate::model::ModelKind;
use crate::stats::mean_std;

#[derive(Debug, Clone, PartialEq)]
pub struct LatentPlane {
    /// The two dimensions shown, across then up, 0-based.
    pub dims: [usize; 2],
    /// The value of every dimension at the plane's points; `dims` are overwritten.
    pub base: Vec<f64>,
}

impl LatentPlane {
    /// The plane of the two dimensions whose `n * latent` test codes vary most (the first the
    /// larger), the others held at their mean. Needs `latent >= 2`.
    pub fn most_active(codes: &[f32], latent: usize) -> LatentPlane {
        let (mean, std) = mean_std(codes, latent);
        let mut order: Vec<usize> = (0..latent).collect();
        // Largest spread first; a tie keeps the lower index first (a stable sort).
        order.sort_by(|&a, &b| std[b].total_cmp(&std[a]));
        let mut dims = [order[0], order.get(1).copied().unwrap_or(0)];
        if latent == 2 {
            dims = [0, 1]; // the whole plane, in its own order
        }
        LatentPlane { dims, base: mean }
    }

    /// The same plane, every other dimension held at 0 (the prior's mean) instead.
    pub fn at_zero(&self) -> LatentPlane {
        LatentPlane {
            dims: self.dims,
            base: vec![0.0; self.base.len()],
        }
    }

    pub fn latent(&self) -> usize {
        self.base.len()
    }

    /// The `n * 2` coordinates of `n * latent` codes in this plane.
    pub fn project(&self, codes: &[f32]) -> Vec<f32> {
        codes
            .chunks_exact(self.latent().max(1))
            .flat_map(|c| [c[self.dims[0]], c[self.dims[1]]])
            .collect()
    }

    /// The full latent vectors of points of the plane.
    pub fn lift(&self, points: &[[f64; 2]]) -> Vec<Vec<f64>> {
        points
            .iter()
            .map(|p| {
                let mut z = self.base.clone();
                z[self.dims[0]] = p[0];
                z[self.dims[1]] = p[1];
                z
            })
            .collect()
    }

    /// Axis names: "z3", or "z3 (mu)" for a VAE's posterior means.
    pub fn axis_names(&self, kind: ModelKind) -> (String, String) {
        let mu = if kind.is_variational() { " (mu)" } else { "" };
        let [a, b] = self.dims;
        (format!("z{}{mu}", a + 1), format!("z{}{mu}", b + 1))
    }

    /// What a title says of the plane: nothing for a 2-D latent space, which is all shown.
    pub fn note(&self) -> Option<String> {
        let [a, b] = self.dims;
        (self.latent() > 2).then(|| {
            format!(
                "z{} and z{} of {}, the most varied",
                a + 1,
                b + 1,
                self.latent()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four dimensions, of which the 4th and the 2nd vary most: the plane is (z4, z2), the
    /// other two held at their means, and a projected then lifted code comes back as it was
    /// in the plane's dimensions.
    #[test]
    fn the_plane_takes_the_two_most_varied_dimensions() {
        let codes: Vec<f32> = (0..100)
            .flat_map(|i| {
                let t = i as f32 / 100.0;
                [5.0 + 0.01 * t, 2.0 * t, -1.0, 10.0 * t]
            })
            .collect();
        let plane = LatentPlane::most_active(&codes, 4);
        assert_eq!(plane.dims, [3, 1]);
        assert!((plane.base[0] - 5.005).abs() < 1e-3 && plane.base[2] == -1.0);
        let flat = plane.project(&codes[..8]);
        assert_eq!(flat, vec![codes[3], codes[1], codes[7], codes[5]]);
        let z = plane.lift(&[[0.1, 0.02]]);
        assert_eq!(z[0][3], 0.1);
        assert_eq!(z[0][1], 0.02);
        assert_eq!(z[0][2], -1.0);
        assert_eq!(
            plane.at_zero().lift(&[[1.0, 2.0]])[0],
            vec![0.0, 2.0, 0.0, 1.0]
        );
        assert_eq!(plane.axis_names(ModelKind::Vae).0, "z4 (mu)");
        assert_eq!(plane.note().unwrap(), "z4 and z2 of 4, the most varied");
    }

    #[test]
    fn a_two_dimensional_space_is_its_own_plane() {
        let codes = [0.0f32, 5.0, 1.0, -5.0];
        let plane = LatentPlane::most_active(&codes, 2);
        assert_eq!(plane.dims, [0, 1], "z1 across even when z2 varies more");
        assert_eq!(plane.project(&codes), codes.to_vec());
        assert_eq!(plane.note(), None);
        assert_eq!(plane.axis_names(ModelKind::Ae), ("z1".into(), "z2".into()));
    }
}
