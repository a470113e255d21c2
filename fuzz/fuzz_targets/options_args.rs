//! Module arguments as libpam hands them over: any UTF-8 strings (one per line here).
//! Never panics; whatever is accepted holds no secret, because secrets are config-file only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::options::Options;
use pam_mailauth::sql;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // config= would read files: the file text has its own target (options_file).
    let args: Vec<&str> = text
        .split(['\n', '\0'])
        .filter(|a| !a.starts_with("config="))
        .collect();
    if let Ok(opts) = Options::parse(&args) {
        assert!(
            opts.http_password.is_none(),
            "secret accepted as an argument"
        );
        assert!(opts.token.is_none(), "secret accepted as an argument");
        if let Some(dsn) = &opts.dsn {
            assert!(
                !sql::is_secret(dsn.expose()),
                "secret accepted as an argument"
            );
        }
        let _ = format!("{opts:?}");
        for user in &args {
            let _ = opts.mapping.apply(user);
        }
    }
});
