//! The quick-start demonstration: a real PAM authentication end to end, with no outside
//! service. It starts a local MailStore-style endpoint (written from MailStore's protocol
//! document), writes a PAM service file that stacks the built pam_mailauth.so, and runs two
//! logins through the system's real libpam: one right password, one wrong.

#[path = "../tests/support/mod.rs"]
mod support;

use std::ffi::CStr;
use support::mailstore::MailStore;
use support::*;

#[link(name = "pam")]
extern "C" {
    fn pam_strerror(pamh: *const std::ffi::c_void, errnum: i32) -> *const std::ffi::c_char;
}

fn describe(code: i32) -> String {
    // pam_strerror ignores the handle on Linux-PAM.
    let text = unsafe { CStr::from_ptr(pam_strerror(std::ptr::null(), code)) };
    format!("{code} ({})", text.to_string_lossy())
}

fn main() {
    let server = MailStore::new(&[("john.doe@example.test", "correct horse")]).serve();
    let stack = format!(
        "auth    required MODULE backend=mailstore url={0} timeout=5\n\
         account required MODULE backend=mailstore url={0} timeout=5\n",
        server.url("/mailstore-integration/index.php")
    );
    let service = Service::new(&stack);
    println!(
        "PAM service file ({}):",
        service.dir.path().join(&service.name).display()
    );
    for line in std::fs::read_to_string(service.dir.path().join(&service.name))
        .unwrap_or_default()
        .lines()
    {
        println!("    {line}");
    }
    println!();
    let mut failures = 0;
    for (password, expected) in [
        ("correct horse", PAM_SUCCESS),
        ("battery staple", PAM_AUTH_ERR),
    ] {
        let (auth, account) = service.login("john.doe@example.test", password);
        let verdict = if auth == PAM_SUCCESS {
            "ACCEPTED"
        } else {
            "REFUSED"
        };
        print!(
            "login john.doe@example.test / {password:?}: pam_authenticate = {}",
            describe(auth)
        );
        if let Some(a) = account {
            print!(", pam_acct_mgmt = {}", describe(a));
        }
        println!("  => {verdict}");
        if auth != expected {
            failures += 1;
        }
    }
    println!(
        "\nthe endpoint received {} request(s), each a form POST with the password in the body",
        server.count()
    );
    if failures > 0 {
        eprintln!("unexpected result");
        std::process::exit(1);
    }
}
