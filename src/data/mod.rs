//! The data: IDX files read and checked, loaded as one MNIST-family data set.

pub mod binarize;
pub mod bundled;
pub mod dataset;
pub mod fetch;
pub mod idx;

pub use binarize::Binarize;
pub use dataset::{
    DataError, Dataset, FASHION_MNIST, KMNIST, KnownSet, MNIST, Split, load_dataset,
};

/// The data sets `--dataset` names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// MNIST digits, bundled in data/mnist and inside the binary.
    Mnist,
    /// Zalando's Fashion-MNIST (clothes), fetched into data/fashion-mnist on first use.
    FashionMnist,
    /// Kuzushiji-MNIST (cursive Japanese), fetched into data/kmnist on first use.
    Kmnist,
    /// Any folder of the four standard IDX files (needs --data-dir); no checksum check.
    Custom,
}

impl DatasetName {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Kmnist => "kmnist",
            DatasetName::Custom => "custom",
        }
    }

    /// The checksums of a known set; `None` for custom data.
    pub fn known(self) -> Option<&'static KnownSet> {
        match self {
            DatasetName::Mnist => Some(&MNIST),
            DatasetName::FashionMnist => Some(&FASHION_MNIST),
            DatasetName::Kmnist => Some(&KMNIST),
            DatasetName::Custom => None,
        }
    }
}
