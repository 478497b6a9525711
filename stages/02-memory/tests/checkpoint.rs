//! Stage 2's checkpoints (tests/checkpoints/stage02.toml) against this stage's binary.

#[test]
fn stage02_checkpoints_pass() {
    checkpoints::assert_stage_passes(2, env!("CARGO_BIN_EXE_stage02"));
}
