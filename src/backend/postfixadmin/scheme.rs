//! The password schemes PostfixAdmin stores, told apart by the stored value's own form.
//!
//! Sources of stored values (PostfixAdmin 3.3 `functions.inc.php`, `pacrypt` and helpers):
//! - `md5crypt`, `system`, `mysql_encrypt`, `php_crypt:{DES,MD5,BLOWFISH,SHA256,SHA512}[:rounds]`:
//!   crypt(3) strings without a prefix: `$1$`, `$5$`, `$6$` (`mysql_encrypt` writes `$6$$...`,
//!   an EMPTY salt, because it concatenates `$6$` with a salt that already starts with `$6$`),
//!   `$2y$`, or 13 characters of traditional DES. `php_crypt:...:PREFIX` puts `{PREFIX}` before.
//! - `dovecot:SCHEME`: whatever `doveadm pw -s SCHEME` prints, `{SCHEME}` first.
//! - `sha512.b64`: `{SHA512-CRYPT.B64}` + base64 of a `$6$` string (older rows `{MD5-CRYPT}`).
//! - `authlib` (courier): `{md5raw}` hex MD5, `{md5}` base64 MD5, `{crypt}` DES, `{SHA}`
//!   base64 SHA-1, with the flavour spelled as the admin configured it (any case).
//! - `md5`: 32 hex digits of unsalted MD5; `cleartext`: the password itself.
//!
//! The decoding rules are Dovecot's (`password-scheme.c`): scheme names are case-insensitive;
//! `.HEX`, `.B64` or `.BASE64` after the name says how the value is encoded; a fixed-length
//! digest without a suffix is hex when its length is twice the digest's, else base64; the
//! crypt schemes (`CRYPT`, `MD5-CRYPT`, `SHA512-CRYPT`, `BLF-CRYPT`...) all hand the crypt(3)
//! string to crypt(3), so its own `$id$` decides; `{MD5}` is MD5-crypt when the value starts
//! with `$1$` and base64 MD5 (courier's meaning) otherwise.
//!
//! Anything else (a scheme this module does not implement, a value that does not decode, a
//! crypt(3) form it does not know) is [`Outcome::Unreadable`], never a plain "wrong password":
//! the caller cannot tell that from a hash it would have refused for the right password.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use base64ct::{Base64ShaCrypt, Encoding};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Whether plaintext and unsalted digests may be checked (`weak_schemes=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum WeakSchemes {
    /// Refuse to check them: the login is PAM_AUTHINFO_UNAVAIL with a line naming the scheme.
    #[default]
    Refuse,
    /// Check them, and log each use as weak.
    Allow,
}

/// What checking a password against one stored value found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Match,
    Mismatch,
    /// A plaintext or unsalted value while `weak_schemes=refuse`.
    WeakRefused,
    /// The value cannot be checked; the text says why without quoting the value.
    Unreadable(String),
}

/// The outcome and the scheme that decided it, named for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub outcome: Outcome,
    /// The scheme as an admin would name it (`SHA512-CRYPT`, `{SSHA256.HEX}`, `cleartext`...).
    pub scheme: String,
    /// Plaintext or an unsalted digest: logged as weak whenever it is checked.
    pub weak: bool,
}

/// Checks `password` against a stored PostfixAdmin password value.
pub fn check(stored: &str, password: &[u8], weak: WeakSchemes) -> Checked {
    match split_prefix(stored) {
        Some((name, body)) => check_prefixed(name, body, password, weak),
        None => check_unprefixed(stored, password, weak),
    }
}

