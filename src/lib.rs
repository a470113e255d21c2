//! pam_mailauth: a Linux-PAM module that checks passwords against mail systems' own
//! credential stores (MailStore, Axigen, Kopano/Zarafa, Apache James, PostfixAdmin SCIM).
//!
//! The exported hooks are thin: convert arguments, catch any panic, call `core`. A panic that
//! crossed `extern "C"` would abort saslauthd or an httpd child, so none may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod cache;
pub mod core;
pub mod fork;
pub mod http;
pub mod jsobject;
pub mod lock;
pub mod offhost;
pub mod offline;
pub mod options;
pub mod pam;
pub mod runtime;
pub mod secret;
pub mod sigpipe;
pub mod sql;
pub mod throttle;
pub mod trusted_file;
pub mod verdict;

use pam::{Host, Level, LibPam};
use pamsm::{Pam, PamError};
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Module arguments as Rust strings (borrowed from libpam, which keeps them for the handle's
/// life); `None` if libpam handed us something unusable.
unsafe fn arguments<'a>(argc: c_int, argv: *const *const c_char) -> Option<Vec<&'a str>> {
    if argc < 0 || (argc > 0 && argv.is_null()) {
        return None;
    }
    let mut args = Vec::with_capacity(argc as usize);
    for i in 0..argc as usize {
        let p = *argv.add(i);
        if p.is_null() {
            return None;
        }
        args.push(text(CStr::from_ptr(p))?);
    }
    Some(args)
}

/// An argument as text. Module lines are ASCII, and checking that is a few times cheaper than
/// UTF-8 validation (every hook of every login converts the whole line).
fn text(arg: &CStr) -> Option<&str> {
    let bytes = arg.to_bytes();
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Runs one hook: arguments in, PAM code out, and no panic ever escapes.
unsafe fn hook(
    pamh: &Pam,
    argc: c_int,
    argv: *const *const c_char,
    body: fn(&dyn Host, &[&str]) -> PamError,
) -> c_int {
    // Every write of the module, on this thread and on the threads it starts here, happens
    // with SIGPIPE blocked (from its first network I/O on: `runtime::run`); one raised
    // meanwhile is taken back before the host's mask returns. A hook without network I/O (a
    // cache hit) makes no system call for this.
    let _pid = fork::InHook::enter();
    let _sigpipe = sigpipe::Hook::arm();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let host = LibPam(pamh);
        match arguments(argc, argv) {
            Some(args) => body(&host, &args),
            None => {
                host.log(
                    Level::Error,
                    "configuration error: a module argument is not valid UTF-8",
                );
                PamError::SERVICE_ERR
            }
        }
    }));
    match outcome {
        Ok(code) => code as c_int,
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                LibPam(pamh).log(
                    Level::Error,
                    "internal error (a bug: please report it); answering PAM_SERVICE_ERR",
                )
            }));
            PamError::SERVICE_ERR as c_int
        }
    }
}

/// # Safety
/// Called by libpam with a valid handle and argument vector.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: Pam,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    hook(&pamh, argc, argv, core::authenticate)
}

/// # Safety
/// Called by libpam with a valid handle and argument vector.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    pamh: Pam,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    hook(&pamh, argc, argv, core::account)
}

/// # Safety
/// Called by libpam with a valid handle and argument vector.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    pamh: Pam,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    hook(&pamh, argc, argv, |host, _| core::setcred(host))
}

/// # Safety
/// Called by libpam with a valid handle and argument vector.
///
/// There is no session to open; the hook answers as setcred does. PAM_IGNORE alone would
/// make a host that opens sessions (Dovecot's `session=yes`) deny every login when this
/// module is the only `session` line: libpam fails a stack in which every module ignored.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_open_session(
    pamh: Pam,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    hook(&pamh, argc, argv, |host, _| core::setcred(host))
}

/// # Safety
/// Called by libpam with a valid handle and argument vector. As `pam_sm_open_session`.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_close_session(
    pamh: Pam,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    hook(&pamh, argc, argv, |host, _| core::setcred(host))
}

/// # Safety
/// Called by libpam; passwords are changed in the mail system, not here.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_chauthtok(
    _: Pam,
    _: c_int,
    _: c_int,
    _: *const *const c_char,
) -> c_int {
    PamError::IGNORE as c_int
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_taken_as_ascii_or_utf8_and_nothing_else() {
        assert_eq!(
            text(c"url=http://127.0.0.1/"),
            Some("url=http://127.0.0.1/")
        );
        assert_eq!(
            text(c"domain=bücher.example"),
            Some("domain=bücher.example")
        );
        assert_eq!(text(c"user=\xe9t\xe9"), None); // Latin-1
        assert_eq!(text(c"x=\xc3"), None); // a UTF-8 sequence cut short
        let (one, two) = (c"quiet", c"x=\xff");
        let argv = [one.as_ptr(), two.as_ptr()];
        assert!(unsafe { arguments(2, argv.as_ptr()) }.is_none());
        assert_eq!(unsafe { arguments(1, argv.as_ptr()) }, Some(vec!["quiet"]));
    }
}
