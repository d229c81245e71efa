//! MNIST inside the binary: the four gzipped IDX files of `data/mnist/` (11 MB), so that an
//! installed `latentlab` (`cargo install --path .`) trains in any folder, offline. The
//! `bundled-mnist` feature (on by default) puts them there.

use std::path::{Path, PathBuf};

/// The folder `--dataset mnist` reads by default, relative to the working directory. Where it
/// does not exist, the copy in the binary is used instead.
pub const DEFAULT_DIR: &str = "data/mnist";

/// How errors name a file of the bundled copy.
pub fn label(name: &str) -> PathBuf {
    Path::new("<bundled MNIST>").join(format!("{name}.gz"))
}

/// The bytes of one of the four files, by its standard name (without `.gz`).
#[cfg(feature = "bundled-mnist")]
pub fn file(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "train-images-idx3-ubyte" => include_bytes!("../../data/mnist/train-images-idx3-ubyte.gz"),
        "train-labels-idx1-ubyte" => include_bytes!("../../data/mnist/train-labels-idx1-ubyte.gz"),
        "t10k-images-idx3-ubyte" => include_bytes!("../../data/mnist/t10k-images-idx3-ubyte.gz"),
        "t10k-labels-idx1-ubyte" => include_bytes!("../../data/mnist/t10k-labels-idx1-ubyte.gz"),
        _ => return None,
    })
}

/// A build without the `bundled-mnist` feature has no copy: MNIST is read from `data/mnist`.
#[cfg(not(feature = "bundled-mnist"))]
pub fn file(_name: &str) -> Option<&'static [u8]> {
    None
}
