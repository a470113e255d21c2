//! `url=` / `socket=`: kopano-server's own logon, the check pam_mapi made through MAPI.
//!
//! kopano-server speaks gSOAP (rpc/encoded, namespace `urn:zarafa`) over HTTP: by default on
//! `http://localhost:236/` and on the unix socket `/var/run/kopano/server.sock`. We POST one
//! `ns:logon` with
//! - `ulCapabilities` = UNICODE|... (848): without UNICODE (0x200) the server answers
//!   KCERR_BAD_CHARWIDTH, or would read user and password as Windows-1252;
//! - `ulFlags` = NO_UID_AUTH|NO_REGISTER_SESSION, ALWAYS. Without NO_UID_AUTH (0x1) the
//!   server trusts the peer's unix uid on its socket: a connection from root (saslauthd runs
//!   as root) is logged in as any user with ANY password, turning SMTP AUTH into an open
//!   relay. NO_REGISTER_SESSION (0x2) keeps a session from being left behind per check on
//!   Kopano; Zarafa 7.x knows only NO_UID_AUTH and registers a session on every check.
//! - user and password XML-escaped (`& < > " '`, and CR and other control characters as
//!   character references, so XML parsing gives back exactly the bytes sent).
//!
//! The answer is HTTP 200 in both cases: `<er>0</er>` (with a session id) on success,
//! `<er>2147483657</er>` (KCERR_LOGON_FAILED, 0x80000009) for a wrong password or unknown
//! user alike. Any other `er`, a SOAP fault, another status, or garbage: unavailable.

use crate::backend::Answer;
use crate::http::Client;
use crate::http::StatusCode;
use crate::http::{
    self, failover, read_capped, Attempt, ClientKey, Deadline, Target, AUTH_BODY_CAP,
};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;

/// KOPANO_CAP_UNICODE (0x200) | 0x100 | 0x40 | 0x10: a known-good set.
pub const CAPABILITIES: u32 = 0x200 | 0x100 | 0x40 | 0x10;
/// KOPANO_LOGON_NO_UID_AUTH: check the password even for a root peer on the unix socket.
pub const LOGON_NO_UID_AUTH: u32 = 0x1;
/// KOPANO_LOGON_NO_REGISTER_SESSION: leave no session behind (Kopano; unknown to Zarafa 7.x).
pub const LOGON_NO_REGISTER_SESSION: u32 = 0x2;
/// The flags of every logon we send. Never without NO_UID_AUTH: see the module docs.
pub const LOGON_FLAGS: u32 = LOGON_NO_UID_AUTH | LOGON_NO_REGISTER_SESSION;
/// The server's answer to any failed logon.
pub const KCERR_LOGON_FAILED: u32 = 0x8000_0009;

/// The version we announce: the server refuses clients older than general version 6.
const CLIENT_VERSION: &str = "8,7,0,0";

/// The URL used over the unix socket (host and path are not interpreted by kopano-server).
const SOCKET_URL: &str = "http://localhost/";

/// Text content for XML: the five special characters as entities, control characters
/// (which XML 1.0 normalizes or forbids as raw text) as character references.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("&#{};", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// The `ns:logon` request for this user and password.
pub fn logon_envelope(user: &str, password: &Secret) -> Secret {
    let password = Secret::new(xml_escape(password.expose()));
    Secret::new(format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<SOAP-ENV:Envelope",
            " xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"",
            " xmlns:SOAP-ENC=\"http://schemas.xmlsoap.org/soap/encoding/\"",
            " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
            " xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"",
            " xmlns:ns=\"urn:zarafa\">",
            "<SOAP-ENV:Body SOAP-ENV:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">",
            "<ns:logon>",
            "<szUsername>{user}</szUsername>",
            "<szPassword>{password}</szPassword>",
            "<szImpersonateUser></szImpersonateUser>",
            "<szVersion>{version}</szVersion>",
            "<ulCapabilities>{caps}</ulCapabilities>",
            "<ulFlags>{flags}</ulFlags>",
            "<sLicenseReq></sLicenseReq>",
            "<ullSessionGroup>0</ullSessionGroup>",
            "<szClientApp>pam_mailauth</szClientApp>",
            "<szClientAppVersion>{app_version}</szClientAppVersion>",
            "<szClientAppMisc></szClientAppMisc>",
            "</ns:logon>",
            "</SOAP-ENV:Body>",
            "</SOAP-ENV:Envelope>\n"
        ),
        user = xml_escape(user),
        password = password.expose(),
        version = CLIENT_VERSION,
        caps = CAPABILITIES,
        flags = LOGON_FLAGS,
        app_version = env!("CARGO_PKG_VERSION"),
    ))
}

/// The local name of a tag (`ns:logonResponse` → `logonResponse`), and whether it closes.
fn tag_name(tag: &str) -> (&str, bool) {
    let (closing, tag) = match tag.strip_prefix('/') {
        Some(t) => (true, t),
        None => (false, tag),
    };
    let name = tag
        .split(|c: char| c.is_whitespace() || c == '/')
        .next()
        .unwrap_or("");
    let local = name.rsplit(':').next().unwrap_or(name);
    (local, closing)
}

