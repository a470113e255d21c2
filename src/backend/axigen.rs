//! Axigen (protocols.md "Axigen WebMail"; seed 003, Axigen's "Special HSP Requests").
//!
//! `api=webmail` (default) logs in to WebMail's HSP front door, `action=login&username=U&
//! password=P&custom=ajax` against the WebMail root, as a form POST (`method=post`, default:
//! the password stays out of URLs and access logs) or as the SSO document's exact GET query
//! (`method=get`). Success is `303` with `Set-Cookie: _hmail=<cookie key>` and `Location:
//! /?_h=<url key>` and, because the module sends `custom=ajax`, the body `{ success: true,
//! sessionKey: "..." }` (unquoted keys, read by `jsobject`). Only that whole shape is a yes:
//! keys without the success body are a refusal, the success body without the 303 and both
//! keys is no readable yes ("unavailable", next URL). The 303 is read, never followed.
//! Failure is not documented: a normal (2xx or 303) answer that is not an object (the HTML
//! login page) or says `success: false` is a refusal; an object with a key given twice,
//! 5xx, other statuses, timeouts and transport errors are "unavailable". Every login that was
//! handed session keys is logged out again (`action=logout`, `_h`, the `_hmail` cookie), so
//! SMTP AUTH does not leave a WebMail session behind per message; a failed logout is a
//! warning, not a different verdict.
//!
//! `api=rest` uses the Mailbox API (Axigen X4 / 10.4 and later): `POST /api/v1/login` with
//! Basic credentials answers `200 {"sessid": "..."}` or `401`. The session is closed again
//! right away with `POST /api/v1/logout` carrying it in `X-Axigen-Session`; as with WebMail, a
//! failed logout is a warning, not a different verdict.

use super::{Answer, Backend};
use crate::http::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use crate::http::Client;
use crate::http::{
    self, failover, form_encode, read_capped, Attempt, Deadline, Endpoint, AUTH_BODY_CAP,
};
use crate::http::{StatusCode, Url};
use crate::jsobject;
use crate::options::{AxigenApi, LoginMethod, Options};
use crate::secret::Secret;
use crate::verdict::Verdict;
use std::cell::RefCell;

/// The Mailbox API's login endpoint, relative to the Axigen WebMail/API root.
const REST_LOGIN_PATH: &str = "/api/v1/login";
/// Its logout endpoint, next to the login.
const REST_LOGOUT_PATH: &str = "/api/v1/logout";
/// The header that names a Mailbox API session.
const REST_SESSION_HEADER: &str = "X-Axigen-Session";

pub struct Axigen<'a> {
    opts: &'a Options,
    /// Reported by `warnings()` after the verdict (a session left open, and why).
    warnings: RefCell<Vec<String>>,
}

