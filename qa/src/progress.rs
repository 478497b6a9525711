//! Progress: what the student has answered, saved after every answer and resumed next time.
//!
//! It lives in `$QA_STATE_DIR/progress.json`, or `$XDG_STATE_HOME/minivirt-qa/`, or
//! `~/.local/state/minivirt-qa/` (the XDG base directory rules for state that survives a
//! restart but is not worth backing up). A file that cannot be parsed is moved aside, with a
//! warning, and the student starts afresh: a quiz must not refuse to start over its own state.

use crate::i18n::Lang;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version of the file format written.
pub const FORMAT_VERSION: u32 = 1;
/// The file name inside the state directory.
pub const FILE_NAME: &str = "progress.json";

/// Errors saving progress (loading never fails: see the module doc).
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// No state directory could be found.
    #[error("no state directory: set QA_STATE_DIR, XDG_STATE_HOME or HOME")]
    NoStateDir,
    /// Writing failed.
    #[error("cannot save progress to {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What is known about one question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Whether the student has finished it (right, or out of attempts).
    pub answered: bool,
    /// Whether the final attempt was right.
    pub correct: bool,
    /// Attempts made (1 or 2).
    pub attempts: u32,
    /// Whether the hint was shown.
    #[serde(default)]
    pub hint_used: bool,
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// [`FORMAT_VERSION`].
    #[serde(default)]
    pub version: u32,
    /// The language last chosen with `--lang`.
    #[serde(default)]
    pub lang: Option<Lang>,
    /// The seed of this student's choice orders (see [`crate::shuffle`]); made on first use.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Per question, keyed `stage.id`.
    #[serde(default)]
    pub questions: BTreeMap<String, Record>,
}

/// The state directory, from the environment.
pub fn state_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("QA_STATE_DIR") {
        return Some(dir);
    }
    let base = var("XDG_STATE_HOME").or_else(|| var("HOME").map(|home| home.join(".local/state")))?;
    Some(base.join("minivirt-qa"))
}

/// Progress and where it is kept.
#[derive(Debug)]
pub struct Store {
    /// The progress file.
    pub path: PathBuf,
    /// What it holds.
    pub progress: Progress,
}

impl Store {
    /// Loads `dir/progress.json`. A missing file is empty progress; a corrupt one is renamed to
    /// `progress.json.corrupt-<seconds>` and reported through `warn`.
    pub fn load(dir: &Path, warn: &mut dyn FnMut(String)) -> Store {
        let path = dir.join(FILE_NAME);
        let progress = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Progress::default(),
            Err(e) => {
                warn(format!("cannot read {}: {e}; starting with empty progress", path.display()));
                Progress::default()
            }
            Ok(text) => match serde_json::from_str::<Progress>(&text) {
                Ok(progress) => progress,
                Err(e) => {
                    let stamp =
                        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    let aside = path.with_file_name(format!("{FILE_NAME}.corrupt-{stamp}"));
                    let moved = std::fs::rename(&path, &aside);
                    let where_ = match moved {
                        Ok(()) => format!("moved it to {}", aside.display()),
                        Err(err) => format!("could not move it aside ({err})"),
                    };
                    warn(format!("{} is corrupt ({e}); {where_} and started afresh", path.display()));
                    Progress::default()
                }
            },
        };
        Store { path, progress }
    }

    /// The record of question `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.progress.questions.get(key)
    }

    /// Replaces the record of `key` and saves at once, so that an interrupted session keeps
    /// everything answered so far.
    ///
    /// # Errors
    /// [`ProgressError::Write`].
    pub fn record(&mut self, key: &str, record: Record) -> Result<(), ProgressError> {
        self.progress.questions.insert(key.to_string(), record);
        self.save()
    }

    /// The seed of the choice orders, made and saved at once the first time, so that a question
    /// shows its choices in the same order after a restart even if it was not answered.
    ///
    /// # Errors
    /// [`ProgressError::Write`].
    pub fn seed(&mut self) -> Result<u64, ProgressError> {
        if let Some(seed) = self.progress.seed {
            return Ok(seed);
        }
        let seed = crate::shuffle::new_seed();
        self.progress.seed = Some(seed);
        self.save()?;
        Ok(seed)
    }

    /// Forgets the questions whose key starts with `prefix` (all of them for "").
    ///
    /// # Errors
    /// [`ProgressError::Write`].
    pub fn reset(&mut self, prefix: &str) -> Result<usize, ProgressError> {
        let before = self.progress.questions.len();
        self.progress.questions.retain(|k, _| !k.starts_with(prefix));
        let removed = before - self.progress.questions.len();
        self.save()?;
        Ok(removed)
    }

    /// Writes the file atomically: a temporary file renamed over the old one, so a crash or
    /// Ctrl-C mid-write never leaves half a file.
    ///
    /// # Errors
    /// [`ProgressError::Write`].
    pub fn save(&mut self) -> Result<(), ProgressError> {
        self.progress.version = FORMAT_VERSION;
        let error = |source| ProgressError::Write { path: self.path.display().to_string(), source };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let text = serde_json::to_string_pretty(&self.progress).map_err(|e| error(e.into()))?;
        let temp = self.path.with_file_name(format!(".{FILE_NAME}.{}", std::process::id()));
        std::fs::write(&temp, text + "\n").map_err(error)?;
        std::fs::rename(&temp, &self.path).map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reload_and_reset_by_stage() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::load(dir.path(), &mut |w| panic!("{w}"));
        let record = Record { answered: true, correct: true, attempts: 2, hint_used: false };
        store.record("1.port", record.clone()).unwrap();
        store.record("2.slots", Record::default()).unwrap();
        let mut store = Store::load(dir.path(), &mut |w| panic!("{w}"));
        assert_eq!(store.get("1.port"), Some(&record));
        assert_eq!(store.reset("1.").unwrap(), 1);
        assert!(store.get("1.port").is_none() && store.get("2.slots").is_some());
    }

    #[test]
    fn the_seed_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::load(dir.path(), &mut |w| panic!("{w}"));
        let seed = store.seed().unwrap();
        let mut store = Store::load(dir.path(), &mut |w| panic!("{w}"));
        assert_eq!(store.progress.seed, Some(seed), "saved as soon as it is made");
        store.reset("").unwrap();
        assert_eq!(store.seed().unwrap(), seed, "a reset forgets answers, not the order");
    }

    #[test]
    fn a_corrupt_file_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{ not json").unwrap();
        let mut warnings = Vec::new();
        let store = Store::load(dir.path(), &mut |w| warnings.push(w));
        assert!(store.progress.questions.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("corrupt"), "{}", warnings[0]);
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(names.iter().any(|n| n.starts_with("progress.json.corrupt-")), "{names:?}");
    }
}
