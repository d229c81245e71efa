//! An MNIST-family data set: the four standard IDX files of one folder, checked together.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::idx::{IdxArray, IdxError, IdxKind, read_idx, read_idx_bytes};

/// The four standard file names every MNIST-family set uses (Fashion-MNIST and KMNIST too).
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A data set latentlab knows by name: what its files must hash to, and where to fetch them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownSet {
    pub name: &'static str,
    /// (file name, MD5 of the decompressed file), checked on every load; empty where the
    /// publishers give only the checksums of their .gz files.
    pub md5: &'static [(&'static str, &'static str)],
    /// The public mirror the four `<name>.gz` files are fetched from.
    pub mirror: &'static str,
    /// (file name, MD5 of the .gz file as the mirror serves it): a fetched file must match
    /// this or, where known, `md5` once decompressed.
    pub gz_md5: [(&'static str, &'static str); 4],
    /// Where the set comes from and its licence, for the README.md written beside fetched files.
    pub source: &'static str,
}

pub const MNIST: KnownSet = KnownSet {
    name: "mnist",
    md5: &[
        (TRAIN_IMAGES, "6bbc9ace898e44ae57da46a324031adb"),
        (TRAIN_LABELS, "a25bea736e30d166cdddb491f175f624"),
        (TEST_IMAGES, "2646ac647ad5339dbf082846283269ea"),
        (TEST_LABELS, "27ae3e4e09519cfbb04c329615203637"),
    ],
    mirror: "https://ossci-datasets.s3.amazonaws.com/mnist/",
    gz_md5: [
        (TRAIN_IMAGES, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        (TRAIN_LABELS, "d53e105ee54ea40749a09fcbcd1e9432"),
        (TEST_IMAGES, "9fb629c4189551a2d022fa330f9573f3"),
        (TEST_LABELS, "ec29112dd5afa0611ce80d1b7f02629c"),
    ],
    source: "MNIST, Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0",
};

pub const FASHION_MNIST: KnownSet = KnownSet {
    name: "fashion-mnist",
    md5: &[],
    mirror: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    gz_md5: [
        (TRAIN_IMAGES, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        (TRAIN_LABELS, "25c81989df183df01b3e8a0aad5dffbe"),
        (TEST_IMAGES, "bef4ecab320f06d8554ea6380940ec79"),
        (TEST_LABELS, "bb300cfdad3c16e7a12a480ee83cd310"),
    ],
    source: "Fashion-MNIST, H. Xiao, K. Rasul, R. Vollgraf (Zalando Research); MIT licence",
};

pub const KMNIST: KnownSet = KnownSet {
    name: "kmnist",
    md5: &[],
    mirror: "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    gz_md5: [
        (TRAIN_IMAGES, "bdb82020997e1d708af4cf47b453dcf7"),
        (TRAIN_LABELS, "e144d726b3acfaa3e44228e80efcd344"),
        (TEST_IMAGES, "5c965bf0a639b31b8f53240b1b52f4d7"),
        (TEST_LABELS, "7320c461ea6c1c855c0b718fb2a4b134"),
    ],
    source: "Kuzushiji-MNIST, T. Clanuwat et al. (ROIS-DS CODH); CC BY-SA 4.0",
};

/// One split (train or test): images as bytes, row-major, and their labels.
#[derive(Debug, Clone)]
pub struct Split {
    /// `len * pixels` grey levels 0-255.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps the first `n` examples (the spec's `--train-limit`).
    pub fn truncate(&mut self, n: usize, pixels: usize) {
        self.labels.truncate(n);
        self.images.truncate(n * pixels);
    }

    /// Images scaled to [0, 1], the model's input.
    pub fn images_f32(&self) -> Vec<f32> {
        self.images.iter().map(|&b| b as f32 / 255.0).collect()
    }
}

/// A loaded data set: both splits with the image size they share.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub train: Split,
    pub test: Split,
}

impl Dataset {
    /// Pixels per image: the model's input and output size.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }
}

