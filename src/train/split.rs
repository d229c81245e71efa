//! A data split resident on the training device, in blocks a GPU accepts, and the batches
//! gathered from it.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;

use crate::data::Split;

/// Bytes of one image block on a GPU. wgpu caps one buffer binding (WebGPU's default
/// `max_storage_buffer_binding_size` is 128 MiB, lavapipe's too), and the 60,000 MNIST
/// training images are 188 MB as f32, so a split is kept there as blocks of at most this.
const GPU_BLOCK_BYTES: usize = 64 << 20;

/// A split on the device: images `[n, pixels]` in [0, 1], in row blocks, and the labels on the
/// host. On the CPU backend there is one block (no copy limit); on a GPU, blocks of at most
/// [`GPU_BLOCK_BYTES`]. Either way batches come out bit for bit the same.
pub struct DeviceSplit {
    blocks: Vec<Tensor<2>>,
    block_rows: usize,
    pixels: usize,
    device: Device,
    pub labels: Vec<u8>,
}

impl DeviceSplit {
    pub fn upload(split: &Split, pixels: usize, device: &Device) -> DeviceSplit {
        let block_rows = block_rows_for(device, split.len(), pixels);
        Self::upload_in_blocks(split, pixels, device, block_rows)
    }

    fn upload_in_blocks(
        split: &Split,
        pixels: usize,
        device: &Device,
        block_rows: usize,
    ) -> DeviceSplit {
        let images = split.images_f32();
        let n = split.len();
        let blocks = if n == 0 {
            vec![Tensor::from_data(
                TensorData::new(images, [0, pixels]),
                device,
            )]
        } else {
            images
                .chunks(block_rows * pixels)
                .map(|rows| {
                    let data = TensorData::new(rows.to_vec(), [rows.len() / pixels, pixels]);
                    Tensor::from_data(data, device)
                })
                .collect()
        };
        DeviceSplit {
            blocks,
            block_rows,
            pixels,
            device: device.clone(),
            labels: split.labels.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Each block with the index of its first row.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, &Tensor<2>)> {
        let rows = self.block_rows;
        self.blocks
            .iter()
            .enumerate()
            .map(move |(k, b)| (k * rows, b))
    }

    /// Rows `a..b` as one `[b - a, pixels]` tensor.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Tensor<2> {
        self.rows_on(range, &self.device)
    }

