//! The Debian package as an admin receives it: built by packaging/build-deb (cargo-deb), its
//! file list, modes and control fields, lintian's verdict, its manual pages rendered, and the
//! packaged module and pam-auth-update profile authenticating through real libpam from a
//! scratch root (dpkg-deb -x; nothing is installed on this machine).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::mailstore::MailStore;
use support::*;

const MAIL_USER: &str = "john.doe@example.com";
const MAIL_PASSWORD: &str = "Passw0rd mail";
const PATH: &str = "/mailstore-integration/index.php";
const CONFIG: &str = "/etc/security/pam_mailauth.conf";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot run: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The .deb, built once per test process by the documented command.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let (ok, stdout, stderr) = output(&mut Command::new(root().join("packaging/build-deb")));
        assert!(ok, "packaging/build-deb failed:\n{stdout}\n{stderr}");
        let last = stdout.lines().last().expect("build-deb printed nothing");
        let deb = PathBuf::from(last);
        assert!(
            deb.is_absolute() && deb.is_file() && last.ends_with(".deb"),
            "build-deb's last line is not the .deb's path: {last:?}"
        );
        deb
    })
}

/// The package unpacked (dpkg-deb -x) into a scratch root, once per test process.
fn unpacked() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("package-root");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ok, _, stderr) = output(Command::new("dpkg-deb").arg("-x").arg(deb()).arg(&dir));
        assert!(ok, "dpkg-deb -x: {stderr}");
        dir
    })
}

fn multiarch() -> String {
    let (ok, stdout, _) = output(Command::new("dpkg-architecture").arg("-qDEB_HOST_MULTIARCH"));
    assert!(ok, "dpkg-architecture");
    stdout.trim().to_string()
}

fn module_path() -> String {
    format!("usr/lib/{}/security/pam_mailauth.so", multiarch())
}

#[test]
fn the_package_holds_exactly_the_documented_files_with_their_modes_and_owners() {
    let (ok, listing, stderr) = output(Command::new("dpkg-deb").arg("-c").arg(deb()));
    assert!(ok, "{stderr}");
    // "-rw-r--r-- 0/0  1234 2026-11-30 00:00 ./usr/..." -> path: (mode, owner)
    let files: BTreeMap<String, (String, String)> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[5].trim_start_matches("./").to_string(),
                (f[0].to_string(), f[1].to_string()),
            )
        })
        .collect();
    let module = module_path();
    let expected: BTreeMap<String, (String, String)> = [
        (module.as_str(), "-rw-r--r--"),
        ("usr/sbin/mailauth-check", "-rwxr-xr-x"),
        ("usr/share/man/man8/pam_mailauth.8.gz", "-rw-r--r--"),
        ("usr/share/man/man8/mailauth-check.8.gz", "-rw-r--r--"),
        ("usr/share/man/man5/pam_mailauth.conf.5.gz", "-rw-r--r--"),
        ("usr/share/pam-configs/mailauth", "-rw-r--r--"),
        ("etc/security/pam_mailauth.conf", "-rw-r-----"),
        ("usr/share/doc/pam-mailauth/copyright", "-rw-r--r--"),
        (
            "usr/share/doc/pam-mailauth/changelog.Debian.gz",
            "-rw-r--r--",
        ),
        ("usr/share/doc/pam-mailauth/README.md", "-rw-r--r--"),
        ("usr/share/lintian/overrides/pam-mailauth", "-rw-r--r--"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), (m.to_string(), "0/0".to_string())))
    .collect();
    assert_eq!(files, expected, "the package's files, modes and owners");
}

