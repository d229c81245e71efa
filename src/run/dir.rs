//! Run directories: a fresh one per run, never an existing one.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::RunError;

/// Creates `runs/<model>-<dataset>-<yyyymmdd-hhmmss>` under `root`, adding `-2`, `-3`, ...
/// when another run took that name in the same second. `create_dir` fails on an existing
/// folder, so two runs started at once can never share one.
pub fn create_new_run_dir(root: &Path, model: &str, dataset: &str) -> Result<PathBuf, RunError> {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let base = format!("{model}-{dataset}-{stamp}");
    fs::create_dir_all(root).map_err(|source| unwritable(root, source))?;
    for n in 1..1000 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = root.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(unwritable(&dir, source)),
        }
    }
    Err(RunError::Exists {
        path: root.join(base),
    })
}

/// Creates exactly `dir` (the user's `--out`), refusing one that already exists.
pub fn create_exact_dir(dir: &Path) -> Result<PathBuf, RunError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| unwritable(dir, source))?;
    }
    match fs::create_dir(dir) {
        Ok(()) => Ok(dir.to_path_buf()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(RunError::Exists {
            path: dir.to_path_buf(),
        }),
        Err(source) => Err(unwritable(dir, source)),
    }
}

/// A folder that cannot be made is the user's path at fault (a file in the way, no
/// permission, a read-only disk): said as such, not as a bare OS error.
fn unwritable(dir: &Path, source: std::io::Error) -> RunError {
    let reason = match source.kind() {
        ErrorKind::AlreadyExists | ErrorKind::NotADirectory => {
            "a file is in the way of this folder".to_string()
        }
        ErrorKind::PermissionDenied => "no permission to write there".to_string(),
        _ => source.to_string(),
    };
    RunError::Unwritable {
        path: dir.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_their_own_folders() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<_> = (0..3)
            .map(|_| create_new_run_dir(root.path(), "ae", "mnist").unwrap())
            .collect();
        assert_eq!(
            dirs.iter().collect::<std::collections::HashSet<_>>().len(),
            3
        );
        assert!(dirs.iter().all(|d| d.is_dir()));
    }

    #[test]
    fn an_existing_out_folder_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let err = create_exact_dir(root.path()).unwrap_err();
        assert!(matches!(err, RunError::Exists { .. }));
    }
}
