//! A panic inside a hook must become PAM_SERVICE_ERR, and the calling process must live on
//! (since Rust 1.81 an unwinding panic across extern "C" aborts the host).

mod support;

use support::syslog::Capture;
use support::*;

#[test]
fn a_panic_in_a_hook_is_service_err_and_the_process_lives() {
    let module = fault_module();
    let svc = Service::with_module(
        "auth required MODULE backend=mailstore url=http://127.0.0.1:9/ inject_panic\n",
        &module,
    );
    let capture = Capture::start();
    for _ in 0..3 {
        assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR);
    }
    // PAM_SERVICE_ERR alone could also be a configuration error (inject_panic unknown): the
    // hook's own "internal error" line proves the panic happened and was caught.
    let lines = capture.module_lines();
    let caught = lines
        .iter()
        .filter(|l| l.contains("internal error"))
        .count();
    assert_eq!(caught, 3, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("configuration error")),
        "{lines:#?}"
    );
    drop(capture);
    // Still here, and the same module still answers normally.
    let svc = Service::with_module(
        "auth required MODULE backend=mailstore url=http://127.0.0.1:9/\n",
        &module,
    );
    assert_eq!(svc.auth("john.doe", ""), PAM_AUTH_ERR);
}
