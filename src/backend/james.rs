//! Apache James / Linagora TMail webadmin (protocols.md, "What the real servers do"; seed 001).
//!
//! `POST /users/{user}/verify` with `{"password": "..."}` answers 204 for the right password
//! and 401 otherwise (James does not tell unknown users apart, by design), and 400 for a name
//! that is not a valid James user name (blank, over 255 characters, two `@`, empty local part,
//! bad domain): users type those, so that is a refusal, not an outage. The account phase asks
//! `HEAD /users/{user}`: 200 exists, 404 does not, 400 cannot exist. A 404 (or 400) is
//! trusted as "unknown user" only from a base confirmed to be webadmin: `GET {base}/domains`
//! answers 200 there (once per process and configuration, `confirmed`). A wrong `url=` would
//! otherwise answer 404 for everyone, and `account [user_unknown=ignore]` would wave them all
//! through; from an unconfirmed base it is "unavailable", naming the url to fix.
//!
//! Webadmin authenticates its callers in one of three ways, all served by the optional `token`
//! (config file only), sent as `Authorization: Bearer <token>`: a JWT with `admin: true`; a
//! static webadmin password (recent James accepts it as a Bearer credential as well as in a
//! `Password:` header; a read-only password is refused on POST with 403); or nothing at all
//! (no `token`, no header).
use super::confirmed::Confirmation;
use super::{Answer, Backend};
use crate::http::StatusCode;
use crate::http::{self, failover, read_capped, Attempt, Deadline, AUTH_BODY_CAP};
use crate::http::{Client, Endpoint, RequestBuilder, Url};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

pub struct James<'a> {
    opts: &'a Options,
}

impl<'a> James<'a> {
    pub fn new(opts: &'a Options) -> Self {
        James { opts }
    }

    /// The request with the webadmin credential, if one is configured.
    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.opts.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    /// Whether webadmin accepts our token at all: `HEAD /users/{user}` answers 200 or 404
    /// with a good token, 401 (or 403) with a bad one.
    fn account_status(
        &self,
        client: &Client,
        base: &Endpoint,
        user: &str,
        deadline: &Deadline,
    ) -> Result<StatusCode, Attempt> {
        let request = self.authorized(client.head(user_url(base.url(), user, "")));
        let response = http::send(request, deadline)?;
        match response.status() {
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(token_refused(s)),
            status => Ok(status),
        }
    }

    /// Whether `base` is James' webadmin: `GET {base}/domains` answers 200 there (the domain
    /// list). `Err` says why not, naming the url to fix.
    fn confirm_base(
        &self,
        client: &Client,
        base: &str,
        deadline: &Deadline,
    ) -> Result<(), Attempt> {
        let base = base.trim_end_matches('/');
        let confirmation = Confirmation::of(
            "james",
            base,
            &[self.opts.token.as_ref().map(Secret::expose)],
        );
        if confirmation.is_known() {
            return Ok(());
        }
        let url = format!("{base}/domains");
        let response = http::send(self.authorized(client.get(&url)), deadline)?;
        let status = response.status();
        // Drained, never kept: the domain list decides nothing here.
        let _ = read_capped(response, AUTH_BODY_CAP, deadline);
        match status {
            StatusCode::OK => {
                confirmation.remember();
                Ok(())
            }
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(token_refused(s)),
            s => Err(Attempt::NextUrl(format!(
                "url={base} is not confirmed to be James' webadmin ({url} answered HTTP {}, \
                 webadmin answers 200), so its 404 cannot mean 'unknown user': fix url= \
                 (webadmin's base, under which /users/ and /domains answer)",
                s.as_u16()
            ))),
        }
    }

    fn token_accepted(
        &self,
        client: &Client,
        base: &Endpoint,
        deadline: &Deadline,
    ) -> Result<(), Attempt> {
        // Any name will do: only the token is being checked.
        self.account_status(client, base, "pam_mailauth-token-check", deadline)
            .map(|_| ())
    }
}

