//! The failure throttle (`deny=`, `fail_interval=`, `unlock_time=`, `tally_dir=`): after
//! `deny` failed checks of one mapped user within `fail_interval`, that user's checks are
//! refused without asking the backend until `unlock_time` has passed since the last counted
//! failure (pam_faillock's rule, for the virtual mailboxes pam_faillock cannot see).
//!
//! - **What counts**: a refusal, an unknown user, a disabled account. Never an unavailable
//!   backend (an outage must lock nobody out) nor a configuration error. A success resets the
//!   user's tally. A cache hit (`cache_ttl=`) never gets here: it is neither counted nor
//!   throttled, and it does not reset the tally either (else each login of the real user would
//!   hand a spray `deny` more guesses).
//! - **A check in progress counts until it ends**: each check reserves a slot in the tally
//!   before the backend is asked, so however many processes ask at once, at most `deny`
//!   checks of one user reach the backend before the lock (after a lock expires, one more; a
//!   failure locks again). A check finding every slot taken waits, up to `timeout=`, for one to
//!   free. A slot whose process died is counted as a failure (fail safe).
//! - **One tally per mailbox**: keyed on the mapped name with ASCII case folded
//!   ([`tally_key`]), as the backends compare names.
//! - **Shared by the host's processes**: one file per user in `tally_dir`, named by the
//!   SHA-256 of the key (no name can reach outside the directory or collide; the same file
//!   whatever the module line), holding the key (hex) for the admin's listing, the last
//!   `deny` failure times and the slots in use; read, changed and written under `flock`. A
//!   file whose tally is spent is removed, and once a minute a process sweeps spent files.
//! - **Bounded**: a name the backend does not know is counted in the process only (a spray
//!   of random names creates no files), and the directory takes no new file past
//!   [`DIR_MAX_FILES`] (a user without one is then counted in the process, logged).
//! - **Time**: the throttle's waits before the backend is asked share one `timeout=`; a
//!   tally that cannot be had in it is never skipped (a spray would pass uncounted): the
//!   check is answered unavailable, like an outage.
//! - **A host that cannot write there** (Apache children as www-data and a root-only
//!   directory) logs once how to grant it and keeps a per-process tally instead: never open
//!   (no throttle), never closed (every login refused). A directory that anyone else could
//!   write (not owned by root, or writable by "other"), a symbolic link or not a directory is
//!   a configuration error, like a config file anyone could change.
//!
//! Time is a parameter of the tally's rules (`now`, milliseconds since the epoch), so they are
//! tested without sleeping.

use crate::backend::Answer;
use crate::lock::lock_until;
use crate::options::{fold_case, Options};
use crate::pam::{Host, Level};
use crate::verdict::Verdict;
use once_cell::sync::Lazy;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::CString;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where tallies live unless `tally_dir=` says otherwise: like pam_faillock's /var/run/faillock,
/// state that matters for minutes sits on tmpfs (no disk write per failed login during a
/// spray) and is cleared at boot.
pub const DEFAULT_DIR: &str = "/run/pam_mailauth/tally";

/// The largest `deny=`: each failure time is kept, so this bounds a tally file.
pub const MAX_DENY: u64 = 100;

/// A tally file larger than this was not written by the module; it is read as empty.
const FILE_MAX_BYTES: u64 = 64 * 1024;

/// Names longer than this are stored cut (the file is still that of the whole name).
const NAME_MAX_BYTES: usize = 4096;

/// A slot held longer than this is counted as a failure even if its process lives: no check
/// lasts that long (every check ends within a bound derived from `timeout=`, at most 300 s per
/// URL).
const SLOT_MAX_MS: u64 = 30 * 60 * 1000;

/// The per-process tally (the fallback) holds at most this many users.
const LOCAL_MAX_USERS: usize = 10_000;

/// The tally directory takes no new file past this many: a 4 KiB page and an inode each, so
/// about 40 MB (10,000 files of a tally's size took 41 MB). A user without a file is then
/// counted in the process, until sweeps make room. Concurrent checks may overshoot it by a few.
pub const DIR_MAX_FILES: usize = 10_000;

/// How long recording a check's result may wait for its tally (after the backend answered).
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// The throttle's settings, one module line's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Failures within `fail_interval` that lock the user; 0 = no throttle.
    pub deny: u32,
    pub fail_interval: Duration,
    pub unlock_time: Duration,
    pub dir: PathBuf,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            deny: 0,
            // pam_faillock's defaults.
            fail_interval: Duration::from_secs(900),
            unlock_time: Duration::from_secs(600),
            dir: PathBuf::from(DEFAULT_DIR),
        }
    }
}

impl Policy {
    fn fail_interval_ms(&self) -> u64 {
        self.fail_interval.as_millis() as u64
    }
    fn unlock_ms(&self) -> u64 {
        self.unlock_time.as_millis() as u64
    }
}

/// One check in progress: which process, which of its checks, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub pid: u32,
    pub serial: u64,
    pub since: u64,
}

impl Slot {
    /// A new slot of this process.
    fn mine(now: u64) -> Slot {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        Slot {
            pid: crate::fork::pid(),
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            since: now,
        }
    }
}

/// One user's tally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The mapped name, for the admin's listing.
    pub user: String,
    /// Times of the counted failures (ms since the epoch), oldest first; at most `deny`.
    pub failures: Vec<u64>,
    /// Checks in progress.
    pub slots: Vec<Slot>,
}

/// Whether a check may ask the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// `deny` failures; locked for this many more milliseconds.
    Locked {
        failures: usize,
        remaining_ms: u64,
    },
    /// Every slot is taken by checks in progress.
    Busy {
        in_progress: usize,
    },
}

/// What a backend's answer means to the tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failure,
    Success,
    NotCounted,
}