#[test]
fn control_fields_depend_on_what_the_binaries_link_and_the_config_is_a_conffile() {
    let field = |name: &str| {
        let (ok, stdout, stderr) = output(Command::new("dpkg-deb").arg("-f").arg(deb()).arg(name));
        assert!(ok, "{stderr}");
        stdout.trim().to_string()
    };
    assert_eq!(field("Package"), "pam-mailauth");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    let (_, arch, _) = output(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Architecture"), arch.trim());
    assert_eq!(field("Section"), "admin");
    // The changelog and the RPM spec name the version being packaged.
    let version = env!("CARGO_PKG_VERSION");
    let changelog = std::fs::read_to_string(root().join("packaging/debian/changelog")).unwrap();
    assert!(
        changelog.starts_with(&format!("pam-mailauth ({version}-1) ")),
        "packaging/debian/changelog's first entry is not {version}-1"
    );
    let spec = std::fs::read_to_string(root().join("packaging/rpm/pam_mailauth.spec")).unwrap();
    assert!(
        spec.lines()
            .any(|l| l.starts_with("Version:") && l.ends_with(&format!(" {version}"))),
        "the RPM spec's Version is not {version}"
    );
    assert!(field("Maintainer").contains('@'));
    assert!(field("Description").len() > 200, "an extended description");
    let depends = field("Depends");
    // pam_start_confdir (mailauth-check --confdir) needs libpam 1.4.
    // ca-certificates: the trust roots without cafile= (trusted_file::trust_roots).
    for dep in [
        "libc6 (>= ",
        "libpam0g (>= 1.4",
        "libssl3 (>= ",
        "ca-certificates",
    ] {
        assert!(depends.contains(dep), "Depends lacks {dep}: {depends}");
    }
    let dir = TempDir::new("control");
    let (ok, _, stderr) = output(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(deb())
            .arg(dir.path()),
    );
    assert!(ok, "{stderr}");
    let conffiles = std::fs::read_to_string(dir.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), CONFIG);
    // The copyright file carries the licence (machine-readable, GPL-3+).
    let copyright =
        std::fs::read_to_string(unpacked().join("usr/share/doc/pam-mailauth/copyright")).unwrap();
    assert!(copyright
        .starts_with("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"));
    assert!(
        copyright.contains("License: GPL-3+")
            && copyright.contains("/usr/share/common-licenses/GPL-3")
    );
}

#[test]
fn lintian_finds_no_errors_and_no_warnings() {
    let (_, stdout, stderr) = output(Command::new("lintian").arg(deb()));
    eprintln!("lintian:\n{stdout}{stderr}");
    let complaints: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(complaints.is_empty(), "lintian: {complaints:#?}");
}

#[test]
fn the_packaged_binaries_are_stripped_and_the_module_stays_loaded() {
    let module = unpacked().join(module_path());
    for binary in [module.clone(), unpacked().join("usr/sbin/mailauth-check")] {
        let (ok, sections, _) = output(Command::new("readelf").arg("-SW").arg(&binary));
        assert!(ok);
        // (.debug_gdb_scripts is a loaded section naming pretty-printers, not debug info.)
        for section in [
            " .symtab ",
            " .debug_info ",
            " .debug_line ",
            " .debug_str ",
        ] {
            assert!(
                !sections.contains(section),
                "{} still has {section}",
                binary.display()
            );
        }
    }
    let (_, dynamic, _) = output(Command::new("readelf").arg("-d").arg(&module));
    assert!(dynamic.contains("NODELETE"), "{dynamic}");
}

/// A root-owned copy of the packaged example config with a backend appended: the example
/// itself must parse (everything in it is commented out).
fn packaged_config_for(dir: &Path, url: &str) -> PathBuf {
    let example = std::fs::read_to_string(unpacked().join(CONFIG.trim_start_matches('/'))).unwrap();
    config_file(
        dir,
        &format!("{example}\nbackend = mailstore\nurl = {url}\n"),
        0o640,
    )
}

