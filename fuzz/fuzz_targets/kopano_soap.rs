//! kopano-server's SOAP answers, and the escaping of what goes into a logon request.
//! Never panics; escaped text cannot close or open an XML element.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mailauth::backend::kopano::soap::{logon_envelope, parse_logon_answer, xml_escape};
use pam_mailauth::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let _ = parse_logon_answer(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let escaped = xml_escape(text);
        assert!(!escaped.contains('<') && !escaped.contains('>'));
        assert!(!escaped
            .chars()
            .any(|c| (c as u32) < 0x20 && c != '\t' && c != '\n'));
        let (user, password) = text.split_once('\0').unwrap_or((text, ""));
        let envelope = logon_envelope(user, &Secret::new(password));
        // Exactly the elements of the template, whatever the user and password hold.
        assert_eq!(
            envelope.expose().matches('<').count(),
            logon_envelope("u", &Secret::new("p"))
                .expose()
                .matches('<')
                .count()
        );
    }
});