impl Outcome {
    pub fn of(verdict: &Verdict) -> Outcome {
        match verdict {
            Verdict::Accepted => Outcome::Success,
            Verdict::Refused
            | Verdict::WrongPassword
            | Verdict::UnknownUser
            | Verdict::Disabled(_) => Outcome::Failure,
            // PasswordExpired comes from the account phase only: the password was not judged.
            Verdict::Unavailable(_)
            | Verdict::Misconfigured(_)
            | Verdict::Throttled(_)
            | Verdict::PasswordExpired => Outcome::NotCounted,
        }
    }
}

impl Tally {
    fn new(user: &str) -> Tally {
        Tally {
            user: user.to_string(),
            ..Tally::default()
        }
    }

    /// Until when (ms since the epoch) the user is locked, if `deny` failures are recorded.
    pub fn locked_until(&self, policy: &Policy) -> Option<u64> {
        let deny = policy.deny as usize;
        if deny == 0 || self.failures.len() < deny {
            return None;
        }
        self.failures
            .last()
            .map(|last| last.saturating_add(policy.unlock_ms()))
    }

    /// Admits a check (taking a slot for it) or says why not. Slots of dead processes, and
    /// slots older than any check lasts, become failures first.
    pub fn admit(
        &mut self,
        policy: &Policy,
        now: u64,
        slot: Slot,
        alive: &dyn Fn(u32) -> bool,
    ) -> Admission {
        let (live, dead): (Vec<Slot>, Vec<Slot>) = self
            .slots
            .iter()
            .partition(|s| alive(s.pid) && now.saturating_sub(s.since) < SLOT_MAX_MS);
        self.slots = live;
        for s in dead {
            self.record_failure(policy, s.since);
        }
        if let Some(until) = self.locked_until(policy) {
            if now < until {
                return Admission::Locked {
                    failures: self.failures.len(),
                    remaining_ms: until - now,
                };
            }
        }
        let interval = policy.fail_interval_ms();
        let recent = self
            .failures
            .iter()
            .filter(|t| now.saturating_sub(**t) < interval)
            .count();
        // After a lock ends, one more check; a failure locks again (as pam_faillock).
        let allowed = (policy.deny as usize).saturating_sub(recent).max(1);
        if self.slots.len() >= allowed {
            return Admission::Busy {
                in_progress: self.slots.len(),
            };
        }
        self.slots.push(slot);
        Admission::Go
    }

    /// Ends a check: frees its slot and counts what the backend said.
    pub fn settle(&mut self, policy: &Policy, slot: Slot, outcome: Outcome, now: u64) {
        self.slots.retain(|s| *s != slot);
        match outcome {
            Outcome::Failure => self.record_failure(policy, now),
            Outcome::Success => self.failures.clear(),
            Outcome::NotCounted => {}
        }
    }

    /// Counts a failure: forgets those older than `fail_interval` before it, keeps `deny`.
    fn record_failure(&mut self, policy: &Policy, at: u64) {
        let interval = policy.fail_interval_ms();
        self.failures.retain(|t| at.saturating_sub(*t) < interval);
        self.failures.push(at);
        self.failures.sort_unstable();
        let keep = (policy.deny as usize).max(1);
        if self.failures.len() > keep {
            self.failures.drain(..self.failures.len() - keep);
        }
    }

    /// Nothing in it can matter any more: no check in progress, and the last failure is older
    /// than both the lock and the counting window.
    pub fn is_spent(&self, policy: &Policy, now: u64) -> bool {
        if !self.slots.is_empty() {
            return false;
        }
        match self.failures.last() {
            None => true,
            Some(last) => {
                now >= last.saturating_add(policy.unlock_ms().max(policy.fail_interval_ms()))
            }
        }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let name = self.user.as_bytes();
        let name = &name[..name.len().min(NAME_MAX_BYTES)];
        let mut text = format!("pam_mailauth tally 1\nuser {}\n", hex(name));
        for t in &self.failures {
            text.push_str(&format!("failure {t}\n"));
        }
        for s in &self.slots {
            text.push_str(&format!("slot {} {} {}\n", s.pid, s.serial, s.since));
        }
        text
    }

    /// Reads a file's text; lines it does not know are skipped (a damaged file is an empty
    /// tally, never a refusal).
    pub fn parse(text: &str) -> Tally {
        let mut tally = Tally::default();
        for line in text.lines() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("user"), Some(h), None, None) => {
                    if let Some(bytes) = unhex(h) {
                        tally.user = String::from_utf8_lossy(&bytes).into_owned();
                    }
                }
                (Some("failure"), Some(t), None, None) => {
                    if let Ok(t) = t.parse() {
                        tally.failures.push(t);
                    }
                }
                (Some("slot"), Some(pid), Some(serial), Some(since)) => {
                    if let (Ok(pid), Ok(serial), Ok(since)) =
                        (pid.parse(), serial.parse(), since.parse())
                    {
                        tally.slots.push(Slot { pid, serial, since });
                    }
                }
                _ => {}
            }
        }
        tally.failures.sort_unstable();
        let cap = MAX_DENY as usize;
        if tally.failures.len() > cap {
            tally.failures.drain(..tally.failures.len() - cap);
        }
        tally.slots.truncate(cap);
        tally
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 2 * NAME_MAX_BYTES {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The one key of a mapped user's tally, in the shared directory and in the process: the name
/// with ASCII case folded (`options::fold_case`). The backends compare names ignoring case
/// (PostfixAdmin on MySQL, MailStore, Axigen), so `John.Doe@...` and `JOHN.DOE@...` are one
/// mailbox and must share one count of `deny` guesses. Only A-Z fold, as everywhere in the
/// module: Unicode folding would merge distinct mailboxes.
pub fn tally_key(user: &str) -> String {
    fold_case(user)
}

/// The tally file's name for a mapped user: the hex SHA-256 of its [`tally_key`], whatever the
/// module line, so the admin's tool finds it from the name alone.
pub fn file_name(user: &str) -> String {
    hex(&Sha256::digest(tally_key(user).as_bytes()))
}

fn is_file_name(name: &[u8]) -> bool {
    name.len() == 64 && name.iter().all(|b| b.is_ascii_hexdigit())
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Why the tally directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirError {
    /// Anyone else could change it: a configuration error.
    Unsafe(String),
    /// This process may not use it (permissions, missing): fall back to a per-process tally.
    Unusable(String),
}

/// Why a user's shared tally could not be had for one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TallyError {
    /// This process cannot use the file (permissions, I/O): it counts in its process from now.
    Unusable(String),
    /// Another process held it past this check's time, or it kept being replaced: only this
    /// check counts in its process. Not a permissions problem, and not one to report as one.
    Busy(String),
}

impl From<String> for TallyError {
    fn from(why: String) -> Self {
        TallyError::Unusable(why)
    }
}

impl std::fmt::Display for TallyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TallyError::Unusable(why) | TallyError::Busy(why) => f.write_str(why),
        }
    }
}

