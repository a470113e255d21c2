//! What one PAM handle remembers and reports, through real libpam: an earlier success never
//! outlives a later failure (whatever kind of failure), a user name that is not UTF-8 is an
//! unknown user like any other, and `set_pam_user` makes PAM_USER the name that was checked.

mod support;

use support::examples::{LocalUnix, LOCAL_PASSWORD, LOCAL_USER};
use support::mailstore::MailStore;
use support::*;

const USER: &str = "john.doe";
const PASSWORD: &str = "Passw0rd";

/// The config file the failing steps rewrite (a new file each time, as an admin's editor
/// would), so one handle can meet every kind of failure.
struct Config {
    dir: TempDir,
}

impl Config {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("pam_mailauth.conf")
    }

    fn write(&self, text: &str) {
        let tmp = self.dir.path().join("next.conf");
        config_file(self.dir.path(), text, 0o644);
        // config_file writes pam_mailauth.conf in place; rename a copy over it so the
        // module sees a new file (new inode), not only a new mtime.
        std::fs::copy(self.path(), &tmp).unwrap();
        std::fs::rename(&tmp, self.path()).unwrap();
    }
}

#[test]
fn a_later_failure_in_the_same_handle_withdraws_an_earlier_success() {
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let good = format!(
        "backend = mailstore\nurl = {}\nstrip_domain\ntimeout = 2\n",
        server.url("/")
    );
    let config = Config {
        dir: TempDir::new("state"),
    };
    config.write(&good);
    let svc = Service::module_line(&format!("config={}", config.path().display()));

    type Step = Box<dyn Fn(&mut Transaction, &Config)>;
    let kinds: Vec<(&str, Step, Step)> = vec![
        (
            "wrong password",
            Box::new(|t, _| t.set_password(Some("wrong"))),
            Box::new(|_, _| {}),
        ),
        (
            "empty password",
            Box::new(|t, _| t.set_password(Some(""))),
            Box::new(|_, _| {}),
        ),
        (
            "conversation failure",
            Box::new(|t, _| t.set_password(None)),
            Box::new(|_, _| {}),
        ),
        (
            "configuration error",
            Box::new(|_, c| c.write("backend = mailstore\ncolour = blue\n")),
            Box::new(|_, _| {}),
        ),
        (
            "backend that cannot check passwords",
            Box::new(|_, c| c.write("backend = scim\nurl = http://127.0.0.1:9/\nhttp_user = a\n")),
            Box::new(|_, _| {}),
        ),
        (
            "backend unavailable",
            Box::new(|_, c| {
                c.write(&format!(
                    "backend = mailstore\nurl = {}\n",
                    support::http::refused_url()
                ))
            }),
            Box::new(|_, _| {}),
        ),
        (
            "no user name",
            Box::new(|t, _| t.set_user_bytes(b"")),
            Box::new(|t, _| t.set_user_bytes(USER.as_bytes())),
        ),
        (
            "empty name after mapping",
            Box::new(|t, _| t.set_user_bytes(b"@example.com")),
            Box::new(|t, _| t.set_user_bytes(USER.as_bytes())),
        ),
        (
            "user name not UTF-8",
            Box::new(|t, _| t.set_user_bytes(b"j\xf6rg")),
            Box::new(|t, _| t.set_user_bytes(USER.as_bytes())),
        ),
    ];
    for (kind, fail, restore_user) in kinds {
        config.write(&good);
        let mut t = svc.start(USER, Some(PASSWORD));
        assert_eq!(t.authenticate(), PAM_SUCCESS, "{kind}: first the success");
        assert_eq!(t.setcred(), PAM_SUCCESS, "{kind}");
        fail(&mut t, &config);
        let failed = t.authenticate();
        assert_ne!(failed, PAM_SUCCESS, "{kind}: the failure must fail");
        // Put back what the failure needed (the user, a readable configuration), so that
        // only the remembered state can decide what account and setcred answer.
        restore_user(&mut t, &config);
        config.write(&good);
        t.set_password(Some(PASSWORD));
        assert_ne!(
            t.acct_mgmt(),
            PAM_SUCCESS,
            "{kind} (auth answered {failed}): pam_acct_mgmt still trusts the earlier success"
        );
        assert_ne!(
            t.setcred(),
            PAM_SUCCESS,
            "{kind} (auth answered {failed}): pam_setcred still trusts the earlier success"
        );
        // ...and a new success in the same handle counts again.
        assert_eq!(t.authenticate(), PAM_SUCCESS, "{kind}");
        assert_eq!(t.acct_mgmt(), PAM_SUCCESS, "{kind}");
    }
}

