//! What an Axigen WebMail or Mailbox API login answers: bodies, Set-Cookie and Location.
//! Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::backend::axigen::{
    hmail_cookie, parse_login_answer, parse_rest_answer, rest_login_url, url_key,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_login_answer(data);
    let _ = parse_rest_answer(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(key) = hmail_cookie(text) {
            assert!(!key.is_empty() && !key.contains(';'));
        }
        if let Ok(base) = url::Url::parse("https://webmail.example.com/") {
            if let Some(key) = url_key(text, &base) {
                assert!(!key.is_empty());
            }
        }
        let _ = rest_login_url(text);
    }
});