#[test]
fn the_packaged_module_authenticates_through_libpam_from_the_scratch_root() {
    let server = MailStore::new(&[(MAIL_USER, MAIL_PASSWORD)]).serve();
    let dir = TempDir::new("pkg");
    let config = packaged_config_for(dir.path(), &server.url(PATH));
    let module = unpacked().join(module_path());
    let service = Service::with_module(
        &format!(
            "auth required MODULE config={c}\naccount required MODULE config={c}\n",
            c = config.display()
        ),
        &module,
    );
    assert_eq!(
        service.login(MAIL_USER, MAIL_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(service.login(MAIL_USER, "wrong"), (PAM_AUTH_ERR, None));
    assert_eq!(server.count(), 2);

    // The packaged mailauth-check, on the same configuration and on the same stack.
    let tool = unpacked().join("usr/sbin/mailauth-check");
    let run = |args: &[&str], password: &str| {
        use std::io::Write;
        let mut child = Command::new(&tool)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = writeln!(child.stdin.take().unwrap(), "{password}");
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let config_arg = format!("config={}", config.display());
    assert_eq!(run(&[&config_arg, MAIL_USER], MAIL_PASSWORD).0, 0);
    assert_eq!(run(&[&config_arg, MAIL_USER], "wrong").0, 1);
    let confdir = service.dir.path().to_str().unwrap();
    let (status, stdout) = run(
        &["--service", &service.name, "--confdir", confdir, MAIL_USER],
        MAIL_PASSWORD,
    );
    assert_eq!(status, 0, "{stdout}");
}

/// A private debconf database, so that pam-auth-update never records anything in this
/// machine's (it keeps the chosen profiles there, whatever --root says).
fn private_debconf(root: &Path) -> PathBuf {
    let dir = root.join("debconf");
    std::fs::create_dir_all(&dir).unwrap();
    let rc = dir.join("debconf.conf");
    std::fs::write(
        &rc,
        format!(
            "Config: configdb\nTemplates: templatedb\n\n\
             Name: configdb\nDriver: File\nFilename: {d}/config.dat\n\n\
             Name: templatedb\nDriver: File\nMode: 644\nFilename: {d}/templates.dat\n",
            d = dir.display()
        ),
    )
    .unwrap();
    rc
}

fn pam_auth_update(root: &Path, args: &[&str]) {
    let (ok, stdout, stderr) = output(
        Command::new("pam-auth-update")
            .arg("--root")
            .arg(root)
            .args(args)
            .env("DEBCONF_SYSTEMRC", private_debconf(root))
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    assert!(ok, "pam-auth-update {args:?}: {stdout}{stderr}");
}

#[test]
fn the_pam_auth_update_profile_is_off_until_enabled_then_serves_mail_users_below_pam_unix() {
    let scratch = TempDir::new("pam-auth-update");
    let r = scratch.path();
    for d in ["usr/share/pam-configs", "etc/pam.d", "var/lib/pam"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(
        "/usr/share/pam-configs/unix",
        r.join("usr/share/pam-configs/unix"),
    )
    .expect("libpam-runtime's unix profile");
    std::fs::copy(
        unpacked().join("usr/share/pam-configs/mailauth"),
        r.join("usr/share/pam-configs/mailauth"),
    )
    .unwrap();

    // As on installation: the profile is there, and off.
    pam_auth_update(r, &["--package", "--force"]);
    let auth = std::fs::read_to_string(r.join("etc/pam.d/common-auth")).unwrap();
    assert!(auth.contains("pam_unix.so"), "{auth}");
    assert!(
        !auth.contains("pam_mailauth"),
        "enabled by default:\n{auth}"
    );

    // The admin enables it.
    pam_auth_update(r, &["--enable", "mailauth"]);
    let auth = std::fs::read_to_string(r.join("etc/pam.d/common-auth")).unwrap();
    let account = std::fs::read_to_string(r.join("etc/pam.d/common-account")).unwrap();
    let expected = format!("pam_mailauth.so try_first_pass config={CONFIG}");
    assert!(auth.contains(&expected), "{auth}");
    assert!(
        auth.find("pam_unix.so").unwrap() < auth.find("pam_mailauth.so").unwrap(),
        "local users are checked first:\n{auth}"
    );
    assert!(
        account.contains(&format!("pam_mailauth.so config={CONFIG}")),
        "{account}"
    );

    // What it wrote, run through libpam with the packaged module and the real pam_unix: a
    // mail user (unknown to this system) is prompted once, by pam_unix, and accepted by
    // pam_mailauth with that same password; the account phase lets the user through.
    let server = MailStore::new(&[(MAIL_USER, MAIL_PASSWORD)]).serve();
    let config = packaged_config_for(scratch.path(), &server.url(PATH));
    let module = unpacked().join(module_path());
    // (Written out in full: libpam resolves @include in /etc/pam.d even under a confdir.)
    let confdir = TempDir::new("pam-auth-update-stack");
    let stack = format!("{auth}\n{account}")
        .replace("pam_mailauth.so", module.to_str().unwrap())
        .replace(CONFIG, config.to_str().unwrap());
    std::fs::write(confdir.path().join("login"), stack).unwrap();
    let mut t = Transaction::start(confdir.path(), "login", MAIL_USER, Some(MAIL_PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.prompts(), 1, "one password prompt for the whole stack");
    assert_eq!(t.acct_mgmt(), PAM_SUCCESS);
    drop(t);
    let mut t = Transaction::start(confdir.path(), "login", MAIL_USER, Some("wrong"));
    assert_eq!(t.authenticate(), PAM_AUTH_ERR);
    drop(t);
    assert_eq!(server.count(), 2);
}

#[test]
fn the_packaged_manual_pages_render_without_warnings() {
    for page in [
        "usr/share/man/man8/pam_mailauth.8.gz",
        "usr/share/man/man8/mailauth-check.8.gz",
        "usr/share/man/man5/pam_mailauth.conf.5.gz",
    ] {
        let path = unpacked().join(page);
        let (ok, text, warnings) = output(
            Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&path)
                .env("MANWIDTH", "80")
                .env("LC_ALL", "C.UTF-8"),
        );
        assert!(ok && warnings.is_empty(), "man -l {page}: {warnings}");
        assert!(text.contains("NAME") && text.len() > 1000, "{page}: {text}");
        let (ok, _, warnings) = output(
            Command::new("sh")
                .arg("-c")
                .arg(format!("zcat '{}' | groff -ww -z -man", path.display())),
        );
        assert!(ok && warnings.is_empty(), "groff -ww {page}: {warnings}");
    }
}

/// The option keys the module accepts: the arms of `Builder::set` in src/options.rs.
fn option_keys() -> Vec<String> {
    let source = std::fs::read_to_string(root().join("src/options.rs")).unwrap();
    let start = source.find("fn set(").expect("options.rs has Builder::set");
    let body = &source[start..];
    let end = body.find("\n    }\n").unwrap_or(body.len());
    let keys: Vec<String> = body[..end]
        .lines()
        .filter(|l| l.starts_with("            \"") && !l.starts_with("             "))
        .flat_map(|l| {
            let arms = l.trim().split("=>").next().unwrap_or("");
            arms.split('|')
                .map(|k| k.trim().trim_matches('"').to_string())
                .collect::<Vec<_>>()
        })
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        // Compiled in only for the panic test (feature fault-injection).
        .filter(|k| k != "inject_panic")
        .collect();
    assert!(keys.len() > 20, "found only {keys:?}");
    keys
}

/// Whether a roff page names `key` as an option: on a macro line, followed by `=`, a blank, a
/// quote, or the line's end.
fn names_option(page: &str, key: &str) -> bool {
    page.lines().filter(|l| l.starts_with('.')).any(|l| {
        let mut rest = l;
        while let Some(at) = rest.find(key) {
            let before = rest[..at].chars().last();
            let after = rest[at + key.len()..].chars().next();
            let starts = matches!(before, Some(' ' | '"' | '(' | '\t'));
            let ends = matches!(after, None | Some('=' | ' ' | '"' | ','));
            if starts && ends {
                return true;
            }
            rest = &rest[at + key.len()..];
        }
        false
    })
}

#[test]
fn both_manual_pages_name_every_option_the_module_accepts() {
    let keys = option_keys();
    for page in ["packaging/pam_mailauth.8", "packaging/pam_mailauth.conf.5"] {
        let text = std::fs::read_to_string(root().join(page)).unwrap();
        let missing: Vec<&String> = keys.iter().filter(|k| !names_option(&text, k)).collect();
        assert!(missing.is_empty(), "{page} does not name {missing:?}");
    }
}

#[test]
fn the_rpm_spec_passes_rpmlint_and_builds_the_same_layout_under_lib64() {
    let spec = root().join("packaging/rpm/pam_mailauth.spec");
    let (_, lint, stderr) = output(Command::new("rpmlint").arg(&spec));
    eprintln!("rpmlint:\n{lint}{stderr}");
    assert!(
        lint.contains(" 0 errors,") && !lint.lines().any(|l| l.contains(": E: ")),
        "rpmlint: {lint}{stderr}"
    );
    // rpmbuild packages the release build the .deb was made from (prebuilt: no second cargo
    // build; --nodeps: Fedora's BuildRequires are not Debian packages).
    deb();
    let topdir = TempDir::new("rpm");
    let (ok, stdout, stderr) = output(
        Command::new("rpmbuild")
            .args([
                "-bb",
                "--build-in-place",
                "--nodeps",
                "--define",
                "prebuilt 1",
            ])
            .arg("--define")
            .arg(format!("_topdir {}", topdir.path().display()))
            .arg(&spec)
            .current_dir(root()),
    );
    assert!(ok, "rpmbuild: {stdout}{stderr}");
    let arch_dir = std::fs::read_dir(topdir.path().join("RPMS"))
        .unwrap()
        .next()
        .expect("RPMS/<arch>/")
        .unwrap()
        .path();
    let rpm = std::fs::read_dir(arch_dir)
        .unwrap()
        .next()
        .expect("an rpm")
        .unwrap()
        .path();
    let (ok, listing, stderr) = output(Command::new("rpm").arg("-qlpv").arg(&rpm));
    assert!(ok, "{stderr}");
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("the rpm lacks {path}:\n{listing}"))
    };
    assert_eq!(mode_of("/usr/lib64/security/pam_mailauth.so"), "-rwxr-xr-x");
    assert_eq!(mode_of("/usr/sbin/mailauth-check"), "-rwxr-xr-x");
    assert_eq!(mode_of(CONFIG), "-rw-r-----");
    for page in [
        "/usr/share/man/man8/pam_mailauth.8",
        "/usr/share/man/man8/mailauth-check.8",
        "/usr/share/man/man5/pam_mailauth.conf.5",
    ] {
        assert!(listing.contains(page), "the rpm lacks {page}:\n{listing}");
    }
    let (_, config_files, _) = output(Command::new("rpm").arg("-qpc").arg(&rpm));
    assert_eq!(
        config_files.trim(),
        CONFIG,
        "the config is %config(noreplace)"
    );
}
