#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vrrp::fuzz::accept_one(data));
