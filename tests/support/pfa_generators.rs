//! The real password generators PostfixAdmin deployments use: PostfixAdmin's own `pacrypt()`
//! (Debian's postfixadmin package, run by tests/support/pacrypt.php under php-cli) and
//! Dovecot's `doveadm pw`. Tests take their hashes from here, never from the module.

use std::io::Write;
use std::process::{Command, Stdio};

/// Where `encrypt=mysql_encrypt` runs `ENCRYPT()` (PostfixAdmin asks its own database).
#[derive(Debug, Clone)]
pub struct PhpDb {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub name: String,
}

/// What PostfixAdmin stores for `password` with `$CONF['encrypt'] = encrypt` (and
/// `authlib_default_flavor = flavor` for `authlib`).
pub fn pacrypt(encrypt: &str, flavor: Option<&str>, password: &str, db: Option<&PhpDb>) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pacrypt.php");
    let mut cmd = Command::new("php");
    cmd.arg(script).arg(encrypt);
    if let Some(f) = flavor {
        cmd.arg(f);
    }
    if let Some(db) = db {
        cmd.env("PFA_DB_HOST", &db.host)
            .env("PFA_DB_PORT", db.port.to_string())
            .env("PFA_DB_USER", &db.user)
            .env("PFA_DB_PASSWORD", &db.password)
            .env("PFA_DB_NAME", &db.name);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php (apt-get install php-cli postfixadmin)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stored = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && !stored.is_empty(),
        "pacrypt({encrypt}) failed: {}{stored}",
        String::from_utf8_lossy(&out.stderr)
    );
    stored
}

/// What `doveadm pw -s scheme` prints for `password` (without the newline).
pub fn doveadm(scheme: &str, password: &str) -> String {
    doveadm_pw(&["-s", scheme, "-p", password])
}

/// `doveadm pw -s SCHEME -r ROUNDS`: the scheme's cost parameter set by the generator.
pub fn doveadm_rounds(scheme: &str, rounds: u32, password: &str) -> String {
    doveadm_pw(&["-s", scheme, "-r", &rounds.to_string(), "-p", password])
}

/// What `doveadm pw ARGS` prints, without the newline.
fn doveadm_pw(args: &[&str]) -> String {
    let out =
        super::process::output_of(Command::new("doveadm").arg("pw").args(args), "dovecot-core");
    String::from_utf8(out).unwrap().trim_end().to_string()
}

/// Whether Dovecot itself accepts `password` for `stored` (`doveadm pw -t`), to show that the
/// module's reading of odd values is Dovecot's.
pub fn doveadm_verifies(stored: &str, password: &str) -> bool {
    let out = Command::new("doveadm")
        .args(["pw", "-t", stored, "-p", password])
        .output()
        .expect("doveadm");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("(verified)")
}

/// Every `$CONF['encrypt']` setting of PostfixAdmin 3.3 that needs no database, with the
/// authlib flavour where it applies, and whether its values are weak (plaintext or unsalted).
pub const PACRYPT_SETTINGS: &[(&str, Option<&str>, bool)] = &[
    ("md5crypt", None, false),
    ("md5", None, true),
    ("system", None, false),
    ("cleartext", None, true),
    ("sha512.b64", None, false),
    ("php_crypt", None, false),
    ("php_crypt:DES", None, false),
    ("php_crypt:MD5", None, false),
    ("php_crypt:BLOWFISH", None, false),
    ("php_crypt:BLOWFISH:5", None, false),
    ("php_crypt:SHA256", None, false),
    ("php_crypt:SHA256:2000", None, false),
    ("php_crypt:SHA512", None, false),
    ("php_crypt:SHA512:1000", None, false),
    ("php_crypt:SHA512:5000:{SHA512-CRYPT}", None, false),
    ("php_crypt:SHA256:5000:{SHA256-CRYPT}", None, false),
    ("php_crypt:BLOWFISH:5:{BLF-CRYPT}", None, false),
    ("php_crypt:MD5::{MD5-CRYPT}", None, false),
    ("authlib", Some("md5raw"), true),
    ("authlib", Some("md5"), true),
    ("authlib", Some("MD5"), true),
    ("authlib", Some("crypt"), false),
    ("authlib", Some("SHA"), true),
    ("dovecot:SHA512-CRYPT", None, false),
    ("dovecot:BLF-CRYPT", None, false),
    ("dovecot:ARGON2ID", None, false),
];

/// Every Dovecot scheme the module reads, with whether it is weak.
pub const DOVEADM_SCHEMES: &[(&str, bool)] = &[
    ("SHA512-CRYPT", false),
    ("SHA256-CRYPT", false),
    ("BLF-CRYPT", false),
    ("MD5-CRYPT", false),
    ("MD5", false),
    ("CRYPT", false),
    ("DES-CRYPT", false),
    ("ARGON2I", false),
    ("ARGON2ID", false),
    ("SSHA", false),
    ("SSHA256", false),
    ("SSHA512", false),
    ("SMD5", false),
    ("SHA", true),
    ("SHA1", true),
    ("SHA256", true),
    ("SHA512", true),
    ("PLAIN-MD5", true),
    ("LDAP-MD5", true),
    ("PLAIN", true),
    ("CLEAR", true),
    ("CLEARTEXT", true),
    // The encodings, on every family.
    ("SHA512-CRYPT.B64", false),
    ("SHA256-CRYPT.HEX", false),
    ("BLF-CRYPT.B64", false),
    ("MD5-CRYPT.HEX", false),
    ("ARGON2ID.B64", false),
    ("SSHA.HEX", false),
    ("SSHA256.HEX", false),
    ("SSHA512.B64", false),
    ("SMD5.HEX", false),
    ("SHA.HEX", true),
    ("SHA256.HEX", true),
    ("SHA512.HEX", true),
    ("SHA256.B64", true),
    ("PLAIN-MD5.B64", true),
    ("PLAIN-MD5.HEX", true),
    ("PLAIN.B64", true),
    ("CLEARTEXT.HEX", true),
];

/// Schemes `doveadm pw -l` lists that the module does not implement: reported, never refused.
pub const DOVEADM_UNSUPPORTED: &[&str] = &[
    "CRAM-MD5",
    "HMAC-MD5",
    "PLAIN-MD4",
    "PLAIN-TRUNC",
    "PBKDF2",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
];
