//! The verifier never panics on parsed IR (including ill-typed IR), and a module it accepts
//! still verifies after a print/parse round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(module) = anemllc::ir::parse_module(text) else { return };
    if anemllc::ir::verify_module(&module).is_ok() {
        let again = anemllc::ir::parse_module(&anemllc::ir::print_module(&module)).expect("printed text must parse");
        anemllc::ir::verify_module(&again).expect("a verified module stays verified after a round trip");
    }
});
