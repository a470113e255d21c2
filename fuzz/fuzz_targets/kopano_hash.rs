//! Kopano's salted MD5 check against stored values from a database or hash file.
//! Never panics; only a well-formed stored value can match; what `stored_value` makes for a
//! password matches that password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::backend::kopano::hash::{check, is_well_formed, stored_value, SALT_LEN};

fuzz_target!(|data: &[u8]| {
    // stored value, then a NUL, then the password.
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (stored, password) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    if check(stored, password) {
        assert!(is_well_formed(stored));
    }
    // Round trip with a salt made of the first bytes, as lowercase hex digits.
    let salt: Vec<u8> = (0..SALT_LEN)
        .map(|i| b"0123456789abcdef"[(stored.get(i).copied().unwrap_or(0) & 15) as usize])
        .collect();
    let made = stored_value(&salt, password);
    assert!(is_well_formed(&made));
    assert!(check(&made, password));
    let mut other = password.to_vec();
    other.push(b'x');
    assert!(!check(&made, &other));
});
