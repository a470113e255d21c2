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

/// A path as `lstat` and `stat` see it: the entry itself and, if it is a symbolic link (a CA
/// file may be one), the file it ends at. Replacing either changes it.
#[derive(PartialEq, Eq)]
struct Seen {
    entry: Fingerprint,
    target: Option<Fingerprint>,
    /// The later of the two files' modification and change times.
    latest: Option<std::time::SystemTime>,
}

impl Seen {
    fn of(path: &Path) -> Option<Seen> {
        let entry = std::fs::symlink_metadata(path).ok()?;
        let target = if entry.file_type().is_symlink() {
            std::fs::metadata(path).ok()
        } else {
            None
        };
        let times = |m: &std::fs::Metadata| {
            use std::os::unix::fs::MetadataExt;
            let ctime = std::time::UNIX_EPOCH
                + Duration::new(m.ctime().max(0) as u64, m.ctime_nsec() as u32);
            m.modified().ok().map_or(ctime, |t| t.max(ctime))
        };
        let latest = Some(times(&entry)).max(target.as_ref().map(times));
        Some(Seen {
            entry: Fingerprint::of(&entry),
            target: target.as_ref().map(Fingerprint::of),
            latest,
        })
    }

    /// Unchanged for long enough that a change within the same timestamp tick is ruled out.
    fn settled(&self) -> bool {
        self.latest
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= CONFIG_SETTLE)
    }
}

/// What was read from config files in this process, by path.
type ConfigReads = HashMap<std::path::PathBuf, (Seen, Box<dyn std::any::Any + Send>)>;
static CONFIG_READS: Lazy<Mutex<ConfigReads>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// A file changed this recently may change again within the same timestamp tick without its
/// fingerprint changing (git's "racily clean" problem): such a read is not remembered.
const CONFIG_SETTLE: Duration = Duration::from_secs(3);

