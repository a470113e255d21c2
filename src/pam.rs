//! The PAM handle, behind a small trait so the flows in `core` read as PAM semantics and
//! can be driven by a fake handle in unit tests. `LibPam` is the real one.

use crate::secret::Secret;
use pamsm::{LogLvl, Pam, PamError, PamLibExt};
use std::borrow::Cow;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr;

/// The data key under which auth tells account/setcred who it authenticated.
const AUTHENTICATED_KEY: &CStr = c"pam_mailauth.authenticated";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

pub trait Host {
    /// The service name (`smtp`, `webmail`, ...). Borrowed where the handle allows: a cache
    /// hit asks for it every time.
    fn service(&self) -> Cow<'_, str>;
    /// The user name, asking the application for it if it set none.
    fn user(&self) -> Result<String, PamError>;
    fn rhost(&self) -> Option<String>;
    /// The token an earlier module in the stack obtained, if any. A token that is not UTF-8
    /// is `Err(PAM_AUTH_ERR)`: see `password_text`.
    fn stacked_password(&self) -> Result<Option<Secret>, PamError>;
    /// Asks through the conversation (echo off) and stores the answer as PAM_AUTHTOK, so
    /// modules below can `use_first_pass` it.
    fn prompt_password(&self) -> Result<Secret, PamError>;
    /// Sets PAM_USER (`set_pam_user`: the name the backend checked). A handle that cannot
    /// says so; the default is such a handle, so a success is never reported under a name
    /// that was not set.
    fn set_user(&self, _user: &str) -> Result<(), PamError> {
        Err(PamError::SYSTEM_ERR)
    }
    /// Records, for account and setcred in this handle, that this user was authenticated here.
    fn remember_authenticated(&self, user: &str);
    fn authenticated_user(&self) -> Option<String>;
    /// Withdraws that record: a later failed authentication in the same handle must not leave
    /// an earlier success standing for account and setcred. (No user is empty: core refuses
    /// empty names, so "" matches nobody.)
    fn forget_authenticated(&self) {
        self.remember_authenticated("");
    }
    fn log(&self, level: Level, message: &str);
    /// Asks libpam to delay a failed authentication by at least this long.
    fn fail_delay(&self, micros: u32);
}

/// A log line as it may be written: control characters from user names or server answers
/// must not forge log lines (or, printed by mailauth-check, drive the admin's terminal).
pub fn printable(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub struct LibPam<'a>(pub &'a Pam);

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
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_USER: c_int = 2;
const PAM_CONV: c_int = 5;
const PAM_AUTHTOK: c_int = 6;

#[link(name = "pam")]
extern "C" {
    fn pam_get_item(pamh: *const c_void, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_set_item(pamh: *const c_void, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_fail_delay(pamh: *const c_void, usec: c_uint) -> c_int;
    fn pam_set_data(
        pamh: *const c_void,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Option<Cleanup>,
    ) -> c_int;
    fn pam_get_data(pamh: *const c_void, name: *const c_char, data: *mut *const c_void) -> c_int;
}

type Cleanup = unsafe extern "C" fn(*mut c_void, *mut c_void, c_int);

/// Frees a name stored by `remember_authenticated` (libpam calls it when the data is replaced
/// or the handle ends).
unsafe extern "C" fn free_name(_pamh: *mut c_void, data: *mut c_void, _status: c_int) {
    if !data.is_null() {
        drop(CString::from_raw(data as *mut c_char));
    }
}

impl LibPam<'_> {
    fn raw(&self) -> *const c_void {
        // SAFETY: pamsm::Pam is #[repr(transparent)] over the pam_handle_t pointer.
        unsafe { *(self.0 as *const Pam as *const *const c_void) }
    }

    /// The name `remember_authenticated` stored in this handle, if one is stored.
    fn stored_name(&self) -> Option<&CStr> {
        let mut data: *const c_void = ptr::null();
        // SAFETY: documented libpam call; the data, if any, is a C string we stored, alive
        // until it is replaced or the handle ends (both after this borrow).
        let rc = unsafe { pam_get_data(self.raw(), AUTHENTICATED_KEY.as_ptr(), &mut data) };
        if rc != 0 || data.is_null() {
            return None;
        }
        Some(unsafe { CStr::from_ptr(data as *const c_char) })
    }
}

/// A PAM item as text: borrowed when it is UTF-8 (checked with `to_str`, cheaper than the
/// lossy conversion's own check, which is left for the odd item that is not).
fn text(item: &CStr) -> Cow<'_, str> {
    item.to_str()
        .map_or_else(|_| item.to_string_lossy(), Cow::Borrowed)
}

fn owned(s: Result<Option<&CStr>, PamError>) -> Option<String> {
    s.ok().flatten().map(|c| text(c).into_owned())
}

/// A password as text. Every backend speaks UTF-8 (forms, JSON, XML, MySQL), and a lossy
/// conversion would both change what was typed and make different byte strings the same
/// password (for the backend and the cache alike), so anything else is refused.
fn password_text(bytes: Vec<u8>) -> Result<Secret, PamError> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Secret::new(text)),
        Err(e) => {
            let mut raw = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut raw);
            Err(PamError::AUTH_ERR)
        }
    }
}