/// `{base}/users/{user}{suffix}`, the user percent-encoded as one path segment (`@` and `+`
/// are common in mail addresses; `/` or `..` must not change the path). Built on the parsed
/// base: only the path is set, the URL is not parsed again.
pub fn user_url(base: &Url, user: &str, suffix: &str) -> Url {
    let segment = utf8_percent_encode(user, NON_ALPHANUMERIC);
    let mut url = base.clone();
    url.set_path(&format!(
        "{}/users/{segment}{suffix}",
        base.path().trim_end_matches('/')
    ));
    url
}

/// Webadmin refused the module's own credential (or its absence).
fn token_refused(status: StatusCode) -> Attempt {
    Attempt::NextUrl(format!(
        "webadmin refused the module's credential (HTTP {}): check token= (an admin JWT, or \
         webadmin's static password, which must not be a read-only one; without token= no \
         credential is sent)",
        status.as_u16()
    ))
}

/// What James said, beyond the statuses that decide: our own token rejected, or anything odd.
fn unexpected(status: StatusCode) -> Attempt {
    match status {
        StatusCode::FORBIDDEN => token_refused(status),
        s => Attempt::NextUrl(format!("unexpected HTTP {}", s.as_u16())),
    }
}

impl Backend for James<'_> {
    fn verify(&self, user: &str, password: &Secret) -> Answer {
        let body = Secret::new(serde_json::json!({ "password": password.expose() }).to_string());
        failover(self.opts, |client, base, deadline| {
            let request = self
                .authorized(client.post(user_url(base.url(), user, "/verify")))
                .header(crate::http::header::CONTENT_TYPE, "application/json")
                .body(body.expose().to_string());
            let response = match http::fetch(request, AUTH_BODY_CAP, deadline) {
                Ok(r) => r,
                Err(attempt) => return attempt,
            };
            let status = response.status();
            // Drain (bounded) so the kept-alive connection can be reused.
            let _ = read_capped(response, AUTH_BODY_CAP, deadline);
            match status {
                StatusCode::NO_CONTENT => Attempt::Answer(Verdict::Accepted),
                // 401 is James's answer for a wrong password or an unknown user, but also for a
                // bad webadmin token: one HEAD with the same token tells them apart, so an
                // expired token is "unavailable", not every user's wrong password.
                StatusCode::UNAUTHORIZED => match self.token_accepted(client, base, deadline) {
                    Ok(()) => Attempt::Answer(Verdict::Refused),
                    Err(attempt) => attempt,
                },
                // Credentials are checked before the route: a 400 means the token passed and
                // James rejects the name itself (our JSON body is always well-formed).
                StatusCode::BAD_REQUEST => Attempt::Answer(Verdict::Refused),
                s => unexpected(s),
            }
        })
    }

    fn account(&self, user: &str) -> Option<Answer> {
        Some(failover(self.opts, |client, base, deadline| {
            match self.account_status(client, base, user, deadline) {
                Ok(StatusCode::OK | StatusCode::NO_CONTENT) => Attempt::Answer(Verdict::Accepted),
                // 400: not a valid James user name, so no such user can exist.
                Ok(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST) => {
                    match self.confirm_base(client, base, deadline) {
                        Ok(()) => Attempt::Answer(Verdict::UnknownUser),
                        Err(attempt) => attempt,
                    }
                }
                Ok(status) => unexpected(status),
                Err(attempt) => attempt,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_is_one_encoded_path_segment() {
        let url = |text: &str| Url::parse(text).unwrap();
        assert_eq!(
            user_url(&url("http://h:8000/"), "a+b@x.org", "/verify").as_str(),
            "http://h:8000/users/a%2Bb%40x%2Eorg/verify"
        );
        assert_eq!(
            user_url(&url("http://h"), "../admin", "").as_str(),
            "http://h/users/%2E%2E%2Fadmin"
        );
        assert_eq!(
            user_url(&url("http://h/james/"), "john.doe", "").as_str(),
            "http://h/james/users/john%2Edoe"
        );
    }
}
