//! A libpam harness: real libpam, a service file in a private directory (pam_start_confdir),
//! and a conversation that answers the password and counts how often it was asked.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_SERVICE_ERR: i32 = 3;
pub const PAM_SYSTEM_ERR: i32 = 4;
pub const PAM_PERM_DENIED: i32 = 6;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_AUTHINFO_UNAVAIL: i32 = 9;
pub const PAM_USER_UNKNOWN: i32 = 10;
pub const PAM_CONV_ERR: i32 = 19;
pub const PAM_IGNORE: i32 = 25;

const PAM_USER: c_int = 2;
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
#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_open_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_get_item(pamh: *const c_void, item: c_int, value: *mut *const c_void) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

struct ConvData {
    password: Option<CString>,
    prompts: AtomicUsize,
}

impl Drop for ConvData {
    /// Wipes the test's own copy of the password, so that a test searching the process's
    /// memory for leftover passwords finds only what the module (or libpam) left.
    fn drop(&mut self) {
        if let Some(p) = self.password.take() {
            let mut bytes = p.into_bytes_with_nul();
            for b in bytes.iter_mut() {
                unsafe { std::ptr::write_volatile(b, 0) };
            }
        }
    }
}

extern "C" fn converse(
    n: c_int,
    msgs: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    data: *mut c_void,
) -> c_int {
    unsafe {
        let data = &*(data as *const ConvData);
        let replies =
            libc::calloc(n as usize, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        for i in 0..n as usize {
            // Linux-PAM passes an array of pointers.
            let m = &**msgs.add(i);
            if m.msg_style == 1 || m.msg_style == 2 {
                data.prompts.fetch_add(1, Ordering::SeqCst);
                match &data.password {
                    Some(p) => (*replies.add(i)).resp = libc::strdup(p.as_ptr()),
                    None => {
                        libc::free(replies as *mut c_void);
                        return PAM_CONV_ERR;
                    }
                }
            }
        }
        *resp = replies;
        PAM_SUCCESS
    }
}

/// One PAM transaction (pam_start .. pam_end).
pub struct Transaction {
    pamh: *mut c_void,
    _conv: Box<PamConv>,
    data: Box<ConvData>,
}

impl Transaction {
    pub fn start(dir: &Path, service: &str, user: &str, password: Option<&str>) -> Transaction {
        Self::start_raw(dir, service, user, password.map(str::as_bytes))
    }

    /// Like `start`, with a password of any bytes (a Latin-1 client, say).
    pub fn start_raw(
        dir: &Path,
        service: &str,
        user: &str,
        password: Option<&[u8]>,
    ) -> Transaction {
        let data = Box::new(ConvData {
            password: password.map(|p| CString::new(p).unwrap()),
            prompts: AtomicUsize::new(0),
        });
        let conv = Box::new(PamConv {
            conv: converse,
            appdata_ptr: &*data as *const ConvData as *mut c_void,
        });
        let mut pamh = ptr::null_mut();
        let service = CString::new(service).unwrap();
        let user = CString::new(user).unwrap();
        let dir = CString::new(dir.to_str().unwrap()).unwrap();
        let rc = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &*conv,
                dir.as_ptr(),
                &mut pamh,
            )
        };
        assert_eq!(rc, PAM_SUCCESS, "pam_start_confdir");
        Transaction {
            pamh,
            _conv: conv,
            data,
        }
    }

    pub fn set_rhost(&mut self, rhost: &str) {
        let v = CString::new(rhost).unwrap();
        unsafe { pam_set_item(self.pamh, PAM_RHOST, v.as_ptr() as *const c_void) };
    }

    /// Sets PAM_USER to these bytes (any encoding: a Latin-1 client, say; empty allowed).
    pub fn set_user_bytes(&mut self, user: &[u8]) {
        let v = CString::new(user).unwrap();
        let rc = unsafe { pam_set_item(self.pamh, PAM_USER, v.as_ptr() as *const c_void) };
        assert_eq!(rc, PAM_SUCCESS, "pam_set_item(PAM_USER)");
    }

    /// PAM_USER as it stands now (what a host reads after pam_authenticate).
    pub fn user(&self) -> Option<String> {
        let mut item: *const c_void = ptr::null();
        let rc = unsafe { pam_get_item(self.pamh, PAM_USER, &mut item) };
        (rc == PAM_SUCCESS && !item.is_null()).then(|| c_str(item as *const c_char))
    }

    /// What the conversation answers from now on; `None` makes it fail (PAM_CONV_ERR).
    pub fn set_password(&mut self, password: Option<&str>) {
        self.data.password = password.map(|p| CString::new(p).unwrap());
    }

    pub fn authenticate(&mut self) -> i32 {
        unsafe { pam_authenticate(self.pamh, 0) }
    }

    pub fn acct_mgmt(&mut self) -> i32 {
        unsafe { pam_acct_mgmt(self.pamh, 0) }
    }

    pub fn setcred(&mut self) -> i32 {
        unsafe {
            pam_setcred(self.pamh, 2 /* PAM_ESTABLISH_CRED */)
        }
    }

    pub fn open_session(&mut self) -> i32 {
        unsafe { pam_open_session(self.pamh, 0) }
    }

    pub fn close_session(&mut self) -> i32 {
        unsafe { pam_close_session(self.pamh, 0) }
    }

    /// The raw `pam_handle_t *`, for tests that set items the harness does not wrap.
    pub fn handle(&self) -> *mut c_void {
        self.pamh
    }

    pub fn prompts(&self) -> usize {
        self.data.prompts.load(Ordering::SeqCst)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        unsafe { pam_end(self.pamh, PAM_SUCCESS) };
    }
}

