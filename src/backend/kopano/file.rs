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
//! root, not writable by group or other, at most `FILE_MAX_BYTES`.

use super::Record;
use super::ACTIVE_USER;
use crate::secret::Secret;
use crate::verdict::Verdict;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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

/// Reads the hash file with the same checks as the config file.
fn read(path: &Path) -> Result<Zeroizing<String>, Verdict> {
    let shown = path.display();
    let bad = |why: String| Verdict::Misconfigured(format!("hash file {shown}: {why}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                bad("is a symbolic link; point file= at the real file".into())
            } else {
                bad(format!("cannot be opened: {e}"))
            }
        })?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.uid() != 0 {
        return Err(bad(format!("must be owned by root (chown root {shown})")));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "is writable by group or other (chmod go-w {shown})"
        )));
    }
    if meta.len() > FILE_MAX_BYTES {
        return Err(bad(format!("is larger than {FILE_MAX_BYTES} bytes")));
    }
    let mut text = Zeroizing::new(String::new());
    file.take(FILE_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("is not readable UTF-8 text: {e}")))?;
    Ok(text)
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
        let e = parse_line("john:0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f")
            .unwrap()
            .unwrap();
        assert_eq!(e.login, "john");
        assert_eq!(e.hash, "0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f");
        assert!(e.enabled.is_empty() && e.disabled.is_empty());
        let e = parse_line("j@x.org:h:IMAP|pop3:mobile\r").unwrap().unwrap();
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
