//! A student's submission, copied before it is graded.
//!
//! A submission is untrusted: it may hold symbolic links to anywhere (`stages -> /`), named
//! pipes that block a reader, a gigabyte `target/`, or cargo settings that change how it is
//! built. [`copy_submission`] copies only regular files and folders, follows no symbolic link
//! (so nothing outside the submission's folder is ever read through it), leaves out build
//! outputs and the submission's own tool settings, and refuses a submission too large to be a
//! minivirt tree. The grader then builds the copy in a target directory of its own.

use std::io;
use std::path::{Path, PathBuf};

/// Names that are never copied, at any depth: build outputs, version control, the submission's
/// own cargo configuration and toolchain choice (the instructor's toolchain grades).
pub const LEFT_OUT: &[&str] = &[".git", "target", ".cargo", "rust-toolchain", "rust-toolchain.toml"];

/// The most files and folders a submission may hold.
pub const MAX_ENTRIES: usize = 20_000;

/// The most bytes a submission may hold: minivirt's sources are a few megabytes.
pub const MAX_BYTES: u64 = 256 << 20;

/// Errors from copying a submission.
#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The submission folder does not exist or is not a folder.
    #[error("the submission {0} is not a folder")]
    NotAFolder(PathBuf),
    /// It holds more than [`MAX_ENTRIES`] entries or [`MAX_BYTES`] bytes.
    #[error("the submission is too large to grade (more than {MAX_ENTRIES} files or {} MiB)", MAX_BYTES >> 20)]
    TooLarge,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SubmissionError + '_ {
    move |source| SubmissionError::Io { path: path.to_path_buf(), source }
}

/// What a copy left out.
#[derive(Debug, Default)]
pub struct CopySummary {
    /// Regular files copied.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// Symbolic links and special files (pipes, sockets, devices) not copied, relative to the
    /// submission.
    pub skipped: Vec<PathBuf>,
}

/// The folder of `submission` that holds the tree: the submission itself, or, when it has no
/// `Cargo.toml` but exactly one folder (an archive that unpacks to `minivirt-main/`, say), that
/// folder when it has one. Symbolic links are never taken.
pub fn tree_root(submission: &Path) -> PathBuf {
    if submission.join("Cargo.toml").is_file() {
        return submission.to_path_buf();
    }
    let folders: Vec<PathBuf> = std::fs::read_dir(submission)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with(['.', '_']))
        .map(|e| e.path())
        .collect();
    match &folders[..] {
        [only] if only.join("Cargo.toml").is_file() => only.clone(),
        _ => submission.to_path_buf(),
    }
}

/// Copies the submission at `from` (see [`tree_root`]) to `to`, which is emptied first: regular
/// files (permissions without set-id bits) and folders only, [`LEFT_OUT`] names left out.
///
/// # Errors
///
/// [`SubmissionError::NotAFolder`] when `from` is not a folder (a symbolic link to one is not
/// followed either), [`SubmissionError::TooLarge`] past [`MAX_ENTRIES`] or [`MAX_BYTES`], and
/// I/O errors naming the file.
pub fn copy_submission(from: &Path, to: &Path) -> Result<CopySummary, SubmissionError> {
    let kind = std::fs::symlink_metadata(from).map_err(io_error(from))?;
    if !kind.is_dir() {
        return Err(SubmissionError::NotAFolder(from.to_path_buf()));
    }
    let root = tree_root(from);
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(io_error(to))?;
    }
    std::fs::create_dir_all(to).map_err(io_error(to))?;
    let mut summary = CopySummary::default();
    let mut entries = 0;
    copy_folder(&root, to, Path::new(""), &mut summary, &mut entries)?;
    Ok(summary)
}

fn copy_folder(
    root: &Path,
    to: &Path,
    relative: &Path,
    summary: &mut CopySummary,
    entries: &mut usize,
) -> Result<(), SubmissionError> {
    let folder = root.join(relative);
    let mut children: Vec<_> =
        std::fs::read_dir(&folder).map_err(io_error(&folder))?.collect::<Result<_, _>>().map_err(io_error(&folder))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let name = child.file_name();
        if LEFT_OUT.iter().any(|n| name == *n) {
            continue;
        }
        *entries += 1;
        if *entries > MAX_ENTRIES {
            return Err(SubmissionError::TooLarge);
        }
        let path = relative.join(&name);
        let source = root.join(&path);
        let target = to.join(&path);
        // The entry itself, never what a symbolic link points to.
        let kind = child.file_type().map_err(io_error(&source))?;
        if kind.is_dir() {
            std::fs::create_dir(&target).map_err(io_error(&target))?;
            copy_folder(root, to, &path, summary, entries)?;
        } else if kind.is_file() {
            let bytes = std::fs::metadata(&source).map_err(io_error(&source))?.len();
            summary.bytes += bytes;
            if summary.bytes > MAX_BYTES {
                return Err(SubmissionError::TooLarge);
            }
            copy_file(&source, &target)?;
            summary.files += 1;
        } else {
            summary.skipped.push(path);
        }
    }
    Ok(())
}

