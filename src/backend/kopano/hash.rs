//! Kopano's salted MD5 (DB user plugin, `DBUserPlugin::authenticateUser`).
//!
//! The stored value is 8 lowercase hex characters of salt followed by the 32 lowercase hex
//! characters of MD5(salt-as-ASCII || password-bytes): 40 characters, no prefix, no separator.
//! Kopano takes the first 8 characters as the salt, recomputes, and compares the whole string.
//! There is no fallback: an unsalted 32-character MD5, a plaintext password, or uppercase hex
//! never matches.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Length of a stored value: 8 characters of salt + 32 of digest.
pub const STORED_LEN: usize = 40;
/// Length of the salt prefix.
pub const SALT_LEN: usize = 8;

fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The value Kopano stores for `password` with this 8-character salt (lowercase hex).
pub fn stored_value(salt: &[u8], password: &[u8]) -> Zeroizing<Vec<u8>> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut md5 = Md5::new();
    md5.update(salt);
    md5.update(password);
    let digest = md5.finalize();
    let mut out = Zeroizing::new(Vec::with_capacity(salt.len() + 2 * digest.len()));
    out.extend_from_slice(salt);
    for byte in digest.iter() {
        out.push(HEX[(byte >> 4) as usize]);
        out.push(HEX[(byte & 0x0f) as usize]);
    }
    out
}

/// Whether `password` matches the stored value, compared in constant time. Anything that is
/// not exactly 40 lowercase hex characters never matches (legacy unsalted MD5, plaintext,
/// uppercase hex, surrounding whitespace).
pub fn check(stored: &[u8], password: &[u8]) -> bool {
    if stored.len() != STORED_LEN || !is_lower_hex(stored) {
        return false;
    }
    let expected = stored_value(&stored[..SALT_LEN], password);
    expected.as_slice().ct_eq(stored).into()
}

/// Whether a stored value has the only shape that can ever match (for admin diagnostics).
pub fn is_well_formed(stored: &[u8]) -> bool {
    stored.len() == STORED_LEN && is_lower_hex(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &[u8] = b"0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f";

    #[test]
    fn protocols_md_worked_example() {
        assert_eq!(stored_value(b"0a1b2c3d", b"secret").as_slice(), EXAMPLE);
        assert!(check(EXAMPLE, b"secret"));
    }

    #[test]
    fn wrong_passwords_and_other_shapes_never_match() {
        assert!(!check(EXAMPLE, b"Secret"));
        assert!(!check(EXAMPLE, b"secret "));
        assert!(!check(EXAMPLE, b""));
        // Uppercase hex of the right value.
        assert!(!check(&EXAMPLE.to_ascii_uppercase(), b"secret"));
        // Unsalted MD5("secret") and the plaintext itself.
        assert!(!check(b"5ebe2294ecd0e0f08eab7690d2a6ee69", b"secret"));
        assert!(!check(b"secret", b"secret"));
        // Trailing newline or space, truncated, empty.
        let mut long = EXAMPLE.to_vec();
        long.push(b'\n');
        assert!(!check(&long, b"secret"));
        assert!(!check(&EXAMPLE[..39], b"secret"));
        assert!(!check(b"", b""));
    }

    #[test]
    fn utf8_passwords_are_hashed_as_bytes() {
        let stored = stored_value(b"deadbeef", "pässwörd🔑".as_bytes());
        assert!(check(&stored, "pässwörd🔑".as_bytes()));
        assert!(!check(&stored, "passwort".as_bytes()));
    }
}
