//! The data: IDX files read and checked, loaded as one MNIST-family data set.

pub mod dataset;
pub mod idx;

pub use dataset::{DataError, Dataset, KnownSet, MNIST, Split, load_dataset};

/// The data sets `--dataset` names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// MNIST digits, bundled in data/mnist.
    Mnist,
    /// Any folder of the four standard IDX files (needs --data-dir); no checksum check.
    Custom,
}

impl DatasetName {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::Custom => "custom",
        }
    }

    /// The checksums of a known set; `None` for custom data.
    pub fn known(self) -> Option<&'static KnownSet> {
        match self {
            DatasetName::Mnist => Some(&MNIST),
            DatasetName::Custom => None,
        }
    }
}
