//! Lines of a Kopano hash file (`login:stored-hash[:enabled[:disabled]]`).
//! Never panics; an accepted line has a sane login and hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::backend::kopano::file::parse_line;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.split('\n') {
        if let Ok(Some(entry)) = parse_line(line) {
            assert!(!entry.login.is_empty() && !entry.login.contains(':'));
            assert!(!entry.hash.is_empty() && !entry.hash.contains(':'));
        }
    }
});
