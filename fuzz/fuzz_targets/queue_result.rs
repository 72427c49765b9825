#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ai_employee::fuzz::queue_result(data));
