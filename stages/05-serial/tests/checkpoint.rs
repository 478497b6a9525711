//! Stage 5's checkpoints (tests/checkpoints/stage05.toml) against this stage's binary.

#[test]
fn stage05_checkpoints_pass() {
    checkpoints::assert_stage_passes(5, env!("CARGO_BIN_EXE_stage05"));
}