/// Copies one regular file, opened without following a symbolic link (one swapped in since the
/// folder was listed is refused), keeping its permission bits but no set-id bit.
fn copy_file(source: &Path, target: &Path) -> Result<(), SubmissionError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut input = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(source)
        .map_err(io_error(source))?;
    let metadata = input.metadata().map_err(io_error(source))?;
    if !metadata.is_file() {
        // Swapped for a pipe or a device since the folder was listed: not read.
        return Err(SubmissionError::Io {
            path: source.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let mut output = std::fs::File::create(target).map_err(io_error(target))?;
    io::copy(&mut input, &mut output).map_err(io_error(target))?;
    let mode = metadata.permissions().mode() & 0o777;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode)).map_err(io_error(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_and_build_outputs_are_not_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("ada");
        let outside = tmp.path().join("secret.txt");
        std::fs::write(&outside, "instructor only").unwrap();
        std::fs::create_dir_all(from.join("stages/01-hello/src")).unwrap();
        std::fs::create_dir_all(from.join("target/debug")).unwrap();
        std::fs::create_dir_all(from.join(".cargo")).unwrap();
        std::fs::write(from.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(from.join("stages/01-hello/src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(from.join("target/debug/big"), "x").unwrap();
        std::fs::write(from.join(".cargo/config.toml"), "[build]\nrustc-wrapper = \"evil\"\n").unwrap();
        symlink(&outside, from.join("stages/01-hello/src/secret.txt")).unwrap();
        symlink("/", from.join("root")).unwrap();
        symlink("main.rs", from.join("stages/01-hello/src/also-main.rs")).unwrap();
        let fifo = std::ffi::CString::new(from.join("pipe").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

        let to = tmp.path().join("copy");
        std::fs::create_dir_all(to.join("stale")).unwrap();
        let summary = copy_submission(&from, &to).unwrap();
        assert_eq!(summary.files, 2);
        let mut skipped = summary.skipped.clone();
        skipped.sort();
        let expected: Vec<PathBuf> =
            ["pipe", "root", "stages/01-hello/src/also-main.rs", "stages/01-hello/src/secret.txt"]
                .iter()
                .map(PathBuf::from)
                .collect();
        assert_eq!(skipped, expected);
        assert_eq!(std::fs::read_to_string(to.join("stages/01-hello/src/main.rs")).unwrap(), "fn main() {}\n");
        for absent in ["target", ".cargo", "root", "pipe", "stale", "stages/01-hello/src/secret.txt"] {
            assert!(std::fs::symlink_metadata(to.join(absent)).is_err(), "{absent} was copied");
        }
    }

    #[test]
    fn a_linked_submission_or_a_huge_one_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        symlink("/etc", tmp.path().join("linked")).unwrap();
        let err = copy_submission(&tmp.path().join("linked"), &tmp.path().join("copy")).unwrap_err();
        assert!(matches!(err, SubmissionError::NotAFolder(_)), "{err}");

        let big = tmp.path().join("big");
        std::fs::create_dir(&big).unwrap();
        let file = std::fs::File::create(big.join("blob")).unwrap();
        file.set_len(MAX_BYTES + 1).unwrap();
        let err = copy_submission(&big, &tmp.path().join("copy")).unwrap_err();
        assert!(matches!(err, SubmissionError::TooLarge), "{err}");
    }

    #[test]
    fn an_archive_folder_is_looked_into() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("__MACOSX")).unwrap();
        std::fs::create_dir_all(tmp.path().join("minivirt-main")).unwrap();
        std::fs::write(tmp.path().join("minivirt-main/Cargo.toml"), "").unwrap();
        assert_eq!(tree_root(tmp.path()), tmp.path().join("minivirt-main"));
        std::fs::write(tmp.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(tree_root(tmp.path()), tmp.path());
    }
}