/// The `er` of a `logonResponse`, `None` for a SOAP fault or anything that is not a logon
/// answer (the server's `er` is an unsigned 32-bit number).
pub fn parse_logon_answer(body: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(body).ok()?;
    let mut rest = text;
    let mut in_response = false;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let tag = &after[..close];
        rest = &after[close + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let (name, closing) = tag_name(tag);
        match (name, closing) {
            ("Fault", _) => return None,
            ("logonResponse", false) => in_response = true,
            ("logonResponse", true) => return None,
            ("er", false) if in_response && !tag.ends_with('/') => {
                let end = rest.find('<')?;
                let value = rest[..end].trim();
                let (next, closing) = tag_name(rest[end + 1..].split('>').next()?);
                if next != "er" || !closing {
                    return None;
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                return value.parse::<u32>().ok();
            }
            _ => {}
        }
    }
    None
}

/// What one server said to one logon.
fn exchange(client: &Client, url: impl Target, envelope: &Secret, deadline: &Deadline) -> Attempt {
    let request = client
        .post(url)
        .header(crate::http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .header("SOAPAction", "\"\"")
        .body(envelope.expose().to_string());
    let response = match http::fetch(request, AUTH_BODY_CAP, deadline) {
        Ok(r) => r,
        Err(attempt) => return attempt,
    };
    let status = response.status();
    if status != StatusCode::OK {
        return Attempt::NextUrl(format!("unexpected HTTP {}", status.as_u16()));
    }
    let body = match read_capped(response, AUTH_BODY_CAP, deadline) {
        Ok(b) => b,
        Err(why) => return Attempt::NextUrl(why),
    };
    match parse_logon_answer(&body) {
        Some(0) => Attempt::Answer(Verdict::Accepted),
        Some(KCERR_LOGON_FAILED) => Attempt::Answer(Verdict::Refused),
        Some(er) => Attempt::NextUrl(format!("kopano-server answered error 0x{er:08x}")),
        None => Attempt::NextUrl("answer is not a SOAP logonResponse with <er>".into()),
    }
}

/// Checks the password with kopano-server's `logon`.
pub fn logon(opts: &Options, user: &str, password: &Secret) -> Answer {
    let envelope = logon_envelope(user, password);
    match &opts.socket {
        Some(path) => {
            // The pooled client for this configuration reaches the socket (http::ClientKey).
            let deadline = Deadline::start(opts.timeout);
            let client = http::Client::new(ClientKey::of(opts));
            let verdict = match exchange(&client, SOCKET_URL, &envelope, &deadline) {
                Attempt::Answer(v) => v,
                Attempt::NextUrl(why) => Verdict::Unavailable(why),
            };
            Answer {
                verdict,
                endpoint: Some(format!("unix:{}", path.display())),
            }
        }
        None => failover(opts, |client, url, deadline| {
            exchange(client, url, &envelope, deadline)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            xml_escape("a&b<c>d\"e'f\rg\u{1}h\ti\nj ü"),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;g&#1;h\ti\nj ü"
        );
    }

    #[test]
    fn envelope_always_carries_no_uid_auth_and_unicode() {
        let env = logon_envelope("jo<hn", &Secret::new("p&ss</szPassword>"));
        let text = env.expose();
        assert!(text.contains("<ulFlags>3</ulFlags>"), "{text}");
        assert!(text.contains("<ulCapabilities>848</ulCapabilities>"));
        assert!(text.contains("<szUsername>jo&lt;hn</szUsername>"));
        assert!(text.contains("<szPassword>p&amp;ss&lt;/szPassword&gt;</szPassword>"));
        assert_eq!(LOGON_FLAGS & LOGON_NO_UID_AUTH, LOGON_NO_UID_AUTH);
        assert_eq!(CAPABILITIES & 0x200, 0x200);
    }

    #[test]
    fn answers() {
        let ok = br#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:zarafa"><SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><ns:logonResponse><er>0</er><ulSessionId>1234567</ulSessionId><lpszVersion>0,8,7,0</lpszVersion><ulCapabilities>848</ulCapabilities></ns:logonResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        assert_eq!(parse_logon_answer(ok), Some(0));
        let failed = br#"<SOAP-ENV:Envelope><SOAP-ENV:Body><ns:logonResponse><er xsi:type="xsd:unsignedInt">2147483657</er><ulSessionId>0</ulSessionId></ns:logonResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        assert_eq!(parse_logon_answer(failed), Some(KCERR_LOGON_FAILED));
        for bad in [
            &b""[..],
            b"<html>er 0</html>",
            b"<er>0</er>",
            b"<ns:logonResponse><er>-1</er></ns:logonResponse>",
            b"<ns:logonResponse><er>0x0</er></ns:logonResponse>",
            b"<ns:logonResponse><er>99999999999</er></ns:logonResponse>",
            b"<ns:logonResponse><er/><x>0</x></ns:logonResponse>",
            b"<ns:logonResponse><er>0<b/></er></ns:logonResponse>",
            b"<ns:logonResponse></ns:logonResponse><er>0</er>",
            b"<SOAP-ENV:Fault><faultcode>x</faultcode></SOAP-ENV:Fault><ns:logonResponse><er>0</er></ns:logonResponse>",
            b"<ns:logonResponse><ern>0</ern></ns:logonResponse>",
            b"<ns:logonResponse><er>0",
        ] {
            assert_eq!(
                parse_logon_answer(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
