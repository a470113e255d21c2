//! The built .so as a host sees it: exactly the PAM hooks exported, and NODELETE in effect.

mod support;

use std::ffi::CString;

#[test]
fn exports_exactly_the_pam_hooks() {
    let so = support::module();
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output()
        .expect("nm (binutils)");
    assert!(out.status.success());
    let mut exported: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[1] == "T").then(|| f[2].to_string())
        })
        .collect();
    exported.sort();
    assert_eq!(
        exported,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred"
        ]
    );
}

#[test]
fn dlopen_finds_the_hooks_and_nodelete_keeps_it_mapped() {
    let so = CString::new(support::module().to_str().unwrap()).unwrap();
    unsafe {
        let handle = libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(
            !handle.is_null(),
            "dlopen: {}",
            support::c_str(libc::dlerror())
        );
        for name in ["pam_sm_authenticate", "pam_sm_setcred", "pam_sm_acct_mgmt"] {
            let sym = CString::new(name).unwrap();
            assert!(
                !libc::dlsym(handle, sym.as_ptr()).is_null(),
                "{name} missing"
            );
        }
        assert_eq!(libc::dlclose(handle), 0);
        // With NODELETE the object stays loaded after its last dlclose.
        let again = libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        assert!(!again.is_null(), "module was unloaded: NODELETE missing");
    }
    let out = std::process::Command::new("readelf")
        .arg("-d")
        .arg(support::module())
        .output()
        .expect("readelf");
    assert!(String::from_utf8_lossy(&out.stdout).contains("NODELETE"));
}