/// The tally directory, opened and checked (owner root, not writable by other, not a link).
pub struct TallyDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn not_writable(dir: &Path, e: &std::io::Error) -> String {
    format!(
        "tally_dir {} is not writable by this process (uid {}, gid {}): {e}",
        dir.display(),
        unsafe { libc::geteuid() },
        unsafe { libc::getegid() }
    )
}

fn c_path(path: &Path) -> Result<CString, DirError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| DirError::Unsafe(format!("tally_dir {} holds a NUL byte", path.display())))
}

impl TallyDir {
    /// Opens the directory, creating it (mode 0700) when root and it is missing.
    pub fn open(path: &Path) -> Result<TallyDir, DirError> {
        let shown = path.display();
        let c = c_path(path)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid C string; the descriptor is owned below.
        let mut fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 && errno() == libc::ENOENT && unsafe { libc::geteuid() } == 0 {
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            // SAFETY: as above.
            unsafe { libc::mkdir(c.as_ptr(), 0o700) };
            fd = unsafe { libc::open(c.as_ptr(), flags) };
        }
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => DirError::Unsafe(format!(
                    "tally_dir {shown} is a symbolic link or not a directory; point tally_dir= \
                     at a real directory"
                )),
                Some(libc::ENOENT) => DirError::Unusable(format!(
                    "tally_dir {shown} does not exist and this process (uid {}) cannot create \
                     it; create it as root: install -d -m 0700 {shown} (or -g GROUP -m 2770 to \
                     share it with a host running as GROUP)",
                    unsafe { libc::geteuid() }
                )),
                Some(libc::EACCES) => DirError::Unusable(not_writable(path, &e)),
                _ => DirError::Unusable(format!("tally_dir {shown} cannot be opened ({e})")),
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let meta = std::fs::File::from(
            fd.try_clone()
                .map_err(|e| DirError::Unusable(format!("tally_dir {shown}: {e}")))?,
        )
        .metadata()
        .map_err(|e| DirError::Unusable(format!("tally_dir {shown}: {e}")))?;
        if meta.uid() != 0 {
            return Err(DirError::Unsafe(format!(
                "tally_dir {shown} must be owned by root (chown root {shown})"
            )));
        }
        if meta.mode() & 0o002 != 0 {
            return Err(DirError::Unsafe(format!(
                "tally_dir {shown} is writable by others: anyone could unlock or lock any \
                 user (chmod o-w {shown}; to share it with Apache: chgrp www-data {shown}; \
                 chmod 2770 {shown})"
            )));
        }
        Ok(TallyDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (or creates) one file in the directory, never following a link.
    fn open_file(&self, name: &str, create: bool) -> Result<Option<std::fs::File>, String> {
        let c = CString::new(name).map_err(|_| "bad tally file name".to_string())?;
        let mut flags =
            libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
        if create {
            flags |= libc::O_CREAT;
        }
        // SAFETY: a valid directory descriptor and C string.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, 0o660) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) && !create {
                return Ok(None);
            }
            return Err(not_writable(&self.path, &e));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.file_type().is_file() || meta.nlink() != 1 {
            return Err(format!(
                "{}/{name} is not a plain tally file (a link or special file put there?); \
                 remove it",
                self.path.display()
            ));
        }
        // Created by root in a group-writable directory: let the group update it too.
        if meta.uid() == unsafe { libc::geteuid() } && meta.mode() & 0o060 != 0o060 {
            let _ = unsafe { libc::fchmod(file.as_raw_fd(), 0o660) };
        }
        Ok(Some(file))
    }

    /// Runs `change` on `user`'s tally under an exclusive lock (waited for until `until`) and
    /// writes the result back; a spent tally's file is removed. A missing file is `Ok(None)`
    /// when `create` is false, and when the directory already holds [`DIR_MAX_FILES`].
    pub fn update<R>(
        &self,
        user: &str,
        create: bool,
        policy: &Policy,
        now: u64,
        until: Instant,
        change: impl FnOnce(&mut Tally) -> R,
    ) -> Result<Option<R>, TallyError> {
        let name = file_name(user);
        // A file removed between our open and our lock is reopened (bounded).
        for _ in 0..8 {
            let file = match self.open_file(&name, false)? {
                Some(file) => Some(file),
                None if create && !self.is_full(policy, now) => self.open_file(&name, true)?,
                None => None,
            };
            let Some(mut file) = file else {
                return Ok(None);
            };
            lock_exclusive(&file, until).map_err(|e| {
                let why = format!("tally file {}/{name}: {e}", self.path.display());
                match e {
                    LockError::Held => TallyError::Busy(why),
                    LockError::Failed(_) => TallyError::Unusable(why),
                }
            })?;
            if file.metadata().map(|m| m.nlink()).unwrap_or(0) == 0 {
                continue;
            }
            let fresh = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
            let mut tally = read_tally(&mut file);
            if tally.user.is_empty() {
                tally = Tally {
                    user: tally_key(user),
                    ..tally
                };
            }
            let result = change(&mut tally);
            if tally.is_spent(policy, now) {
                let c = CString::new(name.as_str()).map_err(|e| e.to_string())?;
                // SAFETY: valid descriptor and C string; we hold the file's lock.
                unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
            } else {
                write_tally(&mut file, &tally).map_err(|e| {
                    format!(
                        "tally file {}/{name} cannot be written: {e}",
                        self.path.display()
                    )
                })?;
                if fresh {
                    self.sweep_now_and_then(policy, now);
                }
            }
            return Ok(Some(result));
        }
        Err(TallyError::Busy(format!(
            "tally file {}/{name} keeps being replaced",
            self.path.display()
        )))
    }

    /// Whether the directory holds [`DIR_MAX_FILES`] tally files, after sweeping spent ones
    /// (at most once a minute) when it does.
    fn is_full(&self, policy: &Policy, now: u64) -> bool {
        if self.count_files() < DIR_MAX_FILES {
            return false;
        }
        self.sweep_now_and_then(policy, now);
        self.count_files() >= DIR_MAX_FILES
    }

    /// Tally files in the directory, counted up to [`DIR_MAX_FILES`].
    fn count_files(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| is_file_name(e.file_name().as_bytes()))
            .take(DIR_MAX_FILES)
            .count()
    }

