//! Reading a root-controlled file (the config file, Kopano's hash file) the way pam-u2f and
//! pam_faillock do: one set of rules, one set of messages that name the fix.
//!
//! Not a symbolic link (whoever can change the link would choose the content); opened without
//! blocking (a FIFO must not hang the host); a regular file; owned by root; not writable by
//! group or other; size-capped before and after reading; UTF-8. Every check is made on the
//! opened file (fstat), never again on the path.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// What the file is to the admin, for messages: `("config file", "config=")`.
pub struct Role {
    pub name: &'static str,
    pub option: &'static str,
    /// What a file of this kind holds, for the "too large" hint.
    pub holds: &'static str,
}

/// The checked text (wiped when dropped: it may hold secrets or hashes) and the file's status.
pub struct Trusted {
    pub text: Zeroizing<String>,
    pub meta: Metadata,
}

impl Trusted {
    /// Whether "other" may read it (a file holding secrets must not be).
    pub fn other_readable(&self) -> bool {
        self.meta.mode() & 0o004 != 0
    }
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
            meta,
        }),
        Err(e) => Err(format!(
            "{name} {shown} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.valid_up_to()
        )),
    }
}
