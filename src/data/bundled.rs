//! MNIST inside the binary: the four gzipped IDX files of `data/mnist/` (11 MB), so that an
//! installed `latentlab` (`cargo install --path .`) trains in any folder, offline.

use std::path::{Path, PathBuf};

/// The folder `--dataset mnist` reads by default, relative to the working directory. Where it
/// does not exist, the copy in the binary is used instead.
pub const DEFAULT_DIR: &str = "data/mnist";

/// How errors name a file of the bundled copy.
pub fn label(name: &str) -> PathBuf {
    Path::new("<bundled MNIST>").join(format!("{name}.gz"))
}

/// The bytes of one of the four files, by its standard name (without `.gz`).
pub fn file(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "train-images-idx3-ubyte" => include_bytes!("../../data/mnist/train-images-idx3-ubyte.gz"),
        "train-labels-idx1-ubyte" => include_bytes!("../../data/mnist/train-labels-idx1-ubyte.gz"),
        "t10k-images-idx3-ubyte" => include_bytes!("../../data/mnist/t10k-images-idx3-ubyte.gz"),
        "t10k-labels-idx1-ubyte" => include_bytes!("../../data/mnist/t10k-labels-idx1-ubyte.gz"),
        _ => return None,
    })
}
