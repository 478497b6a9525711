//! Stage 8's checkpoints (tests/checkpoints/stage08.toml) against this stage's binary.

#[test]
fn stage08_checkpoints_pass() {
    checkpoints::assert_stage_passes(8, env!("CARGO_BIN_EXE_stage08"));
}
