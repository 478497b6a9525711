//! Stage 4's checkpoints (tests/checkpoints/stage04.toml) against this stage's binary.

#[test]
fn stage04_checkpoints_pass() {
    checkpoints::assert_stage_passes(4, env!("CARGO_BIN_EXE_stage04"));
}
