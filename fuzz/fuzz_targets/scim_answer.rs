//! A SCIM (PostfixAdmin) user resource as the server answers it. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::backend::scim::parse_active;

fuzz_target!(|data: &[u8]| {
    let _ = parse_active(data);
});
