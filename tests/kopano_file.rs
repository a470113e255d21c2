//! backend=kopano file=: an exported copy of the Kopano DB plugin's hashes, through real
//! libpam.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use support::*;

/// protocols.md's worked example: salt 0a1b2c3d + "secret".
const EXAMPLE: &str = "0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f";

fn hash_file(dir: &TempDir, text: &str, mode: u32) -> PathBuf {
    let path = dir.path().join("kopano-hashes");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn line(path: &std::path::Path, extra: &str) -> Service {
    Service::module_line(&format!("backend=kopano file={} {extra}", path.display()))
}

#[test]
fn the_worked_example_authenticates_secret() {
    let dir = TempDir::new("kopano-file");
    let path = hash_file(
        &dir,
        &format!("# exported from kopano\n\njohn.doe@example.com:{EXAMPLE}\n"),
        0o600,
    );
    let svc = line(&path, "");
    assert_eq!(
        svc.login("john.doe@example.com", "secret"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(svc.auth("John.Doe@Example.com", "secret"), PAM_SUCCESS);
    assert_eq!(svc.auth("john.doe@example.com", "Secret"), PAM_AUTH_ERR);
    assert_eq!(svc.auth("jane@example.com", "secret"), PAM_USER_UNKNOWN);
    assert_eq!(
        svc.start("john.doe@example.com", None).acct_mgmt(),
        PAM_SUCCESS
    );
    assert_eq!(
        svc.start("jane@example.com", None).acct_mgmt(),
        PAM_USER_UNKNOWN
    );
}

#[test]
fn legacy_plaintext_and_uppercase_values_never_match() {
    let dir = TempDir::new("kopano-file");
    let path = hash_file(
        &dir,
        &format!(
            "legacy:5ebe2294ecd0e0f08eab7690d2a6ee69\nplain:secret\nupper:{}\n",
            EXAMPLE.to_ascii_uppercase()
        ),
        0o640,
    );
    let svc = line(&path, "");
    for user in ["legacy", "plain", "upper"] {
        assert_eq!(svc.auth(user, "secret"), PAM_AUTH_ERR, "{user}");
    }
}

#[test]
fn features_in_the_optional_fields() {
    let dir = TempDir::new("kopano-file");
    let path = hash_file(
        &dir,
        &format!("plain:{EXAMPLE}\nimap:{EXAMPLE}:imap\noff:{EXAMPLE}:imap:imap|mobile\n"),
        0o600,
    );
    let imap = line(&path, "feature=imap");
    assert_eq!(
        imap.login("imap", "secret"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(imap.auth("plain", "secret"), PAM_AUTH_ERR);
    assert_eq!(imap.start("plain", None).acct_mgmt(), PAM_PERM_DENIED);
    assert_eq!(imap.auth("off", "secret"), PAM_AUTH_ERR);
    let mobile = line(&path, "feature=mobile");
    assert_eq!(mobile.auth("plain", "secret"), PAM_SUCCESS);
    assert_eq!(mobile.auth("off", "secret"), PAM_AUTH_ERR);
}

#[test]
fn an_unsafe_or_broken_file_is_a_configuration_error() {
    let dir = TempDir::new("kopano-file");
    let good = hash_file(&dir, &format!("john:{EXAMPLE}\n"), 0o600);
    // Writable by group or other.
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert_eq!(line(&good, "").auth("john", "secret"), PAM_SERVICE_ERR);
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(line(&good, "").auth("john", "secret"), PAM_SUCCESS);
    // A symbolic link.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert_eq!(line(&link, "").auth("john", "secret"), PAM_SERVICE_ERR);
    // Not owned by root.
    let other = dir.path().join("other");
    std::fs::copy(&good, &other).unwrap();
    std::os::unix::fs::chown(&other, Some(65534), None).unwrap();
    assert_eq!(line(&other, "").auth("john", "secret"), PAM_SERVICE_ERR);
    // Missing, and malformed.
    assert_eq!(
        line(&dir.path().join("absent"), "").auth("john", "secret"),
        PAM_SERVICE_ERR
    );
    let dir2 = TempDir::new("kopano-file");
    let broken = hash_file(&dir2, &format!("john:{EXAMPLE}\njust-a-name\n"), 0o600);
    assert_eq!(line(&broken, "").auth("john", "secret"), PAM_SERVICE_ERR);
}

#[test]
fn a_hash_file_readable_by_everyone_is_a_configuration_error() {
    // Salted MD5 is cheap to crack: the hashes must be as private as the config file's secrets.
    let dir = TempDir::new("kopano-file");
    let path = hash_file(&dir, &format!("john:{EXAMPLE}\n"), 0o644);
    let capture = support::syslog::Capture::start();
    assert_eq!(line(&path, "").auth("john", "secret"), PAM_SERVICE_ERR);
    let lines = capture.module_lines().join("\n");
    assert!(lines.contains("chmod o-r"), "{lines}");
    // Readable by the host's group is fine.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(line(&path, "").auth("john", "secret"), PAM_SUCCESS);
}