#[derive(Debug, Error)]
pub enum DataError {
    #[error(transparent)]
    Idx(#[from] IdxError),
    #[error(
        "{dir}: data folder not found; pass --data-dir with a folder holding the four IDX files"
    )]
    MissingDir { dir: PathBuf },
    #[error(
        "{dir}: no {name} or {name}.gz in this folder; the four IDX files must keep their standard names"
    )]
    MissingFile { dir: PathBuf, name: String },
    #[error(
        "{path}: checksum mismatch (MD5 {found}, {set} has {expected}): the file is corrupt or not {set}; replace it, or pass --dataset custom for other data"
    )]
    Checksum {
        path: PathBuf,
        set: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{images} holds {n_images} images but {labels} holds {n_labels} labels; the two files must come from the same split"
    )]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
    #[error("{path}: label {value} at index {index} is not a digit 0-9")]
    BadLabel {
        path: PathBuf,
        index: usize,
        value: u8,
    },
    #[error(
        "{train} has {train_rows}x{train_cols} images but {test} has {test_rows}x{test_cols}; both splits must share one image size"
    )]
    SizeMismatch {
        train: PathBuf,
        train_rows: usize,
        train_cols: usize,
        test: PathBuf,
        test_rows: usize,
        test_cols: usize,
    },
    #[error("{path}: holds no images")]
    NoImages { path: PathBuf },
}

/// Loads the four files of `dir`, checking each against `known` when the set is a known one.
pub fn load_dataset(
    dir: &Path,
    name: &str,
    known: Option<&KnownSet>,
) -> Result<Dataset, DataError> {
    // MNIST's default folder is missing outside a clone of the repository (after `cargo
    // install`): then the copy inside the binary is read, where the build has one.
    let from_binary = cfg!(feature = "bundled-mnist")
        && name == "mnist"
        && dir == Path::new(super::bundled::DEFAULT_DIR);
    if !dir.is_dir() && !from_binary {
        return Err(DataError::MissingDir {
            dir: dir.to_path_buf(),
        });
    }
    let source = if dir.is_dir() {
        Source::Folder(dir)
    } else {
        Source::Binary
    };
    let (train, train_shape) = load_split(&source, TRAIN_IMAGES, TRAIN_LABELS, known)?;
    let (test, test_shape) = load_split(&source, TEST_IMAGES, TEST_LABELS, known)?;
    if train_shape.1 != test_shape.1 {
        return Err(DataError::SizeMismatch {
            train: train_shape.0,
            train_rows: train_shape.1.0,
            train_cols: train_shape.1.1,
            test: test_shape.0,
            test_rows: test_shape.1.0,
            test_cols: test_shape.1.1,
        });
    }
    Ok(Dataset {
        name: name.to_string(),
        rows: train_shape.1.0,
        cols: train_shape.1.1,
        train,
        test,
    })
}

type Shape = (PathBuf, (usize, usize));

/// Where the four files are read from.
enum Source<'a> {
    Folder(&'a Path),
    /// The MNIST copy inside the binary (`super::bundled`).
    Binary,
}

impl Source<'_> {
    /// One file, read and parsed; returns the path that names it in errors too.
    fn read(&self, name: &str, kind: IdxKind) -> Result<(PathBuf, IdxArray), DataError> {
        match self {
            Source::Folder(dir) => {
                let path = find_file(dir, name)?;
                let array = read_idx(&path, kind)?;
                Ok((path, array))
            }
            Source::Binary => {
                let path = super::bundled::label(name);
                let bytes = super::bundled::file(name).ok_or_else(|| DataError::MissingFile {
                    dir: PathBuf::from("<bundled MNIST>"),
                    name: name.to_string(),
                })?;
                let array = read_idx_bytes(&path, bytes, kind)?;
                Ok((path, array))
            }
        }
    }
}

