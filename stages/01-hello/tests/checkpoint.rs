//! Stage 1's checkpoints (tests/checkpoints/stage01.toml) against this stage's binary.

#[test]
fn stage01_checkpoints_pass() {
    checkpoints::assert_stage_passes(1, env!("CARGO_BIN_EXE_stage01"));
}