#[test]
fn a_user_name_that_is_not_utf8_is_an_unknown_user_with_the_same_leniency() {
    // A Latin-1 client types "jörg" (0xF6). Below a `default=die` line, ignore_unknown_user
    // must pass it on to the local module, as it does for any user the store does not know.
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let unix = LocalUnix::new();
    let text = |args: &str| {
        format!(
            "auth [success=done ignore=ignore default=die] {} backend=mailstore url={} {args}\n\
             auth required {}\n",
            module().display(),
            server.url("/"),
            unix.auth_module()
        )
    };
    let lenient = Service::new(&text("ignore_unknown_user"));
    let mut t = lenient.start(LOCAL_USER, Some(LOCAL_PASSWORD));
    t.set_user_bytes(b"j\xf6rg");
    // The local stand-in knows only LOCAL_USER: control reached it (its refusal is
    // PAM_SYSTEM_ERR or PAM_AUTH_ERR), rather than the module ending the stack.
    let rc = t.authenticate();
    assert_ne!(
        rc, PAM_USER_UNKNOWN,
        "ignore_unknown_user did not apply to a non-UTF-8 name"
    );
    assert_eq!(t.prompts(), 1, "the local module below was asked");

    // With a stand-in that accepts whatever the name, the stack succeeds.
    let lenient = Service::new(&format!(
        "auth [success=done ignore=ignore default=die] MODULE backend=mailstore url={} ignore_unknown_user\n\
         auth required pam_permit.so\n",
        server.url("/")
    ));
    let mut t = lenient.start(USER, Some(PASSWORD));
    t.set_user_bytes(b"j\xf6rg");
    assert_eq!(t.authenticate(), PAM_SUCCESS);

    // Without the option: PAM_USER_UNKNOWN, and the store is never asked about it.
    let strict = Service::module_line(&format!("backend=mailstore url={}", server.url("/")));
    let mut t = strict.start(USER, Some(PASSWORD));
    t.set_user_bytes(b"j\xf6rg");
    assert_eq!(t.authenticate(), PAM_USER_UNKNOWN);
    assert_eq!(t.acct_mgmt(), PAM_USER_UNKNOWN);
    assert_eq!(server.count(), 0);
}

#[test]
fn set_pam_user_reports_the_name_that_was_checked() {
    let server = MailStore::new(&[("alice", PASSWORD)]).serve();
    let base = format!("backend=mailstore url={} strip_domain", server.url("/"));

    // Without the option PAM_USER stays as typed: what Postfix and Apache then trust.
    let svc = Service::module_line(&base);
    let mut t = svc.start("alice@victim.example", Some(PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.user().as_deref(), Some("alice@victim.example"));

    // With it, PAM_USER is the mapped name the backend checked, and the account phase and
    // setcred of the same handle still know this module authenticated that user.
    let svc = Service::module_line(&format!("{base} set_pam_user"));
    let mut t = svc.start("alice@victim.example", Some(PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.user().as_deref(), Some("alice"));
    assert_eq!(t.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(t.setcred(), PAM_SUCCESS);

    // A failure leaves PAM_USER alone.
    let mut t = svc.start("alice@victim.example", Some("wrong"));
    assert_eq!(t.authenticate(), PAM_AUTH_ERR);
    assert_eq!(t.user().as_deref(), Some("alice@victim.example"));
}

#[test]
fn lowercase_folds_ascii_only_so_the_kelvin_sign_is_not_k() {
    // "\u{212A}ate" (KELVIN SIGN) is not "kate": Unicode lower-casing would make it so and
    // let it log in as kate (and, with set_pam_user, become kate).
    let server = MailStore::new(&[("kate@example.com", PASSWORD)]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} lowercase set_pam_user",
        server.url("/")
    ));
    let mut t = svc.start("KATE@Example.COM", Some(PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS, "ASCII case still folds");
    assert_eq!(t.user().as_deref(), Some("kate@example.com"));
    let mut t = svc.start("\u{212A}ate@example.com", Some(PASSWORD));
    assert_eq!(t.authenticate(), PAM_AUTH_ERR);
    assert_eq!(t.user().as_deref(), Some("\u{212A}ate@example.com"));
    let asked: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.form().get("user").cloned())
        .collect();
    assert_eq!(asked, ["kate@example.com", "\u{212A}ate@example.com"]);
}
