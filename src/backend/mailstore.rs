//! MailStore "Application Integration" endpoint (protocols.md; seed 000).
//!
//! `POST url` with a form body: `cmd=auth&user=U&pass=P` answers `{"succeeded": true|false}`,
//! which MailStore's own examples print as `{ succeeded: true }` (an unquoted key) and serve as
//! `text/json`. `cmd=list` returns the user directory, consulted only with `account=check`: by
//! the account phase, and after a refused `cmd=auth` to tell an unknown user from a wrong
//! password. The endpoint may demand Basic credentials (`http_user`/`http_password`).

use super::{Answer, Backend};
use crate::http::{self, failover, form_encode, read_capped, Attempt, Deadline, AUTH_BODY_CAP};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::StatusCode;
use zeroize::Zeroizing;

/// The `cmd=list` directory grows with the user count: a separate, larger cap.
const DIRECTORY_BODY_CAP: u64 = 16 * 1024 * 1024;

pub struct Mailstore<'a> {
    opts: &'a Options,
}

impl<'a> Mailstore<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Mailstore { opts }
    }

    fn post(&self, client: &Client, url: &str, body: String) -> RequestBuilder {
        let request = client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        match (&self.opts.http_user, &self.opts.http_password) {
            (Some(user), Some(password)) => request.basic_auth(user, Some(password.expose())),
            _ => request,
        }
    }

    /// The answer, or why this URL gave none.
    fn exchange(
        &self,
        client: &Client,
        url: &str,
        body: String,
        cap: u64,
        deadline: &Deadline,
    ) -> Result<Vec<u8>, Attempt> {
        let response = http::send(self.post(client, url, body), deadline)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Attempt::NextUrl(format!(
                "endpoint refused the module's own credentials (HTTP {}): check http_user/http_password",
                status.as_u16()
            )));
        }
        if status != StatusCode::OK {
            return Err(Attempt::NextUrl(format!(
                "unexpected HTTP {}",
                status.as_u16()
            )));
        }
        let json_like = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.to_ascii_lowercase().contains("json"));
        if !json_like {
            return Err(Attempt::NextUrl("answer is not JSON (Content-Type)".into()));
        }
        read_capped(response, cap, deadline).map_err(Attempt::NextUrl)
    }
}

impl Mailstore<'_> {
    /// `cmd=auth` said no. With `account=check` the directory tells an unknown user from a
    /// wrong password (for `ignore_unknown_user`); if it cannot be read, it stays a plain no.
    fn refusal(&self, client: &Client, url: &str, user: &str, deadline: &Deadline) -> Verdict {
        if !self.opts.account_check {
            return Verdict::Refused;
        }
        match self.exchange(client, url, "cmd=list".into(), DIRECTORY_BODY_CAP, deadline) {
            Ok(answer) if directory_has_user(&answer, user) == Some(false) => Verdict::UnknownUser,
            _ => Verdict::Refused,
        }
    }
}

impl Backend for Mailstore<'_> {
    fn verify(&self, user: &str, password: &Secret) -> Answer {
        // Built in one pre-sized buffer so no unwiped copy of the password is left behind
        // (the copy handed to the HTTP library is beyond our reach).
        let encoded_user = form_encode(user);
        let pass = Zeroizing::new(form_encode(password.expose()));
        let mut body = Zeroizing::new(String::with_capacity(20 + encoded_user.len() + pass.len()));
        body.push_str("cmd=auth&user=");
        body.push_str(&encoded_user);
        body.push_str("&pass=");
        body.push_str(&pass);
        let body = Secret::new(std::mem::take(&mut *body));
        failover(self.opts, |client, url, deadline| {
            match self.exchange(
                client,
                url,
                body.expose().to_string(),
                AUTH_BODY_CAP,
                deadline,
            ) {
                Ok(answer) => match parse_auth_answer(&answer) {
                    Some(true) => Attempt::Answer(Verdict::Accepted),
                    Some(false) => Attempt::Answer(self.refusal(client, url, user, deadline)),
                    None => Attempt::NextUrl("answer is not {\"succeeded\": true|false}".into()),
                },
                Err(attempt) => attempt,
            }
        })
    }

    fn account(&self, user: &str) -> Option<Answer> {
        if !self.opts.account_check {
            return None;
        }
        let answer = failover(self.opts, |client, url, deadline| {
            match self.exchange(client, url, "cmd=list".into(), DIRECTORY_BODY_CAP, deadline) {
                Ok(answer) => match directory_has_user(&answer, user) {
                    Some(true) => Attempt::Answer(Verdict::Accepted),
                    Some(false) => Attempt::Answer(Verdict::UnknownUser),
                    None => Attempt::NextUrl("cmd=list answer is not a JSON array of users".into()),
                },
                Err(attempt) => attempt,
            }
        });
        Some(answer)
    }
}

/// `Some(b)` for exactly the forms the protocol document shows: strict JSON with a boolean
/// `succeeded`, or the document's own `{ succeeded: true }`. Anything else is `None`.
pub fn parse_auth_answer(body: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(body).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        return map.get("succeeded")?.as_bool();
    }
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    let value = inner
        .strip_prefix("succeeded")?
        .trim_start()
        .strip_prefix(':')?
        .trim();
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Whether the `cmd=list` directory holds this user (names compared case-insensitively, as
/// MailStore does); `None` when the answer is not a directory.
pub fn directory_has_user(body: &[u8], user: &str) -> Option<bool> {
    let list: Vec<serde_json::Value> = serde_json::from_slice(body).ok()?;
    let mut found = false;
    for entry in &list {
        let name = entry.get("userName")?.as_str()?;
        found |= name.to_lowercase() == user.to_lowercase();
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_documented_forms() {
        assert_eq!(parse_auth_answer(b"{\"succeeded\": true}"), Some(true));
        assert_eq!(parse_auth_answer(b"{\"succeeded\":false}"), Some(false));
        assert_eq!(parse_auth_answer(b"{\n  succeeded: true\n}\n"), Some(true));
        assert_eq!(parse_auth_answer(b"{ succeeded: false }"), Some(false));
    }

    #[test]
    fn nothing_looser() {
        for bad in [
            &b""[..],
            b"true",
            b"{\"succeeded\": \"true\"}",
            b"{\"succeeded\": 1}",
            b"{ succeeded: yes }",
            b"{ succeeded: true, extra }",
            b"{\"ok\": true}",
            b"<html>succeeded: true</html>",
            b"[true]",
        ] {
            assert_eq!(
                parse_auth_answer(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn directory_lookup() {
        let dir = br#"[{"userName":"john.doe","emailAddresses":["j@x"]},{"userName":"Jane.Doe"}]"#;
        assert_eq!(directory_has_user(dir, "jane.doe"), Some(true));
        assert_eq!(directory_has_user(dir, "nobody"), Some(false));
        assert_eq!(directory_has_user(b"{}", "x"), None);
        assert_eq!(directory_has_user(br#"[{"fullName":"x"}]"#, "x"), None);
    }
}
