//! Config file text (what follows the first NUL byte is module arguments, one per line).
//! Never panics; the options' Debug output does not depend on any secret's value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::options::Options;
use pam_mailauth::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (file, args) = input.split_once('\0').unwrap_or((input, ""));
    let args: Vec<&str> = args
        .split('\n')
        .filter(|a| !a.is_empty() && !a.starts_with("config="))
        .collect();
    if let Ok(opts) = Options::parse_config_text(file, &args) {
        let mut blank = opts.clone();
        for s in [&mut blank.http_password, &mut blank.token, &mut blank.dsn] {
            if s.is_some() {
                *s = Some(Secret::new("other value"));
            }
        }
        assert_eq!(
            format!("{opts:?}"),
            format!("{blank:?}"),
            "Debug shows a secret"
        );
    }
});
