//! The one reader of MailStore's and Axigen's JavaScript-style objects (src/jsobject.rs).
//! Never panics; whatever it accepts has no key twice, and reading it again gives the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::jsobject::parse_object;

fuzz_target!(|data: &[u8]| {
    if let Some(object) = parse_object(data) {
        assert!(std::str::from_utf8(data).is_ok());
        assert_eq!(parse_object(data), Some(object));
    }
});