    /// Rows `a..b` as one tensor on `device`: each block's part is moved there first and
    /// joined there, so no buffer larger than a block is ever made on this split's device.
    fn rows_on(&self, range: std::ops::Range<usize>, device: &Device) -> Tensor<2> {
        let parts: Vec<Tensor<2>> = self
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(k, block)| {
                let start = k * self.block_rows;
                let (a, b) = (
                    range.start.max(start),
                    range.end.min(start + block.dims()[0]),
                );
                (a < b).then(|| {
                    let part = block.clone().slice(a - start..b - start);
                    if device == &self.device {
                        part
                    } else {
                        part.inner().to_device(device)
                    }
                })
            })
            .collect();
        join(parts, self.pixels, device)
    }

    /// The rows at `index`, in that order, as one `[index.len(), pixels]` tensor.
    pub fn gather(&self, index: &[i64]) -> Tensor<2> {
        if let [block] = self.blocks.as_slice() {
            return block
                .clone()
                .select(0, int_tensor(index.to_vec(), &self.device));
        }
        // Gather from each block, then put the rows back in the order asked for.
        let mut parts = Vec::new();
        let mut position = Vec::with_capacity(index.len());
        for (k, block) in self.blocks.iter().enumerate() {
            let start = (k * self.block_rows) as i64;
            let end = start + block.dims()[0] as i64;
            let mut local = Vec::new();
            for (p, &i) in index.iter().enumerate() {
                if (start..end).contains(&i) {
                    local.push(i - start);
                    position.push(p);
                }
            }
            if !local.is_empty() {
                parts.push(block.clone().select(0, int_tensor(local, &self.device)));
            }
        }
        let mut inverse = vec![0i64; position.len()];
        for (k, &p) in position.iter().enumerate() {
            inverse[p] = k as i64;
        }
        join(parts, self.pixels, &self.device).select(0, int_tensor(inverse, &self.device))
    }

    /// The rows at `order` (a permutation of the split) as a new split, in blocks of a whole
    /// number of `batch`es where the device needs blocks: each batch of the epoch is then a
    /// slice of one block (`rows`), a view with no kernel launch and no index upload, where
    /// `gather` costs a select per block, a join and a reorder every step.
    pub fn permuted(&self, order: &[i64], batch: usize) -> DeviceSplit {
        let n = order.len();
        let batch = batch.max(1);
        let block_rows = if self.blocks.len() == 1 {
            n.max(1)
        } else {
            (self.block_rows / batch).max(1) * batch
        };
        let blocks = if n == 0 {
            vec![Tensor::zeros([0, self.pixels], &self.device)]
        } else {
            order
                .chunks(block_rows)
                .map(|rows| self.gather(rows))
                .collect()
        };
        DeviceSplit {
            blocks,
            block_rows,
            pixels: self.pixels,
            device: self.device.clone(),
            labels: order.iter().map(|&i| self.labels[i as usize]).collect(),
        }
    }

    /// A black-and-white draw of the whole split, block by block, its rows in order.
    fn bernoulli(self, stream: &mut ChaCha8Rng) -> DeviceSplit {
        DeviceSplit {
            blocks: self
                .blocks
                .into_iter()
                .map(|block| bernoulli(block, stream))
                .collect(),
            ..self
        }
    }

    /// The same split on another device, in the blocks that device needs.
    pub fn to_device(&self, device: &Device) -> DeviceSplit {
        let n = self.len();
        let block_rows = block_rows_for(device, n, self.pixels);
        let blocks = (0..n.div_ceil(block_rows).max(1))
            .map(|k| self.rows_on(k * block_rows..((k + 1) * block_rows).min(n), device))
            .collect();
        DeviceSplit {
            blocks,
            block_rows,
            pixels: self.pixels,
            device: device.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// An epoch's batches, in the order of its permutation, drawn black and white afresh where the
/// run binarises dynamically (`--binarize dynamic`).
///
/// The draws take the epoch's binarising stream in the order of the epoch's rows, batch after
/// batch, on either device: so a GPU, which draws the whole permuted split at the start of the
/// epoch, feeds its steps the very pixels the CPU draws batch by batch, and its batches stay
/// views a captured step can replay.
pub enum EpochOrder {
    /// The CPU backend selects each batch's rows from the split when asked: a copy of only
    /// those rows, no copy of the whole set per epoch. The stream, where there is one, draws
    /// each batch as it is taken.
    Gather {
        perm: Vec<i64>,
        binarize: Option<Box<ChaCha8Rng>>,
    },
    /// A GPU gets the whole split in the epoch's order once (`DeviceSplit::permuted`),
    /// already drawn where the run binarises: a batch is then a view, where a gather costs
    /// kernel launches and an index upload every step.
    Permuted(DeviceSplit),
}

impl EpochOrder {
    pub fn new(
        split: &DeviceSplit,
        perm: Vec<i64>,
        batch: usize,
        binarize: Option<ChaCha8Rng>,
    ) -> EpochOrder {
        if crate::device::is_cpu(&split.device) {
            EpochOrder::Gather {
                perm,
                binarize: binarize.map(Box::new),
            }
        } else {
            let shuffled = split.permuted(&perm, batch);
            EpochOrder::Permuted(match binarize {
                Some(mut stream) => shuffled.bernoulli(&mut stream),
                None => shuffled,
            })
        }
    }

    /// Positions `a..b` of the epoch's order, as one `[b - a, pixels]` tensor. The batches
    /// are taken in order, each once (a binarising stream moves on with each).
    pub fn batch(&mut self, split: &DeviceSplit, range: std::ops::Range<usize>) -> Tensor<2> {
        match self {
            EpochOrder::Gather { perm, binarize } => {
                let x = split.gather(&perm[range]);
                match binarize {
                    Some(stream) => bernoulli(x, stream),
                    None => x,
                }
            }
            EpochOrder::Permuted(shuffled) => shuffled.rows(range),
        }
    }
}

/// A black-and-white draw of `x` (grey levels in [0, 1]): a pixel is 1 where a uniform draw
/// falls below its grey level, so with probability that level. The draws are `x`'s pixels in
/// row order.
fn bernoulli(x: Tensor<2>, stream: &mut ChaCha8Rng) -> Tensor<2> {
    let dims = x.dims();
    let u = super::rng::uniforms(stream, dims[0] * dims[1]);
    let u = Tensor::<2>::from_data(TensorData::new(u, dims), &x.device());
    u.lower(x).float()
}

/// Rows per block: all of them on the CPU backend, at most [`GPU_BLOCK_BYTES`] on a GPU.
fn block_rows_for(device: &Device, rows: usize, pixels: usize) -> usize {
    if crate::device::is_cpu(device) {
        rows.max(1)
    } else {
        (GPU_BLOCK_BYTES / (4 * pixels.max(1))).max(1)
    }
}

fn int_tensor(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn join(mut parts: Vec<Tensor<2>>, pixels: usize, device: &Device) -> Tensor<2> {
    match parts.len() {
        0 => Tensor::zeros([0, pixels], device),
        1 => parts.remove(0),
        _ => Tensor::cat(parts, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// Ten 3-pixel images whose pixels name their row.
    fn split() -> Split {
        Split {
            images: (0..10u8).flat_map(|r| [r, r, 255 - r]).collect(),
            labels: (0..10u8).collect(),
        }
    }

    #[test]
    fn blocked_split_gives_the_same_batches_as_one_block() {
        let device = Device::flex();
        let one = DeviceSplit::upload(&split(), 3, &device);
        for block_rows in [1, 3, 4, 10] {
            let blocked = DeviceSplit::upload_in_blocks(&split(), 3, &device, block_rows);
            for index in [vec![7i64, 0, 9, 3, 3, 5], vec![9], (0..10).rev().collect()] {
                assert_eq!(
                    values(blocked.gather(&index)),
                    values(one.gather(&index)),
                    "gather {index:?}, blocks of {block_rows}"
                );
            }
            for range in [0..10, 2..8, 3..4, 9..10] {
                assert_eq!(
                    values(blocked.rows(range.clone())),
                    values(one.rows(range.clone())),
                    "rows {range:?}, blocks of {block_rows}"
                );
            }
            let moved = blocked.to_device(&Device::flex());
            assert_eq!(values(moved.rows(0..10)), values(one.rows(0..10)));
            // An epoch's order: every batch of the permuted split is the gather of its indices,
            // labels included, whatever the batch size and the blocks.
            let order = [3i64, 9, 0, 7, 1, 8, 2, 6, 5, 4];
            for batch in [1, 3, 4, 10] {
                let shuffled = blocked.permuted(&order, batch);
                for a in (0..10).step_by(batch) {
                    let b = (a + batch).min(10);
                    assert_eq!(
                        values(shuffled.rows(a..b)),
                        values(one.gather(&order[a..b])),
                        "batch {a}..{b} of {batch}, blocks of {block_rows}"
                    );
                }
                let labels: Vec<u8> = order.iter().map(|&i| i as u8).collect();
                assert_eq!(shuffled.labels, labels);
            }
        }
        // Row 7 is [7, 7, 248] / 255.
        assert_eq!(
            values(one.gather(&[7])),
            vec![7.0 / 255.0, 7.0 / 255.0, 248.0 / 255.0]
        );
    }

    /// `--binarize dynamic`: a GPU draws the epoch's whole permuted split at once, block by
    /// block, and its batches are the pixels the CPU draws batch by batch from the same stream
    /// (so a GPU run binarises as a CPU run does and its steps stay replayable views). A draw
    /// out of order, a block drawn twice or one left grey makes other pixels.
    #[test]
    fn a_gpu_draws_the_epoch_the_cpu_draws_batch_by_batch() {
        use rand::SeedableRng;
        // Forty 8-pixel images of grey levels spread over [0, 1].
        let grey = Split {
            images: (0..320u32).map(|i| (i * 53 % 256) as u8).collect(),
            labels: (0..40u8).collect(),
        };
        let stream = || Some(ChaCha8Rng::seed_from_u64(11));
        let cpu = DeviceSplit::upload(&grey, 8, &Device::flex());
        let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        let perm: Vec<i64> = (0..40).map(|i| i * 17 % 40).collect();
        for block_rows in [5, 40] {
            let on_gpu = DeviceSplit::upload_in_blocks(&grey, 8, &gpu, block_rows);
            for batch in [1, 3, 7, 40] {
                let mut drawn = EpochOrder::new(&on_gpu, perm.clone(), batch, stream());
                assert!(matches!(drawn, EpochOrder::Permuted(_)));
                let mut taken = EpochOrder::new(&cpu, perm.clone(), batch, stream());
                let (mut ones, mut all) = (0, 0);
                for a in (0..40).step_by(batch) {
                    let b = (a + batch).min(40);
                    let want = values(taken.batch(&cpu, a..b));
                    assert_eq!(
                        values(drawn.batch(&on_gpu, a..b)),
                        want,
                        "batch {a}..{b} of {batch}, blocks of {block_rows}"
                    );
                    ones += want.iter().filter(|&&v| v == 1.0).count();
                    all += want.len();
                    assert!(want.iter().all(|&v| v == 0.0 || v == 1.0));
                }
                // Black and white, about as often white as the grey levels say (mean 0.5).
                assert!((100..220).contains(&ones), "{ones} of {all} white");
            }
        }
    }
}
