//! Reading a root-controlled file (the config file, Kopano's hash file) the way pam-u2f and
//! pam_faillock do: one set of rules, one set of messages that name the fix.
//!
//! Not a symbolic link (whoever can change the link would choose the content); opened without
//! blocking (a FIFO must not hang the host); a regular file; owned by root; not writable by
//! group or other; size-capped before and after reading; UTF-8. Every check is made on the
//! opened file (fstat), never again on the path.
//!
//! `reuse_or_read` spares a long-lived host the re-read of an unchanged config file on every
//! login, without ever trusting a file that changed since it passed these checks.

use crate::lock::lock_briefly;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use zeroize::Zeroizing;

/// What the file is to the admin, for messages: `("config file", "config=")`.
pub struct Role {
    pub name: &'static str,
    pub option: &'static str,
    /// What a file of this kind holds, for the "too large" hint.
    pub holds: &'static str,
}

/// The checked text (wiped when dropped: it may hold secrets or hashes).
#[derive(Clone)]
pub struct Trusted {
    pub text: Zeroizing<String>,
    /// Whether "other" may read the file (one holding secrets must not be).
    pub other_readable: bool,
}

/// Reads `path` under the rules above; the error text tells the admin what to run.
pub fn read(path: &Path, role: &Role, cap: u64) -> Result<Trusted, String> {
    let shown = path.display();
    let Role {
        name,
        option,
        holds,
    } = role;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                let fix = match std::fs::canonicalize(path) {
                    Ok(real) => format!("{option}{}", real.display()),
                    Err(_) => "the real file".into(),
                };
                format!(
                    "{name} {shown} is a symbolic link (refused: whoever can change the link \
                     chooses the content); point {option} at {fix}"
                )
            } else {
                format!("{name} {shown} cannot be opened ({e}); check the path given in {option}")
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{name} {shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "{name} {shown} is not a regular file; point {option} at a regular file"
        ));
    }
    if meta.uid() != 0 {
        return Err(format!(
            "{name} {shown} must be owned by root (chown root {shown})"
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{name} {shown} is writable by group or other (chmod go-w {shown})"
        ));
    }
    let too_big = || {
        format!(
            "{name} {shown} is larger than {cap} bytes; a {name} holds {holds}: check that \
             {option} names the right file"
        )
    };
    if meta.len() > cap {
        return Err(too_big());
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name} {shown} cannot be read: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    match std::str::from_utf8(&bytes) {
        Ok(t) => Ok(Trusted {
            text: Zeroizing::new(t.to_string()),
            other_readable: meta.mode() & 0o004 != 0,
        }),
        Err(e) => Err(format!(
            "{name} {shown} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.valid_up_to()
        )),
    }
}

/// What identifies one version of a config file: any write, chmod, chown or replacement
/// changes at least one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    mode: u32,
    uid: u32,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Fingerprint {
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mode: meta.mode(),
            uid: meta.uid(),
        }
    }
}

/// What was read from config files in this process, by path.
type ConfigReads = HashMap<std::path::PathBuf, (Fingerprint, Box<dyn std::any::Any + Send>)>;
static CONFIG_READS: Lazy<Mutex<ConfigReads>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// A file changed this recently may change again within the same timestamp tick without its
/// fingerprint changing (git's "racily clean" problem): such a read is not remembered.
const CONFIG_SETTLE: Duration = Duration::from_secs(3);

/// Reads a trusted file through `read` (which opens it and makes every check), or returns
/// what `read` returned for it before if `lstat` shows the very same file: same device,
/// inode, size, times, mode and owner. The checks are a function of exactly that metadata,
/// so they hold as they did; an edit, chmod, chown or a replacement (a symbolic link
/// included) changes it and makes the next call read afresh. Failures are never remembered.
pub fn reuse_or_read<T, E>(
    path: &std::path::Path,
    read: impl FnOnce(&std::path::Path) -> Result<T, E>,
) -> Result<T, E>
where
    T: Clone + Send + 'static,
{
    let before = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| Fingerprint::of(&m));
    if let Some(fingerprint) = &before {
        if let Some(reads) = lock_briefly(&CONFIG_READS) {
            if let Some((seen, value)) = reads.get(path) {
                if seen == fingerprint {
                    if let Some(value) = value.downcast_ref::<T>() {
                        return Ok(value.clone());
                    }
                }
            }
        }
    }
    let value = read(path)?;
    let after = std::fs::symlink_metadata(path).ok();
    if let (Some(before), Some(after)) = (before, after) {
        let settled = |t: std::io::Result<std::time::SystemTime>| {
            t.ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= CONFIG_SETTLE)
        };
        let ctime = {
            use std::os::unix::fs::MetadataExt;
            Ok(std::time::UNIX_EPOCH
                + Duration::new(after.ctime().max(0) as u64, after.ctime_nsec() as u32))
        };
        let unchanged = before == Fingerprint::of(&after);
        if let Some(mut reads) = lock_briefly(&CONFIG_READS) {
            if unchanged && settled(after.modified()) && settled(ctime) {
                if reads.len() >= 64 && !reads.contains_key(path) {
                    reads.clear();
                }
                reads.insert(path.to_path_buf(), (before, Box::new(value.clone())));
            } else {
                reads.remove(path);
            }
        }
    }
    Ok(value)
}
