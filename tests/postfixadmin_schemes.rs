//! Every password scheme PostfixAdmin can store, checked with values from the real
//! generators (PostfixAdmin's pacrypt() under php-cli, Dovecot's doveadm pw), generated
//! during this test run. The module's reading is the library's `scheme::check`, the same
//! function the backend calls; tests/postfixadmin.rs runs a user per scheme through libpam.

#![allow(unused_imports)] // support/mod.rs re-exports the libpam harness, unused here.

mod support;

use pam_mailauth::backend::postfixadmin::scheme::{check, Outcome, WeakSchemes};
use support::pfa_generators::*;

/// An ASCII password, and one with what breaks naive code: UTF-8, `$`, braces, spaces, more
/// than 16 bytes (MD5-crypt's inner loop) and a colon.
const PASSWORDS: &[&str] = &["secret", "Pä$$ wörd {x}: 0123456789abcdef!"];
const WRONG: &str = "not-the-password";

fn outcome(stored: &str, password: &str, weak: WeakSchemes) -> Outcome {
    check(stored, password.as_bytes(), weak).outcome
}

/// Right password matches, wrong one does not; weak values only with weak_schemes=allow.
fn assert_checks(label: &str, stored: &str, password: &str, weak: bool) {
    let allowed = outcome(stored, password, WeakSchemes::Allow);
    assert_eq!(allowed, Outcome::Match, "{label}: {stored}");
    assert_eq!(
        outcome(stored, WRONG, WeakSchemes::Allow),
        Outcome::Mismatch,
        "{label}: {stored}"
    );
    let strict = check(stored, password.as_bytes(), WeakSchemes::Refuse);
    assert_eq!(strict.weak, weak, "{label}: weak? {stored}");
    if weak {
        assert_eq!(strict.outcome, Outcome::WeakRefused, "{label}: {stored}");
    } else {
        assert_eq!(strict.outcome, Outcome::Match, "{label}: {stored}");
    }
}

#[test]
fn every_postfixadmin_encrypt_setting_is_checked() {
    for (encrypt, flavor, weak) in PACRYPT_SETTINGS {
        for pw in PASSWORDS {
            let stored = pacrypt(encrypt, *flavor, pw, None);
            let label = format!("encrypt={encrypt} flavor={flavor:?}");
            // authlib's {crypt} is traditional DES: only 8 characters count.
            assert_checks(&label, &stored, pw, *weak);
        }
    }
}

#[test]
fn every_doveadm_scheme_is_checked() {
    for (scheme, weak) in DOVEADM_SCHEMES {
        for pw in PASSWORDS {
            let stored = doveadm(scheme, pw);
            assert!(
                doveadm_verifies(&stored, pw),
                "doveadm itself rejects {stored}"
            );
            assert_checks(&format!("doveadm {scheme}"), &stored, pw, *weak);
        }
    }
}

#[test]
fn schemes_the_module_does_not_implement_are_reported_by_name() {
    for scheme in DOVEADM_UNSUPPORTED {
        let stored = doveadm(scheme, "secret");
        let body = stored.split_once('}').unwrap().1.to_string();
        for weak in [WeakSchemes::Allow, WeakSchemes::Refuse] {
            match outcome(&stored, "secret", weak) {
                Outcome::Unreadable(why) => {
                    assert!(why.contains(scheme), "{scheme}: {why}");
                    assert!(!why.contains(&body), "the hash itself is logged: {why}");
                }
                other => panic!("{stored}: {other:?}"),
            }
        }
    }
}

/// Values written by hand or by other tools in the forms Dovecot also accepts: the module
/// agrees with `doveadm pw -t` on each.
#[test]
fn odd_spellings_are_read_as_dovecot_reads_them() {
    let sha256_hex = doveadm("SHA256.HEX", "secret");
    let ssha_b64 = doveadm("SSHA", "secret");
    let cases = [
        // A hex digest under the base64 scheme name: Dovecot guesses by length.
        sha256_hex.replace("{SHA256.HEX}", "{SHA256}"),
        // Lower-case scheme names (courier writes {md5}, {crypt}).
        ssha_b64.replace("{SSHA}", "{ssha}"),
        // Upper-case hex digits.
        sha256_hex
            .to_uppercase()
            .replace("{SHA256.HEX}", "{SHA256}"),
        // {MD5} holding a base64 MD5 (courier) rather than MD5-crypt.
        doveadm("LDAP-MD5", "secret").replace("{LDAP-MD5}", "{MD5}"),
    ];
    for stored in &cases {
        assert!(doveadm_verifies(stored, "secret"), "dovecot: {stored}");
        assert_eq!(
            outcome(stored, "secret", WeakSchemes::Allow),
            Outcome::Match,
            "{stored}"
        );
        assert!(!doveadm_verifies(stored, WRONG));
        assert_eq!(
            outcome(stored, WRONG, WeakSchemes::Allow),
            Outcome::Mismatch,
            "{stored}"
        );
    }
}

/// PostfixAdmin's mysql_encrypt concatenates '$6$' with a salt that already starts with
/// '$6$': crypt(3) reads an empty salt. PHP's crypt() writes the same value.
#[test]
fn sha512_crypt_with_an_empty_salt_is_checked() {
    let out = std::process::Command::new("php")
        .args(["-r", "echo crypt('secret', '$6$$6$Wq3kC0aE2u4dG6iK');"])
        .output()
        .unwrap();
    let stored = String::from_utf8(out.stdout).unwrap();
    assert!(stored.starts_with("$6$$"), "{stored}");
    assert_eq!(
        outcome(&stored, "secret", WeakSchemes::Refuse),
        Outcome::Match
    );
    assert_eq!(
        outcome(&stored, WRONG, WeakSchemes::Refuse),
        Outcome::Mismatch
    );
}

/// Damaged values and unknown crypt(3) methods are never a plain "wrong password".
#[test]
fn damaged_values_are_unreadable_not_refused() {
    let good = doveadm("SSHA256", "secret");
    let cases = [
        "{SSHA256}!!!not base64!!!".to_string(),
        "{SHA256}abc".to_string(),
        "{SSHA}AAAA".to_string(),
        good[..good.len() - 10].to_string() + "====",
        "$7$CU..../....abcdef$xyz".to_string(),
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7".to_string(),
        "$6$rounds=abc$salt$hash".to_string(),
        "".to_string(),
    ];
    for stored in &cases {
        match outcome(stored, "secret", WeakSchemes::Allow) {
            Outcome::Unreadable(_) => {}
            other => panic!("{stored:?}: {other:?}"),
        }
    }
}

/// Values `doveadm pw` really writes with more rounds than a login may cost are refused before
/// any round is computed, naming the parameter; at the ceiling they are still checked.
#[test]
fn rounds_above_the_ceiling_are_refused_before_they_are_computed() {
    for scheme in ["SHA512-CRYPT", "SHA256-CRYPT"] {
        let over = doveadm_rounds(scheme, 1_000_001, "secret");
        let started = std::time::Instant::now();
        match outcome(&over, "secret", WeakSchemes::Refuse) {
            Outcome::Unreadable(why) => assert!(why.contains("rounds=1000001"), "{why}"),
            other => panic!("{scheme} over the ceiling: {other:?}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_millis(50),
            "{scheme}: computed before refusing ({:?})",
            started.elapsed()
        );
        let at = doveadm_rounds(scheme, 1_000_000, "secret");
        assert_eq!(outcome(&at, "secret", WeakSchemes::Refuse), Outcome::Match);
        assert_eq!(outcome(&at, WRONG, WeakSchemes::Refuse), Outcome::Mismatch);
    }
}
