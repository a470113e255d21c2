//! A tally file of the failure throttle (`tally_dir=`): the directory may be group-writable
//! (for Apache), so its files are read as hostile. Never panics; what it reads renders back
//! to text that reads the same, within the size bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::throttle::Tally;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let tally = Tally::parse(text);
        assert!(tally.failures.len() <= 100 && tally.slots.len() <= 100);
        let again = Tally::parse(&tally.render());
        assert_eq!(again.failures, tally.failures);
        assert_eq!(again.slots, tally.slots);
    }
});
