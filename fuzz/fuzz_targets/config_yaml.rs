#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgevip_config::fuzz::config_yaml_one(data));
