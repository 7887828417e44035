#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgevip_k8s::fuzz::vippool_one(data));
