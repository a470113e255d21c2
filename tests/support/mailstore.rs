//! A MailStore "Application Integration" server written from the protocol document
//! (seed 000): `cmd=auth` and `cmd=list` over a form POST, optional Basic auth, and the
//! document's two answer forms.

use super::http::{Reply, Request, Server};
use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `{"succeeded": true}` as application/json.
    Strict,
    /// The document's own `{ succeeded: true }` as `text/json; charset=utf8`.
    Document,
}

pub struct MailStore {
    pub users: HashMap<String, String>,
    pub form: Form,
    /// Basic credentials the endpoint demands, if any.
    pub basic: Option<(String, String)>,
}

impl MailStore {
    pub fn new(users: &[(&str, &str)]) -> MailStore {
        MailStore {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            form: Form::Document,
            basic: None,
        }
    }

    pub fn form(mut self, form: Form) -> Self {
        self.form = form;
        self
    }

    pub fn basic(mut self, user: &str, password: &str) -> Self {
        self.basic = Some((user.into(), password.into()));
        self
    }

    pub fn answer(&self, req: &Request) -> Reply {
        if let Some(expected) = &self.basic {
            if req.basic_auth().as_ref() != Some(expected) {
                return Reply::status(401, "text/plain", "Unauthorized")
                    .with_header("WWW-Authenticate", "Basic realm=\"x\"");
            }
        }
        if req.method != "POST"
            || req.header("content-type") != Some("application/x-www-form-urlencoded")
        {
            return Reply::status(400, "text/plain", "bad request");
        }
        let form = req.form();
        match form.get("cmd").map(String::as_str) {
            Some("auth") => {
                let ok = match (form.get("user"), form.get("pass")) {
                    (Some(u), Some(p)) => self.users.get(u) == Some(p),
                    _ => false,
                };
                match self.form {
                    Form::Strict => {
                        Reply::status(200, "application/json", format!("{{\"succeeded\": {ok}}}"))
                    }
                    Form::Document => Reply::status(
                        200,
                        "text/json; charset=utf8",
                        format!("{{\n  succeeded: {ok}\n}}\n"),
                    ),
                }
            }
            Some("list") => {
                let list: Vec<_> = self
                    .users
                    .keys()
                    .map(|u| serde_json::json!({"userName": u, "fullName": u}))
                    .collect();
                Reply::status(
                    200,
                    "text/json; charset=utf8",
                    serde_json::to_vec(&list).unwrap(),
                )
            }
            _ => Reply::status(400, "text/plain", "unknown cmd"),
        }
    }

    pub fn serve(self) -> Server {
        Server::start(move |req| self.answer(req))
    }
}