impl<'a> Axigen<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Axigen {
            opts,
            warnings: RefCell::new(Vec::new()),
        }
    }

    fn warn(&self, text: String) {
        self.warnings.borrow_mut().push(text);
    }

    /// One WebMail login against one URL (the WebMail root).
    fn webmail_login(
        &self,
        client: &Client,
        root: &Endpoint,
        user: &str,
        password: &Secret,
        deadline: &Deadline,
    ) -> Attempt {
        let root_url = root.url();
        // The same fields, in the document's order, for both methods.
        let fields = Secret::new(format!(
            "action=login&username={}&password={}&custom=ajax",
            form_encode(user),
            form_encode(password.expose())
        ));
        let request = match self.opts.method {
            LoginMethod::Post => client
                .post(root_url.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(fields.expose().to_string()),
            LoginMethod::Get => {
                // The SSO document's own form: the password IS in this URL. Nothing below
                // prints it: error texts come from http::describe, which leaves URLs out.
                let mut url = root_url.clone();
                url.set_query(Some(fields.expose()));
                client.get(url)
            }
        };
        drop(fields);
        let response = match http::fetch(request, AUTH_BODY_CAP, deadline) {
            Ok(r) => r,
            Err(attempt) => return attempt,
        };
        let status = response.status();
        if status.is_server_error() {
            return Attempt::NextUrl(format!("WebMail answered HTTP {}", status.as_u16()));
        }
        if !(status.is_success() || status == StatusCode::SEE_OTHER) {
            let why = if status.is_redirection() {
                "a redirect that is not WebMail's 303 login answer (not followed: check url=)"
            } else {
                "not a WebMail login answer (check url=: it must be the WebMail root)"
            };
            return Attempt::NextUrl(format!("HTTP {}: {why}", status.as_u16()));
        }
        // Keys are read before the body: whatever happens next, a session the server opened
        // is closed again.
        let keys = SessionKeys::from_headers(response.headers(), root_url);
        let body = read_capped(response, AUTH_BODY_CAP, deadline);
        let attempt = match &body {
            Err(why) => Attempt::NextUrl(why.clone()),
            Ok(body) => decide(status, keys.is_some(), body),
        };
        if let Some(keys) = &keys {
            self.logout(client, root_url, keys, deadline);
        }
        attempt
    }

    /// Ends a WebMail session: `action=logout` with its `_h` key (in the query, where WebMail
    /// expects it) and its `_hmail` cookie, within what is left of the login's deadline. Never
    /// changes the verdict; a failure becomes a warning.
    fn logout(&self, client: &Client, root: &Url, keys: &SessionKeys, deadline: &Deadline) {
        let mut url = root.clone();
        url.set_query(Some(&format!(
            "_h={}&action=logout",
            form_encode(&keys.url_key)
        )));
        let request = client
            .get(url)
            .header(COOKIE, format!("_hmail={}", keys.cookie_key));
        let outcome = match http::fetch(request, AUTH_BODY_CAP, deadline) {
            Err(Attempt::NextUrl(why)) => Err(why),
            Err(Attempt::Answer(_)) => Err("no answer".into()),
            Ok(response) => {
                let status = response.status();
                // Drain (capped) so the connection can be reused; the content is not needed.
                let _ = read_capped(response, AUTH_BODY_CAP, deadline);
                if status.is_client_error() || status.is_server_error() {
                    Err(format!("logout answered HTTP {}", status.as_u16()))
                } else {
                    Ok(())
                }
            }
        };
        if let Err(why) = outcome {
            self.warn(format!(
                "WebMail session on {} not closed ({why}); it stays open until WebMail's \
                 session timeout",
                http::host_of(root.as_str())
            ));
        }
    }

    /// One Mailbox API login against one URL (the Axigen root).
    fn rest_login(
        &self,
        client: &Client,
        root: &str,
        user: &str,
        password: &Secret,
        deadline: &Deadline,
    ) -> Attempt {
        let Some(url) = rest_login_url(root) else {
            return Attempt::NextUrl("url is not a URL".into());
        };
        // The documented request is the Authorization header alone: no body.
        let request = client
            .post(url.clone())
            .basic_auth(user, Some(password.expose()));
        let response = match http::send(request, deadline) {
            Ok(r) => r,
            Err(attempt) => return attempt,
        };
        match response.status() {
            StatusCode::OK => match read_capped(response, AUTH_BODY_CAP, deadline) {
                Ok(body) => match parse_rest_answer(&body) {
                    Some(sessid) => {
                        self.rest_logout(client, &url, &Secret::new(sessid), deadline);
                        Attempt::Answer(Verdict::Accepted)
                    }
                    None => Attempt::NextUrl("HTTP 200 without a session id (sessid)".into()),
                },
                Err(why) => Attempt::NextUrl(why),
            },
            StatusCode::UNAUTHORIZED => Attempt::Answer(Verdict::Refused),
            status => Attempt::NextUrl(format!(
                "Mailbox API answered HTTP {} (is it Axigen X4/10.4 or later, with the API enabled?)",
                status.as_u16()
            )),
        }
    }
}

