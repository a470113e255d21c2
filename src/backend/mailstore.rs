//! MailStore "Application Integration" endpoint (protocols.md; seed 000).
//!
//! `POST url` with a form body: `cmd=auth&user=U&pass=P` answers `{"succeeded": true|false}`,
//! which MailStore's own examples print as `{ succeeded: true }` (an unquoted key, read by
//! `jsobject`) and serve as `text/json`. The body decides, not the Content-Type: MailStore
//! reads the body, and hand-written endpoints serve the right body as `text/html`.
//! `cmd=list` returns the user directory (`directory`), consulted only with `account=check`:
//! by the account phase, and after a refused `cmd=auth` to tell an unknown user from a wrong
//! password. The endpoint may demand Basic credentials (`http_user`/`http_password`).

mod directory;

use super::{Answer, Backend};
use crate::http::StatusCode;
use crate::http::{
    self, failover, form_encode, read_capped, Attempt, Deadline, Endpoint, AUTH_BODY_CAP,
};
use crate::http::{Client, RequestBuilder};
use crate::jsobject;
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use std::sync::Arc;
use zeroize::Zeroizing;

pub use directory::Directory;

/// The `cmd=list` directory grows with the user count: a separate, larger cap.
const DIRECTORY_BODY_CAP: u64 = 16 * 1024 * 1024;

pub struct Mailstore<'a> {
    opts: &'a Options,
}

impl<'a> Mailstore<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Mailstore { opts }
    }

    fn post(&self, client: &Client, url: &Endpoint, body: String) -> RequestBuilder {
        let request = client
            .post(url)
            .header(
                crate::http::header::CONTENT_TYPE,
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
        url: &Endpoint,
        body: String,
        cap: u64,
        deadline: &Deadline,
    ) -> Result<Vec<u8>, Attempt> {
        let response = http::fetch(self.post(client, url, body), cap, deadline)?;
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
        read_capped(response, cap, deadline).map_err(Attempt::NextUrl)
    }
}

impl Mailstore<'_> {
    /// The directory: this process's copy if read within `directory_ttl`, else read from
    /// `url` (and kept for the next checks).
    fn directory(
        &self,
        client: &Client,
        url: &Endpoint,
        deadline: &Deadline,
    ) -> Result<Arc<Directory>, String> {
        directory::shared(self.opts, || {
            let body =
                match self.exchange(client, url, "cmd=list".into(), DIRECTORY_BODY_CAP, deadline) {
                    Ok(body) => body,
                    Err(Attempt::NextUrl(why)) => return Err(why),
                    Err(Attempt::Answer(_)) => return Err("no directory".into()),
                };
            Directory::parse(&body)
                .ok_or_else(|| "cmd=list answer is not a JSON array of users".to_string())
        })
    }

    /// `cmd=auth` said no. With `account=check` the directory tells an unknown user from a
    /// wrong password (for `ignore_unknown_user`, and so that log lines may name a user who
    /// exists); if it cannot be read, it stays a plain no.
    fn refusal(&self, client: &Client, url: &Endpoint, user: &str, deadline: &Deadline) -> Verdict {
        if !self.opts.account_check {
            return Verdict::Refused;
        }
        match self.directory(client, url, deadline) {
            Ok(directory) if directory.contains(user) => Verdict::WrongPassword,
            Ok(_) => Verdict::UnknownUser,
            Err(_) => Verdict::Refused,
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
            match self.directory(client, url, deadline) {
                Ok(directory) if directory.contains(user) => Attempt::Answer(Verdict::Accepted),
                Ok(_) => Attempt::Answer(Verdict::UnknownUser),
                Err(why) => Attempt::NextUrl(why),
            }
        });
        Some(answer)
    }
}

/// `Some(b)` for exactly the answers the protocol document shows: one member, a boolean
/// `succeeded`, with the key quoted (strict JSON) or not (`{ succeeded: true }`). Anything
/// else, duplicate keys included, is `None`.
pub fn parse_auth_answer(body: &[u8]) -> Option<bool> {
    let answer = jsobject::parse_object(body)?;
    if answer.len() != 1 {
        return None;
    }
    answer.bool("succeeded")
}

/// Whether the `cmd=list` directory holds this user; `None` when the answer is not a
/// directory. For the fuzz target: the backend keeps the parsed `Directory` instead.
pub fn directory_has_user(body: &[u8], user: &str) -> Option<bool> {
    Directory::parse(body).map(|d| d.contains(user))
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
            b"{ succeeded: true, extra: 1 }",
            b"{\"succeeded\":false,\"succeeded\":true}",
            b"{ succeeded: false, \"succeeded\": true }",
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
