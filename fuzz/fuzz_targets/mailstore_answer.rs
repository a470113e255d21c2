//! Whatever a MailStore endpoint (or anything answering at its URL) sends back.
//! Never panics; only the documented forms give a definite answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::backend::mailstore::{directory_has_user, parse_auth_answer};
use pam_mailauth::jsobject::parse_object;

fuzz_target!(|data: &[u8]| {
    if let Some(yes) = parse_auth_answer(data) {
        // Exactly one member, `succeeded`, as the shared reader sees it (escapes decoded).
        let object = parse_object(data);
        assert_eq!(object.as_ref().map(|o| o.len()), Some(1));
        assert_eq!(object.and_then(|o| o.bool("succeeded")), Some(yes));
        let text = String::from_utf8_lossy(data);
        assert!(text.contains(if yes { "true" } else { "false" }));
    }
    // The first line (up to 64 bytes) is the user name, the rest the directory.
    let split = data.iter().take(64).position(|b| *b == b'\n').unwrap_or(0);
    let user = String::from_utf8_lossy(&data[..split]);
    let _ = directory_has_user(&data[split..], &user);
});