    /// Every tally in the directory (for the admin), spent ones left out.
    pub fn tallies(&self, policy: &Policy, now: u64) -> Result<Vec<Tally>, String> {
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&self.path)
            .map_err(|e| format!("tally_dir {}: {e}", self.path.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !is_file_name(name.as_bytes()) {
                continue;
            }
            let Ok(Some(mut file)) = self.open_file(&name.to_string_lossy(), false) else {
                continue;
            };
            if lock_exclusive(&file, Instant::now() + SETTLE_WAIT).is_err() {
                continue;
            }
            let tally = read_tally(&mut file);
            if !tally.is_spent(policy, now) {
                found.push(tally);
            }
        }
        found.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(found)
    }

    /// Removes the tallies that no longer matter, at most once a minute per directory (the
    /// time of the last sweep is the mtime of `.swept`).
    fn sweep_now_and_then(&self, policy: &Policy, now: u64) {
        let marker = self.path.join(".swept");
        let recent = std::fs::symlink_metadata(&marker)
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(60));
        if recent {
            return;
        }
        let touched = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags_nofollow()
            .open(&marker);
        if touched.is_err() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten().take(1_000_000) {
            let name = entry.file_name();
            if !is_file_name(name.as_bytes()) {
                continue;
            }
            let Ok(Some(mut file)) = self.open_file(&name.to_string_lossy(), false) else {
                continue;
            };
            // Never wait here: a file in use is not spent.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            if file.metadata().map(|m| m.nlink()).unwrap_or(0) == 0 {
                continue;
            }
            if read_tally(&mut file).is_spent(policy, now) {
                if let Ok(c) = CString::new(name.as_bytes()) {
                    unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
                }
            }
        }
    }
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
    }
}