/// Reads a trusted file through `read` (which opens it and makes every check), or returns
/// what `read` returned for it before if `lstat` (and, for a symbolic link, `stat`) shows the
/// very same file: same device, inode, size, times, mode and owner. The checks are a function
/// of exactly that metadata, so they hold as they did; an edit, chmod, chown or a replacement
/// (of a link or of what it points at) changes it and makes the next call read afresh.
/// Failures are never remembered.
pub fn reuse_or_read<T, E>(
    path: &std::path::Path,
    read: impl FnOnce(&std::path::Path) -> Result<T, E>,
) -> Result<T, E>
where
    T: Clone + Send + 'static,
{
    let before = Seen::of(path);
    if let Some(seen_now) = &before {
        if let Some(reads) = lock_briefly(&CONFIG_READS) {
            if let Some((seen, value)) = reads.get(path) {
                if seen == seen_now {
                    if let Some(value) = value.downcast_ref::<T>() {
                        return Ok(value.clone());
                    }
                }
            }
        }
    }
    let value = read(path)?;
    if let (Some(before), Some(after)) = (before, Seen::of(path)) {
        if let Some(mut reads) = lock_briefly(&CONFIG_READS) {
            if before == after && after.settled() {
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

/// Largest CA file read: Debian's whole bundle (ca-certificates.crt) is about 220 KB.
pub const CAFILE_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Reads `cafile=`: a CA bundle decides whom the module trusts with passwords, so whoever can
/// change it can impersonate every backend.
///
/// Unlike the config file, a CA file may be a symbolic link: update-ca-certificates builds
/// /etc/ssl/certs out of links into /usr/share/ca-certificates and /usr/local/share, and admins
/// point `cafile=` there. A link is only as trustworthy as the directory it sits in (changing
/// where a link points means replacing it), so the path is resolved here one component at a
/// time, and every directory passed through (those of the path as written and of every link
/// target) must be owned by root and not writable by group or other (a sticky directory such
/// as /tmp is allowed: nobody but an entry's owner can replace it), and every link must be
/// owned by root. The file the links end at then passes `read`'s rules. With every step
/// owned and writable only by root, nothing can change between these checks and the read.
pub fn read_cafile(path: &Path) -> Result<Trusted, String> {
    let real = resolve_trusted(path, &CAFILE_ROLE)?;
    read(&real, &CAFILE_ROLE, CAFILE_MAX_BYTES)
}

const CAFILE_ROLE: Role = Role {
    name: "CA file",
    option: "cafile=",
    holds: "PEM certificates",
};

/// The system's CA bundle, trusted when `cafile=` is not set: the file OpenSSL was built to
/// trust (`/usr/lib/ssl/cert.pem`, a link to /etc/ssl/certs/ca-certificates.crt on Debian;
/// `/etc/pki/tls/cert.pem` on Fedora). The compiled-in path, not `SSL_CERT_FILE`.
pub fn system_ca_bundle() -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: OpenSSL returns a pointer to a static, NUL-terminated string.
    let path = unsafe { std::ffi::CStr::from_ptr(openssl_sys::X509_get_default_cert_file()) };
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes()))
}

/// The certificates the module trusts for TLS, HTTPS and databases alike: `cafile=`, or the
/// system's bundle read under the same rules. Never what the host's environment names:
/// OpenSSL's built-in lookup would honour `SSL_CERT_FILE` and `SSL_CERT_DIR`, and the
/// environment of a setuid host (su, sudo, passwd) is the invoking user's.
pub fn trust_roots(cafile: Option<&Path>) -> Result<Trusted, String> {
    const SYSTEM_ROLE: Role = Role {
        name: "the system's CA bundle",
        option: "cafile= (none is set: install ca-certificates, or set cafile=)",
        holds: "PEM certificates",
    };
    match cafile {
        Some(path) => read_cafile(path),
        None => {
            let bundle = system_ca_bundle();
            let real = resolve_trusted(&bundle, &SYSTEM_ROLE)?;
            read(&real, &SYSTEM_ROLE, CAFILE_MAX_BYTES)
        }
    }
}

/// `read_cafile`'s verdict without the read when the CA file is the very same as when it last
/// passed (`reuse_or_read`): the option parser checks `cafile=` on every login, and a system
/// bundle is a quarter of a megabyte.
pub fn check_cafile(path: &Path) -> Result<(), String> {
    // The walk (a few lstat calls) runs every time: the verdict depends on every directory
    // and link on the way, which the file's own fingerprint does not show.
    let real = resolve_trusted(path, &CAFILE_ROLE)?;
    reuse_or_read(&real, |p| {
        read(p, &CAFILE_ROLE, CAFILE_MAX_BYTES).map(|_| ())
    })
}

/// Follows `path` to the file it names, checking every directory and link on the way (see
/// `read_cafile`). Returns a path free of symbolic links.
fn resolve_trusted(path: &Path, role: &Role) -> Result<std::path::PathBuf, String> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;
    let shown = path.display();
    let name = role.name;
    if !path.is_absolute() {
        return Err(format!(
            "{name} {shown} must be an absolute path ({} /etc/ssl/certs/...)",
            role.option
        ));
    }
    let components = |p: &Path| -> VecDeque<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let trusted_dir = |dir: &Path| -> Result<(), String> {
        let meta = std::fs::metadata(dir).map_err(|e| {
            format!(
                "{name} {shown}: directory {} on its path: {e}",
                dir.display()
            )
        })?;
        let d = dir.display();
        if meta.uid() != 0 {
            return Err(format!(
                "{name} {shown}: directory {d} on its path is not owned by root, so its owner \
                 can swap the file (chown root {d}, or keep the file elsewhere)"
            ));
        }
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !sticky {
            return Err(format!(
                "{name} {shown}: directory {d} on its path is writable by group or other, so \
                 they can swap the file (chmod go-w {d})"
            ));
        }
        Ok(())
    };
    let mut pending = components(path);
    let mut at = std::path::PathBuf::from("/");
    trusted_dir(&at)?;
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&part);
        let meta = std::fs::symlink_metadata(&next).map_err(|e| {
            format!(
                "{name} {shown} cannot be opened ({}: {e}); check the path given in {}",
                next.display(),
                role.option
            )
        })?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return Err(format!("{name} {shown}: too many symbolic links"));
            }
            if meta.uid() != 0 {
                return Err(format!(
                    "{name} {shown}: the symbolic link {} is not owned by root (chown -h root {})",
                    next.display(),
                    next.display()
                ));
            }
            let target = std::fs::read_link(&next)
                .map_err(|e| format!("{name} {shown}: link {}: {e}", next.display()))?;
            if target.is_absolute() {
                at = std::path::PathBuf::from("/");
            }
            for c in components(&target).into_iter().rev() {
                pending.push_front(c);
            }
            continue;
        }
        if pending.is_empty() {
            return Ok(next);
        }
        if !meta.is_dir() {
            return Err(format!(
                "{name} {shown}: {} on its path is not a directory",
                next.display()
            ));
        }
        trusted_dir(&next)?;
        at = next;
    }
    Err(format!("{name} {shown} names a directory, not a file"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The remembered verdict on a CA file covers the directories on its path too: one made
    /// writable by all after the file passed makes the file refused again.
    #[test]
    fn a_cafile_whose_directory_became_writable_by_all_is_refused_again() {
        let dir = std::env::temp_dir().join(format!("pam_mailauth-ca-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::copy(system_ca_bundle(), &ca).unwrap();
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(check_cafile(&ca), Ok(()));
        assert_eq!(check_cafile(&ca), Ok(()), "remembered");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = check_cafile(&ca);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            refused.is_err(),
            "a CA file anyone can replace was still trusted"
        );
    }
}
