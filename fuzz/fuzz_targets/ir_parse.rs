//! The IR text parser never panics, and for any text it accepts, print → parse → print is a
//! fixpoint.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(module) = anemllc::ir::parse_module(text) {
        let printed = anemllc::ir::print_module(&module);
        let again = anemllc::ir::parse_module(&printed).expect("printed text must parse");
        assert_eq!(anemllc::ir::print_module(&again), printed, "print(parse(print(m))) must equal print(m)");
    }
});