/// The built module. Builds it (release) once per test process unless PAM_MAILAUTH_SO names
/// one, so a test never runs against a stale .so.
pub fn module() -> PathBuf {
    static BUILD: Once = Once::new();
    if let Some(p) = std::env::var_os("PAM_MAILAUTH_SO").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    BUILD.call_once(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--lib", "--quiet"])
            .current_dir(&root)
            .status()
            .expect("cargo build");
        assert!(status.success(), "cargo build --release failed");
    });
    root.join("target/release/libpam_mailauth.so")
}

/// The module built with the `fault-injection` feature (separate target dir, so the normal
/// build is never overwritten under a running test).
pub fn fault_module() -> PathBuf {
    static BUILD: Once = Once::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/fault-injection");
    BUILD.call_once(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--lib",
                "--quiet",
                "--features",
                "fault-injection",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(&root)
            .status()
            .expect("cargo build");
        assert!(
            status.success(),
            "cargo build --features fault-injection failed"
        );
    });
    target.join("release/libpam_mailauth.so")
}

/// A private directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pam_mailauth-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        // Whatever the umask: the module refuses files under a directory others can change.
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&p, mode).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A PAM service (one file in its own directory). `MODULE` in the text stands for the
/// absolute path of the built module.
pub struct Service {
    pub dir: TempDir,
    pub name: String,
}

impl Service {
    pub fn new(stack: &str) -> Service {
        Self::with_module(stack, &module())
    }

    pub fn with_module(stack: &str, module: &Path) -> Service {
        let dir = TempDir::new("svc");
        let name = "mailtest".to_string();
        std::fs::write(
            dir.path().join(&name),
            stack.replace("MODULE", module.to_str().unwrap()),
        )
        .unwrap();
        Service { dir, name }
    }

    /// `auth` and `account` lines for the module with these arguments.
    pub fn module_line(args: &str) -> Service {
        Service::new(&format!(
            "auth required MODULE {args}\naccount required MODULE {args}\n"
        ))
    }

    pub fn start(&self, user: &str, password: Option<&str>) -> Transaction {
        Transaction::start(self.dir.path(), &self.name, user, password)
    }

    pub fn start_raw(&self, user: &str, password: &[u8]) -> Transaction {
        Transaction::start_raw(self.dir.path(), &self.name, user, Some(password))
    }

    /// pam_authenticate, then pam_acct_mgmt if it succeeded (as hosts do).
    pub fn login(&self, user: &str, password: &str) -> (i32, Option<i32>) {
        let mut t = self.start(user, Some(password));
        let auth = t.authenticate();
        let acct = (auth == PAM_SUCCESS).then(|| t.acct_mgmt());
        (auth, acct)
    }

    pub fn auth(&self, user: &str, password: &str) -> i32 {
        self.start(user, Some(password)).authenticate()
    }
}

/// Writes a config file owned by root with the given mode.
pub fn config_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("pam_mailauth.conf");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

pub fn c_str(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
