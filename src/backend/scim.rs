//! PostfixAdmin SCIM API (protocols.md; seed 002): account status only.
//!
//! `GET {base}/Users/{id}` (id = the mailbox address) answers 200 with a SCIM user whose
//! boolean `active` says whether the mailbox may be used, or 404 for an unknown mailbox. The
//! API never sees passwords, so this backend serves the account phase: stack it below a module
//! that checked the password (pam_unix, another pam_mailauth line, ...).

use super::{Answer, Backend};
use crate::http::{self, failover, read_capped, Attempt, AUTH_BODY_CAP};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::StatusCode;

pub struct Scim<'a> {
    opts: &'a Options,
}

impl<'a> Scim<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Scim { opts }
    }
}

/// `Some(active)` for a SCIM user resource with a boolean `active`, else `None`.
pub fn parse_active(body: &[u8]) -> Option<bool> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("active")?.as_bool()
}

impl Backend for Scim<'_> {
    fn cannot_verify(&self) -> Option<&'static str> {
        Some("backend=scim cannot check passwords (the SCIM API has none); use it on an account line")
    }

    fn verify(&self, _user: &str, _password: &Secret) -> Answer {
        // Not reached through the core, which asks cannot_verify() first.
        Verdict::Misconfigured(self.cannot_verify().unwrap_or_default().into()).into()
    }

    fn account(&self, user: &str) -> Option<Answer> {
        Some(failover(self.opts, |client, base, deadline| {
            let url = format!(
                "{}/Users/{}",
                base.trim_end_matches('/'),
                utf8_percent_encode(user, NON_ALPHANUMERIC)
            );
            let mut request = client
                .get(url)
                .header(reqwest::header::ACCEPT, "application/scim+json");
            request = match (
                &self.opts.token,
                &self.opts.http_user,
                &self.opts.http_password,
            ) {
                (Some(token), _, _) => request.bearer_auth(token.expose()),
                (None, Some(u), Some(p)) => request.basic_auth(u, Some(p.expose())),
                _ => request,
            };
            let response = match http::send(request, deadline) {
                Ok(r) => r,
                Err(attempt) => return attempt,
            };
            match response.status() {
                StatusCode::OK => match read_capped(response, AUTH_BODY_CAP, deadline) {
                    Ok(body) => match parse_active(&body) {
                        Some(true) => Attempt::Answer(Verdict::Accepted),
                        Some(false) => Attempt::Answer(Verdict::Disabled("mailbox is not active".into())),
                        None => Attempt::NextUrl("answer is not a SCIM user with a boolean 'active'".into()),
                    },
                    Err(why) => Attempt::NextUrl(why),
                },
                StatusCode::NOT_FOUND => Attempt::Answer(Verdict::UnknownUser),
                s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Attempt::NextUrl(format!(
                    "SCIM API refused the module's credentials (HTTP {}): check token= or http_user=/http_password=",
                    s.as_u16()
                )),
                s => Attempt::NextUrl(format!("unexpected HTTP {}", s.as_u16())),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_flag() {
        let user = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"a@x","userName":"a@x","active":true}"#;
        assert_eq!(parse_active(user), Some(true));
        assert_eq!(parse_active(br#"{"active":false}"#), Some(false));
        assert_eq!(parse_active(br#"{"active":"true"}"#), None);
        assert_eq!(parse_active(b"<html>"), None);
    }
}
