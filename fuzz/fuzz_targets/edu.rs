#![no_main]
//! libFuzzer entry point of `fuzz_targets::edu`; the body and its invariants are there.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::edu(data));