impl Axigen<'_> {
    /// Ends a Mailbox API session: `POST /api/v1/logout` with `X-Axigen-Session`, through
    /// `http::send` like every request (same time bound). Never changes the verdict; a failure
    /// becomes a warning.
    fn rest_logout(&self, client: &Client, login_url: &Url, sessid: &Secret, deadline: &Deadline) {
        let url = rest_logout_url(login_url);
        let request = client
            .post(url)
            .header(REST_SESSION_HEADER, sessid.expose());
        let outcome = match http::send(request, deadline) {
            Err(Attempt::NextUrl(why)) => Err(why),
            Err(Attempt::Answer(_)) => Err("no answer".into()),
            Ok(response) => {
                let status = response.status();
                // Drain (capped) so the connection can be reused; the content is not needed.
                let _ = read_capped(response, AUTH_BODY_CAP, deadline);
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("logout answered HTTP {}", status.as_u16()))
                }
            }
        };
        if let Err(why) = outcome {
            self.warn(format!(
                "Mailbox API session on {} not closed ({why}); it stays open until Axigen's \
                 session timeout",
                http::host_of(login_url.as_str())
            ));
        }
    }
}

impl Backend for Axigen<'_> {
    fn verify(&self, user: &str, password: &Secret) -> Answer {
        match self.opts.api {
            AxigenApi::Webmail => failover(self.opts, |client, url, deadline| {
                self.webmail_login(client, url, user, password, deadline)
            }),
            AxigenApi::Rest => {
                if user.contains(':') {
                    // HTTP Basic cannot carry it: "a:b" + "c" would reach Axigen as user "a"
                    // with password "b:c". No Axigen account name contains a colon.
                    self.warn(
                        "user name contains ':', which HTTP Basic cannot carry: refused \
                         without asking Axigen"
                            .into(),
                    );
                    return Verdict::Refused.into();
                }
                failover(self.opts, |client, url, deadline| {
                    self.rest_login(client, url, user, password, deadline)
                })
            }
        }
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }
}

/// What a normal (2xx or 303) login answer means. The module always sends `custom=ajax`, and
/// with it Axigen's success is the whole shape of protocols.md: `303`, the `_hmail` cookie
/// and `_h` Location (`has_keys`), and the body `{ success: true, sessionKey: "..." }`. Keys
/// without that body (a failure page that still set a cookie, say) are a refusal; the body
/// without the 303 and the keys is not the answer Axigen gives, so it is no readable yes and
/// the next URL is asked; so is a body with a key given twice. Whatever the outcome, a
/// session the keys name is logged out by the caller.
fn decide(status: StatusCode, has_keys: bool, body: &[u8]) -> Attempt {
    match parse_login_answer(body) {
        LoginAnswer::Success { .. } if status == StatusCode::SEE_OTHER && has_keys => {
            Attempt::Answer(Verdict::Accepted)
        }
        LoginAnswer::Success { .. } => Attempt::NextUrl(format!(
            "HTTP {} with the success body but without the 303, _hmail cookie and _h \
             Location of WebMail's login answer: not a readable yes (a proxy in between?)",
            status.as_u16()
        )),
        LoginAnswer::Conflicting => Attempt::NextUrl(
            "login answer gives a key twice (e.g. success: false and success: true): no \
             honest reading"
                .into(),
        ),
        LoginAnswer::NotSuccess => Attempt::Answer(Verdict::Refused),
    }
}

/// The two keys WebMail hands out with a session: the cookie key (`_hmail`) and the URL key
/// (`_h`). Both are needed to address, and so to close, that session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub cookie_key: String,
    pub url_key: String,
}

impl SessionKeys {
    /// Both keys of a login answer (`Set-Cookie: _hmail=...`, `Location: /?_h=...`), or
    /// `None` unless both are present and well-formed.
    pub fn from_headers(headers: &HeaderMap, base: &Url) -> Option<SessionKeys> {
        let cookie_key = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(hmail_cookie)?;
        let location = headers.get(LOCATION)?.to_str().ok()?;
        let url_key = url_key(location, base)?;
        Some(SessionKeys {
            cookie_key,
            url_key,
        })
    }
}

