//! PostfixAdmin SCIM API (protocols.md, "What the real servers do"; seed 002): account status
//! only.
//!
//! `GET {base}/Users/{id}` (id = the mailbox address) answers 200 with a SCIM user whose
//! boolean `active` says whether the mailbox may be used. The API never sees passwords, so this
//! backend serves the account phase: stack it below a module that checked the password
//! (pam_unix, another pam_mailauth line, ...).
//!
//! A 404 alone says little. The real API answers 404 with an EMPTY body for an unknown
//! mailbox, but also for any path outside its routes (with a JSON error body, before it even
//! looks at credentials): a wrong base URL would make every user "unknown", and an
//! `account [user_unknown=ignore]` line would wave everyone through. So a 404 means "unknown
//! mailbox" only when its body is empty AND the base has been confirmed to be the SCIM API:
//! `{base}/ResourceTypes` or `{base}/Schemas` answers 200 there (never
//! `/ServiceProviderConfig`, which fails on PHP 8.2). The confirmation is kept per process and
//! configuration. Anything else is "unavailable", with the URL to fix.
//!
//! What the API cannot tell apart, the module cannot either: a failed database query and a
//! mailbox whose alias does not deliver to itself (forward-only) also end as an empty 404, so
//! they are "unknown mailbox" too, which denies in the account phase. The database being down
//! ends as 401, like wrong credentials: unavailable. SCIM bodies are never logged:
//! `meta.location` echoes the caller's Basic credentials.

use super::confirmed::Confirmation;
use super::{Answer, Backend};
use crate::http::StatusCode;
use crate::http::{self, failover, read_capped, Attempt, Deadline, AUTH_BODY_CAP};
use crate::http::{Client, RequestBuilder};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// The endpoints that answer 200 on the right base; tried in this order.
const PROBES: [&str; 2] = ["ResourceTypes", "Schemas"];

pub struct Scim<'a> {
    opts: &'a Options,
}

impl<'a> Scim<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Scim { opts }
    }

    /// A request carrying the module's own credentials (Bearer token, else Basic).
    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        let request = request.header(crate::http::header::ACCEPT, "application/scim+json");
        match (
            &self.opts.token,
            &self.opts.http_user,
            &self.opts.http_password,
        ) {
            (Some(token), _, _) => request.bearer_auth(token.expose()),
            (None, Some(u), Some(p)) => request.basic_auth(u, Some(p.expose())),
            _ => request,
        }
    }

    fn confirmation(&self, base: &str) -> Confirmation {
        Confirmation::of(
            "scim",
            base,
            &[
                self.opts.token.as_ref().map(Secret::expose),
                self.opts.http_user.as_deref(),
                self.opts.http_password.as_ref().map(Secret::expose),
            ],
        )
    }

    /// Whether `base` is the SCIM API: one of its discovery endpoints answers 200. `Err` says
    /// why not (or why it could not be told), for the log line.
    fn confirm_base(&self, client: &Client, base: &str, deadline: &Deadline) -> Result<(), String> {
        let confirmation = self.confirmation(base);
        if confirmation.is_known() {
            return Ok(());
        }
        let mut seen = Vec::new();
        for probe in PROBES {
            let url = format!("{base}/{probe}");
            let response = match http::send(self.authorized(client.get(&url)), deadline) {
                Ok(r) => r,
                Err(Attempt::NextUrl(why)) => return Err(format!("{url}: {why}")),
                Err(Attempt::Answer(_)) => return Err(format!("{url}: no answer")),
            };
            let status = response.status();
            // Drained, never kept: discovery bodies decide nothing here.
            let _ = read_capped(response, AUTH_BODY_CAP, deadline);
            match status {
                StatusCode::OK => {
                    confirmation.remember();
                    return Ok(());
                }
                s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                    return Err(credentials_refused(s))
                }
                s => seen.push(format!("{url} answered HTTP {}", s.as_u16())),
            }
        }
        Err(format!(
            "url={base} is not confirmed to be the SCIM API's base ({}), so its 404 cannot \
             mean 'unknown mailbox': fix url= (the base under which /Users/ and \
             /ResourceTypes answer)",
            seen.join(", ")
        ))
    }

    /// The verdict on a 404 for a user: an unknown mailbox only as the API says it (empty
    /// body) from a confirmed base.
    fn not_found(
        &self,
        client: &Client,
        base: &str,
        body: Result<Vec<u8>, String>,
        deadline: &Deadline,
    ) -> Attempt {
        match body {
            Err(why) => Attempt::NextUrl(why),
            Ok(body) if !body.iter().all(u8::is_ascii_whitespace) => Attempt::NextUrl(format!(
                "url={base}: {base}/Users/... is outside the API's routes (HTTP 404 with an \
                 error body, not the empty 404 of an unknown mailbox): fix url="
            )),
            Ok(_) => match self.confirm_base(client, base, deadline) {
                Ok(()) => Attempt::Answer(Verdict::UnknownUser),
                Err(why) => Attempt::NextUrl(why),
            },
        }
    }
}

/// `Some(active)` for a SCIM user resource with a boolean `active`, else `None`. Read with
/// the shared strict reader: a key given twice (`{"active":false,"active":true}`) is no
/// answer, where serde_json would keep the last value.
pub fn parse_active(body: &[u8]) -> Option<bool> {
    crate::jsobject::parse_object(body)?.bool("active")
}

fn credentials_refused(status: StatusCode) -> String {
    format!(
        "SCIM API answered HTTP {}: it refused the module's credentials (check token= or \
         http_user=/http_password=: a super admin, a JWT with the claim 'user'), or its \
         database is down (PostfixAdmin's SCIM API answers 401 for both)",
        status.as_u16()
    )
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
        Some(failover(self.opts, |client, url, deadline| {
            let base = url.trim_end_matches('/');
            let request = self.authorized(client.get(format!(
                "{base}/Users/{}",
                utf8_percent_encode(user, NON_ALPHANUMERIC)
            )));
            let response = match http::send(request, deadline) {
                Ok(r) => r,
                Err(attempt) => return attempt,
            };
            match response.status() {
                StatusCode::OK => match read_capped(response, AUTH_BODY_CAP, deadline) {
                    Ok(body) => match parse_active(&body) {
                        Some(true) => Attempt::Answer(Verdict::Accepted),
                        Some(false) => {
                            Attempt::Answer(Verdict::Disabled("mailbox is not active".into()))
                        }
                        None => Attempt::NextUrl(
                            "answer is not a SCIM user with a boolean 'active'".into(),
                        ),
                    },
                    Err(why) => Attempt::NextUrl(why),
                },
                StatusCode::NOT_FOUND => {
                    let body = read_capped(response, AUTH_BODY_CAP, deadline);
                    self.not_found(client, base, body, deadline)
                }
                s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                    Attempt::NextUrl(credentials_refused(s))
                }
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
        assert_eq!(parse_active(br#"{"active":false,"active":true}"#), None);
        assert_eq!(
            parse_active(br#"{"active":true,"meta":{"a":1,"a":2}}"#),
            None
        );
    }
}
