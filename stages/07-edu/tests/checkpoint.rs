//! Stage 7's checkpoints (tests/checkpoints/stage07.toml) against this stage's binary.

#[test]
fn stage07_checkpoints_pass() {
    checkpoints::assert_stage_passes(7, env!("CARGO_BIN_EXE_stage07"));
}