enum LockError {
    /// Still held by another process when the wait ended.
    Held,
    Failed(std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held => f.write_str("locked by another process past this check's time"),
            LockError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// `flock(LOCK_EX)`, waiting until `until` (the check's budget) and at most two seconds:
/// holders keep it only to read and write a few lines, so a lock held longer belongs to a
/// stopped process and must not hang the login.
fn lock_exclusive(file: &std::fs::File, until: Instant) -> Result<(), LockError> {
    let deadline = until.min(Instant::now() + SETTLE_WAIT);
    loop {
        // SAFETY: a valid descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = errno();
        if e != libc::EWOULDBLOCK && e != libc::EINTR {
            return Err(LockError::Failed(std::io::Error::from_raw_os_error(e)));
        }
        if Instant::now() >= deadline {
            return Err(LockError::Held);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn read_tally(file: &mut std::fs::File) -> Tally {
    let mut text = String::new();
    let _ = file.rewind();
    let read = (&mut *file)
        .take(FILE_MAX_BYTES + 1)
        .read_to_string(&mut text);
    if read.is_err() || text.len() as u64 > FILE_MAX_BYTES {
        return Tally::default();
    }
    Tally::parse(&text)
}

fn write_tally(file: &mut std::fs::File, tally: &Tally) -> std::io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(tally.render().as_bytes())
}

/// The per-process tallies of a host that cannot write the directory.
static LOCAL: Lazy<Mutex<HashMap<String, Tally>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// `change` on `user`'s per-process tally; `None` if another thread held the tallies until
/// `until` (never a reason to go on uncounted: the caller answers without the backend). With
/// `create` false, a user without a tally is `Some(None)`-like: `change` is not run.
fn update_local<R>(
    user: &str,
    create: bool,
    policy: &Policy,
    now: u64,
    until: Instant,
    change: impl FnOnce(&mut Tally) -> R,
) -> Option<Option<R>> {
    let user = &tally_key(user);
    let mut all = lock_until(&LOCAL, until)?;
    if !create && !all.contains_key(user) {
        return Some(None);
    }
    if all.len() >= LOCAL_MAX_USERS && !all.contains_key(user) {
        all.retain(|_, t| !t.is_spent(policy, now));
        if all.len() >= LOCAL_MAX_USERS {
            // The one with the oldest activity goes.
            let oldest = all
                .iter()
                .min_by_key(|(_, t)| t.failures.last().copied().unwrap_or(0))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                all.remove(&k);
            }
        }
    }
    let tally = all
        .entry(user.to_string())
        .or_insert_with(|| Tally::new(user));
    let result = change(tally);
    if tally.is_spent(policy, now) {
        all.remove(user);
    }
    Some(Some(result))
}

/// Where this check keeps its tally.
enum Store {
    Shared(TallyDir),
    Local,
}

/// Set once this process has said it cannot use the directory.
static SAID_UNUSABLE: AtomicBool = AtomicBool::new(false);

/// When this process last said the directory is full (ms since the epoch).
static SAID_FULL: AtomicU64 = AtomicU64::new(0);

impl Store {
    fn open(host: &dyn Host, policy: &Policy) -> Result<Store, String> {
        match TallyDir::open(&policy.dir) {
            Ok(dir) => Ok(Store::Shared(dir)),
            Err(DirError::Unsafe(why)) => Err(why),
            Err(DirError::Unusable(why)) => {
                fall_back(host, &why);
                Ok(Store::Local)
            }
        }
    }

    /// `change` on the user's tally, the lock on it waited for until `until`; `None` when no
    /// tally could be had in that time. A user the full directory has no file for is counted
    /// in this process, and so is the rest of this check (its slot lives there).
    fn update<R>(
        &mut self,
        host: &dyn Host,
        user: &str,
        policy: &Policy,
        now: u64,
        until: Instant,
        change: impl FnOnce(&mut Tally) -> R,
    ) -> Option<R> {
        if let Store::Shared(dir) = self {
            let mut change = Some(change);
            let shared = dir.update(user, true, policy, now, until, |t| {
                change.take().map(|f| f(t))
            });
            match shared {
                Ok(Some(Some(r))) => return Some(r),
                Ok(Some(None)) => return None,
                Ok(None) => say_full(host, dir.path(), now),
                Err(TallyError::Unusable(why)) => fall_back(host, &why),
                Err(TallyError::Busy(why)) => say_busy(host, &why),
            }
            *self = Store::Local;
            return update_local(user, true, policy, now, until, change?)?;
        }
        update_local(user, true, policy, now, until, change)?
    }
}

/// Says (once per process) why the shared tally cannot be used and how to grant it.
fn fall_back(host: &dyn Host, why: &str) {
    if SAID_UNUSABLE.swap(true, Ordering::Relaxed) {
        return;
    }
    host.log(
        Level::Warning,
        &format!(
            "throttle: {why}; counting failures in this process only (a host running as a \
             non-root user needs a group-writable tally_dir: chgrp GROUP DIR; chmod 2770 DIR)"
        ),
    );
}

/// Says that this check's tally was busy: it counts in this process instead.
fn say_busy(host: &dyn Host, why: &str) {
    host.log(
        Level::Warning,
        &format!("throttle: {why}; this check is counted in this process only"),
    );
}

/// Says (at most once a minute per process) that the directory takes no new file.
fn say_full(host: &dyn Host, dir: &Path, now: u64) {
    let last = SAID_FULL.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < 60_000 {
        return;
    }
    if SAID_FULL
        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    host.log(
        Level::Warning,
        &format!(
            "throttle: tally_dir {} holds {DIR_MAX_FILES} tally files, the most it takes (a \
             spray of many names?): users without a file are counted in this process only \
             until spent tallies are swept; mailauth-check --throttled lists them",
            dir.display()
        ),
    );
}

/// Why a check was answered without the backend: its tally could not be had in time.
fn no_tally(budget: Duration) -> Answer {
    Verdict::Unavailable(format!(
        "throttle: this user's tally stayed locked by other checks for {}s (timeout=); the \
         backend is not asked uncounted",
        budget.as_secs_f64()
    ))
    .into()
}

/// Asks the backend through the throttle: refused at once while the user is locked, counted
/// after. With `deny=0` this is `ask()`.
///
/// The time it adds to a check: before the backend is asked, at most `timeout=` in all
/// (waiting for a place while `deny` checks of the user are in progress, and for the tally's
/// locks); after it, at most [`SETTLE_WAIT`] to record the result.
pub fn guard(host: &dyn Host, opts: &Options, user: &str, ask: impl FnOnce() -> Answer) -> Answer {
    let policy = &opts.throttle;
    if policy.deny == 0 {
        return ask();
    }
    let mut store = match Store::open(host, policy) {
        Ok(store) => store,
        Err(why) => return Verdict::Misconfigured(why).into(),
    };
    let slot = Slot::mine(now_ms());
    let budget = opts.timeout;
    let until = Instant::now() + budget;
    // Unknown names are counted in the process only (below): a lock there is a lock too.
    if let Store::Shared(_) = store {
        let now = now_ms();
        let lock = update_local(user, false, policy, now, until, |t| {
            let until = t.locked_until(policy).filter(|u| *u > now)?;
            Some((t.failures.len(), until - now))
        });
        match lock {
            None => return no_tally(budget),
            Some(Some(Some((failures, remaining_ms)))) => {
                return throttled(policy, failures, remaining_ms)
            }
            Some(_) => {}
        }
    }
    loop {
        let now = now_ms();
        let admission = store.update(host, user, policy, now, until, |t| {
            t.admit(policy, now, Slot { since: now, ..slot }, &process_alive)
        });
        match admission {
            // No tally within the budget: never ask uncounted (a spray would pass), never
            // call it a wrong password; the check is unavailable, as in an outage.
            None => return no_tally(budget),
            Some(Admission::Go) => break,
            Some(Admission::Locked {
                failures,
                remaining_ms,
            }) => return throttled(policy, failures, remaining_ms),
            Some(Admission::Busy { in_progress }) => {
                if Instant::now() >= until {
                    return Verdict::Throttled(format!(
                        "{in_progress} checks of this user still in progress after {}s \
                         (deny={})",
                        budget.as_secs_f64(),
                        policy.deny
                    ))
                    .into();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let answer = ask();
    let mut outcome = Outcome::of(&answer.verdict);
    let now = now_ms();
    let until = Instant::now() + SETTLE_WAIT;
    // A name the backend does not know is counted in this process only: a spray of random
    // names must not fill tally_dir (tmpfs /run) with a file per name.
    if answer.verdict == Verdict::UnknownUser {
        if let Store::Shared(_) = store {
            let _ = update_local(user, true, policy, now, until, |t| {
                t.record_failure(policy, now)
            });
            outcome = Outcome::NotCounted;
        }
    }
    // The slot is found by pid and serial; its time is not compared.
    store.update(host, user, policy, now, until, |t| {
        let mine = t
            .slots
            .iter()
            .copied()
            .find(|s| s.pid == slot.pid && s.serial == slot.serial);
        if let Some(mine) = mine {
            t.settle(policy, mine, outcome, now);
        } else if outcome == Outcome::Failure {
            t.record_failure(policy, now);
        } else if outcome == Outcome::Success {
            t.failures.clear();
        }
    });
    answer
}

/// The answer to a check of a locked user.
fn throttled(policy: &Policy, failures: usize, remaining_ms: u64) -> Answer {
    Verdict::Throttled(format!(
        "{failures} failed checks within fail_interval={}s; the backend is not asked for \
         another {}s (unlock_time={}s)",
        policy.fail_interval.as_secs(),
        remaining_ms.div_ceil(1000),
        policy.unlock_time.as_secs()
    ))
    .into()
}

/// The admin's view: every tally in `dir` that still matters under `policy`.
pub fn list(policy: &Policy) -> Result<Vec<Tally>, String> {
    let dir = TallyDir::open(&policy.dir).map_err(|e| match e {
        DirError::Unsafe(s) | DirError::Unusable(s) => s,
    })?;
    dir.tallies(policy, now_ms())
}

/// Forgets `user`'s failures (the mapped name, as the backend sees it), as
/// `faillock --user NAME --reset` does; true if there was a tally. Checks in progress keep
/// their slots.
pub fn reset(policy: &Policy, user: &str) -> Result<bool, String> {
    let dir = TallyDir::open(&policy.dir).map_err(|e| match e {
        DirError::Unsafe(s) | DirError::Unusable(s) => s,
    })?;
    let now = now_ms();
    let until = Instant::now() + SETTLE_WAIT;
    let found = dir
        .update(user, false, policy, now, until, |t| t.failures.clear())
        .map_err(|e| e.to_string())?;
    // Failures of a name the backend did not know live in the process that counted them.
    let _ = update_local(user, false, policy, now, until, |t| t.failures.clear());
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::lock_briefly;

    const SEC: u64 = 1000;

    fn policy(deny: u32) -> Policy {
        Policy {
            deny,
            fail_interval: Duration::from_secs(60),
            unlock_time: Duration::from_secs(10),
            dir: PathBuf::from("/nonexistent"),
        }
    }

    fn slot(serial: u64, since: u64) -> Slot {
        Slot {
            pid: 1,
            serial,
            since,
        }
    }

    const ALIVE: &dyn Fn(u32) -> bool = &|_| true;

    /// One whole check: admitted, then settled with `outcome`.
    fn check(t: &mut Tally, p: &Policy, now: u64, outcome: Outcome) -> Admission {
        let s = slot(now, now);
        let a = t.admit(p, now, s, ALIVE);
        if a == Admission::Go {
            t.settle(p, s, outcome, now);
        }
        a
    }

    #[test]
    fn deny_failures_lock_until_unlock_time_after_the_last() {
        let p = policy(3);
        let mut t = Tally::new("john");
        for i in 0..3 {
            assert_eq!(check(&mut t, &p, i * SEC, Outcome::Failure), Admission::Go);
        }
        assert_eq!(
            check(&mut t, &p, 5 * SEC, Outcome::Failure),
            Admission::Locked {
                failures: 3,
                remaining_ms: 7 * SEC
            }
        );
        // After unlock_time one more check; its failure locks again.
        assert_eq!(check(&mut t, &p, 12 * SEC, Outcome::Failure), Admission::Go);
        assert!(matches!(
            check(&mut t, &p, 13 * SEC, Outcome::Failure),
            Admission::Locked { .. }
        ));
        // A success after the lock resets everything.
        assert_eq!(check(&mut t, &p, 23 * SEC, Outcome::Success), Admission::Go);
        assert!(t.failures.is_empty());
        assert!(t.is_spent(&p, 23 * SEC));
    }

    #[test]
    fn failures_further_apart_than_fail_interval_do_not_lock() {
        let p = policy(3);
        let mut t = Tally::new("john");
        for i in 0..10 {
            assert_eq!(
                check(&mut t, &p, i * 31 * SEC, Outcome::Failure),
                Admission::Go,
                "{i}"
            );
        }
        assert!(t.failures.len() <= 3);
    }

    #[test]
    fn outages_count_nothing() {
        let p = policy(2);
        let mut t = Tally::new("john");
        for i in 0..20 {
            assert_eq!(check(&mut t, &p, i, Outcome::NotCounted), Admission::Go);
        }
        assert!(t.failures.is_empty() && t.slots.is_empty());
        for v in [
            Verdict::Unavailable("x".into()),
            Verdict::Misconfigured("x".into()),
        ] {
            assert_eq!(Outcome::of(&v), Outcome::NotCounted);
        }
        for v in [
            Verdict::Refused,
            Verdict::UnknownUser,
            Verdict::Disabled("x".into()),
        ] {
            assert_eq!(Outcome::of(&v), Outcome::Failure);
        }
    }

    #[test]
    fn checks_in_progress_take_slots_so_at_most_deny_reach_the_backend() {
        let p = policy(3);
        let mut t = Tally::new("john");
        let slots: Vec<Slot> = (0..3).map(|i| slot(i, 0)).collect();
        for s in &slots {
            assert_eq!(t.admit(&p, 0, *s, ALIVE), Admission::Go);
        }
        assert_eq!(
            t.admit(&p, 0, slot(9, 0), ALIVE),
            Admission::Busy { in_progress: 3 }
        );
        for s in &slots {
            t.settle(&p, *s, Outcome::Failure, SEC);
        }
        assert!(matches!(
            t.admit(&p, SEC, slot(9, SEC), ALIVE),
            Admission::Locked { failures: 3, .. }
        ));
    }

    #[test]
    fn a_dead_process_slot_is_a_failure() {
        let p = policy(1);
        let mut t = Tally::new("john");
        assert_eq!(t.admit(&p, 0, slot(0, 0), ALIVE), Admission::Go);
        assert!(matches!(
            t.admit(&p, SEC, slot(1, SEC), &|_| false),
            Admission::Locked { .. }
        ));
        assert!(t.slots.is_empty());
    }

    #[test]
    fn the_file_text_round_trips_and_is_bounded() {
        let mut t = Tally::new("jo\nhn/../\u{1}x");
        t.failures = vec![1, 2, 3];
        t.slots = vec![slot(7, 8)];
        assert_eq!(Tally::parse(&t.render()), t);
        let long = Tally::new(&"a".repeat(100_000));
        assert!(long.render().len() < 2 * NAME_MAX_BYTES + 100);
        let junk = "user zz\nfailure x\nslot 1 2\n".repeat(10);
        assert_eq!(Tally::parse(&junk), Tally::default());
    }

    #[test]
    fn file_names_are_hex_digests_of_the_name() {
        for name in ["../../etc/passwd", "/", "..", "a\u{1}b", &"x".repeat(1000)] {
            let f = file_name(name);
            assert!(is_file_name(f.as_bytes()), "{f}");
        }
        // One file whatever the ASCII case (the backends compare names so).
        assert_eq!(file_name("john"), file_name("John"));
        // What the README's `printf %s NAME | sha256sum` gives.
        assert_eq!(
            file_name("john.doe@example.com"),
            "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"
        );
    }

    #[test]
    fn options_are_validated() {
        let line = |extra: &str| {
            let mut args = vec!["backend=mailstore", "url=https://a/"];
            args.extend(extra.split_whitespace());
            Options::parse(&args)
        };
        let Ok(o) = line("deny=5 fail_interval=30 unlock_time=3 tally_dir=/run/x") else {
            panic!("a valid throttle line was refused")
        };
        assert_eq!(o.throttle.deny, 5);
        assert_eq!(o.throttle.fail_interval, Duration::from_secs(30));
        assert_eq!(o.throttle.unlock_time, Duration::from_secs(3));
        assert_eq!(o.throttle.dir, PathBuf::from("/run/x"));
        let Ok(o) = line("") else { panic!() };
        assert_eq!(o.throttle, Policy::default());
        assert_eq!(o.throttle.dir, PathBuf::from(DEFAULT_DIR));
        for bad in [
            "deny=101",
            "deny=-1",
            "fail_interval=0",
            "unlock_time=0",
            "unlock_time=86401",
            "tally_dir=relative/dir",
            "tally_dir=",
        ] {
            let e = line(bad).err().map(|e| e.0).unwrap_or_default();
            let key = bad.split('=').next().unwrap_or_default();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    /// Taken by the tests that hold the per-process tally on purpose or for long, and by the
    /// one that needs it free at once.
    static HOLDS_LOCAL: Mutex<()> = Mutex::new(());

    /// A host for `guard` that only keeps its log.
    #[derive(Default)]
    struct LogHost(Mutex<Vec<String>>);

    impl Host for LogHost {
        fn service(&self) -> std::borrow::Cow<'_, str> {
            "test".into()
        }
        fn user(&self) -> Result<String, pamsm::PamError> {
            Err(pamsm::PamError::USER_UNKNOWN)
        }
        fn rhost(&self) -> Option<String> {
            None
        }
        fn stacked_password(&self) -> Result<Option<crate::secret::Secret>, pamsm::PamError> {
            Ok(None)
        }
        fn prompt_password(&self) -> Result<crate::secret::Secret, pamsm::PamError> {
            Err(pamsm::PamError::AUTH_ERR)
        }
        fn remember_authenticated(&self, _user: &str) {}
        fn authenticated_user(&self) -> Option<String> {
            None
        }
        fn log(&self, _level: Level, message: &str) {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(message.to_string());
            }
        }
        fn fail_delay(&self, _micros: u32) {}
    }

    /// A fresh tally directory (root's, 0700: the unit tests run as root, as the suite does).
    fn fresh_dir(tag: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pam_mailauth-unit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        dir
    }

    fn line_with(dir: &Path, extra: &str) -> Options {
        let dir = format!("tally_dir={}", dir.display());
        let mut args = vec!["backend=mailstore", "url=http://127.0.0.1/", "deny=2", &dir];
        args.extend(extra.split_whitespace());
        match Options::parse(&args) {
            Ok(o) => o,
            Err(e) => panic!("{}", e.0),
        }
    }

    fn tally_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| is_file_name(e.file_name().as_bytes()))
            .count()
    }

    /// F1: the backends compare names ignoring case, so the tally must too.
    #[test]
    fn a_name_in_any_ascii_case_is_one_tally() {
        let dir = fresh_dir("case");
        let opts = line_with(&dir, "");
        let host = LogHost::default();
        let asked = AtomicU64::new(0);
        for name in [
            "John.Doe@example.com",
            "JOHN.DOE@example.com",
            "john.doe@EXAMPLE.COM",
            "jOhN.dOe@example.com",
            "john.doe@example.com",
        ] {
            guard(&host, &opts, name, || {
                asked.fetch_add(1, Ordering::Relaxed);
                Verdict::WrongPassword.into()
            });
        }
        assert_eq!(
            asked.load(Ordering::Relaxed),
            2,
            "deny=2 across case variants"
        );
        assert_eq!(tally_files(&dir), 1);
        let listed = list(&opts.throttle).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].user, "john.doe@example.com");
        assert!(reset(&opts.throttle, "JOHN.doe@Example.com").unwrap());
        assert_eq!(tally_files(&dir), 0);
        // Only ASCII folds: the Kelvin sign is not a k.
        assert_ne!(file_name("\u{212a}ate"), file_name("kate"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// F2: names the backend does not know never leave a file behind.
    #[test]
    fn unknown_names_leave_no_tally_file_but_are_still_throttled_in_the_process() {
        let dir = fresh_dir("unknown");
        let opts = line_with(&dir, "");
        let host = LogHost::default();
        for i in 0..50 {
            guard(&host, &opts, &format!("bot-{i}@example.com"), || {
                Verdict::UnknownUser.into()
            });
        }
        assert_eq!(tally_files(&dir), 0, "a spray of unknown names left files");
        // Counted per process: the third check of one unknown name is not asked.
        let asked = AtomicU64::new(0);
        for _ in 0..3 {
            guard(&host, &opts, "ghost@example.com", || {
                asked.fetch_add(1, Ordering::Relaxed);
                Verdict::UnknownUser.into()
            });
        }
        assert_eq!(asked.load(Ordering::Relaxed), 2);
        assert_eq!(tally_files(&dir), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// F2: past the cap, a new name is counted in the process, with one log line.
    #[test]
    fn a_full_tally_directory_takes_no_new_file_and_counts_in_the_process() {
        let dir = fresh_dir("full");
        let now = now_ms();
        for i in 0..DIR_MAX_FILES {
            let mut t = Tally::new(&format!("filler-{i}"));
            t.failures.push(now);
            std::fs::write(dir.join(file_name(&t.user)), t.render()).unwrap();
        }
        let opts = line_with(&dir, "");
        let host = LogHost::default();
        let asked = AtomicU64::new(0);
        for _ in 0..3 {
            guard(&host, &opts, "newcomer@example.com", || {
                asked.fetch_add(1, Ordering::Relaxed);
                Verdict::WrongPassword.into()
            });
        }
        assert_eq!(
            tally_files(&dir),
            DIR_MAX_FILES,
            "a file was added past the cap"
        );
        assert_eq!(
            asked.load(Ordering::Relaxed),
            2,
            "not throttled per process"
        );
        let log = host.0.lock().unwrap().clone();
        let full: Vec<_> = log.iter().filter(|l| l.contains("tally files")).collect();
        assert_eq!(full.len(), 1, "{log:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A tally file another process keeps locked past the check's time is "busy": this check
    /// counts in its process, and the log says so without the permissions advice that a
    /// directory this process cannot write calls for.
    #[test]
    fn a_tally_locked_past_the_checks_time_is_busy_not_a_permissions_problem() {
        // The check falls back to the per-process tally, which the test above holds on purpose.
        let _alone = HOLDS_LOCAL.lock();
        let dir = fresh_dir("busy");
        let mut p = policy(3);
        p.dir = dir.clone();
        let tallies = TallyDir::open(&dir).unwrap();
        let now = now_ms();
        // Create the file, then hold its lock through a second open file description, as
        // another process would.
        let until = Instant::now() + Duration::from_secs(1);
        let created = tallies.update("john", true, &p, now, until, |t| t.failures.push(now));
        assert_eq!(created, Ok(Some(())));
        let held = std::fs::File::open(dir.join(file_name("john"))).unwrap();
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);

        let soon = || Instant::now() + Duration::from_millis(50);
        let busy = tallies.update("john", true, &p, now, soon(), |_| ());
        assert!(matches!(busy, Err(TallyError::Busy(_))), "{busy:?}");

        let host = LogHost::default();
        let mut store = Store::Shared(tallies);
        let counted = store.update(&host, "john", &p, now, soon(), |t| t.failures.push(now));
        assert_eq!(counted, Some(()), "counted in the process instead");
        let log = host.0.lock().unwrap().clone();
        assert!(
            log.iter()
                .any(|l| l.contains("counted in this process only")),
            "{log:?}"
        );
        assert!(!log.iter().any(|l| l.contains("chgrp")), "{log:?}");
        let _ = update_local("john", false, &p, now, soon(), |t| t.failures.clear());
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// F6: the per-process tally held by another thread: wait, within the budget, and never
    /// ask the backend uncounted.
    #[test]
    fn a_busy_per_process_tally_is_waited_for_and_never_skipped() {
        let _alone = HOLDS_LOCAL.lock();
        // A name too long for the file system: the store is the per-process one.
        let dir = PathBuf::from(format!("/tmp/{}", "x".repeat(300)));
        let opts = line_with(&dir, "timeout=0.3");
        let host = LogHost::default();
        let hold = |ms: u64| {
            let (tx, rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                let held = lock_briefly(&LOCAL);
                let _ = tx.send(held.is_some());
                std::thread::sleep(Duration::from_millis(ms));
                drop(held);
            });
            assert!(rx.recv().unwrap());
            t
        };
        // Held past the budget: not asked, and not a "wrong password" either.
        let t = hold(1000);
        let asked = AtomicU64::new(0);
        let answer = guard(&host, &opts, "held-long@example.com", || {
            asked.fetch_add(1, Ordering::Relaxed);
            Verdict::WrongPassword.into()
        });
        t.join().unwrap();
        assert_eq!(
            asked.load(Ordering::Relaxed),
            0,
            "asked the backend uncounted"
        );
        assert!(
            matches!(answer.verdict, Verdict::Unavailable(_)),
            "{answer:?}"
        );
        // Held briefly: waited for, then asked and counted.
        let t = hold(100);
        guard(&host, &opts, "held-short@example.com", || {
            asked.fetch_add(1, Ordering::Relaxed);
            Verdict::WrongPassword.into()
        });
        t.join().unwrap();
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        let counted = lock_briefly(&LOCAL)
            .and_then(|l| l.get("held-short@example.com").map(|t| t.failures.len()));
        assert_eq!(counted, Some(1));
    }

    #[test]
    fn local_tallies_are_bounded() {
        let _alone = HOLDS_LOCAL.lock();
        let p = policy(1);
        for i in 0..(LOCAL_MAX_USERS + 50) {
            let until = Instant::now() + SETTLE_WAIT;
            update_local(&format!("local-bound-{i}"), true, &p, 0, until, |t| {
                t.record_failure(&p, 0)
            });
        }
        let n = lock_briefly(&LOCAL).map(|l| l.len()).unwrap_or(0);
        assert!(n <= LOCAL_MAX_USERS, "{n}");
    }
}
