#![no_main]
// The entry lives in the library so that fuzz/harness/tests/fuzz_replay.rs replays
// this target's corpus through the same code on every test run.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::dns_message(data));