/// `{NAME}rest` with a name Dovecot or courier could have written; `None` for no prefix.
fn split_prefix(stored: &str) -> Option<(&str, &str)> {
    let rest = stored.strip_prefix('{')?;
    let end = rest.find('}')?;
    let name = &rest[..end];
    let plausible = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    plausible.then(|| (name, &rest[end + 1..]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding2 {
    /// No suffix: the scheme's own default (and, for fixed-length digests, Dovecot's guess).
    Default,
    Hex,
    Base64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    fn len(self) -> usize {
        match self {
            Algo::Md5 => 16,
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
            Algo::Sha512 => 64,
        }
    }

    /// Digest of `parts` concatenated; wiped on drop (it is as good as the password for
    /// unsalted schemes).
    fn digest(self, parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            Zeroizing::new(d.finalize().to_vec())
        }
        match self {
            Algo::Md5 => run::<Md5>(parts),
            Algo::Sha1 => run::<Sha1>(parts),
            Algo::Sha256 => run::<Sha256>(parts),
            Algo::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// How a named scheme is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The value is a crypt(3) string (or an Argon2 PHC string): its own `$id$` decides.
    Crypt,
    /// `{MD5}`: MD5-crypt if the value starts with `$1$` (Dovecot), else base64 MD5 (courier).
    Md5Either,
    /// An unsalted digest; `default_hex` for PLAIN-MD5 and courier's MD5RAW.
    Digest { algo: Algo, default_hex: bool },
    /// digest(password || salt) || salt, base64 unless a suffix says otherwise.
    Salted(Algo),
    /// The password itself.
    Plain,
}

fn kind_of(name: &str) -> Option<Kind> {
    Some(match name {
        "CRYPT" | "DES-CRYPT" | "MD5-CRYPT" | "SHA256-CRYPT" | "SHA512-CRYPT" | "BLF-CRYPT"
        | "ARGON2I" | "ARGON2ID" => Kind::Crypt,
        "MD5" => Kind::Md5Either,
        "PLAIN-MD5" | "MD5RAW" => Kind::Digest {
            algo: Algo::Md5,
            default_hex: true,
        },
        "LDAP-MD5" => Kind::Digest {
            algo: Algo::Md5,
            default_hex: false,
        },
        "SHA" | "SHA1" => Kind::Digest {
            algo: Algo::Sha1,
            default_hex: false,
        },
        "SHA256" => Kind::Digest {
            algo: Algo::Sha256,
            default_hex: false,
        },
        "SHA512" => Kind::Digest {
            algo: Algo::Sha512,
            default_hex: false,
        },
        "SMD5" => Kind::Salted(Algo::Md5),
        "SSHA" => Kind::Salted(Algo::Sha1),
        "SSHA256" => Kind::Salted(Algo::Sha256),
        "SSHA512" => Kind::Salted(Algo::Sha512),
        "PLAIN" | "CLEAR" | "CLEARTEXT" => Kind::Plain,
        _ => return None,
    })
}

fn check_prefixed(raw_name: &str, body: &str, password: &[u8], weak: WeakSchemes) -> Checked {
    let upper = raw_name.to_ascii_uppercase();
    let (name, encoding) = if let Some(n) = upper.strip_suffix(".HEX") {
        (n, Encoding2::Hex)
    } else if let Some(n) = upper
        .strip_suffix(".B64")
        .or_else(|| upper.strip_suffix(".BASE64"))
    {
        (n, Encoding2::Base64)
    } else {
        (upper.as_str(), Encoding2::Default)
    };
    let scheme = format!("{{{upper}}}");
    let Some(kind) = kind_of(name) else {
        return Checked {
            outcome: Outcome::Unreadable(format!(
                "the stored password uses scheme {scheme}, which this module cannot check"
            )),
            scheme,
            weak: false,
        };
    };
    let weak_kind = matches!(kind, Kind::Plain | Kind::Digest { .. });
    let unreadable = |why: &str| Checked {
        outcome: Outcome::Unreadable(format!("the stored {scheme} value {why}")),
        scheme: scheme.clone(),
        weak: weak_kind,
    };
    match kind {
        Kind::Crypt => {
            let crypt = match decode_text(body, encoding) {
                Some(c) => c,
                None => return unreadable("does not decode as its suffix says"),
            };
            let mut checked = check_crypt(&crypt, password);
            checked.scheme = format!("{scheme} {}", checked.scheme);
            checked
        }
        Kind::Md5Either if encoding == Encoding2::Default && body.starts_with("$1$") => {
            let mut checked = check_crypt(body, password);
            checked.scheme = format!("{scheme} {}", checked.scheme);
            checked
        }
        Kind::Md5Either | Kind::Digest { .. } => {
            let (algo, default_hex) = match kind {
                Kind::Digest { algo, default_hex } => (algo, default_hex),
                _ => (Algo::Md5, false),
            };
            if weak == WeakSchemes::Refuse {
                return weak_refused(scheme);
            }
            let encoding = match encoding {
                // Dovecot's guess for fixed-length digests without a suffix.
                Encoding2::Default if body.len() == 2 * algo.len() => Encoding2::Hex,
                Encoding2::Default if default_hex => Encoding2::Hex,
                Encoding2::Default => Encoding2::Base64,
                e => e,
            };
            let Some(expected) = decode_bytes(body, encoding) else {
                return unreadable("does not decode");
            };
            if expected.len() != algo.len() {
                return unreadable("has the wrong length for its digest");
            }
            let actual = algo.digest(&[password]);
            verdict(scheme, true, actual.as_slice().ct_eq(&expected).into())
        }
        Kind::Salted(algo) => {
            let encoding = match encoding {
                Encoding2::Default => Encoding2::Base64,
                e => e,
            };
            let Some(decoded) = decode_bytes(body, encoding) else {
                return unreadable("does not decode");
            };
            if decoded.len() <= algo.len() {
                return unreadable("is too short to hold a digest and a salt");
            }
            let (expected, salt) = decoded.split_at(algo.len());
            let actual = algo.digest(&[password, salt]);
            verdict(scheme, false, actual.as_slice().ct_eq(expected).into())
        }
        Kind::Plain => {
            if weak == WeakSchemes::Refuse {
                return weak_refused(scheme);
            }
            let Some(stored) = decode_bytes(
                body,
                match encoding {
                    Encoding2::Default => Encoding2::Default,
                    e => e,
                },
            ) else {
                return unreadable("does not decode");
            };
            verdict(scheme, true, password.ct_eq(stored.as_slice()).into())
        }
    }
}

/// A value without `{SCHEME}`: a crypt(3) string, or (weak) 32-hex MD5 or cleartext.
fn check_unprefixed(stored: &str, password: &[u8], weak: WeakSchemes) -> Checked {
    if stored.starts_with('$') || is_des(stored) {
        return check_crypt(stored, password);
    }
    if stored.is_empty() {
        return Checked {
            outcome: Outcome::Unreadable("the stored password is empty".into()),
            scheme: "empty".into(),
            weak: false,
        };
    }
    let md5_hex = stored.len() == 32 && stored.bytes().all(|b| b.is_ascii_hexdigit());
    let scheme = if md5_hex {
        "md5 (unsalted, PostfixAdmin encrypt=md5)"
    } else {
        "cleartext (no {SCHEME} and no crypt(3) form)"
    };
    if weak == WeakSchemes::Refuse {
        return weak_refused(scheme.into());
    }
    if md5_hex {
        let expected = decode_bytes(stored, Encoding2::Hex).unwrap_or_default();
        let actual = Algo::Md5.digest(&[password]);
        // A 32-hex-digit cleartext password is not tried as cleartext: one reading per form.
        verdict(
            scheme.into(),
            true,
            actual.as_slice().ct_eq(&expected).into(),
        )
    } else {
        verdict(
            scheme.into(),
            true,
            password.ct_eq(stored.as_bytes()).into(),
        )
    }
}

fn weak_refused(scheme: String) -> Checked {
    Checked {
        outcome: Outcome::WeakRefused,
        scheme,
        weak: true,
    }
}

fn verdict(scheme: String, weak: bool, matched: bool) -> Checked {
    Checked {
        outcome: if matched {
            Outcome::Match
        } else {
            Outcome::Mismatch
        },
        scheme,
        weak,
    }
}

/// Base64 as Dovecot and PHP write it; padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_bytes(body: &str, encoding: Encoding2) -> Option<Zeroizing<Vec<u8>>> {
    match encoding {
        Encoding2::Default => Some(Zeroizing::new(body.as_bytes().to_vec())),
        Encoding2::Base64 => B64.decode(body.trim_end()).ok().map(Zeroizing::new),
        Encoding2::Hex => decode_hex(body).map(Zeroizing::new),
    }
}

/// A crypt(3) string held in a `.B64`/`.HEX` encoding, or as is.
fn decode_text(body: &str, encoding: Encoding2) -> Option<String> {
    let bytes = decode_bytes(body, encoding)?;
    String::from_utf8(bytes.to_vec()).ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Traditional DES crypt: 2 characters of salt and 11 of hash, all from `./0-9A-Za-z`.
fn is_des(s: &str) -> bool {
    s.len() == 13
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

/// A crypt(3) string (or PHC Argon2 string), decided by its `$id$` as crypt(3) itself does.
fn check_crypt(crypt: &str, password: &[u8]) -> Checked {
    let named = |scheme: &str, outcome: Outcome| Checked {
        outcome,
        scheme: scheme.into(),
        weak: false,
    };
    let unreadable = |scheme: &str, why: &str| {
        named(
            scheme,
            Outcome::Unreadable(format!("the stored {scheme} value {why}")),
        )
    };
    let from_bool = |scheme: &str, matched: bool| {
        named(
            scheme,
            if matched {
                Outcome::Match
            } else {
                Outcome::Mismatch
            },
        )
    };
    for (prefix, scheme, sha512) in [
        ("$6$", "SHA512-CRYPT", true),
        ("$5$", "SHA256-CRYPT", false),
    ] {
        let Some(rest) = crypt.strip_prefix(prefix) else {
            continue;
        };
        return match sha_crypt_check(rest, password, sha512) {
            Ok(m) => from_bool(scheme, m),
            Err(why) => unreadable(scheme, &why),
        };
    }
    if crypt.starts_with("$1$") {
        #[allow(deprecated)] // pwhash marks MD5-crypt as not for NEW hashes; we only check.
        return match pwhash::md5_crypt::hash_with(crypt, password) {
            Ok(computed) => from_bool(
                "MD5-CRYPT",
                computed.as_bytes().ct_eq(crypt.as_bytes()).into(),
            ),
            Err(_) => unreadable("MD5-CRYPT", "is malformed"),
        };
    }
    if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| crypt.starts_with(p))
    {
        if let Some(cost) = crypt.get(4..6).and_then(|c| c.parse::<u32>().ok()) {
            if cost > cost_ceiling::BCRYPT_COST {
                return unreadable("BLF-CRYPT", &cost_ceiling::exceeded("cost", cost.into()));
            }
        }
        // bcrypt's own comparison is constant-time; it reads at most 72 password bytes, as
        // every bcrypt does.
        return match bcrypt::verify(password, crypt) {
            Ok(m) => from_bool("BLF-CRYPT", m),
            Err(_) => unreadable("BLF-CRYPT", "is malformed"),
        };
    }
    if crypt.starts_with("$argon2") {
        use argon2::{Argon2, PasswordHash, PasswordVerifier};
        let scheme = if crypt.starts_with("$argon2id$") {
            "ARGON2ID"
        } else if crypt.starts_with("$argon2i$") {
            "ARGON2I"
        } else {
            "ARGON2D"
        };
        let Ok(parsed) = PasswordHash::new(crypt) else {
            return unreadable(scheme, "is malformed");
        };
        let param = |name: &str| parsed.params.get_decimal(name).map(u64::from);
        for (name, ceiling) in [
            ("m", cost_ceiling::ARGON2_MEMORY_KIB),
            ("t", cost_ceiling::ARGON2_PASSES),
            ("p", cost_ceiling::ARGON2_LANES),
        ] {
            if let Some(value) = param(name).filter(|&v| v > ceiling) {
                return unreadable(scheme, &cost_ceiling::exceeded(name, value));
            }
        }
        // The algorithm, version and cost come from the stored string itself.
        return match Argon2::default().verify_password(password, &parsed) {
            Ok(()) => from_bool(scheme, true),
            Err(argon2::password_hash::Error::PasswordInvalid) => from_bool(scheme, false),
            Err(_) => unreadable(scheme, "has parameters this module cannot use"),
        };
    }
    if is_des(crypt) {
        #[allow(deprecated)]
        return match pwhash::unix_crypt::hash_with(&crypt[..2], password) {
            Ok(computed) => from_bool(
                "DES-CRYPT",
                computed.as_bytes().ct_eq(crypt.as_bytes()).into(),
            ),
            Err(_) => unreadable("DES-CRYPT", "is malformed"),
        };
    }
    let id = crypt
        .strip_prefix('$')
        .and_then(|r| r.split('$').next())
        .filter(|id| id.len() <= 8 && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    match id {
        Some(id) => unreadable(
            &format!("crypt(3) ${id}$"),
            "is a crypt(3) method this module cannot check",
        ),
        None => unreadable("crypt(3)", "has no crypt(3) form this module knows"),
    }
}

/// What a stored hash may ask of the login: a row that asks for more (hours of bcrypt, GiBs of
/// Argon2 memory) is an outage of the host, not a password check, and is never computed. The
/// ceilings sit well above every generator's default (doveadm pw, PHP, PostfixAdmin: bcrypt
/// cost 10, SHA-crypt 5000 rounds, Argon2 32-64 MiB with 3-4 passes).
mod cost_ceiling {
    pub const BCRYPT_COST: u32 = 15;
    pub const SHA_CRYPT_ROUNDS: u64 = 1_000_000;
    pub const ARGON2_MEMORY_KIB: u64 = 256 * 1024;
    pub const ARGON2_PASSES: u64 = 16;
    pub const ARGON2_LANES: u64 = 16;

    pub fn exceeded(parameter: &str, value: u64) -> String {
        format!(
            "asks for {parameter}={value}, more than this module computes in a login (limits \
             in pam_mailauth(8), weak_schemes=); have the password stored again"
        )
    }
}

/// SHA-crypt after the `$5$`/`$6$`: `[rounds=N$]salt$hash`, read as glibc and PHP read it
/// (rounds clamped to 1000..=999999999, salt up to the next `$` and at most 16 characters,
/// any byte but `$`, possibly empty as `mysql_encrypt` writes it). `Err` says why it cannot be
/// checked: malformed, or more rounds than the ceiling (refused before any is computed).
fn sha_crypt_check(rest: &str, password: &[u8], sha512: bool) -> Result<bool, String> {
    let malformed = || "is malformed".to_string();
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (n, after) = r.split_once('$').ok_or_else(malformed)?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            let n: u64 = n.parse().map_err(|_| malformed())?;
            if n > cost_ceiling::SHA_CRYPT_ROUNDS {
                return Err(cost_ceiling::exceeded("rounds", n));
            }
            let clamped = n.clamp(
                sha_crypt::Params::ROUNDS_MIN as u64,
                sha_crypt::Params::ROUNDS_MAX as u64,
            ) as u32;
            (clamped, after)
        }
        None => (sha_crypt::Params::RECOMMENDED_ROUNDS, rest),
    };
    let (salt, hash) = rest.split_once('$').ok_or_else(malformed)?;
    let salt = &salt.as_bytes()[..salt.len().min(16)];
    let params = sha_crypt::Params::new(rounds).map_err(|_| malformed())?;
    // The crypt(3) output order of the final digest (Drepper's specification, step 22).
    const ORDER_256: [usize; 32] = [
        20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8,
        28, 18, 29, 19, 9, 30, 31,
    ];
    const ORDER_512: [usize; 64] = [
        42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29,
        8, 50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15,
        16, 58, 37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
    ];
    let ordered: Zeroizing<Vec<u8>> = if sha512 {
        let raw = Zeroizing::new(sha_crypt::sha512_crypt(password, salt, params));
        Zeroizing::new(ORDER_512.iter().map(|&i| raw[i]).collect())
    } else {
        let raw = Zeroizing::new(sha_crypt::sha256_crypt(password, salt, params));
        Zeroizing::new(ORDER_256.iter().map(|&i| raw[i]).collect())
    };
    let computed = Zeroizing::new(Base64ShaCrypt::encode_string(&ordered));
    Ok(computed.as_bytes().ct_eq(hash.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(stored: &str, pw: &str, weak: WeakSchemes) -> Outcome {
        check(stored, pw.as_bytes(), weak).outcome
    }

    // Vectors printed by the real generators on this machine (see tests/postfixadmin.rs for
    // the full set generated at test time); a few here keep the unit tests self-contained.
    #[test]
    fn crypt_forms() {
        use WeakSchemes::Refuse as R;
        // glibc / PHP crypt('secret', '$6$saltsalt').
        let s6 = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert_eq!(outcome(s6, "secret", R), Outcome::Match);
        // mysql_encrypt's empty salt: PHP crypt('secret', '$6$$6$abc').
        let empty = "$6$$2M9DchxW4txWyTYoZrH9D3VvAAQxBpEezYsLY6Cao.jwzEXpyL9xwip9hiUZX7GqTqe/E/z6iKvZqXUuqniQH.";
        assert_eq!(outcome(empty, "secret", R), Outcome::Match);
        assert_eq!(outcome(empty, "secreT", R), Outcome::Mismatch);
        assert_eq!(outcome(s6, "secret", R), Outcome::Match);
        assert_eq!(outcome(s6, "Secret", R), Outcome::Mismatch);
    }

    /// A row asking for more work than a login may cost is refused before any is done (each
    /// of these took minutes or GiBs before the ceiling), and says which parameter to fix.
    #[test]
    fn costs_above_the_ceilings_are_unreadable_at_once() {
        let started = std::time::Instant::now();
        for (stored, parameter) in [
            (
                "$2y$31$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                "cost=31",
            ),
            (
                "{BLF-CRYPT}$2b$16$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
                "cost=16",
            ),
            ("$6$rounds=999999999$salt$hash", "rounds=999999999"),
            (
                "{SHA256-CRYPT}$5$rounds=1000001$salt$hash",
                "rounds=1000001",
            ),
            (
                "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "m=4194304",
            ),
            (
                "$argon2i$v=19$m=65536,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "t=1000",
            ),
            (
                "$argon2id$v=19$m=65536,t=3,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "p=255",
            ),
        ] {
            match check(stored, b"secret", WeakSchemes::Refuse).outcome {
                Outcome::Unreadable(why) => assert!(why.contains(parameter), "{stored}: {why}"),
                other => panic!("{stored}: {other:?}"),
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // At the ceilings' side of the defaults: computed as before.
        let s6 = "$6$rounds=5000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert_eq!(outcome(s6, "secret", WeakSchemes::Refuse), Outcome::Match);
    }

    #[test]
    fn unknown_schemes_are_named_not_refused() {
        let c = check("{CRAM-MD5}abcd", b"x", WeakSchemes::Allow);
        match c.outcome {
            Outcome::Unreadable(why) => {
                assert!(why.contains("CRAM-MD5"), "{why}");
                assert!(!why.contains("abcd"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check("$y$j9T$abc$def", b"x", WeakSchemes::Allow).outcome,
            Outcome::Unreadable(_)
        ));
    }

    #[test]
    fn weak_forms_need_the_option() {
        for stored in [
            "secret",
            "5ebe2294ecd0e0f08eab7690d2a6ee69",
            "{PLAIN}secret",
        ] {
            assert_eq!(
                outcome(stored, "secret", WeakSchemes::Refuse),
                Outcome::WeakRefused
            );
            assert_eq!(
                outcome(stored, "secret", WeakSchemes::Allow),
                Outcome::Match
            );
            assert_eq!(
                outcome(stored, "Secret", WeakSchemes::Allow),
                Outcome::Mismatch
            );
        }
    }
}
