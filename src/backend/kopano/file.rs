//! `file=PATH`: an exported copy of the Kopano DB plugin's hashes, for relays that cannot
//! reach the database.
//!
//! One user per line: `login:stored-hash`, where stored-hash is exactly the value the DB
//! plugin stores (see `hash`). Two optional fields carry the user's feature lists the way
//! the database holds them: `login:stored-hash:enabled-features:disabled-features`, each a
//! list separated by `,` or `|` (e.g. `john:0a1b...:imap,pop3:`). Blank lines and lines whose
//! first non-blank character is `#` are comments. Logins are matched as Kopano matches them
//! (ASCII letters case-insensitively); the first matching line wins. Every listed user is an
//! active user. A login cannot contain `:`.
//!
//! The file is checked like the config file: no symbolic link, a regular file, owned by
//! root, not writable by group or other, at most `FILE_MAX_BYTES`; and, since it holds
//! hashes, not readable by other.

use super::Record;
use super::ACTIVE_USER;
use crate::secret::Secret;
use crate::trusted_file::{self, Role};
use crate::verdict::Verdict;
use std::path::Path;
use zeroize::Zeroizing;

/// Largest hash file read: about a million users.
pub const FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

const FEATURES: [&str; 5] = ["imap", "pop3", "mobile", "outlook", "webapp"];

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub login: &'a str,
    pub hash: &'a str,
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
}

fn feature_field(field: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for f in field
        .split([',', '|'])
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        let f = f.to_ascii_lowercase();
        if !FEATURES.contains(&f.as_str()) {
            return Err(format!(
                "unknown Kopano feature '{f}' (known: {})",
                FEATURES.join(", ")
            ));
        }
        out.push(f);
    }
    Ok(out)
}

/// Parses one line: `Ok(None)` for blank and comment lines, `Err` (without echoing the hash)
/// for a line that is neither a comment nor `login:stored-hash[:enabled[:disabled]]`.
pub fn parse_line(line: &str) -> Result<Option<Entry<'_>>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split(':');
    let login = fields.next().unwrap_or("");
    let hash = fields
        .next()
        .ok_or_else(|| "expected login:stored-hash".to_string())?;
    let enabled = feature_field(fields.next().unwrap_or(""))?;
    let disabled = feature_field(fields.next().unwrap_or(""))?;
    if fields.next().is_some() {
        return Err(
            "too many ':'-separated fields (login:stored-hash[:enabled[:disabled]])".into(),
        );
    }
    if login.is_empty() || login.trim() != login {
        return Err("the login is empty or has surrounding blanks".into());
    }
    if hash.is_empty() {
        return Err("the stored hash is empty".into());
    }
    Ok(Some(Entry {
        login,
        hash,
        enabled,
        disabled,
    }))
}

/// Reads the hash file under the same rules as the config file (`trusted_file`).
fn read(path: &Path) -> Result<Zeroizing<String>, Verdict> {
    const ROLE: Role = Role {
        name: "hash file",
        option: "file=",
        holds: "one login:hash line per user",
    };
    let file = trusted_file::read(path, &ROLE, FILE_MAX_BYTES).map_err(Verdict::Misconfigured)?;
    if file.other_readable {
        // Salted MD5 is cheap to crack: the hashes are as secret as the passwords.
        let shown = path.display();
        return Err(Verdict::Misconfigured(format!(
            "hash file {shown} is readable by everyone; its salted MD5 hashes are cheap to \
             crack (chmod o-r {shown}; group-readable is fine for the host's group)"
        )));
    }
    Ok(file.text)
}

/// The record for `user`, `None` if no line names them. A malformed line anywhere makes the
/// whole file a configuration error, so a broken export is noticed at once, not only by the
/// users listed after the damage.
pub fn lookup(path: &Path, user: &str) -> Result<Option<Record>, Verdict> {
    let text = read(path)?;
    let mut found = None;
    for (number, line) in text.lines().enumerate() {
        let entry = parse_line(line).map_err(|why| {
            Verdict::Misconfigured(format!(
                "hash file {}: line {}: {why}",
                path.display(),
                number + 1
            ))
        })?;
        let Some(entry) = entry else { continue };
        if found.is_none() && entry.login.eq_ignore_ascii_case(user) {
            found = Some(Record {
                object_class: ACTIVE_USER,
                hash: Some(Secret::new(entry.hash)),
                enabled: entry.enabled,
                disabled: entry.disabled,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(parse_line("# comment"), Ok(None));
        assert_eq!(parse_line("   "), Ok(None));
        assert_eq!(parse_line("  # indented comment"), Ok(None));
        let Ok(Some(e)) = parse_line("john:0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f") else {
            panic!("a plain line must parse")
        };
        assert_eq!(e.login, "john");
        assert_eq!(e.hash, "0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f");
        assert!(e.enabled.is_empty() && e.disabled.is_empty());
        let Ok(Some(e)) = parse_line("j@x.org:h:IMAP|pop3:mobile\r") else {
            panic!("a line with feature fields must parse")
        };
        assert_eq!(e.enabled, vec!["imap", "pop3"]);
        assert_eq!(e.disabled, vec!["mobile"]);
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            "john",
            ":hash",
            "john:",
            " john:hash",
            "john:h:ftp:",
            "a:b:c:d:e",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        // The error never echoes the hash.
        let e = parse_line("john:secrethash:x:y:z").unwrap_err();
        assert!(!e.contains("secrethash"), "{e}");
    }
}