fn load_split(
    source: &Source,
    images_name: &str,
    labels_name: &str,
    known: Option<&KnownSet>,
) -> Result<(Split, Shape), DataError> {
    let (images_path, images) = source.read(images_name, IdxKind::Images)?;
    check_md5(&images_path, images_name, &images.md5, known)?;
    let (labels_path, labels) = source.read(labels_name, IdxKind::Labels)?;
    check_md5(&labels_path, labels_name, &labels.md5, known)?;

    let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if n == 0 || rows == 0 || cols == 0 {
        return Err(DataError::NoImages { path: images_path });
    }
    if labels.dims[0] != n {
        return Err(DataError::CountMismatch {
            images: images_path,
            n_images: n,
            labels: labels_path,
            n_labels: labels.dims[0],
        });
    }
    if let Some((index, &value)) = labels.data.iter().enumerate().find(|(_, v)| **v > 9) {
        return Err(DataError::BadLabel {
            path: labels_path,
            index,
            value,
        });
    }
    let split = Split {
        images: images.data,
        labels: labels.data,
    };
    Ok((split, (images_path, (rows, cols))))
}

/// The gzipped file is preferred; a raw one with the bare name is accepted too.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    [format!("{name}.gz"), name.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
}

fn check_md5(
    path: &Path,
    name: &str,
    found: &str,
    known: Option<&KnownSet>,
) -> Result<(), DataError> {
    let Some(set) = known else { return Ok(()) };
    match set.md5.iter().find(|(n, _)| *n == name) {
        Some((_, expected)) if *expected != found => Err(DataError::Checksum {
            path: path.to_path_buf(),
            set: set.name,
            found: found.to_string(),
            expected,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_idx(dir: &Path, name: &str, magic: u8, dims: &[u32], data: &[u8]) {
        let mut v = vec![0, 0, 8, magic];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        std::fs::write(dir.join(name), v).unwrap();
    }

    fn small_set(dir: &Path, n_test_labels: u32, label: u8) {
        write_idx(dir, TRAIN_IMAGES, 3, &[4, 2, 2], &[7; 16]);
        write_idx(dir, TRAIN_LABELS, 1, &[4], &[0, 1, 2, 3]);
        write_idx(dir, TEST_IMAGES, 3, &[2, 2, 2], &[9; 8]);
        let labels = vec![label; n_test_labels as usize];
        write_idx(dir, TEST_LABELS, 1, &[n_test_labels], &labels);
    }

    #[test]
    fn loads_a_custom_set_of_raw_files() {
        let dir = tempfile::tempdir().unwrap();
        small_set(dir.path(), 2, 5);
        let ds = load_dataset(dir.path(), "custom", None).unwrap();
        assert_eq!((ds.rows, ds.cols, ds.pixels()), (2, 2, 4));
        assert_eq!(ds.train.len(), 4);
        assert_eq!(ds.test.labels, vec![5, 5]);
        assert!((ds.train.images_f32()[0] - 7.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn refuses_disagreeing_counts_and_bad_labels() {
        let dir = tempfile::tempdir().unwrap();
        small_set(dir.path(), 3, 5);
        let err = load_dataset(dir.path(), "custom", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds 2 images but") && err.contains("3 labels"),
            "{err}"
        );

        small_set(dir.path(), 2, 12);
        let err = load_dataset(dir.path(), "custom", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label 12 at index 0 is not a digit"), "{err}");
    }

    #[test]
    fn known_set_checksums_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        small_set(dir.path(), 2, 5);
        let err = load_dataset(dir.path(), "mnist", Some(&MNIST))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains(TRAIN_IMAGES),
            "{err}"
        );
    }

    #[test]
    fn missing_folder_and_file_are_named() {
        let err = load_dataset(Path::new("/no/such/dir"), "x", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/no/such/dir: data folder not found"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = load_dataset(dir.path(), "x", None).unwrap_err().to_string();
        assert!(
            err.contains("no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"),
            "{err}"
        );
    }

    #[test]
    fn bundled_mnist_loads_and_matches_its_checksums() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
        let ds = load_dataset(&dir, "mnist", Some(&MNIST)).unwrap();
        assert_eq!(
            (ds.train.len(), ds.test.len(), ds.pixels()),
            (60_000, 10_000, 784)
        );
        assert_eq!(&ds.train.labels[..5], &[5, 0, 4, 1, 9]);
    }
}
