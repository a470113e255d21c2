//! A stored PostfixAdmin password value and a password (split at the first NUL): every form is
//! read without a panic, and a value that cannot be read is reported in a bounded line that
//! does not quote it. Costly parameters (Argon2 memory, bcrypt cost, SHA-crypt rounds) come
//! from the admin's own database and are skipped here, not because they could panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::backend::postfixadmin::scheme::{check, Outcome, WeakSchemes};

fuzz_target!(|data: &[u8]| {
    let (stored, password) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(stored) = std::str::from_utf8(stored) else {
        return;
    };
    if stored.contains("$argon2") || stored.contains("$2") || stored.contains("rounds=") {
        return;
    }
    for weak in [WeakSchemes::Refuse, WeakSchemes::Allow] {
        let checked = check(stored, password, weak);
        if let Outcome::Unreadable(why) = &checked.outcome {
            assert!(why.len() < 300, "{why}");
        }
        if weak == WeakSchemes::Refuse {
            assert!(!(checked.weak && checked.outcome == Outcome::Match));
        }
    }
});
