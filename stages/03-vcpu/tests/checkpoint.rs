//! Stage 3's checkpoints (tests/checkpoints/stage03.toml) against this stage's binary.

#[test]
fn stage03_checkpoints_pass() {
    checkpoints::assert_stage_passes(3, env!("CARGO_BIN_EXE_stage03"));
}