/// Wipes and frees a C string the application's conversation allocated.
unsafe fn wipe_and_free(p: *mut c_char) {
    if p.is_null() {
        return;
    }
    let len = libc::strlen(p);
    for i in 0..len {
        ptr::write_volatile(p.add(i), 0);
    }
    libc::free(p as *mut c_void);
}

impl Host for LibPam<'_> {
    fn service(&self) -> Cow<'_, str> {
        match self.0.get_service() {
            Ok(Some(name)) => text(name),
            _ => Cow::Borrowed("?"),
        }
    }

    fn user(&self) -> Result<String, PamError> {
        match self.0.get_user(None)? {
            Some(u) => u
                .to_str()
                .map(str::to_owned)
                .map_err(|_| PamError::USER_UNKNOWN),
            None => Err(PamError::USER_UNKNOWN),
        }
    }

    fn rhost(&self) -> Option<String> {
        owned(self.0.get_rhost())
    }

    fn stacked_password(&self) -> Result<Option<Secret>, PamError> {
        match self.0.get_cached_authtok() {
            Ok(Some(c)) => password_text(c.to_bytes().to_vec())
                .map(Some)
                .inspect_err(|_| {
                    self.log(
                        Level::Notice,
                        "auth: the stacked password is not UTF-8; refused",
                    )
                }),
            _ => Ok(None),
        }
    }

    fn prompt_password(&self) -> Result<Secret, PamError> {
        let mut conv_ptr: *const c_void = ptr::null();
        // SAFETY: documented libpam call; the item is owned by libpam and outlives this call.
        let rc = unsafe { pam_get_item(self.raw(), PAM_CONV, &mut conv_ptr) };
        if rc != 0 || conv_ptr.is_null() {
            return Err(PamError::CONV_ERR);
        }
        let conv = unsafe { &*(conv_ptr as *const PamConv) };
        let conv_fn = conv.conv.ok_or(PamError::CONV_ERR)?;
        let prompt = c"Password: ";
        let message = PamMessage {
            msg_style: PAM_PROMPT_ECHO_OFF,
            msg: prompt.as_ptr(),
        };
        let mut message_ptr: *const PamMessage = &message;
        let mut responses: *mut PamResponse = ptr::null_mut();
        let rc = conv_fn(1, &mut message_ptr, &mut responses, conv.appdata_ptr);
        if responses.is_null() {
            return Err(PamError::CONV_ERR);
        }
        // SAFETY: on return the application owns nothing; we copy, wipe and free its reply.
        let typed = unsafe {
            let reply = (*responses).resp;
            let typed = (rc == 0 && !reply.is_null()).then(|| {
                // The modules below get exactly what was typed, whatever its encoding (libpam
                // keeps its own copy).
                pam_set_item(self.raw(), PAM_AUTHTOK, reply as *const c_void);
                CStr::from_ptr(reply).to_bytes().to_vec()
            });
            wipe_and_free(reply);
            libc::free(responses as *mut c_void);
            typed
        };
        // One copy, which password_text turns into the Secret (or wipes).
        let bytes = typed.ok_or(PamError::CONV_ERR)?;
        password_text(bytes).inspect_err(|_| {
            self.log(
                Level::Notice,
                "auth: the password typed is not UTF-8; refused",
            )
        })
    }

    fn set_user(&self, user: &str) -> Result<(), PamError> {
        let name = CString::new(user).map_err(|_| PamError::USER_UNKNOWN)?;
        // SAFETY: documented libpam call; libpam copies the string.
        match unsafe { pam_set_item(self.raw(), PAM_USER, name.as_ptr() as *const c_void) } {
            0 => Ok(()),
            _ => Err(PamError::SYSTEM_ERR),
        }
    }

    fn remember_authenticated(&self, user: &str) {
        let Ok(name) = CString::new(user) else {
            self.forget_authenticated();
            return;
        };
        let raw = name.into_raw();
        // SAFETY: libpam keeps the pointer until it calls free_name with it.
        let rc = unsafe {
            pam_set_data(
                self.raw(),
                AUTHENTICATED_KEY.as_ptr(),
                raw as *mut c_void,
                Some(free_name),
            )
        };
        if rc != 0 {
            // Not stored: libpam did not take it.
            drop(unsafe { CString::from_raw(raw) });
        }
    }

    fn forget_authenticated(&self) {
        // Nothing stored (every transaction's first call): nothing to withdraw, and no entry
        // for libpam to allocate.
        if self.stored_name().is_some() {
            // SAFETY: libpam frees the previous name through its cleanup and keeps NULL.
            unsafe {
                pam_set_data(
                    self.raw(),
                    AUTHENTICATED_KEY.as_ptr(),
                    ptr::null_mut(),
                    None,
                )
            };
        }
    }

    fn authenticated_user(&self) -> Option<String> {
        self.stored_name().map(|name| text(name).into_owned())
    }

    fn log(&self, level: Level, message: &str) {
        let lvl = match level {
            Level::Error => LogLvl::ERR,
            Level::Warning => LogLvl::WARNING,
            Level::Notice => LogLvl::NOTICE,
            Level::Info => LogLvl::INFO,
            Level::Debug => LogLvl::DEBUG,
        };
        let _ = self.0.syslog(lvl, &printable(message));
    }

    fn fail_delay(&self, micros: u32) {
        unsafe { pam_fail_delay(self.raw(), micros) };
    }
}