/// The `_hmail` value of one `Set-Cookie` header value (`_hmail=KEY;Path=/;Version=1;`).
pub fn hmail_cookie(set_cookie: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?;
    let (name, value) = pair.split_once('=')?;
    if name.trim() != "_hmail" {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let cookie_octet =
        |b: u8| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
    (!value.is_empty() && value.bytes().all(cookie_octet)).then(|| value.to_string())
}

/// The `_h` key of a `Location` value, relative (`/?_h=KEY`, as WebMail sends it) or
/// absolute. `None` without exactly one non-empty, printable `_h`.
pub fn url_key(location: &str, base: &Url) -> Option<String> {
    let location = location.trim();
    let joined;
    let query = match location.strip_prefix("/?") {
        // WebMail's own form: its query is what joining it to the base would give (printable
        // ASCII without a fragment is kept as it is), without parsing a URL.
        Some(query) if query.bytes().all(|b| b.is_ascii_graphic() && b != b'#') => query,
        _ => {
            joined = base.join(location).ok()?;
            joined.query()?
        }
    };
    let mut keys = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "_h")
        .map(|(_, v)| v.into_owned());
    let key = keys.next()?;
    if keys.next().is_some() {
        return None;
    }
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_graphic())).then_some(key)
}

/// The Mailbox API login URL under an Axigen root (`https://mail.example.com/` →
/// `https://mail.example.com/api/v1/login`); a URL that already names it is kept.
pub fn rest_login_url(root: &str) -> Option<Url> {
    let mut url = Url::parse(root).ok()?;
    let path = url.path().trim_end_matches('/').to_string();
    if !path.ends_with(REST_LOGIN_PATH) {
        url.set_path(&format!("{path}{REST_LOGIN_PATH}"));
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

/// The Mailbox API logout URL next to a login URL from [`rest_login_url`].
pub fn rest_logout_url(login: &Url) -> Url {
    let mut url = login.clone();
    let path = url.path();
    let base = path
        .strip_suffix(REST_LOGIN_PATH)
        .unwrap_or(path)
        .to_string();
    url.set_path(&format!("{base}{REST_LOGOUT_PATH}"));
    url
}

/// What a WebMail `custom=ajax` login body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAnswer {
    /// `{ success: true, sessionKey: "<non-empty>" }`
    Success { session_key: String },
    /// Anything else that is not self-contradictory: `{ success: false, ... }`, the HTML login
    /// page, an empty body, an object without the success shape (failure is undocumented).
    NotSuccess,
    /// An object with a key given twice (`{ success: false, success: true }`): no honest
    /// reading, so neither a yes nor a no.
    Conflicting,
}

/// Reads a WebMail login body: the document's `{ success: true, sessionKey: "..." }`
/// (unquoted keys) or the same in strict JSON is `Success`. Exposed for the fuzz targets.
pub fn parse_login_answer(body: &[u8]) -> LoginAnswer {
    let answer = match jsobject::read_object(body) {
        Ok(answer) => answer,
        Err(jsobject::Unreadable::DuplicateKey) => return LoginAnswer::Conflicting,
        Err(jsobject::Unreadable::NotAnObject) => return LoginAnswer::NotSuccess,
    };
    match (answer.bool("success"), answer.text("sessionKey")) {
        (Some(true), Some(key)) => LoginAnswer::Success {
            session_key: key.to_string(),
        },
        _ => LoginAnswer::NotSuccess,
    }
}

/// The session id of a Mailbox API login answer (`{"sessid": "..."}`, also with the unquoted
/// key the documentation prints); `None` without a non-empty one. Exposed for fuzz targets.
pub fn parse_rest_answer(body: &[u8]) -> Option<String> {
    jsobject::parse_object(body)?
        .text("sessid")
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WebMail's `/?...` form is read without joining; the answer is the joined URL's.
    #[test]
    fn the_url_key_of_webmails_location_form_is_the_joined_urls() {
        let base = Url::parse("https://mail.example.com/webmail/").unwrap();
        let joined = |location: &str| {
            let url = base.join(location.trim()).ok()?;
            let mut keys = url.query_pairs().filter(|(k, _)| k == "_h");
            let (_, key) = keys.next()?;
            (keys.next().is_none() && !key.is_empty() && key.chars().all(|c| c.is_ascii_graphic()))
                .then(|| key.into_owned())
        };
        for location in [
            "/?_h=KEY123",
            " /?_h=a%2Bb+c&x=1 ",
            "/?_h=1&_h=2",
            "/?_h=",
            "/?x=1",
            "/?_h=a\"b<c>'d",
            "/?_h=%41%7e",
            "/?_h=k#frag",
            "https://other.example/?_h=abs",
            "?_h=rel",
        ] {
            assert_eq!(url_key(location, &base), joined(location), "{location:?}");
        }
    }
    use crate::http::header::HeaderValue;

    #[test]
    fn the_documented_body_and_strict_json() {
        let ok = LoginAnswer::Success {
            session_key: "f2531832aba5b28a947b35dfe3481b54".into(),
        };
        assert_eq!(
            parse_login_answer(
                b"{ success: true, sessionKey: \"f2531832aba5b28a947b35dfe3481b54\" }"
            ),
            ok.clone()
        );
        assert_eq!(
            parse_login_answer(
                b"{\"success\":true,\"sessionKey\":\"f2531832aba5b28a947b35dfe3481b54\"}\r\n"
            ),
            ok.clone()
        );
        assert_eq!(
            parse_login_answer(
                b"\xef\xbb\xbf{\n success : true ,\n sessionKey : \"f2531832aba5b28a947b35dfe3481b54\",\n user: {\"name\": \"x\", tags: [1, -2.5e3, null]}\n}"
            ),
            ok
        );
        assert_eq!(
            parse_login_answer(b"{ success: false, errorCode: 5, errorMessage: \"Invalid\" }"),
            LoginAnswer::NotSuccess
        );
        assert_eq!(
            parse_login_answer(b"{\"success\": true, \"sessionKey\": \"a\\\"b\\u00e9\"}"),
            LoginAnswer::Success {
                session_key: "a\"b\u{e9}".into()
            }
        );
    }

    #[test]
    fn nothing_looser() {
        for bad in [
            &b""[..],
            b"success: true",
            b"{ success: true }",
            b"{ success: true, sessionKey: \"\" }",
            b"{ success: true, sessionKey: 5 }",
            b"{ success: \"true\", sessionKey: \"k\" }",
            b"{ success: 1, sessionKey: \"k\" }",
            b"{ success: yes, sessionKey: \"k\" }",
            b"{ success: true, sessionKey: 'k' }",
            b"{ success: true, sessionKey: \"k\", }",
            b"{ success: true, sessionKey: \"k\" } trailing",
            b"{ success: true sessionKey: \"k\" }",
            b"{ success: truefalse, sessionKey: \"k\" }",
            b"{ 1success: true, sessionKey: \"k\" }",
            b"{ success: true, sessionKey: \"k\\\" }",
            b"{ success: true, sessionKey: \"k\nk\" }",
            b"{ success: true, sessionKey: \"k\", n: 01 }",
            b"{ success: true, sessionKey: \"k\", n: - }",
            b"[{ success: true, sessionKey: \"k\" }]",
            b"<html><body>{ success: true, sessionKey: \"k\" }</body></html>",
            b"{ success: true, sessionKey: \"\xff\" }",
        ] {
            assert_eq!(
                parse_login_answer(bad),
                LoginAnswer::NotSuccess,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rest_session_id() {
        assert_eq!(
            parse_rest_answer(b"{\"sessid\": \"0123abcd\"}"),
            Some("0123abcd".into())
        );
        assert_eq!(
            parse_rest_answer(b"{ sessid: \"0123abcd\" }"),
            Some("0123abcd".into())
        );
        assert_eq!(parse_rest_answer(b"{\"sessid\": \"\"}"), None);
        assert_eq!(parse_rest_answer(b"{\"sessid\": 12}"), None);
        assert_eq!(parse_rest_answer(b"{}"), None);
    }

    #[test]
    fn random_input_never_panics() {
        crate::jsobject::tests::for_mutations_of(crate::jsobject::tests::SEED, |input| {
            let _ = parse_login_answer(input);
            let _ = parse_rest_answer(input);
        });
    }

    #[test]
    fn session_keys_from_the_documented_headers() {
        let Ok(base) = Url::parse("https://webmail.example.com/") else {
            panic!("base URL")
        };
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("other=1; Path=/"));
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("_hmail=485876d52164154bf7a98840940195cb;Path=/;Version=1;"),
        );
        h.insert(
            LOCATION,
            HeaderValue::from_static("/?_h=242fa2fea1d86d902341edb8331df405"),
        );
        assert_eq!(
            SessionKeys::from_headers(&h, &base),
            Some(SessionKeys {
                cookie_key: "485876d52164154bf7a98840940195cb".into(),
                url_key: "242fa2fea1d86d902341edb8331df405".into(),
            })
        );
        h.insert(
            LOCATION,
            HeaderValue::from_static("https://webmail.example.com/index.hsp?x=1&_h=abc"),
        );
        assert_eq!(
            SessionKeys::from_headers(&h, &base).map(|k| k.url_key),
            Some("abc".into())
        );
        for bad in ["/", "/?_h=", "/?_h=a&_h=b", "/?h=abc"] {
            h.insert(LOCATION, HeaderValue::from_static(bad));
            assert_eq!(SessionKeys::from_headers(&h, &base), None, "{bad}");
        }
        assert_eq!(hmail_cookie("_hmail=\"q1\"; Path=/"), Some("q1".into()));
        assert_eq!(hmail_cookie("_hmail=; Max-Age=0"), None);
        assert_eq!(hmail_cookie("_hmailx=abc"), None);
        assert_eq!(hmail_cookie("_hmail=a b"), None);
    }

    #[test]
    fn the_body_decides_not_the_headers() {
        let body = b"{ success: true, sessionKey: \"s\" }";
        let page = b"<html><form>Invalid username or password</form></html>";
        let see_other = StatusCode::SEE_OTHER;
        let yes = |a: Attempt| matches!(a, Attempt::Answer(Verdict::Accepted));
        let no = |a: Attempt| matches!(a, Attempt::Answer(Verdict::Refused));
        let unreadable = |a: Attempt| matches!(a, Attempt::NextUrl(_));
        assert!(yes(decide(see_other, true, body)));
        assert!(no(decide(see_other, true, b"")));
        assert!(no(decide(see_other, true, page)));
        assert!(no(decide(StatusCode::OK, false, page)));
        assert!(no(decide(see_other, true, b"{ success: false }")));
        assert!(no(decide(see_other, true, b"{ success: true }")));
        // The success body is only a yes with the 303 and both keys.
        assert!(unreadable(decide(StatusCode::OK, false, body)));
        assert!(unreadable(decide(StatusCode::OK, true, body)));
        assert!(unreadable(decide(see_other, false, body)));
        // A key given twice is neither a yes nor a no, whichever value comes last.
        for conflicting in [
            &b"{ success: false, success: true, sessionKey: \"s\" }"[..],
            b"{ success: true, sessionKey: \"s\", \"success\": false }",
            b"{ success: true, sessionKey: \"s\", sessionKey: \"t\" }",
        ] {
            assert_eq!(parse_login_answer(conflicting), LoginAnswer::Conflicting);
            assert!(unreadable(decide(see_other, true, conflicting)));
        }
    }

    #[test]
    fn rest_url_under_the_root() {
        for (root, want) in [
            (
                "https://m.example.com",
                "https://m.example.com/api/v1/login",
            ),
            (
                "https://m.example.com/",
                "https://m.example.com/api/v1/login",
            ),
            (
                "https://m.example.com/ax/",
                "https://m.example.com/ax/api/v1/login",
            ),
            (
                "https://m.example.com/api/v1/login",
                "https://m.example.com/api/v1/login",
            ),
        ] {
            assert_eq!(rest_login_url(root).as_ref().map(Url::as_str), Some(want));
            let logout = rest_login_url(root).map(|u| rest_logout_url(&u).to_string());
            assert_eq!(logout, Some(want.replace("/login", "/logout")));
        }
    }
}
