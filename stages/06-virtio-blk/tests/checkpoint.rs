//! Stage 6's checkpoints (tests/checkpoints/stage06.toml) against this stage's binary.

#[test]
fn stage06_checkpoints_pass() {
    checkpoints::assert_stage_passes(6, env!("CARGO_BIN_EXE_stage06"));
}
