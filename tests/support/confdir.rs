//! Points the PAM of a daemon the tests start (saslauthd, Apache, Dovecot's auth worker) at a
//! test's own service directory: an LD_PRELOAD library built from `confdir_preload.c`, whose
//! comment says why it replaces pam_wrapper.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The service directory the preloaded `pam_start()` reads.
pub const CONFDIR: &str = "PAM_MAILAUTH_TEST_CONFDIR";
/// Set (to anything): `pam_syslog()` lines go to syslog instead of the daemon's stderr.
pub const USE_SYSLOG: &str = "PAM_MAILAUTH_TEST_USE_SYSLOG";

static BUILT: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_at_exit() {
    if let Some(lib) = BUILT.get() {
        if let Some(dir) = lib.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The preload library, built on first use by this test process, in a directory of its own
/// under the temp dir (0755: daemons running as www-data or dovecot map it too).
pub fn preload() -> &'static Path {
    BUILT.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pam_mailauth-preload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        unsafe { libc::atexit(remove_at_exit) };
        let source = dir.join("confdir_preload.c");
        std::fs::write(&source, include_str!("confdir_preload.c")).unwrap();
        let lib = dir.join("confdir_preload.so");
        super::process::output_of(
            Command::new("cc")
                .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
                .arg(&lib)
                .arg(&source)
                .args(["-lpam", "-ldl"]),
            "a C compiler and libpam0g-dev",
        );
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
        lib
    })
}

/// The environment that makes a daemon's PAM read its services from `services`.
pub fn env(services: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("LD_PRELOAD", preload().as_os_str().to_owned()),
        (CONFDIR, services.as_os_str().to_owned()),
    ]
}
