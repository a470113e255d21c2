//! The files in pam.d-examples/, made runnable: the module name becomes the built module's
//! absolute path and the example URLs become local servers. Every substitution must find its
//! text, so an example cannot drift away from what the tests run.

use super::pam::{module, TempDir};
use std::path::{Path, PathBuf};

/// The MailStore URL the examples use.
pub const MAILSTORE_URL: &str = "https://archive.example.com/mailstore-integration/index.php";

pub struct Example {
    name: String,
    pub text: String,
}

impl Example {
    pub fn load(name: &str) -> Example {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pam.d-examples")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Example {
            name: name.to_string(),
            text,
        }
        .with("pam_mailauth.so", module().to_str().unwrap())
    }

    /// Replaces every occurrence of `from`, which must occur.
    pub fn with(mut self, from: &str, to: &str) -> Example {
        assert!(
            self.text.contains(from),
            "pam.d-examples/{} no longer contains {from:?}",
            self.name
        );
        self.text = self.text.replace(from, to);
        self
    }

    pub fn mailstore(self, url: &str) -> Example {
        self.with(MAILSTORE_URL, url)
    }

    /// Writes the service as `service` into a fresh directory (for pam_start_confdir).
    pub fn install(&self, service: &str) -> TempDir {
        let dir = TempDir::new("example");
        std::fs::write(dir.path().join(service), &self.text).unwrap();
        dir
    }
}

/// A stand-in for pam_unix (testing.md §1): pam_exec with `expose_authtok` prompts once (or
/// takes the token an earlier module obtained), keeps it as PAM_AUTHTOK for the modules below,
/// and runs a script that accepts exactly one local user. In the account phase the script
/// knows only that user. Returns the module text to put where `pam_unix.so ...` stood.
pub struct LocalUnix {
    dir: TempDir,
}

pub const LOCAL_USER: &str = "localadmin";
pub const LOCAL_PASSWORD: &str = "L0cal pass";

impl LocalUnix {
    pub fn new() -> LocalUnix {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("unix");
        let script = dir.path().join("local-check.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 # pam_exec stand-in for pam_unix: PAM_USER, PAM_TYPE; the token on stdin.\n\
                 [ \"$PAM_USER\" = '{LOCAL_USER}' ] || exit 1\n\
                 [ \"$PAM_TYPE\" = auth ] || exit 0\n\
                 pw=$(tr -d '\\000')\n\
                 [ \"$pw\" = '{LOCAL_PASSWORD}' ]\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        LocalUnix { dir }
    }

    pub fn script(&self) -> PathBuf {
        self.dir.path().join("local-check.sh")
    }

    /// `pam_exec.so expose_authtok quiet SCRIPT`: for auth lines.
    pub fn auth_module(&self) -> String {
        format!(
            "pam_exec.so expose_authtok quiet {}",
            self.script().display()
        )
    }

    /// `pam_exec.so quiet SCRIPT`: for account lines.
    pub fn account_module(&self) -> String {
        format!("pam_exec.so quiet {}", self.script().display())
    }
}

impl Default for LocalUnix {
    fn default() -> Self {
        Self::new()
    }
}
