//! The checkpoint file format.
//!
//! ```toml
//! [[checkpoint]]
//! name = "boots to the marker"        # one run of the stage binary
//! args = ["--smp", "2"]
//! stdin = "echo $((6*7))\npoweroff\n"  # optional
//! timeout = 180                       # seconds
//! exit_code = 0                       # optional; default 0
//! needs_kvm = true                    # default true
//! needs_guest = true                  # build labs/guest first; default false
//! before = ["cp {guest}/disk.ext4 {work}/disk.ext4"]  # host commands, optional
//! after = ["debugfs -R 'cat /hello' {work}/disk.ext4"]  # their output is checked too
//!
//! [[checkpoint.when]]                 # optional: steps while it runs (see `during`)
//! output = 'gva=(0x[0-9a-f]+)'
//! monitor = "{work}/monitor.sock"
//! send = ["translate {1}"]
//!
//! [[checkpoint.when]]                 # a power cut: SIGKILL the binary at this output; the
//! output = '(?m)^SYNCED$'             # run must end so (exit_code is not used), and the
//! kill = true                         # `after` commands inspect what it left behind
//!
//! [[checkpoint.check]]                # graded checks on that one run's output
//! name = "marker"
//! points = 5
//! pattern = '(?m)^MINIVIRT-GUEST-READY'
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One run of a stage binary and the checks on its output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// What the run shows.
    pub name: String,
    /// Arguments to the stage binary; `{repo}` is replaced by the repository root, `{guest}` by
    /// the lab guest's folder (`{repo}/labs/guest/out`, or `MINIVIRT_GUEST_DIR`) and `{work}`
    /// by a scratch folder that the checkpoints of one run of the harness share, in order.
    #[serde(default)]
    pub args: Vec<String>,
    /// Bytes fed to standard input (then EOF); none means /dev/null.
    pub stdin: Option<String>,
    /// Seconds before the run is killed and counted as failed.
    pub timeout: u64,
    /// The exit code expected.
    #[serde(default)]
    pub exit_code: i32,
    /// Whether the run needs /dev/kvm.
    #[serde(default = "yes")]
    pub needs_kvm: bool,
    /// Whether the lab guest must be built first (or, with `MINIVIRT_GUEST_DIR`, be complete).
    #[serde(default)]
    pub needs_guest: bool,
    /// Shell commands run on the host before the binary (set-up: copy an image, say); a
    /// failing one fails the checkpoint. `{repo}`, `{guest}` and `{work}` are replaced as in `args`.
    #[serde(default)]
    pub before: Vec<String>,
    /// Shell commands run on the host after the binary exits (inspect what the guest left
    /// behind; the binary's standard output alone is in `{work}/stdout`); each one's command
    /// line and output are appended to the output the checks see.
    #[serde(default)]
    pub after: Vec<String>,
    /// Steps taken while the binary runs, each once, when its output first matches.
    #[serde(default, rename = "when")]
    pub steps: Vec<Step>,
    /// The graded checks.
    #[serde(rename = "check")]
    pub checks: Vec<Check>,
}

/// A step taken while the binary runs (see [`crate::during`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A regular expression over the output so far; its first match triggers the step.
    pub output: String,
    /// The monitor's Unix socket (`{work}`, `{repo}` and `{guest}` are replaced).
    pub monitor: Option<String>,
    /// Monitor command lines; `{1}`, `{2}`, … are the match's groups.
    #[serde(default)]
    pub send: Vec<String>,
    /// Bytes written to the binary's standard input after the monitor commands.
    pub input: Option<String>,
    /// Kill the binary with SIGKILL as soon as the output matches — a power cut, which no
    /// exit path of the VMM sees. A checkpoint with such a step passes its exit check only
    /// when this step killed it. A kill step has no monitor, `send` or `input`.
    #[serde(default)]
    pub kill: bool,
}

/// One graded pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What it checks.
    pub name: String,
    /// Points it is worth.
    pub points: u32,
    /// A regular expression that must match the run's output (stdout and stderr).
    pub pattern: String,
    /// If true, the pattern must NOT match.
    #[serde(default)]
    pub absent: bool,
}

fn yes() -> bool {
    true
}

impl Checkpoint {
    /// Whether one of its steps kills the binary (then the run must end that way).
    pub fn kills(&self) -> bool {
        self.steps.iter().any(|step| step.kill)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    checkpoint: Vec<Checkpoint>,
}

/// Reads `tests/checkpoints/stageNN.toml` under `repo`.
pub fn load_stage(repo: &Path, stage: u32) -> Result<Vec<Checkpoint>, String> {
    load_file(&stage_file(&repo.join("tests/checkpoints"), stage))
}

/// The checkpoint file of stage `stage` in the directory `dir`: `dir/stageNN.toml`.
pub fn stage_file(dir: &Path, stage: u32) -> PathBuf {
    dir.join(format!("stage{stage:02}.toml"))
}

/// Reads and checks one checkpoint file.
pub fn load_file(path: &Path) -> Result<Vec<Checkpoint>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks the text of a checkpoint file; `path` only names it in messages.
///
/// # Errors
/// A one-line message naming `path`: bad TOML, a field that does not fit the format, or a
/// check whose pattern is not a regular expression.
pub fn parse(text: &str, path: &str) -> Result<Vec<Checkpoint>, String> {
    let file: StageFile = toml::from_str(text).map_err(|e| format!("{path}: {e}"))?;
    for checkpoint in &file.checkpoint {
        for step in &checkpoint.steps {
            regex::Regex::new(&step.output)
                .map_err(|e| format!("{path}: checkpoint '{}': bad step pattern: {e}", checkpoint.name))?;
            if step.kill && (step.monitor.is_some() || !step.send.is_empty() || step.input.is_some()) {
                return Err(format!(
                    "{path}: checkpoint '{}': a kill step takes no monitor, send or input",
                    checkpoint.name
                ));
            }
        }
        for check in &checkpoint.checks {
            // `{when:N}` stands for text the run will capture; any literal checks the rest.
            let pattern = crate::during::fill_check_pattern(&check.pattern, &vec!["x".to_string(); 9]);
            regex::Regex::new(&pattern).map_err(|e| format!("{path}: check '{}': bad pattern: {e}", check.name))?;
        }
    }
    Ok(file.checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILL: &str = r#"
[[checkpoint]]
name = "power cut"
timeout = 10
[[checkpoint.when]]
output = '(?m)^SYNCED$'
kill = true
[[checkpoint.check]]
name = "c"
points = 1
pattern = 'x'
"#;

    #[test]
    fn a_kill_step_parses_and_marks_the_checkpoint() {
        let checkpoints = parse(KILL, "kill.toml").unwrap();
        assert!(checkpoints[0].steps[0].kill);
        assert!(checkpoints[0].kills());
        let plain = KILL.replace("kill = true", "input = \"x\"");
        assert!(!parse(&plain, "plain.toml").unwrap()[0].kills());
    }

    #[test]
    fn a_kill_step_that_also_types_is_refused() {
        let both = KILL.replace("kill = true", "kill = true\ninput = \"poweroff\\n\"");
        let error = parse(&both, "both.toml").unwrap_err();
        assert_eq!(error, "both.toml: checkpoint 'power cut': a kill step takes no monitor, send or input");
    }
}
