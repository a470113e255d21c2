//! `mailauth-check --service NAME USER`: the real stack of /etc/pam.d/NAME (or of NAME in
//! `--confdir DIR`) through libpam, as pamtester runs it. Every module's syslog lines are
//! also printed on standard error (openlog's LOG_PERROR), so the admin sees pam_mailauth's
//! reasons next to the stack's verdict.

use crate::outcome::{self, Phase};
use crate::terminal::{self, Echo};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;
use std::time::Instant;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_RHOST: c_int = 4;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

/// A copy of `bytes` in memory libpam may free (it frees conversation replies itself).
unsafe fn c_copy(bytes: &[u8]) -> Option<*mut c_char> {
    if bytes.contains(&0) {
        return None;
    }
    let p = libc::malloc(bytes.len() + 1) as *mut u8;
    if p.is_null() {
        return None;
    }
    ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
    *p.add(bytes.len()) = 0;
    Some(p as *mut c_char)
}

/// Wipes and frees the replies given so far, when the conversation fails halfway.
unsafe fn discard(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        let r = (*replies.add(i)).resp;
        if !r.is_null() {
            let len = libc::strlen(r);
            for j in 0..len {
                ptr::write_volatile(r.add(j), 0);
            }
            libc::free(r as *mut c_void);
        }
    }
    libc::free(replies as *mut c_void);
}

/// The conversation: prompts go to the person (or are answered from standard input), and
/// messages from the modules are shown on standard error.
extern "C" fn converse(
    n: c_int,
    msgs: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    _data: *mut c_void,
) -> c_int {
    // A panic must not unwind into libpam.
    catch_unwind(AssertUnwindSafe(|| unsafe { answer(n, msgs, resp) })).unwrap_or(PAM_CONV_ERR)
}

unsafe fn answer(n: c_int, msgs: *mut *const PamMessage, resp: *mut *mut PamResponse) -> c_int {
    if n <= 0 || msgs.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    let n = n as usize;
    let replies = libc::calloc(n, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // Linux-PAM passes an array of pointers to messages.
        let m = &**msgs.add(i);
        let text = if m.msg.is_null() {
            String::new()
        } else {
            CStr::from_ptr(m.msg).to_string_lossy().into_owned()
        };
        let echo = match m.msg_style {
            PAM_PROMPT_ECHO_OFF => Echo::Off,
            PAM_PROMPT_ECHO_ON => Echo::On,
            PAM_ERROR_MSG | PAM_TEXT_INFO => {
                eprintln!("{}", pam_mailauth::pam::printable(&text));
                continue;
            }
            _ => {
                discard(replies, i);
                return PAM_CONV_ERR;
            }
        };
        let reply = match terminal::ask(&pam_mailauth::pam::printable(&text), echo) {
            Ok(line) => c_copy(&line),
            Err(e) => {
                eprintln!("mailauth-check: cannot read an answer: {e}");
                None
            }
        };
        match reply {
            Some(p) => (*replies.add(i)).resp = p,
            None => {
                discard(replies, i);
                return PAM_CONV_ERR;
            }
        }
    }
    *resp = replies;
    PAM_SUCCESS
}

/// Runs the stack's auth phase and, after a success, its account phase (or account alone).
/// Returns the exit status.
pub fn run(
    service: &str,
    confdir: Option<&Path>,
    user: &str,
    rhost: Option<&str>,
    account_only: bool,
) -> u8 {
    let (Ok(c_service), Ok(c_user)) = (CString::new(service), CString::new(user)) else {
        eprintln!("mailauth-check: the service and user names may not contain NUL bytes");
        return outcome::CONFIGURATION;
    };
    let c_confdir = match confdir.map(|d| CString::new(d.as_os_str().as_encoded_bytes())) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            eprintln!("mailauth-check: the --confdir path may not contain NUL bytes");
            return outcome::CONFIGURATION;
        }
    };
    if let Some(dir) = confdir {
        if !dir.join(service).is_file() {
            eprintln!(
                "mailauth-check: {} does not exist (libpam would fall back to 'other')",
                dir.join(service).display()
            );
            return outcome::CONFIGURATION;
        }
    }
    // Every module's syslog lines are printed on standard error too (they still reach syslog).
    // SAFETY: the ident is a static C string; libc keeps the pointer.
    unsafe {
        libc::openlog(
            c"mailauth-check".as_ptr(),
            libc::LOG_PERROR,
            libc::LOG_AUTHPRIV,
        )
    };
    let conv = PamConv {
        conv: converse,
        appdata_ptr: ptr::null_mut(),
    };
    let mut pamh: *mut c_void = ptr::null_mut();
    // SAFETY: documented libpam calls with valid C strings and a conversation that outlives
    // the handle (pam_end below).
    let rc = unsafe {
        match &c_confdir {
            Some(dir) => pam_start_confdir(
                c_service.as_ptr(),
                c_user.as_ptr(),
                &conv,
                dir.as_ptr(),
                &mut pamh,
            ),
            None => pam_start(c_service.as_ptr(), c_user.as_ptr(), &conv, &mut pamh),
        }
    };
    if rc != PAM_SUCCESS || pamh.is_null() {
        eprintln!(
            "mailauth-check: libpam could not start service '{service}': {}",
            outcome::name(rc)
        );
        return outcome::CONFIGURATION;
    }
    if let Some(rhost) = rhost.and_then(|r| CString::new(r).ok()) {
        unsafe { pam_set_item(pamh, PAM_RHOST, rhost.as_ptr() as *const c_void) };
    }
    let mut codes = Vec::new();
    let mut last = PAM_SUCCESS;
    if !account_only {
        let started = Instant::now();
        last = unsafe { pam_authenticate(pamh, 0) };
        outcome::print(Phase::Auth, last, started.elapsed());
        codes.push(last);
    }
    if last == PAM_SUCCESS {
        let started = Instant::now();
        last = unsafe { pam_acct_mgmt(pamh, 0) };
        outcome::print(Phase::Account, last, started.elapsed());
        codes.push(last);
    }
    unsafe { pam_end(pamh, last) };
    outcome::overall(&codes)
}
